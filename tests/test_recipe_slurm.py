"""examples/slurm/submit.sh turns `recipe plan` into chained Slurm jobs (sbatch faked here)."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FAKE_SBATCH = """#!/bin/bash
n=$(( $(wc -l < "$SBATCH_LOG" 2>/dev/null || echo 0) + 100 ))
echo "$*" >> "$SBATCH_LOG"
echo "$n;cluster"
"""


def submit(tmp_path, recipe_text, rollout_shards=2, cpu_shards=1):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(recipe_text)
    sbatch = tmp_path / "sbatch"
    sbatch.write_text(FAKE_SBATCH)
    sbatch.chmod(0o755)
    log = tmp_path / "sbatch.log"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "SBATCH": str(sbatch),
           "SBATCH_LOG": str(log), "ROLLOUT_SHARDS": str(rollout_shards), "CPU_SHARDS": str(cpu_shards)}
    result = subprocess.run(["bash", str(REPO / "examples/slurm/submit.sh"), str(recipe)], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    return result, (log.read_text().splitlines() if log.exists() else [])


def test_submit_chains_array_jobs_with_dependencies(tmp_path):
    result, calls = submit(tmp_path, f"workdir: {tmp_path}/run\nmodel: some/model\niterations: 2\nturns: 2\n"
                                     "gen-prompts: {num_rooms: 4}\n", rollout_shards=4, cpu_shards=3)
    assert result.returncode == 0, result.stderr
    # gen-prompts, its training rooms (select-rooms), then per iteration 2 turns × (rollout, render, score)
    # and an update
    assert len(calls) == 2 + 2 * (2 * 3 + 1)
    assert "render.sbatch metaspatial gen-prompts" in calls[0] and "--array" not in calls[0]
    assert "render.sbatch metaspatial select-rooms" in calls[1] and "--split train" in calls[1]
    assert "--array=0-3" in calls[2] and "rollout.sbatch metaspatial rollout" in calls[2]
    assert f"--input {tmp_path}/run/train-prompts" in calls[2]
    assert "--array=0-2" in calls[3] and "render.sbatch metaspatial render" in calls[3]
    assert "update.sbatch metaspatial update" in calls[8] and "--array" not in calls[8]
    assert "--model some/model" in calls[2] and f"--model {tmp_path}/run/iter-001/update" in calls[9]
    for i, call in enumerate(calls[1:], start=1):  # each job waits for the one before
        assert f"--dependency=afterok:{99 + i}" in call
    assert (tmp_path / "run" / "_recipe" / "rollout.yaml").is_file()  # the jobs' --config files exist


GPU_RECIPE = """workdir: {tmp}/run
model: org/name
accelerate: {{config_file: {repo}/examples/accelerate/fsdp.yaml, num_processes: 4}}
rollout: {{backend: vllm, n: 3, tensor_parallel_size: 2}}
update: {{per_device_train_batch_size: 1, gradient_accumulation_steps: {accumulation}}}
"""


def test_gpu_counts_come_from_the_recipe(tmp_path):
    result, calls = submit(tmp_path, GPU_RECIPE.format(tmp=tmp_path, repo=REPO, accumulation=3))
    assert result.returncode == 0, result.stderr
    rollout, update = calls[2], calls[5]  # after gen-prompts and its training rooms
    assert "--gpus-per-task=2" in rollout and "rollout.sbatch metaspatial rollout" in rollout
    assert "--gpus-per-node=4" in update
    assert "update.sbatch accelerate launch --config_file" in update and "--num_processes 4" in update
    assert "-m metaspatial_cli update --config" in update


def test_bad_step_arithmetic_submits_nothing(tmp_path):
    result, calls = submit(tmp_path, GPU_RECIPE.format(tmp=tmp_path, repo=REPO, accumulation=4))
    assert result.returncode != 0 and "not a multiple of the group size 3" in result.stderr
    assert calls == []
