"""Rewards a model output must not poison: ambiguous JSON, absurd numbers, failed judges, long histories.

Every test here failed on the main branch before the strict answer parser (issue 11, "Rewards that a
model output can poison", and issue 12's "first vs last answer block")."""

import json
import math

import orjson
import pytest
from test_score_data import answer_text, gt_placements, scene_row, scenes, score_library

from stages import score
from stages.core.answer import entry_spans, parse_answer
from stages.core.dataset import read_table
from stages.core.turns import followup_text, previous_answer
from stages.score.judges import ConstantJudge, Judgement, RulesJudge
from stages.score.scoring import FAILED, score_rows

ROOM = next(iter(scenes()))
PRESETS = ("metaspatial", "metaspatial-v1")
JSON_COLUMNS = ("feedback", "object_scores", "judge_grades")


def gt_body() -> list[dict]:
    return [{"new_object_id": oid, "x": x, "y": y, "z": z} for oid, (x, y, z) in gt_placements(ROOM).items()]


def text_of(entries_json: str) -> str:
    return "<think>placing</think>\n<answer>\n" + entries_json + "\n</answer>"


def with_first_entry(replacement: str) -> str:
    """The ground-truth answer with its first entry's JSON text replaced (to write what json.dumps can't)."""
    body = gt_body()
    rest = ", ".join(json.dumps(e) for e in body[1:])
    return text_of("[" + replacement + ", " + rest + "]")


def first_entry(x: str | None = None, **extra: str) -> str:
    """The first ground-truth entry as JSON text, with `x` and extra fields written as given."""
    oid, (x0, y, z) = next(iter(gt_placements(ROOM).items()))
    fields = {"new_object_id": json.dumps(oid), "x": json.dumps(x0) if x is None else x, "y": json.dumps(y),
              "z": json.dumps(z), **extra}
    return "{" + ", ".join(f'"{key}": {value}' for key, value in fields.items()) + "}"


def assert_clean(row: dict) -> None:
    """A row every consumer can read: finite reward and return, strictly parseable JSON columns."""
    assert math.isfinite(row["reward"]) and math.isfinite(row["return"])
    for column in JSON_COLUMNS:
        if row.get(column) is not None:
            orjson.loads(row[column])


def test_a_repeated_coordinate_key_is_a_format_error_not_last_wins():
    right_x = json.dumps(gt_body()[0]["x"])
    tricked = first_entry(x="1e9")[:-1] + f', "x": {right_x}}}'
    plain, repeated = score_library([scene_row(ROOM, text_of(json.dumps(gt_body()))),
                                     scene_row(ROOM, with_first_entry(tricked))])
    assert repeated["reward"] == 0.5 < 2 <= plain["reward"]
    assert "'x' appears more than once" in json.loads(repeated["feedback"])["parse_error"]


def test_a_repeated_object_id_is_a_format_error_and_the_object_is_not_placed():
    oid = gt_body()[0]["new_object_id"]
    tricked = '{"new_object_id": "sofa_99", ' + first_entry()[1:]
    parsed = parse_answer(with_first_entry(tricked), list(gt_placements(ROOM)))
    assert not parsed.valid and oid not in parsed.placements and parsed.missing == [oid]
    assert score_library([scene_row(ROOM, with_first_entry(tricked))])[0]["reward"] == 0.5


def test_repeated_keys_in_an_extra_field_or_the_id_keyed_shape_are_errors_too():
    nested = with_first_entry(first_entry(meta='{"a": 1, "a": 2}'))
    assert "'a' appears more than once" in parse_answer(nested, list(gt_placements(ROOM))).error
    keyed = text_of('{"bed_1": [1, 1, 1], "bed_1": [2, 2, 2]}')
    parsed = parse_answer(keyed, ["bed_1"])
    assert parsed.placements == {} and "appears more than once" in parsed.error


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("number", ["1e308", "-1e308", "1.7976931348623157e308", "1" + "0" * 400,
                                    "-" + "9" * 400, "NaN", "Infinity", "1e999"])
def test_absurd_coordinates_give_finite_rewards_and_strict_json(preset, number):
    row = score_library([scene_row(ROOM, with_first_entry(first_entry(x=number)))], preset=preset)[0]
    assert_clean(row)
    if preset == "metaspatial":
        assert row["reward"] == 0.5 and json.loads(row["feedback"])["parse_error"]


def test_v1_preset_survives_a_400_digit_integer_where_the_paper_crashes():
    text = with_first_entry(first_entry(x="1" + "0" * 400))
    for judge in ("rules", "constant"):
        options = {"judge_grades": [7, 6, 8, 5, 7]} if judge == "constant" else {}
        row = score_library([scene_row(ROOM, text)], preset="metaspatial-v1", judge=judge, **options)[0]
        assert_clean(row)
        assert row["reward"] == 0.0 and "OverflowError" in row["upstream_crash"]


def test_a_lone_surrogate_in_an_id_still_gives_strict_json():
    text = with_first_entry('{"new_object_id": "\\ud800", "x": 1, "y": 1, "z": 1}')
    row = score_library([scene_row(ROOM, text)])[0]
    assert_clean(row)
    assert json.loads(row["feedback"])["unknown"] == ["?"]


def test_a_history_of_absurd_rewards_cannot_overflow_the_return():
    history = json.dumps([{"turn": t, "reward": 1e308} for t in range(3)])
    for mode in ("weighted-average", "discounted-sum"):
        row = score_library([scene_row(ROOM, answer_text(gt_placements(ROOM)), history=history)],
                            return_mode=mode)[0]
        assert row["return"] == row["reward"]


class FailingJudge:
    name = "openai"
    needs_images = False

    def grade(self, requests):
        return [Judgement(None, "openai: HTTP 500: internal error") for _ in requests]


def scored_with(judge, preset: str) -> dict:
    cfg = score.Config(preset=preset, judge_fallback="drop")
    return score_rows([scene_row(ROOM, answer_text(gt_placements(ROOM)))], cfg, judge, RulesJudge(), None)[0]


@pytest.mark.parametrize("preset", PRESETS)
def test_a_dropped_judgement_is_never_worth_more_than_a_judgement(preset):
    failed = scored_with(FailingJudge(), preset)
    assert failed["judge"] == FAILED and "HTTP 500" in failed["judge_error"]
    assert failed["judge_score"] is None and failed["judge_grades"] is None
    lowest = scored_with(ConstantJudge([1, 1, 1, 1, 1]), preset)["reward"]
    assert failed["reward"] == pytest.approx(lowest)
    for grades in ([2, 1, 1, 1, 1], [5, 5, 5, 5, 5], [10, 10, 10, 10, 10]):
        assert failed["reward"] < scored_with(ConstantJudge(grades), preset)["reward"]
    assert failed["reward"] <= scored_with(RulesJudge(), preset)["reward"]


def test_just_outside_a_wall_is_out_of_the_room():
    placements = gt_placements(ROOM)
    first = next(iter(placements))
    room_x = scenes()[ROOM]["room_size"]["x"]
    nudged = {**placements, first: (room_x + 0.1, *placements[first][1:])}
    centre = (room_x / 2, scenes()[ROOM]["room_size"]["y"] / 2, 0.5)
    stacked = dict.fromkeys(placements, centre)  # every object at one point: the worst in-room layout
    out, pile = score_library([scene_row(ROOM, answer_text(nudged)), scene_row(ROOM, answer_text(stacked))])
    assert out["reward"] < 2 <= pile["reward"]


def test_answer_tags_mentioned_while_thinking_are_reasoning():
    body = json.dumps(gt_body())
    plain = text_of(body)
    musing = f"<think>The format is <answer>[…]</answer>; first a draft: <answer>[]</answer>.</think><answer>{body}</answer>"
    a, b = score_library([scene_row(ROOM, plain), scene_row(ROOM, musing)])
    assert a["reward"] == b["reward"] >= 2 and previous_answer(musing) == f"<answer>{body}</answer>"
    spans = entry_spans(musing)  # object-level credit reads the same block
    assert set(spans) == set(gt_placements(ROOM)) and min(lo for lo, _ in spans.values()) > musing.index("</think>")


def test_the_next_turn_shows_the_answer_block_that_was_scored():
    ids = list(gt_placements(ROOM))
    draft = json.dumps([{"new_object_id": oid, "x": 0, "y": 0, "z": 0} for oid in ids])
    final = json.dumps(gt_body())
    response = f"<think>first try</think><answer>{draft}</answer> wait, fixing it <answer>{final}</answer>"
    assert previous_answer(response) == f"<answer>{final}</answer>"
    assert parse_answer(response, ids).placements == gt_placements(ROOM)
    prompt = followup_text("Place the furniture.", {"turn": 0, "response": response, "reward": 0.75})
    assert final in prompt and draft not in prompt


@pytest.mark.parametrize("preset", PRESETS)
def test_the_score_command_writes_finite_rewards_and_strict_json_for_poisoned_answers(tmp_path, preset):
    import pandas as pd
    from helpers import cli

    poisoned = [with_first_entry(first_entry(x=n)) for n in ("1e308", "-1.7976931348623157e308", "9" * 400, "NaN")]
    poisoned += [with_first_entry(first_entry(x="1e9")[:-1] + f', "x": {json.dumps(gt_body()[0]["x"])}}}'),
                 with_first_entry('{"new_object_id": "\\ud800", "x": 1, "y": 1, "z": 1}')]
    (tmp_path / "in").mkdir()
    pd.DataFrame([scene_row(ROOM, text) for text in poisoned]).to_parquet(tmp_path / "in" / "train-00000-of-00001.parquet")
    code, output = cli("score", "--input", tmp_path / "in", "--output", tmp_path / "out", "--preset", preset)
    assert code == 0, output
    for row in read_table(tmp_path / "out").to_pylist():
        assert_clean(row)
