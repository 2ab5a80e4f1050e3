"""Datasets as streams: read a row range chunk by chunk, write a part from its chunk files.

A stage never holds more of a dataset than a chunk. `DatasetReader` knows the row count and schema
from Parquet footers alone (JSONL needs one pass over the lines), reads any contiguous row range
(a shard's) by opening only the row groups or lines inside it, and turns rows into Python objects one
chunk at a time. `write_part` concatenates a part's committed chunk files into the part, in Parquet row
groups of `ROW_GROUP_ROWS` rows, so the next stage can stream it and pandas still reads it whole.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from . import dataset as ds
from .errors import UserError

Rows = list[dict[str, Any]]
ROW_GROUP_ROWS = 1024
"""Rows per Parquet row group of a written part: a reader holds one row group's columns at a time."""
SCHEMA_SAMPLE_ROWS = 4096


class Source(Protocol):
    """What a stage reads: a known number of rows, read by range, a chunk of Python dicts at a time."""

    num_rows: int
    schema: pa.Schema | None

    @property
    def columns(self) -> list[str]: ...

    def chunks(self, lo: int, hi: int, size: int, columns: list[str] | None = None) -> Iterator[Rows]: ...

    def verify(self, lo: int, hi: int) -> None: ...


class RowList:
    """Rows already in memory (a generator's rooms, say) as a Source."""

    def __init__(self, rows: Rows) -> None:
        self.rows, self.num_rows = rows, len(rows)
        self.schema: pa.Schema | None = None
        self.columns: list[str] = []

    def chunks(self, lo: int, hi: int, size: int, columns: list[str] | None = None) -> Iterator[Rows]:
        for start in range(lo, min(hi, self.num_rows), size):
            yield self.rows[start:min(start + size, hi)]

    def verify(self, lo: int, hi: int) -> None:
        """Nothing to verify: the rows were made in this process."""


class DatasetReader:
    """The rows of a dataset directory (parts in name order), read by range without loading it."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.files = ds.data_files(self.directory)
        self.parquet = self.files[0].suffix == ".parquet"
        counts, schemas = zip(*(self._footer(f) for f in self.files), strict=True)
        self.file_rows = list(counts)
        try:
            self.schema = pa.unify_schemas(list(schemas), promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
            raise UserError(f"{self.directory}: parts have incompatible columns: {err}") from None
        self.num_rows = sum(self.file_rows)

    @property
    def columns(self) -> list[str]:
        return self.schema.names

    def _footer(self, path: Path) -> tuple[int, pa.Schema]:
        if self.parquet:
            try:
                meta = pq.read_metadata(path)
                return meta.num_rows, meta.schema.to_arrow_schema()
            except (pa.ArrowInvalid, OSError) as err:
                raise UserError(f"{path}: not a readable Parquet file ({err})") from None
        count, schema = 0, None
        for rows in _jsonl_batches(path, 0, None, SCHEMA_SAMPLE_ROWS):
            count += len(rows)
            schema = _unify(schema, _infer_schema(rows, path))
        return count, schema or pa.schema([])

    def verify(self, lo: int, hi: int) -> None:
        """Check the parts holding rows [lo, hi) against their recorded checksums."""
        ds.verify_parts(self.directory, [f for f, _, _ in self._spans(lo, hi)])

    def _spans(self, lo: int, hi: int) -> Iterator[tuple[Path, int, int]]:
        """(file, first row, end row) within each file for the dataset rows [lo, hi)."""
        start = 0
        for path, count in zip(self.files, self.file_rows, strict=True):
            a, b = max(lo, start), min(hi, start + count)
            if a < b:
                yield path, a - start, b - start
            start += count

    def chunks(self, lo: int, hi: int, size: int, columns: list[str] | None = None) -> Iterator[Rows]:
        """Rows [lo, hi) as lists of Python dicts of at most `size` rows, all columns unless named."""
        hi = min(hi, self.num_rows)
        schema = self.schema if columns is None else pa.schema([self.schema.field(c) for c in columns])
        pending: Rows = []
        for path, a, b in self._spans(lo, hi):
            batches = self._parquet_rows(path, a, b, size, schema) if self.parquet else \
                (_conform_rows(rows, schema, path) for rows in _jsonl_batches(path, a, b, size))
            for rows in batches:
                pending.extend(rows)
                while len(pending) >= size:
                    yield pending[:size]
                    pending = pending[size:]
        if pending:
            yield pending

    def _parquet_rows(self, path: Path, a: int, b: int, size: int, schema: pa.Schema) -> Iterator[Rows]:
        """Rows [a, b) of one Parquet file, opening only the row groups that hold them."""
        try:
            file = pq.ParquetFile(path)
            groups, first, start = [], None, 0
            for g in range(file.metadata.num_row_groups):
                n = file.metadata.row_group(g).num_rows
                if start + n > a and start < b:
                    groups.append(g)
                    first = start if first is None else first
                start += n
            at = first or 0
            present = [c for c in schema.names if c in file.schema_arrow.names]
            for batch in file.iter_batches(batch_size=size, row_groups=groups, columns=present):
                lo, hi = max(a - at, 0), min(b - at, batch.num_rows)
                at += batch.num_rows
                if lo < hi:
                    yield _conform(pa.Table.from_batches([batch.slice(lo, hi - lo)]), schema).to_pylist()
                if at >= b:
                    return
        except (pa.ArrowInvalid, OSError) as err:
            raise UserError(f"{path}: cannot read this Parquet part ({err})") from None


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with exactly `schema`'s columns and types (a column a part lacks is null)."""
    arrays = [table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(len(table), f.type)
              for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _conform_rows(rows: Rows, schema: pa.Schema, path: Path) -> Rows:
    try:
        return pa.Table.from_pylist(rows, schema=schema).to_pylist()
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise UserError(f"{path}: JSONL rows have inconsistent types: {err}") from None


def _infer_schema(rows: Rows, path: Path) -> pa.Schema:
    try:
        return pa.Table.from_pylist(rows).schema
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise UserError(f"{path}: JSONL rows have inconsistent types: {err}") from None


def _unify(a: pa.Schema | None, b: pa.Schema) -> pa.Schema:
    return b if a is None else pa.unify_schemas([a, b], promote_options="permissive")


def _jsonl_batches(path: Path, a: int, b: int | None, size: int) -> Iterator[Rows]:
    """Objects number a..b-1 (blank lines not counted) of a JSONL file, `size` at a time."""
    rows: Rows = []
    for index, (_, row) in enumerate(ds.iter_jsonl(path, skip=a), start=a):
        if b is not None and index >= b:
            break
        rows.append(row)
        if len(rows) == size:
            yield rows
            rows = []
    if rows:
        yield rows


# ---------------------------------------------------------------- writing a part


def write_part(path: Path, chunks: list[Path], schema: pa.Schema, fmt: str) -> int:
    """Concatenate committed chunk files into the part at `path` (atomically); returns its row count."""
    tmp = ds.tmp_path(path)
    rows = 0
    try:
        if fmt == "parquet":
            with pq.ParquetWriter(tmp, schema) as writer:
                pending: list[pa.Table] = []
                for chunk in chunks:
                    pending.append(pq.read_table(chunk, schema=schema))
                    if sum(len(t) for t in pending) >= ROW_GROUP_ROWS:
                        rows += _flush(writer, pending)
                rows += _flush(writer, pending)
        else:
            with open(tmp, "wb") as out:
                for chunk in chunks:
                    with open(chunk, "rb") as src:
                        shutil.copyfileobj(src, out)
                    rows += _count_lines(chunk)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return rows


def _flush(writer: pq.ParquetWriter, pending: list[pa.Table]) -> int:
    if not pending:
        return 0
    table = pa.concat_tables(pending)
    writer.write_table(table, row_group_size=max(len(table), 1))
    pending.clear()
    return len(table)


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())

