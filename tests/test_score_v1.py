"""`metaspatial-v1` reproduces the paper's reward code on every fixture case where it did not crash."""

import copy
import json

import pytest
from test_score_data import case_rows, cases, probes, scenes, score_library

from stages.score import upstream_v1 as v1
from stages.score import upstream_v1_boxes as boxes

GRADES = [7, 6, 8, 5, 7]


@pytest.fixture(scope="module")
def scored():
    return score_library(case_rows(), preset="metaspatial-v1", judge="constant", judge_grades=GRADES)


def test_every_non_crashing_case_matches_upstream_to_1e6(scored):
    checked = 0
    for row, case in zip(scored, cases(), strict=True):
        up = case["upstream"]
        if up["combined_score"] is None:
            continue
        assert row["reward"] == pytest.approx(up["combined_score"], abs=1e-6), case["case_kind"]
        assert row["format_reward"] == pytest.approx(up["format_reward"], abs=1e-6), case["case_kind"]
        if up.get("collision_ratio") is not None:
            assert row["collision_ratio"] == pytest.approx(up["collision_ratio"], abs=1e-6), case["case_kind"]
            assert row["constraint_ratio"] == pytest.approx(up["constraint_ratio"], abs=1e-6), case["case_kind"]
        checked += 1
    assert checked == sum(c["upstream"]["combined_score"] is not None for c in cases()) > 150


def test_pairs_and_violating_ids_match_upstream_lists():
    for case in cases():
        up = case["upstream"]
        if up.get("updated_scene_graph") is None or up.get("collision_ratio") is None:
            continue
        raw = scenes()[case["room_id"]]
        room = tuple(raw["room_size"][a] for a in "xyz")
        result, updated = v1.prepare(case["response"], copy.deepcopy(raw["scene_graph"][:-6]))
        result = v1.finish(result, updated, copy.deepcopy(raw["scene_graph"][-6:]), room, dict(zip("abcde", GRADES, strict=True)))
        assert [list(p) for p in result.collision_pairs] == up["collision_pairs"]
        assert result.violating_ids == up["violating_ids"]


def test_upstream_crashes_score_zero_and_say_where(scored):
    crashed = [(row, c) for row, c in zip(scored, cases(), strict=True) if c["upstream"]["combined_score"] is None]
    assert {c["case_kind"] for _, c in crashed} == {"string_coords", "null_coords", "scalar_answer"}
    for row, case in crashed:
        assert row["reward"] == 0.0 and row["upstream_crash"]
        expected_format = case["upstream"]["format_reward"]
        assert row["format_reward"] == (expected_format if expected_format is not None else 0.0)


def _box_probe_scene(a_width: float, adjacent: bool):
    b = {"new_object_id": "b", "size_in_meters": {"length": 1.0, "width": 0.6, "height": 0.9},
         "rotation": {"z_angle": 0.0}, "position": {"x": 2.0, "y": 2.0, "z": 0.45}}
    a = {"new_object_id": "a", "size_in_meters": {"length": 0.5, "width": a_width, "height": 0.9},
         "rotation": {"z_angle": 0.0}}
    return a, b


def test_precedence_quirk_gives_constant_lateral_margin():
    box_small = boxes.FUNCTIONS["left of"](*_box_probe_scene(0.2, False), False, True, (4, 4, 3))
    box_large = boxes.FUNCTIONS["left of"](*_box_probe_scene(2.0, False), False, True, (4, 4, 3))
    assert box_small[2:4] == box_large[2:4] == (2.0 - 0.3 - 0.5, 2.0 + 0.3 + 0.5)


def test_probe_boxes_match_upstream_values():
    p = probes()
    south = {"new_object_id": "south_wall", "size_in_meters": {"length": 4.0, "width": 0.0, "height": 3.0},
             "rotation": {"z_angle": 0.0}, "position": {"x": 2.0, "y": 0, "z": 1.5}}
    a = {"new_object_id": "a", "size_in_meters": {"length": 0.4, "width": 0.4, "height": 0.3},
         "rotation": {"z_angle": 0.0}}
    assert list(boxes.in_corner(a, south, True, False, (4, 4, 3))) == p["in_corner_box_south_wall_not_on_floor"]["box"]


def test_sentinel_grade_sums_reproduce_probes():
    raw = scenes()[next(iter(scenes()))]
    n = len(raw["scene_graph"]) - 6
    room = tuple(raw["room_size"][a] for a in "xyz")
    stacked = "<think>t</think><answer>" + str([{"new_object_id": o["new_object_id"], "x": room[0] / 2,
                                                 "y": room[1] / 2, "z": 0.5} for o in raw["scene_graph"][:n]]
                                               ).replace("'", '"') + "</answer>"
    for grades, expected in ((2, 0.7), (0, 0.5)):
        result, updated = v1.prepare(stacked, copy.deepcopy(raw["scene_graph"][:n]))
        final = v1.finish(result, updated, copy.deepcopy(raw["scene_graph"][n:]), room,
                          dict(zip("abcde", [grades] * 5, strict=True)) if grades else None)
        assert final.reward == pytest.approx(expected)


def test_non_cardinal_rotation_is_an_upstream_crash():
    directional = {"left of", "right of", "in front", "behind", "above"}
    for case in [c for c in cases() if c["case_kind"] == "ground_truth"][:6]:
        raw = copy.deepcopy(scenes()[case["room_id"]])
        objects = raw["scene_graph"][:-6]
        for obj in objects:
            obj["rotation"]["z_angle"] = 45.0
        expect_crash = any(r["preposition"] in directional for o in objects for r in o["placement"]["objects_in_room"])
        room = tuple(raw["room_size"][a] for a in "xyz")
        result, updated = v1.prepare(case["response"], objects)
        final = v1.finish(result, updated, raw["scene_graph"][-6:], room, dict(zip("abcde", GRADES, strict=True)))
        assert (final.crash is not None) == expect_crash


def test_unplaced_reference_object_collapses_the_room_to_half_as_upstream():
    """Probe `missing_position_in_scene_file`: an answered object without a reference position
    raises KeyError inside upstream's try, so every answer for that room scores 0.5."""
    from test_score_data import answer_text, gt_placements, scene_row

    room_id = next(iter(scenes()))
    row = scene_row(room_id, answer_text(gt_placements(room_id)))
    reference = json.loads(row["reference_layout"])
    reference.pop(next(iter(reference)))
    full, partial = score_library([row, dict(row, reference_layout=json.dumps(reference))],
                                  preset="metaspatial-v1", judge="constant", judge_grades=GRADES)
    assert full["reward"] == pytest.approx(1.16, abs=0.05) and partial["reward"] == 0.5
    assert probes()["missing_position_in_scene_file"]["value"] == 0.5


def test_without_reference_layout_answered_positions_are_scored():
    from test_score_data import answer_text, gt_placements, scene_row

    room_id = next(iter(scenes()))
    row = scene_row(room_id, answer_text(gt_placements(room_id)))
    with_ref, without = score_library([row, dict(row, reference_layout=None)], preset="metaspatial-v1",
                                      judge="constant", judge_grades=GRADES)
    assert without["reward"] == with_ref["reward"] and without["collision_ratio"] == with_ref["collision_ratio"]
