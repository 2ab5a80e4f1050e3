"""Parse a model's answer into placements, whatever text the model produced.

The expected answer is `<think>…</think><answer>[{"new_object_id": id, "x": …, "y": …, "z": …}, …]</answer>`.
`parse_answer` never raises: every defect becomes a human-readable problem, and the answer gets a
`format_level` that the reward presets turn into a format score.

Decisions (documented in the README):

* A Markdown code fence inside `<answer>` (```` ```json … ``` ````, a very common model habit) is
  unwrapped and accepted without penalty: the JSON inside is what the model meant.
* With several `<answer>` blocks the **last** one is parsed (models that correct themselves write the
  final answer last) and the answer is flagged as a tag problem.
* Only strict JSON numbers count as coordinates: `NaN`, `Infinity`, overflowing literals (`1e999`),
  booleans, strings, nulls and nested values are each reported and dropped.
* Alternative shapes (`{"objects": [...]}`, `{id: {x, y, z}}`, `{id: [x, y, z]}`) are read so that a
  renderer can still draw them, but they are reported: the prompt asks for a list.
* `placements` holds the first valid placement of every expected id; unknown ids, duplicates and
  invalid coordinates are left out and reported.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

# format_level values, from worst to best. The presets map them to format scores.
NO_ANSWER = 0
"""No `<answer>…</answer>` block at all."""
BAD_JSON = 1
"""An answer block whose content is not JSON, or JSON of a shape that holds no placements."""
BAD_ENTRIES = 2
"""Placements were found, but some entry, coordinate or id is wrong, missing or repeated."""
BAD_TAGS = 3
"""Every object placed correctly, but the tags around it are off (no think block, extra text, …)."""
VALID = 4
"""A complete, exact answer."""

MAX_PROBLEMS = 20


@dataclass
class ParsedAnswer:
    """The outcome of parsing one answer. `error` is None exactly when the answer is fully valid."""

    placements: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    format_level: int = VALID
    has_think: bool = False
    answer_blocks: int = 0
    fenced: bool = False

    @property
    def error(self) -> str | None:
        return self.problems[0] if self.problems else None

    @property
    def valid(self) -> bool:
        return not self.problems

    def add(self, level: int, message: str) -> None:
        """Record a problem; the format level is the worst level seen."""
        self.format_level = min(self.format_level, level)
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(message)


def _blocks(text: str, open_tag: str, close_tag: str) -> list[tuple[int, int]]:
    """(start, end) spans of the contents of every complete `open…close` block, left to right.
    Plain `str.find` scanning: linear time on any input (no regex backtracking)."""
    spans: list[tuple[int, int]] = []
    pos = 0
    while True:
        start = text.find(open_tag, pos)
        if start < 0:
            return spans
        end = text.find(close_tag, start + len(open_tag))
        if end < 0:
            return spans
        spans.append((start + len(open_tag), end))
        pos = end + len(close_tag)


def _unfence(body: str) -> tuple[str, bool]:
    """Strip one Markdown code fence (```` ``` ```` or ```` ```json ````) around the whole body."""
    stripped = body.strip()
    if not stripped.startswith("```"):
        return stripped, False
    first_newline = stripped.find("\n")
    closing = stripped.rfind("```")
    if first_newline < 0 or closing <= first_newline:
        return stripped, False
    return stripped[first_newline + 1:closing].strip(), True


def _decode(body: str) -> tuple[Any, str | None]:
    """JSON as Python reads it. `NaN`/`Infinity` literals decode to floats so that the entry holding
    them is reported precisely (and the other entries still read). Returns (value, None) or (None, message)."""
    try:
        return json.loads(body), None
    except json.JSONDecodeError as err:
        return None, f"answer is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
    except (ValueError, RecursionError) as err:  # huge integer literals, absurd nesting
        return None, f"answer is not valid JSON: {str(err)[:120]}"


def _coordinate(value: Any) -> float | None:
    """A finite float from a JSON number; None for anything else (bool, str, null, NaN, ±inf, …)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _describe(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _entries(data: Any, parsed: ParsedAnswer) -> list[tuple[Any, Any]] | None:
    """The (id, coordinates) pairs in the decoded answer, or None when its shape holds none."""
    if isinstance(data, list):
        return [(_entry_id(item), item) for item in data]
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list) and v and all(isinstance(i, dict) for i in v)]
        if len(data) == 1 and lists:
            parsed.add(BAD_ENTRIES, f"answer is an object wrapping a list under {_describe(next(iter(data)))}; "
                                    "expected the list itself")
            return [(_entry_id(item), item) for item in lists[0]]
        if data and all(isinstance(v, (dict, list)) for v in data.values()):
            parsed.add(BAD_ENTRIES, "answer is an object keyed by id; expected a list of "
                                    "{\"new_object_id\", \"x\", \"y\", \"z\"} objects")
            return list(data.items())
    kind = "null" if data is None else f"{type(data).__name__} {_describe(data)}"
    parsed.add(BAD_JSON, f"answer is {kind}; expected a list of placements")
    return None


def _entry_id(item: Any) -> Any:
    return item.get("new_object_id") if isinstance(item, dict) else None


def _xyz(item: Any) -> tuple[Any, Any, Any] | None:
    if isinstance(item, dict):
        if all(k in item for k in "xyz"):
            return item["x"], item["y"], item["z"]
        return None
    if isinstance(item, list) and len(item) == 3:
        return item[0], item[1], item[2]
    return None


def _read_entries(entries: list[tuple[Any, Any]], expected: list[str], parsed: ParsedAnswer) -> None:
    known = set(expected)
    seen: set[str] = set()
    for index, (oid, item) in enumerate(entries):
        where = f"entry {index}"
        if not isinstance(oid, str):
            parsed.add(BAD_ENTRIES, f"{where}: no string \"new_object_id\" (got {_describe(item)})")
            continue
        if oid in seen:
            if oid not in parsed.duplicates:
                parsed.duplicates.append(oid)
                parsed.add(BAD_ENTRIES, f"{where}: id {oid!r} appears more than once")
            continue
        seen.add(oid)
        if oid not in known:
            parsed.unknown.append(oid)
            parsed.add(BAD_ENTRIES, f"{where}: unknown id {oid!r}")
            continue
        raw = _xyz(item)
        if raw is None:
            parsed.add(BAD_ENTRIES, f"{where} ({oid!r}): needs numbers \"x\", \"y\" and \"z\"")
            continue
        x, y, z = (_coordinate(v) for v in raw)
        if x is None or y is None or z is None:
            axis, value = next((a, v) for a, v in zip("xyz", raw, strict=True) if _coordinate(v) is None)
            parsed.add(BAD_ENTRIES, f"{where} ({oid!r}): {axis} = {_describe(value)} is not a finite number")
            continue
        parsed.placements[oid] = (x, y, z)
    parsed.missing = [oid for oid in expected if oid not in seen]
    if parsed.missing:
        parsed.add(BAD_ENTRIES, f"{len(parsed.missing)} object(s) not placed: {', '.join(parsed.missing[:5])}"
                                + (", ..." if len(parsed.missing) > 5 else ""))


def _check_tags(text: str, answer: tuple[int, int], parsed: ParsedAnswer) -> None:
    """The tag structure the prompt asks for: one think block, then one answer block, nothing else."""
    thinks = _blocks(text, "<think>", "</think>")
    parsed.has_think = bool(thinks)
    if not thinks:
        parsed.add(BAD_TAGS, "no <think>…</think> block before the answer")
    elif thinks[0][1] > answer[0] or text[:thinks[0][0] - len("<think>")].strip():
        parsed.add(BAD_TAGS, "text outside the <think> and <answer> blocks")
    elif text[thinks[0][1] + len("</think>"):answer[0] - len("<answer>")].strip():
        parsed.add(BAD_TAGS, "text between </think> and <answer>")
    if parsed.answer_blocks > 1:
        parsed.add(BAD_TAGS, f"{parsed.answer_blocks} <answer> blocks; the last one was used")
    if text[answer[1] + len("</answer>"):].strip():
        parsed.add(BAD_TAGS, "text after </answer>")


def parse_answer(text: str | None, expected_ids: list[str]) -> ParsedAnswer:
    """Parse `text` against the scene's object ids. Never raises; see the module docstring.
    A missing response (None, or anything that is not a string) is reported like an empty one."""
    parsed = ParsedAnswer()
    if not isinstance(text, str):
        parsed.add(NO_ANSWER, f"response is {type(text).__name__}, not text")
        parsed.missing = list(expected_ids)
        return parsed
    answers = _blocks(text, "<answer>", "</answer>")
    parsed.answer_blocks = len(answers)
    if not answers:
        parsed.add(NO_ANSWER, "no <answer>…</answer> block")
        parsed.missing = list(expected_ids)
        return parsed
    start, end = answers[-1]
    body, parsed.fenced = _unfence(text[start:end])
    data, message = _decode(body)
    if message is not None:
        parsed.add(BAD_JSON, message)
        parsed.missing = list(expected_ids)
    else:
        entries = _entries(data, parsed)
        if entries is None:
            parsed.missing = list(expected_ids)
        else:
            _read_entries(entries, list(expected_ids), parsed)
    _check_tags(text, answers[-1], parsed)
    return parsed
