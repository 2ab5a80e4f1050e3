"""A recipe's step arithmetic, checked before anything runs.

GRPO compares the completions of one group, so TRL needs whole groups in every optimizer step:

    completions per step = update.per_device_train_batch_size
                         × update.gradient_accumulation_steps
                         × accelerate.num_processes          (update processes = GPUs; 1 without `accelerate:`)

must be a multiple of the group size, which is `rollout.n` (the samples of one room; over several
turns each trajectory continues with one sample, so a room's group stays n), or n × turns when
update compares every turn of a room at once (`update.turns: every` with `update.group_by: prompt_id`).
The paper's step: 4 rooms × n 3 = 12 completions, e.g. 4 GPUs × batch 1 × accumulation 3.

Without this check a bad recipe runs a whole iteration of rollouts and judge calls before `update`
refuses it. The same numbers give the GPUs each step asks for (`gpus`), which `recipe plan` prints
for examples/slurm/submit.sh.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from stages.core.errors import UserError

DEFAULT_N = 4
"""rollout's group size on turn 1 when the recipe does not set `n` (stages/rollout/samples.py)."""


@dataclass(frozen=True)
class StepArithmetic:
    group_size: int
    group_keys: str
    """The recipe keys that set the group size, for messages."""
    per_device: int
    accumulation: int
    processes: int

    @property
    def completions_per_step(self) -> int:
        return self.per_device * self.accumulation * self.processes

    def suggestion(self) -> int:
        """The smallest accumulation at least the current one that makes whole groups."""
        unit = self.group_size // math.gcd(self.group_size, self.per_device * self.processes)
        return unit * math.ceil(self.accumulation / unit)


def _field_default(recipe: Any, stage: str, name: str) -> Any:
    return recipe.sections.get(stage, {}).get(name, recipe.config_classes[stage].model_fields[name].default)


def group_size(recipe: Any) -> tuple[int, str] | None:
    """The update's group size and the keys that set it; None when update groups by a custom column."""
    n = recipe.sections.get("rollout", {}).get("n") or DEFAULT_N
    group_by = _field_default(recipe, "update", "group_by")
    every = _field_default(recipe, "update", "turns") == "every"
    if group_by in (None, "prompt_id,turn") or (group_by == "group_id" and recipe.turns == 1):
        return n, "rollout.n"
    if group_by == "prompt_id":
        return (n * recipe.turns, "rollout.n × turns") if every and recipe.turns > 1 else (n, "rollout.n")
    return None


def step_arithmetic(recipe: Any) -> StepArithmetic | None:
    """The numbers of one optimizer step; None when the recipe has no update (or a custom grouping)."""
    if "update" not in recipe.sections:
        return None
    group = group_size(recipe)
    if group is None:
        return None
    processes = int((recipe.accelerate or {}).get("num_processes", 1))
    return StepArithmetic(group_size=group[0], group_keys=group[1], processes=processes,
                          per_device=_field_default(recipe, "update", "per_device_train_batch_size"),
                          accumulation=_field_default(recipe, "update", "gradient_accumulation_steps"))


def check_arithmetic(recipe: Any, source: str) -> None:
    """Refuse a recipe whose optimizer step would not hold whole groups, naming the keys to change."""
    step = step_arithmetic(recipe)
    if step is None or step.completions_per_step % step.group_size == 0:
        return
    raise UserError(
        f"{source}: update.per_device_train_batch_size ({step.per_device}) × update.gradient_accumulation_steps "
        f"({step.accumulation}) × accelerate.num_processes ({step.processes}) = {step.completions_per_step} "
        f"completions per optimizer step, not a multiple of the group size {step.group_size} ({step.group_keys}); "
        f"change one of these keys, e.g. update.gradient_accumulation_steps: {step.suggestion()}")


def gpus(recipe: Any) -> dict[str, int]:
    """GPUs each kind of step asks for: a rollout shard (vLLM's tensor parallel size, else 1; none for
    a served model) and the update (its processes)."""
    rollout = recipe.sections.get("rollout", {})
    backend = rollout.get("backend", "transformers")
    out = {"rollout": {"vllm": int(rollout.get("tensor_parallel_size", 1)), "openai": 0}.get(backend, 1)}
    if "update" in recipe.sections:
        out["update"] = int((recipe.accelerate or {}).get("num_processes", 1))
    return out


def check_pixels(recipe: Any, source: str) -> None:
    """An image's pixel limits set its number of tokens, so update must encode prompts with the limits
    rollout sampled them with (else it trains on prompts the policy never saw)."""
    rollout, update = recipe.sections.get("rollout"), recipe.sections.get("update")
    if rollout is None or update is None:
        return
    for key in ("min_pixels", "max_pixels"):
        if rollout.get(key) != update.get(key):
            raise UserError(f"{source}: rollout.{key} ({rollout.get(key)}) and update.{key} ({update.get(key)}) "
                            "differ; update must see images at the size rollout showed them: set both the same")
