"""Parse a model's answer into placements, whatever text the model produced.

The expected answer is `<think>…</think><answer>[{"new_object_id": id, "x": …, "y": …, "z": …}, …]</answer>`.
`parse_answer` never raises: every defect becomes a human-readable problem, and the answer gets a
`format_level` that the reward presets turn into a format score.

Decisions (documented in the README):

* A Markdown code fence inside `<answer>` (```` ```json … ``` ````, a very common model habit) is
  unwrapped and accepted without penalty: the JSON inside is what the model meant.
* With several `<answer>` blocks the **last** one is parsed (models that correct themselves write the
  final answer last) and the answer is flagged as a tag problem. Blocks are looked for after the
  opening `<think>…</think>`: tags the model mentions while thinking are part of its reasoning.
* The answer must be strict JSON, and unambiguous: a key repeated within one object (two `"x"`, two
  `"new_object_id"`) and a `NaN` / `Infinity` literal anywhere are format errors, never "last wins".
  Integers too long for Python's `int` read as an overflowing number (not a JSON error).
* A coordinate is a JSON number (not a boolean) whose value is finite and at most `MAX_COORDINATE`
  metres from the origin; `NaN`, `Infinity`, overflowing literals (`1e999`, 400-digit integers),
  absurd values (`1e308`), booleans, strings, nulls and nested values are each reported and dropped.
  So every placement is a finite, bounded number that no later arithmetic can overflow.
* Fields an entry has beyond `new_object_id`, `x`, `y`, `z` are ignored (when they are strict JSON).
* Alternative shapes (`{"objects": [...]}`, `{id: {x, y, z}}`, `{id: [x, y, z]}`) are read so that a
  renderer can still draw them, but they are reported: the prompt asks for a list.
* `placements` holds the first valid placement of every expected id; unknown ids, duplicates,
  ambiguous entries and invalid coordinates are left out and reported.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
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
MAX_COORDINATE = 1000.0
"""Largest |coordinate| in metres that is read as a placement: far beyond any room, small enough that
distances, products and sums of coordinates stay finite."""


@dataclass
class ParsedAnswer:
    """The outcome of parsing one answer. `error` is None exactly when the answer is fully valid."""

    placements: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    format_level: int = VALID
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


def _blocks(text: str, open_tag: str, close_tag: str, pos: int = 0) -> list[tuple[int, int]]:
    """(start, end) spans of the contents of every complete `open…close` block from `pos`, left to right.
    Plain `str.find` scanning: linear time on any input (no regex backtracking)."""
    spans: list[tuple[int, int]] = []
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


class _Repeated(dict):
    """A decoded JSON object in which some key appeared more than once (`repeated` names them)."""

    repeated: list[str]


class _Literal(float):
    """A `NaN` / `Infinity` / `-Infinity` literal: Python reads it, JSON does not allow it."""

    text: str


def _constant(text: str) -> _Literal:
    value = _Literal(text)
    value.text = text
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) == len(pairs):
        return value
    marked = _Repeated(value)
    marked.repeated = [key for key, count in Counter(k for k, _ in pairs).items() if count > 1]
    return marked


def _integer(digits: str) -> int | float:
    """Integers beyond Python's digit limit read as the (infinite) float they overflow to."""
    return int(digits) if len(digits) <= 4000 else float(digits)


def _decode(body: str) -> tuple[Any, str | None]:
    """The JSON value, with repeated keys and NaN/Infinity literals marked (see `_flaw`) so that the
    entry holding them is reported precisely and the other entries still read.
    Returns (value, None) or (None, message)."""
    try:
        return json.loads(body, object_pairs_hook=_object, parse_constant=_constant, parse_int=_integer), None
    except json.JSONDecodeError as err:
        return None, f"answer is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
    except (ValueError, RecursionError) as err:  # absurd nesting
        return None, f"answer is not valid JSON: {str(err)[:120]}"


def _flaw(value: Any) -> str | None:
    """What strict JSON forbids in a decoded value (a repeated key, a NaN/Infinity literal), or None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Repeated):
            return f"key {item.repeated[0]!r} appears more than once in one object"
        if isinstance(item, _Literal):
            return f"{item.text} is not JSON (write a number)"
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def coordinate(value: Any) -> float | None:
    """The coordinate a decoded JSON value stands for: a finite float within ±MAX_COORDINATE, or None
    (bool, str, null, NaN, ±inf, an overflowing integer, an absurd magnitude, ...). The one rule for
    every consumer of model-written positions."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) and abs(number) <= MAX_COORDINATE else None


def _describe(value: Any) -> str:
    text = float.__repr__(value) if isinstance(value, float) else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _entries(data: Any, parsed: ParsedAnswer) -> list[tuple[Any, Any]] | None:
    """The (id, coordinates) pairs in the decoded answer, or None when its shape holds none."""
    if isinstance(data, list):
        return [(_entry_id(item), item) for item in data]
    if isinstance(data, dict):
        repeated = data.repeated if isinstance(data, _Repeated) else []
        if repeated:
            parsed.add(BAD_ENTRIES, f"answer: key {_describe(repeated[0])} appears more than once")
        lists = [v for v in data.values() if isinstance(v, list) and v and all(isinstance(i, dict) for i in v)]
        if len(data) == 1 and lists and not repeated:
            parsed.add(BAD_ENTRIES, f"answer is an object wrapping a list under {_describe(next(iter(data)))}; "
                                    "expected the list itself")
            return [(_entry_id(item), item) for item in lists[0]]
        if data and all(isinstance(v, (dict, list)) for v in data.values()):
            parsed.add(BAD_ENTRIES, "answer is an object keyed by id; expected a list of "
                                    "{\"new_object_id\", \"x\", \"y\", \"z\"} objects")
            return [(key, item) for key, item in data.items() if key not in repeated]
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
        if isinstance(item, _Repeated) and "new_object_id" in item.repeated:
            parsed.add(BAD_ENTRIES, f"{where}: key 'new_object_id' appears more than once in one object")
            continue
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
        flaw = _flaw(item)
        if flaw is not None:
            parsed.add(BAD_ENTRIES, f"{where} ({oid!r}): {flaw}")
            continue
        raw = _xyz(item)
        if raw is None:
            parsed.add(BAD_ENTRIES, f"{where} ({oid!r}): needs numbers \"x\", \"y\" and \"z\"")
            continue
        x, y, z = (coordinate(v) for v in raw)
        if x is None or y is None or z is None:
            axis, value = next((a, v) for a, v in zip("xyz", raw, strict=True) if coordinate(v) is None)
            parsed.add(BAD_ENTRIES, f"{where} ({oid!r}): {axis} = {_describe(value)} is not a finite number "
                                    f"of metres within ±{MAX_COORDINATE:g}")
            continue
        parsed.placements[oid] = (x, y, z)
    parsed.missing = [oid for oid in expected if oid not in seen]
    if parsed.missing:
        parsed.add(BAD_ENTRIES, f"{len(parsed.missing)} object(s) not placed: {', '.join(parsed.missing[:5])}"
                                + (", ..." if len(parsed.missing) > 5 else ""))


def _check_tags(text: str, answer: tuple[int, int], parsed: ParsedAnswer) -> None:
    """The tag structure the prompt asks for: one think block, then one answer block, nothing else."""
    thinks = _blocks(text, "<think>", "</think>")
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


def _after_reasoning(text: str) -> int:
    """Where the text after the opening `<think>…</think>` block starts (0 without one): what the model
    writes while thinking, `<answer>` tags it mentions included, is not its answer."""
    opened = text.find("<think>")
    mentioned = text.find("<answer>")
    if opened < 0 or 0 <= mentioned < opened:
        return 0
    closed = text.find("</think>", opened + len("<think>"))
    return closed + len("</think>") if closed >= 0 else 0


def _answer_span(text: str) -> tuple[tuple[int, int] | None, int]:
    """The span of the `<answer>` block an answer is read from, the last complete one after the
    reasoning (models that correct themselves write the final answer last), and how many there are."""
    spans = _blocks(text, "<answer>", "</answer>", _after_reasoning(text))
    return (spans[-1] if spans else None), len(spans)


def answer_block(text: str | None) -> str | None:
    """The contents of the block `parse_answer` reads (None without one): the next turn's prompt shows
    the model exactly the answer that was scored."""
    span = _answer_span(text)[0] if isinstance(text, str) else None
    return text[span[0]:span[1]] if span is not None and isinstance(text, str) else None


def parse_answer(text: str | None, expected_ids: list[str]) -> ParsedAnswer:
    """Parse `text` against the scene's object ids. Never raises; see the module docstring.
    A missing response (None, or anything that is not a string) is reported like an empty one."""
    parsed = ParsedAnswer()
    if not isinstance(text, str):
        parsed.add(NO_ANSWER, f"response is {type(text).__name__}, not text")
        parsed.missing = list(expected_ids)
        return parsed
    span, parsed.answer_blocks = _answer_span(text)
    if span is None:
        parsed.add(NO_ANSWER, "no <answer>…</answer> block")
        parsed.missing = list(expected_ids)
        return parsed
    start, end = span
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
    _check_tags(text, span, parsed)
    return parsed


def entry_spans(text: str) -> dict[str, tuple[int, int]]:
    """Character spans in `text` of the `{...}` entry of each placed id, in the block `parse_answer`
    reads (the last one), for answers written as the list the prompt asks for. An id's first entry
    counts, as in `parse_answer`; entries that are not JSON objects with a string id are skipped.
    Object-level credit gives the tokens of these spans their own advantage."""
    span = _answer_span(text)[0] if isinstance(text, str) else None
    if span is None:
        return {}
    start, end = span
    spans: dict[str, tuple[int, int]] = {}
    for lo, hi in _list_items(text, start, end):
        try:
            item = json.loads(text[lo:hi])
        except (ValueError, RecursionError):
            continue
        oid = _entry_id(item)
        if isinstance(oid, str) and oid not in spans:
            spans[oid] = (lo, hi)
    return spans


def _list_items(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Spans of the `{...}` values directly inside the first JSON list of `text[start:end]`: a scan
    that tracks strings and nesting depth (linear time, whatever the text)."""
    items: list[tuple[int, int]] = []
    pos = text.find("[", start, end)
    if pos < 0:
        return items
    depth, in_string, escaped, item_start = 0, False, False, -1
    for k in range(pos, end):
        ch = text[k]
        if in_string:
            escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
            continue
        if ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth == 2 and ch == "{":
                item_start = k
        elif ch in "]}":
            depth -= 1
            if depth == 1 and ch == "}" and item_start >= 0:
                items.append((item_start, k + 1))
                item_start = -1
            if depth == 0:
                break
    return items


_COORDINATE_VALUE = re.compile(r'"[xyz]"\s*:\s*(-?[0-9][0-9.eE+-]*)')


def free_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of what a guided grammar leaves to the model: the reasoning inside the opening
    `<think>…</think>` and each coordinate value of the answer's entries, each reaching one character
    past its end (the `<`, `,` or `}` with which the model chose to stop). Everything else (tags, keys,
    object ids, punctuation) the grammar writes itself; `update --loss-tokens free` trains on these
    spans only."""
    if not isinstance(text, str):
        return []
    spans: list[tuple[int, int]] = []
    reasoning_end = _after_reasoning(text)
    if reasoning_end:
        start = text.find("<think>") + len("<think>")
        spans.append((start, reasoning_end - len("</think>") + 1))
    for lo, hi in entry_spans(text).values():
        for match in _COORDINATE_VALUE.finditer(text, lo, hi):
            spans.append((match.start(1), min(match.end(1) + 1, hi)))
    return spans
