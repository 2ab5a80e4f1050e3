"""A shard's rows, checked in one streaming pass, then processed chunk by chunk with checkpoints.

`check_rows` reads the shard's rows once before anything is written: every row passes the stage's
row check, rows that must stay together are checked to be adjacent, and the chunk spans are fixed
(cut only between such runs). `process` then reads the rows again, a chunk at a time, and commits
each processed chunk under `_chunks/`, so a killed job resumes where it stopped and memory holds one
chunk, not the dataset.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from . import dataset as ds
from . import stream
from .config import StageConfig
from .console import make_console
from .errors import UserError

console = make_console()
Rows = list[dict[str, Any]]
Processor = Callable[[Rows], Rows]
Span = tuple[int, int]


@dataclass
class Context:
    """What a processor may need besides its rows: the config, directories, a progress hook."""

    config: StageConfig
    input_dir: Path | None
    output_dir: Path
    advance: Callable[[float], None] = lambda n: None
    """Moves the progress bar by that many units (a fraction when a batch of samples moves it by its share)."""

    def image_path(self, rel: str) -> Path:
        path = self.output_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


def shard_bounds(n_rows: int, num_shards: int, shard_index: int) -> Span:
    """Contiguous, deterministic split: shard i gets rows [i*n/N, (i+1)*n/N)."""
    return n_rows * shard_index // num_shards, n_rows * (shard_index + 1) // num_shards


def shard_rows(source: stream.Source, total: int, num_shards: int, shard_index: int, together: str | None) -> Span:
    """This shard's rows; with `together`, both ends move forward to the start of a run of equal values,
    so a run is never split between two shards."""
    lo, hi = shard_bounds(total, num_shards, shard_index)
    if together is None or together not in source.columns:
        return lo, hi
    return _run_start(source, lo, total, together), _run_start(source, hi, total, together)


def _run_start(source: stream.Source, at: int, total: int, column: str) -> int:
    """The first row at or after `at` whose `column` differs from the row before it (or `total`)."""
    if at == 0 or at >= total:
        return at
    position, previous = at - 1, None
    for chunk in source.chunks(at - 1, total, 256, [column]):
        for row in chunk:
            if position >= at and row[column] != previous:
                return position
            previous, position = row[column], position + 1
    return total


def check_rows(stage: Any, cfg: StageConfig, source: stream.Source, lo: int, hi: int) -> list[Span]:
    """Pass every row of [lo, hi) through the stage's row check and return the chunk spans."""
    check = stage.make_row_check(cfg) if stage.make_row_check is not None else None
    key = stage.together if stage.together in source.columns else None
    spans: list[Span] = []
    seen: set[Any] = set()
    start, index, last = lo, lo, object()
    for chunk in source.chunks(lo, hi, cfg.chunk_size):
        for row in chunk:
            value = row[key] if key else None
            if key and value != last:
                if value in seen:
                    raise UserError(f"{_where(cfg, index)}, field {key}: rows of {key} {value!r} are not adjacent "
                                    f"({stage.name} needs each {key}'s rows together); sort the input by {key}")
                seen.add(value)
            if index - start >= cfg.chunk_size and (not key or value != last):
                spans.append((start, index))
                start = index
            if check is not None:
                check(row, index)
            last, index = value, index + 1
    if index > start:
        spans.append((start, index))
    return spans


def _where(cfg: StageConfig, index: int) -> str:
    return f"{cfg.input}, row {index}" if cfg.input is not None else f"row {index}"


def _span_rows(source: stream.Source, spans: list[Span], size: int) -> Iterator[Rows]:
    """The rows of consecutive spans, one list per span, read as one stream."""
    if not spans:
        return
    pending: Rows = []
    reader = source.chunks(spans[0][0], spans[-1][1], size)
    for lo, hi in spans:
        while len(pending) < hi - lo:
            pending.extend(next(reader))
        yield pending[: hi - lo]
        pending = pending[hi - lo:]


def process(stage: Any, cfg: StageConfig, source: stream.Source, spans: list[Span], schema: pa.Schema,
            part: str) -> list[Path]:
    """Process each span not yet committed and return the chunk files of the part, in order. The
    processor is built only if some chunk still needs work, and closed however the run ends."""
    chunk_dir = cfg.output / ds.CHUNKS / part
    meta = {"chunk_size": cfg.chunk_size, "rows": sum(hi - lo for lo, hi in spans), "chunks": len(spans)}
    if cfg.overwrite or (chunk_dir.exists() and ds.read_manifest_like(chunk_dir / "_meta.json") != meta):
        shutil.rmtree(chunk_dir, ignore_errors=True)
    chunk_dir.mkdir(parents=True, exist_ok=True)
    ds.write_json(chunk_dir / "_meta.json", meta)
    paths = [chunk_dir / f"chunk-{n:06d}.{cfg.format}" for n in range(len(spans))]
    done = sum(p.exists() for p in paths)
    if done:
        console.print(f"{stage.name}: resuming {part}: {done} of {len(spans)} chunks already done")
    ctx = Context(cfg, cfg.input, cfg.output)
    processor: Processor | None = None
    try:
        with _progress(stage, meta["rows"]) as (progress, task):
            ctx.advance = lambda k: progress.update(task, advance=k)
            for path, rows in zip(paths, _span_rows(source, spans, cfg.chunk_size), strict=True):
                before = progress.tasks[0].completed
                if not path.exists():
                    if processor is None:
                        processor = stage.make_processor(cfg, ctx)
                    out_rows = processor(rows)
                    if cfg.input is not None:
                        _link_images(out_rows, cfg.input, cfg.output)
                    ds.write_rows(path, out_rows, schema, cfg.format)
                progress.update(task, completed=before + len(rows))
    finally:
        close = getattr(processor, "close", None)
        if close is not None:
            close()
    return paths


def _link_images(rows: Rows, src: Path, dst: Path) -> None:
    for row in rows:
        for value in row.values():
            if ds.is_image_ref(value):
                ds.link_image(src, dst, value)


@contextlib.contextmanager
def _progress(stage: Any, total: int) -> Iterator[tuple[Progress, TaskID]]:
    """A rich progress bar on a terminal; silent in logs (Slurm), where chunk lines suffice."""
    progress = Progress(TextColumn(f"[bold]{stage.name}[/]"), BarColumn(), MofNCompleteColumn(),
                        TextColumn(stage.unit), TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                        disable=not console.is_terminal)
    with progress:
        yield progress, progress.add_task(stage.name, total=total)
