"""Turn a recipe into its steps: plain `metaspatial ...` command lines and the config files they read.

The same list drives `recipe run` (which executes it) and `recipe plan` (which prints it as a shell
script), so what the plan shows is exactly what the runner does. Layout under the workdir:

    _recipe/<stage>.yaml           each stage's section of the recipe, after overrides and ${...}
    gen-prompts/                   the prompts, shared by all iterations
    train-prompts/                 their training rooms (when gen-prompts sets test rooms aside)
    iter-001/prompts/              this iteration's rooms (with `rooms_per_iteration`: a select-rooms step)
    iter-001/turn-1/rollout/       rollout → render → score for each turn
    iter-001/turn-1/render/
    iter-001/turn-1/score/
    iter-001/update/               GRPO update from the last turn's scores: the next iteration's model
    iter-002/eval/                 with `eval_every: 2`: that iteration's model on the eval rooms
                                   (iter-000/eval: the start model), the report's held-out curve
    models/supervised-only/        with `supervised_control: true`: the warm-up continued (control.py)
    eval/                          first vs last model on held-out rooms (when the recipe has `eval:`)
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from ..eval_config import check_compare_to, row_labels
from ..registry import TURN_STAGES
from .arithmetic import gpus
from .control import LABEL as CONTROL_LABEL
from .control import OUTPUT as CONTROL_OUTPUT
from .control import control_args
from .launch import update_launcher
from .spec import Recipe

CONFIG_DIR = "_recipe"
GPUS_MARKER = "# gpus"
"""Heads the plan's line of GPUs per step kind (`# gpus rollout=2 update=4`; read by examples/slurm/submit.sh)."""
STEPS_MARKER = "# steps"
"""Separates the config files from the commands in a plan (examples/slurm/submit.sh splits there)."""
HELD_OUT_CONFIG = "eval-every"
"""The `eval_every` steps' config: the eval section less `compare_to` (their tables have one row)."""


@dataclass(frozen=True)
class Step:
    name: str
    """Where the step sits in the pipeline, e.g. iter-002/turn-1/rollout."""
    args: tuple[str, ...]
    """The command line after the program."""
    output: Path
    kind: Literal["dataset", "model", "update", "eval"]
    """How to tell that the step is complete (see runner.is_complete)."""
    launcher: tuple[str, ...] = ()
    """A program that starts `metaspatial` in its processes (`accelerate launch ... -m metaspatial_cli`),
    or empty: the step runs as `metaspatial ARGS`."""

    def command_line(self) -> str:
        return shlex.join([*(self.launcher or ("metaspatial",)), *self.args])


def config_path(recipe: Recipe, name: str) -> Path:
    return recipe.workdir / CONFIG_DIR / f"{name}.yaml"


def config_files(recipe: Recipe) -> dict[Path, str]:
    """The YAML text of each step's `--config` file."""
    files = {config_path(recipe, stage): _dump(section) for stage, section in recipe.sections.items()}
    if recipe.pretrain is not None:
        files[config_path(recipe, "pretrain")] = _dump({k: v for k, v in recipe.pretrain.items() if k != "base"})
    if recipe.eval is not None:
        files[config_path(recipe, "eval")] = _dump(eval_section(recipe))
    if recipe.eval_every:
        files[config_path(recipe, HELD_OUT_CONFIG)] = _dump({k: v for k, v in eval_section(recipe).items()
                                                            if k != "compare_to"})
    return files


def eval_section(recipe: Recipe) -> dict[str, Any]:
    """The eval options: the recipe's `eval:` section, whose rollout/render/score options default to
    the recipe's own sections (so evaluation decodes and scores the way training did)."""
    section = dict(recipe.eval or {})
    for stage in TURN_STAGES:
        merged = {**recipe.sections.get(stage, {}), **section.get(stage, {})}
        merged.pop("n", None)  # eval samples its own n per room
        if merged:
            section[stage] = merged
    return section


def _dump(section: dict[str, Any]) -> str:
    return yaml.safe_dump(section, sort_keys=False, default_flow_style=False) if section else "{}\n"


def _stage_step(recipe: Recipe, stage: str, name: str, output: Path, source: Path | None,
                extra: list[str]) -> Step:
    args = [stage, "--config", str(config_path(recipe, stage))]
    if source is not None:
        args += ["--input", str(source)]
    args += ["--output", str(output), *extra]
    return Step(name, tuple(args), output, "update" if stage == "update" else "dataset")


def _has_field(recipe: Recipe, stage: str, name: str) -> bool:
    return name in recipe.config_classes[stage].model_fields


def _rollout_flags(recipe: Recipe, model: str, turn: int) -> list[str]:
    """The model, the turn, and for later turns one continuation per trajectory: the section's `n` is
    the group size of turn 1 (n × n × n samples over three turns is never what a recipe means)."""
    flags = ["--model", model]
    if _has_field(recipe, "rollout", "turn"):
        flags += ["--turn", str(turn)]
    if turn > 1 and "n" in recipe.sections["rollout"]:
        flags += ["--n", "1"]
    return flags


def _select_step(recipe: Recipe, prompts: Path, output: Path, iteration: int) -> Step:
    """This iteration's own rooms, drawn from the training prompts (stages/select_rooms)."""
    args = ("select-rooms", "--input", str(prompts), "--output", str(output), "--rooms",
            str(recipe.rooms_per_iteration), "--iteration", str(iteration), "--seed", str(recipe.seed))
    return Step(f"iter-{iteration:03d}/select-rooms", args, output, "dataset")


def _has_test_rooms(recipe: Recipe) -> bool:
    """Whether gen-prompts sets rooms aside for evaluation (its test_fraction)."""
    fields = recipe.config_classes["gen-prompts"].model_fields
    return bool(recipe.sections["gen-prompts"].get("test_fraction", fields["test_fraction"].default))


def _train_rooms_step(prompts: Path, output: Path) -> Step:
    """The training rooms of the prompts, for every iteration (stages/select_rooms without --rooms)."""
    args = ("select-rooms", "--input", str(prompts), "--output", str(output), "--split", "train")
    return Step("train-prompts", args, output, "dataset")


def _update_flags(recipe: Recipe, model: str) -> list[str]:
    """The policy to train (the previous iteration's output) and the KL reference: always the recipe's
    initial policy, so a long schedule is held to where it started, not to where it was last."""
    flags = ["--model", model]
    if _has_field(recipe, "update", "reference_model"):
        flags += ["--reference-model", recipe.model]
    return flags


def build_steps(recipe: Recipe) -> list[Step]:
    """Every step of the recipe in execution order."""
    wd = recipe.workdir
    steps: list[Step] = []
    base = recipe.pretrain["base"] if recipe.pretrain else recipe.model
    if recipe.make_model:
        steps.append(Step("make-model", ("make-model", recipe.make_model, base), Path(base), "model"))
    if recipe.pretrain:
        args: tuple[str, ...] = ("pretrain", "--config", str(config_path(recipe, "pretrain")), "--base", base,
                                 "--output", recipe.model)
        # Under the recipe's `accelerate:` section like update: both are trainer runs over the same GPUs.
        steps.append(Step("pretrain", args, Path(recipe.model), "model", launcher=update_launcher(recipe.accelerate)))
    prompts = wd / "gen-prompts"
    steps.append(_stage_step(recipe, "gen-prompts", "gen-prompts", prompts, None, []))
    if not recipe.rooms_per_iteration and "rollout" in recipe.stages and _has_test_rooms(recipe):
        steps.append(_train_rooms_step(prompts, wd / "train-prompts"))  # test rooms are for eval only
        prompts = steps[-1].output
    model = recipe.model
    if recipe.eval_every:
        steps.append(held_out_step(recipe, model, 0))
    for iteration in range(1, recipe.iterations + 1):
        idir = wd / f"iter-{iteration:03d}"
        source = prompts
        if recipe.rooms_per_iteration and "rollout" in recipe.stages:
            steps.append(_select_step(recipe, prompts, idir / "prompts", iteration))
            source = steps[-1].output
        for turn in range(1, recipe.turns + 1):
            for stage in (s for s in TURN_STAGES if s in recipe.stages):
                extra = []
                if stage == "rollout":
                    extra = _rollout_flags(recipe, model, turn)
                name = f"iter-{iteration:03d}/turn-{turn}/{stage}"
                steps.append(_stage_step(recipe, stage, name, idir / f"turn-{turn}" / stage, source, extra))
                source = steps[-1].output
        if "update" in recipe.stages:
            update_dir = idir / "update"
            step = _stage_step(recipe, "update", f"iter-{iteration:03d}/update", update_dir, source,
                               _update_flags(recipe, model))
            steps.append(replace(step, launcher=update_launcher(recipe.accelerate)))
            model = str(update_dir)
        if recipe.eval_every and iteration % recipe.eval_every == 0:
            steps.append(held_out_step(recipe, model, iteration))
    if recipe.supervised_control:
        args = control_args(recipe, config_path(recipe, "pretrain"), str(recipe.path))
        steps.append(Step("supervised-only", args, recipe.workdir / CONTROL_OUTPUT, "model"))
    if recipe.eval is not None:
        eval_args = ["eval", "--config", str(config_path(recipe, "eval"))]
        roles = eval_models(recipe, base, model)
        labelled = "label" not in recipe.eval  # the recipe's own labels, if it gives them, win
        for m, role in roles.items():
            eval_args += ["--model", m, *(["--label", role] if labelled else [])]
        labels = list(roles.values()) if labelled else recipe.eval["label"]
        check_compare_to(recipe.eval.get("compare_to"), row_labels(labels, recipe.eval.get("baseline", [])),
                         f"{recipe.path}: eval.compare_to")
        steps.append(Step("eval", (*eval_args, "--output", str(wd / "eval")), wd / "eval", "eval"))
    return steps


def held_out_step(recipe: Recipe, model: str, iteration: int) -> Step:
    """`eval_every`: one model, the model after `iteration` (0: the start), evaluated with the recipe's eval
    options; labelled by its iteration, which the report's held-out curve reads."""
    out = recipe.workdir / f"iter-{iteration:03d}" / "eval"
    args = ("eval", "--config", str(config_path(recipe, HELD_OUT_CONFIG)), "--model", model, "--label",
            f"iteration {iteration}", "--output", str(out))
    return Step(f"iter-{iteration:03d}/eval", args, out, "eval")


def eval_models(recipe: Recipe, base: str, last: str) -> dict[str, str]:
    """The models the eval compares, each with its role in the recipe as its label in tables and
    reports: the base (random when make-model built it), the warmed-up start, the end of RL."""
    roles = {base: "random" if recipe.make_model else "base"}
    roles.setdefault(recipe.model, "warmed up" if recipe.pretrain else "start")
    if recipe.supervised_control:
        roles[str(recipe.workdir / CONTROL_OUTPUT)] = CONTROL_LABEL
    roles.setdefault(last, f"iteration {recipe.iterations}")
    return roles


def plan_script(recipe: Recipe, sets: list[str]) -> str:
    """The recipe as a bash script: write the config files, then one `metaspatial` line per step."""
    origin = shlex.join(["metaspatial", "recipe", "plan", str(recipe.path), *[a for s in sets for a in ("--set", s)]])
    lines = ["#!/usr/bin/env bash", f"# Generated by: {origin}",
             "# The same steps `metaspatial recipe run` executes; complete stage outputs are skipped on re-runs.",
             f"{GPUS_MARKER} " + " ".join(f"{k}={v}" for k, v in gpus(recipe).items()),
             "set -euo pipefail", f"mkdir -p {shlex.quote(str(recipe.workdir / CONFIG_DIR))}"]
    for path, text in config_files(recipe).items():
        lines += [f"cat > {shlex.quote(str(path))} <<'YAML'", text.rstrip("\n"), "YAML"]
    lines.append(STEPS_MARKER)
    for step in build_steps(recipe):
        if step.kind == "model":  # built once; an existing model is never overwritten
            lines.append(f"test -e {shlex.quote(str(step.output / 'config.json'))} || {step.command_line()}")
        else:
            lines.append(step.command_line())
    return "\n".join(lines) + "\n"
