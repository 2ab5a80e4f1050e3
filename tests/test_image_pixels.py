"""min_pixels / max_pixels: the image processor's size limits, the same in rollout and update."""

import pytest
from PIL import Image

from metaspatial_cli.recipes.spec import load_recipe
from stages import rollout
from stages.core import vlm
from stages.core.errors import UserError
from stages.core.model_output import save_processor
from stages.core.tiny_vlm import build_tiny_llava, build_tiny_vlm
from stages.rollout.backends.vllm_engine import engine_options

PAPER = {"min_pixels": 262144, "max_pixels": 4194304}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_vlm(tmp_path_factory.mktemp("tiny"))


def grid(processor, size=(1024, 768)):
    return vlm.encode_chats(processor, [vlm.build_messages("x", Image.new("RGB", size))])["image_grid_thw"].tolist()


def test_limits_set_the_image_tokens_and_travel_with_a_saved_processor(tiny, tmp_path):
    assert grid(vlm.load_processor(tiny)) == [[1, 12, 18]]  # the tiny model's own cap: 50,176 pixels
    limited = vlm.load_processor(tiny, pixels=PAPER)
    assert grid(limited) == [[1, 54, 74]]  # 1024 × 768 fits the paper's limits: about its own size
    assert grid(limited, (64, 64)) == [[1, 38, 38]]  # scaled up to 532 × 532 ≥ 262,144 pixels (504² is less)
    save_processor(limited, tmp_path)
    (tmp_path / "config.json").write_bytes((tiny / "config.json").read_bytes())
    assert grid(vlm.load_processor(tmp_path)) == [[1, 54, 74]]


def test_a_processor_without_pixel_limits_refuses_them(tmp_path):
    llava = build_tiny_llava(tmp_path / "llava")
    with pytest.raises(UserError, match=r"--max-pixels: the image processor .* has no pixel limits"):
        vlm.load_processor(llava, pixels={"max_pixels": 4096})


def test_min_above_max_is_refused(tiny):
    with pytest.raises(UserError, match=r"--min-pixels \(9000\) is more than --max-pixels \(4000\)"):
        vlm.load_processor(tiny, pixels={"min_pixels": 9000, "max_pixels": 4000})


def test_vllm_resizes_with_the_same_limits():
    options = engine_options(rollout.Config(model="m", backend="vllm", **PAPER), "m", None)
    assert options["mm_processor_kwargs"] == PAPER
    assert "mm_processor_kwargs" not in engine_options(rollout.Config(model="m", backend="vllm"), "m", None)


def test_a_served_model_takes_its_limits_on_the_server():
    with pytest.raises(ValueError, match="set the limits on the server"):
        rollout.Config(model="m", backend="openai", max_pixels=4096)


def test_a_recipe_whose_rollout_and_update_disagree_is_refused(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(f"workdir: {tmp_path}/run\nmodel: org/name\nrollout: {{n: 4, max_pixels: 4194304}}\n"
                    "update: {per_device_train_batch_size: 4}\n")
    with pytest.raises(UserError, match=r"rollout.max_pixels \(4194304\) and update.max_pixels \(None\) differ"):
        load_recipe(path)
    assert load_recipe(path, ["update.max_pixels=4194304"]).sections["update"]["max_pixels"] == 4194304
