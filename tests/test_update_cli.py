"""`metaspatial update` end to end: the real CLI, re-runs, a killed run resumed, and the written
model sampled again by `metaspatial rollout`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from test_update_data import read_metrics, scored_rows, write_dataset
from typer.testing import CliRunner

from metaspatial_cli.app import app
from stages.core import vlm

runner = CliRunner()
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRL_EXPERIMENTAL_SILENCE": "1"}



def test_help_lists_the_trl_options():
    result = runner.invoke(app, ["update", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for flag in ("--loss-type", "--beta", "--scale-rewards", "--lora-r", "--merge-lora", "--turns",
                 "--skip-too-long", "--report-to", "--gradient-accumulation-steps"):
        assert flag in result.output


def test_text_only_rows_without_token_ids_train_and_rerun_skips(tmp_path, tiny_model):
    """A dataset from another tool: no images, no `response_token_ids` (the text is tokenized)."""
    rows = scored_rows(vlm.load_processor(tiny_model).tokenizer, tmp_path / "scores", with_images=False)
    for row in rows:
        del row["response_token_ids"]
    data = write_dataset(tmp_path / "scores", rows)
    args = ["update", "--input", str(data), "--output", str(tmp_path / "model"), "--model", str(tiny_model),
            "--per-device-train-batch-size", "4", "--gradient-accumulation-steps", "2", "--num-train-epochs", "2",
            "--loss-type", "bnpo", "--beta", "0.04", "--learning-rate", "1e-4"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "model" / "_manifest.json").read_text())
    assert manifest["complete"] and manifest["steps"] == 2 and manifest["weights"] == "full"
    metrics = read_metrics(tmp_path / "model")
    assert [m["step"] for m in metrics] == [1, 2]
    for key in ("loss", "kl", "reward", "reward_std", "grad_norm", "tokens_per_s", "advantages/std"):
        assert key in metrics[0], key
    assert not (tmp_path / "model" / "_checkpoints").exists()
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "skipping" in again.output
    changed = runner.invoke(app, [*args, "--beta", "0.1"])
    assert changed.exit_code == 2 and "different settings (beta)" in changed.output


@pytest.mark.slow
def test_killed_update_resumes_from_its_checkpoint(tmp_path, tiny_model):
    data = write_dataset(tmp_path / "scores", scored_rows(vlm.load_processor(tiny_model).tokenizer,
                                                          tmp_path / "scores", groups=4))
    out = tmp_path / "model"
    cmd = [sys.executable, "-m", "metaspatial_cli", "update", "--input", str(data), "--output", str(out),
           "--model", str(tiny_model), "--per-device-train-batch-size", "4", "--num-train-epochs", "3",
           "--save-steps", "2", "--learning-rate", "1e-4"]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 300
    while not (out / "_checkpoints" / "checkpoint-4" / "trainer_state.json").exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "no checkpoint after 300 s"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not json.loads((out / "_manifest.json").read_text())["complete"]
    resumed = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["complete"] and manifest["steps"] == 12
    assert Path(manifest["resumed_from"]).name.startswith("checkpoint-")
    assert [m["step"] for m in read_metrics(out)] == list(range(1, 13))


@pytest.mark.slow
def test_rollout_samples_from_the_updated_lora_model(tmp_path, tiny_model, monkeypatch):
    rows = scored_rows(vlm.load_processor(tiny_model).tokenizer, tmp_path / "scores")
    for i, row in enumerate(rows):
        row["prompt_id"] = f"room{i // 4}"
    data = write_dataset(tmp_path / "scores", rows)
    model = tmp_path / "model-1"
    monkeypatch.chdir(tmp_path)  # relative paths, as users type them
    result = runner.invoke(app, ["update", "--input", "scores", "--output", "model-1", "--model", str(tiny_model),
                                 "--max-steps", "1", "--lora-r", "4", "--learning-rate", "1e-2"])
    assert result.exit_code == 0, result.output
    assert (model / "adapter_config.json").exists()
    prompts = pd.DataFrame([r for r in rows if r["sample_index"] == 0])[["prompt_id", "prompt", "image", "split"]]
    prompt_dir = tmp_path / "prompts"
    prompt_dir.mkdir()
    prompts.to_parquet(prompt_dir / "train-00000-of-00001.parquet")
    shutil.copytree(data / "_images", prompt_dir / "_images")  # a symlink out of the dataset is refused
    result = runner.invoke(app, ["rollout", "--input", str(prompt_dir), "--output", str(tmp_path / "rollout"),
                                 "--model", str(model), "--n", "2", "--max-new-tokens", "8"])
    assert result.exit_code == 0, result.output
    sampled = pd.read_parquet(tmp_path / "rollout")
    assert len(sampled) == 4 and sampled["response"].map(len).gt(0).all()


@pytest.mark.slow
def test_checkpoints_only_every_save_steps_and_only_the_newest_kept(tmp_path, tiny_model):
    data = write_dataset(tmp_path / "scores", scored_rows(vlm.load_processor(tiny_model).tokenizer,
                                                          tmp_path / "scores", groups=2))
    out = tmp_path / "model"
    result = runner.invoke(app, ["update", "--input", str(data), "--output", str(out), "--model", str(tiny_model),
                                 "--per-device-train-batch-size", "4", "--max-steps", "5", "--save-steps", "2",
                                 "--keep-checkpoints", "--checkpoints-to-keep", "1"])
    assert result.exit_code == 0, result.output
    # steps 2 and 4 were saved, 2 then deleted; no checkpoint of the last step (5): the model is the output
    assert sorted(p.name for p in (out / "_checkpoints").glob("checkpoint-*")) == ["checkpoint-4"]
