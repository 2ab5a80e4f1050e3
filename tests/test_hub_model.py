"""A policy named by a Hugging Face hub id (`org/name`), served from an offline cache: a whole
recipe iteration with full fine-tuning writes a model that the next iteration's rollout loads."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from stages.core import vlm
from stages.core.tiny_vlm import build_tiny_vlm

CLI = [sys.executable, "-m", "metaspatial_cli"]
HUB_ID = "tiny-org/tiny-qwen2.5-vl"
RECIPE = """workdir: {workdir}
model: {model}
iterations: 2
gen-prompts: {{num_rooms: 2, seed: 3, test_fraction: 0.0, template: concise, image_size: 64}}
rollout: {{n: 2, guided: true, guided_think_chars: 0, max_new_tokens: 24, min_pixels: 3136, max_pixels: 12544}}
render: {{views: [topdown], size: 64}}
score: {{judge: rules}}
update: {{learning_rate: 1.0e-3, per_device_train_batch_size: 4, max_steps: 1, min_pixels: 3136, max_pixels: 12544}}
"""
PIXELS = {"min_pixels": 3136, "max_pixels": 12544}  # fewer image tokens than the tiny model's own cap


def hub_cache(home: Path, repo_id: str, model_dir: Path) -> Path:
    """HF_HOME holding `model_dir` as the cached snapshot of `repo_id` (the layout huggingface_hub writes)."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = home / "hub" / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(model_dir, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return home


def offline_env(home: Path) -> dict[str, str]:
    return {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
            "TRL_EXPERIMENTAL_SILENCE": "1"}


@pytest.mark.slow
def test_full_fine_tune_of_a_hub_model_writes_a_model_the_next_rollout_loads(tmp_path):
    home = hub_cache(tmp_path / "hf", HUB_ID, build_tiny_vlm(tmp_path / "built"))
    recipe = tmp_path / "hub.yaml"
    recipe.write_text(RECIPE.format(workdir=tmp_path / "run", model=HUB_ID))
    result = subprocess.run([*CLI, "recipe", "run", str(recipe)], env=offline_env(home), capture_output=True,
                            text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    first = tmp_path / "run" / "iter-001" / "update"
    assert {"model.safetensors", "processor_config.json", "preprocessor_config.json", "tokenizer.json",
            "chat_template.jinja"} <= {p.name for p in first.iterdir()}
    scores = pd.read_parquet(tmp_path / "run" / "iter-002" / "turn-1" / "score")
    assert len(scores) == 2 * 2 and scores["model"].str.endswith("iter-001/update").all()
    # The saved processor is the hub model's with the recipe's pixel limits: the same tokens and pixels
    # for a prompt with an image, without passing the limits again.
    chat = [vlm.build_messages("place the sofa", Image.new("RGB", (400, 300), "white"))]
    saved = vlm.encode_chats(vlm.load_processor(first), chat)
    original = vlm.encode_chats(vlm.load_processor(tmp_path / "built", pixels=PIXELS), chat)
    assert all((saved[k] == original[k]).all() for k in original)
    assert saved["image_grid_thw"].prod().item() * 14 * 14 <= PIXELS["max_pixels"]


def test_a_hub_name_missing_from_the_offline_cache_is_refused_before_anything_runs(tmp_path):
    recipe = tmp_path / "hub.yaml"
    recipe.write_text(RECIPE.format(workdir=tmp_path / "run", model=HUB_ID))
    result = subprocess.run([*CLI, "recipe", "run", str(recipe)], env=offline_env(tmp_path / "empty"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "neither a directory nor in the Hugging Face cache" in result.stderr
    assert not (tmp_path / "run" / "gen-prompts").exists()
