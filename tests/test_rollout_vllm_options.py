"""The vLLM engine's arguments, checked without vLLM: images only, and room for the adapter's LoRA rank."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stages.core.errors import UserError
from stages.rollout import Config
from stages.rollout.backends.vllm_engine import LORA_RANKS, engine_options


def adapter_dir(tmp_path, rank):
    path = tmp_path / "adapter"
    path.mkdir(exist_ok=True)
    (path / "adapter_config.json").write_text(json.dumps({"r": rank, "base_model_name_or_path": "org/base"}))
    return path


def test_full_model_serves_images_only_without_lora():
    options = engine_options(Config(model="org/base", backend="vllm"), "org/base", None)
    assert options["limit_mm_per_prompt"] == {"image": 1, "video": 0}
    assert options["enable_lora"] is False and "max_lora_rank" not in options
    assert options["gpu_memory_utilization"] == 0.9  # a rollout process has its GPUs to itself


@pytest.mark.parametrize("rank, bound", [(4, 8), (16, 16), (32, 32), (48, 64), (300, 320)])
def test_an_adapters_rank_sets_max_lora_rank(tmp_path, rank, bound):
    options = engine_options(Config(model="x", backend="vllm"), "org/base", adapter_dir(tmp_path, rank))
    assert options["enable_lora"] is True and options["max_lora_rank"] == bound


@given(rank=st.integers(1, 512))
def test_the_bound_is_the_smallest_allowed_rank_holding_r(tmp_path_factory, rank):
    bound = engine_options(Config(model="x"), "b", adapter_dir(tmp_path_factory.mktemp("a"), rank))["max_lora_rank"]
    assert bound in LORA_RANKS and bound >= rank
    assert all(r < rank for r in LORA_RANKS if r < bound)


@pytest.mark.parametrize("rank", [0, 1024, "16", None])
def test_an_unservable_rank_is_refused_naming_the_file(tmp_path, rank):
    with pytest.raises(UserError, match=r"adapter_config.json: r: vLLM serves LoRA ranks 1 to 512"):
        engine_options(Config(model="x"), "b", adapter_dir(tmp_path, rank))
