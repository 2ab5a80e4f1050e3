"""The warm-up's answers look exactly like guided rollouts, so the model learns the format it samples in."""

import json

import pytest
from helpers import REPO, cli

from metaspatial_cli.pretrain import answer_text
from stages.core import vlm
from stages.core.answer import VALID, parse_answer
from stages.core.tiny_vlm import build_tiny_vlm


def test_answer_text_is_a_valid_rounded_answer():
    text = answer_text({"bed_1": [2.04, 1.26, 0.3], "lamp_1": [0.5, 3.0, 1.449]}, decimals=1)
    parsed = parse_answer(text, ["bed_1", "lamp_1"])
    assert parsed.format_level == VALID
    assert parsed.placements == {"bed_1": (2.0, 1.3, 0.3), "lamp_1": (0.5, 3.0, 1.4)}
    body = text.split("<answer>")[1].split("</answer>")[0]
    assert json.loads(body)[0] == {"new_object_id": "bed_1", "x": 2.0, "y": 1.3, "z": 0.3}
    assert text.startswith("<think></think>\n<answer>[{\"new_object_id\": \"bed_1\", \"x\": 2.0")


def test_pretrain_command_writes_a_loadable_model_whose_loss_falls(tmp_path):
    base = build_tiny_vlm(tmp_path / "tiny")
    out = tmp_path / "warm"
    code, text = cli("pretrain", "--base", base, "--output", out, "--num-rooms", 2, "--epochs", 3,
                     "--learning-rate", 0.01, "--batch-size", 1)
    assert code == 0, text
    report = json.loads((out / "pretrain.json").read_text())
    assert report["rooms"] == 2 and report["epoch_loss"][-1] < report["epoch_loss"][0]
    assert vlm.load_model(str(out), dtype="float32") is not None
    assert not list(tmp_path.glob(".warm.tmp-*"))  # the staging folder is gone


def test_pretrain_command_rejects_bad_options_and_writes_nothing(tmp_path):
    code, text = cli("pretrain", "--base", tmp_path / "tiny", "--output", tmp_path / "warm", "--epochs", 0)
    assert code == 2 and "epochs" in text
    code, text = cli("pretrain", "--base", tmp_path / "missing", "--output", tmp_path / "warm", "--num-rooms", 1)
    assert code == 2 and "--base: cannot load" in text
    assert not (tmp_path / "warm").exists() and not list(tmp_path.glob(".warm.tmp-*"))


def test_pretrain_is_an_sft_trainer_run_that_resumes_after_kill_9(tmp_path):
    """Killed after its first epoch's checkpoint, a re-run resumes from it (TRL's SFTTrainer) and ends
    with the same conventions as update: metrics.jsonl one record per step, a complete manifest."""
    import os
    import signal
    import subprocess
    import sys
    import time

    base = build_tiny_vlm(tmp_path / "tiny")
    out = tmp_path / "warm"
    cmd = [sys.executable, "-m", "metaspatial_cli", "pretrain", "--base", str(base), "--output", str(out),
           "--num-rooms", "2", "--epochs", "3", "--learning-rate", "0.01", "--batch-size", "1"]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not (out / "_checkpoints" / "checkpoint-2" / "trainer_state.json").exists():
        assert first.poll() is None and time.time() < deadline, "no first checkpoint"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert not json.loads((out / "_manifest.json").read_text())["complete"]
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from" in again.stderr and "checkpoint-" in again.stderr
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["stage"] == "pretrain" and manifest["complete"] and manifest["steps"] == 6
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 6
    assert not (out / "_checkpoints").exists() and not (out / "training_args.bin").exists()
    skipped = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert skipped.returncode == 0 and "already holds this warm-up" in skipped.stderr
    changed = subprocess.run([*cmd[:-2], "--batch-size", "2"], capture_output=True, text=True, timeout=600)
    assert changed.returncode == 2 and "batch_size" in changed.stderr


@pytest.mark.slow
def test_pretrain_under_the_recipes_accelerate_launch_trains_on_two_processes(tmp_path):
    """The recipe's `accelerate:` section launches pretrain as it launches update: two CPU processes
    share each step's rooms (half the steps of one process), and the model comes out complete."""
    import socket

    import yaml

    from metaspatial_cli.recipes.runner import execute_steps, write_config_files
    from metaspatial_cli.recipes.spec import load_recipe
    from metaspatial_cli.recipes.steps import build_steps

    base = build_tiny_vlm(tmp_path / "tiny")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    recipe = {"workdir": str(tmp_path / "run"), "model": str(tmp_path / "warm"), "stages": ["gen-prompts"],
              "pretrain": {"base": str(base), "num_rooms": 4, "epochs": 2, "batch_size": 1, "learning_rate": 0.01},
              "accelerate": {"config_file": str(REPO / "examples" / "accelerate" / "ddp.yaml"), "num_processes": 2,
                             "mixed_precision": "no", "dynamo_backend": "no", "main_process_port": port}}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    spec = load_recipe(path)
    write_config_files(spec)
    step = next(s for s in build_steps(spec) if s.name == "pretrain")
    assert step.launcher[:2] == ("accelerate", "launch")
    execute_steps([step], tmp_path / "recipe.log")
    manifest = json.loads((tmp_path / "warm" / "_manifest.json").read_text())
    assert manifest["complete"] and manifest["steps"] == 4  # 4 rooms x 2 epochs / 2 processes
