"""What `update` prints: a line per step with its ETA, and none of TRL's deprecation warnings
(gradient checkpointing is off unless asked for; TRL's default was on)."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
from helpers import REPO
from test_update_cli import ENV
from test_update_data import scored_rows, write_dataset

from stages.core import vlm
from stages.update import Config
from stages.update.train import _grpo_options
from stages.update.trl_bridge import grpo_config


def test_gradient_checkpointing_is_off_unless_asked_for_without_a_warning(tmp_path):
    for wanted in (False, True):
        options = _grpo_options(Config(model="m", gradient_checkpointing=wanted), 2, 16, 1.0)
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            args = grpo_config(tmp_path, options)
        assert args.activation_checkpointing is wanted and args.gradient_checkpointing is wanted


@pytest.mark.slow
def test_update_logs_each_step_with_eta_and_no_deprecation_warnings(tmp_path, tiny_model):
    data = write_dataset(tmp_path / "scores", scored_rows(vlm.load_processor(tiny_model).tokenizer,
                                                          tmp_path / "scores"))
    for flags in ([], ["--gradient-checkpointing"]):
        out = tmp_path / f"model{len(flags)}"
        proc = subprocess.run([sys.executable, "-m", "metaspatial_cli", "update", "--input", str(data), "--output",
                               str(out), "--model", str(tiny_model), "--per-device-train-batch-size", "4",
                               "--max-steps", "2", *flags], cwd=REPO, env=ENV, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "deprecated" not in proc.stderr + proc.stdout
        steps = [line for line in proc.stdout.splitlines() if line.startswith("update: step")]
        assert len(steps) == 2 and all(" ETA " in line for line in steps), steps
