"""The `metaspatial` command: a thin dispatcher over the stages and the tools around them.

Each stage lives in `stages/<name>` and exposes `Config` (its options) and `run(config)`.
The commands are built from those config classes (see options.py); nothing about a stage's
options is written twice.
"""

from __future__ import annotations

import importlib
import os

import typer

from .options import add_config_command
from .registry import STAGES

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

# Tool modules each add their own command(s) through `register(app)`.
TOOLS = ("metaspatial_cli.inspect_cmd", "metaspatial_cli.make_model", "metaspatial_cli.pretrain",
         "metaspatial_cli.evaluate", "metaspatial_cli.report", "metaspatial_cli.design")

# Stage commands, generated from each stage's `Config` class; the help is the module docstring's first line.
for _name, _module in STAGES.items():
    _stage = importlib.import_module(_module)
    add_config_command(app, _name, _stage.Config, _stage.run, (_stage.__doc__ or "").strip().splitlines()[0],
                       rich_help_panel="Stages")

from . import recipe  # noqa: E402

app.add_typer(recipe.app, name="recipe", rich_help_panel="Tools")
for _module in TOOLS:
    importlib.import_module(_module).register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
