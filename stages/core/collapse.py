"""Groups that teach GRPO nothing: all samples identical, or all rewards equal.

Whatever the cause (a server filling sampling settings from the checkpoint's generation config,
`top_k=1`; temperature 0; a policy that collapsed), a run whose groups mostly look like this is not
learning, while the `temperature` column still says 1.0. It is measured on every scored dataset of
a recipe (logged to `recipe.log`, shown in the report) and on what `update` trains on, with a warning
when at least `WARN_SHARE` of the groups are affected. Rows whose sample or judgement failed are
left out (`stages.core.failures`), as are groups left with fewer than two samples.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from .failures import failure
from .numbers import finite_number

WARN_SHARE = 0.5


@dataclass(frozen=True)
class Collapse:
    groups: int
    identical: int
    """Groups whose responses are all the same text."""
    flat: int
    """Groups whose rewards are all equal (zero advantage for every sample)."""

    def share(self, count: int) -> float:
        return count / self.groups if self.groups else 0.0

    @property
    def warn(self) -> bool:
        return self.groups > 0 and max(self.share(self.identical), self.share(self.flat)) >= WARN_SHARE

    def line(self) -> str:
        return (f"{self.groups} group(s): {self.identical} with identical samples ({self.share(self.identical):.0%}), "
                f"{self.flat} with zero reward spread ({self.share(self.flat):.0%})")

    def advice(self) -> str:
        return ("most groups give GRPO no signal; check the sampling settings (temperature, and a server's "
                "generation-config defaults such as top_k=1) or whether the policy has collapsed")


def _reward(row: dict[str, Any], column: str) -> float | None:
    value = row.get(column)
    return float(value) if finite_number(value) else None


def collapse(rows: list[dict[str, Any]], group_column: str = "group_id", reward_column: str = "reward") -> Collapse:
    """How many groups (by `group_column`) of the usable rows have identical samples or equal rewards."""
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row.get(group_column) is not None and failure(row) is None:
            groups[row[group_column]].append(row)
    compared = [members for members in groups.values() if len(members) >= 2]
    identical = sum(len({m.get("response") for m in members}) == 1 for members in compared)
    rewards = [{_reward(m, reward_column) for m in members} for members in compared]
    flat = sum(len(values) == 1 and None not in values for values in rewards)
    return Collapse(len(compared), identical, flat)
