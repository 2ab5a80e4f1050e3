"""The steps of an evaluation: held-out prompts once, then rollout → render → score per model.

Every model gets the same prompt dataset and the same `--config` files, so the only difference
between two rows of the table is the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from stages.core import dataset as ds
from stages.core import rows as rows_codec
from stages.core.columns import REFERENCE_LAYOUT
from stages.core.errors import UserError

from .eval_config import EvalConfig, stage_section
from .recipes.steps import Step
from .registry import EVAL_STAGES

CONFIG_DIR = "_config"
ROOMS_FILE = "rooms.jsonl"


def _config_path(cfg: EvalConfig, stage: str) -> Path:
    return cfg.output / CONFIG_DIR / f"{stage}.yaml"


def rollout_options(cfg: EvalConfig) -> dict[str, Any]:
    """The rollout section, with greedy decoding for n = 1 unless a temperature is given."""
    section = stage_section(cfg, "rollout")
    section.pop("n", None)
    if cfg.n == 1:
        section.setdefault("temperature", 0.0)
    return section


def write_config_files(cfg: EvalConfig) -> None:
    sections = {"gen-prompts": stage_section(cfg, "gen-prompts"), "rollout": rollout_options(cfg),
                "render": stage_section(cfg, "render"), "score": stage_section(cfg, "score")}
    for stage, section in sections.items():
        path = _config_path(cfg, stage)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(section, sort_keys=False) if section else "{}\n"
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)


def _rooms_file(rooms: Path) -> Path | None:
    """The rooms .jsonl to turn into prompts, or None when `rooms` is already a prompt dataset."""
    if rooms.is_file() and rooms.suffix == ".jsonl":
        return rooms
    if rooms.is_dir() and (rooms / ROOMS_FILE).is_file():
        return rooms / ROOMS_FILE
    if rooms.is_dir():
        return None
    raise UserError(f"--rooms: {rooms} is neither a rooms .jsonl file, a folder with {ROOMS_FILE}, "
                    "nor a prompt dataset")


def prompt_steps(cfg: EvalConfig) -> tuple[list[Step], Path]:
    """The gen-prompts step (when given rooms rather than prompts) and the dataset to filter."""
    out = cfg.output / "all-prompts"
    args: tuple[str, ...] = ("gen-prompts", "--config", str(_config_path(cfg, "gen-prompts")))
    if cfg.rooms is not None:
        rooms_file = _rooms_file(cfg.rooms)
        if rooms_file is None:
            return [], cfg.rooms
        args += ("--source", "jsonl", "--input", str(rooms_file))
    return [Step("gen-prompts", (*args, "--output", str(out)), out, "dataset")], out


def write_prompts(cfg: EvalConfig, source: Path) -> Path:
    """OUTPUT/prompts: the rows of the chosen split (images linked along), the same for every model."""
    table = ds.read_table(source)
    ds.require_columns(table, ["prompt", "split"] if cfg.split else ["prompt"], source)
    rows = [r for r in table.to_pylist() if cfg.split is None or r["split"] == cfg.split]
    if cfg.max_rooms:
        rows = rows[: cfg.max_rooms]
    if not rows:
        raise UserError(f"--rooms: {source} has no rooms of split {cfg.split!r}")
    out = cfg.output / "prompts"
    part = out / ds.part_name(0, 1, "parquet")
    if part.is_file() and ds.read_part(part) == rows:
        return out
    for row in rows:
        for value in row.values():
            if ds.is_image_ref(value):
                ds.link_image(source, out, value)
    ds.write_rows(part, rows, table.schema, "parquet")
    return out


def model_steps(cfg: EvalConfig) -> tuple[list[Step], list[Path]]:
    """rollout → render → score for each model; returns the steps and each model's score dataset."""
    steps: list[Step] = []
    scores = []
    for i, model in enumerate(cfg.model, start=1):
        base = cfg.output / f"model-{i}"
        source = cfg.output / "prompts"
        for stage in EVAL_STAGES[1:]:
            extra = ["--model", model, "--n", str(cfg.n)] if stage == "rollout" else []
            steps.append(_step(cfg, f"model-{i}", stage, source, base, *extra))
            source = base / stage
        scores.append(source)
    return steps, scores


def _step(cfg: EvalConfig, name: str, stage: str, source: Path, base: Path, *extra: str) -> Step:
    args = (stage, "--config", str(_config_path(cfg, stage)), "--input", str(source), "--output",
            str(base / stage), *extra)
    return Step(f"{name}/{stage}", args, base / stage, "dataset")


REFERENCE = "reference"


def reference_steps(cfg: EvalConfig) -> tuple[list[Step], Path]:
    """The reference baseline: OUTPUT/reference/rollout holds each room's reference layout as the one
    sample of its room (written here, like a rollout would), then render → score as for a model."""
    from .pretrain import answer_text

    base = cfg.output / REFERENCE
    prompts = cfg.output / "prompts"
    rows = []
    for row in ds.read_rows(prompts):
        layout = rows_codec.reference_layout(row.get(REFERENCE_LAYOUT))
        if layout:
            rows.append({**row, "sample_id": f"{row['prompt_id']}-reference", "group_id": f"{row['prompt_id']}-t1",
                         "sample_index": 0, "turn": 1, "trajectory_id": f"{row['prompt_id']}-reference",
                         "response": answer_text(layout, 4), "model": REFERENCE, "backend": REFERENCE,
                         "finish_reason": "stop", "history": None})
    if not rows:
        raise UserError(f"--baseline reference: no held-out room in {prompts} has a reference layout")
    part = base / "rollout" / ds.part_name(0, 1, "parquet")
    if not (part.is_file() and ds.read_part(part) == rows):
        for row in rows:
            for value in row.values():
                if ds.is_image_ref(value):
                    ds.link_image(prompts, base / "rollout", value)
        ds.write_rows(part, rows, None, "parquet")
    steps = [_step(cfg, REFERENCE, "render", base / "rollout", base),
             _step(cfg, REFERENCE, "score", base / "render", base)]
    return steps, base / "score"
