"""`supervised_control: true`: the eval table's answer to "does RL beat more supervised training?"

A second `pretrain` continues the warm-up from the recipe's `model` (the warmed-up policy RL starts
from) on fresh synthetic rooms (seed `pretrain.seed + 1`) with the warm-up's own options, for as many
training examples as the RL updates train on:

    RL examples = iterations × rooms × rollout.n × update.num_train_epochs       (× turns with update.turns: every)
                  (or iterations × update.max_steps × completions per step, when max_steps is set)
    control     = ceil(RL examples / pretrain.epochs) rooms × pretrain.epochs

An RL example is one sampled answer in a gradient step, a control example one reference answer in
one: the same prompts' kind and length, so the same training compute (RL also pays for sampling,
which the control does not need). The control model is evaluated as its own row, `supervised only`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from stages.core.errors import UserError

from .arithmetic import DEFAULT_N, step_arithmetic

OUTPUT = Path("models") / "supervised-only"
LABEL = "supervised only"


def _section_value(recipe: Any, stage: str, name: str) -> Any:
    return recipe.sections.get(stage, {}).get(name, recipe.config_classes[stage].model_fields[name].default)


def rooms_per_iteration(recipe: Any, source: str) -> int:
    """The rooms each iteration rolls out: its draw, or every room the synthetic prompts hold."""
    if recipe.rooms_per_iteration:
        return recipe.rooms_per_iteration
    if _section_value(recipe, "gen-prompts", "source") != "synthetic":
        raise UserError(f"{source}: supervised_control: the number of training rooms is known before the run only "
                        "with gen-prompts.source: synthetic or rooms_per_iteration; set one of them")
    return int(_section_value(recipe, "gen-prompts", "num_rooms"))


def rl_examples(recipe: Any, source: str) -> int:
    """How many sampled answers the recipe's updates train on, over all iterations (see the module doc)."""
    max_steps = _section_value(recipe, "update", "max_steps")
    if max_steps:
        step = step_arithmetic(recipe)
        per_step = step.completions_per_step if step else int(_section_value(recipe, "update",
                                                                             "per_device_train_batch_size"))
        return recipe.iterations * max_steps * per_step
    n = recipe.sections.get("rollout", {}).get("n") or DEFAULT_N
    turns = recipe.turns if _section_value(recipe, "update", "turns") == "every" else 1
    epochs = float(_section_value(recipe, "update", "num_train_epochs"))
    return math.ceil(recipe.iterations * rooms_per_iteration(recipe, source) * n * turns * epochs)


def control_args(recipe: Any, config: Path, source: str) -> tuple[str, ...]:
    """The `pretrain` command line of the control: the warm-up's config, continued from `model`."""
    from metaspatial_cli.pretrain import PretrainConfig

    if not recipe.pretrain or "update" not in recipe.stages:
        raise UserError(f"{source}: supervised_control: needs a `pretrain:` section (the warm-up it continues) "
                        "and the update stage (whose examples it matches)")
    options = PretrainConfig.model_validate(recipe.pretrain)
    rooms = math.ceil(rl_examples(recipe, source) / options.epochs)
    return ("pretrain", "--config", str(config), "--base", recipe.model, "--output", str(recipe.workdir / OUTPUT),
            "--num-rooms", str(rooms), "--seed", str(options.seed + 1))
