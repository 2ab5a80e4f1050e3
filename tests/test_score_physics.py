"""Geometry and reward properties: shapely reference, invariances, ranges, and the layout ordering."""

import json
import math
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon
from test_score_data import (
    answer_text,
    case_rows,
    centres_inside,
    gt_placements,
    scene_row,
    scenes,
    score_library,
)

from stages.core import physics

ROOMS = list(scenes())


def corners(cx, cy, hl, hw, angle_deg):
    t = math.radians(angle_deg)
    u, v = np.array([math.cos(t), -math.sin(t)]), np.array([math.sin(t), math.cos(t)])
    c = np.array([cx, cy])
    return [tuple(c + su * hl * u + sv * hw * v) for su, sv in ((1, 1), (-1, 1), (-1, -1), (1, -1))]


box = st.tuples(st.floats(0, 5), st.floats(0, 5), st.floats(0.05, 1.5), st.floats(0.05, 1.5), st.floats(-360, 360))


@settings(max_examples=400, deadline=None)
@given(box, box)
def test_rotated_footprint_overlap_agrees_with_shapely(a, b):
    batch = physics.LayoutBatch(row=np.zeros(2, int), center=np.array([[a[0], a[1], 0.5], [b[0], b[1], 0.5]]),
                                half=np.array([[a[2], a[3], 0.5], [b[2], b[3], 0.5]]),
                                angle=np.radians([a[4], b[4]]), on_floor=np.ones(2, bool), room=np.array([[5, 5, 3]]))
    overlap = physics.footprint_overlap(batch, np.array([0]), np.array([1]))[0]
    pa, pb = Polygon(corners(*a)), Polygon(corners(*b))
    interiors_meet = pa.intersects(pb) and not pa.touches(pb)  # GEOS's intersection area can be 0 for nested boxes
    if abs(overlap) > 1e-6:  # away from exact touching, where either answer is right
        assert (overlap > 0) == interiors_meet


def _random_layout(rng, room_id):
    size = scenes()[room_id]["room_size"]
    return {oid: (float(rng.uniform(0.5, size["x"] - 0.5)), float(rng.uniform(0.5, size["y"] - 0.5)),
                  float(rng.uniform(0.3, size["z"] - 0.3))) for oid in gt_placements(room_id)}


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(ROOMS), st.floats(-0.3, 0.3), st.floats(-0.3, 0.3), st.randoms(use_true_random=False))
def test_moving_the_whole_layout_changes_no_collision(room_id, dx, dy, rnd):
    placements = gt_placements(room_id)
    moved = {oid: (x + dx, y + dy, z) for oid, (x, y, z) in placements.items()}
    a, b = score_library([scene_row(room_id, answer_text(placements)), scene_row(room_id, answer_text(moved))])
    assert json.loads(a["feedback"])["collisions"] == json.loads(b["feedback"])["collisions"]
    assert a["collision_ratio"] == pytest.approx(b["collision_ratio"], abs=1e-9)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(ROOMS), st.randoms(use_true_random=False))
def test_order_of_objects_in_the_answer_changes_nothing(room_id, rnd):
    items = list(gt_placements(room_id).items())
    shuffled = dict(rnd.sample(items, len(items)))
    a, b = score_library([scene_row(room_id, answer_text(dict(items))), scene_row(room_id, answer_text(shuffled))])
    for key in ("reward", "collision_ratio", "constraint_ratio", "out_of_bounds_ratio", "support_ratio"):
        assert a[key] == pytest.approx(b[key], abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(ROOMS), st.integers(0, 2**32 - 1), st.sampled_from(["metaspatial", "metaspatial-v1"]))
def test_every_reward_is_finite_and_in_range(room_id, seed, preset):
    rng = np.random.default_rng(seed)
    wild = {oid: tuple(float(v) for v in rng.normal(0, 50, 3)) for oid in gt_placements(room_id)}
    rows = [scene_row(room_id, answer_text(_random_layout(rng, room_id))), scene_row(room_id, answer_text(wild))]
    low, high = (0.0, 3.0) if preset == "metaspatial" else (0.0, 1.5)
    for row in score_library(rows, preset=preset):
        assert math.isfinite(row["reward"]) and low <= row["reward"] <= high
        assert math.isfinite(row["return"])


@pytest.fixture(scope="module")
def fixture_scores():
    return score_library(case_rows())


def test_ordering_exact_perturbed_random_stacked(fixture_scores):
    by_room = defaultdict(lambda: defaultdict(list))
    for row in fixture_scores:
        by_room[row["room_id"]][row["case_kind"]].append(row["reward"])
    for room, kinds in by_room.items():
        in_room_perturbed = [r for r in kinds["perturb_small"] if r >= 2]
        exact = kinds["ground_truth"][0]
        assert all(exact > r for r in in_room_perturbed), room
        if kinds["random_inside"] and in_room_perturbed:
            assert np.mean(in_room_perturbed) > np.mean(kinds["random_inside"]), room
        if kinds["random_inside"] and kinds["stacked_same_point"]:
            assert np.mean(kinds["random_inside"]) > np.mean(kinds["stacked_same_point"]), room
    means = defaultdict(list)
    for row in fixture_scores:  # in-room layouts only: a perturbation may sink a rug's centre below the floor
        if centres_inside(row):
            means[row["case_kind"]].append(row["reward"])
    order = ["ground_truth", "perturb_small", "random_inside", "stacked_same_point"]
    assert [np.mean(means[k]) for k in order] == sorted((np.mean(means[k]) for k in order), reverse=True)


def test_outside_and_malformed_below_every_valid_in_room_layout(fixture_scores):
    in_room_kinds = {"ground_truth", "perturb_small", "random_inside", "stacked_same_point", "overlap_shifted",
                     "gt_xy_z_zero", "code_fence_in_answer"}
    valid_in_room = [r["reward"] for r in fixture_scores
                     if r["case_kind"] in in_room_kinds and not json.loads(r["feedback"])["parse_error"]
                     and centres_inside(r)]
    outside = [r["reward"] for r in fixture_scores if r["case_kind"] == "random_anywhere"]
    malformed = [r["reward"] for r in fixture_scores if json.loads(r["feedback"])["parse_error"]]
    assert len(valid_in_room) > 80 and len(outside) > 10 and len(malformed) > 40
    assert max(outside + malformed) < min(valid_in_room)
