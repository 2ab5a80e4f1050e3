"""`recipe run` and `recipe plan` end to end through the real CLI, on the stages that exist."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from metaspatial_cli.app import app

CLI = [sys.executable, "-m", "metaspatial_cli"]


def prompts_recipe(tmp_path: Path, oracle_dir: Path, workdir: Path) -> Path:
    path = tmp_path / f"{workdir.name}.yaml"
    path.write_text(f"workdir: {workdir}\nmodel: unused\nstages: [gen-prompts]\n"
                    f"gen-prompts:\n  source: jsonl\n  input: {oracle_dir / 'scenes.jsonl'}\n  image_size: 64\n"
                    "  chunk_size: 4\n")
    return path


def rows(directory: Path) -> pd.DataFrame:
    return pd.read_parquet(directory).sort_values("prompt_id").reset_index(drop=True)


def test_run_twice_skips_complete_steps_and_logs_commands(tmp_path, oracle_dir):
    recipe = prompts_recipe(tmp_path, oracle_dir, tmp_path / "run")
    first = CliRunner().invoke(app, ["recipe", "run", str(recipe)])
    assert first.exit_code == 0, first.output
    assert len(rows(tmp_path / "run" / "gen-prompts")) > 0
    second = CliRunner().invoke(app, ["recipe", "run", str(recipe)])
    assert second.exit_code == 0
    log = (tmp_path / "run" / "recipe.log").read_text()
    assert "run: metaspatial gen-prompts --config" in log
    assert "skip (complete): metaspatial gen-prompts" in log


def test_plan_is_a_shell_script_giving_the_same_dataset(tmp_path, oracle_dir):
    by_runner = prompts_recipe(tmp_path, oracle_dir, tmp_path / "a")
    by_script = prompts_recipe(tmp_path, oracle_dir, tmp_path / "b")
    assert CliRunner().invoke(app, ["recipe", "run", str(by_runner)]).exit_code == 0
    plan = CliRunner().invoke(app, ["recipe", "plan", str(by_script)])
    assert plan.exit_code == 0
    assert plan.output.startswith("#!/usr/bin/env bash")
    script = tmp_path / "plan.sh"
    script.write_text(plan.output)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    subprocess.run(["bash", str(script)], check=True, env=env, capture_output=True)
    a, b = rows(tmp_path / "a" / "gen-prompts"), rows(tmp_path / "b" / "gen-prompts")
    pd.testing.assert_frame_equal(a, b)


def test_failing_step_stops_the_recipe_naming_the_stage(tmp_path, oracle_dir):
    recipe = prompts_recipe(tmp_path, oracle_dir, tmp_path / "run")
    recipe.write_text(recipe.read_text().replace(str(oracle_dir / "scenes.jsonl"), str(tmp_path / "missing.jsonl")))
    result = subprocess.run([*CLI, "recipe", "run", str(recipe)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "recipe stopped: the gen-prompts step failed (exit code 2)" in result.stderr
    assert "missing.jsonl" in result.stderr
    assert "failed (exit 2)" in (tmp_path / "run" / "recipe.log").read_text()


def test_kill_9_at_a_random_moment_then_rerun_completes(tmp_path, oracle_dir):
    reference = prompts_recipe(tmp_path, oracle_dir, tmp_path / "clean")
    assert CliRunner().invoke(app, ["recipe", "run", str(reference)]).exit_code == 0
    recipe = prompts_recipe(tmp_path, oracle_dir, tmp_path / "killed")
    proc = subprocess.Popen([*CLI, "recipe", "run", str(recipe)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(random.uniform(0.5, 3.0))
    os.killpg(proc.pid, signal.SIGKILL)  # the whole run, stage subprocess included, as a crash would
    proc.wait()
    result = subprocess.run([*CLI, "recipe", "run", str(recipe)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    pd.testing.assert_frame_equal(rows(tmp_path / "clean" / "gen-prompts"), rows(tmp_path / "killed" / "gen-prompts"))
