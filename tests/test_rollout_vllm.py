"""rollout --backend vllm on vLLM's CPU build (run by `nox -s vllm`; deselected elsewhere).

One engine start costs 20-100 s on a shared 2-core machine, so each test runs the stage once.
A tiny text-only Qwen2 covers the engine path, guided decoding and log-probs everywhere. The
image tests (tiny Qwen2.5-VL, tiny LLaVA) need torchvision: vLLM's Qwen2-VL and LLaVA model code
import transformers' torchvision image processors (Qwen2-VL's, Pixtral's), and PyPI only has CUDA
torchvision wheels, which break against the CPU torch, so the CPU session runs without it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from stages import rollout
from stages.core.answer import parse_answer
from stages.core.scene import Scene
from stages.core.tiny_vlm import build_tiny_llava, build_tiny_vlm, train_tokenizer

pytestmark = pytest.mark.vllm

SCENE = [{"new_object_id": name, "style": "modern", "material": "wood", "is_on_the_floor": True, "facing": "north_wall",
          "size_in_meters": {"length": 1.0, "width": 0.8, "height": 0.9}, "placement": {}}
         for name in ("sofa_1", "lamp_1")]


def _prompts(directory: Path, with_image: bool) -> Path:
    directory.mkdir(parents=True)
    rows = []
    for k in range(2):
        image = None
        if with_image:
            image = f"_images/rooms/{k:04x}.png"
            (directory / image).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (112, 112), (30 * k, 90, 200)).save(directory / image)
        rows.append({"prompt_id": f"room{k}", "prompt": f"Place a sofa_1 and a lamp_1 in room {k}.",
                     "image": image, "scene": json.dumps(SCENE), "room_x": 4.0, "room_y": 3.5, "room_z": 2.6})
    pq.write_table(pa.Table.from_pylist(rows), directory / "prompts.parquet")
    return directory


def _tiny_text_lm(directory: Path) -> Path:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = train_tokenizer(0, 2048)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    Qwen2ForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _run(tmp_path: Path, model: Path, prompts: Path, **options) -> pd.DataFrame:
    cfg = rollout.Config(input=prompts, output=tmp_path / "out", model=str(model), backend="vllm", n=2,
                         dtype="float32", enforce_eager=True, max_model_len=2048, **options)
    return pd.read_parquet(rollout.run(cfg))


def _check_rows(rows: pd.DataFrame) -> None:
    assert len(rows) == 4 and set(rows.backend) == {"vllm"}
    assert rows.groupby("group_id").size().tolist() == [2, 2]
    assert (rows.response_token_ids.map(len) == rows.num_response_tokens).all()
    assert set(rows.finish_reason) <= {"stop", "length"}


def _text_and_image_prompts(tmp_path: Path, model: Path) -> None:
    text_rows = _run(tmp_path / "text", model, _prompts(tmp_path / "p_text", False), max_new_tokens=8,
                     logprobs=True)
    _check_rows(text_rows)
    assert all(len(lp) == n for lp, n in zip(text_rows.response_logprobs, text_rows.num_response_tokens, strict=True))
    image_rows = _run(tmp_path / "image", model, _prompts(tmp_path / "p_image", True), max_new_tokens=8)
    _check_rows(image_rows)
    assert image_rows.num_prompt_tokens.min() > text_rows.num_prompt_tokens.max()  # image tokens expanded


NEEDS_TORCHVISION = "vLLM's multimodal model code imports transformers' torchvision image processors"


def test_tiny_llava_text_and_image_prompts(tmp_path):
    pytest.importorskip("torchvision", reason=NEEDS_TORCHVISION)
    _text_and_image_prompts(tmp_path, build_tiny_llava(tmp_path / "llava"))


def test_tiny_qwen2_5_vl_text_and_image_prompts(tmp_path):
    pytest.importorskip("torchvision", reason=NEEDS_TORCHVISION)
    _text_and_image_prompts(tmp_path, build_tiny_vlm(tmp_path / "tiny"))


def test_tiny_text_lm_guided_answers_are_valid(tmp_path):
    model = _tiny_text_lm(tmp_path / "lm")
    rows = _run(tmp_path, model, _prompts(tmp_path / "p", False), max_new_tokens=300, guided=True,
                guided_think_chars=20, logprobs=True)
    _check_rows(rows)
    for row in rows.itertuples():
        parsed = parse_answer(row.response, Scene.from_row(row._asdict()).ids)
        assert len(parsed.placements) == 2, row.response
