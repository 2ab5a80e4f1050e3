"""Running a stage: check, pick this shard's rows, process them in checkpointed chunks, commit.

A row stage is one `Stage` value: its name, its config class, the input columns it needs, the
columns it adds, a check of one input row, and a factory that builds the chunk processor (loading a
model, say) only when there is work. `run_stage` gives every stage the same behaviour: the output
checked and locked, the input streamed (`stream.py`) and every row of the shard checked before
anything is written, a deterministic 1/N of the rows per shard, resume by default, chunk checkpoints
(`chunks.py`), atomic commits, a progress bar and a manifest.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa

from . import chunks, lock, stream
from . import dataset as ds
from .chunks import Context, Processor, Rows, shard_bounds
from .config import StageConfig
from .console import make_console
from .errors import UserError

console = make_console()
__all__ = ["Context", "Processor", "Rows", "Stage", "console", "run_stage", "shard_bounds"]


@dataclass
class Stage:
    """A row stage, in one shape: its config, the columns it needs and adds, a check every input row
    passes before anything is written, and a processor of chunks of rows."""

    name: str
    config_class: type[StageConfig]
    adds: list[pa.Field] | Callable[[Any], list[pa.Field]]
    """Columns added, or a function of the config giving them (render's depend on --views)."""
    make_processor: Callable[[Any, Context], Processor]
    """Builds the processor of a chunk, only once some chunk needs work (it may load a model or start
    workers). A processor with a `close()` method is closed when the run ends, however it ends."""
    needs: list[str] | Callable[[Any], list[str]] = field(default_factory=list)
    """Input columns the stage requires, or a function of the config giving them."""
    check_input: Callable[[Any, list[str]], None] | None = None
    """Checks that need only the config and the input's column names (run before any row is read)."""
    make_row_check: Callable[[Any], Callable[[dict[str, Any], int], None]] | None = None
    """Builds the check of one input row (and its index in the dataset), run on every row of the shard
    in a streaming pass before anything is written; it raises a UserError naming the row and field."""
    together: str | None = None
    """A column whose rows must be adjacent in the input (score's turns of one trajectory): it is
    checked, and chunks and shards are cut only between different values."""
    drops: Callable[[list[str]], list[str]] | None = None
    """The input columns (given all of them) not carried to the output (a new turn drops last turn's scores)."""
    source_rows: Callable[[Any], Rows | stream.Source] | None = None
    """For stages without an input dataset (gen-prompts): the rows to shard and process."""
    unit: str = "rows"

    def columns_added(self, cfg: Any) -> list[pa.Field]:
        return self.adds(cfg) if callable(self.adds) else list(self.adds)

    def columns_needed(self, cfg: Any) -> list[str]:
        return self.needs(cfg) if callable(self.needs) else list(self.needs)

    def output_schema(self, cfg: Any, input_schema: pa.Schema | None) -> pa.Schema:
        adds = self.columns_added(cfg)
        names = [f.name for f in input_schema or []]
        own = {f.name for f in adds} | set(self.drops(names) if self.drops else [])
        kept = [f for f in (input_schema or []) if f.name not in own]
        return pa.schema(kept + adds)


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


def open_input(stage: Stage, cfg: StageConfig) -> stream.Source:
    """The stage's input as a stream, its columns checked against what the stage needs."""
    if stage.source_rows is not None:
        rows = stage.source_rows(cfg)
        return stream.RowList(rows) if isinstance(rows, list) else rows
    directory = cfg.required_input(stage.name)
    reader = stream.DatasetReader(directory)
    ds.require_columns(reader.columns, stage.columns_needed(cfg), directory)
    if stage.check_input is not None:
        stage.check_input(cfg, reader.columns)
    return reader


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
    """Run `stage` for this process's shard, reading only the shard's rows, a chunk at a time.
    Returns the output directory."""
    out = cfg.output
    ds.check_output(out, [cfg.input] if cfg.input is not None else [])
    source = open_input(stage, cfg)
    total = min(source.num_rows, cfg.max_rows or source.num_rows)
    lo, hi = chunks.shard_rows(source, total, cfg.num_shards, cfg.shard_index, stage.together)
    source.verify(lo, hi)
    spans = chunks.check_rows(stage, cfg, source, lo, hi)
    schema = stage.output_schema(cfg, source.schema)
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
        start = time.time()
        chunk_files = chunks.process(stage, cfg, source, spans, schema, part)
        rows = stream.write_part(out / part, chunk_files, schema, cfg.format)
        shutil.rmtree(out / ds.CHUNKS / part, ignore_errors=True)
        _remove_if_empty(out / ds.CHUNKS)
        info = {"rows": rows, "input_rows": hi - lo, "seconds": round(time.time() - start, 3),
                "sha256": ds.sha256_file(out / part), "host": socket.gethostname(),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        ds.update_manifest(out, header, part, info)
    console.print(f"[green]{stage.name}[/]: wrote {rows} rows to {out / part} in {info['seconds']:.1f} s")
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
