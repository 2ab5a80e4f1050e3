"""A recipe's step arithmetic is checked before anything runs; `update` runs under the recipe's
`accelerate launch`; old iterations' weights are pruned."""

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from metaspatial_cli.app import app
from metaspatial_cli.recipes.arithmetic import StepArithmetic, gpus, step_arithmetic
from metaspatial_cli.recipes.runner import check_runnable, prune_models
from metaspatial_cli.recipes.spec import load_recipe
from metaspatial_cli.recipes.steps import build_steps, plan_script
from stages.core.errors import UserError

REPO = Path(__file__).resolve().parents[1]
FSDP = REPO / "examples" / "accelerate" / "fsdp.yaml"


def recipe_file(tmp_path: Path, update: str, rollout: str = "n: 3", extra: str = "", turns: int = 1) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(f"workdir: {tmp_path}/run\nmodel: org/name\niterations: 2\nturns: {turns}\n{extra}"
                    f"rollout: {{{rollout}}}\nupdate: {{{update}}}\n")
    return path


def plan(path: Path, *sets: str):
    args = ["recipe", "plan", str(path)] + [a for s in sets for a in ("--set", s)]
    return CliRunner().invoke(app, args)


def test_the_unfixed_7b_step_is_refused_before_anything_runs_naming_the_keys(tmp_path):
    result = plan(recipe_file(tmp_path, "per_device_train_batch_size: 1, gradient_accumulation_steps: 4"))
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert ("update.per_device_train_batch_size (1) × update.gradient_accumulation_steps (4) × "
            "accelerate.num_processes (1) = 4 completions per optimizer step, not a multiple of the group size 3 "
            "(rollout.n)") in message
    assert "update.gradient_accumulation_steps: 6" in message
    assert not (tmp_path / "run").exists()
    assert plan(recipe_file(tmp_path, "per_device_train_batch_size: 1, gradient_accumulation_steps: 6")).exit_code == 0


def test_processes_count_in_the_step(tmp_path):
    extra = f"accelerate: {{config_file: {FSDP}, num_processes: 2}}\n"
    path = recipe_file(tmp_path, "per_device_train_batch_size: 3", extra=extra)
    assert plan(path).exit_code == 0
    refused = plan(path, "accelerate.num_processes=4", "update.per_device_train_batch_size=1")
    assert refused.exit_code == 2 and "accelerate.num_processes (4)" in refused.output
    assert plan(path, "accelerate.num_processes=3", "update.per_device_train_batch_size=1").exit_code == 0


def test_group_size_is_n_times_turns_only_when_every_turn_of_a_room_is_one_group(tmp_path):
    final = load_recipe(recipe_file(tmp_path, "per_device_train_batch_size: 3", turns=3))
    assert step_arithmetic(final).group_size == 3
    every = recipe_file(tmp_path, "per_device_train_batch_size: 3, turns: every, group_by: prompt_id", turns=3)
    with pytest.raises(UserError, match=r"group size 9 \(rollout.n × turns\)"):
        load_recipe(every)
    assert step_arithmetic(load_recipe(every, ["update.per_device_train_batch_size=9"])).group_size == 9
    # the rollout's default n (4) when the recipe leaves it out
    with pytest.raises(UserError, match=r"group size 4 \(rollout.n\)"):
        load_recipe(recipe_file(tmp_path, "per_device_train_batch_size: 6", rollout="temperature: 1.0"))


@given(n=st.integers(1, 16), per_device=st.integers(1, 8), accumulation=st.integers(1, 16),
       processes=st.integers(1, 16))
def test_the_suggested_accumulation_always_makes_whole_groups(n, per_device, accumulation, processes):
    step = StepArithmetic(n, "rollout.n", per_device, accumulation, processes)
    fixed = StepArithmetic(n, "rollout.n", per_device, step.suggestion(), processes)
    assert fixed.completions_per_step % n == 0
    assert accumulation <= step.suggestion() < accumulation + n
    if step.completions_per_step % n == 0:
        assert step.suggestion() == accumulation


@pytest.mark.parametrize("section, message", [
    ("{num_processes: 2}", "accelerate.config_file: expected an accelerate config file"),
    (f"{{config_file: {FSDP}, num_processes: 0}}", "accelerate.num_processes: expected a whole number"),
    (f"{{config_file: {FSDP}, mixed_precision: no}}", "accelerate.mixed_precision: .*write 'no'"),
    ("[1, 2]", "accelerate: Input should be a valid dictionary"),
])
def test_bad_accelerate_sections_name_the_key(tmp_path, section, message):
    with pytest.raises(UserError, match=message):
        load_recipe(recipe_file(tmp_path, "per_device_train_batch_size: 3", extra=f"accelerate: {section}\n"))


def test_plan_launches_update_under_accelerate_and_states_the_gpus(tmp_path):
    extra = f"accelerate: {{config_file: {FSDP}, num_processes: 2, main_process_port: 29555}}\n"
    recipe = load_recipe(recipe_file(tmp_path, "per_device_train_batch_size: 3", "n: 3, backend: vllm, "
                                     "tensor_parallel_size: 2", extra=extra))
    update = [s for s in build_steps(recipe) if s.name.endswith("/update")][0]
    assert update.command_line().startswith(f"accelerate launch --config_file {FSDP} --num_processes 2 "
                                            "--main_process_port 29555 -m metaspatial_cli update --config ")
    script = plan_script(recipe, [])
    assert "\n# gpus rollout=2 update=2\n" in script and update.command_line() in script
    assert gpus(recipe) == {"rollout": 2, "update": 2}


def test_without_accelerate_update_is_a_plain_step(tmp_path):
    recipe = load_recipe(recipe_file(tmp_path, "per_device_train_batch_size: 3", "n: 3, backend: openai"))
    update = [s for s in build_steps(recipe) if s.name.endswith("/update")][0]
    assert update.launcher == () and update.command_line().startswith("metaspatial update ")
    assert gpus(recipe) == {"rollout": 0, "update": 1}


def test_keep_models_prunes_older_iterations_weights_only(tmp_path):
    recipe = load_recipe(recipe_file(tmp_path, "per_device_train_batch_size: 3", extra="keep_models: 1\n"),
                         ["iterations=3"])
    assert recipe.keep_models == 1
    updates = [s for s in build_steps(recipe) if s.kind == "update"]
    for step in updates:
        step.output.mkdir(parents=True)
        for name in ("model.safetensors", "config.json", "metrics.jsonl"):
            (step.output / name).write_text("x")
        (step.output / "_manifest.json").write_text(json.dumps({"stage": "update", "complete": True}))
    assert prune_models(updates, updates[0], 1) == []
    assert prune_models(updates, updates[2], 1) == [updates[0].output, updates[1].output]
    for old in updates[:2]:
        assert sorted(p.name for p in old.output.iterdir()) == ["_manifest.json", "config.json", "metrics.jsonl"]
        assert json.loads((old.output / "_manifest.json").read_text()) == {"stage": "update", "complete": True,
                                                                          "weights_pruned": True}
    assert (updates[2].output / "model.safetensors").is_file()
    with pytest.raises(UserError, match="keep_models: Input should be greater than or equal to 1"):
        load_recipe(recipe_file(tmp_path, "per_device_train_batch_size: 3", extra="keep_models: 0\n"))


def test_recipe_run_refuses_a_machine_with_fewer_gpus_than_a_step_needs(tmp_path, monkeypatch):
    extra = f"accelerate: {{config_file: {FSDP}, num_processes: 4}}\n"
    recipe = load_recipe(recipe_file(tmp_path, "per_device_train_batch_size: 3", extra=extra))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the model is a hub name: only the GPUs are in question
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(UserError, match=r"the steps need 4 GPUs \(rollout 1, update 4: .*\) and this machine has 2"):
        check_runnable(recipe)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    check_runnable(recipe)
    plain = load_recipe(recipe_file(tmp_path, "per_device_train_batch_size: 3"))
    with pytest.raises(UserError, match=r"update would run as one process seeing 4 GPUs.*num_processes: 4"):
        check_runnable(plain)  # found before the first rollout, not when TRL refuses nn.DataParallel
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    check_runnable(plain)
