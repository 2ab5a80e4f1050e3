"""The whole loop through `recipe run`: make-model → gen-prompts → (rollout → render → score → update) × 2,
killed with SIGKILL at a random moment and run again, which must complete and skip finished steps;
then `recipe plan` of the same recipe, run as a bash script, must give the same datasets."""

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from metaspatial_cli.recipes.runner import is_complete
from metaspatial_cli.recipes.spec import load_recipe
from metaspatial_cli.recipes.steps import build_steps

CLI = [sys.executable, "-m", "metaspatial_cli"]
RECIPE = """workdir: {workdir}
model: ${{workdir}}/models/tiny
make_model: tiny-qwen2.5-vl
iterations: 2
gen-prompts: {{num_rooms: 2, seed: 3, test_fraction: 0.0, template: concise, image_size: 64}}
rollout: {{n: 2, guided: true, guided_think_chars: 0, max_new_tokens: 24, chunk_size: 2}}
render: {{views: [topdown], size: 64}}
score: {{judge: rules}}
update: {{learning_rate: 1.0e-3, per_device_train_batch_size: 4, max_steps: 1}}
"""


@pytest.mark.slow
def test_full_loop_survives_kill_9_and_resumes(tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(RECIPE.format(workdir=tmp_path / "run"))
    proc = subprocess.Popen([*CLI, "recipe", "run", str(recipe)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    moment = random.uniform(5, 90)
    try:
        proc.wait(timeout=moment)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the runner and the stage it is running, mid-step
        proc.wait()
    result = subprocess.run([*CLI, "recipe", "run", str(recipe)], capture_output=True, text=True)
    assert result.returncode == 0, f"killed after {moment:.0f} s; rerun:\n{result.stderr[-3000:]}"
    steps = build_steps(load_recipe(recipe))
    assert all(is_complete(step) for step in steps)
    scores = pd.read_parquet(tmp_path / "run" / "iter-002" / "turn-1" / "score")
    assert len(scores) == 2 * 2 and scores["model"].str.endswith("iter-001/update").all()
    assert any((tmp_path / "run" / "iter-002" / "update").glob("*.safetensors"))
    log = (tmp_path / "run" / "recipe.log").read_text()
    assert log.count("recipe ") == 2 and "done in" in log

    plan = subprocess.run([*CLI, "recipe", "plan", str(recipe), "--set", f"workdir={tmp_path / 'planned'}"],
                          capture_output=True, text=True, check=True).stdout
    (tmp_path / "plan.sh").write_text(plan)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    subprocess.run(["bash", str(tmp_path / "plan.sh")], env=env, capture_output=True, check=True)
    columns = ["sample_id", "response", "reward"]
    by_run = scores[columns].sort_values("sample_id").reset_index(drop=True)
    by_plan = pd.read_parquet(tmp_path / "planned" / "iter-002" / "turn-1" / "score")[columns]
    pd.testing.assert_frame_equal(by_run, by_plan.sort_values("sample_id").reset_index(drop=True))
