"""The answer parser: every text a model can write gives a result, never an exception."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from stages.core import answer as A
from stages.core.answer import parse_answer

IDS = ["bed_1", "desk_1", "lamp_1"]


def wrap(body: str) -> str:
    return f"<think>ok</think>\n<answer>\n{body}\n</answer>"


def entries(**coords):
    return [{"new_object_id": oid, "x": x, "y": y, "z": z} for oid, (x, y, z) in coords.items()]


GOOD = entries(bed_1=(1, 2, 0.3), desk_1=(2.5, 0.4, 0.4), lamp_1=(2.5, 0.4, 1.0))


def test_valid_answer_gives_all_placements_and_no_error():
    parsed = parse_answer(wrap(json.dumps(GOOD)), IDS)
    assert parsed.error is None and parsed.valid and parsed.format_level == A.VALID
    assert parsed.placements == {"bed_1": (1.0, 2.0, 0.3), "desk_1": (2.5, 0.4, 0.4), "lamp_1": (2.5, 0.4, 1.0)}


def test_code_fence_inside_answer_is_accepted():
    parsed = parse_answer(wrap("```json\n" + json.dumps(GOOD) + "\n```"), IDS)
    assert parsed.valid and parsed.fenced and len(parsed.placements) == 3


def test_last_of_two_answer_blocks_is_used_and_flagged():
    bogus = json.dumps(entries(bed_1=(0, 0, 0), desk_1=(0, 0, 0), lamp_1=(0, 0, 0)))
    text = wrap(bogus) + "\n<answer>" + json.dumps(GOOD) + "</answer>"
    parsed = parse_answer(text, IDS)
    assert parsed.format_level == A.BAD_TAGS and parsed.placements["bed_1"] == (1.0, 2.0, 0.3)


def test_missing_think_and_trailing_text_are_tag_problems():
    assert parse_answer("<answer>" + json.dumps(GOOD) + "</answer>", IDS).format_level == A.BAD_TAGS
    assert parse_answer(wrap(json.dumps(GOOD)) + " thanks!", IDS).error == "text after </answer>"


def test_nan_infinity_bool_string_null_coordinates_are_each_reported():
    body = ('[{"new_object_id": "bed_1", "x": NaN, "y": 1, "z": 1}, {"new_object_id": "desk_1", "x": 1, "y": '
            'Infinity, "z": 1}, {"new_object_id": "lamp_1", "x": true, "y": "1", "z": null}]')
    parsed = parse_answer(wrap(body), IDS)
    assert parsed.placements == {} and parsed.format_level == A.BAD_ENTRIES
    assert len(parsed.problems) == 3 and "NaN" in parsed.problems[0] and "true" in parsed.problems[2]


def test_overflowing_literal_is_not_a_coordinate():
    parsed = parse_answer(wrap('[{"new_object_id": "bed_1", "x": 1e999, "y": 1, "z": 1}]'), ["bed_1"])
    assert parsed.placements == {} and "inf" in parsed.error


def test_duplicate_missing_and_unknown_ids():
    body = entries(bed_1=(1, 1, 1), desk_1=(1, 1, 1), ghost_1=(1, 1, 1))
    body.append({"new_object_id": "bed_1", "x": 9, "y": 9, "z": 9})
    parsed = parse_answer(wrap(json.dumps(body)), IDS)
    assert parsed.duplicates == ["bed_1"] and parsed.unknown == ["ghost_1"] and parsed.missing == ["lamp_1"]
    assert parsed.placements["bed_1"] == (1.0, 1.0, 1.0)  # the first occurrence wins


def test_alternative_shapes_are_read_but_reported():
    keyed = {"bed_1": {"x": 1, "y": 1, "z": 1}, "desk_1": [2, 2, 2], "lamp_1": {"x": 3, "y": 3, "z": 3}}
    wrapped = {"objects": GOOD}
    for data in (keyed, wrapped):
        parsed = parse_answer(wrap(json.dumps(data)), IDS)
        assert len(parsed.placements) == 3 and parsed.format_level == A.BAD_ENTRIES


def test_non_container_answers_and_bad_json():
    for body, level in [("3", A.BAD_JSON), ("true", A.BAD_JSON), ("null", A.BAD_JSON), ('"abc"', A.BAD_JSON),
                        ("[1, 2,]", A.BAD_JSON), ("[" * 50000, A.BAD_JSON), ("9" * 5000, A.BAD_JSON)]:
        assert parse_answer(wrap(body), IDS).format_level == level, body[:20]
    assert parse_answer("just text", IDS).format_level == A.NO_ANSWER
    assert parse_answer(None, IDS).missing == IDS  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_arbitrary_text_never_raises(text):
    parsed = parse_answer(text, IDS)
    assert (parsed.error is None) == parsed.valid
    assert set(parsed.placements) <= set(IDS)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=8)
    | st.sampled_from(IDS),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["new_object_id", "x", "y", "z", "objects"]) | st.text(max_size=4), children, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json_never_raises(value):
    parsed = parse_answer(wrap(json.dumps(value)), IDS)
    for xyz in parsed.placements.values():
        assert all(isinstance(c, float) and c == c and abs(c) != float("inf") for c in xyz)


@settings(max_examples=100, deadline=None)
@given(st.permutations(GOOD))
def test_order_of_objects_changes_nothing(perm):
    assert parse_answer(wrap(json.dumps(perm)), IDS).placements == parse_answer(wrap(json.dumps(GOOD)), IDS).placements


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.text(max_size=200), json_values.map(lambda v: wrap(json.dumps(v)))),
       st.sampled_from(["metaspatial", "metaspatial-v1"]))
def test_the_whole_score_path_never_raises_on_model_text(text, preset):
    from test_score_data import scene_row, scenes, score_library

    room_id = next(iter(scenes()))
    (row,) = score_library([scene_row(room_id, text)], preset=preset)
    assert 0.0 <= row["reward"] <= 3.0 and row["feedback"]
