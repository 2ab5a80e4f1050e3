"""Does refinement help? Each trajectory's reward at turn t against its own turn 1, per iteration.

Means per turn over all rows (the training table) mix trajectories: a turn whose bad samples failed
looks better than it is. Here every turn of an iteration is measured on the same trajectories (those
with a usable, finite-reward row at every scored turn of that iteration, paired by `trajectory_id`),
so a turn's gain is the mean of per-trajectory differences and its standard error is the paired one.
Rows are paired by exact `trajectory_id`: continuations branched with `rollout --n 2+` on a later
turn (`<id>.<i>`) have no turn-1 twin and are left out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.core.failures import failure
from stages.core.numbers import finite_number

from .eval_metrics import finite_mean, standard_error
from .report_data import dataset_dirs, readable_rows

RATIO_COLUMNS = ("collision_ratio", "out_of_bounds_ratio", "support_ratio", "constraint_ratio")


@dataclass
class TurnGain:
    iteration: int
    turn: int
    trajectories: int
    """Trajectories measured: the same ones at every turn of the iteration."""
    reward: float
    gain: float
    """Mean over those trajectories of (reward at this turn − reward at turn 1); 0 at turn 1."""
    gain_sem: float
    """Standard error of that mean over trajectories (NaN at turn 1 and with fewer than 2)."""
    ratios: dict[str, float] = field(default_factory=dict)
    """Mean physics ratio of each RATIO_COLUMNS column over the same rows (NaN-valued rows skipped)."""


def _by_trajectory(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Usable rows with a finite reward, by trajectory id; an id found twice in one turn is ambiguous and dropped."""
    counts = Counter(str(r.get("trajectory_id")) for r in rows)
    return {str(r["trajectory_id"]): r for r in rows
            if r.get("trajectory_id") not in (None, "") and counts[str(r["trajectory_id"])] == 1
            and failure(r) is None and finite_number(r.get("reward"))}


def _iteration_gains(iteration: int, turns: dict[int, dict[str, dict[str, Any]]]) -> list[TurnGain]:
    paired = sorted(set.intersection(*(set(rows) for rows in turns.values())))
    if not paired or 1 not in turns:
        return []
    first = [float(turns[1][t]["reward"]) for t in paired]
    gains = []
    for turn, rows in sorted(turns.items()):
        mine = [rows[t] for t in paired]
        rewards = [float(r["reward"]) for r in mine]
        diffs = [r - f for r, f in zip(rewards, first, strict=True)]
        gains.append(TurnGain(iteration, turn, len(paired), sum(rewards) / len(rewards), sum(diffs) / len(diffs),
                              standard_error(diffs) if turn > 1 else float("nan"),
                              {c: finite_mean([r.get(c) for r in mine]) for c in RATIO_COLUMNS}))
    return gains


def turn_gains(run_dir: Path) -> list[TurnGain]:
    """One TurnGain per scored turn of every iteration that has more than one turn, in order."""
    by_iteration: dict[int, dict[int, dict[str, dict[str, Any]]]] = {}
    for iteration, turn, path in dataset_dirs(run_dir, "score"):
        rows = readable_rows(path)
        if rows:
            by_iteration.setdefault(iteration, {})[turn] = _by_trajectory(rows)
    return [gain for iteration, turns in sorted(by_iteration.items()) if len(turns) > 1
            for gain in _iteration_gains(iteration, turns)]
