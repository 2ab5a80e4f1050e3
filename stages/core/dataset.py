"""Datasets on disk: a directory of Parquet or JSONL parts, a manifest and an `_images/` folder.

    DIR/train-00000-of-00004.parquet  rows (or .jsonl; same columns)
    DIR/_manifest.json                stage, config, inputs, code version, per-part rows and timings
    DIR/_images/...                   PNGs referenced by relative path from DIR
    DIR/_chunks/...                   checkpoints of parts still being written (gone when complete)

Names starting with `_` or `.` are ignored by pyarrow, so `pandas.read_parquet(DIR)` reads just
the rows. Parts are named `train-...` (Hugging Face's shard naming) because
`datasets.load_dataset("parquet", data_dir=DIR)` reads every file under DIR unless file names carry
a split name; with it, it reads exactly the parts (as split "train"; our own `split` column is a
row field). Image files have hexadecimal names for the same reason. Every file is written under a temporary name and renamed into place when complete, so a
reader (or a re-run) never sees half a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import UserError
from .paths import escapes

MANIFEST = "_manifest.json"
IMAGES = "_images"
CHUNKS = "_chunks"
PART_RE = re.compile(r"^train-(\d{5})-of-(\d{5})\.(parquet|jsonl)$")


def part_name(index: int, count: int, fmt: str) -> str:
    return f"train-{index:05d}-of-{count:05d}.{fmt}"


def data_files(directory: Path) -> list[Path]:
    """The data files of a dataset directory, in a stable order (hidden and `_` files skipped)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: no such dataset directory")
    files = sorted(p for p in directory.iterdir()
                   if p.is_file() and p.suffix in (".parquet", ".jsonl") and not p.name.startswith(("_", ".")))
    if not files:
        raise UserError(f"{directory}: no .parquet or .jsonl files in this directory")
    kinds = {p.suffix for p in files}
    if len(kinds) > 1:
        raise UserError(f"{directory}: mixes .parquet and .jsonl files; keep one format per dataset")
    return files


def iter_jsonl(path: Path, skip: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line after the first `skip` of them (which are not
    parsed, so a shard pays only for its own lines); errors name the file and line."""
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            if skip:
                skip -= 1
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as err:
                raise UserError(f"{path}, line {lineno}: not valid JSON ({err})") from None
            if not isinstance(row, dict):
                raise UserError(f"{path}, line {lineno}: expected a JSON object, got {type(row).__name__}")
            yield lineno, row


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [row for _, row in iter_jsonl(path)]


def sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def recorded_sha256(manifest: Any, part: str) -> str | None:
    """The checksum a manifest recorded for `part`, if any."""
    parts = manifest.get("parts") if isinstance(manifest, dict) else None
    info = parts.get(part) if isinstance(parts, dict) else None
    value = info.get("sha256") if isinstance(info, dict) else None
    return value if isinstance(value, str) else None


def verify_parts(directory: Path, files: list[Path]) -> None:
    """Check each file against the checksum its dataset's manifest recorded when it was written, so
    a damaged or swapped part stops the run instead of being read as data. A dataset without a
    manifest (written by pandas, say) has nothing to check against and is read as it is."""
    manifest = read_manifest(directory)
    for path in files:
        expected = recorded_sha256(manifest, path.name)
        if expected and sha256_file(path) != expected:
            raise UserError(f"{path}: its contents do not match the sha256 recorded in {MANIFEST} (damaged or "
                            f"changed after it was written); re-create it, or delete {MANIFEST} to read it as it is")


def read_table(directory: Path) -> pa.Table:
    """All rows of a dataset as one Arrow table (parts concatenated in name order)."""
    files = data_files(directory)
    verify_parts(directory, files)
    if files[0].suffix == ".parquet":
        try:
            tables = [pq.read_table(f) for f in files]
            return pa.concat_tables(tables, promote_options="permissive")
        except (pa.ArrowInvalid, OSError) as err:
            raise UserError(f"{directory}: cannot read Parquet parts: {err}") from None
    rows = [row for f in files for row in _read_jsonl(f)]
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise UserError(f"{directory}: JSONL rows have inconsistent types: {err}") from None


def read_rows(directory: Path) -> list[dict[str, Any]]:
    return read_table(directory).to_pylist()


def require_columns(table_or_names: pa.Table | list[str], needed: list[str], directory: Path) -> None:
    names = table_or_names.column_names if isinstance(table_or_names, pa.Table) else table_or_names
    missing = [c for c in needed if c not in names]
    if missing:
        raise UserError(f"{directory}: missing column(s) {', '.join(missing)} "
                        f"(this stage needs {', '.join(needed)}; found {', '.join(names)})")


def check_output(output: Path, inputs: list[Path]) -> None:
    """Refuse an --output that cannot be a directory of its own: a file, a symbolic link (writes
    would land wherever it points), or an input or a folder holding one (--overwrite would replace it)."""
    if output.is_symlink():
        raise UserError(f"--output: {output} is a symbolic link; give the directory itself")
    if output.exists() and not output.is_dir():
        raise UserError(f"--output: {output} is a file, not a directory; choose another --output")
    for source in inputs:
        if source.exists() and source.resolve().is_relative_to(output.resolve()):
            raise UserError(f"--output: {output} is or holds an input of this run ({source}); "
                            "write to another directory")


def fingerprint(source: Path) -> str:
    """A sha256 of an input's contents: its parts' recorded checksums for a dataset with a manifest
    (verified when the parts are read), else the bytes of its data files (or of every file under a
    folder that holds none, like a folder of scene graphs). A run resumes only from the same input."""
    source = Path(source)
    if source.is_file():
        return sha256_file(source)
    digest = hashlib.sha256()
    manifest = read_manifest(source)
    try:
        files = data_files(source)
    except UserError:
        files = sorted(p for p in source.rglob("*") if p.is_file())
    for path in files:
        sha = recorded_sha256(manifest, path.name) if path.parent == source else None
        digest.update(f"{path.relative_to(source)}\0{sha or sha256_file(path)}\n".encode())
    return digest.hexdigest()


# ---------------------------------------------------------------- atomic writes


def tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{socket.gethostname()}-{os.getpid()}")


def write_rows(path: Path, rows: list[dict[str, Any]], schema: pa.Schema | None, fmt: str) -> None:
    """Write rows to `path` atomically (temp file + rename), as Parquet or JSONL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(path)
    try:
        if fmt == "parquet":
            table = pa.Table.from_pylist(rows, schema=schema) if schema is not None else pa.Table.from_pylist(rows)
            pq.write_table(table, tmp)
        else:
            with open(tmp, "wb") as fh:
                for row in rows:
                    fh.write(orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY, default=str))
                    fh.write(b"\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, data: Any) -> None:
    write_bytes(path, (json.dumps(data, indent=2, sort_keys=False, default=str) + "\n").encode())


def write_bytes(path: Path, data: bytes) -> None:
    """Write a file atomically (temp file + rename): a reader never sees half of it."""
    tmp = tmp_path(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def manifest_lock(directory: Path) -> Iterator[None]:
    """Serialise manifest updates of the processes writing parts of one dataset."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".manifest.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_manifest(directory: Path) -> dict[str, Any] | None:
    path = Path(directory) / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON ({err})") from None


def update_manifest(directory: Path, header: dict[str, Any], part: str | None = None,
                    part_info: dict[str, Any] | None = None,
                    check: Callable[[dict[str, Any] | None], None] | None = None) -> dict[str, Any]:
    """Merge `header` and one part's record into `_manifest.json` under a file lock. `check` sees the
    manifest as it is first, under the same lock, and may refuse (raise) before anything changes."""
    with manifest_lock(directory):
        manifest = read_manifest(directory)
        if check is not None:
            check(manifest)
        manifest = manifest or {}
        manifest.update(header)
        parts = manifest.setdefault("parts", {})
        if part is not None:
            parts[part] = part_info or {}
        manifest["parts"] = dict(sorted(parts.items()))
        manifest["rows"] = sum(p.get("rows", 0) for p in manifest["parts"].values())
        manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_json(directory / MANIFEST, manifest)
        return manifest


def link_image(src_dir: Path, dst_dir: Path, rel: str) -> None:
    """Make `dst_dir/rel` the same image as `src_dir/rel` (hard link, else copy).

    Each stage keeps its input columns; image columns hold paths relative to the dataset, so
    the images an output row refers to must live in the output dataset too.
    """
    dst = dst_dir / rel
    if dst.exists() or escapes(src_dir, rel) is not None:  # a symlink leading out of the input is not copied
        return
    src = src_dir / rel
    if not src.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(dst)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def is_image_ref(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(IMAGES + "/") and ".." not in value.split("/")


def read_part(path: Path) -> list[dict[str, Any]]:
    """Rows of one part or chunk file."""
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    return _read_jsonl(path)


def read_manifest_like(path: Path) -> Any:
    """A small JSON side file, or None if missing or unreadable (it is then rebuilt)."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
