"""Small pictures (the quickstart renders at 128 px) are legible by design: below
LABELS_MIN_PIXELS they carry no legend and no number discs, and no text is cut at the border."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stages.core.render import Arrangement, Renderer
from stages.core.render.legend import LABELS_MIN_PIXELS
from stages.core.render.plan import draw_plan
from stages.core.scene import Scene

WHITE = np.array([255, 255, 255])  # the number discs' fill; no floor, wall or furniture colour is pure white


@pytest.fixture(scope="module")
def gym(oracle_dir) -> Arrangement:
    rec = next(json.loads(line) for line in (oracle_dir / "scenes.jsonl").read_text().splitlines()
               if json.loads(line)["room_id"] == "room_5041")
    return Arrangement.from_scene(Scene.from_idesign(rec["scene_graph"], rec["room_size"], "room_5041"), None)


def white_pixels(image) -> int:
    return int((np.asarray(image.convert("RGB")) == WHITE).all(axis=2).sum())


@pytest.mark.parametrize("pixels", [64, 128, LABELS_MIN_PIXELS - 1])
def test_small_plans_have_no_discs_and_no_text_at_the_border(gym, pixels):
    image = np.asarray(draw_plan(gym, pixels)).astype(int)
    assert white_pixels(draw_plan(gym, pixels)) == 0
    background = image[0, 0]
    border = np.concatenate([image[:, 0], image[:, -1], image[0]])  # the bottom row may touch a digit's foot
    assert (np.abs(border - background).max(axis=1) <= 8).all()  # no wall name cut at the edge ("est", "ea")


def test_plans_from_the_threshold_on_carry_numbers_and_legend(gym):
    small, large = draw_plan(gym, LABELS_MIN_PIXELS - 1), draw_plan(gym, LABELS_MIN_PIXELS)
    assert white_pixels(large) > 100 and white_pixels(small) == 0


def test_small_3d_views_have_no_number_discs(gym):
    renderer = Renderer(pixels=128)
    try:
        assert white_pixels(renderer.render_view(gym, "perspective")) < 5
    finally:
        renderer.close()
