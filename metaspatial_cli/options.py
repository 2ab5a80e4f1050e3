"""Build a Typer command from a stage's config class, so flags, YAML keys and manifest agree.

Every field of the config becomes a `--kebab-case` flag whose help is the field's docstring.
Values come, in order of precedence, from the flags, then `--config FILE.yaml`, then the class
defaults; the merged mapping is validated by the config class before anything runs.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Optional

import typer
from pydantic import BaseModel
from rich.markup import escape

from stages.core.config import build_config, load_yaml
from stages.core.console import make_console
from stages.core.errors import UserError

err_console = make_console()


def print_error(message: object, head: str = "error") -> None:
    """One error line on stderr. The message is printed as text, never as markup: it may quote a
    server's reply, a path or a model's output (`[/]` would crash the line, `[redacted]` vanish)."""
    err_console.print(f"[bold red]{head}:[/] {escape(str(message))}", highlight=False)


def _flag_type(annotation: Any) -> type:
    """The type Typer parses a flag as; pydantic does the real conversion and validation."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if annotation in (bool, int, float):
        return annotation
    return str


def _origin(annotation: Any) -> Any:
    """`list` for `list[str] | None`, `dict` for `dict[str, Any]`, ..."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    return typing.get_origin(annotation)


def _is_list(annotation: Any) -> bool:
    return _origin(annotation) in (list, tuple)


def _help(name: str, field: Any, output_required: bool) -> str:
    text = (field.description or "").strip()
    if name == "output" and output_required:
        return text + " (required)"
    if typing.get_origin(field.annotation) is Literal:
        text += f" One of: {', '.join(map(str, typing.get_args(field.annotation)))}."
    if not field.is_required() and field.default_factory is None and field.default not in (None, ""):
        default = field.default
        if isinstance(default, (list, tuple)):
            default = ",".join(map(str, default))
        text += f" (default: {default})"
    return text


def cli_values(config_cls: type[BaseModel], flags: dict[str, Any]) -> dict[str, Any]:
    """Flags the user actually gave; a list-typed flag may be repeated and each value comma-separated."""
    values = {}
    for name, value in flags.items():
        if value is None or (isinstance(value, (list, tuple)) and not value):
            continue
        if _is_list(config_cls.model_fields[name].annotation):
            parts = [value] if isinstance(value, str) else value
            value = [v.strip() for part in parts for v in part.split(",") if v.strip()]
        values[name] = value
    return values


def add_config_command(app: typer.Typer, name: str, config_cls: type[BaseModel], run: Callable[[Any], Any],
                       help: str, rich_help_panel: str | None = None, output_required: bool = True) -> None:
    """Register `name` on `app`: one flag per config field plus `--config FILE.yaml`. A mapping field
    (a section of another stage's options) is set in the --config file only."""
    params = [inspect.Parameter(
        "config_file", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],  # noqa: UP045
        default=typer.Option(None, "--config", help="YAML file with this stage's options; keys are the flag "
                             "names with underscores (flags given on the command line win)."))]
    for fname, field in config_cls.model_fields.items():
        if _origin(field.annotation) is dict:
            continue
        flag = "--" + fname.replace("_", "-")
        ftype = _flag_type(field.annotation)
        decls = [f"{flag}/--no-{fname.replace('_', '-')}"] if ftype is bool else [flag]
        annotation = Optional[list[str]] if _is_list(field.annotation) else Optional[ftype]  # noqa: UP045
        params.append(inspect.Parameter(
            fname, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
            default=typer.Option(None, *decls, help=_help(fname, field, output_required), show_default=False)))

    def command(**kwargs: Any) -> None:
        config_file = kwargs.pop("config_file")
        try:
            values = load_yaml(config_file) if config_file else {}
            values.update(cli_values(config_cls, kwargs))
            if output_required and "output" in config_cls.model_fields and values.get("output") in (None, ""):
                raise UserError("--output: required (where to write; or `output:` in the --config file)")
            cfg = build_config(config_cls, values, source=str(config_file or "options"))
            run(cfg)
        except UserError as err:
            print_error(err)
            raise typer.Exit(2) from None

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = help
    app.command(name, help=help, rich_help_panel=rich_help_panel)(command)
