"""Execute a recipe's steps: one `metaspatial` subprocess per step, complete steps skipped.

Each step runs as its own process, exactly the command `recipe plan` prints, so a run can be
reproduced by hand, and a crash in one stage (or a `kill -9` of the whole run) loses at most the
step in flight: stage datasets commit parts atomically and checkpoint chunks, so re-running the
recipe skips what is complete and resumes the rest. Every command line is appended to
`WORKDIR/recipe.log` with the time and its outcome.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stages.core import dataset as ds
from stages.core.collapse import collapse
from stages.core.console import make_console
from stages.core.errors import UserError

from .arithmetic import gpus
from .spec import Recipe
from .steps import Step, build_steps, config_files

console = make_console()
LOG = "recipe.log"
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
STOP_GRACE_S = 10.0


class StepFailed(Exception):
    """A step exited with an error; carries its exit code for the runner's own exit code."""

    def __init__(self, step: Step, code: int) -> None:
        super().__init__(f"step {step.name} failed (exit code {code}): {step.command_line()}")
        self.step = step
        self.code = code


def is_complete(step: Step) -> bool:
    """Whether a step's output is finished, judged from what it wrote (never from the log)."""
    out = step.output
    if step.kind == "model":  # make-model writes no manifest; pretrain marks its manifest complete
        manifest = ds.read_manifest(out) if out.is_dir() else None
        return (out / "config.json").is_file() and (manifest is None or bool(manifest.get("complete")))
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


def launcher_command(launcher: tuple[str, ...]) -> list[str]:
    """How to start a step's launcher from this process: `accelerate launch` as this Python's module."""
    if launcher[:2] == ("accelerate", "launch"):
        return [sys.executable, "-m", "accelerate.commands.launch", *launcher[2:]]
    return list(launcher)


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
    steps = build_steps(recipe)  # refuses a bad recipe (e.g. eval.compare_to) before anything is written
    recipe.workdir.mkdir(parents=True, exist_ok=True)
    write_config_files(recipe)
    _log(recipe.workdir / LOG, f"recipe {recipe.path}: {len(steps)} steps")
    execute_steps(steps, recipe.workdir / LOG, recipe.keep_models)


def _die_with_parent(parent: int) -> Callable[[], None]:
    """For the child, before it execs: ask Linux to send it SIGTERM when the runner dies, even by
    SIGKILL (no handler of the runner's runs then). Elsewhere the runner's own handlers must do."""

    def arm() -> None:
        if sys.platform.startswith("linux"):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the runner died before the request took effect
            os._exit(1)

    return arm


def _raise_exit(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def run_step_process(command: list[str], env: dict[str, str]) -> int:
    """Run one step and return its exit code. The step gets a process group of its own, stopped
    whole (the stage and any workers it started) when the runner leaves before it ends: on an
    error, Ctrl-C, SIGTERM or SIGHUP. A second runner's copy of the step would meet the step's
    output lock; this makes sure no orphaned step is left holding it."""
    in_main = threading.current_thread() is threading.main_thread()  # only it may set handlers
    handlers = {sig: signal.signal(sig, _raise_exit) for sig in (signal.SIGTERM, signal.SIGHUP)} if in_main else {}
    proc = subprocess.Popen(command, env=env, process_group=0, preexec_fn=_die_with_parent(os.getpid()))
    try:
        return proc.wait()
    finally:
        if proc.poll() is None:
            _stop_group(proc)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the step's process group, give it a grace period, then SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=STOP_GRACE_S)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def execute_steps(steps: list[Step], log_file: Path, keep_models: int | None = None) -> None:
    """Run each incomplete step as a `metaspatial` subprocess (under its launcher, if any), logging its
    command line and outcome; after each update, prune models beyond the last `keep_models`."""
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
        program = launcher_command(step.launcher) if step.launcher else base
        code = run_step_process([*program, *step.args], env)
        seconds = time.time() - start
        if code != 0 or not is_complete(step):
            _log(log_file, f"failed (exit {code}) after {seconds:.1f} s: {step.command_line()}")
            raise StepFailed(step, code or 1)
        _log(log_file, f"done in {seconds:.1f} s: {step.command_line()}")
        _log_groups(step, log_file)
        if keep_models is not None and step.kind == "update":
            for pruned in prune_models(steps, step, keep_models):
                _log(log_file, f"pruned the weights of {pruned} (keep_models: {keep_models})")


WEIGHTS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")


def prune_models(steps: list[Step], done: Step, keep: int) -> list[Path]:
    """Remove the weight files of update outputs more than `keep` iterations before `done` (a 7B model is
    15-33 GB an iteration). Config, metrics and manifest stay, so the step still counts as complete;
    the manifest says the weights are gone."""
    updates = [s for s in steps if s.kind == "update"]
    pruned = []
    for old in updates[:max(0, updates.index(done) + 1 - keep)]:
        files = [f for pattern in WEIGHTS for f in old.output.glob(pattern)]
        if not files:
            continue
        manifest = ds.read_manifest(old.output) or {}
        ds.write_json(old.output / ds.MANIFEST, {**manifest, "weights_pruned": True})
        for f in files:
            f.unlink()
        pruned.append(old.output)
    return pruned


def _log_groups(step: Step, log_file: Path) -> None:
    """After a score step, the share of its groups that teach nothing (identical samples, no reward
    spread), logged each iteration and warned about when large (stages/core/collapse.py)."""
    if step.kind != "dataset" or not step.name.endswith("score"):
        return
    seen = collapse(ds.read_rows(step.output))
    _log(log_file, f"groups of {step.name}: {seen.line()}")
    if seen.warn:
        console.print(f"[yellow]warning[/]: {step.name}: {seen.line()}; {seen.advice()}", highlight=False)


def check_runnable(recipe: Recipe) -> None:
    """Refuse to start when a step would fail for a reason known now: a model that is neither a
    directory nor in the Hugging Face cache while the hub is off, fewer GPUs than a step needs, or
    several GPUs for an update that would run as one process."""
    built_here = recipe.make_model is not None or recipe.pretrain is not None
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    if "rollout" in recipe.stages and not built_here and offline and not _model_available(recipe.model):
        raise UserError(f"{recipe.path}: model: {recipe.model} is neither a directory nor in the Hugging Face "
                        "cache, and the model hub is off (HF_HUB_OFFLINE=1); build it, download it or set make_model")
    import torch

    have = torch.cuda.device_count() if torch.cuda.is_available() else 0
    needed = max(gpus(recipe).values())
    if 0 < have < needed:
        counts = ", ".join(f"{k} {v}" for k, v in gpus(recipe).items())
        raise UserError(f"{recipe.path}: the steps need {needed} GPUs ({counts}: rollout.tensor_parallel_size, "
                        f"accelerate.num_processes) and this machine has {have}")
    if "update" in recipe.stages and recipe.accelerate is None and have > 1:
        raise UserError(f"{recipe.path}: update would run as one process seeing {have} GPUs, which TRL refuses "
                        f"(nn.DataParallel); add an accelerate: section (num_processes: {have}) or set "
                        "CUDA_VISIBLE_DEVICES to one GPU")


def _model_available(name: str) -> bool:
    """A local directory, or a hub name whose config is in the local Hugging Face cache."""
    if Path(name).exists():
        return True
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except ValueError:  # not a valid repository id either
        return False
