"""The options of `metaspatial eval` (also the `eval:` section of a recipe), in a module of their own
so that the recipe checks and the eval steps can import them without importing the command."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stages.core.config import validation_message
from stages.core.errors import UserError

from .registry import EVAL_STAGES, RUNNER_FIELDS, config_class

REFERENCE_LABEL = "reference layouts"
"""The label of the `--baseline reference` row."""


class EvalConfig(BaseModel):
    """Options of `metaspatial eval`; also the `eval:` section of a recipe (minus `model`)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, populate_by_name=True)

    model: list[str] = Field(min_length=1)
    """Models to evaluate (local paths or hub names), in table order."""
    label: list[str] = Field(default_factory=list)
    """Names for the models in the table (default: the last parts of the model paths that tell them apart)."""
    rooms: Path | None = Path("examples/rooms")
    """Held-out rooms: a rooms .jsonl file, a folder holding rooms.jsonl, or a prompt dataset; none (null in
    YAML): rooms made by gen-prompts with the gen-prompts options below (e.g. synthetic rooms of another seed)."""
    split: str | None = "test"
    """Evaluate only rooms of this split (none: all rooms)."""
    max_rooms: int | None = Field(default=None, ge=1)
    """Evaluate at most this many rooms (the first ones of the split)."""
    baseline: list[Literal["reference"]] = Field(default_factory=list)
    """Table rows that are not models: `reference` scores each held-out room's reference layout (rooms that
    have one) through the same render and score steps: the ceiling the models are measured against."""
    compare_to: str | None = None
    """Label of a row (a model's, or `reference layouts`) to compare every other row with, room by room: adds
    the mean ± standard error over shared rooms of each room's mean reward minus that row's, and the rooms up."""
    n: int = Field(default=1, ge=1)
    """Samples per room. 1 decodes greedily (temperature 0) unless rollout.temperature is given."""
    output: Path = Path("eval")
    """Output folder: per-model datasets, eval.csv and eval.md."""
    gen_prompts: dict[str, Any] = Field(default_factory=dict, alias="gen-prompts")
    """gen-prompts options used to make the prompts (template, image_size; source, seed, ... when rooms is none)."""
    rollout: dict[str, Any] = Field(default_factory=dict)
    """rollout options (backend, guided, max_new_tokens, ...), the same for every model."""
    render: dict[str, Any] = Field(default_factory=dict)
    """render options."""
    score: dict[str, Any] = Field(default_factory=dict)
    """score options (preset, judge, ...)."""

    @model_validator(mode="after")
    def _labels_and_sections(self) -> EvalConfig:
        """One label per model, and each stage section valid for its stage's Config (before any work)."""
        if self.label and len(self.label) != len(self.model):
            raise ValueError(f"eval.label: {len(self.label)} labels for {len(self.model)} models")
        stand_ins = {"input": self.output, "output": self.output, "model": self.model[0], "turn": 1}
        for stage in EVAL_STAGES:
            section = stage_section(self, stage)
            owned = sorted(RUNNER_FIELDS & set(section))
            if owned:
                raise ValueError(f"eval.{stage}.{owned[0]}: set by eval for each step (remove it)")
            cls = config_class(stage)
            try:
                cls.model_validate({**{k: v for k, v in stand_ins.items() if k in cls.model_fields}, **section})
            except ValidationError as err:
                lines = validation_message(err, cls, "", f"eval.{stage}").splitlines()
                raise ValueError("\n".join(line.removeprefix(": ") for line in lines)) from None
        return self


def stage_section(cfg: EvalConfig, stage: str) -> dict[str, Any]:
    return dict(getattr(cfg, stage.replace("-", "_")))


def row_labels(labels: list[str], baseline: Sequence[str]) -> list[str]:
    """The labels of the table's rows: the models' (given or derived), then the baselines'."""
    return [*labels, *([REFERENCE_LABEL] if "reference" in baseline else [])]


def check_compare_to(compare_to: str | None, labels: list[str], where: str = "--compare-to") -> None:
    """Before any work: `compare_to` names a row of the table (one line listing the rows otherwise)."""
    if compare_to is not None and compare_to not in labels:
        raise UserError(f"{where}: {compare_to!r} is not a row of the table (rows: "
                        + ", ".join(repr(label) for label in labels) + ")")
