"""What a report shows, gathered from a run directory laid out by `recipe run`.

Everything is read from the datasets themselves (score datasets keep the render columns), so a
report can be made of a run that is still going or was assembled by hand with the same layout.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.core import dataset as ds
from stages.core.collapse import Collapse, collapse
from stages.core.errors import UserError
from stages.core.failures import failure

from .eval_metrics import finite_mean, short_labels, standard_error
from .eval_paired import room_rewards

TURN_DIR = re.compile(r"^iter-(\d+)/turn-(\d+)$")
HELD_OUT_DIR = re.compile(r"^iter-(\d+)$")
CURVE_COLUMNS = ("reward", "format_reward", "collision_ratio", "out_of_bounds_ratio", "support_ratio",
                 "constraint_ratio", "judge_score")
IMAGE_COLUMNS = ("render_perspective", "render_topdown")


@dataclass
class TurnStats:
    iteration: int
    turn: int
    directory: Path
    rows: int
    means: dict[str, float] = field(default_factory=dict)
    """Means over the rows whose sample and judgement did not fail (stages.core.failures)."""
    groups: Collapse = field(default_factory=lambda: Collapse(0, 0, 0))
    """Groups with identical samples or zero reward spread (stages.core.collapse)."""


@dataclass
class Picture:
    caption: str
    path: Path | None
    reward: float | None
    row: dict[str, Any] = field(default_factory=dict)  # to draw the layout again at the report's size
    title: str = ""  # shown on hover: the model's path in the eval gallery


def is_run(run_dir: Path) -> bool:
    """Whether `run_dir` looks like a workdir of `recipe run` (or one laid out the same way by hand)."""
    return ((run_dir / "_recipe").is_dir() or (run_dir / "recipe.log").is_file()
            or any(run_dir.glob("iter-*/turn-*")) or (run_dir / "eval" / "eval.csv").is_file())


def dataset_dirs(run_dir: Path, stage: str) -> list[tuple[int, int, Path]]:
    found = []
    for path in sorted(run_dir.glob(f"iter-*/turn-*/{stage}")):
        match = TURN_DIR.match(path.parent.relative_to(run_dir).as_posix())
        if match and ds.read_manifest(path) is not None:
            found.append((int(match.group(1)), int(match.group(2)), path))
    return found


def readable_rows(directory: Path) -> list[dict[str, Any]]:
    try:
        return ds.read_rows(directory)
    except UserError:  # a dataset still being written has no parts yet: show the rest of the run
        return []


def turn_stats(run_dir: Path) -> list[TurnStats]:
    """Mean reward and components of every scored (iteration, turn) of the run."""
    stats = []
    for iteration, turn, path in dataset_dirs(run_dir, "score"):
        rows = readable_rows(path)
        if rows:
            usable = [r for r in rows if failure(r) is None]
            means = {c: finite_mean([r.get(c) for r in usable]) for c in CURVE_COLUMNS}
            stats.append(TurnStats(iteration, turn, path, len(rows), means, collapse(rows)))
    return stats


@dataclass
class HeldOut:
    """The held-out reward of the model after `iteration` (0: the start), from a recipe's `eval_every`."""

    iteration: int
    rooms: int
    reward: float
    """Mean over rooms of each room's mean reward."""
    sem: float
    """Standard error of that mean over rooms (a room's samples are not independent draws)."""


def held_out_curve(run_dir: Path) -> list[HeldOut]:
    """Every complete `iter-NNN/eval` (eval.csv written) of the run, in iteration order."""
    points = []
    for path in sorted(run_dir.glob("iter-*/eval/model-1/score")):
        match = HELD_OUT_DIR.match(path.parents[2].name)
        if not match or not (path.parents[1] / "eval.csv").is_file():
            continue
        means = list(room_rewards(readable_rows(path)).values())
        if means:
            points.append(HeldOut(int(match.group(1)), len(means), finite_mean(means), standard_error(means)))
    return points


def update_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """Every update step's logged metrics, with its iteration, in training order."""
    records = []
    for path in sorted(run_dir.glob("iter-*/update/metrics.jsonl")):
        iteration = int(path.parent.parent.name.split("-")[1])
        for line in path.read_text().splitlines():
            if line.strip():
                try:
                    records.append({"iteration": iteration, **json.loads(line)})
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash
    return records


def eval_table(run_dir: Path) -> list[dict[str, str]]:
    """eval.csv's rows; a model evaluated without --label (its name is its path) gets a short name."""
    path = run_dir / "eval" / "eval.csv"
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    short = short_labels([r.get("path") or r["model"] for r in rows])
    return [{**r, "model": s if r["model"] == r.get("path") else r["model"]} for r, s in zip(rows, short, strict=True)]


def _picture(directory: Path, row: dict[str, Any], caption: str, title: str = "") -> Picture:
    stored = next((directory / row[c] for c in IMAGE_COLUMNS
                   if ds.is_image_ref(row.get(c)) and (directory / row[c]).is_file()), None)
    return Picture(caption, stored, row.get("reward"), row, title)


def _first_sample(rows: list[dict[str, Any]], room_id: str) -> dict[str, Any] | None:
    mine = [r for r in rows if r.get("room_id") == room_id]
    return min(mine, key=lambda r: (r.get("sample_index") or 0, str(r.get("sample_id")))) if mine else None


def training_gallery(run_dir: Path, rooms: int) -> list[tuple[str, list[Picture]]]:
    """For the first `rooms` rooms: the first sample's render at every iteration and turn."""
    dirs = dataset_dirs(run_dir, "score") or dataset_dirs(run_dir, "render")
    tables = [(it, turn, path, readable_rows(path)) for it, turn, path in dirs]
    tables = [t for t in tables if t[3]]
    if not tables:
        return []
    room_ids = list(dict.fromkeys(r["room_id"] for r in tables[0][3]))[:rooms]
    gallery = []
    for room_id in room_ids:
        pictures = []
        for iteration, turn, path, rows in tables:
            row = _first_sample(rows, room_id)
            if row is not None:
                pictures.append(_picture(path, row, f"iteration {iteration}, turn {turn}"))
        gallery.append((room_id, pictures))
    return gallery


def eval_gallery(run_dir: Path, rooms: int) -> list[tuple[str, list[Picture]]]:
    """For the first `rooms` held-out rooms: each evaluated model's render side by side."""
    table = eval_table(run_dir)
    dirs = sorted((run_dir / "eval").glob("model-*/score"), key=lambda p: int(p.parent.name.split("-")[1]))
    tables = [(path, readable_rows(path)) for path in dirs]
    tables = [t for t in tables if t[1]]
    if not tables:
        return []
    room_ids = list(dict.fromkeys(r["room_id"] for r in tables[0][1]))[:rooms]
    gallery = []
    for room_id in room_ids:
        pictures = []
        for directory, rows in tables:
            number = int(directory.parent.name.split("-")[1])  # model-K is the K-th row of eval.csv
            label, path = ((table[number - 1]["model"], table[number - 1].get("path", "")) if number <= len(table)
                           else (directory.parent.name, ""))  # eval.csv is written last
            row = _first_sample(rows, room_id)
            if row is not None:
                pictures.append(_picture(directory, row, label, path))
        gallery.append((room_id, pictures))
    return gallery
