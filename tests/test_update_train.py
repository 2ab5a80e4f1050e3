"""`update` trains the policy in the right direction, with TRL's loss on exactly the stored data.

- correctness: after a few steps, completions with positive advantage gain log-probability and
  those with negative advantage lose it (full fine-tuning and LoRA), measured with the model;
- parity: TRL's first-step loss and gradient norm equal an independent computation of the
  published GRPO / DAPO objectives on the same tokens, rewards and groups;
- the written model loads with `vlm.load_model`, also as a LoRA adapter naming its base.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import torch
from test_update_data import (
    completion_logps,
    final_turn_rows,
    read_metrics,
    scored_rows,
    write_dataset,
)

from stages import update
from stages.core import vlm

# Good answers are numbers, bad ones words: they share no tokens but EOS, so pushing one kind up
# cannot drag the other along, and the expected direction of every completion is unambiguous.
GOOD_BAD = ["1.5 2.0 0.4", "the sofa goes somewhere", "3.25, 1.0, 0.75", "no idea where to put it"]


def alternating_rewards(groups: int, size: int) -> list[list[float]]:
    """Reward 1 for the number answers (even positions of GOOD_BAD), 0 for the word answers."""
    return [[1.0 if (g + s) % 2 == 0 else 0.0 for s in range(size)] for g in range(groups)]


def sequence_logps(model_dir: Path, processor, directory: Path, rows) -> list[float]:
    model = vlm.load_model(model_dir)
    with torch.no_grad():
        return [float(lp.sum()) for lp in completion_logps(model, processor, directory, rows)]


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_positive_advantages_gain_probability(tmp_path, tiny_model, processor, lora):
    data = tmp_path / "scores"
    rows = scored_rows(processor.tokenizer, data, groups=2, group_size=4, rewards=alternating_rewards(2, 4),
                       responses=GOOD_BAD)
    write_dataset(data, rows)
    options = {"lora_r": 8, "learning_rate": 5e-3} if lora else {"learning_rate": 1e-4}
    out = update.run(update.Config(input=data, output=tmp_path / "model", model=str(tiny_model), max_steps=4,
                                   per_device_train_batch_size=8, num_train_epochs=4, **options))
    before = sequence_logps(tiny_model, processor, data, rows)
    after = sequence_logps(out, processor, data, rows)
    for row, b, a in zip(rows, before, after, strict=True):
        if row["reward"] > 0:
            assert a > b, f"positive-advantage completion {row['response']!r} lost probability: {b} -> {a}"
        else:
            assert a < b, f"negative-advantage completion {row['response']!r} gained probability: {b} -> {a}"
    if lora:
        adapter = json.loads((out / "adapter_config.json").read_text())
        assert adapter["base_model_name_or_path"] == str(Path(tiny_model).resolve())
        assert (out / "adapter_model.safetensors").exists() and not (out / "model.safetensors").exists()
    else:
        assert (out / "model.safetensors").exists()


def published_loss(model, processor, directory: Path, rows, loss_type: str, group_by: str = "group_id",
                   epsilon: float = 0.2, drop_negative: bool = False, old_logps: list | None = None):
    """GRPO (Shao et al. 2024) and DAPO (Yu et al. 2025) objectives at the first step:

        A_i = (r_i - mean(r_group)) / (std(r_group) + 1e-4)        (sample std, TRL's epsilon)
        rho_it = pi(o_it) / pi_old(o_it)      pi_old: `old_logps` (the sampling policy), else pi itself (= 1)
        l_it = -min(rho_it A_i, clip(rho_it, 1 - eps, 1 + eps) A_i)
        grpo: mean over sequences of the mean over its tokens;  dapo: sum over all tokens / token count
    `drop_negative` applies off-policy sequence masking to sequences known to be far off-policy:
    negative-advantage sequences contribute nothing (but still count in the dapo denominator).
    """
    logps = completion_logps(model, processor, directory, rows)
    by_group: dict[str, list[float]] = {}
    for row in rows:
        by_group.setdefault(row[group_by], []).append(row["reward"])
    per_sequence, token_sum, token_count = [], 0.0, 0
    for i, (row, lp) in enumerate(zip(rows, logps, strict=True)):
        rewards = by_group[row[group_by]]
        advantage = (row["reward"] - statistics.mean(rewards)) / (statistics.stdev(rewards) + 1e-4)
        ratio = torch.exp(lp - (lp.detach() if old_logps is None else torch.as_tensor(old_logps[i])))
        token_loss = -torch.min(ratio * advantage, torch.clamp(ratio, 1 - epsilon, 1 + epsilon) * advantage)
        if drop_negative and advantage < 0:
            token_loss = token_loss * 0.0
        per_sequence.append(token_loss.mean())
        token_sum = token_sum + token_loss.sum()
        token_count += len(lp)
    loss = torch.stack(per_sequence).mean() if loss_type == "grpo" else token_sum / token_count
    model.zero_grad()
    loss.backward()
    grad_norm = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in model.parameters() if p.grad is not None))
    return float(loss), float(grad_norm)


@pytest.mark.parametrize("loss_type", ["grpo", "dapo"])
def test_first_step_loss_matches_published_formula(tmp_path, tiny_model, processor, loss_type):
    data = tmp_path / "scores"
    rewards = [[0.9, 0.1, 0.5, 0.3], [0.0, 1.2, 0.7, 0.2]]  # uneven, so groups and order matter
    rows = scored_rows(processor.tokenizer, data, groups=2, group_size=4, rewards=rewards)
    write_dataset(data, rows)
    out = update.run(update.Config(input=data, output=tmp_path / "model", model=str(tiny_model), max_steps=1,
                                   per_device_train_batch_size=8, loss_type=loss_type, max_grad_norm=1e6))
    first = read_metrics(out)[0]
    model = vlm.load_model(tiny_model).train()
    loss, grad_norm = published_loss(model, processor, data, rows, loss_type)
    assert first["loss"] == pytest.approx(loss, abs=1e-5)
    assert first["grad_norm"] == pytest.approx(grad_norm, rel=1e-5)
    assert first["reward"] == pytest.approx(statistics.mean(r for g in rewards for r in g), abs=1e-6)
    # no stored log-probabilities: the ratio is taken against the policy itself, exactly 1
    assert first["ratio/min"] == first["ratio/max"] == first["ratio/mean"] == 1.0
    assert json.loads((out / "_manifest.json").read_text())["old_logprobs"] == "policy"


def test_final_turn_parity_with_a_prompt_per_trajectory(tmp_path, tiny_model, processor):
    """Multi-turn: each trajectory's final turn has its own history and render; the trajectories of a
    room form the group. TRL must see each sample's own prompt and image to match."""
    data = tmp_path / "scores"
    rows = final_turn_rows(processor.tokenizer, data, returns=[[0.9, 0.1, 0.5, 0.3], [0.0, 1.2, 0.7, 0.2]])
    write_dataset(data, rows)
    out = update.run(update.Config(input=data, output=tmp_path / "model", model=str(tiny_model), max_steps=1,
                                   per_device_train_batch_size=8, loss_type="grpo", max_grad_norm=1e6))
    first = read_metrics(out)[0]
    assert json.loads((out / "_manifest.json").read_text())["groups"] == 2
    loss, grad_norm = published_loss(vlm.load_model(tiny_model).train(), processor, data, rows, "grpo",
                                     group_by="prompt_id")
    assert first["loss"] == pytest.approx(loss, abs=1e-5)
    assert first["grad_norm"] == pytest.approx(grad_norm, rel=1e-5)


def test_merged_lora_output_is_a_full_model(tmp_path, tiny_model, processor):
    data = write_dataset(tmp_path / "scores", scored_rows(processor.tokenizer, tmp_path / "scores"))
    out = update.run(update.Config(input=data, output=tmp_path / "model", model=str(tiny_model), max_steps=1,
                                   lora_r=4, merge_lora=True, learning_rate=1e-2))
    assert (out / "model.safetensors").exists() and not (out / "adapter_config.json").exists()
    model = vlm.load_model(out)
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert vlm.load_processor(out).tokenizer.chat_template is not None


def test_off_policy_masking_uses_the_stored_sampling_logprobs(tmp_path, tiny_model, processor):
    """Stored log-probabilities of 0 (probability 1) are far above the model's (about -8 per token),
    so with --off-policy-mask-threshold 1 every negative-advantage completion must be masked out:
    this only happens if rollout's `response_logprobs` reach TRL. (With --no-off-policy-correction,
    so the ratio itself stays 1 and only the masking differs.)"""
    data = tmp_path / "scores"
    rows = scored_rows(processor.tokenizer, data, rewards=[[0.9, 0.1, 0.5, 0.3], [0.0, 1.2, 0.7, 0.2]])
    for row in rows:
        row["response_logprobs"] = [0.0] * len(row["response_token_ids"])
    write_dataset(data, rows)
    out = update.run(update.Config(input=data, output=tmp_path / "model", model=str(tiny_model), max_steps=1,
                                   per_device_train_batch_size=8, loss_type="dapo", max_grad_norm=1e6,
                                   off_policy_mask_threshold=1.0, off_policy_correction=False))
    first = read_metrics(out)[0]
    model = vlm.load_model(tiny_model).train()
    masked = published_loss(model, processor, data, rows, "dapo", drop_negative=True)
    unmasked = published_loss(model, processor, data, rows, "dapo")
    assert first["loss"] == pytest.approx(masked[0], abs=1e-5)
    assert first["grad_norm"] == pytest.approx(masked[1], rel=1e-5)
    assert abs(masked[0] - unmasked[0]) > 1e-2
