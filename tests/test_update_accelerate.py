"""`update` as `recipe run` launches it under `accelerate launch` (the recipe's `accelerate:` section)
with the shipped DDP and FSDP2 configs on 2 CPU processes (gloo) trains the same step as one process.

Each process holds half of every group; if the stored completions or rewards reached the wrong
process or position, or FSDP's gathered weights were saved wrongly, the first step's loss, gradient
norm or the written weights would differ. With LoRA and --merge-lora, FSDP's sharded adapter must be
gathered before merging.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml
from helpers import cli
from safetensors.torch import load_file
from test_update_data import read_metrics, scored_rows, tiny_model_dir, write_dataset

from metaspatial_cli.recipes.runner import execute_steps, write_config_files
from metaspatial_cli.recipes.spec import load_recipe
from metaspatial_cli.recipes.steps import build_steps
from stages.core import vlm
from stages.update import Config
from stages.update.train import policy_dtype

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "accelerate"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_update(workdir: Path, model: Path, update: dict, accelerate: str | None) -> Path:
    """The recipe's update step of iteration 1, run by the recipe runner over the same scored rows."""
    recipe = {"workdir": str(workdir), "model": str(model), "rollout": {"n": 4},
              "update": {"max_steps": 1, "learning_rate": 1e-3, "loss_type": "dapo", "beta": 0.04, **update}}
    if accelerate:  # CPU: no bf16 autocast, no compiler; gloo is torch.distributed's CPU backend
        recipe["accelerate"] = {"config_file": str(EXAMPLES / accelerate), "num_processes": 2,
                                "mixed_precision": "no", "dynamo_backend": "no", "main_process_port": free_port()}
    path = workdir.parent / f"{workdir.name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    spec = load_recipe(path)
    write_config_files(spec)
    step = next(s for s in build_steps(spec) if s.kind == "update")
    assert bool(step.launcher) == bool(accelerate)
    data = Path(step.args[step.args.index("--input") + 1])
    rows = scored_rows(vlm.load_processor(model).tokenizer, data, groups=2, group_size=4,
                       rewards=[[0.9, 0.1, 0.5, 0.3], [0.0, 1.2, 0.7, 0.2]])
    write_dataset(data, rows)
    execute_steps([step], workdir / "recipe.log")
    return step.output


def assert_same_step(two: Path, one: Path) -> None:
    a_metrics, b_metrics = read_metrics(two)[0], read_metrics(one)[0]
    assert a_metrics["loss"] == pytest.approx(b_metrics["loss"], abs=1e-6)
    assert a_metrics["grad_norm"] == pytest.approx(b_metrics["grad_norm"], rel=1e-5)
    assert a_metrics["reward"] == pytest.approx(b_metrics["reward"], abs=1e-6)
    a, b = load_file(two / "model.safetensors"), load_file(one / "model.safetensors")
    assert a.keys() == b.keys()
    # Adam's first step moves each weight by about the learning rate (1e-3) whatever the gradient's
    # size, so weights with near-zero gradients may differ by rounding; all others agree closely.
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("config", ["ddp.yaml", "fsdp.yaml"])
def test_two_cpu_processes_under_the_recipes_accelerate_launch_match_one(tmp_path_factory, tmp_path, config):
    model = tiny_model_dir(tmp_path_factory)
    two = run_update(tmp_path / "two", model, {"per_device_train_batch_size": 4}, config)
    one = run_update(tmp_path / "one", model, {"per_device_train_batch_size": 8}, None)
    assert_same_step(two, one)
    assert (two / "processor_config.json").is_file()


@pytest.mark.slow
def test_merge_lora_under_fsdp_gathers_the_adapter_first(tmp_path_factory, tmp_path):
    model = tiny_model_dir(tmp_path_factory)
    lora = {"lora_r": 4, "lora_dropout": 0.0, "merge_lora": True, "learning_rate": 1e-2}  # dropout draws differ per process
    two = run_update(tmp_path / "two", model, {"per_device_train_batch_size": 4, **lora}, "fsdp.yaml")
    one = run_update(tmp_path / "one", model, {"per_device_train_batch_size": 8, **lora}, None)
    assert not (two / "adapter_config.json").exists()
    assert_same_step(two, one)
    base = load_file(model / "model.safetensors")
    merged = load_file(two / "model.safetensors")
    moved = [k for k in base if "q_proj.weight" in k and (merged[k] - base[k]).abs().max() > 1e-6]
    assert moved  # the adapter's update is in the merged weights


@pytest.mark.parametrize("options, on_gpu, deepspeed, dtype", [
    ({}, False, False, "float32"),                              # CPU: always float32
    ({"dtype": "bfloat16"}, False, False, "float32"),
    ({}, True, False, "float32"),                               # full FT on GPUs: float32 master weights
    ({}, True, True, "bfloat16"),                               # DeepSpeed keeps its own float32 copy
    ({"lora_r": 16}, True, False, "bfloat16"),                  # LoRA: the base is frozen
    ({"lora_r": 16, "bf16": False}, True, False, "float32"),
    ({"dtype": "bfloat16"}, True, False, "bfloat16"),
])
def test_policy_dtype(options, on_gpu, deepspeed, dtype):
    assert policy_dtype(Config(model="m", **options), on_gpu, deepspeed) == dtype


def test_flash_attention_without_a_gpu_is_refused_naming_the_flag(tmp_path):
    code, output = cli("update", "--input", tmp_path, "--output", tmp_path / "out", "--model", "m",
                       "--attn-implementation", "flash_attention_2")
    assert code == 2 and "--attn-implementation flash_attention_2: needs a GPU" in output
    assert not (tmp_path / "out").exists()
