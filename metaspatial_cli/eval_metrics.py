"""The evaluation table: per model, the metrics layout papers report, from a scored dataset.

Format validity and object-set match are read from each answer with the same parser the score
stage uses (so they do not depend on the reward preset's format weights); the physics, judge and
reward columns are the score stage's own columns, averaged over rows.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stages.core import dataset as ds
from stages.core.answer import VALID
from stages.core.failures import count_failures, describe, failure
from stages.core.rows import answer
from stages.core.scene import Scene

# (column in the table, heading, score column averaged or None for answer-derived metrics)
METRICS = [
    ("format_valid", "format ok", None),
    ("object_set_match", "objects ok", None),
    ("collision_ratio", "collide↓", "collision_ratio"),
    ("out_of_bounds_ratio", "outside↓", "out_of_bounds_ratio"),
    ("support_ratio", "unsupported↓", "support_ratio"),
    ("constraint_ratio", "violate↓", "constraint_ratio"),
    ("judge_score", "judge", "judge_score"),
    ("format_reward", "fmt rwd", "format_reward"),
    ("reward", "reward", "reward"),
]


def short_labels(models: Sequence[str]) -> list[str]:
    """Table names for models given without --label: the last two path parts, or more where two
    models would share a name (`iter-003/update`, not a 60-character absolute path)."""
    parts = [Path(m).parts or (m,) for m in models]
    for keep in range(2, max(len(p) for p in parts) + 1):
        labels = [str(Path(*p[-keep:])) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return list(models)


def finite_mean(values: Sequence[Any]) -> float:
    """Mean of the finite numbers among `values` (missing and NaN metrics are skipped); NaN if none."""
    finite = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else float("nan")


def standard_error(values: Sequence[float | None]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if len(finite) < 2:
        return float("nan")
    mean = sum(finite) / len(finite)
    return math.sqrt(sum((v - mean) ** 2 for v in finite) / (len(finite) - 1) / len(finite))


def model_metrics(label: str, model: str, score_dir: Path) -> dict[str, Any]:
    """One table row: the model, its sample count and each metric's mean (reward also its std. error).
    Rows whose sample or judgement failed (a server fault, not the model's answer) are left out of
    every mean and counted in `failed`."""
    everything = ds.read_rows(score_dir)
    rows = [r for r in everything if failure(r) is None]
    failed = count_failures(everything)
    if failed:
        from rich.console import Console

        Console(stderr=True).print(f"eval: {label}: left out {len(everything) - len(rows)} row(s) whose sample or "
                                   f"judgement failed ({describe(failed)})", highlight=False, markup=False)
    valid, matched = [], []
    for row in rows:
        parsed = answer(row, Scene.from_row(row).ids)
        valid.append(float(parsed.format_level == VALID))
        matched.append(float(not (parsed.missing or parsed.unknown or parsed.duplicates)))
    out: dict[str, Any] = {"model": label, "path": model, "rooms": len({r["room_id"] for r in rows}),
                           "samples": len(rows), "format_valid": finite_mean(valid), "object_set_match": finite_mean(matched)}
    for key, _, column in METRICS:
        if column is not None:
            out[key] = finite_mean([r.get(column) for r in rows])
    out["reward_sem"] = standard_error([r.get("reward") for r in rows])
    out["failed"] = len(everything) - len(rows)
    return out


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def _display(table: list[dict[str, Any]], compare_to: str | None) -> tuple[list[str], list[list[str]]]:
    """The headings and cell texts of the table, as printed and as written to eval.md."""
    heads = ["model", "rooms", "samples", *[h for _, h, _ in METRICS]]
    if compare_to is not None:
        heads += [f"Δ reward vs {compare_to} (per room)", "n up"]
    rows = []
    for row in table:
        cells = [row["model"], row["rooms"], row["samples"], *[row[k] for k, _, _ in METRICS]]
        cells[-1] = f"{_cell(row['reward'])} ± {_cell(row['reward_sem'])}"
        if compare_to is not None:
            paired = row["rooms_paired"] is not None
            cells += [f"{_cell(row['delta_reward'])} ± {_cell(row['delta_reward_se'])}" if paired else "–",
                      f"{row['rooms_up']}/{row['rooms_paired']}" if paired else "–"]
        rows.append([_cell(c) for c in cells])
    return heads, rows


def write_tables(table: list[dict[str, Any]], out: Path, compare_to: str | None = None) -> None:
    """eval.csv (every column, full precision) and eval.md (the printed table)."""
    fields = list(table[0])
    tmp = out / ".eval.csv.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(table)
    heads, rows = _display(table, compare_to)
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    (out / "eval.md").write_text("\n".join(lines) + "\n")
    tmp.replace(out / "eval.csv")  # last: eval.csv marks a complete evaluation


def print_table(table: list[dict[str, Any]], cfg: Any) -> None:
    """The table on stdout: headers never cut and numbers never wrapped (a long model name folds)."""
    from rich import box
    from rich.table import Table

    from stages.core.console import make_console

    heads, rows = _display(table, cfg.compare_to)
    caption = ("format ok: share of exact answers; objects ok: every object placed once; ↓ lower is better"
               + (f"; Δ: mean ± s.e. over the rooms both rows have of each room's mean reward minus "
                  f"{cfg.compare_to}'s; n up: rooms where it is > 0" if cfg.compare_to is not None else ""))
    view = Table(title=f"held-out rooms: {cfg.rooms or 'made by gen-prompts'} (split {cfg.split or 'all'}), n={cfg.n}",
                 caption=caption, box=box.SIMPLE_HEAD, show_edge=False, title_justify="left", caption_justify="left")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
    for i, heading in enumerate(heads):
        view.add_column(heading, justify="left" if i == 0 else "right", no_wrap=True, min_width=widths[i])
    for cells in rows:
        view.add_row(*cells)
    console = make_console(stderr=False)
    console.width = max(console.width, sum(widths) + 3 * len(widths))  # a narrow terminal wraps lines, not cells
    console.print(view)
    make_console().print(f"wrote {cfg.output / 'eval.csv'} and {cfg.output / 'eval.md'}", highlight=False)
