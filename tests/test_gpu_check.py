"""examples/gpu/check.py in its CPU dry mode: the GPU check's steps, launcher and measurements work up
to the GPU-specific parts (the 3B shapes, bfloat16, EGL on the GPU). nvidia-smi is faked, so the
memory sampling runs too."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FAKE_NVIDIA_SMI = """#!/bin/bash
# memory.used grows by 10 MiB a call: a step's peak is what it grew while the step ran
n=$(( $(cat "$0.count" 2>/dev/null || echo 0) + 1 ))
echo $n > "$0.count"
echo $(( 1000 + 10 * n ))
"""


@pytest.mark.slow
def test_the_gpu_check_runs_its_whole_loop_on_a_cpu(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text(FAKE_NVIDIA_SMI)
    (bin_dir / "nvidia-smi").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "TRL_EXPERIMENTAL_SILENCE": "1"}
    report = tmp_path / "check.jsonl"
    result = subprocess.run([sys.executable, str(REPO / "examples/gpu/check.py"), "--device", "cpu", "--workdir",
                             str(tmp_path / "run"), "--rooms", "2", "--max-new-tokens", "48", "--report", str(report)],
                            env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    records = [json.loads(line) for line in report.read_text().splitlines()]
    steps = [r for r in records if "step" in r]
    assert [s["step"] for s in steps] == ["make-model", "gen-prompts", "iter-001/turn-1/rollout",
                                          "iter-001/turn-1/render", "iter-001/turn-1/score", "iter-001/update",
                                          "iter-002/turn-1/rollout"]
    assert all(s["ok"] and s["seconds"] > 0 and s["peak_gpu_mib"] is not None for s in steps)
    assert steps[-2]["peak_gpu_mib"] > 0  # the update runs for seconds: nvidia-smi was sampled meanwhile
    update_log = Path(steps[-2]["log"]).read_text()
    assert "update: step 2/2" in update_log
    summary = records[-1]["summary"]
    assert summary["finite"] and len(summary["losses"]) == 2
    assert summary["final_rollout_rows"] == 2 * 3 and summary["final_rollout_model"].endswith("iter-001/update")
    assert "peak GPU memory" in result.stdout
