"""Failed samples and judgements are not training signal, and collapsed groups are noticed:
update, eval means, the recipe log and the report leave failed rows out and count them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from test_update_data import scored_rows, tiny_model_dir, write_dataset
from test_update_inputs import WordTokenizer
from typer.testing import CliRunner

from metaspatial_cli.app import app
from stages.core import vlm
from stages.core.collapse import Collapse, collapse
from stages.core.errors import UserError
from stages.core.failures import failure
from stages.update.groups import Excluded, load_groups

runner = CliRunner()


def _rows(tmp_path: Path, groups: int = 3, group_size: int = 3, tokenizer=None) -> list[dict]:
    rows = scored_rows(tokenizer or WordTokenizer(), tmp_path / "scores", groups=groups, group_size=group_size)
    for row in rows:
        row.update(finish_reason="stop", judge_error=None)
    return rows


def _fail_sample(row: dict) -> None:
    row.update(finish_reason="error", response="", response_token_ids=None, reward=0.0, **{"return": 0.0})


def test_failure_kinds_and_a_cut_answer_stays_a_sample():
    assert failure({"finish_reason": "error"}) == "sample failed"
    assert failure({"finish_reason": "stop", "judge_error": "openai: HTTP 500"}) == "judgement failed"
    assert failure({"finish_reason": "length", "judge_error": None}) is None
    assert failure({}) is None


def test_update_leaves_out_failed_rows_and_the_groups_they_leave_short(tmp_path):
    rows = _rows(tmp_path, groups=4)
    _fail_sample(rows[3])  # g1 keeps 2 of 3: shorter than the others
    rows[6]["judge_error"] = rows[7]["judge_error"] = "openai: timed out"  # g2 keeps 1
    rows[10]["finish_reason"] = "length"  # g3: a cut answer is the model's own
    excluded = Excluded()
    groups = load_groups(write_dataset(tmp_path / "scores", rows), "final", "return", "train", excluded=excluded)
    assert [g.group_id for g in groups] == ["g0", "g3"]
    assert excluded.rows == {"sample failed": 1, "judgement failed": 2} and excluded.groups == ["g1", "g2"]
    for row in rows[:3]:
        _fail_sample(row)  # a group of which every sample failed is dropped too
    excluded = Excluded()
    assert [g.group_id for g in load_groups(write_dataset(tmp_path / "s2", rows), "final", "return", "train",
                                            excluded=excluded)] == ["g3"]
    assert excluded.groups == ["g0", "g1", "g2"]


def test_groups_that_each_lost_one_sample_train_at_one_size_and_none_left_is_refused(tmp_path):
    rows = _rows(tmp_path, groups=2)
    _fail_sample(rows[0])
    _fail_sample(rows[4])
    groups = load_groups(write_dataset(tmp_path / "scores", rows), "final", "return", "train")
    assert [len(g.samples) for g in groups] == [2, 2]
    for row in rows:
        _fail_sample(row)
    with pytest.raises(UserError, match="every group lost a sample.*6 sample failed"):
        load_groups(write_dataset(tmp_path / "s2", rows), "final", "return", "train")


def test_update_run_prints_and_records_the_counts(tmp_path, tmp_path_factory):
    model = tiny_model_dir(tmp_path_factory)
    rows = _rows(tmp_path, groups=3, group_size=2, tokenizer=vlm.load_processor(model).tokenizer)
    _fail_sample(rows[5])
    rows[2]["response"] = rows[3]["response"] = "same"  # g1: identical samples
    rows[2]["response_token_ids"] = rows[3]["response_token_ids"]
    rows[2]["return"] = rows[3]["return"] = 1.0
    data = write_dataset(tmp_path / "scores", rows)
    result = runner.invoke(app, ["update", "--input", str(data), "--output", str(tmp_path / "model"), "--model",
                                 str(model), "--per-device-train-batch-size", "2", "--max-steps", "1"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "left out 1 row(s) whose sample or judgement failed (1 sample failed" in text
    assert "1 group(s) they left with under two samples" in text
    assert "2 group(s): 1 with identical samples (50%), 1 with zero reward spread (50%)" in text
    assert "warning" in text and "top_k=1" in text
    manifest = json.loads((tmp_path / "model" / "_manifest.json").read_text())
    assert manifest["failed_rows_left_out"] == {"sample failed": 1} and manifest["groups_left_short"] == 1
    assert manifest["identical_sample_groups"] == 1 and manifest["groups"] == 2


def test_collapse_counts_identical_and_flat_groups():
    rows = [{"group_id": g, "response": r, "reward": w} for g, r, w in [
        ("a", "x", 1.0), ("a", "x", 1.0), ("b", "x", 1.0), ("b", "y", 1.0), ("c", "x", 0.0), ("c", "y", 2.0),
        ("d", "x", 1.0), ("d", "y", 0.0), ("e", "lonely", 1.0)]]
    rows[7]["finish_reason"] = "error"  # d is left with one sample: not compared
    seen = collapse(rows)
    assert seen == Collapse(3, 1, 2) and seen.warn and "3 group(s): 1 with identical samples (33%)" in seen.line()
    assert not collapse(rows[4:6]).warn
    assert collapse([{"group_id": "a", "response": "x", "reward": math.nan}] * 2).flat == 0


def test_eval_means_leave_out_failed_rows(tmp_path):
    from test_score_data import answer_text, gt_placements, scene_row, scenes

    from metaspatial_cli.eval_metrics import model_metrics

    room = next(iter(scenes()))
    good = dict(scene_row(room, answer_text(gt_placements(room))), room_id=room, reward=2.5, finish_reason="stop",
                judge_error=None)
    failed = dict(good, response="", reward=0.0, finish_reason="error")
    judged_badly = dict(good, reward=1.0, judge_error="openai: HTTP 500")
    data = write_dataset(tmp_path / "scores", [good, failed, judged_badly])
    out = model_metrics("m", "m", data)
    assert out["samples"] == 1 and out["failed"] == 2 and out["reward"] == 2.5 and out["format_valid"] == 1.0


def test_recipe_log_and_report_show_the_share_of_collapsed_groups(tmp_path):
    from metaspatial_cli.recipes.runner import _log_groups
    from metaspatial_cli.recipes.steps import Step
    from metaspatial_cli.report_data import turn_stats

    rows = [{"group_id": g, "response": r, "reward": w, "finish_reason": f} for g, r, w, f in [
        ("a", "x", 1.0, "stop"), ("a", "x", 1.0, "stop"), ("b", "x", 0.0, "stop"), ("b", "y", 2.0, "stop"),
        ("b", "", 0.0, "error")]]
    score = write_dataset(tmp_path / "run" / "iter-001" / "turn-1" / "score", rows)
    log = tmp_path / "run" / "recipe.log"
    _log_groups(Step("iter-001/turn-1/score", (), score, "dataset"), log)
    assert "groups of iter-001/turn-1/score: 2 group(s): 1 with identical samples (50%)" in log.read_text()
    (stats,) = turn_stats(tmp_path / "run")
    assert stats.rows == 5 and stats.means["reward"] == 1.0 and stats.groups == Collapse(2, 1, 1)
