"""Running a stage: validate, pick this shard's rows, process them in checkpointed chunks, commit.

A stage is a `Stage` value: its name, its config class, the input columns it needs, the columns it
adds, and a factory that builds the row processor (loading a model, say) only when there is work.
`run_stage` gives every stage the same behaviour: validation before anything is written, a
deterministic 1/N of the rows per shard, resume by default, chunk checkpoints, atomic commits, a
progress bar and a manifest.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
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
from . import lock
from .config import StageConfig
from .console import make_console
from .errors import UserError

console = make_console()

Rows = list[dict[str, Any]]
Processor = Callable[[Rows], Rows]


@dataclass
class Context:
    """What a processor may need besides its rows: the config, directories, a progress hook."""

    config: StageConfig
    input_dir: Path | None
    output_dir: Path
    advance: Callable[[int], None] = lambda n: None

    def image_path(self, rel: str) -> Path:
        path = self.output_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


@dataclass
class Stage:
    name: str
    config_class: type[StageConfig]
    adds: list[pa.Field]
    make_processor: Callable[[Any, Context], Processor]
    needs: list[str] = field(default_factory=list)
    """Input columns the stage requires."""
    source_rows: Callable[[Any], Rows] | None = None
    """For stages without an input dataset (gen-prompts): the rows to shard and process."""
    drops: list[str] = field(default_factory=list)
    """Input columns not carried to the output (e.g. last turn's scores when sampling a new turn)."""
    unit: str = "rows"

    def output_schema(self, input_schema: pa.Schema | None) -> pa.Schema:
        own = {f.name for f in self.adds} | set(self.drops)
        kept = [f for f in (input_schema or []) if f.name not in own]
        return pa.schema(kept + list(self.adds))


@cache
def code_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("metaspatial")
    except PackageNotFoundError:
        ver = "unknown"
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{ver}+g{sha}" if sha else ver


def shard_bounds(n_rows: int, num_shards: int, shard_index: int) -> tuple[int, int]:
    """Contiguous, deterministic split: shard i gets rows [i*n/N, (i+1)*n/N)."""
    return n_rows * shard_index // num_shards, n_rows * (shard_index + 1) // num_shards


def _load_input(stage: Stage, cfg: StageConfig) -> tuple[Rows, pa.Schema | None]:
    if stage.source_rows is not None:
        rows = stage.source_rows(cfg)
        return rows[: cfg.max_rows] if cfg.max_rows else rows, None
    if cfg.input is None:
        raise UserError(f"{stage.name}: --input is required (a dataset directory)")
    table = ds.read_table(cfg.input)
    ds.require_columns(table, stage.needs, cfg.input)
    if cfg.max_rows:
        table = table.slice(0, cfg.max_rows)
    return table.to_pylist(), table.schema


def _check_existing_output(stage: Stage, cfg: StageConfig, manifest: dict[str, Any] | None,
                           inputs: list[dict[str, Any]]) -> None:
    """Refuse to resume an output that another stage, other settings or another input made."""
    out = cfg.output
    if manifest is None or cfg.overwrite:
        if out.exists() and cfg.overwrite:
            for p in out.iterdir():
                m = ds.PART_RE.match(p.name)
                if m and int(m.group(2)) != cfg.num_shards:
                    p.unlink()
        return
    if manifest.get("stage") != stage.name:
        raise UserError(f"{out}: holds a '{manifest.get('stage')}' dataset, not '{stage.name}'; "
                        "choose another --output or pass --overwrite")
    old = manifest.get("result_config", {})
    new = cfg.result_fields()
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if diff:
        raise UserError(f"{out}: was written with different settings ({', '.join(diff)}); "
                        "resuming would mix them. Pass --overwrite or choose another --output")
    made_from = [i.get("sha256") for i in manifest.get("inputs", []) if isinstance(i, dict)]
    if any(made_from) and made_from != [i["sha256"] for i in inputs]:
        raise UserError(f"{out}: was made from another input than {cfg.input} (its contents differ); "
                        "resuming would mix them. Pass --overwrite or choose another --output")
    other = [p.name for p in out.iterdir() if (m := ds.PART_RE.match(p.name)) and int(m.group(2)) != cfg.num_shards]
    if other:
        raise UserError(f"{out}: has parts of a run with another --num-shards ({other[0]}, ...); "
                        "pass --overwrite to replace them")


def run_stage(stage: Stage, cfg: StageConfig) -> Path:
    """Run `stage` for this process's shard. Returns the output directory."""
    out = cfg.output
    ds.check_output(out, [cfg.input] if cfg.input is not None else [])
    rows, in_schema = _load_input(stage, cfg)
    schema = stage.output_schema(in_schema)
    part = ds.part_name(cfg.shard_index, cfg.num_shards, cfg.format)
    inputs = _describe_inputs(cfg)
    header = {
        "stage": stage.name,
        "format": cfg.format,
        "num_shards": cfg.num_shards,
        "config": cfg.manifest_dict(),
        "result_config": cfg.result_fields(),
        "inputs": inputs,
        "code_version": code_version(),
        "columns": [f.name for f in schema],
    }
    with lock.hold(out, part):
        manifest = ds.read_manifest(out)
        _check_existing_output(stage, cfg, manifest, inputs)
        if (out / part).exists() and not cfg.overwrite:
            console.print(f"[green]{stage.name}[/]: {out / part} is complete; skipping (pass --overwrite to redo)")
            return out
        ds.update_manifest(out, header, check=lambda now: _check_existing_output(stage, cfg, now, inputs))
        lo, hi = shard_bounds(len(rows), cfg.num_shards, cfg.shard_index)
        my_rows = rows[lo:hi]
        start = time.time()
        produced = _process_in_chunks(stage, cfg, my_rows, schema, part)
        ds.write_rows(out / part, produced, schema, cfg.format)
        shutil.rmtree(out / ds.CHUNKS / part, ignore_errors=True)
        _remove_if_empty(out / ds.CHUNKS)
        info = {"rows": len(produced), "input_rows": len(my_rows), "seconds": round(time.time() - start, 3),
                "sha256": ds.sha256_file(out / part), "host": socket.gethostname(),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        ds.update_manifest(out, header, part, info)
    console.print(f"[green]{stage.name}[/]: wrote {len(produced)} rows to {out / part} "
                  f"in {info['seconds']:.1f} s")
    return out


def _describe_inputs(cfg: StageConfig) -> list[dict[str, Any]]:
    if cfg.input is None:
        return []
    manifest = ds.read_manifest(cfg.input) if cfg.input.is_dir() else None
    manifest = manifest if isinstance(manifest, dict) else {}
    return [{"path": str(cfg.input), "stage": manifest.get("stage"), "rows": manifest.get("rows"),
             "code_version": manifest.get("code_version"), "sha256": ds.fingerprint(cfg.input)}]


def _remove_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):  # not empty: another shard is still writing
        path.rmdir()


def _process_in_chunks(stage: Stage, cfg: StageConfig, rows: Rows, schema: pa.Schema, part: str) -> Rows:
    """Process rows chunk by chunk; each finished chunk is committed under `_chunks/` so a killed
    job resumes where it stopped. The processor is built only if some chunk still needs work."""
    chunk_dir = cfg.output / ds.CHUNKS / part
    meta = {"chunk_size": cfg.chunk_size, "rows": len(rows)}
    if cfg.overwrite or (chunk_dir.exists() and ds.read_manifest_like(chunk_dir / "_meta.json") != meta):
        shutil.rmtree(chunk_dir, ignore_errors=True)
    chunk_dir.mkdir(parents=True, exist_ok=True)
    ds.write_json(chunk_dir / "_meta.json", meta)
    spans = [(i, min(i + cfg.chunk_size, len(rows))) for i in range(0, len(rows), cfg.chunk_size)]
    processor: Processor | None = None
    produced: Rows = []
    done = sum(1 for n in range(len(spans)) if (chunk_dir / f"chunk-{n:06d}.{cfg.format}").exists())
    if done:
        console.print(f"{stage.name}: resuming {part}: {done} of {len(spans)} chunks already done")
    with _progress(stage, len(rows)) as (progress, task):
        for n, (lo, hi) in enumerate(spans):
            path = chunk_dir / f"chunk-{n:06d}.{cfg.format}"
            if path.exists():
                produced.extend(ds.read_part(path))
                progress.update(task, advance=hi - lo)
                continue
            if processor is None:
                ctx = Context(cfg, cfg.input, cfg.output)
                processor = stage.make_processor(cfg, ctx)
            done_before = progress.tasks[0].completed
            ctx.advance = lambda k: progress.update(task, advance=k)
            out_rows = processor(rows[lo:hi])
            if cfg.input is not None:
                _link_images(out_rows, cfg.input, cfg.output)
            ds.write_rows(path, out_rows, schema, cfg.format)
            produced.extend(out_rows)
            progress.update(task, completed=done_before + (hi - lo))
    return produced


def _link_images(rows: Rows, src: Path, dst: Path) -> None:
    for row in rows:
        for value in row.values():
            if ds.is_image_ref(value):
                ds.link_image(src, dst, value)


@contextlib.contextmanager
def _progress(stage: Stage, total: int) -> Iterator[tuple[Progress, TaskID]]:
    """A rich progress bar on a terminal; silent in logs (Slurm), where chunk lines suffice."""
    progress = Progress(TextColumn(f"[bold]{stage.name}[/]"), BarColumn(), MofNCompleteColumn(),
                        TextColumn(stage.unit), TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                        disable=not console.is_terminal)
    with progress:
        yield progress, progress.add_task(stage.name, total=total)
