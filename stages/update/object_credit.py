"""Object-level credit (the paper's 3D-SPO): each object's tokens get their own advantage.

A layout's reward says how good the whole answer was; it cannot say which objects were placed
well. `score` measures every object on its own (`object_scores`: collision, constraint,
out-of-bounds and support, each in [0, 1], and their `penalty`, weighted as the reward weighs them),
so an object's coordinates can be compared with the same object's coordinates in the other samples
of its group, as GRPO compares rewards:

    p[i, o]  = object o's penalty in sample i                 (0 = nothing wrong)
    d[i, o]  = p[i, o] - mean_j p[j, o]                        over the samples j that placed o
    B[i, o]  = -d[i, o] / (sqrt(mean over the group's (j, o') of d[j, o']^2) + eps)
    a[i, t]  = A[i] + strength * B[i, o]   for the tokens t of o's entry {"new_object_id": o, ...}
    a[i, t]  = A[i]                         for every other token

A[i] is TRL's sequence advantage, so strength 0 is plain GRPO exactly. B is 0 where fewer than
two samples placed o. The scale is the group's, not each object's: an object every sample placed
about equally well gets little credit instead of having its small differences blown up to unit
size, while `strength` stays scale-free (1 gives the objects' own qualities as much say over their
tokens as the answers' quality has).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from stages.core.answer import entry_spans
from stages.core.numbers import finite_number

EPS = 1e-4
"""Added to the standard deviation, as TRL does for sequence advantages."""
Credit = list[tuple[int, int, float]]
"""(first token, end token, object advantage) for the object entries of one completion."""


def penalty(scores: dict[str, float]) -> float | None:
    """An object's own badness in [0, 1], as `score` weighed it (None when it has none, or a value `score`
    never writes: outside [0, 1], so that no dataset can overflow the advantages into NaN)."""
    value = scores.get("penalty")
    return float(value) if finite_number(value) and 0.0 <= value <= 1.0 else None


def object_advantages(scores: Sequence[dict[str, dict[str, float]]]) -> list[dict[str, float]]:
    """B[i, o] for each sample i of one group, from the samples' `object_scores`."""
    by_object: dict[str, dict[int, float]] = {}
    for i, sample in enumerate(scores):
        for oid, measures in sample.items():
            p = penalty(measures)
            if p is not None:
                by_object.setdefault(oid, {})[i] = p
    deviations: dict[str, dict[int, float]] = {}
    for oid, placed in by_object.items():
        if len(placed) >= 2:
            mean = sum(placed.values()) / len(placed)
            deviations[oid] = {i: p - mean for i, p in placed.items()}
    spread = [d * d for placed in deviations.values() for d in placed.values()]
    scale = math.sqrt(sum(spread) / len(spread)) if spread else 0.0
    out: list[dict[str, float]] = [{} for _ in scores]
    if scale == 0.0:
        return out
    for oid, placed in deviations.items():
        for i, d in placed.items():
            out[i][oid] = -d / (scale + EPS)
    return out


def token_spans(decode: Callable[[list[int]], str], ids: list[int], spans: dict[str, tuple[int, int]],
                ) -> dict[str, tuple[int, int]]:
    """For character spans of `decode(ids)`, the smallest token ranges [a, b) covering them:
    decode(ids[:a]) ends at or before the span's start, decode(ids[:b]) reaches its end. Found by
    bisection over prefix decodes, so it holds for any tokenizer (merged punctuation, multi-byte
    characters split over tokens) and for token ids sampled by another engine."""
    cache: dict[int, int] = {}

    def reach(k: int) -> int:
        if k not in cache:
            cache[k] = len(decode(ids[:k]))
        return cache[k]

    def first(pred: Callable[[int], bool]) -> int:
        lo, hi = 0, len(ids)
        while lo < hi:
            mid = (lo + hi) // 2
            if pred(mid):
                hi = mid
            else:
                lo = mid + 1
        return lo

    out = {}
    for oid, (start, end) in spans.items():
        a = max(first(lambda k: reach(k) > start) - 1, 0)  # noqa: B023 (called before the loop moves on)
        b = first(lambda k: reach(k) >= end)  # noqa: B023
        out[oid] = (a, b)
    return out


def group_credit(completions: Sequence[list[int]], scores: Sequence[dict[str, dict[str, float]]],
                 decode: Callable[[list[int]], str]) -> list[Credit]:
    """Per completion of one group: its object entries' token ranges and object advantages."""
    advantages = object_advantages(scores)
    credit: list[Credit] = []
    for ids, adv in zip(completions, advantages, strict=True):
        if not adv:
            credit.append([])
            continue
        spans = token_spans(decode, ids, {o: s for o, s in entry_spans(decode(ids)).items() if o in adv})
        credit.append([(a, b, adv[oid]) for oid, (a, b) in spans.items()])
    return credit


def token_advantages(sequence: Any, credits: Sequence[Credit], length: int, strength: float) -> Any:
    """(B, T) advantages: each row's sequence advantage plus `strength` times its object advantages
    over its object entries' tokens."""
    import torch

    extra = torch.zeros(len(credits), length, dtype=sequence.dtype, device=sequence.device)
    for row, credit in enumerate(credits):
        for a, b, value in credit:
            extra[row, a:min(b, length)] = value
    return sequence.unsqueeze(1) + strength * extra
