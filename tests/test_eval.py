"""`metaspatial eval`: metrics from scored rows, config validation, and the whole command on two models."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metaspatial_cli.app import app
from metaspatial_cli.eval_metrics import model_metrics
from stages.core import dataset as ds
from stages.core.scene import Scene

REPO = Path(__file__).resolve().parents[1]
ROOMS = REPO / "examples" / "rooms"


def first_room() -> dict:
    return json.loads((ROOMS / "rooms.jsonl").read_text().splitlines()[0])


def scored_row(answer: list[dict], reward: float) -> dict:
    room = first_room()
    scene = Scene.from_idesign(room["scene_graph"], room["room_size"], room["room_id"])
    size = scene.size.as_dict()
    return {"room_id": room["room_id"], "room_x": size["x"], "room_y": size["y"], "room_z": size["z"],
            "scene": json.dumps(scene.to_idesign(with_positions=False)),
            "response": f"<think>ok</think><answer>{json.dumps(answer)}</answer>", "reward": reward,
            "format_reward": 1.0, "collision_ratio": 0.0, "out_of_bounds_ratio": 0.0, "support_ratio": 0.25,
            "constraint_ratio": 0.5,
            "judge_score": float("nan")}


def test_metrics_read_validity_and_object_match_from_the_answers(tmp_path):
    room = first_room()
    scene = Scene.from_idesign(room["scene_graph"], room["room_size"], room["room_id"])
    exact = [{"new_object_id": i, "x": p[0], "y": p[1], "z": p[2]} for i, p in scene.reference_layout().items()]
    rows = [scored_row(exact, 2.0), scored_row(exact[:-1], 1.0),
            scored_row(exact + [{"new_object_id": "ghost", "x": 1, "y": 1, "z": 1}], 0.0)]
    ds.write_rows(tmp_path / ds.part_name(0, 1, "parquet"), rows, None, "parquet")
    m = model_metrics("m", "path", tmp_path)
    assert (m["rooms"], m["samples"]) == (1, 3)
    assert m["format_valid"] == pytest.approx(1 / 3)
    assert m["object_set_match"] == pytest.approx(1 / 3)
    assert m["reward"] == pytest.approx(1.0)
    assert m["constraint_ratio"] == pytest.approx(0.5)
    assert m["support_ratio"] == pytest.approx(0.25)
    assert m["reward_sem"] == pytest.approx(1 / 3 ** 0.5)
    assert m["judge_score"] != m["judge_score"]  # NaN when no row has a judge score


def test_bad_stage_option_fails_before_any_work(tmp_path):
    config = tmp_path / "eval.yaml"
    config.write_text("rollout: {max_new_tokens: -5}\n")
    result = CliRunner().invoke(app, ["eval", "--model", "m", "--config", str(config),
                                      "--output", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "eval.rollout.max_new_tokens" in result.output
    assert not (tmp_path / "out").exists()


def test_label_count_must_match_models(tmp_path):
    result = CliRunner().invoke(app, ["eval", "--model", "a", "--model", "b", "--label", "x",
                                      "--output", str(tmp_path / "out")])
    assert result.exit_code == 2 and "2 models" in result.output


@pytest.mark.slow
def test_eval_two_models_end_to_end(tmp_path):
    subprocess.run([sys.executable, "-m", "metaspatial_cli", "make-model", "tiny-qwen2.5-vl", str(tmp_path / "m0")],
                   check=True, capture_output=True)
    shutil.copytree(tmp_path / "m0", tmp_path / "m1")  # a second model directory, as after an update
    config = tmp_path / "eval.yaml"
    config.write_text("rollout: {guided: true, guided_think_chars: 0, max_new_tokens: 48}\n"
                      "render: {views: [topdown], size: 96}\n")
    out = tmp_path / "eval"
    cmd = [sys.executable, "-m", "metaspatial_cli", "eval", "--model", str(tmp_path / "m0"), "--model",
           str(tmp_path / "m1"), "--label", "seed0", "--label", "seed1", "--rooms", str(ROOMS), "--split", "test",
           "--max-rooms", "1", "--config", str(config), "--output", str(out), "--baseline", "reference",
           "--compare-to", "seed0"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "seed0" in result.stdout and "seed1" in result.stdout and "reward" in result.stdout
    with open(out / "eval.csv") as fh:
        table = list(csv.DictReader(fh))
    assert [r["model"] for r in table] == ["seed0", "seed1", "reference layouts"]
    assert all(r["rooms"] == "1" and r["samples"] == "1" for r in table)
    ceiling = table[-1]  # the room's reference layout, through the same render and score steps
    assert float(ceiling["format_valid"]) == 1.0 and float(ceiling["reward"]) > 2.5
    assert all(float(ceiling["reward"]) >= float(r["reward"]) for r in table)
    assert "| seed1 |" in (out / "eval.md").read_text()
    assert table[0]["delta_reward"] == "" and "Δ reward vs seed0 (per room)" in result.stdout
    assert float(table[1]["delta_reward"]) == 0.0 and (table[1]["rooms_up"], table[1]["rooms_paired"]) == ("0", "1")
    rerun = subprocess.run(cmd, capture_output=True, text=True)  # complete steps are skipped
    assert rerun.returncode == 0 and "complete, skipped" in rerun.stderr


def test_reference_baseline_needs_rooms_with_reference_layouts(tmp_path):
    from metaspatial_cli.eval_config import EvalConfig
    from metaspatial_cli.eval_steps import reference_steps
    from stages.core.errors import UserError

    room = {**first_room(), "room_id": "bare"}
    room["scene_graph"] = [{k: v for k, v in o.items() if k != "position"} for o in room["scene_graph"]]
    rooms = tmp_path / "rooms.jsonl"
    rooms.write_text(json.dumps(room) + "\n")
    prompts = tmp_path / "out" / "prompts"
    result = CliRunner().invoke(app, ["gen-prompts", "--source", "jsonl", "--input", str(rooms), "--output",
                                      str(prompts), "--image-size", "64"])
    assert result.exit_code == 0, result.output
    cfg = EvalConfig(model=["m"], output=tmp_path / "out", baseline=["reference"])
    with pytest.raises(UserError, match="no held-out room .* has a reference layout"):
        reference_steps(cfg)
    assert not (tmp_path / "out" / "reference").exists()
