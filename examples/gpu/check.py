"""The GPU check: the whole RL loop once at Qwen2.5-VL-3B's size on one GPU, offline, timed.

It runs the steps `metaspatial recipe run` would run for the recipe below, with the same commands and
launcher (update under `accelerate launch`): make-model random-qwen2.5-vl-3b → gen-prompts (synthetic
rooms) → rollout (transformers backend, bfloat16) → render (pyrender over EGL) → score (rules judge)
→ update (accelerate, bfloat16 compute, KL reference) → rollout from the updated weights. Each step's
wall time and peak GPU memory (nvidia-smi, sampled every 0.2 s, above the level before the step) are
printed and written to --report as JSON lines.

    examples/gpu/run.sh                                      # on the GPU machine (examples/gpu/README.md)
    python examples/gpu/check.py --device cpu --workdir DIR  # dry run: the tiny model on a CPU, same steps
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from metaspatial_cli.recipes.runner import (
    is_complete,
    launcher_command,
    metaspatial_command,
    write_config_files,
)
from metaspatial_cli.recipes.spec import load_recipe
from metaspatial_cli.recipes.steps import Step, build_steps

REPO = Path(__file__).resolve().parents[2]
LAST_STEP = "iter-002/turn-1/rollout"
"""The check ends with the rollout of the updated model."""
PAPER_PIXELS = {"min_pixels": 262144, "max_pixels": 4194304}


def check_recipe(device: str, workdir: Path, rooms: int, max_new_tokens: int) -> dict[str, Any]:
    """The recipe: on a GPU the 3B shapes in bfloat16 with the paper's image sizes; on a CPU the tiny model."""
    gpu = device == "cuda"
    kind = "random-qwen2.5-vl-3b" if gpu else "tiny-qwen2.5-vl"
    pixels = PAPER_PIXELS if gpu else {}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return {
        "workdir": str(workdir), "model": f"{workdir}/models/{kind}", "make_model": kind, "iterations": 2,
        "accelerate": {"config_file": str(REPO / "examples/accelerate/ddp.yaml"), "num_processes": 1,
                       "mixed_precision": "bf16" if gpu else "no", "dynamo_backend": "no", "main_process_port": port},
        "gen-prompts": {"source": "synthetic", "num_rooms": rooms, "seed": 1, "test_fraction": 0.0,
                        "image_size": 512 if gpu else 64},
        "rollout": {"n": 3, "guided": True, "guided_think_chars": 200 if gpu else 0, "max_new_tokens": max_new_tokens,
                    "batch_size": 3 * rooms, "dtype": "bfloat16" if gpu else "float32", "device": device, **pixels},
        "render": {"views": ["topdown"], "size": 512 if gpu else 128},
        "score": {"judge": "rules"},
        # 3 completions (one group) a step; two steps; float32 master weights, bf16 compute on the GPU
        "update": {"per_device_train_batch_size": 1, "gradient_accumulation_steps": 3, "max_steps": 2,
                   "gradient_checkpointing": True, "learning_rate": 1.0e-6, "beta": 0.01, **pixels},
    }


class PeakGpuMemory:
    """The highest `memory.used` nvidia-smi reports while the block runs, minus the level before it (MiB);
    None without nvidia-smi."""

    def __init__(self) -> None:
        self.peak: float | None = None
        self._stop = threading.Event()

    @staticmethod
    def used() -> float | None:
        if shutil.which("nvidia-smi") is None:
            return None
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True)
        return float(out.stdout.split()[0]) if out.returncode == 0 and out.stdout.strip() else None

    def _poll(self, base: float) -> None:
        while not self._stop.wait(0.2):
            now = self.used()
            if now is not None:
                self.peak = max(self.peak or 0.0, now - base)

    def __enter__(self) -> PeakGpuMemory:
        base = self.used()
        if base is not None:
            self.peak = 0.0
            self._thread = threading.Thread(target=self._poll, args=(base,), daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self.peak is not None:
            self._thread.join()


def run_step(step: Step, log_dir: Path) -> dict[str, Any]:
    """Run one step as the recipe runner would, its output to LOG_DIR/<step>.log; time and memory it."""
    program = launcher_command(step.launcher) if step.launcher else metaspatial_command()
    log = log_dir / (step.name.replace("/", "_") + ".log")
    start = time.perf_counter()
    with PeakGpuMemory() as memory, open(log, "w") as fh:
        code = subprocess.call([*program, *step.args], stdout=fh, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    ok = code == 0 and is_complete(step)
    return {"step": step.name, "seconds": round(seconds, 1), "peak_gpu_mib": memory.peak, "ok": ok,
            "exit_code": code, "log": str(log)}


def summary(workdir: Path) -> dict[str, Any]:
    """What the loop produced: the update's losses and the updated model's samples."""
    import pandas as pd

    metrics = [json.loads(line) for line in (workdir / "iter-001/update/metrics.jsonl").read_text().splitlines()]
    sampled = pd.read_parquet(workdir / LAST_STEP)
    return {"losses": [m["loss"] for m in metrics], "finite": all(math.isfinite(m["loss"]) for m in metrics),
            "final_rollout_rows": len(sampled), "final_rollout_model": sampled["model"].iloc[0]}


def environment() -> dict[str, Any]:
    import torch
    import transformers

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"python": sys.version.split()[0], "torch": torch.__version__, "transformers": transformers.__version__,
            "gpu": gpu}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/metaspatial-gpu-check"))
    parser.add_argument("--rooms", type=int, default=4, help="rooms per iteration (3 samples each)")
    parser.add_argument("--max-new-tokens", type=int, default=384)
    parser.add_argument("--report", type=Path, help="also write the step records here (JSON lines)")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    recipe_file = args.workdir / "check.yaml"
    recipe_file.write_text(yaml.safe_dump(check_recipe(args.device, args.workdir, args.rooms, args.max_new_tokens)))
    recipe = load_recipe(recipe_file)
    write_config_files(recipe)
    steps = build_steps(recipe)
    steps = steps[:[s.name for s in steps].index(LAST_STEP) + 1]
    records: list[dict[str, Any]] = [{"environment": environment()}]
    print(json.dumps(records[0]), flush=True)
    (args.workdir / "logs").mkdir(exist_ok=True)
    for step in steps:
        record = run_step(step, args.workdir / "logs")
        records.append(record)
        memory = "n/a" if record["peak_gpu_mib"] is None else f"{record['peak_gpu_mib']:.0f} MiB"
        print(f"{step.name:28s} {record['seconds']:8.1f} s   peak GPU memory {memory}", flush=True)
        if not record["ok"]:
            print(f"step {step.name} failed (exit {record['exit_code']}); the end of {record['log']}:", flush=True)
            print("".join(Path(record["log"]).read_text().splitlines(keepends=True)[-40:]), flush=True)
            break
    else:
        records.append({"summary": summary(args.workdir)})
        print(json.dumps(records[-1]), flush=True)
    if args.report:
        args.report.write_text("".join(json.dumps(r) + "\n" for r in records))
    return 0 if all(r.get("ok", True) for r in records) and "summary" in records[-1] else 1


if __name__ == "__main__":
    sys.exit(main())
