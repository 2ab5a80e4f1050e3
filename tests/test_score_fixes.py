"""The default preset fixes every upstream behaviour listed in the fixture README: one test per item."""

import json

import pytest
from test_score_data import (
    answer_text,
    case_rows,
    gt_placements,
    made_row,
    obj,
    scene_row,
    scenes,
    score_library,
)

from stages.core.scene import Scene
from stages.score.judges.rubric import parse_grades

ROOM = next(iter(scenes()))


def score_one(row, **options):
    return score_library([row], **options)[0]


def gt_row(**extra):
    return scene_row(ROOM, answer_text(gt_placements(ROOM)), **extra)


def with_coordinate(value: str) -> str:
    text = answer_text(gt_placements(ROOM))
    first = next(iter(gt_placements(ROOM)))
    start = text.index(first)
    head, tail = text[:start], text[start:]
    x_at = tail.index('"x": ') + 5
    end = tail.index(",", x_at)
    return head + tail[:x_at] + value + tail[end:]


def test_bug01_scalar_answer_does_not_crash():
    row = score_one(scene_row(ROOM, "<think>t</think><answer>3</answer>"))
    assert row["reward"] == 0.25 and "int 3" in json.loads(row["feedback"])["parse_error"]


def test_bug02_string_and_null_coordinates_do_not_crash():
    for value in ('"1.5"', "null"):
        row = score_one(scene_row(ROOM, with_coordinate(value)))
        assert row["reward"] == 0.5 and "not a finite number" in json.loads(row["feedback"])["parse_error"]


def test_bug03_nan_infinity_and_booleans_are_rejected():
    valid = score_one(gt_row())["reward"]
    for value in ("NaN", "Infinity", "-Infinity", "true", "1e999"):
        assert score_one(scene_row(ROOM, with_coordinate(value)))["reward"] == 0.5 < 1 <= valid


def test_bug04_omitted_objects_do_not_keep_reference_positions():
    placements = gt_placements(ROOM)
    first, second = list(placements)[:2]
    body = [{"new_object_id": oid, "x": x, "y": y, "z": z} for oid, (x, y, z) in placements.items() if oid != second]
    body.append(dict(body[0]))  # a duplicate keeps the count
    row = score_one(scene_row(ROOM, "<think>t</think><answer>" + json.dumps(body) + "</answer>"))
    feedback = json.loads(row["feedback"])
    assert row["reward"] == 0.5 and feedback["missing"] == [second] and feedback["duplicates"] == [first]
    no_reference = gt_row()
    no_reference["reference_layout"] = None
    assert score_one(no_reference)["reward"] == score_one(gt_row())["reward"]


def test_bug05_no_sentinel_values():
    n = len(gt_placements(ROOM))
    assert score_one(scene_row(ROOM, f'<think>t</think><answer>"{"x" * n}"</answer>'))["reward"] == 0.25
    keyed = {oid: {"x": x, "y": y, "z": z} for oid, (x, y, z) in gt_placements(ROOM).items()}
    assert score_one(scene_row(ROOM, "<think>t</think><answer>" + json.dumps(keyed) + "</answer>"))["reward"] == 0.5
    two = score_one(gt_row(), judge="constant", judge_grades=[2, 2, 2, 2, 2])
    three = score_one(gt_row(), judge="constant", judge_grades=[3, 3, 3, 3, 3])
    assert two["judge_score"] == 0.2 and two["reward"] < three["reward"]  # a grade sum of 10 is just a grade


def test_bug06_leaving_the_room_is_not_rewarded():
    placements = gt_placements(ROOM)
    far = {oid: (x + 100, y, z) for oid, (x, y, z) in placements.items()}
    cx, cy = scenes()[ROOM]["room_size"]["x"] / 2, scenes()[ROOM]["room_size"]["y"] / 2
    stacked = {oid: (cx, cy, 0.5) for oid in placements}
    far_row, stacked_row = score_library([scene_row(ROOM, answer_text(far)), scene_row(ROOM, answer_text(stacked))])
    assert far_row["reward"] < 2 <= stacked_row["reward"]
    assert far_row["out_of_bounds_ratio"] == 1.0


def test_bug06_layout_elements_do_not_dilute_collisions():
    a = obj("box_1", (1.0, 1.0, 1.0), facing="north_wall")
    row = score_one(made_row([a, obj("box_2", (1.0, 1.0, 1.0))], {"box_1": (2, 2, 0.5), "box_2": (2.2, 2.2, 0.5)}))
    assert row["collision_ratio"] == 1.0  # both objects collide: 2 of 2, not 1 of C(8, 2)


def test_bug07_constraints_have_a_tolerance():
    def shifted(d):
        return scene_row(ROOM, answer_text({oid: (x + d, y - d, z) for oid, (x, y, z) in gt_placements(ROOM).items()}))

    exact, within, noisy = score_library([gt_row(), shifted(0.003), shifted(0.02)])
    assert within["constraint_ratio"] == exact["constraint_ratio"]
    assert exact["constraint_ratio"] < noisy["constraint_ratio"] < exact["constraint_ratio"] + 0.2  # upstream: ~0.97
    floor = {oid: (x, y, 0.0) for oid, (x, y, z) in gt_placements(ROOM).items()}
    collisions = json.loads(score_one(scene_row(ROOM, answer_text(floor)))["feedback"])["collisions"]
    assert not any("middle of the room" in pair for pair in collisions)  # the floor is not an object


def test_bug08_all_relations_must_hold_and_unconstrained_objects_pass():
    lamp = obj("lamp_1", (0.4, 0.4, 1.5), layout=[("south_wall", "on"), ("west_wall", "in the corner")])
    free = obj("plant_1", (0.4, 0.4, 1.0))
    corner = score_one(made_row([lamp, free], {"lamp_1": (0.2, 0.2, 0.75), "plant_1": (2, 2, 0.5)}))
    one_wall = score_one(made_row([lamp, free], {"lamp_1": (2.0, 0.2, 0.75), "plant_1": (2, 2, 0.5)}))
    assert corner["constraint_ratio"] == 0.0
    assert one_wall["constraint_ratio"] > 0
    assert [v["target"] for v in json.loads(one_wall["feedback"])["violations"]] == ["west_wall"]


@pytest.mark.parametrize("width", [0.2, 2.0])
def test_bug09_lateral_margin_depends_on_object_size(width):
    table = obj("table_1", (1.0, 0.6, 0.8), facing="north_wall", rotation=0.0)
    chair = obj("chair_1", (0.5, width, 0.8), facing="table_1", rel=[("table_1", "left of", False)], rotation=0.0)
    offset = 0.3 + width / 2 - 0.05  # just within the overlap band for this width
    row = score_one(made_row([table, chair], {"table_1": (2.5, 2.0, 0.4), "chair_1": (1.5, 2.0 + offset, 0.4)}))
    assert row["constraint_ratio"] == 0.0


def test_bug10_above_stays_below_the_ceiling():
    table = obj("table_1", (1.0, 1.0, 0.8))
    pendant = obj("pendant_1", (0.4, 0.4, 0.6), floor=False, rel=[("table_1", "above", False)])
    hanging = score_one(made_row([table, pendant], {"table_1": (2, 2, 0.4), "pendant_1": (2, 2, 2.6)}))
    through = score_one(made_row([table, pendant], {"table_1": (2, 2, 0.4), "pendant_1": (2, 2, 3.0)}))
    assert hanging["constraint_ratio"] == 0.0 and through["constraint_ratio"] > 0
    assert json.loads(through["feedback"])["out_of_bounds"] == ["pendant_1"]


def test_bug11_in_the_corner_means_a_corner():
    shelf = obj("shelf_1", (0.4, 0.3, 0.5), floor=False, layout=[("south_wall", "in the corner")])
    in_corner = score_one(made_row([shelf], {"shelf_1": (0.2, 0.15, 1.5)}))
    mid_wall = score_one(made_row([shelf], {"shelf_1": (2.0, 0.15, 1.5)}))
    assert in_corner["constraint_ratio"] == 0.0 < mid_wall["constraint_ratio"]


def test_bug12_rotations_any_angle():
    """Angles derived from `facing` follow one rule everywhere: tests/test_rotation_rule.py."""
    box = obj("box_1", (2.0, 0.2, 1.0), rotation=45.0)
    other = obj("box_2", (0.3, 0.3, 1.0), rotation=0.0)
    # The 45-degree bar passes through (2, 2); an axis-aligned reading would miss (2.6, 2.6).
    hit = score_one(made_row([box, other], {"box_1": (2, 2, 0.5), "box_2": (2.6, 1.4, 0.5)}))
    miss = score_one(made_row([box, other], {"box_1": (2, 2, 0.5), "box_2": (2.6, 2.6, 0.5)}))
    assert hit["collision_ratio"] == 1.0 and miss["collision_ratio"] == 0.0


def test_bug13_inputs_are_not_mutated_and_rotation_may_be_missing():
    desk = obj("desk_1", facing="south_wall", layout=[("north_wall", "on")])
    row = made_row([desk], {"desk_1": (2.0, 3.75, 0.4)})
    before = dict(row)
    first, second = score_one(row), score_one(row)
    assert row == before and first["reward"] == second["reward"] and first["constraint_ratio"] == 0.0


def test_bug14_layout_elements_are_not_assumed_to_trail_the_list():
    row = gt_row()
    graph = json.loads(row["scene"])
    assert len(graph) == len(gt_placements(ROOM)) + 6
    objects_only = dict(row, scene=json.dumps(graph[:-6]))
    assert score_one(objects_only)["reward"] == score_one(row)["reward"]


def test_bug15_an_unplaced_reference_object_does_not_zero_the_room():
    row = gt_row()
    reference = json.loads(row["reference_layout"])
    reference.pop(next(iter(reference)))
    assert score_one(dict(row, reference_layout=json.dumps(reference)))["reward"] == score_one(row)["reward"] > 2


def test_bug16_answer_errors_and_judge_failures_are_distinct_and_visible():
    rows = [r for r in case_rows() if r["case_kind"] in ("unknown_id_same_count", "list_of_lists")][:2]
    for row in score_library(rows):
        assert row["reward"] == 0.5 and json.loads(row["feedback"])["parse_error"]
        assert row["judge"] is None and row["judge_error"] is None


def test_bug17_format_quirks():
    text = answer_text(gt_placements(ROOM))
    body = text[text.index("<answer>") + 8:text.index("</answer>")]
    fenced = text.replace(body, "\n```json\n" + body.strip() + "\n```\n")
    bogus = "<answer>[]</answer>"
    two = text.replace("<answer>", bogus + "\n<answer>", 1)
    plain, fence, double = score_library([gt_row(), scene_row(ROOM, fenced), scene_row(ROOM, two)])
    assert fence["reward"] == plain["reward"] and double["reward"] == 0.75
    assert score_one(scene_row(ROOM, "<think>t</think><answer>null</answer>"))["reward"] == 0.25


def test_bug19_smaller_items():
    grades = score_one(gt_row(), judge="constant", judge_grades=[7.9, 6, 8, 5, 7])
    assert grades["judge_score"] == pytest.approx(33.9 / 50)  # no int() truncation
    reply = "'''" + json.dumps({k: {"grade": 5} for k in json.loads(grades["judge_grades"])}) + "'''"
    assert parse_grades(reply)[0] is not None
    wardrobe = obj("wardrobe_1", (1.2, 0.6, 2.0))
    painting = obj("painting_1", (1.0, 0.02, 0.8), floor=False)
    row = score_one(made_row([wardrobe, painting], {"wardrobe_1": (2, 2, 1.0), "painting_1": (2, 2, 1.2)}))
    assert json.loads(row["feedback"])["collisions"] == [["wardrobe_1", "painting_1"]]


@pytest.mark.parametrize("flag", [True, False, None])
def test_bug19_a_missing_is_adjacent_does_not_require_touching(flag):
    chair = obj("chair_1", (0.5, 0.5, 0.9), rel=[("table_1", "in front", flag)])
    if flag is None:
        del chair["placement"]["objects_in_room"][0]["is_adjacent"]
    table = obj("table_1", (1.2, 0.8, 0.75))
    row = score_one(made_row([table, chair], {"table_1": (2, 1.75, 0.375), "chair_1": (2, 3.0, 0.45)}))
    assert (json.loads(row["feedback"])["violations"] != []) == (flag is True)  # 0.85 m apart: touching fails
    relation = Scene.from_idesign([table, chair], {"x": 4, "y": 4, "z": 3}).objects[1].to_idesign()
    # the scene round-trips without the key, so the v1 preset still reads upstream's default (True)
    assert relation["placement"]["objects_in_room"][0].get("is_adjacent") == flag
