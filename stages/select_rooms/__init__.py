"""Draw one iteration's rooms from a prompt dataset: every room once per epoch, reshuffled each epoch.

The paper takes each GRPO step on a few freshly drawn rooms rather than on the whole prompt set;
a recipe with `rooms_per_iteration` runs this stage before each iteration's rollout. Iteration i
gets the rooms at positions (i-1)·k … i·k-1 of an endless sequence of shuffles of the training
rooms (seeded by --seed and the epoch), so every room comes round before any repeats, and the
draw depends only on (input, seed, k, i): a re-run, `recipe plan` and a Slurm chain draw the same.
The output is the selected input rows, unchanged, in drawn order.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import Field

from stages.core import dataset as ds
from stages.core.config import StageConfig
from stages.core.errors import UserError
from stages.core.stage import Context, Stage, run_stage


class Config(StageConfig):
    rooms: int | None = Field(default=None, ge=1)
    """Rooms to draw for this iteration (at most the number of rooms in --split); none: every room of
    --split, in input order (a recipe without rooms_per_iteration trains on these)."""
    iteration: int = Field(default=1, ge=1)
    """Which iteration's rooms to draw (1-based)."""
    seed: int = 0
    """Seed of the shuffles."""
    split: str = "train"
    """Draw only rows whose `split` column has this value; '' draws from every row."""


def draw(count: int, rooms: int, iteration: int, seed: int) -> list[int]:
    """Indices (into `count` rooms) of iteration `iteration`'s `rooms` rooms. Epoch e is a shuffle
    seeded by (seed, e); a draw that runs past the end of an epoch continues into the next one, whose
    shuffle puts the rooms already in this draw last, so no draw holds a room twice."""
    if rooms > count:
        raise ValueError(f"cannot draw {rooms} different rooms from {count}")
    epoch = 0
    queue: list[int] = []
    chosen: list[int] = []
    for _ in range(iteration):
        chosen = []
        while len(chosen) < rooms:
            if not queue:
                order = list(range(count))
                random.Random(f"{seed}/{epoch}").shuffle(order)
                queue = sorted(order, key=lambda i: i in chosen)  # stable: keeps the shuffle otherwise
                epoch += 1
            chosen.append(queue.pop(0))
    return chosen


def selected_rows(cfg: Config) -> tuple[list[dict[str, Any]], pa.Schema]:
    """This iteration's rows, and the input's schema (the output's: rows pass through unchanged)."""
    if cfg.input is None:
        raise UserError("select-rooms: --input is required (a prompt dataset, e.g. gen-prompts' output)")
    table = ds.read_table(cfg.input)
    rows = table.to_pylist()
    if cfg.split and rows and "split" in rows[0]:
        rows = [r for r in rows if r.get("split") == cfg.split]
    if cfg.rooms is None:
        if not rows:
            raise UserError(f"{cfg.input}: no rooms of split {cfg.split!r}")
        return rows, table.schema
    if cfg.rooms > len(rows):
        raise UserError(f"{cfg.input}: --rooms {cfg.rooms} is more than its {len(rows)} room(s)"
                        f"{f' of split {cfg.split!r}' if cfg.split else ''}")
    return [rows[i] for i in draw(len(rows), cfg.rooms, cfg.iteration, cfg.seed)], table.schema


def run(cfg: Config) -> Path:
    """Write this iteration's rooms (all shards see the same draw and write their slice of it)."""
    if not isinstance(cfg, Config):
        raise UserError("select-rooms: expected a select_rooms.Config")
    rows, schema = selected_rows(cfg)

    def make_processor(cfg: Config, ctx: Context):
        def process(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
            ctx.advance(len(batch))
            return batch

        return process

    stage = Stage(name="select-rooms", config_class=Config, adds=list(schema), make_processor=make_processor,
                  source_rows=lambda _: rows, unit="rooms")
    return run_stage(stage, cfg)
