"""The `metaspatial` command: a thin dispatcher over the stages and the tools around them.

Each stage lives in `stages/<name>` and exposes `Config` (its options) and `run(config)`.
The commands are built from those config classes (see options.py); nothing about a stage's
options is written twice.
"""

from __future__ import annotations

import importlib
import os

import typer

from .options import add_config_command, err_console

# Keep CPU runs fast and offline by default; users on GPUs override as they like.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

app = typer.Typer(
    name="metaspatial",
    help="Train vision-language models with RL to lay out 3D rooms. Stages read and write datasets "
    "(directories of Parquet/JSONL parts); `recipe run` chains them.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

# command name -> (module, one-line help)
STAGES = {
    "gen-prompts": ("stages.gen_prompts", "Build a prompt dataset from rooms (synthetic, JSONL, IDesign, Hugging Face)."),
    "rollout": ("stages.rollout", "Sample layouts from a vision-language model (transformers, vLLM, OpenAI API)."),
    "render": ("stages.render", "Render each row's layout: a top-down plan and perspective views."),
    "score": ("stages.score", "Score layouts: format, collisions, constraints, out-of-bounds and a judge."),
    "update": ("stages.update", "Update the policy with GRPO (TRL) from a scored rollout dataset."),
}
TOOLS = {
    "make-model": ("metaspatial_cli.make_model", "Build a tiny random VLM locally (no model hub needed)."),
    "eval": ("metaspatial_cli.evaluate", "Evaluate one or more models on held-out rooms; print one table."),
    "report": ("metaspatial_cli.report", "Write an HTML report of a run: curves, tables, render galleries."),
}


def _not_built(name: str):
    def command() -> None:
        err_console.print(f"[bold red]error:[/] `metaspatial {name}` is not built yet in this version.")
        raise typer.Exit(2)

    return command


def _register_stage(name: str, module: str, help: str) -> None:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name != module:
            raise
        mod = None
    if not (hasattr(mod, "Config") and hasattr(mod, "run")):
        app.command(name, help=f"{help} (not built yet)", rich_help_panel="Stages")(_not_built(name))
        return
    add_config_command(app, name, mod.Config, mod.run, mod.__doc__.strip().splitlines()[0] if mod.__doc__ else help,
                       rich_help_panel="Stages")


def _register_tool(name: str, module: str, help: str) -> None:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name != module:
            raise
        app.command(name, help=f"{help} (not built yet)", rich_help_panel="Tools")(_not_built(name))
        return
    mod.register(app)


for _name, (_module, _help) in STAGES.items():
    _register_stage(_name, _module, _help)

from . import inspect_cmd, recipe  # noqa: E402

app.add_typer(recipe.app, name="recipe", rich_help_panel="Tools")
inspect_cmd.register(app)
for _name, (_module, _help) in TOOLS.items():
    _register_tool(_name, _module, _help)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
