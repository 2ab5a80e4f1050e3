"""`eval --compare-to LABEL`: each row's reward minus a baseline row's, paired room by room, in the
printed table, eval.md and eval.csv; an unknown label stops before any work; recipes label their rows."""

import csv
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import REPO, cli
from test_eval import first_room, scored_row

from metaspatial_cli.eval_metrics import model_metrics, print_table, write_tables
from metaspatial_cli.eval_paired import add_paired_deltas, room_rewards
from stages.core import dataset as ds
from stages.core.scene import Scene


def scores(directory: Path, rewards: list[tuple[str, float, str]]) -> Path:
    """A scored dataset: one exact answer per (room, reward, finish reason)."""
    room = first_room()
    scene = Scene.from_idesign(room["scene_graph"], room["room_size"], room["room_id"])
    exact = [{"new_object_id": i, "x": p[0], "y": p[1], "z": p[2]} for i, p in scene.reference_layout().items()]
    rows = [dict(scored_row(exact, reward), room_id=room_id, finish_reason=finish)
            for room_id, reward, finish in rewards]
    ds.write_rows(directory / ds.part_name(0, 1, "parquet"), rows, None, "parquet")
    return directory


def test_paired_difference_over_shared_rooms_by_hand(tmp_path, capsys):
    warmed = scores(tmp_path / "warmed", [("A", 1.0, "stop"), ("A", 2.0, "stop"), ("B", 1.0, "stop"),
                                          ("C", 2.0, "stop"), ("D", 0.5, "stop")])  # D: only the baseline has it
    rl = scores(tmp_path / "rl", [("A", 2.0, "stop"), ("A", 2.0, "stop"), ("B", 0.5, "stop"),
                                  ("B", 3.0, "error"),  # a failed sample: left out, B's mean stays 0.5
                                  ("C", 3.0, "stop"), ("E", 2.5, "stop")])  # E: only this row has it
    dirs = {"warmed up": warmed, "after RL": rl}
    table = [model_metrics(label, label, d) for label, d in dirs.items()]
    add_paired_deltas(table, [room_rewards(ds.read_rows(d)) for d in dirs.values()], "warmed up")
    # room means, baseline A 1.5, B 1.0, C 2.0; RL A 2.0, B 0.5, C 3.0: differences +0.5, -0.5, +1.0
    # mean 1/3; squared deviations 1/36 + 25/36 + 16/36 = 42/36, / (n-1) = 7/12, / n = 7/36
    after = table[1]
    assert after["delta_reward"] == pytest.approx(1 / 3)
    assert after["delta_reward_se"] == pytest.approx((7 / 36) ** 0.5)
    assert (after["rooms_up"], after["rooms_paired"]) == (2, 3)
    assert after["failed"] == 1
    assert all(table[0][k] is None for k in ("delta_reward", "delta_reward_se", "rooms_up", "rooms_paired"))

    write_tables(table, tmp_path, "warmed up")
    with open(tmp_path / "eval.csv", newline="") as fh:
        written = list(csv.DictReader(fh))
    assert written[0]["delta_reward"] == "" and written[0]["rooms_up"] == ""
    assert float(written[1]["delta_reward"]) == pytest.approx(1 / 3) and written[1]["rooms_up"] == "2"
    md = (tmp_path / "eval.md").read_text().splitlines()
    assert "Δ reward vs warmed up (per room) | n up |" in md[0]
    assert md[2].endswith("| – | – |") and md[3].endswith("| 0.333 ± 0.441 | 2/3 |")

    print_table(table, SimpleNamespace(rooms=Path("rooms"), split="test", n=1, output=tmp_path, compare_to="warmed up"))
    printed = capsys.readouterr().out
    assert "Δ reward vs warmed up (per room)" in printed and "0.333 ± 0.441" in printed and "2/3" in printed


def test_unknown_compare_to_label_stops_before_any_work(tmp_path):
    code, out = cli("eval", "--model", "a", "--model", "b", "--label", "warm", "--label", "rl",
                    "--compare-to", "warmed up", "--output", tmp_path / "out")
    assert code == 2
    assert "--compare-to: 'warmed up' is not a row of the table (rows: 'warm', 'rl')" in " ".join(out.split())
    assert not (tmp_path / "out").exists()


def test_a_recipe_compares_to_its_warmed_up_row_and_checks_the_label_before_any_step(tmp_path):
    quickstart = REPO / "recipes" / "quickstart.yaml"
    code, plan = cli("recipe", "plan", quickstart, "--set", "eval.compare_to=warmed up", "--set", "eval_every=1")
    assert code == 0, plan
    eval_yaml = plan.split("_recipe/eval.yaml <<'YAML'\n")[1].split("\nYAML")[0]
    held_out_yaml = plan.split("_recipe/eval-every.yaml <<'YAML'\n")[1].split("\nYAML")[0]
    assert "compare_to: warmed up" in eval_yaml and "compare_to" not in held_out_yaml  # one-row tables
    code, out = cli("recipe", "plan", quickstart, "--set", "eval.compare_to=warm")
    assert code == 2 and "eval.compare_to: 'warm' is not a row of the table" in " ".join(out.split())
    assert "'warmed up'" in out
    code, out = cli("recipe", "run", quickstart, "--set", f"workdir={tmp_path / 'run'}", "--set", "eval.compare_to=warm")
    assert code == 2 and "eval.compare_to" in out and not (tmp_path / "run").exists()
