"""The row contract's decoders: each value a row carries has exactly one, here.

Stages talk only through datasets, so a column written by one stage and read by another is an
interface: its name is defined once in `stages.core.columns` and its value decoded by one function
here; no stage parses a shared column itself. Every decoder checks the value's type and raises
`UserError` naming the dataset, row and field (exit 2), so a wrongly typed column (an integer
`image`, a `response` stored as numbers, a `turn` of 1.5) stops a stage before it writes anything
instead of silently scoring 0 or crashing inside a model.

Decoders: the scene `Scene.from_row` (cached per scene), the answer `answer`, earlier turns
`history`, score feedback `feedback`, per-object scores `object_scores`, and the scalar columns
`response`, `turn`, `image`, `token_ids` and `reference_layout`; `check` runs them over a dataset up front.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .answer import ParsedAnswer, parse_answer
from .columns import (
    FEEDBACK,
    HISTORY,
    IMAGE,
    OBJECT_SCORES,
    REFERENCE_LAYOUT,
    RENDER_PREFIX,
    RESPONSE,
    RESPONSE_TOKEN_IDS,
    SCENE,
    SYSTEM_PROMPT,
    TURN,
)
from .errors import UserError, where
from .numbers import finite_number
from .scene import Scene

# ---------------------------------------------------------------- decoders


def _json(value: Any, at: str) -> Any:
    """A JSON column's value: a JSON string (None when empty), or an Arrow list/struct as is."""
    if not isinstance(value, str):
        return value
    if not value.strip():
        return None
    try:
        return json.loads(value)
    except (json.JSONDecodeError, RecursionError) as err:
        raise UserError(f"{at}: not valid JSON ({str(err)[:120]})") from None


def response(value: Any, at: str = RESPONSE) -> str | None:
    """The model's text; None for a missing one (a failed request), which scores as no answer."""
    if value is not None and not isinstance(value, str):
        raise UserError(f"{at}: must be text (the model's response), got {type(value).__name__} {value!r:.60}")
    return value


def system_prompt(value: Any, at: str = SYSTEM_PROMPT) -> str | None:
    """The row's system message; None (or empty, or NaN: pandas' missing value) for the chat template's default."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is not None and not isinstance(value, str):
        raise UserError(f"{at}: must be text (a system message) or null, got {type(value).__name__} {value!r:.60}")
    return value or None


def answer(row: dict[str, Any], ids: list[str]) -> ParsedAnswer:
    """The row's answer parsed against the scene's ids: the one parse that render, score and eval
    share (`stages.core.answer`: never raises on any text)."""
    return parse_answer(response(row.get(RESPONSE)), ids)


def turn(value: Any, at: str = TURN) -> int | None:
    """The sample's turn (rollout counts from 1), None where the dataset has no turns. A whole float
    (1.0: pandas stores an integer column with gaps as floats) is read as that integer."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"{at}: must be a whole number of 0 or more, got {value!r:.60}")
    return value


def image(value: Any, at: str = IMAGE) -> str | None:
    """An image reference: a path relative to the dataset, or None for no image."""
    if value is not None and not isinstance(value, str):
        raise UserError(f"{at}: must be an image path (text), got {type(value).__name__} {value!r:.60}")
    return value or None


def token_ids(value: Any, at: str = RESPONSE_TOKEN_IDS, vocab_size: int | None = None) -> list[int] | None:
    """The sampled token ids, each in [0, vocab_size) when the vocabulary is known; None if absent."""
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        raise UserError(f"{at}: must be a list of whole token ids, got {type(value).__name__} {value!r:.60}")
    bad = next((t for t in value if t < 0 or (vocab_size is not None and t >= vocab_size)), None)
    if bad is not None:
        limit = f"the tokenizer's vocabulary of {vocab_size}" if vocab_size is not None else "0 or more"
        raise UserError(f"{at}: token id {bad} is outside {limit} (sampled with another model?)")
    return list(value)


def feedback(value: Any, at: str = FEEDBACK) -> dict[str, Any] | None:
    """Score's feedback on one layout (see `stages.core.turns`); None when there is none."""
    data = _json(value, at)
    if data is None:
        return None
    if not isinstance(data, dict):
        raise UserError(f"{at}: must be a JSON object of problems, got {type(data).__name__}")
    return data


def object_scores(value: Any, at: str = OBJECT_SCORES) -> dict[str, dict[str, float]]:
    """Score's per-object scores {id: {measure: number}}; {} when the layout was not measured.
    A value that is not a finite number carries no score and is left out."""
    data = _json(value, at)
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise UserError(f"{at}: must be a JSON object {{id: {{measure: number}}}}")
    return {str(oid): {str(k): float(v) for k, v in scores.items() if finite_number(v)} for oid, scores in data.items()}


def reference_layout(value: Any, at: str = REFERENCE_LAYOUT) -> dict[str, list[float]] | None:
    """A known layout of the scene {id: [x, y, z]} (gen-prompts writes it when the source has one);
    None when the row has none."""
    data = _json(value, at)
    if data is None:
        return None
    if not isinstance(data, dict) or not all(
            isinstance(v, (list, tuple)) and len(v) == 3 and all(finite_number(c) for c in v) for v in data.values()):
        raise UserError(f"{at}: must be a JSON object {{id: [x, y, z]}} of finite numbers")
    return {str(k): [float(c) for c in v] for k, v in data.items()}


HISTORY_KEYS = ("turn", "response", "reward", "feedback", "image")


def history(value: Any, at: str = HISTORY) -> list[dict[str, Any]]:
    """The trajectory's earlier turns, oldest first, each `{turn, response, reward, feedback, image}`
    decoded by the decoders above; [] for turn 1."""
    data = _json(value, at)
    if data is None:
        return []
    if not isinstance(data, list):
        raise UserError(f"{at}: must be a JSON list of earlier turns, got {type(data).__name__}")
    entries = []
    for k, entry in enumerate(data):
        here = f"{at}[{k}]"
        if not isinstance(entry, dict):
            raise UserError(f"{here}: must be an object {{{', '.join(HISTORY_KEYS)}}}")
        reward = entry.get("reward")
        if reward is not None and not finite_number(reward):
            raise UserError(f"{here}.reward: must be a finite number or null, got {reward!r:.60}")
        entries.append({**entry, "turn": turn(entry.get("turn"), f"{here}.turn"),
                        "response": response(entry.get("response"), f"{here}.response"),
                        "feedback": feedback(entry.get("feedback"), f"{here}.feedback"),
                        "image": image(entry.get("image"), f"{here}.image")})
    return entries


# ---------------------------------------------------------------- checking a dataset up front


DECODERS: dict[str, Callable[[Any, str], Any]] = {
    RESPONSE: response, TURN: turn, IMAGE: image, HISTORY: history, FEEDBACK: feedback,
    OBJECT_SCORES: object_scores, REFERENCE_LAYOUT: reference_layout, RESPONSE_TOKEN_IDS: token_ids,
    SYSTEM_PROMPT: system_prompt,
}
"""The decoder of each contract column (value, location) -> typed value, by column name;
`render_<view>` columns are images."""


def decoder(column: str) -> Callable[[Any, str], Any] | None:
    return image if column.startswith(RENDER_PREFIX) else DECODERS.get(column)


def check(rows: Iterable[dict[str, Any]], columns: Iterable[str], directory: Path | str | None,
          first_index: int = 0) -> None:
    """Decode `columns` of every row with their decoders (`scene` with the room size, through
    `Scene.from_row`); the first bad value raises UserError naming the dataset, row and field.
    Stages call this before anything is written."""
    wanted = list(dict.fromkeys(columns))
    checked = [(c, d) for c in wanted if (d := decoder(c)) is not None]
    for index, row in enumerate(rows, start=first_index):
        if SCENE in wanted and SCENE in row:
            Scene.from_row(row, where(directory, index))
        for column, decode in checked:
            if column in row:
                decode(row[column], where(directory, index, column))
