"""Execute a recipe's steps: one `metaspatial` subprocess per step, complete steps skipped.

Each step runs as its own process, exactly the command `recipe plan` prints, so a run can be
reproduced by hand, and a crash in one stage (or a `kill -9` of the whole run) loses at most the
step in flight: stage datasets commit parts atomically and checkpoint chunks, so re-running the
recipe skips what is complete and resumes the rest. Every command line is appended to
`WORKDIR/recipe.log` with the time and its outcome.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from stages.core import dataset as ds
from stages.core.errors import UserError

from .spec import Recipe
from .steps import Step, build_steps, config_files

console = Console(stderr=True)
LOG = "recipe.log"


class StepFailed(Exception):
    """A step exited with an error; carries its exit code for the runner's own exit code."""

    def __init__(self, step: Step, code: int) -> None:
        super().__init__(f"step {step.name} failed (exit code {code}): {step.command_line()}")
        self.step = step
        self.code = code


def is_complete(step: Step) -> bool:
    """Whether a step's output is finished, judged from what it wrote (never from the log)."""
    out = step.output
    if step.kind == "model":
        return (out / "config.json").is_file()
    if step.kind == "eval":
        return (out / "eval.csv").is_file()
    manifest = ds.read_manifest(out) if out.is_dir() else None
    if not manifest:
        return False
    if step.kind == "update":
        return bool(manifest.get("complete"))
    parts = manifest.get("parts", {})
    return len(parts) == manifest.get("num_shards", -1) and all((out / p).is_file() for p in parts)


def metaspatial_command() -> list[str]:
    """How to start `metaspatial` from this process: the console script next to this Python, else -m."""
    script = Path(sys.executable).parent / "metaspatial"
    if script.is_file():
        return [str(script)]
    found = shutil.which("metaspatial")
    return [found] if found else [sys.executable, "-m", "metaspatial_cli"]


def _log(log_file: Path, text: str) -> None:
    with open(log_file, "a", encoding="utf-8") as fh:
        fh.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} {text}\n")


def write_config_files(recipe: Recipe) -> None:
    for path, text in config_files(recipe).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)


def run_recipe(recipe: Recipe) -> None:
    """Run every incomplete step of a recipe in order; raise StepFailed at the first failure."""
    recipe.workdir.mkdir(parents=True, exist_ok=True)
    write_config_files(recipe)
    steps = build_steps(recipe)
    _log(recipe.workdir / LOG, f"recipe {recipe.path}: {len(steps)} steps")
    execute_steps(steps, recipe.workdir / LOG)


def execute_steps(steps: list[Step], log_file: Path) -> None:
    """Run each incomplete step as a `metaspatial` subprocess, logging its command line and outcome."""
    base = metaspatial_command()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for i, step in enumerate(steps, start=1):
        head = f"[{i}/{len(steps)}] {step.name}"
        if is_complete(step):
            console.print(f"[dim]{head}: complete, skipped[/]")
            _log(log_file, f"skip (complete): {step.command_line()}")
            continue
        console.print(f"[bold cyan]{head}[/]: {step.command_line()}", highlight=False, soft_wrap=True)
        _log(log_file, f"run: {step.command_line()}")
        start = time.time()
        code = subprocess.call([*base, *step.args], env=env)
        seconds = time.time() - start
        if code != 0 or not is_complete(step):
            _log(log_file, f"failed (exit {code}) after {seconds:.1f} s: {step.command_line()}")
            raise StepFailed(step, code or 1)
        _log(log_file, f"done in {seconds:.1f} s: {step.command_line()}")


def check_runnable(recipe: Recipe) -> None:
    """Refuse to start when a step would fail for a reason known now (a missing model, say)."""
    built_here = recipe.make_model is not None or recipe.pretrain is not None
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    if "rollout" in recipe.stages and not built_here and not Path(recipe.model).exists() and offline:
        raise UserError(f"{recipe.path}: model: {recipe.model} does not exist and the model hub is off "
                        "(HF_HUB_OFFLINE=1); build it or set make_model")
