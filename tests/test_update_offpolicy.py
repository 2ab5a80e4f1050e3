"""The paper's GRPO step on stored completions: off-policy ratios, temperature, entropy bonus.

- stored sampling log-probabilities (rollout --logprobs) are the old log-probabilities of the
  clipped ratio: with those of an older policy the first step's loss and gradient equal an
  independent computation of the clipped objective against them, and clipping acts; with those of
  the current policy (at the sampling temperature) the ratio is 1;
- the entropy bonus subtracts coef x mean token entropy from the loss (as verl, the paper's code).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_update_data import (
    completion_log_softmax,
    completion_logps,
    read_metrics,
    scored_rows,
    write_dataset,
)
from test_update_train import published_loss

from stages import update
from stages.core import vlm

REWARDS = [[0.9, 0.1, 0.5, 0.3], [0.0, 1.2, 0.7, 0.2]]




def older_policy(model_dir: Path):
    """The tiny model with every weight nudged: stands for the policy an earlier iteration sampled with."""
    model = vlm.load_model(model_dir)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
    return model


def with_logprobs(rows, logps, temperature: float | None = None):
    for row, lp in zip(rows, logps, strict=True):
        row["response_logprobs"] = [float(v) for v in lp]
        if temperature is not None:
            row["temperature"] = temperature
    return rows


def run_one_step(tmp_path: Path, tiny_model: Path, data: Path, **options) -> dict:
    out = update.run(update.Config(input=data, output=tmp_path / "model", model=str(tiny_model), max_steps=1,
                                   per_device_train_batch_size=8, max_grad_norm=1e6, **options))
    return {"first": read_metrics(out)[0], "manifest": json.loads((out / "_manifest.json").read_text())}


@pytest.mark.parametrize("loss_type", ["grpo", "dapo"])
def test_stale_logprobs_are_the_old_logprobs_of_the_clipped_ratio(tmp_path, tiny_model, processor, loss_type):
    data = tmp_path / "scores"
    rows = scored_rows(processor.tokenizer, data, rewards=REWARDS)
    with torch.no_grad():
        old = completion_logps(older_policy(tiny_model), processor, data, rows)
    write_dataset(data, with_logprobs(rows, old))
    result = run_one_step(tmp_path, tiny_model, data, loss_type=loss_type)
    first = result["first"]
    model = vlm.load_model(tiny_model).train()
    loss, grad_norm = published_loss(model, processor, data, rows, loss_type, old_logps=old)
    assert first["loss"] == pytest.approx(loss, abs=1e-5)
    assert first["grad_norm"] == pytest.approx(grad_norm, rel=1e-5)
    with torch.no_grad():
        ratios = torch.cat([torch.exp(lp - o) for lp, o in zip(completion_logps(model, processor, data, rows), old,
                                                                strict=True)])
    assert first["ratio/min"] == pytest.approx(float(ratios.min()), rel=1e-4)
    assert first["ratio/max"] == pytest.approx(float(ratios.max()), rel=1e-4)
    assert first["ratio/mean"] == pytest.approx(float(ratios.mean()), rel=1e-4)
    assert first["ratio/min"] < 0.8 or first["ratio/max"] > 1.2  # the policies differ beyond the clip range
    assert first["clip_ratio/region_mean"] > 0.0
    assert result["manifest"]["old_logprobs"] == "sampling"


def test_current_policy_logprobs_at_the_sampling_temperature_give_ratio_one(tmp_path, tiny_model, processor):
    """Log-probabilities taken at temperature 0.7 (the rows' `temperature`) by the current policy: the
    trainer must compute its own at 0.7 too, else the ratio would be far from 1."""
    data = tmp_path / "scores"
    rows = scored_rows(processor.tokenizer, data, rewards=REWARDS)
    with torch.no_grad():
        current = completion_logps(vlm.load_model(tiny_model), processor, data, rows, temperature=0.7)
    write_dataset(data, with_logprobs(rows, current, temperature=0.7))
    result = run_one_step(tmp_path, tiny_model, data, loss_type="dapo")
    first = result["first"]
    assert first["ratio/min"] == pytest.approx(1.0, abs=1e-5)
    assert first["ratio/max"] == pytest.approx(1.0, abs=1e-5)
    assert first["clip_ratio/region_mean"] == 0.0
    assert result["manifest"]["temperature"] == 0.7


def test_entropy_bonus_subtracts_coef_times_mean_token_entropy(tmp_path, tiny_model, processor):
    data = tmp_path / "scores"
    rows = scored_rows(processor.tokenizer, data, rewards=REWARDS)
    write_dataset(data, rows)
    first = run_one_step(tmp_path, tiny_model, data, loss_type="dapo", entropy_coef=0.1)["first"]
    model = vlm.load_model(tiny_model).train()
    policy_loss, _ = published_loss(model, processor, data, rows, "dapo")
    with torch.no_grad():
        dists = completion_log_softmax(model, processor, data, rows)
    entropy = torch.cat([-(d.exp() * d).sum(-1) for d in dists]).mean()
    assert first["entropy"] == pytest.approx(float(entropy), rel=1e-5)
    assert first["loss"] == pytest.approx(policy_loss - 0.1 * float(entropy), abs=1e-5)


def chain_of_updates(tmp_path: Path, tiny_model: Path, data: Path, captured: list, **options) -> list[Path]:
    """Three iterations as a recipe runs them: each trains the previous output, the reference stays the first."""
    model, outs = str(tiny_model), []
    for i in (1, 2, 3):
        out = update.run(update.Config(input=data, output=tmp_path / f"iter-{i}", model=model, max_steps=1,
                                       per_device_train_batch_size=8, beta=0.04, reference_model=str(tiny_model),
                                       **options))
        model = str(out)
        outs.append(out)
    assert len(captured) == 3
    return outs


@pytest.fixture
def captured(monkeypatch):
    """Every trainer `update` builds, for looking at its reference model."""
    from stages.update import trl_bridge

    trainers, build = [], trl_bridge.build_trainer
    monkeypatch.setattr(trl_bridge, "build_trainer", lambda *a, **k: trainers.append(build(*a, **k)) or trainers[-1])
    return trainers


def test_reference_of_iteration_3_is_the_initial_policy(tmp_path, tiny_model, processor, captured):
    data = write_dataset(tmp_path / "scores", scored_rows(processor.tokenizer, tmp_path / "scores", rewards=REWARDS))
    outs = chain_of_updates(tmp_path, tiny_model, data, captured, learning_rate=1e-2)
    initial = vlm.load_model(tiny_model).state_dict()
    reference = captured[2].accelerator.unwrap_model(captured[2].ref_model).state_dict()
    assert reference.keys() == initial.keys()
    assert all(torch.equal(reference[k], initial[k]) for k in initial)
    started_from = vlm.load_model(outs[1]).state_dict()  # iteration 3 trained iteration 2's output
    assert any(not torch.equal(started_from[k], initial[k]) for k in initial)
    manifest = json.loads((outs[2] / "_manifest.json").read_text())
    assert manifest["reference_model"] == str(tiny_model)
    assert read_metrics(outs[0])[0]["kl"] == 0.0  # iteration 1 starts at the reference
    assert read_metrics(outs[2])[0]["kl"] > 0.0  # iteration 3 starts elsewhere and is pulled back


def test_lora_reference_of_iteration_3_is_the_initial_policy(tmp_path, tiny_model, processor, captured):
    """LoRA over the initial policy: the reference is the policy with adapters disabled (nothing loaded,
    no copy of the previous adapter), which computes exactly what the initial policy computes."""
    data = write_dataset(tmp_path / "scores", scored_rows(processor.tokenizer, tmp_path / "scores", rewards=REWARDS))
    chain_of_updates(tmp_path, tiny_model, data, captured, lora_r=4, learning_rate=5e-2)
    trainer = captured[2]
    policy = trainer.accelerator.unwrap_model(trainer.model)
    assert trainer.ref_model is None and list(policy.peft_config) == ["default"]
    ids = torch.tensor([processor.tokenizer("a sofa by the wall")["input_ids"]])
    initial = vlm.load_model(tiny_model)
    with torch.no_grad(), policy.disable_adapter():
        assert torch.equal(policy(input_ids=ids).logits, initial(input_ids=ids).logits)
        adapted = policy(input_ids=ids).logits
    with torch.no_grad():
        assert not torch.equal(policy(input_ids=ids).logits, adapted)  # the adapter has moved the policy


def test_system_prompt_reaches_the_trainer(tmp_path, tiny_model, processor):
    """Rows with a system message: log-probs taken by the current policy after that message give a ratio
    of 1 only if the trainer scores the completions after the same message."""
    data = tmp_path / "scores"
    rows = scored_rows(processor.tokenizer, data, rewards=REWARDS)
    for row in rows:
        row["system_prompt"] = "Reason inside <think></think> first, then answer inside <answer></answer>."
    with torch.no_grad():
        current = completion_logps(vlm.load_model(tiny_model), processor, data, rows)
        without = completion_logps(vlm.load_model(tiny_model), processor, data,
                                   [{**r, "system_prompt": None} for r in rows])
    assert max(float((a - b).abs().max()) for a, b in zip(current, without, strict=True)) > 1e-3
    write_dataset(data, with_logprobs(rows, current))
    first = run_one_step(tmp_path, tiny_model, data, loss_type="dapo")["first"]
    assert first["ratio/min"] == pytest.approx(1.0, abs=1e-5)
    assert first["ratio/max"] == pytest.approx(1.0, abs=1e-5)
