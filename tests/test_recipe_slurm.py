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


def test_submit_chains_array_jobs_with_dependencies(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"workdir: {tmp_path}/run\nmodel: some/model\niterations: 2\nturns: 2\n"
                      "gen-prompts: {num_rooms: 4}\n")
    sbatch = tmp_path / "sbatch"
    sbatch.write_text(FAKE_SBATCH)
    sbatch.chmod(0o755)
    log = tmp_path / "sbatch.log"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "SBATCH": str(sbatch),
           "SBATCH_LOG": str(log), "ROLLOUT_SHARDS": "4", "CPU_SHARDS": "3"}
    result = subprocess.run(["bash", str(REPO / "examples/slurm/submit.sh"), str(recipe)], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    # gen-prompts, then per iteration 2 turns × (rollout, render, score) and an update
    assert len(calls) == 1 + 2 * (2 * 3 + 1)
    assert "render.sbatch metaspatial gen-prompts" in calls[0] and "--array" not in calls[0]
    assert "--array=0-3" in calls[1] and "rollout.sbatch metaspatial rollout" in calls[1]
    assert "--dependency=afterok:100" in calls[1]
    assert "--array=0-2" in calls[2] and "render.sbatch metaspatial render" in calls[2]
    assert "update.sbatch metaspatial update" in calls[7] and "--array" not in calls[7]
    assert "--model some/model" in calls[1] and f"--model {tmp_path}/run/iter-001/update" in calls[8]
    for i, call in enumerate(calls[1:], start=1):  # each job waits for the one before
        assert f"--dependency=afterok:{99 + i}" in call
    assert (tmp_path / "run" / "_recipe" / "rollout.yaml").is_file()  # the jobs' --config files exist
