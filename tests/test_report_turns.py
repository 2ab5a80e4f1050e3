"""The report's reward by turn within trajectories: paired gains over turn 1, checked by hand."""

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from metaspatial_cli.app import app
from metaspatial_cli.report_turns import turn_gains
from stages.core import dataset as ds

# trajectory -> reward at turns 1, 2, 3 (None: no row at that turn)
REWARDS = {
    "a": (0.1, 0.3, 0.6),
    "b": (0.2, 0.2, 0.5),
    "c": (0.3, 0.7, 0.3),
    "d": (0.5, 0.9, None),  # never reached turn 3: left out of every turn
}


def write_score(directory: Path, rows: list[dict]) -> None:
    ds.write_rows(directory / ds.part_name(0, 1, "parquet"), rows, None, "parquet")
    ds.update_manifest(directory, {"stage": "score", "num_shards": 1}, ds.part_name(0, 1, "parquet"),
                       {"rows": len(rows)})


def row(trajectory: str, turn: int, reward: float, **extra) -> dict:
    return {"trajectory_id": trajectory, "room_id": "room", "sample_index": 0, "turn": turn, "reward": reward,
            "finish_reason": "stop", "collision_ratio": 0.1 * turn, "out_of_bounds_ratio": 0.0,
            "support_ratio": 0.5, "constraint_ratio": 0.25, **extra}


def three_turn_run(tmp_path: Path) -> Path:
    """Iteration 1: three turns of five trajectories, two of which cannot be paired; iteration 2: one turn."""
    run = tmp_path / "run"
    for turn in (1, 2, 3):
        rows = [row(t, turn, r[turn - 1]) for t, r in REWARDS.items() if r[turn - 1] is not None]
        failed = {"finish_reason": "error"} if turn == 2 else {}  # a server fault at turn 2: left out
        rows.append(row("e", turn, 0.9, **failed))
        if turn == 3:
            rows[0]["collision_ratio"] = float("nan")  # a ratio the scorer could not measure: skipped
        write_score(run / "iter-001" / f"turn-{turn}" / "score", rows)
    write_score(run / "iter-002" / "turn-1" / "score", [row("a", 1, 0.4)])
    return run


def test_gains_are_paired_differences_over_the_same_trajectories(tmp_path):
    gains = turn_gains(three_turn_run(tmp_path))
    assert [(g.iteration, g.turn, g.trajectories) for g in gains] == [(1, 1, 3), (1, 2, 3), (1, 3, 3)]
    first, second, third = gains
    assert first.reward == pytest.approx(0.2) and first.gain == 0.0 and math.isnan(first.gain_sem)
    # turn 2: differences 0.2, 0.0, 0.4 -> mean 0.2, sample sd 0.2, s.e. 0.2 / √3
    assert second.reward == pytest.approx(0.4) and second.gain == pytest.approx(0.2)
    assert second.gain_sem == pytest.approx(0.2 / math.sqrt(3))
    # turn 3: differences 0.5, 0.3, 0.0 -> mean 0.8 / 3; sample variance over 3 - 1
    diffs = [0.5, 0.3, 0.0]
    variance = sum((d - 0.8 / 3) ** 2 for d in diffs) / 2
    assert third.reward == pytest.approx(1.4 / 3) and third.gain == pytest.approx(0.8 / 3)
    assert third.gain_sem == pytest.approx(math.sqrt(variance / 3)) and third.gain_sem == pytest.approx(0.145297, abs=1e-6)
    assert second.ratios == pytest.approx({"collision_ratio": 0.2, "out_of_bounds_ratio": 0.0, "support_ratio": 0.5,
                                           "constraint_ratio": 0.25})
    assert third.ratios["collision_ratio"] == pytest.approx(0.3)  # the NaN row skipped, the two others 0.3


def test_report_shows_the_table_only_for_multi_turn_runs(tmp_path):
    run = three_turn_run(tmp_path)
    assert CliRunner().invoke(app, ["report", str(run)]).exit_code == 0
    page = (run / "report.html").read_text()
    section = page[page.index("<h2>Refinement within trajectories"):]
    assert "<td>1</td><td>2</td><td>3</td><td>0.400</td><td>0.200</td><td>0.115</td>" in section
    assert "<td>1</td><td>3</td><td>3</td><td>0.467</td><td>0.267</td><td>0.145</td>" in section
    single = tmp_path / "single"
    write_score(single / "iter-001" / "turn-1" / "score", [row("a", 1, 0.4), row("b", 1, 0.5)])
    assert CliRunner().invoke(app, ["report", str(single)]).exit_code == 0
    assert "Refinement within trajectories" not in (single / "report.html").read_text()


reward = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=32))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c", ""]), reward, reward), max_size=6))
def test_any_rewards_and_ids_give_finite_paired_gains(tmp_path_factory, pairs):
    """Missing, NaN or infinite rewards, repeated and empty ids: such rows are left out, never a crash or NaN gain."""
    run = tmp_path_factory.mktemp("run")
    for turn in (1, 2):
        rows = [row(t, turn, r[turn - 1]) for t, *r in pairs]
        write_score(run / "iter-001" / f"turn-{turn}" / "score", rows or [row("z", turn, 0.0)])
    for gain in turn_gains(run):
        assert gain.trajectories >= 1 and math.isfinite(gain.reward) and math.isfinite(gain.gain)
