"""`metaspatial report RUN_DIR`: one self-contained HTML page about a run.

Reward and metric curves per iteration, the update stage's logged metrics, the evaluation table,
and galleries of renders (one room across iterations and turns; one held-out room per evaluated
model). Images are embedded as base64 PNG and there is no script, so the file can be mailed,
archived or opened offline and always shows the same thing.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import typer

from .options import err_console

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1200px;color:#222;
padding:0 1rem}
h1{margin-bottom:.2rem}.sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:1rem 0;font-size:.92rem}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
.plots img{max-width:48%;margin:.3rem}
.row{display:flex;flex-wrap:wrap;gap:.8rem;margin-bottom:1.5rem}
figure{margin:0;width:220px}figure img{width:220px;border:1px solid #ddd}
figcaption{font-size:.85rem;color:#444}.missing{width:220px;height:220px;background:#eee;display:flex;
align-items:center;justify-content:center;color:#888}
"""


def _img(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _number(text: Any) -> str:
    if isinstance(text, int) or (isinstance(text, str) and text.isdigit()):
        return str(text)  # counts stay whole numbers
    try:
        return f"{float(text):.3f}"
    except (TypeError, ValueError):
        return html.escape(str(text))


def _table(heads: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in heads)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _gallery(title: str, gallery: list[tuple[str, list[Any]]]) -> str:
    if not gallery:
        return ""
    parts = [f"<h2>{html.escape(title)}</h2>"]
    for room_id, pictures in gallery:
        parts.append(f"<h3>room {html.escape(room_id)}</h3><div class=row>")
        for pic in pictures:
            reward = "" if pic.reward is None else f" — reward {_number(pic.reward)}"
            image = (_img(pic.path.read_bytes(), pic.caption) if pic.path is not None
                     else '<div class=missing>no render</div>')
            parts.append(f"<figure>{image}<figcaption>{html.escape(pic.caption)}{reward}</figcaption></figure>")
        parts.append("</div>")
    return "".join(parts)


def build_report(run_dir: Path, rooms: int = 2, extra: str = "") -> str:
    """The HTML text of the report of `run_dir`; `extra` is appended (the 3D section, see report_3d.py)."""
    from . import report_data as data
    from . import report_plots as plots

    stats = data.turn_stats(run_dir)
    updates = data.update_metrics(run_dir)
    evals = data.eval_table(run_dir)
    parts = [f"<h1>metaspatial run report</h1><p class=sub>{html.escape(str(run_dir))}</p>"]
    if stats:
        parts.append("<h2>Training</h2>")
        rows = [[s.iteration, s.turn, s.rows, *[_number(s.means[c]) for c in data.CURVE_COLUMNS]] for s in stats]
        parts.append(_table(["iteration", "turn", "samples", *data.CURVE_COLUMNS], rows))
        images = [_img(plots.reward_curve(stats), "mean reward per iteration"),
                  _img(plots.component_curves(stats), "reward components per iteration")]
        curve = plots.update_curves(updates)
        if curve is not None:
            images.append(_img(curve, "update metrics"))
        parts.append("<div class=plots>" + "".join(images) + "</div>")
    else:
        parts.append("<p>No scored rollouts in this run yet.</p>")
    if evals:
        parts.append("<h2>Evaluation on held-out rooms</h2>")
        from .eval_metrics import METRICS

        # the eval table's columns (format reward left out: the reward column already says it)
        heads = {"model": "model", "rooms": "rooms", "samples": "samples"}
        heads |= {key: heading for key, heading, _ in METRICS if key != "format_reward"} | {"reward_sem": "± s.e."}
        cols = [c for c in heads if c in evals[0]]
        parts.append(_table([heads[c] for c in cols],
                            [[_number(r[c]) if c != "model" else html.escape(r[c]) for c in cols] for r in evals]))
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
        if not run_dir.is_dir():
            err_console.print(f"[bold red]error:[/] {run_dir}: no such run directory", highlight=False)
            raise typer.Exit(2)
        target = output or run_dir / "report.html"
        from .report_3d import section

        target.write_text(build_report(run_dir, rooms, section(run_dir, target)), encoding="utf-8")
        err_console.print(f"wrote {target}", highlight=False)
