"""Fast rollout unit tests (no model): the guided grammar, follow-up prompt text, sample ids, the report."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import xgrammar as xgr
from hypothesis import given, settings
from hypothesis import strategies as st

import stages.rollout as rollout_module
from stages.core import vlm
from stages.core.errors import UserError
from stages.core.turns import feedback_lines, followup_text, previous_answer
from stages.rollout import Config
from stages.rollout.guided import bounded_number, layout_grammar, row_grammar
from stages.rollout.samples import dropped_columns, history_of, sample_ids


def accepts(grammar: str, text: str) -> bool:
    return xgr.testing._is_grammar_accept_string(grammar, text)


@settings(max_examples=40, deadline=None)
@given(upper=st.floats(0.3, 12.0), value=st.floats(0.0, 13.0), decimals=st.integers(0, 3))
def test_bounded_number_accepts_exactly_the_room_range(upper, value, decimals):
    text = f"{value:.{decimals}f}"
    grammar = f"root ::= {bounded_number(upper)}"
    top = int(upper) + int(round((upper - int(upper)) * 10, 6)) / 10  # exact to 0.1 at the top end
    if float(text) <= top - 0.1 or (float(text) <= top and float(text) == round(float(text), 1)):
        assert accepts(grammar, text), (upper, text)
    if float(text) > upper:
        assert not accepts(grammar, text), (upper, text)


def test_layout_grammar_forces_each_object_once_inside_the_room():
    g = layout_grammar(("sofa_1", "lamp_1"), (4.0, 3.5, 2.6), 30)
    good = ('<think>the sofa goes north</think>\n<answer>[{"new_object_id": "sofa_1", "x": 2.0, "y": 3.1, '
            '"z": 0.4}, {"new_object_id": "lamp_1", "x": 0.25, "y": 0, "z": 2.6}]</answer>')
    assert accepts(g, good)
    assert not accepts(g, good.replace('"lamp_1"', '"sofa_1"'))  # an id twice
    assert not accepts(g, good.replace('"x": 2.0', '"x": 4.5'))  # outside the room
    assert not accepts(g, good.replace("<think>the sofa goes north", "<think>" + "a" * 31))  # over budget
    assert not accepts(g, good.replace('}]</answer>', '}, {"new_object_id": "lamp_1", "x": 1, "y": 1, "z": 1}]'
                                                      '</answer>'))


def test_row_grammar_names_the_bad_field():
    row = {"scene": json.dumps([{"new_object_id": "a"}]), "room_x": 3.0, "room_y": 0, "room_z": 2.5}
    with pytest.raises(UserError, match="row 7, field room_y"):
        row_grammar(row, 10, "row 7")
    with pytest.raises(UserError, match="field scene"):
        row_grammar({**row, "room_y": 2.0, "scene": "not json"}, 10, "row 7")


def test_followup_text_holds_task_answer_reward_and_problems():
    last = {"turn": 1, "response": "<think>long reasoning</think><answer>[{\"new_object_id\": \"a\"}]</answer>",
            "reward": 0.4321, "image": "_images/r/ab.png",
            "feedback": {"collisions": [["a", "b"]], "violations": [{"object_id": "a", "preposition": "left of",
                                                                      "target": "b"}],
                         "missing": [f"m{i}" for i in range(11)], "parse_error": None}}
    text = followup_text("TASK", last)
    assert text.startswith("TASK\n") and "long reasoning" not in text
    assert '<answer>[{"new_object_id": "a"}]</answer>' in text and "0.432" in text
    assert "Overlapping objects: a & b" in text and "a should be left of b" in text
    assert "(+3 more)" in text and "render of that layout" in text
    assert feedback_lines({}) == [] and "No rule violations" in followup_text("T", {"reward": 1})
    assert previous_answer("no tags at all") == "no tags at all"


def test_sample_ids_for_first_turn_continuation_and_branches():
    first = sample_ids({"prompt_id": "r1"}, SimpleNamespace(n=2, turn=1))
    assert [s["trajectory_id"] for s in first] == ["r1-s0", "r1-s1"] and {s["group_id"] for s in first} == {"r1-t1"}
    cont = sample_ids({"prompt_id": "r1", "trajectory_id": "r1-s1"}, SimpleNamespace(n=None, turn=2))
    assert cont == [{"sample_id": "r1-s1-t2", "group_id": "r1-s1-t2", "sample_index": 0, "turn": 2,
                     "trajectory_id": "r1-s1"}]
    branches = sample_ids({"prompt_id": "r1", "trajectory_id": "r1-s1"}, SimpleNamespace(n=3, turn=2))
    assert [s["trajectory_id"] for s in branches] == ["r1-s1.0", "r1-s1.1", "r1-s1.2"]


def test_history_appends_the_scored_turn_and_columns_are_dropped():
    cfg = Config(model="m", turn=3, render_view="topdown")
    row = {"turn": 2, "response": "R2", "reward": 0.5, "feedback": '{"unknown": ["x"]}',
           "render_topdown": "_images/t.png", "history": json.dumps([{"turn": 1, "response": "R1"}])}
    history = history_of(row, cfg)
    assert [h["turn"] for h in history] == [1, 2]
    assert history[-1] == {"turn": 2, "response": "R2", "reward": 0.5, "feedback": {"unknown": ["x"]},
                           "image": "_images/t.png"}
    assert dropped_columns(["prompt", "reward", "render_topdown", "render_north", "feedback", "scene"]) == [
        "reward", "render_topdown", "render_north", "feedback"]


def test_unrendered_previous_turn_shows_the_room_image():
    row = {"turn": 1, "response": "R1", "reward": 0.1, "feedback": None, "prompt": "TASK", "image": "_images/room.png"}
    history = history_of(row, Config(model="m", turn=2))
    messages = vlm.build_messages(row["prompt"], row["image"], history)
    assert vlm.message_images(messages) == ["_images/room.png"]
    assert "render" not in messages[0]["content"][1]["text"] and "R1" in messages[0]["content"][1]["text"]


def test_report_says_how_many_samples_were_cut_at_max_new_tokens(capsys):
    def row(prompt_id, finish):
        return {"prompt_id": prompt_id, "finish_reason": finish, "num_response_tokens": 600}

    rollout_module._report([row("a", "stop"), row("b", "length"), row("b", "length"), row("c", "length")], 1.0)
    assert "3 of 4 samples (2 prompt(s)) stopped at --max-new-tokens" in capsys.readouterr().err
    rollout_module._report([row("a", "stop")], 1.0)
    assert "max-new-tokens" not in capsys.readouterr().err


def test_paper_followup_repeats_the_full_response_and_reward_without_feedback():
    """rollout --followup paper: the history entry asks for the paper's form, which the shared builder
    (used again by update to rebuild the prompt) turns into task + full response + reward."""
    response = "<think>long reasoning about the sofa</think><answer>[{\"new_object_id\": \"a\"}]</answer>"
    row = {"turn": 1, "response": response, "reward": 0.4321, "feedback": '{"collisions": [["a", "b"]]}',
           "prompt": "TASK", "image": "_images/room.png", "render_perspective": "_images/r1.png"}
    history = history_of(row, Config(model="m", turn=2, followup="paper"))
    assert history[-1]["followup"] == "paper"
    messages = vlm.build_messages(row["prompt"], row["image"], history)
    text = messages[0]["content"][1]["text"]
    assert text.startswith("TASK\n") and response in text and "0.432" in text
    assert "Overlapping" not in text and text.index(response) < text.index("0.432")
    assert vlm.message_images(messages) == ["_images/r1.png"]  # the render of the previous layout
    long = followup_text("T", {"response": "x" * 20000, "reward": None, "followup": "paper"})
    assert "…(cut)" in long and "not scored" in long
    assert "followup" not in history_of(row, Config(model="m", turn=2))[-1]  # the default form is unchanged
