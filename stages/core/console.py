"""The consoles every command prints through (rich), made for logs as much as for terminals.

Rich wraps lines at 80 columns when it does not write to a terminal, which cut the output paths of
Slurm and recipe logs in two (`…/train-00000-of` / `-00001.parquet`). In a log, lines are never
wrapped and tables get a wide page; on a terminal rich's own width applies.
"""

from __future__ import annotations

import os
import time

from rich.console import Console

LOG_WIDTH = 200  # columns of a table printed to a log (no terminal to fit; wide enough for the eval table)


def make_console(stderr: bool = True) -> Console:
    console = Console(stderr=stderr, soft_wrap=True)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = LOG_WIDTH
    return console


def duration(seconds: float) -> str:
    """`45 s`, `3 min 20 s`, `2 h 05 min`: an ETA a person reads at a glance."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def eta(elapsed: float, done: float, total: float) -> str:
    """Time left at the average rate so far (`?` before anything is done)."""
    return duration(elapsed / done * (total - done)) if done > 0 else "?"


class Meter:
    """Progress lines that a log keeps: `rollout: 64/96 samples, 2.1 samples/s, 1,234 tokens/s, ETA 15 s`.
    A terminal's progress bar moves too seldom and a log has none, so work that comes in batches
    says how far it is: at most one line every `every` seconds (the caller prints its own summary)."""

    def __init__(self, name: str, total: float, unit: str, every: float = 10.0, console: Console | None = None):
        self.name, self.total, self.unit, self.every = name, total, unit, every
        self.console = console or make_console()
        self.start = self.last = time.monotonic()
        self.done = self.tokens = 0.0

    def add(self, done: float, tokens: int = 0) -> None:
        """Count `done` more units (and `tokens` generated); print a line if one is due."""
        self.done += done
        self.tokens += tokens
        now = time.monotonic()
        if now - self.last >= self.every and self.done < self.total:  # the caller sums up the end
            self.last = now
            elapsed = max(now - self.start, 1e-9)
            rate = f", {self.tokens / elapsed:,.0f} tokens/s" if self.tokens else ""
            self.console.print(f"{self.name}: {self.done:g}/{self.total:g} {self.unit}, {self.done / elapsed:.2f} "
                               f"{self.unit}/s{rate}, ETA {eta(elapsed, self.done, self.total)}", highlight=False)
