"""`metaspatial report RUN_DIR`: one self-contained HTML page about a run.

Reward and metric curves per iteration, the update stage's logged metrics, the reward by turn within
multi-turn trajectories (report_turns.py), the evaluation table,
and galleries of renders (one room across iterations and turns; one held-out room per evaluated
model). Images are embedded as base64 PNG and there is no script, so the file can be mailed,
archived or opened offline and always shows the same thing.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

import typer

from .eval_metrics import METRICS
from .options import err_console, print_error
from .report_renders import REPORT_PIXELS

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1200px;color:#222;
padding:0 1rem}
h1{margin-bottom:.2rem}.sub,.note{color:#666;margin-top:0}.note{font-size:.85rem;overflow-wrap:anywhere}
.wide{overflow-x:auto}
table{border-collapse:collapse;margin:1rem 0 .4rem;font-size:.88rem}
th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:right}th{background:#f3f3f3;vertical-align:bottom}
td{white-space:nowrap}td:first-child,th:first-child{text-align:left}
td.model{white-space:normal;overflow-wrap:anywhere;max-width:16em}
.plots img{max-width:48%;margin:.3rem}
.row{display:flex;flex-wrap:wrap;gap:1rem;margin-bottom:1.5rem}
figure{margin:0;width:380px}figure img{width:380px;height:auto;display:block;border:1px solid #ddd;box-sizing:border-box}
figcaption{font-size:.85rem;color:#444;margin-top:.3rem;overflow-wrap:anywhere}
.missing{width:380px;height:380px;background:#eee;display:flex;align-items:center;justify-content:center;color:#888}
"""
# Table headings of the score columns: the eval table's own (format reward is the eval's "fmt rwd").
HEADINGS = {key: heading for key, heading, _ in METRICS}


def _img(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _number(text: Any) -> str:
    if isinstance(text, int) or (isinstance(text, str) and text.isdigit()):
        return str(text)  # counts stay whole numbers
    try:
        value = float(text)
    except (TypeError, ValueError):
        return html.escape(str(text))
    return f"{value:.3f}" if math.isfinite(value) else "–"  # no such rows (e.g. no valid answer): as eval.md


def _table(heads: list[str], rows: list[list[str]]) -> str:
    """Cells are HTML already (escaped by the caller)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in heads)
    body = "".join("<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<div class=wide><table><tr>{head}</tr>{body}</table></div>"


def _picture_html(pic: Any) -> str:
    from .report_renders import plan_png

    data = plan_png(pic.row) or (pic.path.read_bytes() if pic.path is not None else None)
    image = _img(data, pic.caption) if data else "<div class=missing>no render</div>"
    reward = "" if pic.reward is None else f" — reward {_number(pic.reward)}"
    title = f' title="{html.escape(pic.title)}"' if pic.title else ""
    return f"<figure{title}>{image}<figcaption>{html.escape(pic.caption)}{reward}</figcaption></figure>"


def _gallery(title: str, gallery: list[tuple[str, list[Any]]]) -> str:
    if not gallery:
        return ""
    parts = [f"<h2>{html.escape(title)}</h2><p class=note>Each answer drawn again as a plan at "
             f"{REPORT_PIXELS} px; the first sample of each room.</p>"]
    for room_id, pictures in gallery:
        parts.append(f"<h3>room {html.escape(room_id)}</h3><div class=row>")
        parts.extend(_picture_html(pic) for pic in pictures)
        parts.append("</div>")
    return "".join(parts)


def _training(stats: list[Any], updates: list[dict[str, Any]]) -> list[str]:
    from . import report_data as data
    from . import report_plots as plots

    heads = ["iteration", "turn", "samples", *[HEADINGS.get(c, c) for c in data.CURVE_COLUMNS], "identical groups",
             "flat groups"]
    rows = [[str(s.iteration), str(s.turn), str(s.rows), *[_number(s.means[c]) for c in data.CURVE_COLUMNS],
             f"{s.groups.share(s.groups.identical):.0%}", f"{s.groups.share(s.groups.flat):.0%}"] for s in stats]
    images = [_img(plots.reward_curve(stats), "mean reward per iteration"),
              _img(plots.component_curves(stats), "reward components per iteration")]
    curve = plots.update_curves(updates)
    if curve is not None:
        images.append(_img(curve, "update metrics"))
    return ["<h2>Training</h2>", _table(heads, rows), "<p class=note>↓ lower is better; unsupported: share of "
            "furniture floating or sunk; identical / flat groups: share of groups whose samples are all the same "
            "text / whose rewards are all equal (no GRPO signal); means leave out failed samples and judgements</p>", "<div class=plots>" + "".join(images) + "</div>"]


def _refinement(gains: list[Any]) -> list[str]:
    from .report_turns import RATIO_COLUMNS

    heads = ["iteration", "turn", "trajectories", "reward", "gain over turn 1", "± s.e.",
             *[HEADINGS[c] for c in RATIO_COLUMNS]]
    rows = [[str(g.iteration), str(g.turn), str(g.trajectories), _number(g.reward),
             _number(g.gain) if g.turn > 1 else "–", _number(g.gain_sem), *[_number(g.ratios[c]) for c in RATIO_COLUMNS]]
            for g in gains]
    return ["<h2>Refinement within trajectories</h2>", _table(heads, rows),
            "<p class=note>Does a turn improve on the trajectory's first layout? Each iteration's turns are measured "
            "on the same trajectories (a usable row at every turn, paired by trajectory id); gain: mean over them of "
            "(reward at this turn − reward at turn 1), ± its standard error over trajectories</p>"]


def _held_out(points: list[Any]) -> list[str]:
    from . import report_plots as plots

    rows = [[str(p.iteration), str(p.rooms), _number(p.reward), _number(p.sem)] for p in points]
    return ["<h2>Held-out reward during training</h2>",
            _table(["iteration", "rooms", "reward", "± s.e."], rows),
            "<p class=note>The recipe's eval rooms and options, every <code>eval_every</code> iterations "
            "(iteration 0: the start model); reward: mean over rooms of each room's mean, ± its standard error "
            "over rooms</p>", "<div class=plots>" + _img(plots.held_out_curve(points), "held-out reward per "
                                                         "iteration") + "</div>"]


def _evaluation_cell(row: dict[str, str], column: str) -> str:
    if column == "model":
        return f'<td class=model title="{html.escape(row.get("path", ""))}">{html.escape(row["model"])}</td>'
    if column.startswith("delta") or column == "rooms_up":
        if not row.get("delta_reward"):
            return "–"
        if column == "rooms_up":
            return f"{_number(row['rooms_up'])}/{_number(row.get('rooms_paired', ''))}"
    return _number(row[column])


def _evaluation(evals: list[dict[str, str]]) -> list[str]:
    heads = {"model": "model", "rooms": "rooms", "samples": "samples"}
    heads |= {key: heading for key, heading in HEADINGS.items() if key != "format_reward"} | {"reward_sem": "± s.e."}
    if any(r.get("delta_reward") for r in evals):  # eval --compare-to: the baseline row has none
        heads |= {"delta_reward": "Δ reward vs baseline (per room)", "delta_reward_se": "± s.e.", "rooms_up": "rooms up"}
    cols = [c for c in heads if c in evals[0]]
    rows = [[_evaluation_cell(r, c) for c in cols] for r in evals]
    paths = "; ".join(f"<b>{html.escape(r['model'])}</b>: <code>{html.escape(r['path'])}</code>"
                      for r in evals if r.get("path") and r["path"] != r["model"])
    return ["<h2>Evaluation on held-out rooms</h2>", _table([heads[c] for c in cols], rows),
            f"<p class=note>{paths}</p>" if paths else ""]


def build_report(run_dir: Path, rooms: int = 2, extra: str = "") -> str:
    """The HTML text of the report of `run_dir`; `extra` is appended (the 3D section, see report_3d.py)."""
    from . import report_data as data
    from .report_turns import turn_gains

    stats = data.turn_stats(run_dir)
    evals = data.eval_table(run_dir)
    parts = [f"<h1>metaspatial run report</h1><p class=sub>{html.escape(str(run_dir))}</p>"]
    if stats:
        parts += _training(stats, data.update_metrics(run_dir))
        gains = turn_gains(run_dir)
        parts += _refinement(gains) if gains else []
    elif not evals:
        parts.append("<p>No scored rollouts in this run yet.</p>")
    held_out = data.held_out_curve(run_dir)
    if held_out:
        parts += _held_out(held_out)
    if evals:
        parts += _evaluation(evals)
    parts.append(_gallery("Renders across iterations and turns", data.training_gallery(run_dir, rooms)))
    parts.append(_gallery("Held-out renders per evaluated model", data.eval_gallery(run_dir, rooms)))
    parts.append(extra)
    body = "\n".join(p for p in parts if p)
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>metaspatial report: "
            f"{html.escape(run_dir.name)}</title><style>{STYLE}</style></head><body>{body}</body></html>\n")


def register(app: typer.Typer) -> None:
    @app.command("report", rich_help_panel="Tools")
    def report_command(
        run_dir: Path = typer.Argument(..., help="A run directory made by `recipe run` (its workdir)."),
        output: Path = typer.Option(None, "--output", help="HTML file to write (default: RUN_DIR/report.html)."),
        rooms: int = typer.Option(2, "--rooms", min=1, help="Rooms shown in each gallery."),
    ) -> None:
        """Write a self-contained HTML report of a run: curves, tables, render galleries."""
        from .report_data import is_run

        if not run_dir.is_dir() or not is_run(run_dir):
            what = "no such directory" if not run_dir.is_dir() else "not a run directory (no _recipe/, iter-*/ or " \
                "eval/eval.csv: make one with `metaspatial recipe run`)"
            print_error(f"{run_dir}: {what}")
            raise typer.Exit(2)
        target = output or run_dir / "report.html"
        from .report_3d import section

        target.write_text(build_report(run_dir, rooms, section(run_dir, target)), encoding="utf-8")
        err_console.print(f"wrote {target}", highlight=False)
