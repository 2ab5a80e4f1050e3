"""`metaspatial eval`: run rollout → render → score on held-out rooms for each model; one table.

Comparing models (before/after RL, RL vs SFT) is the main use, so every model sees the same
prompts with the same decoding and scoring options, and the table puts them side by side. Each
step is an ordinary `metaspatial` stage command run as a subprocess (logged to OUTPUT/eval.log),
so an interrupted evaluation resumes where it stopped and any step can be re-run by hand.

    OUTPUT/prompts/               the held-out prompts (rooms of --split)
    OUTPUT/model-1/{rollout,render,score}/
    OUTPUT/reference/{rollout,render,score}/   with --baseline reference: the rooms' reference layouts
    OUTPUT/eval.csv, eval.md      one row per model
"""

from __future__ import annotations

from typing import Any

import typer

from .eval_config import REFERENCE_LABEL, EvalConfig, check_compare_to, row_labels
from .options import add_config_command, print_error

LOG = "eval.log"


def run(cfg: EvalConfig) -> list[dict[str, Any]]:
    """Evaluate every model; returns one metrics row per model (also written to CSV and Markdown)."""
    from stages.core import dataset as ds

    from .eval_metrics import model_metrics, print_table, short_labels, write_tables
    from .eval_paired import add_paired_deltas, room_rewards
    from .eval_steps import model_steps, prompt_steps, reference_steps, write_config_files, write_prompts
    from .recipes.runner import execute_steps

    labels = cfg.label or short_labels(cfg.model)
    check_compare_to(cfg.compare_to, row_labels(labels, cfg.baseline))
    cfg.output.mkdir(parents=True, exist_ok=True)
    write_config_files(cfg)
    steps, rooms_dataset = prompt_steps(cfg)
    execute_steps(steps, cfg.output / LOG)
    write_prompts(cfg, rooms_dataset)
    steps, score_dirs = model_steps(cfg)
    execute_steps(steps, cfg.output / LOG)
    table = [model_metrics(label, model, score_dir) for label, model, score_dir in zip(labels, cfg.model, score_dirs, strict=True)]
    if "reference" in cfg.baseline:
        steps, score_dir = reference_steps(cfg)
        execute_steps(steps, cfg.output / LOG)
        table.append(model_metrics(REFERENCE_LABEL, "reference_layout", score_dir))
        score_dirs.append(score_dir)
    if cfg.compare_to is not None:
        add_paired_deltas(table, [room_rewards(ds.read_rows(d)) for d in score_dirs], cfg.compare_to)
    write_tables(table, cfg.output, cfg.compare_to)
    print_table(table, cfg)
    return table


def register(app: typer.Typer) -> None:
    add_config_command(app, "eval", EvalConfig, _run_command,
                       "Evaluate one or more models on held-out rooms (rollout, render, score) and print one table.",
                       rich_help_panel="Tools", output_required=False)


def _run_command(cfg: EvalConfig) -> None:
    from .recipes.runner import StepFailed

    try:
        run(cfg)
    except StepFailed as err:
        print_error(err, "eval stopped")
        raise typer.Exit(err.code) from None
