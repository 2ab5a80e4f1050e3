"""Properties of the rewards over generated rooms and answers (issue 11's rule for held-out answers).

Default preset, for every room: every malformed answer scores below every valid in-room layout, every
out-of-room layout (some object's centre outside the room) below every valid in-room layout, and
harmless extras (a long think, extra fields in the objects) score exactly like the plain answer.
Both presets, for any JSON number a model can write: rewards and returns are finite, every JSON
column parses with a strict parser (orjson: no NaN), and nothing raises."""

from __future__ import annotations

import json
import math
from functools import cache

import orjson
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_score_data import raw_row, scenes, score_library

from stages.gen_prompts.synthetic import make_room

XYZ = ("x", "y", "z")


@cache
def synthetic_room(index: int) -> dict:
    return make_room(11, index)


def room_of(source: tuple[str, int]) -> dict:
    kind, index = source
    return synthetic_room(index) if kind == "synthetic" else scenes()[sorted(scenes())[index]]


rooms = st.one_of(st.tuples(st.just("synthetic"), st.integers(0, 30)),
                  st.tuples(st.just("fixture"), st.integers(0, len(scenes()) - 1)))


def objects_of(raw: dict) -> list[dict]:
    return raw["scene_graph"][:-6]


def dims(raw: dict) -> tuple[float, float, float]:
    return tuple(float(raw["room_size"][a]) for a in XYZ)


def reference(raw: dict) -> dict[str, tuple[float, float, float]]:
    return {o["new_object_id"]: tuple(o["position"][a] for a in XYZ) for o in objects_of(raw)}


def entries(layout: dict) -> list[dict]:
    return [{"new_object_id": oid, "x": x, "y": y, "z": z} for oid, (x, y, z) in layout.items()]


def text(body: str, think: str = "placing the furniture") -> str:
    return f"<think>{think}</think>\n<answer>\n{body}\n</answer>"


@st.composite
def in_room_layout(draw, raw: dict) -> dict:
    """A valid in-room layout: every centre inside the room's closed box (boundaries included)."""
    room = dims(raw)
    kind = draw(st.sampled_from(["reference", "random", "stacked"]))
    if kind == "reference":
        return reference(raw)
    point = st.tuples(*(st.floats(0.0, d) for d in room))
    if kind == "stacked":
        return dict.fromkeys(reference(raw), draw(point))
    return {oid: draw(point) for oid in reference(raw)}


@st.composite
def out_of_room_layout(draw, raw: dict, base: dict) -> dict:
    """`base` with one or more objects' centres moved out of the room (just past a boundary or far)."""
    room = dims(raw)
    layout = dict(base)
    for oid in draw(st.lists(st.sampled_from(sorted(layout)), min_size=1, max_size=3, unique=True)):
        axis = draw(st.integers(0, 2))
        far = draw(st.sampled_from([1e3, 1e308]))
        value = draw(st.one_of(st.floats(-far, 0.0, exclude_max=True),
                               st.floats(room[axis], far, exclude_min=True)))
        position = list(layout[oid])
        position[axis] = value
        layout[oid] = tuple(position)
    return layout


def _replace_first(body: list[dict], **fields) -> list[dict]:
    return [{**body[0], **fields}, *body[1:]]


def _raw_first(body: list[dict], field_text: str) -> str:
    """The body's JSON with text added inside the first object (to write what json.dumps can't)."""
    first = json.dumps(body[0])[:-1] + ", " + field_text + "}"
    return "[" + ", ".join([first, *(json.dumps(e) for e in body[1:])]) + "]"


MALFORMED = {
    "no answer tags": lambda b: "<think>t</think>" + json.dumps(b),
    "no think": lambda b: f"<answer>{json.dumps(b)}</answer>",
    "text after the answer": lambda b: text(json.dumps(b)) + " Hope this helps!",
    "text before the think": lambda b: "Sure! " + text(json.dumps(b)),
    "two answer blocks": lambda b: text(json.dumps(b)) + f"<answer>{json.dumps(b)}</answer>",
    "unclosed answer": lambda b: f"<think>t</think><answer>{json.dumps(b)}",
    "trailing comma": lambda b: text(json.dumps(b)[:-1] + ",]"),
    "single quotes": lambda b: text(json.dumps(b).replace('"', "'")),
    "wrapped in an object": lambda b: text(json.dumps({"objects": b})),
    "keyed by id": lambda b: text(json.dumps({e["new_object_id"]: [e["x"], e["y"], e["z"]] for e in b})),
    "an object left out": lambda b: text(json.dumps(b[1:])),
    "an unknown object": lambda b: text(json.dumps([*b, {**b[0], "new_object_id": "ghost_9"}])),
    "an object twice": lambda b: text(json.dumps([*b, b[0]])),
    "repeated x": lambda b: text(_raw_first(b, '"x": 1e9')),
    "repeated id": lambda b: text(_raw_first(b, '"new_object_id": "ghost_9"')),
    "NaN coordinate": lambda b: text(json.dumps(_replace_first(b, x="@")).replace('"@"', "NaN", 1)),
    "Infinity coordinate": lambda b: text(json.dumps(_replace_first(b, y="@")).replace('"@"', "-Infinity", 1)),
    "1e999 coordinate": lambda b: text(json.dumps(_replace_first(b, z="@")).replace('"@"', "1e999", 1)),
    "1e308 coordinate": lambda b: text(json.dumps(_replace_first(b, x=1e308))),
    "400-digit coordinate": lambda b: text(json.dumps(_replace_first(b, x="@")).replace('"@"', "9" * 400, 1)),
    "string coordinate": lambda b: text(json.dumps(_replace_first(b, x=str(b[0]["x"])))),
    "null coordinate": lambda b: text(json.dumps(_replace_first(b, y=None))),
    "boolean coordinate": lambda b: text(json.dumps(_replace_first(b, z=True))),
    "list coordinate": lambda b: text(json.dumps(_replace_first(b, x=[b[0]["x"]]))),
    "upper-case keys": lambda b: text(json.dumps([{k.upper(): v for k, v in e.items()} for e in b])),
    "padded id": lambda b: text(json.dumps(_replace_first(b, new_object_id=" " + b[0]["new_object_id"]))),
    "NaN in an extra field": lambda b: text(_raw_first(b, '"confidence": NaN')),
    "empty list": lambda b: text("[]"),
    "null answer": lambda b: text("null"),
    "a number": lambda b: text("3"),
    "empty": lambda b: "",
}

json_leaf = (st.none() | st.booleans() | st.integers(-10**400, 10**400) | st.text(max_size=12)
             | st.floats(allow_nan=False, allow_infinity=False))
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
extra_fields = st.dictionaries(st.text(max_size=12).filter(lambda k: k not in ("new_object_id", *XYZ)), json_value,
                               min_size=1, max_size=4)
think_text = st.text(min_size=1, max_size=60) | st.sampled_from(["I'll write <answer>[…]</answer> after this. ",
                                                                   "<answer> tags hold the layout; <think> is here. "])


@settings(max_examples=120, deadline=None)
@given(st.data(), rooms)
def test_malformed_and_out_of_room_below_every_in_room_layout_and_extras_change_nothing(data, source):
    raw = room_of(source)
    in_room = [reference(raw), data.draw(in_room_layout(raw)), data.draw(in_room_layout(raw))]
    plain = entries(in_room[1])
    kinds = data.draw(st.lists(st.sampled_from(sorted(MALFORMED)), min_size=1, max_size=3, unique=True))
    malformed = [MALFORMED[kind](entries(data.draw(st.sampled_from(in_room)))) for kind in kinds]
    outside = data.draw(out_of_room_layout(raw, data.draw(st.sampled_from(in_room))))
    extras = data.draw(st.lists(extra_fields, min_size=len(plain), max_size=len(plain)))
    long_think = data.draw(think_text) * data.draw(st.integers(1, 400))
    assume("</think>" not in long_think)  # anything else, <answer> tags included, is reasoning
    responses = ([text(json.dumps(entries(layout))) for layout in in_room] + malformed
                 + [text(json.dumps(entries(outside))), text(json.dumps(plain), long_think),
                    text(json.dumps([{**e, **x} for e, x in zip(plain, extras, strict=True)]))])
    rewards = [row["reward"] for row in score_library([raw_row(raw, r) for r in responses])]
    lowest_in_room = min(rewards[:3])
    bad = rewards[3:3 + len(malformed)]
    outside_reward, thought, extended = rewards[3 + len(malformed):]
    assert max(bad) < lowest_in_room, dict(zip(kinds, bad, strict=True))
    assert outside_reward < lowest_in_room, outside
    assert thought == rewards[1] and extended == rewards[1]


number_texts = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-10**400, 10**400).map(str),
    st.sampled_from(["1e308", "-1e308", "1.7976931348623157e308", "-1.7976931348623157e308", "5e-324", "-5e-324",
                     "2.2250738585072014e-308", "-0.0", "0", "1e999", "-1e999", "NaN", "Infinity", "-Infinity",
                     "1" + "0" * 400, "-" + "9" * 400]))


def _with_numbers(raw: dict, numbers: list[str], extra: str) -> str:
    """The reference answer with `numbers` written over its first coordinates and an extra field in each object."""
    parts, k = [], 0
    for oid, position in reference(raw).items():
        fields = [f'"new_object_id": {json.dumps(oid)}']
        for axis, value in zip(XYZ, position, strict=True):
            fields.append(f'"{axis}": {numbers[k] if k < len(numbers) else json.dumps(value)}')
            k += 1
        parts.append("{" + ", ".join([*fields, f'"note": {extra}']) + "}")
    return text("[" + ", ".join(parts) + "]")


@settings(max_examples=80, deadline=None)
@given(rooms, st.lists(number_texts, min_size=1, max_size=6), number_texts,
       st.sampled_from(["metaspatial", "metaspatial-v1"]), st.sampled_from(["rules", "constant"]))
def test_any_json_number_gives_finite_rewards_and_strict_json_columns(source, numbers, extra, preset, judge):
    raw = room_of(source)
    options = {"judge_grades": [7, 6, 8, 5, 7]} if judge == "constant" else {}
    (row,) = score_library([raw_row(raw, _with_numbers(raw, numbers, extra))], preset=preset, judge=judge,
                           **options)
    for column in ("reward", "return", "format_reward", "collision_ratio", "constraint_ratio",
                   "out_of_bounds_ratio", "support_ratio", "judge_score"):
        assert row[column] is None or math.isfinite(row[column]), column
    assert row["reward"] is not None and row["return"] is not None
    for column in ("feedback", "object_scores", "judge_grades"):
        if row[column] is not None:
            orjson.loads(row[column])
