"""`eval --compare-to LABEL`: each model's reward against a baseline row, paired room by room.

Two models' mean rewards over the same rooms differ less by chance than their separate standard
errors suggest: most of the spread is between rooms (some rooms are hard for every model). So the
comparison that tells whether RL helped is paired: per room, this row's mean reward minus the
baseline's, then the mean ± standard error of those differences over the rooms both rows have, and
how many of them went up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from stages.core.failures import failure

from .eval_config import check_compare_to
from .eval_metrics import finite_mean, standard_error

PAIRED_KEYS = ("delta_reward", "delta_reward_se", "rooms_up", "rooms_paired")


def room_rewards(rows: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Each room's mean reward over its rows whose sample and judgement did not fail (left out as in
    every eval mean); a room with no finite reward is left out."""
    by_room: dict[str, list[Any]] = {}
    for row in rows:
        if failure(row) is None:
            by_room.setdefault(str(row.get("room_id")), []).append(row.get("reward"))
    means = {room: finite_mean(rewards) for room, rewards in by_room.items()}
    return {room: mean for room, mean in means.items() if math.isfinite(mean)}


def paired_delta(rewards: dict[str, float], baseline: dict[str, float]) -> dict[str, Any]:
    """Mean and standard error over shared rooms of (room reward − baseline's room reward), and how
    many rooms went up out of how many were paired."""
    diffs = [rewards[room] - baseline[room] for room in sorted(rewards.keys() & baseline.keys())]
    return {"delta_reward": finite_mean(diffs), "delta_reward_se": standard_error(diffs),
            "rooms_up": sum(d > 0 for d in diffs), "rooms_paired": len(diffs)}


def add_paired_deltas(table: list[dict[str, Any]], rewards: list[dict[str, float]], compare_to: str) -> None:
    """Fill the paired columns of every row against the row labelled `compare_to` (its own: empty)."""
    labels = [row["model"] for row in table]
    check_compare_to(compare_to, labels)
    base = labels.index(compare_to)
    for i, (row, own) in enumerate(zip(table, rewards, strict=True)):
        row.update(dict.fromkeys(PAIRED_KEYS) if i == base else paired_delta(own, rewards[base]))
