"""The default `metaspatial` reward and the multi-turn return.

    R = format                         for an answer with any problem (format < 1)
    R = 1 + inside + quality           for a valid answer

* `format` ∈ {0, 0.25, 0.5, 0.75, 1}: no answer block / not JSON or no placements / wrong entries,
  ids or coordinates (NaN, ±Inf, booleans, strings, nulls, duplicate, missing or unknown ids) /
  tags around a correct answer / valid.
* `inside` = 1 unless some object is placed out of the room: its centre outside the room's box
  (beyond a wall, below the floor or above the ceiling; `outside` metres of slack, 0 by default).
  Boxes reaching through a wall, the floor or the ceiling with their centre inside are penalised
  continuously by the out-of-bounds ratio instead.
* `quality` ∈ [0, 1] = weighted mean of `judge_score` and `1 − x` for x in collision, constraint,
  out-of-bounds and support ratios. A failed judgement under `--judge-fallback drop` counts as the
  lowest one (grade 1 everywhere), so it is never worth more than a judgement.

So R ∈ [0, 3]; any problem in the answer scores below every valid layout (< 1), any object placed
outside the room scores below every valid in-room layout (< 2), and within a tier the physics and
the judge order layouts continuously. Collisions weigh triple: a pile of overlapping furniture is
the least usable room.

VERSION 2 (was 1): an object counts as out of the room as soon as its centre leaves the room (was:
more than 0.25 m beyond it), so every out-of-room layout scores below every in-room one; failed
judgements under `drop` count as the lowest grades (were left out of the mean); answers with
repeated keys, NaN/Infinity literals or coordinates beyond ±1000 m are format errors.
"""

from __future__ import annotations

from dataclasses import dataclass

from stages.core import answer
from stages.core.measure import RowMeasures

VERSION = 2
"""Version of the default preset's formula, written into `score_preset` (`metaspatial@2`)."""
FORMAT_SCORE = {answer.NO_ANSWER: 0.0, answer.BAD_JSON: 0.25, answer.BAD_ENTRIES: 0.5, answer.BAD_TAGS: 0.75,
                answer.VALID: 1.0}


@dataclass(frozen=True)
class Weights:
    judge: float = 1.0
    collision: float = 3.0
    constraint: float = 1.0
    out_of_bounds: float = 0.5
    support: float = 0.5


def _weighted_mean(terms: list[tuple[float, float]]) -> float:
    total = sum(weight for weight, _ in terms)
    return sum(weight * value for weight, value in terms) / total if total > 0 else 0.0


def quality(m: RowMeasures, judge_score: float, w: Weights) -> float:
    return _weighted_mean([(w.collision, 1 - m.collision), (w.constraint, 1 - m.constraint),
                           (w.out_of_bounds, 1 - m.out_of_bounds), (w.support, 1 - m.support),
                           (w.judge, judge_score)])


def object_penalty(measures: dict[str, float], w: Weights) -> float:
    """One object's own badness in [0, 1]: its measures weighted as `quality` weighs the layout's (the
    judge grades layouts, not objects). What object-level credit (`update --object-credit`) compares."""
    return round(_weighted_mean([(w.collision, measures["collision"]), (w.constraint, measures["constraint"]),
                                 (w.out_of_bounds, measures["out_of_bounds"]), (w.support, measures["support"])]), 6)


def default_reward(format_level: int, m: RowMeasures | None, judge_score: float | None, w: Weights) -> float:
    """`m` and `judge_score` are None for an answer with a problem: it is neither measured whole nor judged."""
    if format_level != answer.VALID or m is None or judge_score is None:
        return FORMAT_SCORE[format_level]
    inside = 0.0 if m.outside_ids else 1.0
    return 1.0 + inside + quality(m, judge_score, w)


def trajectory_return(rewards: list[float], gamma: float, mode: str) -> float:
    """Return of turns 0..T-1: `weighted-average` Σγᵗrₜ / Σγᵗ (the paper's), or `discounted-sum` Σγᵗrₜ."""
    weights = [gamma ** t for t in range(len(rewards))]
    total = sum(w * r for w, r in zip(weights, rewards, strict=True))
    if mode == "discounted-sum":
        return total
    return total / sum(weights)
