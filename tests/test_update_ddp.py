"""`accelerate launch` with the shipped DDP config on 2 CPU processes (gloo) trains the same step as
one process.

Each process holds half of every group; if the stored completions or rewards reached the wrong
process or position, the first step's loss, gradient norm or weights would differ.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file
from test_update_data import read_metrics, scored_rows, tiny_model_dir, write_dataset

from stages.core import vlm

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "accelerate"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def update_cmd(data: Path, out: Path, model: Path, batch: int) -> list[str]:
    return ["update", "--input", str(data), "--output", str(out), "--model", str(model), "--max-steps", "1",
            "--per-device-train-batch-size", str(batch), "--learning-rate", "1e-3", "--loss-type", "dapo"]


@pytest.mark.slow
def test_two_cpu_processes_match_one(tmp_path_factory, tmp_path):
    model = tiny_model_dir(tmp_path_factory)
    rows = scored_rows(vlm.load_processor(model).tokenizer, tmp_path / "scores", groups=2, group_size=4,
                       rewards=[[0.9, 0.1, 0.5, 0.3], [0.0, 1.2, 0.7, 0.2]])
    data = write_dataset(tmp_path / "scores", rows)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRL_EXPERIMENTAL_SILENCE": "1"}
    # The shipped DDP config, on 2 CPU processes: without GPUs torch.distributed falls back to gloo.
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(EXAMPLES / "ddp.yaml"),
                "--num_processes", "2", "--mixed_precision", "no", "--dynamo_backend", "no",
                "--main_process_port", str(free_port()), "-m", "metaspatial_cli"]
    ddp = subprocess.run(launcher + update_cmd(data, tmp_path / "ddp", model, 4), env=env,
                         capture_output=True, text=True, timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = subprocess.run([sys.executable, "-m", "metaspatial_cli", *update_cmd(data, tmp_path / "one", model, 8)],
                            env=env, capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    two, one = read_metrics(tmp_path / "ddp")[0], read_metrics(tmp_path / "one")[0]
    assert two["loss"] == pytest.approx(one["loss"], abs=1e-6)
    assert two["grad_norm"] == pytest.approx(one["grad_norm"], rel=1e-5)
    assert two["reward"] == pytest.approx(one["reward"], abs=1e-6)
    a, b = load_file(tmp_path / "ddp" / "model.safetensors"), load_file(tmp_path / "one" / "model.safetensors")
    assert a.keys() == b.keys()
    # Adam's first step moves each weight by about the learning rate (1e-3) whatever the gradient's
    # size, so weights with near-zero gradients may differ by rounding; all others agree closely.
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4
