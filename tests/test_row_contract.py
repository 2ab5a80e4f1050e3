"""The row contract: one decoder per column, and a wrongly typed column stops a stage with exit 2
and one line naming the dataset, row and field, before anything is written."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import cli
from hypothesis import given
from hypothesis import strategies as st
from test_score_data import answer_text, gt_placements, scene_row
from test_update_data import scored_rows, tiny_model_dir

from stages.core import rows
from stages.core.columns import SCORE_FIELDS, SCORED_COLUMNS
from stages.core.errors import UserError
from stages.core.scene import Scene
from stages.score import COLUMNS as SCORE_ADDS

ROOM = "room_5041"


def write(directory: Path, table_rows: list[dict], schema: pa.Schema | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(table_rows, schema=schema), directory / "train-00000-of-00001.parquet")
    return directory


def score_input(tmp_path: Path, count: int = 3, **columns) -> list[dict]:
    rows_ = [scene_row(ROOM, answer_text(gt_placements(ROOM)), trajectory_id=f"t{k}", turn=1) for k in range(count)]
    for name, (index, value) in columns.items():
        rows_[index][name] = value
    return rows_


def one_line_naming(output: str, *parts: str) -> bool:
    text = " ".join(output.split())
    return all(p in text for p in parts)


def test_score_refuses_a_non_integer_turn(tmp_path):
    data = write(tmp_path / "in", score_input(tmp_path, turn=(2, 1.5)))
    code, out = cli("score", "--input", data, "--output", tmp_path / "out")
    assert code == 2 and one_line_naming(out, "row 2, field turn", "1.5"), out
    assert not (tmp_path / "out").exists()


def test_score_refuses_a_response_stored_as_numbers(tmp_path):
    table = score_input(tmp_path)
    for k, row in enumerate(table):
        row["response"] = k * 7
    code, out = cli("score", "--input", write(tmp_path / "in", table), "--output", tmp_path / "out")
    assert code == 2 and one_line_naming(out, "row 0, field response", "must be text"), out
    assert not (tmp_path / "out").exists()


def test_rollout_refuses_an_integer_image_column(tmp_path):
    table = [{"prompt_id": f"p{k}", "prompt": "place the sofa", "image": k} for k in range(3)]
    code, out = cli("rollout", "--input", write(tmp_path / "in", table), "--output", tmp_path / "out",
                    "--model", "no/model-needed")
    assert code == 2 and one_line_naming(out, "row 0, field image", "must be an image path"), out
    assert not (tmp_path / "out").exists()


def test_rollout_turn_2_refuses_bad_history(tmp_path):
    table = [{"prompt_id": "p", "prompt": "place", "trajectory_id": "t", "turn": 1, "response": "r",
              "reward": 0.5, "feedback": None, "history": json.dumps([{"turn": "one"}])}]
    code, out = cli("rollout", "--input", write(tmp_path / "in", table), "--output", tmp_path / "out",
                    "--model", "no/model-needed", "--turn", "2")
    assert code == 2 and one_line_naming(out, "row 0, field history[0].turn"), out


def test_update_refuses_token_ids_stored_as_a_string(tmp_path):
    class Words:
        eos_token_id = 2

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [10 + len(w) for w in text.split()]}

    table = scored_rows(Words(), tmp_path / "scores")
    for row in table:
        row["response_token_ids"] = json.dumps(row["response_token_ids"])
    data = write(tmp_path / "scores", table)
    code, out = cli("update", "--input", data, "--output", tmp_path / "out", "--model", "/no/model/needed")
    assert code == 2 and one_line_naming(out, "row 0, field response_token_ids", "list of whole token ids"), out
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_update_refuses_a_token_id_beyond_the_vocabulary(tmp_path_factory, tmp_path):
    from stages.core import vlm

    model = str(tiny_model_dir(tmp_path_factory))
    tokenizer = vlm.load_processor(model).tokenizer
    table = scored_rows(tokenizer, tmp_path / "scores", groups=2, group_size=2)
    table[3]["response_token_ids"] = [*table[3]["response_token_ids"][:-1], len(tokenizer) + 5]
    data = write(tmp_path / "scores", table)
    code, out = cli("update", "--input", data, "--output", tmp_path / "out", "--model", model, "--max-steps", "1",
                    "--per-device-train-batch-size", "2")
    assert code == 2 and one_line_naming(out, "row 3, field response_token_ids", f"token id {len(tokenizer) + 5}",
                                         "vocabulary"), out
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_scene_from_row_is_parsed_once_per_scene():
    row = scene_row(ROOM, "")
    first, again = Scene.from_row(row), Scene.from_row(dict(row, response="other"))
    assert first is again and first.ids == Scene.from_row(json.loads(json.dumps(row))).ids
    with pytest.raises(UserError, match="row 4, field room_z"):
        Scene.from_row(dict(row, room_z=0), "row 4")
    with pytest.raises(UserError, match="row 4, field scene: not valid JSON"):
        Scene.from_row(dict(row, scene="[{"), "row 4")


def test_column_lists_are_the_contracts():
    assert SCORE_ADDS is SCORE_FIELDS
    assert {"layout", "parse_error", "reward", "feedback", "object_scores", "return"} <= set(SCORED_COLUMNS)


def test_history_round_trips_and_names_the_bad_entry():
    entries = [{"turn": 1, "response": "a", "reward": 0.5, "feedback": {"missing": ["x"]}, "image": "_images/a.png"}]
    assert rows.history(json.dumps(entries)) == entries
    assert rows.history(None) == [] and rows.history("") == []
    with pytest.raises(UserError, match=r"d, row 2, field history\[0\].reward"):
        rows.history(json.dumps([{"turn": 1, "reward": "high"}]), "d, row 2, field history")


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                                         max_size=4), max_leaves=12)


@given(value=json_values | json_values.map(lambda v: json.dumps(v)) | st.text(max_size=30))
def test_every_decoder_returns_or_raises_a_user_error(value):
    """Whatever a dataset holds, a decoder gives a typed value or a UserError, never another exception."""
    for name, decode in rows.DECODERS.items():
        with contextlib.suppress(UserError):
            decode(value, name)
    with contextlib.suppress(UserError):
        Scene.from_row({"scene": value, "room_x": 4.0, "room_y": 3.0, "room_z": 2.5})
