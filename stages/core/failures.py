"""Rows that say nothing about the model: its sample or its judgement failed for reasons outside it.

A request the server could not answer (rollout `finish_reason = error`: a prompt longer than the
server's context, a dead server) scores 0 like an empty answer, and a failed judgement leaves a
reward made without the judge the run asked for (`judge_error` set, whatever the fallback). Taught
to the model as a bad answer, a server fault becomes training signal. Such rows are kept in the
datasets, marked by those columns, and left out of training and of eval means, with counts. A cut
answer (`finish_reason = length`) is the model's own doing and stays a sample.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

SAMPLE, JUDGE = "sample failed", "judgement failed"


def failure(row: dict[str, Any]) -> str | None:
    """Why `row` carries no signal about the model (`sample failed` / `judgement failed`), else None."""
    if row.get("finish_reason") == "error":
        return SAMPLE
    if row.get("judge_error"):
        return JUDGE
    return None


def count_failures(rows: list[dict[str, Any]]) -> Counter[str]:
    """How many rows failed, by kind."""
    return Counter(kind for row in rows if (kind := failure(row)) is not None)


def describe(counts: Counter[str]) -> str:
    """`3 sample failed, 1 judgement failed` (empty when nothing failed)."""
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
