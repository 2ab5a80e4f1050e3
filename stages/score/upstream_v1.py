"""The `metaspatial-v1` preset: the paper's reward, reproduced number for number.

This reimplements the behaviour of MetaSpatial's `verl/utils/reward_score/metaverse*.py` (commit
a3c89c2), bugs included, so that published numbers can be compared. It is kept apart from the
default preset on purpose. Facts it reproduces (see the fixture README for the list):

* format: 0 unless the whole text is `<think>…</think><answer>…</answer>` (a second answer block
  passes, and the first is read); 0.1 if the first block is not JSON (a code fence, `null`); 0.5 if
  `len(answer)` differs from the object count (so a dict or string of the right length passes); 1.
* combined: `0.5·format` below 1; sentinel `10` (length mismatch of the list-wrapped answer) gives
  `0.5 + 0.2`; any other failure before the judge gives `0.5`; a grade sum of 0 gives 0.5 and of 10
  the sentinel value; else `sum(int(mean grade))/50 + 0.5 − 0.2·collision − 0.2·constraint`.
* objects left out of the answer keep their reference position; the last duplicate wins.
* collisions over all pairs of objects and the six layout elements (C(N+6, 2) in the
  denominator), axis-aligned boxes swapped only near 90/270 degrees, thin objects exempt, 1 mm
  touching margin; constraints accept an object inside any one of its relation boxes.

Where upstream raises, this module reports `crash` (the message says where) instead of a number;
the stage then scores the row 0. Any string, null or nested coordinate that reaches the geometry
is treated as such a crash (upstream raises on every one of them in the fixture).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stages.core.scene import LAYOUT_ELEMENTS

from . import upstream_v1_boxes as boxes

FORMAT_RE = re.compile(r"^\s*<think>.*?</think>\s*<answer>.*?</answer>\s*$", re.DOTALL)
ANSWER_RE = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)
SENTINEL = 10


class UpstreamCrash(Exception):
    """Where the paper's code would have raised; the message names the place."""


@dataclass
class V1Result:
    format_reward: float = 0.0
    reward: float = 0.0
    judge_used: bool = False
    collision_ratio: float | None = None
    constraint_ratio: float | None = None
    collision_pairs: list[tuple[str, str]] = field(default_factory=list)
    violating_ids: list[str] = field(default_factory=list)
    crash: str | None = None


def _first_answer(text: str | None) -> Any:
    """Upstream's parser: the first answer block through `json.loads`, None if it is not JSON."""
    match = ANSWER_RE.search(text) if isinstance(text, str) else None
    if not match:
        return None
    try:
        return json.loads(match.group(1))
    except json.JSONDecodeError:
        return None
    except (ValueError, RecursionError) as err:
        raise UpstreamCrash(f"extract_json_from_text: {type(err).__name__}") from None


def format_reward(text: str | None, n_objects: int) -> float:
    if not isinstance(text, str) or not FORMAT_RE.fullmatch(text):
        return 0.0
    data = _first_answer(text)
    if data is None:
        return 0.1
    if not hasattr(data, "__len__"):
        raise UpstreamCrash(f"metaverse_format_reward: TypeError: object of type '{type(data).__name__}' has no len()")
    return 0.5 if len(data) != n_objects else 1.0


def _apply_answer(data: Any, objects: list[dict[str, Any]]) -> list[dict[str, Any]] | int:
    """The updated scene (objects only), or upstream's sentinel 10 / failure 0."""
    answer = data if isinstance(data, list) else [data]
    if len(answer) == 0 or len(answer) != len(objects):
        return SENTINEL
    by_id = {obj["new_object_id"]: obj for obj in objects}
    for item in answer:
        if not isinstance(item, dict) or "new_object_id" not in item:
            return 0
        oid = item["new_object_id"]
        if not isinstance(oid, (str, int, float, bool, type(None))) or oid not in by_id:
            return 0
        target = by_id[oid]
        if "position" not in target or not all(axis in item for axis in "xyz"):
            return 0  # KeyError inside upstream's try: the room's reward collapses to 0.5
        target["position"] = {axis: item[axis] for axis in "xyz"}
    return objects


def _numeric(value: Any, where: str) -> float:
    if isinstance(value, (bool, int, float)):
        try:
            return float(value)
        except OverflowError:
            raise UpstreamCrash(f"{where}: OverflowError") from None
    raise UpstreamCrash(f"{where}: TypeError: coordinate {value!r}")


def _arrays(graph: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    positioned = np.array(["position" in item for item in graph])
    pos = np.zeros((len(graph), 3))
    rot = np.zeros(len(graph))
    size = np.zeros((len(graph), 3))
    for i, item in enumerate(graph):
        s = item["size_in_meters"]
        size[i] = (s["length"], s["width"], s["height"])
        if positioned[i]:
            if "rotation" not in item:
                raise UpstreamCrash("check_collisions: KeyError: 'rotation'")
            rot[i] = item["rotation"]["z_angle"]
            pos[i] = [_numeric(item["position"][axis], "check_collisions: get_bounds") for axis in "xyz"]
    return {"positioned": positioned, "pos": pos, "rot": rot, "size": size}


def collisions(graph: list[dict[str, Any]]) -> tuple[float, list[tuple[str, str]]]:
    """Upstream's `check_collisions`, vectorised over all pairs."""
    a = _arrays(graph)
    size = a["size"].copy()
    lo, hi = size.min(axis=1), size.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        thin = (lo > 0.0) & (hi / np.where(lo > 0, lo, 1.0) >= 40.0)
    swap = np.isclose(a["rot"], 90.0) | np.isclose(a["rot"], 270.0)
    size[swap, 0], size[swap, 1] = a["size"][swap, 1], a["size"][swap, 0]
    upper = a["pos"] + size / 2
    lower = a["pos"] - size / 2
    n = len(graph)
    i, j = np.triu_indices(n, k=1)
    with np.errstate(invalid="ignore", over="ignore"):
        overlap = ((lower[i] < upper[j]) & (upper[i] > lower[j])
                   & (np.abs(lower[i] - upper[j]) > 1e-3) & (np.abs(upper[i] - lower[j]) > 1e-3)).all(axis=1)
    ok = a["positioned"][i] & a["positioned"][j] & ~thin[i] & ~thin[j]
    hits = np.flatnonzero(overlap & ok)
    pairs = [(graph[i[k]]["new_object_id"], graph[j[k]]["new_object_id"]) for k in hits]
    ratio = len(pairs) / (n * (n - 1) / 2) if n > 1 else 0
    return ratio, pairs


def constraints(graph: list[dict[str, Any]], room: tuple[float, float, float]) -> tuple[float, list[str]]:
    """Upstream's `check_constraints`: an object passes if it lies in any one of its relation boxes."""
    by_id = {item["new_object_id"]: item for item in graph}
    objects = graph[:-len(LAYOUT_ELEMENTS)]
    violating = []
    for obj in objects:
        if "position" not in obj:
            continue
        candidates = boxes.relation_boxes(obj, by_id, room)
        x, y, z = (_numeric(obj["position"][axis], "check_constraints") for axis in "xyz")
        if not any(b[0] <= x <= b[1] and b[2] <= y <= b[3] and b[4] <= z <= b[5] for b in candidates):
            violating.append(obj["new_object_id"])
    total = len(objects)
    return (len(violating) / total if total > 0 else 0), violating


def grade_sum(grades: dict[str, float] | None) -> int:
    """Upstream truncates each mean grade with `int()` before adding them."""
    return sum(int(g) for g in grades.values()) if grades else 0


def prepare(text: str | None, objects: list[dict[str, Any]]) -> tuple[V1Result, list[dict[str, Any]] | None]:
    """First half of `metaverse_compute_score`, up to the judge. `objects` (deep-copied by the
    caller) carry their reference positions. Returns the result so far and, when upstream would
    call the judge, the updated objects; otherwise the result is final."""
    result = V1Result()
    try:
        result.format_reward = format_reward(text, len(objects))
    except UpstreamCrash as err:
        result.crash = str(err)
        return result, None
    if result.format_reward != 1.0:
        result.reward = 0.5 * result.format_reward
        return result, None
    updated = _apply_answer(_first_answer(text), objects)
    if isinstance(updated, int):
        result.reward = 0.5 + updated / 50 if updated == SENTINEL else 0.5
        return result, None
    result.judge_used = True
    return result, updated


def finish(result: V1Result, updated: list[dict[str, Any]], layout: list[dict[str, Any]],
           room: tuple[float, float, float], grades: dict[str, float] | None) -> V1Result:
    """Second half: the judge's grades (None = the judge failed), collisions and constraints."""
    total = grade_sum(grades)
    if total == 0 or total == SENTINEL:
        result.reward = 0.5 + total / 50
        return result
    graph = updated + layout
    try:
        result.collision_ratio, result.collision_pairs = collisions(graph)
        result.constraint_ratio, result.violating_ids = constraints(graph, room)
    except (UpstreamCrash, boxes.UnboundRotation) as err:
        result.crash = str(err)
        result.collision_ratio = result.constraint_ratio = None
        return result
    result.reward = total / 50 + 0.5 - 0.2 * result.collision_ratio - 0.2 * result.constraint_ratio
    return result
