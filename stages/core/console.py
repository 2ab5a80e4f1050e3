"""The consoles every command prints through (rich), made for logs as much as for terminals.

Rich wraps lines at 80 columns when it does not write to a terminal, which cut the output paths of
Slurm and recipe logs in two (`…/train-00000-of` / `-00001.parquet`). In a log, lines are never
wrapped and tables get a wide page; on a terminal rich's own width applies.
"""

from __future__ import annotations

import os

from rich.console import Console

LOG_WIDTH = 200  # columns of a table printed to a log (no terminal to fit; wide enough for the eval table)


def make_console(stderr: bool = True) -> Console:
    console = Console(stderr=stderr, soft_wrap=True)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = LOG_WIDTH
    return console
