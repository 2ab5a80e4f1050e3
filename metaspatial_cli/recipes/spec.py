"""A recipe file: read it, apply `--set` overrides, resolve `${...}` references, validate it all.

    workdir: runs/quickstart          # every output goes under here
    model: ${workdir}/models/tiny     # a local path or a hub name; the policy of iteration 1
    make_model: tiny-qwen2.5-vl       # optional: build the base model with `metaspatial make-model` if missing
    pretrain: {base: ${workdir}/models/tiny}   # optional: supervised warm-up of base, written to `model`
    iterations: 3                     # rollout → render → score (× turns) → update, repeated
    turns: 1                          # turns per iteration (multi-turn refinement)
    stages: [gen-prompts, rollout, render, score, update]   # optional: a sub-chain
    gen-prompts: {source: synthetic, num_rooms: 40}          # one section per stage: its Config fields
    rollout: {n: 4, guided: true}
    eval: {rooms: examples/rooms}     # optional: evaluate the first and the last model afterwards
    eval_every: 2                     # optional: also evaluate the start model and every 2nd iteration's model
    supervised_control: true          # optional: continue the warm-up for as many examples as RL trains on (control.py)
    accelerate: {config_file: examples/accelerate/fsdp.yaml, num_processes: 4}   # optional: launch.py
    keep_models: 2                    # optional: keep the weights of the last N iterations' models only
    rooms_per_iteration: 4            # optional: each iteration draws its own rooms (select-rooms), seeded by
    seed: 0                           #   `seed`, every room once before any repeats; default: all rooms each time

Everything is checked before any stage runs, and every message names the file and the key
(`recipes/x.yaml: rollout.max_new_tokens: ...`), because a typo found after an hour of rollouts
costs that hour.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stages.core.config import build_config, load_yaml, validation_message
from stages.core.errors import UserError

from ..eval_config import EvalConfig
from ..registry import PIPELINE, RUNNER_FIELDS, config_class
from .arithmetic import check_arithmetic, check_pixels
from .launch import check_accelerate

# Options the runner sets for particular stages, besides RUNNER_FIELDS (see the registry).
RUNNER_FIELDS_BY_STAGE = {"rollout": {"model", "turn"}, "update": {"model", "reference_model"}, "eval": {"model"}}
PRETRAIN_OWNED = {"output"}
REF = re.compile(r"\$\{([A-Za-z0-9_.\-]+)\}")


class RecipeKeys(BaseModel):
    """The top level of a recipe file: its settings and one section of options per stage (each
    section is then checked by its stage's Config, `pretrain` and `eval` by theirs)."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    workdir: str = Field(min_length=1)
    model: str = Field(min_length=1)
    make_model: str | None = None
    pretrain: dict[str, Any] | None = None
    iterations: int = Field(default=1, ge=1)
    turns: int = Field(default=1, ge=1)
    stages: list[str] = Field(default_factory=lambda: list(PIPELINE))
    eval: dict[str, Any] | None = None
    eval_every: int | None = Field(default=None, ge=1)
    supervised_control: bool = False
    accelerate: dict[str, Any] | None = None
    keep_models: int | None = Field(default=None, ge=1)
    rooms_per_iteration: int | None = Field(default=None, ge=1)
    seed: int = 0
    gen_prompts: dict[str, Any] | None = Field(default=None, alias="gen-prompts")
    rollout: dict[str, Any] | None = None
    render: dict[str, Any] | None = None
    score: dict[str, Any] | None = None
    update: dict[str, Any] | None = None

    @field_validator("stages")
    @classmethod
    def _pipeline_prefix(cls, stages: list[str]) -> list[str]:
        """The whole pipeline, or a prefix of it (e.g. without update, to look at rollouts)."""
        if not stages or stages != list(PIPELINE[:len(stages)]):
            raise ValueError(f"expected the pipeline or a prefix of it ({', '.join(PIPELINE)}), got {stages!r}")
        return stages

    @model_validator(mode="after")
    def _update_for_iterations(self) -> RecipeKeys:
        if self.iterations > 1 and "update" not in self.stages:
            raise ValueError(f"iterations: {self.iterations} iterations need the update stage in `stages`")
        if self.eval_every is not None and (self.eval is None or "update" not in self.stages):
            raise ValueError("eval_every: evaluating during training needs an `eval:` section and the update stage")
        return self

    def section(self, stage: str) -> dict[str, Any]:
        return getattr(self, stage.replace("-", "_")) or {}


@dataclass
class Recipe:
    path: Path
    workdir: Path
    model: str
    iterations: int
    turns: int
    stages: list[str]
    sections: dict[str, dict[str, Any]]
    make_model: str | None = None
    pretrain: dict[str, Any] | None = None
    eval: dict[str, Any] | None = None
    eval_every: int | None = None
    """Evaluate the start model and every N-th iteration's model on the eval rooms (the held-out curve)."""
    supervised_control: bool = False
    """Also train and evaluate a supervised-only model given RL's training examples (control.py)."""
    accelerate: dict[str, Any] | None = None
    """`accelerate launch` options for update (launch.py); None runs update as a plain process."""
    keep_models: int | None = None
    """Keep the weights of the last N iterations' models (older ones are pruned); None keeps all."""
    rooms_per_iteration: int | None = None
    """Rooms each iteration draws from the training prompts (a select-rooms step); None: all of them."""
    seed: int = 0
    """Seed of the recipe's own randomness (the per-iteration room draw)."""
    config_classes: dict[str, type[BaseModel]] = field(default_factory=dict)


def apply_overrides(raw: dict[str, Any], sets: list[str], source: str) -> None:
    """`--set rollout.n=8`: the value is read as YAML (`8` is a number, `true` a bool, `[a, b]` a list)."""
    for item in sets:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set {item}: expected KEY=VALUE, e.g. --set rollout.n=8")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise UserError(f"--set {item}: the value is not valid YAML ({err})") from None
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise UserError(f"{source}: --set {item}: {part} is not a section")
            node = child
        node[leaf] = value


def _lookup(raw: dict[str, Any], dotted: str) -> Any:
    node: Any = raw
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def interpolate(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """Replace `${key}` / `${section.key}` in strings by that entry's (resolved) value."""

    def resolve(value: Any, where: str, seen: tuple[str, ...]) -> Any:
        if isinstance(value, dict):
            return {k: resolve(v, f"{where}.{k}" if where else str(k), seen) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v, f"{where}[{i}]", seen) for i, v in enumerate(value)]
        if not isinstance(value, str):
            return value

        whole = REF.fullmatch(value)
        if whole:  # a lone reference keeps the referenced value's type (`iterations: ${n}` stays a number)
            return reference(whole.group(1), where, seen)
        return REF.sub(lambda m: str(reference(m.group(1), where, seen)), value)

    def reference(name: str, where: str, seen: tuple[str, ...]) -> Any:
        if name in seen:
            raise UserError(f"{source}: {where}: ${{{name}}} refers to itself (via {' -> '.join(seen)})")
        target = _lookup(raw, name)
        if target is None or isinstance(target, (dict, list)):
            raise UserError(f"{source}: {where}: ${{{name}}} does not name a value in this recipe")
        return resolve(target, name, (*seen, name))

    return resolve(raw, "", ())


def validate_section(recipe_source: str, stage: str, section: dict[str, Any], cls: type[BaseModel],
                     placeholders: dict[str, Any]) -> None:
    """Validate a section with its stage's Config; the runner's own fields get stand-in values."""
    owned = (RUNNER_FIELDS | RUNNER_FIELDS_BY_STAGE.get(stage, set())) & set(section)
    if stage == "gen-prompts":  # its `input` is the rooms file it reads, not a dataset the runner wires
        owned.discard("input")
    if owned:
        raise UserError(f"{recipe_source}: {stage}.{sorted(owned)[0]}: set by the recipe runner for each step "
                        "(remove it from the recipe)")
    values = {k: v for k, v in placeholders.items() if k in cls.model_fields}
    try:
        cls.model_validate({**values, **section})
    except ValidationError as err:
        raise UserError(validation_message(err, cls, recipe_source, stage)) from None


def load_recipe(path: Path, sets: list[str] | None = None) -> Recipe:
    """Read, override, interpolate and validate a recipe; raises UserError naming file and key."""
    source = str(path)
    raw = load_yaml(Path(path))
    apply_overrides(raw, sets or [], source)
    if isinstance(raw.get("workdir"), str) and "${" not in raw["workdir"]:
        # Absolute, so that every step finds its inputs whatever directory a stage resolves paths against.
        raw["workdir"] = str(Path(raw["workdir"]).absolute())
    keys = build_config(RecipeKeys, interpolate(raw, source), source)
    recipe = Recipe(path=Path(path), workdir=Path(keys.workdir), model=keys.model, iterations=keys.iterations,
                    turns=keys.turns, stages=keys.stages, sections={}, make_model=keys.make_model,
                    pretrain=keys.pretrain, eval=keys.eval, eval_every=keys.eval_every,
                    supervised_control=keys.supervised_control, accelerate=check_accelerate(keys.accelerate, source),
                    keep_models=keys.keep_models, rooms_per_iteration=keys.rooms_per_iteration, seed=keys.seed)
    for stage in PIPELINE:
        section = keys.section(stage)
        if stage not in recipe.stages:
            if section:
                raise UserError(f"{source}: {stage}: section given but the stage is not in `stages`")
            continue
        cls = config_class(stage)
        validate_section(source, stage, section, cls,
                         {"input": recipe.workdir, "output": recipe.workdir, "model": recipe.model, "turn": 1})
        recipe.sections[stage] = section
        recipe.config_classes[stage] = cls
    _check_extras(recipe, source)
    check_arithmetic(recipe, source)
    check_pixels(recipe, source)
    return recipe


def _check_extras(recipe: Recipe, source: str) -> None:
    if recipe.pretrain is not None:
        from metaspatial_cli.pretrain import PretrainConfig

        if not recipe.pretrain.get("base"):
            raise UserError(f"{source}: pretrain.base: required (the model to warm up; `model` is its output)")
        if PRETRAIN_OWNED & set(recipe.pretrain):
            raise UserError(f"{source}: pretrain.output: set by the recipe runner (it is `model`)")
        try:
            PretrainConfig.model_validate(recipe.pretrain)
        except ValidationError as err:
            raise UserError(validation_message(err, PretrainConfig, source, "pretrain")) from None
    if recipe.eval is not None:
        validate_section(source, "eval", recipe.eval, EvalConfig, {"model": [recipe.model]})
    if recipe.supervised_control:
        from .control import control_args

        control_args(recipe, Path("pretrain.yaml"), source)  # refuses what it cannot count, before any step
