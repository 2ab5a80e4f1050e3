"""Which rows an export writes: all rows of the input, or the best-rewarded row of each room.

With `--best-per room` the rows of `--input` and of every `--candidates` dataset compete per
`room_id`: the highest finite `reward` wins, ties go to the row read first (input before candidates,
in dataset order), so a run is deterministic and sharding splits the winners, never a room.
Every row's scene and room size are checked before anything is written (responses never fail:
they are parsed, and their defects reported in the export).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa

from stages.core import dataset as ds
from stages.core.errors import UserError
from stages.core.scene import Scene, SceneError

NEEDS = ["scene", "response", "room_x", "room_y", "room_z"]
BEST_NEEDS = ["room_id", "reward"]
SOURCE = "_export_source"
"""Private key: the dataset a row was read from (its images are linked from there); never written."""


def _needs(best_per: str | None) -> list[str]:
    return NEEDS + (BEST_NEEDS if best_per else [])


def read_dataset(path: Path, best_per: str | None) -> pa.Table:
    table = ds.read_table(path)
    missing = [c for c in _needs(best_per) if c not in table.column_names]
    if missing:
        hint = ("export needs layouts: a rollout, render or score dataset"
                if set(missing) & set(NEEDS) else "--best-per room needs a scored dataset (run `metaspatial score`)")
        raise UserError(f"{path}: missing column(s) {', '.join(missing)} ({hint}; found "
                        f"{', '.join(table.column_names) or 'none'})")
    return table


def _reward(row: dict[str, Any], where: str) -> float:
    value = row.get("reward")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{where}, field reward: expected a finite number, got {value!r}")
    return float(value)


def best_per_room(labelled: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The highest-reward row of each room (first wins ties), rooms in order of first appearance."""
    best: dict[str, tuple[float, dict[str, Any]]] = {}
    for where, row in labelled:
        reward = _reward(row, where)
        room = str(row["room_id"])
        if room not in best or reward > best[room][0]:
            best[room] = (reward, row)
    return [row for _, row in best.values()]


def select_rows(input_dir: Path, candidates: list[Path], best_per: str | None) -> tuple[list[dict[str, Any]], pa.Schema]:
    """The rows to export (each tagged with its source dataset) and the schema of their columns."""
    tables = [(path, read_dataset(path, best_per)) for path in [input_dir, *candidates]]
    labelled: list[tuple[str, dict[str, Any]]] = []
    cache: dict[tuple, Scene] = {}
    for path, table in tables:
        for index, row in enumerate(table.to_pylist()):
            where = f"{path}, row {index}"
            scene_of(row, cache, where)
            row[SOURCE] = str(path)
            labelled.append((where, row))
    rows = best_per_room(labelled) if best_per else [row for _, row in labelled]
    schema = pa.unify_schemas([t.schema for _, t in tables], promote_options="permissive")
    return rows, schema


def scene_of(row: dict[str, Any], cache: dict[tuple, Scene], where: str) -> Scene:
    """The row's scene (decoded once per distinct scene and room size); errors name `where`."""
    key = (row["scene"], row["room_x"], row["room_y"], row["room_z"])
    if key not in cache:
        try:
            graph = json.loads(row["scene"]) if isinstance(row["scene"], str) else row["scene"]
        except json.JSONDecodeError as err:
            raise SceneError(f"{where}, field scene: not valid JSON ({err.msg})") from None
        size = {"x": row["room_x"], "y": row["room_y"], "z": row["room_z"]}
        scene = Scene.from_idesign(graph, size, where=f"{where}, field scene")
        if "floor" in scene.ids:
            raise SceneError(f"{where}, field scene: object id 'floor' clashes with the room's floor node")
        cache[key] = scene
    return cache[key]

