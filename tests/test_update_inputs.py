"""Bad scored datasets and bad options stop `update` with exit code 2 and a message naming the
problem, before any training; multi-turn rows are selected as documented."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from test_update_data import scored_rows, tiny_model_dir, write_dataset
from typer.testing import CliRunner

from metaspatial_cli.app import app
from stages.core.errors import UserError
from stages.update.groups import load_groups, select_rows, zero_variance

runner = CliRunner()


class WordTokenizer:
    """Enough of a tokenizer for `scored_rows` when no model is needed: one id per word."""

    eos_token_id = 2

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [10 + len(word) for word in text.split()]}


def rows_for(tmp_path: Path, **kwargs) -> list[dict]:
    return scored_rows(WordTokenizer(), tmp_path / "scores", **kwargs)


def run_cli(*args: str):
    return runner.invoke(app, ["update", *args])


def update_args(data: Path, out: Path, model: str = "/no/model/needed", *extra: str) -> list[str]:
    return ["--input", str(data), "--output", str(out), "--model", model, *extra]


def test_missing_columns_are_named(tmp_path):
    rows = [{k: v for k, v in r.items() if k not in ("group_id", "return")} for r in rows_for(tmp_path)]
    data = write_dataset(tmp_path / "scores", rows)
    result = run_cli(*update_args(data, tmp_path / "out"))
    assert result.exit_code == 2
    assert "missing column(s) group_id, return" in result.output
    assert not (tmp_path / "out" / "model.safetensors").exists()


@pytest.mark.parametrize("bad", [math.nan, None, math.inf])
def test_unusable_rewards_name_the_rows(tmp_path, bad):
    rows = rows_for(tmp_path)
    rows[5]["return"] = bad
    result = run_cli(*update_args(write_dataset(tmp_path / "scores", rows), tmp_path / "out"))
    assert result.exit_code == 2
    assert "return" in result.output and "row(s) 5" in result.output


def test_single_sample_groups_are_refused(tmp_path):
    rows = rows_for(tmp_path, groups=3, group_size=1)
    result = run_cli(*update_args(write_dataset(tmp_path / "scores", rows), tmp_path / "out"))
    assert result.exit_code == 2
    assert "g0, g1, g2 (by group_id) have a single sample" in " ".join(result.output.split())


def test_uneven_groups_are_refused(tmp_path):
    rows = rows_for(tmp_path, groups=2, group_size=4)[:-1]
    result = run_cli(*update_args(write_dataset(tmp_path / "scores", rows), tmp_path / "out"))
    assert result.exit_code == 2
    assert "groups differ in size" in " ".join(result.output.split())


def test_missing_group_values_are_named(tmp_path):
    rows = rows_for(tmp_path)
    rows[3]["group_id"] = None
    result = run_cli(*update_args(write_dataset(tmp_path / "scores", rows), tmp_path / "out"))
    assert result.exit_code == 2
    assert "group_id (which form the groups) missing or empty in row(s) 3" in " ".join(result.output.split())


def test_batch_must_hold_whole_groups(tmp_path):
    data = write_dataset(tmp_path / "scores", rows_for(tmp_path, group_size=4))
    result = run_cli(*update_args(data, tmp_path / "out"), "--per-device-train-batch-size", "6")
    assert result.exit_code == 2
    assert "not a multiple of the group size 4" in " ".join(result.output.split())


def test_bad_options_fail_before_reading(tmp_path):
    result = run_cli(*update_args(tmp_path / "nowhere", tmp_path / "out"), "--merge-lora")
    assert result.exit_code == 2 and "--merge-lora needs --lora-r" in result.output
    result = run_cli(*update_args(tmp_path / "nowhere", tmp_path / "out"), "--loss-type", "ppo")
    assert result.exit_code == 2 and "loss_type" in result.output


def test_too_long_groups_are_counted_then_skipped(tmp_path_factory, tmp_path):
    model = str(tiny_model_dir(tmp_path_factory))
    from stages.core import vlm

    rows = scored_rows(vlm.load_processor(model).tokenizer, tmp_path / "scores", groups=2, group_size=2)
    for row in rows[2:]:
        row["prompt"] = "a much longer room description " * 30
    data = write_dataset(tmp_path / "scores", rows)
    result = run_cli(*update_args(data, tmp_path / "out", model, "--max-length", "200"))
    assert result.exit_code == 2
    assert "1 of 2 group(s) have prompt + completion longer than 200 tokens" in " ".join(result.output.split())
    result = run_cli(*update_args(data, tmp_path / "out", model, "--max-length", "200", "--skip-too-long",
                                  "--max-steps", "1", "--per-device-train-batch-size", "2"))
    assert result.exit_code == 0, result.output
    assert "skipped 1 group(s)" in " ".join(result.output.split())


def multi_turn_rows() -> list[dict]:
    """Two rooms x two trajectories x two turns, as rollout writes them: turn 1 samples a group per
    room; turn 2 continues each trajectory once (a group of one, with its own history)."""
    rows = []
    for traj in range(4):
        room = f"room{traj // 2}"
        for turn in (1, 2):
            rows.append({"prompt_id": room, "prompt": room, "image": None,
                         "history": None if turn == 1 else f'[{{"turn": 1, "response": "a{traj}"}}]',
                         "response": f"answer {traj} {turn}",
                         "group_id": f"{room}-t1" if turn == 1 else f"{room}-s{traj}-t2",
                         "turn": turn, "trajectory_id": f"{room}-s{traj}", "reward": float(turn + traj),
                         "return": 10.0 + traj, "split": "train"})
    return rows


def test_final_turn_of_each_trajectory_is_selected():
    rows = multi_turn_rows()
    final = select_rows(rows, "final", "train", Path("d"))
    assert [(rows[i]["trajectory_id"], rows[i]["turn"]) for i in final] == [
        ("room0-s0", 2), ("room0-s1", 2), ("room1-s2", 2), ("room1-s3", 2)]
    assert select_rows(rows, "every", "train", Path("d")) == list(range(len(rows)))


def test_final_turns_compare_the_trajectories_of_a_room(tmp_path):
    data = write_dataset(tmp_path / "mt", multi_turn_rows())
    groups = load_groups(data, "final", "return", "train")
    assert {g.group_id: g.rewards for g in groups} == {"room0": [10.0, 11.0], "room1": [12.0, 13.0]}
    assert [s.history for s in groups[0].samples] == ['[{"turn": 1, "response": "a0"}]',
                                                      '[{"turn": 1, "response": "a1"}]']
    every = load_groups(data, "every", "reward", "train")  # a room's trajectories at each turn
    assert {g.group_id: g.rewards for g in every} == {"room0/1": [1.0, 2.0], "room0/2": [2.0, 3.0],
                                                      "room1/1": [3.0, 4.0], "room1/2": [4.0, 5.0]}
    with pytest.raises(UserError, match="single sample"):
        load_groups(data, "every", "reward", "train", group_by="group_id")  # one continuation per turn-2 group


def test_split_filter_and_zero_variance(tmp_path):
    rows = rows_for(tmp_path, groups=2, group_size=2, rewards=[[1.0, 1.0], [0.0, 1.0]])
    rows[0]["split"] = rows[1]["split"] = "test"
    data = write_dataset(tmp_path / "scores", rows)
    assert [g.group_id for g in load_groups(data, "final", "return", "train")] == ["g1"]
    assert zero_variance(load_groups(data, "final", "return", "")) == ["g0"]
    result = run_cli(*update_args(data, tmp_path / "out", "/no/model", "--split", "val"))
    assert result.exit_code == 2 and "no rows of split 'val'" in result.output


def test_missing_tracker_is_named_before_training(tmp_path):
    import importlib.util

    if importlib.util.find_spec("tensorboard") is not None:
        pytest.skip("tensorboard is installed here")
    data = write_dataset(tmp_path / "scores", rows_for(tmp_path))
    result = run_cli(*update_args(data, tmp_path / "out"), "--report-to", "tensorboard")
    assert result.exit_code == 2 and "--report-to tensorboard: not installed" in result.output


def test_fewer_groups_than_one_step_takes(tmp_path_factory, tmp_path):
    model = str(tiny_model_dir(tmp_path_factory))
    from stages.core import vlm

    rows = scored_rows(vlm.load_processor(model).tokenizer, tmp_path / "scores", groups=1, group_size=4)
    result = run_cli(*update_args(write_dataset(tmp_path / "scores", rows), tmp_path / "out", model,
                                  "--per-device-train-batch-size", "8"))
    assert result.exit_code == 2
    assert "only 1 group(s) to train on, but one optimizer step takes 2" in " ".join(result.output.split())


def test_unloadable_model_is_an_input_error(tmp_path):
    data = write_dataset(tmp_path / "scores", rows_for(tmp_path))
    result = run_cli(*update_args(data, tmp_path / "out", str(tmp_path / "no-such-model")))
    assert result.exit_code == 2 and "--model: cannot load" in result.output


def test_off_policy_masking_needs_sampling_logprobs(tmp_path):
    rows = rows_for(tmp_path)
    data = write_dataset(tmp_path / "scores", rows)
    result = run_cli(*update_args(data, tmp_path / "out"), "--off-policy-mask-threshold", "0.5")
    assert result.exit_code == 2 and "missing in 8 row(s)" in " ".join(result.output.split())
    for row in rows:
        row["response_logprobs"] = [-1.0]  # one value for several tokens
    result = run_cli(*update_args(write_dataset(tmp_path / "scores", rows), tmp_path / "out"))
    assert result.exit_code == 2 and "differ in length in row(s) 0, 1" in " ".join(result.output.split())
