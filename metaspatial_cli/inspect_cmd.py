"""`metaspatial inspect DIR`: a summary of any dataset of any stage (or your own files)."""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import typer
from rich.table import Table

from stages.core import dataset as ds
from stages.core.columns import SCENE_COLUMNS
from stages.core.console import make_console
from stages.core.errors import UserError
from stages.core.scene import Scene

from .options import print_error

console = make_console(stderr=False)
# Columns whose value counts are worth showing when they have few distinct values.
CATEGORY_LIMIT = 20


def summarise(directory: Path) -> None:
    table = ds.read_table(directory)
    manifest = ds.read_manifest(directory) or {}
    files = ds.data_files(directory)
    images = list((directory / ds.IMAGES).rglob("*.png")) if (directory / ds.IMAGES).is_dir() else []
    head = Table.grid(padding=(0, 2))
    head.add_row("dataset", str(directory))
    head.add_row("stage", str(manifest.get("stage", "(no manifest)")))
    head.add_row("rows", f"{table.num_rows:,}")
    head.add_row("parts", f"{len(files)} × {files[0].suffix[1:]}"
                 + (f" (of {manifest['num_shards']} shards)" if "num_shards" in manifest else ""))
    head.add_row("images", f"{len(images):,} PNG files in {ds.IMAGES}/")
    if manifest.get("code_version"):
        head.add_row("code", manifest["code_version"])
    if (directory / ds.CHUNKS).is_dir():
        head.add_row("unfinished", ", ".join(p.name for p in (directory / ds.CHUNKS).iterdir()) + " (re-run to resume)")
    console.print(head)

    cols = Table(title="columns", title_justify="left")
    for name in ("column", "type", "nulls", "summary"):
        cols.add_column(name)
    for name in table.column_names:
        column = table.column(name)
        cols.add_row(name, str(column.type), str(column.null_count), _summary(column))
    console.print(cols)
    if set(SCENE_COLUMNS) <= set(table.column_names) and "num_objects" not in table.column_names:
        counts = []
        for row in table.select(SCENE_COLUMNS).to_pylist():
            with contextlib.suppress(UserError):  # a summary: an invalid scene is just not counted
                counts.append(len(Scene.from_row(row).objects))
        if counts:
            console.print(f"objects per scene: min {min(counts)}, mean {sum(counts) / len(counts):.1f}, max {max(counts)}")


def _summary(column: pa.ChunkedArray) -> str:
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        valid = pc.drop_null(column)
        if len(valid) == 0:
            return ""
        mm = pc.min_max(valid)
        mean = pc.mean(valid).as_py()
        return f"min {mm['min'].as_py():.4g}  mean {mean:.4g}  max {mm['max'].as_py():.4g}"
    if pa.types.is_boolean(kind):
        return f"true {pc.sum(column).as_py() or 0}"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        values = [v for v in column.to_pylist() if v is not None]
        counts = Counter(values)
        if counts and len(counts) <= CATEGORY_LIMIT and not any(len(v) > 40 for v in counts):
            return ", ".join(f"{k} {n}" for k, n in counts.most_common())
        if values:
            lengths = [len(v) for v in values]
            return f"{len(counts):,} distinct; length {min(lengths)}–{max(lengths)}"
    return ""


def register(app: typer.Typer) -> None:
    @app.command("inspect", rich_help_panel="Tools")
    def inspect(directory: Path = typer.Argument(..., help="A dataset directory (any stage's output).")) -> None:
        """Summarise a dataset: rows, parts, images, columns with types and value summaries."""
        try:
            summarise(directory)
        except UserError as err:
            print_error(err)
            raise typer.Exit(2) from None
