"""From input rows to sampling requests and back to output rows: ids, groups, turns, history.

Turn 1 reads prompt rows; each becomes `n` samples of one group (`group_id` = prompt id + turn),
each sample the start of a trajectory. Turn k+1 reads turn k's scored rows; each row (one
trajectory) becomes `n` continuations (default 1) whose prompt adds the previous answer, its reward
and feedback and shows its render. A group is always a set of samples of one identical prompt (what
GRPO compares); a continuation keeps its trajectory id, branches get `<trajectory>.<i>`.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

from stages.core import columns, rows, vlm
from stages.core.columns import (
    FEEDBACK,
    HISTORY,
    IMAGE,
    PROMPT,
    PROMPT_ID,
    RESPONSE,
    REWARD,
    SYSTEM_PROMPT,
    TRAJECTORY_ID,
    TURN,
    is_turn_column,
)
from stages.core.errors import UserError
from stages.core.paths import confined

from .guided import row_grammar


def dropped_columns(input_columns: list[str]) -> list[str]:
    """The input columns a new turn does not carry: last turn's scores and renders (any view)."""
    return [c for c in input_columns if is_turn_column(c)]


TURN1_NEEDS = [PROMPT_ID, PROMPT]
FOLLOWUP_NEEDS = [PROMPT_ID, PROMPT, TRAJECTORY_ID, TURN, RESPONSE, REWARD, FEEDBACK]


def samples_per_row(cfg: Any) -> int:
    """--n, else 4 for turn 1 (a GRPO group) and 1 for later turns (continue each trajectory)."""
    return cfg.n if cfg.n is not None else (4 if cfg.turn == 1 else 1)


def render_column(cfg: Any) -> str:
    return columns.render_column(cfg.render_view)


def needed_columns(cfg: Any) -> list[str]:
    return TURN1_NEEDS if cfg.turn == 1 else FOLLOWUP_NEEDS


def history_of(row: dict[str, Any], cfg: Any) -> list[dict[str, Any]]:
    """The trajectory's turns so far; for turn k+1, turn k's row appended as the latest entry.
    With --no-images no turn shows an image."""
    if cfg.turn == 1:
        return []
    history = [*rows.history(row.get(HISTORY)), {
        "turn": rows.turn(row.get(TURN)), "response": rows.response(row.get(RESPONSE)) or "",
        "reward": row.get(REWARD), "feedback": rows.feedback(row.get(FEEDBACK)),
        "image": rows.image(row.get(render_column(cfg))),
        **({"followup": "paper"} if getattr(cfg, "followup", "feedback") == "paper" else {}),
    }]
    return history if cfg.images else [{**entry, "image": None} for entry in history]


def room_image(row: dict[str, Any], cfg: Any) -> Any:
    """The room image the prompt shows (None with --no-images)."""
    return rows.image(row.get(IMAGE)) if cfg.images else None


def check_images(row: dict[str, Any], cfg: Any, directory: Path, at: str) -> None:
    """Every image the row's prompt shows is a file inside the input dataset."""
    field = "image" if cfg.turn == 1 else f"{render_column(cfg)} (or image, history)"
    for ref in vlm.message_images(vlm.build_messages(row["prompt"], room_image(row, cfg), history_of(row, cfg))):
        path = confined(directory, ref, f"{at}, field {field}")
        if not path.is_file():
            raise UserError(f"{at}, field {field}: {str(ref)[:200]!r} is not a file in {directory}")


def check_row(row: dict[str, Any], index: int, cfg: Any, directory: Path) -> None:
    """Fail on a row this turn cannot use, naming it (called on every row before anything runs)."""
    at = f"{directory}, row {index}"
    if not isinstance(row.get(PROMPT), str) or not row[PROMPT].strip():
        raise UserError(f"{at}, field prompt: must be a non-empty string")
    if row.get(PROMPT_ID) is None:
        raise UserError(f"{at}, field prompt_id: missing")
    if cfg.turn == 1:
        rows.check([row], [IMAGE, SYSTEM_PROMPT], directory, index)
    else:
        rows.check([row], [IMAGE, SYSTEM_PROMPT, TURN, RESPONSE, HISTORY, FEEDBACK, render_column(cfg)], directory,
                   index)
        if row[TURN] != cfg.turn - 1:
            raise UserError(f"{at}, field turn: is {row[TURN]!r}, but --turn {cfg.turn} continues turn "
                            f"{cfg.turn - 1} (pass the scored dataset of turn {cfg.turn - 1})")
    check_images(row, cfg, directory, at)
    if cfg.guided:
        row_grammar(row, cfg.guided_think_chars, at)


def request_seed(base_seed: int, sample_id: str) -> int:
    return zlib.crc32(f"{base_seed}/{sample_id}".encode()) & 0x7FFFFFFF


def sample_ids(row: dict[str, Any], cfg: Any) -> list[dict[str, Any]]:
    """The identity columns of the row's `n` samples."""
    n, turn = samples_per_row(cfg), cfg.turn
    if turn == 1:
        group = f"{row['prompt_id']}-t1"
        trajectories = [f"{row['prompt_id']}-s{i}" for i in range(n)]
    else:
        previous = str(row["trajectory_id"])
        group = f"{previous}-t{turn}"
        trajectories = [previous] if n == 1 else [f"{previous}.{i}" for i in range(n)]
    return [{"sample_id": f"{t}-t{turn}", "group_id": group, "sample_index": i, "turn": turn, "trajectory_id": t}
            for i, t in enumerate(trajectories)]


def stored_messages(messages: list[dict[str, Any]]) -> str:
    """The chat as JSON, image payloads as their dataset-relative paths."""
    return json.dumps(messages, ensure_ascii=False)


def with_images(messages: list[dict[str, Any]], dataset_dir: Path | None) -> list[dict[str, Any]]:
    """A copy of the chat whose image references are opened as PIL images."""
    return [{**m, "content": [{**p, "image": vlm.open_image(dataset_dir, p["image"])} if p.get("type") == "image"
                              else p for p in m["content"]]} if isinstance(m["content"], list) else m
            for m in messages]
