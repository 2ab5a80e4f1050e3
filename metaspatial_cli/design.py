"""`metaspatial design`: furnish rooms with a model. Sample, render, score, refine the best, export.

For each room: `--n` layouts are sampled (turn 1), rendered and scored; each later turn shows the
model its best layout so far of the previous turn, with that layout's render and feedback, and
samples `--n` refinements (the paper's multi-turn refinement, used at inference). The layout with
the highest reward among all candidates of all turns is exported as a glTF scene, an IDesign scene
graph and a 3D viewer page. Every step is an ordinary stage command (the runner of `recipe run`
executes them, `--plan` prints them), so each intermediate dataset stays on disk to inspect:

    OUTPUT/_config/<stage>.yaml     the stage options (from --config, --set)
    OUTPUT/prompts/                 gen-prompts, when --rooms is a rooms .jsonl or an IDesign folder
    OUTPUT/turn-1/{rollout,render,score}/
    OUTPUT/turn-1/best/             export --best-per room: what turn 2 refines
    OUTPUT/turn-2/...
    OUTPUT/best/                    export of the best candidate per room (+ _viewer.html)
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import typer
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stages.core.errors import UserError

from .options import err_console, print_error
from .recipes.steps import STEPS_MARKER, Step

SECTIONS = ("gen-prompts", "rollout", "render", "score", "export")
OWNED = {"rollout": {"n"}, "export": {"best_per", "candidates"}}
"""Section keys design sets itself (besides input/output/model/turn, which no section may set)."""
CONFIG_DIR = "_config"
LOG = "design.log"


class DesignConfig(BaseModel):
    """Options of `metaspatial design` (flags, or keys of --config FILE.yaml)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, populate_by_name=True)

    model: str
    """The model: a local directory, a hub name, or the served name with rollout.backend openai."""
    rooms: Path
    """Rooms to furnish: a rooms .jsonl file, a folder holding rooms.jsonl, a folder of IDesign
    scene_graph*.json files, or a prompt dataset (gen-prompts output)."""
    output: Path
    """Output folder: every intermediate dataset and the final export (OUTPUT/best)."""
    n: int = Field(default=8, ge=1)
    """Layouts sampled per room in turn 1, and refinements of the best in each later turn."""
    turns: int = Field(default=2, ge=1)
    """Turns: 1 samples only; each further turn refines the previous turn's best layout per room."""
    max_rooms: int | None = Field(default=None, ge=1)
    """Furnish only the first N rooms."""
    gen_prompts: dict[str, Any] = Field(default_factory=dict, alias="gen-prompts")
    """gen-prompts options (template, image_size, ...)."""
    rollout: dict[str, Any] = Field(default_factory=dict)
    """rollout options: backend (transformers, vllm, openai), base_url, temperature, guided, max_new_tokens, ..."""
    render: dict[str, Any] = Field(default_factory=dict)
    """render options (views, size, assets, ...)."""
    score: dict[str, Any] = Field(default_factory=dict)
    """score options (preset, judge, ...)."""
    export: dict[str, Any] = Field(default_factory=dict)
    """export options (assets)."""

    def section(self, stage: str) -> dict[str, Any]:
        return dict(getattr(self, stage.replace("-", "_")))


def rooms_source(rooms: Path) -> tuple[str, Path] | None:
    """(gen-prompts source, its input) for rooms to turn into prompts; None for a prompt dataset."""
    if rooms.is_file() and rooms.suffix == ".jsonl":
        return "jsonl", rooms
    if rooms.is_dir() and (rooms / "rooms.jsonl").is_file():
        return "jsonl", rooms / "rooms.jsonl"
    if rooms.is_dir() and next(rooms.rglob("scene_graph*.json"), None) is not None:
        return "idesign", rooms
    if rooms.is_dir() and any(p.suffix in (".parquet", ".jsonl") for p in rooms.iterdir()):
        return None
    raise UserError(f"--rooms: {rooms} is neither a rooms .jsonl file, a folder with rooms.jsonl, a folder of "
                    "IDesign scene_graph*.json files, nor a prompt dataset")


def load_config(config_file: Path | None, flags: dict[str, Any], sets: list[str]) -> DesignConfig:
    """Flags over --set over the YAML file; every section checked with its stage's Config class."""
    from stages.core.config import load_yaml, validation_message

    from .recipes.spec import apply_overrides, validate_section
    from .registry import config_class

    source = str(config_file or "options")
    values = load_yaml(config_file) if config_file else {}
    apply_overrides(values, sets, source)
    values.update({k: v for k, v in flags.items() if v is not None})
    try:
        cfg = DesignConfig.model_validate(values)
    except ValidationError as err:
        raise UserError(validation_message(err, DesignConfig, source, "design")) from None
    # absolute, so that every step finds its inputs whatever directory it runs in (as recipes do)
    cfg.rooms, cfg.output = cfg.rooms.absolute(), cfg.output.absolute()
    if Path(cfg.model).exists():
        cfg.model = str(Path(cfg.model).absolute())
    for stage in SECTIONS:
        section = cfg.section(stage)
        owned = sorted(OWNED.get(stage, set()) & set(section))
        if owned:
            raise UserError(f"{source}: {stage}.{owned[0]}: set by design (use --n, or leave it out)")
        validate_section(source, stage, section, config_class(stage),
                         {"input": cfg.output, "output": cfg.output, "model": cfg.model, "turn": 1})
    rooms_source(cfg.rooms)
    return cfg


def _stage(cfg: DesignConfig, stage: str, name: str, source: Path | None, output: Path, *extra: str) -> Step:
    args = [stage, "--config", str(cfg.output / CONFIG_DIR / f"{stage}.yaml")]
    args += ["--input", str(source)] if source is not None else []
    return Step(name, (*args, "--output", str(output), *extra), output, "dataset")


def build_steps(cfg: DesignConfig) -> list[Step]:
    """gen-prompts (if needed), then rollout → render → score per turn, the best per room between
    turns, and the final export of the best candidate of all turns."""
    steps: list[Step] = []
    found = rooms_source(cfg.rooms)
    prompts = cfg.rooms
    if found is not None:
        prompts = cfg.output / "prompts"
        steps.append(_stage(cfg, "gen-prompts", "prompts", None, prompts, "--source", found[0], "--input", str(found[1])))
    source, picks = prompts, []
    for turn in range(1, cfg.turns + 1):
        base = cfg.output / f"turn-{turn}"
        limit = ("--max-rows", str(cfg.max_rooms)) if turn == 1 and cfg.max_rooms else ()
        steps.append(_stage(cfg, "rollout", f"turn-{turn}/rollout", source, base / "rollout", "--model", cfg.model,
                            "--turn", str(turn), "--n", str(cfg.n), *limit))
        steps.append(_stage(cfg, "render", f"turn-{turn}/render", base / "rollout", base / "render"))
        steps.append(_stage(cfg, "score", f"turn-{turn}/score", base / "render", base / "score"))
        if turn < cfg.turns:
            steps.append(_stage(cfg, "export", f"turn-{turn}/best", base / "score", base / "best", "--best-per", "room"))
            source = base / "best"
            picks.append(str(source))
    candidates = ("--candidates", ",".join(picks)) if picks else ()
    steps.append(_stage(cfg, "export", "best", cfg.output / f"turn-{cfg.turns}" / "score", cfg.output / "best",
                        "--best-per", "room", *candidates))
    return steps


def config_files(cfg: DesignConfig) -> dict[Path, str]:
    sections = {stage: cfg.section(stage) for stage in SECTIONS}
    if cfg.n == 1:  # one sample: decode greedily unless a temperature is given
        sections["rollout"].setdefault("temperature", 0.0)
    return {cfg.output / CONFIG_DIR / f"{stage}.yaml":
            yaml.safe_dump(section, sort_keys=False) if section else "{}\n" for stage, section in sections.items()}


def plan_script(cfg: DesignConfig, origin: str) -> str:
    """The design as a bash script, in `recipe plan`'s format: config files, then one command per step."""
    lines = ["#!/usr/bin/env bash", f"# Generated by: {origin}",
             "# The same steps `metaspatial design` executes; complete stage outputs are skipped on re-runs.",
             "set -euo pipefail", f"mkdir -p {shlex.quote(str(cfg.output / CONFIG_DIR))}"]
    for path, text in config_files(cfg).items():
        lines += [f"cat > {shlex.quote(str(path))} <<'YAML'", text.rstrip("\n"), "YAML"]
    lines.append(STEPS_MARKER)
    lines += [step.command_line() for step in build_steps(cfg)]
    return "\n".join(lines) + "\n"


def run(cfg: DesignConfig) -> Path:
    """Run every incomplete step; returns the final export dataset."""
    from .recipes.runner import execute_steps

    for path, text in config_files(cfg).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
    steps = build_steps(cfg)
    execute_steps(steps, cfg.output / LOG)
    return steps[-1].output


def summary(best: Path) -> str:
    from stages.core import dataset as ds

    lines = [f"{'room':30} {'reward':>8} {'turn':>4}  scene"]
    for row in ds.read_rows(best):
        lines.append(f"{str(row.get('room_id'))[:30]:30} {row['reward']:8.3f} {row.get('turn') or 1:>4}  {best / row['glb']}")
    return "\n".join(lines + [f"3D viewer: {best / '_viewer.html'}"])


def register(app: typer.Typer) -> None:
    @app.command("design", rich_help_panel="Tools")
    def design_command(
        model: str = typer.Option(None, "--model", help="Model directory, hub name, or served model name."),
        rooms: Path = typer.Option(None, "--rooms", help="Rooms .jsonl, folder with rooms.jsonl, IDesign folder, "
                                   "or prompt dataset."),
        output: Path = typer.Option(None, "--output", help="Output folder (intermediate datasets and OUTPUT/best)."),
        n: int = typer.Option(None, "--n", help="Layouts per room in turn 1, refinements per later turn (default 8)."),
        turns: int = typer.Option(None, "--turns", help="Turns: 1 samples only, more refine the best (default 2)."),
        max_rooms: int = typer.Option(None, "--max-rooms", help="Furnish only the first N rooms."),
        config_file: Path = typer.Option(None, "--config", help="YAML with these options and gen-prompts/rollout/"
                                         "render/score/export sections (flags win)."),
        set_: list[str] = typer.Option([], "--set", help="Override an entry, e.g. --set rollout.backend=openai "
                                       "(the value is read as YAML)."),
        plan: bool = typer.Option(False, "--plan", help="Print the steps as a bash script instead of running them."),
    ) -> None:
        """Furnish rooms with a model: sample layouts, refine the best over turns, export glTF + a 3D viewer."""
        from .recipes.runner import StepFailed

        flags = {"model": model, "rooms": rooms, "output": output, "n": n, "turns": turns, "max_rooms": max_rooms}
        try:
            cfg = load_config(config_file, flags, set_)
            if plan:
                given = {**flags, "config": config_file}
                origin = shlex.join(["metaspatial", "design", *[a for k, v in given.items() if v is not None
                                                                for a in (f"--{k.replace('_', '-')}", str(v))],
                                     *[a for s in set_ for a in ("--set", s)]])
                typer.echo(plan_script(cfg, origin), nl=False)
                return
            best = run(cfg)
            err_console.print(summary(best), highlight=False)
        except UserError as err:
            print_error(err)
            raise typer.Exit(2) from None
        except StepFailed as err:
            print_error(f"{err}\n  Fix the cause shown above and run the same command again: complete steps are "
                        "skipped.", "design stopped")
            raise typer.Exit(err.code) from None
