"""How a score run's judging went, and redoing only the rows whose judge failed (`--retry-failed`).

A judge that fails for a row (HTTP 500, timeout, a malformed reply) leaves `judge_error` set. A
re-run normally skips the complete part; `--retry-failed` re-scores the output instead, keeping
every row whose judge did not fail as it is and judging the failed ones again. Rows are matched
by their input columns (everything but the score stage's own), so the order of parts and shards
does not matter.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from stages.core import dataset as ds
from stages.core.errors import UserError
from stages.core.stage import console
from stages.core.stream import DatasetReader

REASONS_SHOWN = 3


def row_key(row: dict[str, Any], own_columns: set[str]) -> bytes:
    """A row's identity: its input columns (the score stage's own columns left out)."""
    return orjson.dumps({k: v for k, v in row.items() if k not in own_columns}, option=orjson.OPT_SORT_KEYS,
                        default=str)


def kept_rows(cfg: Any, own_columns: set[str]) -> dict[bytes, dict[str, Any]]:
    """The rows of an existing output whose judge did not fail, by identity (empty if there is none).
    The output must have been written with the same settings: kept and new scores must agree."""
    manifest = ds.read_manifest(cfg.output) if cfg.output.exists() else None
    if manifest is None or not ds.data_files(cfg.output):
        return {}
    old, new = manifest.get("result_config", {}), cfg.result_fields()
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if manifest.get("stage") != "score" or diff:
        raise UserError(f"--retry-failed: {cfg.output} was not written by score with these settings "
                        f"({', '.join(diff) or 'stage ' + str(manifest.get('stage'))} differ); "
                        "pass the settings of the run that wrote it")
    return {row_key(r, own_columns): r for r in ds.read_rows(cfg.output) if not r.get("judge_error")}


def reason(error: str) -> str:
    """The kind of a judge error: `HTTP 500`, `timed out`, `malformed reply`, … (details dropped)."""
    text = error.split(": ", 1)[1] if ": " in error else error  # drop the judge's name
    return text.split(":", 1)[0].split(" (", 1)[0].split(";", 1)[0].strip()


def summary(output: Path, judge: str, counts: Counter[str], kept: int) -> str:
    """One line: rows judged, from the cache, fell back (and to what), and the top failure reasons."""
    reader = DatasetReader(output)  # read as a stream, two columns: the output may not fit in memory
    judged, failed = 0, []
    for chunk in reader.chunks(0, reader.num_rows, 4096, ["judge", "judge_error"]):
        judged += sum(r["judge"] is not None for r in chunk)
        failed += [r for r in chunk if r["judge"] is not None and r["judge_error"]]
    fell_back = Counter(r["judge"].removesuffix(" (fallback)") for r in failed if r["judge"].endswith("(fallback)"))
    parts = [f"score: judge {judge}: {judged - len(failed)} of {judged} row(s) judged"]
    if counts:
        parts.append(f"{counts['cached']} from the cache, {counts['asked']} asked")
    if kept:
        parts.append(f"{kept} kept from the previous run (--retry-failed)")
    if failed:
        how = ", ".join(f"{n} to {name}" for name, n in fell_back.items()) or "none to another judge"
        dropped = len(failed) - sum(fell_back.values())
        top = Counter(reason(r["judge_error"]) for r in failed).most_common(REASONS_SHOWN)
        parts.append(f"{len(failed)} failed ({how}; {dropped} without a judge term); why: "
                     + ", ".join(f"{text} x{n}" for text, n in top)
                     + " (score --retry-failed judges them again)")
    return "; ".join(parts)


def print_summary(output: Path, judge: str, counts: Counter[str], kept: int) -> None:
    console.print(summary(output, judge, counts, kept), highlight=False, markup=False)
