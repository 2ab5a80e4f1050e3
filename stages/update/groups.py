"""From a scored rollout dataset to GRPO groups, with every input problem found before training.

GRPO compares samples drawn for one task: their advantages are their rewards relative to the
group's. Single-turn data is grouped by `group_id` (the samples of one prompt). Multi-turn data
is trained by default on the final turn of each trajectory with its return (the paper): the
trajectories of one room are compared, so those rows are grouped by `prompt_id`, each with its own
prompt (its own history and render). With `--turns every`, multi-turn rows are grouped by
`prompt_id` and `turn`: a room's trajectories at the same turn. `--group-by` overrides all of this.

Everything here is plain Python over the rows, so a bad dataset fails in a fraction of a second
with a message naming the rows and groups, before a model is loaded.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.core import dataset as ds
from stages.core import rows as rows_codec
from stages.core.columns import (
    HISTORY,
    IMAGE,
    OBJECT_SCORES,
    PROMPT,
    RESPONSE,
    RESPONSE_LOGPROBS,
    RESPONSE_TOKEN_IDS,
    SYSTEM_PROMPT,
    TURN,
)
from stages.core.errors import UserError, where
from stages.core.failures import count_failures, describe, failure
from stages.core.numbers import finite_number

REQUIRED = [PROMPT, RESPONSE]
CHECKED = [RESPONSE, TURN, IMAGE, HISTORY, RESPONSE_TOKEN_IDS, OBJECT_SCORES, SYSTEM_PROMPT]
"""Contract columns decoded up front (`stages.core.rows.check`) when the dataset has them."""
SHOWN = 5  # how many offending rows/groups an error message lists


@dataclass
class Sample:
    """One stored completion with the prompt it answered: task text, image, earlier turns (JSON), system message,
    the exact tokens sampled and their log-probabilities at sampling time (when known), the
    response text and its reward."""

    row: int
    prompt: str
    image: str | None
    history: str | None
    system: str | None
    response: str
    token_ids: list[int] | None
    logprobs: list[float] | None
    reward: float
    object_scores: dict[str, dict[str, float]] = field(default_factory=dict)
    """Score's per-object measures (`object_scores`), for object-level credit."""


@dataclass
class Group:
    """The samples compared with each other; advantages are computed among them."""

    group_id: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def rewards(self) -> list[float]:
        return [s.reward for s in self.samples]


def _listing(items: list[Any]) -> str:
    shown = ", ".join(str(i) for i in items[:SHOWN])
    return shown + (f", ... ({len(items)} in all)" if len(items) > SHOWN else "")


def _final_turn_rows(rows: list[dict[str, Any]], keep: list[int], directory: Path) -> list[int]:
    """Of the rows `keep`, the indices of those holding the last turn of their trajectory."""
    last: dict[Any, int] = {}
    for i in keep:
        traj = rows[i].get("trajectory_id")
        if traj is None:
            raise UserError(f"{where(directory, i, 'trajectory_id')}: is empty; --turns final needs each "
                            "row's trajectory (or pass --turns every)")
        if traj not in last or (rows[i].get("turn") or 0) > (rows[last[traj]].get("turn") or 0):
            last[traj] = i
    return sorted(last.values())


def select_rows(rows: list[dict[str, Any]], turns: str, split: str | None, directory: Path) -> list[int]:
    """The indices of the rows to train on: this split, and the final turns unless `turns == 'every'`."""
    if split and rows and "split" in rows[0]:
        keep = [i for i, r in enumerate(rows) if r.get("split") == split]
        if not keep:
            found = sorted({str(r.get("split")) for r in rows})
            raise UserError(f"{directory}: no rows of split '{split}' (found: {', '.join(found)}); "
                            "pass --split with one of those, or --split '' for all rows")
    else:
        keep = list(range(len(rows)))
    if turns == "every" or not rows or "turn" not in rows[0]:
        return keep
    if "trajectory_id" not in rows[0]:
        raise UserError(f"{directory}: has a `turn` column but no `trajectory_id`; --turns final needs both "
                        "(or pass --turns every)")
    return _final_turn_rows(rows, keep, directory)


def _token_ids(row: dict[str, Any]) -> list[int] | None:
    return rows_codec.token_ids(row.get(RESPONSE_TOKEN_IDS))


def _logprobs(row: dict[str, Any]) -> list[float] | None:
    """The sampling log-probabilities (rollout --logprobs), usable only next to the sampled tokens."""
    values, ids = row.get(RESPONSE_LOGPROBS), _token_ids(row)
    if values is None or ids is None:
        return None
    return [float(v) for v in values]


def group_columns(rows: list[dict[str, Any]], indices: list[int], turns: str, group_by: str | None) -> list[str]:
    """The columns whose values together form the groups (see the module docstring)."""
    if group_by:
        return [c.strip() for c in group_by.split(",") if c.strip()]
    if not any((rows[i].get("turn") or 1) > 1 for i in indices):
        return ["group_id"]
    return ["prompt_id"] if turns == "final" else ["prompt_id", "turn"]


def build_groups(rows: list[dict[str, Any]], indices: list[int], reward_column: str, keys: list[str],
                 directory: Path) -> list[Group]:
    """Group the selected rows by the columns `keys`, checking rewards, responses and group sizes."""
    missing_key = [i for i in indices if any(rows[i].get(k) is None for k in keys)]
    if missing_key:
        raise UserError(f"{directory}: column(s) {', '.join(keys)} (which form the groups) missing or empty in "
                        f"row(s) {_listing(missing_key)}; pass --group-by COLUMN to group by other columns")
    bad_reward = [i for i in indices if not finite_number(rows[i].get(reward_column))]
    if bad_reward:
        raise UserError(f"{directory}: column {reward_column} is missing or not a finite number in row(s) "
                        f"{_listing(bad_reward)}; score these rows again or drop them")
    empty = [i for i in indices if _token_ids(rows[i]) == [] or (_token_ids(rows[i]) is None
                                                                  and not rows[i].get("response"))]
    if empty:
        raise UserError(f"{directory}: empty response in row(s) {_listing(empty)}; a completion needs at least "
                        "one token (drop these rows)")
    uneven = [i for i in indices if (lp := _logprobs(rows[i])) is not None and len(lp) != len(_token_ids(rows[i]) or [])]
    if uneven:
        raise UserError(f"{directory}: response_logprobs and response_token_ids differ in length in row(s) "
                        f"{_listing(uneven)}")
    groups: dict[str, Group] = {}
    for i in indices:
        row = rows[i]
        gid = "/".join(str(row[k]) for k in keys)
        group = groups.setdefault(gid, Group(gid))
        group.samples.append(Sample(i, row["prompt"], row.get("image"), row.get("history"),
                                    rows_codec.system_prompt(row.get(SYSTEM_PROMPT)), row.get("response") or "",
                                    _token_ids(row), _logprobs(row), float(row[reward_column]),
                                    rows_codec.object_scores(row.get(OBJECT_SCORES))))
    _check_sizes(list(groups.values()), ", ".join(keys), directory)
    return list(groups.values())


def _check_sizes(groups: list[Group], keys: str, directory: Path) -> None:
    singles = [g.group_id for g in groups if len(g.samples) == 1]
    if singles:
        raise UserError(f"{directory}: group(s) {_listing(singles)} (by {keys}) have a single sample; "
                        "GRPO needs at least two samples per group to compare (sample more per prompt, "
                        "or drop these groups)")
    by_size: dict[int, list[str]] = defaultdict(list)
    for g in groups:
        by_size[len(g.samples)].append(g.group_id)
    if len(by_size) > 1:
        sizes = ", ".join(f"{n} samples: {len(ids)} group(s), e.g. {ids[0]}" for n, ids in sorted(by_size.items()))
        raise UserError(f"{directory}: groups differ in size ({sizes}); TRL's GRPO needs the same number of "
                        "samples in every group (drop or complete the short groups)")


def zero_variance(groups: list[Group]) -> list[str]:
    """Groups whose samples all got the same reward: their advantages are zero, they teach nothing."""
    return [g.group_id for g in groups if max(g.rewards) - min(g.rewards) == 0.0]


@dataclass
class Excluded:
    """What `load_groups` left out of training: rows whose sample or judgement failed (by kind,
    `stages.core.failures`), and the groups that lost a sample and so have fewer than two, or fewer
    than the other groups (TRL's GRPO trains groups of one size)."""

    rows: Counter[str] = field(default_factory=Counter)
    groups: list[str] = field(default_factory=list)


def without_failed(rows: list[dict[str, Any]], indices: list[int], keys: list[str], excluded: Excluded) -> list[int]:
    """`indices` less the failed rows and the rows of groups a failure left short."""
    excluded.rows = count_failures([rows[i] for i in indices])
    if not excluded.rows:
        return indices
    usable: dict[str, list[int]] = defaultdict(list)
    touched = set()
    for i in indices:
        gid = "/".join(str(rows[i].get(k)) for k in keys)
        members = usable[gid]  # a group all of whose rows failed is still a group that was dropped
        if failure(rows[i]) is None:
            members.append(i)
        else:
            touched.add(gid)
    full = max(len(members) for members in usable.values())
    excluded.groups = [gid for gid in usable if gid in touched and (len(usable[gid]) < max(full, 2))]
    dropped = set(excluded.groups)
    return [i for gid, members in usable.items() if gid not in dropped for i in members]


def identical_samples(groups: list[Group]) -> list[str]:
    """Groups whose samples are all the same text: nothing to compare (a greedy or collapsed sampler)."""
    return [g.group_id for g in groups if len({s.response for s in g.samples}) == 1]


def load_groups(directory: Path, turns: str, reward_column: str, split: str | None,
                max_rows: int | None = None, group_by: str | None = None,
                excluded: Excluded | None = None) -> list[Group]:
    """Read a scored dataset and return its GRPO groups (raises UserError on any bad input). Rows whose
    sample or judgement failed are left out, with the groups they leave short (counted in `excluded`)."""
    table = ds.read_table(directory)
    ds.require_columns(table, REQUIRED, directory)
    if max_rows:
        table = table.slice(0, max_rows)
    rows = table.to_pylist()
    if not rows:
        raise UserError(f"{directory}: has no rows")
    rows_codec.check(rows, CHECKED, directory)
    indices = select_rows(rows, turns, split, directory)
    keys = group_columns(rows, indices, turns, group_by)
    ds.require_columns(table, REQUIRED + keys + [reward_column], directory)
    excluded = excluded if excluded is not None else Excluded()
    indices = without_failed(rows, indices, keys, excluded)
    if not indices:
        raise UserError(f"{directory}: every group lost a sample to a failed request or judgement "
                        f"({describe(excluded.rows)}); nothing to train on (rollout/score them again)")
    return build_groups(rows, indices, reward_column, keys, directory)
