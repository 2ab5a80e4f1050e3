"""`metaspatial eval`: run rollout → render → score on held-out rooms for each model; one table.

Comparing models (before/after RL, RL vs SFT) is the main use, so every model sees the same
prompts with the same decoding and scoring options, and the table puts them side by side. Each
step is an ordinary `metaspatial` stage command run as a subprocess (logged to OUTPUT/eval.log),
so an interrupted evaluation resumes where it stopped and any step can be re-run by hand.

    OUTPUT/prompts/               the held-out prompts (rooms of --split)
    OUTPUT/model-1/{rollout,render,score}/
    OUTPUT/eval.csv, eval.md      one row per model
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stages.core.errors import UserError

from .options import err_console

STAGE_SECTIONS = ("gen-prompts", "rollout", "render", "score")
LOG = "eval.log"


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


def stage_section(cfg: EvalConfig, stage: str) -> dict[str, Any]:
    return dict(getattr(cfg, stage.replace("-", "_")))


def validate_sections(cfg: EvalConfig, source: str) -> None:
    """Check the per-stage options with the stages' own Config classes before any work starts."""
    from .recipes.spec import stage_config_class, validate_section

    for stage in STAGE_SECTIONS:
        cls = stage_config_class(stage)
        validate_section(source, f"eval.{stage}" if stage != "gen-prompts" else "eval.gen-prompts",
                         stage_section(cfg, stage), cls,
                         {"input": cfg.output, "output": cfg.output, "model": cfg.model[0], "turn": 1})


def load_config(config_file: Path | None, flags: dict[str, Any]) -> EvalConfig:
    from stages.core.config import load_yaml, validation_message

    values = load_yaml(config_file) if config_file else {}
    values.update({k: v for k, v in flags.items() if v not in (None, [])})
    source = str(config_file or "options")
    try:
        cfg = EvalConfig.model_validate(values)
    except ValidationError as err:
        raise UserError(validation_message(err, EvalConfig, source, "eval")) from None
    if cfg.label and len(cfg.label) != len(cfg.model):
        raise UserError(f"{source}: eval.label: {len(cfg.label)} labels for {len(cfg.model)} models")
    validate_sections(cfg, source)
    return cfg


def run(cfg: EvalConfig) -> list[dict[str, Any]]:
    """Evaluate every model; returns one metrics row per model (also written to CSV and Markdown)."""
    from .eval_metrics import model_metrics, print_table, short_labels, write_tables
    from .eval_steps import model_steps, prompt_steps, write_config_files, write_prompts
    from .recipes.runner import execute_steps

    cfg.output.mkdir(parents=True, exist_ok=True)
    write_config_files(cfg)
    steps, rooms_dataset = prompt_steps(cfg)
    execute_steps(steps, cfg.output / LOG)
    write_prompts(cfg, rooms_dataset)
    steps, score_dirs = model_steps(cfg)
    execute_steps(steps, cfg.output / LOG)
    labels = cfg.label or short_labels(cfg.model)
    table = [model_metrics(label, model, score_dir) for label, model, score_dir in zip(labels, cfg.model, score_dirs, strict=True)]
    write_tables(table, cfg.output)
    print_table(table, cfg)
    return table


def register(app: typer.Typer) -> None:
    @app.command("eval", rich_help_panel="Tools")
    def eval_command(
        model: list[str] = typer.Option([], "--model", help="A model to evaluate (repeat for several)."),
        label: list[str] = typer.Option([], "--label", help="Its name in the table (repeat, one per --model)."),
        rooms: Path = typer.Option(None, "--rooms", help="Rooms .jsonl file, folder with rooms.jsonl, or prompt "
                                   "dataset (default: examples/rooms)."),
        split: str = typer.Option(None, "--split", help="Evaluate rooms of this split only (default: test)."),
        max_rooms: int = typer.Option(None, "--max-rooms", help="At most this many rooms."),
        n: int = typer.Option(None, "--n", help="Samples per room (default 1: greedy)."),
        output: Path = typer.Option(None, "--output", help="Output folder (default: eval)."),
        config_file: Path = typer.Option(None, "--config", help="YAML with these options and rollout/render/score "
                                         "sections (flags win)."),
    ) -> None:
        """Evaluate one or more models on held-out rooms (rollout, render, score) and print one table."""
        from .recipes.runner import StepFailed

        flags = {"model": model, "label": label, "rooms": rooms, "split": split, "max_rooms": max_rooms, "n": n,
                 "output": output}
        try:
            run(load_config(config_file, flags))
        except UserError as err:
            err_console.print(f"[bold red]error:[/] {err}", highlight=False)
            raise typer.Exit(2) from None
        except StepFailed as err:
            err_console.print(f"[bold red]eval stopped:[/] {err}", highlight=False)
            raise typer.Exit(err.code) from None
