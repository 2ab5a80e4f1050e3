"""The stored-rollout bridge hands each trainer slot the right sample, on every process."""

from __future__ import annotations

import pytest

from stages.update.trl_bridge import GROUP_COLUMN, SAMPLE_KEY, StoredGroup, StoredRollouts, stored_reward


def rollouts(group_size: int = 4) -> StoredRollouts:
    groups = {}
    for g in ("a", "b"):
        chats = [[{"role": "user", "content": [{"type": "text", "text": f"{g}{i}"}]}] for i in range(group_size)]
        groups[g] = StoredGroup(chats, [[] for _ in range(group_size)], [[1, i] for i in range(group_size)],
                                [[100 + i] * (i + 1) for i in range(group_size)], [float(i) for i in range(group_size)],
                                [[-0.5] * (i + 1) if i % 2 else [None] * (i + 1) for i in range(group_size)])
    return StoredRollouts(groups, group_size)


def drawn(keys: str) -> list[dict]:
    """Rows as TRL's sampler draws them: each group row repeated, in order."""
    return [{GROUP_COLUMN: k, "prompt": [{"role": "user", "content": k}]} for k in keys]


def test_each_process_gets_the_samples_of_its_slice():
    stored = rollouts()
    # Global batch "aaaabbbb" over 2 processes of 4 slots; then over 4 processes of 2 slots.
    for procs, width in ((2, 4), (4, 2)):
        batch = "aaaabbbb"
        seen = []
        for p in range(procs):
            local = stored.expand(drawn(batch[p * width:(p + 1) * width]), p)
            out = stored([r["prompt"] for r in local], trainer=None)
            seen += [(r["prompt"][0][SAMPLE_KEY][0], r["prompt"][0][SAMPLE_KEY][1]) for r in local]
            assert out["stored_reward"] == [float(i) for _, i in seen[-width:]]
            assert out["completion_ids"] == [[100 + i] * (i + 1) for _, i in seen[-width:]]
            assert out["logprobs"] == [[-0.5 if i % 2 else None] * (i + 1) for _, i in seen[-width:]]
        assert seen == [("a", i) for i in range(4)] + [("b", i) for i in range(4)]
        assert [r["prompt"][0]["content"][0]["text"] for r in stored.expand(drawn("aaaa"), 0)] == \
            ["a0", "a1", "a2", "a3"]


def test_a_group_split_off_its_boundary_is_a_bug_not_silence():
    with pytest.raises(RuntimeError, match="batch layout changed"):
        rollouts().expand(drawn("abbb"), 0)


def test_reward_function_passes_stored_rewards_through():
    assert stored_reward(completions=["x", "y"], stored_reward=[0.5, -1.0], prompts=None) == [0.5, -1.0]
