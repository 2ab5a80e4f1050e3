"""Which rows an export writes: all rows of the input, or the best-rewarded row of each room.

With `--best-per room` the rows of `--input` and of every `--candidates` dataset compete per
`room_id`: the highest finite `reward` wins, ties go to the row read first (input before candidates,
in dataset order), so a run is deterministic and sharding splits the winners, never a room.
Every row's scene and room size are checked before anything is written (responses never fail:
they are parsed, and their defects reported in the export).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from stages.core import dataset as ds
from stages.core import rows as contract
from stages.core.columns import OBJECT_SCORES, RESPONSE, SCENE_COLUMNS
from stages.core.errors import UserError
from stages.core.numbers import finite_number
from stages.core.scene import Scene, SceneError

NEEDS = [*SCENE_COLUMNS, RESPONSE]
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
    if not finite_number(value):
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
    for path, table in tables:
        table_rows = table.to_pylist()
        contract.check(table_rows, [RESPONSE, OBJECT_SCORES], path)
        for index, row in enumerate(table_rows):
            where = f"{path}, row {index}"
            scene_of(row, where)
            row[SOURCE] = str(path)
            labelled.append((where, row))
    rows = best_per_room(labelled) if best_per else [row for _, row in labelled]
    try:
        schema = pa.unify_schemas([t.schema for _, t in tables], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise UserError(f"--candidates: their columns do not match --input's ({str(err)[:200]})") from None
    return rows, schema


def scene_of(row: dict[str, Any], where: str) -> Scene:
    """The row's scene (`Scene.from_row`), which must not name an object 'floor' (a glTF node of its own)."""
    scene = Scene.from_row(row, where)
    if "floor" in scene.ids:
        raise SceneError(f"{where}, field scene: object id 'floor' clashes with the room's floor node")
    return scene

