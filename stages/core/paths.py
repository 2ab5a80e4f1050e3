"""Paths read from untrusted data stay inside the folder they belong to.

A dataset names its images by paths relative to its own directory (`_images/…`); an asset library
is a folder the user named. A row could name `/etc/passwd`, `../../secret` or a symlink leading
out, and a stage that opened it would upload or copy a file the user never meant to share. Every
path read from a dataset goes through `confined`, which resolves it (symlinks included) and
refuses anything outside the root, naming where the path came from.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from .errors import UserError


def escapes(root: Path, ref: Any) -> str | None:
    """Why `ref` (a path relative to `root`) may not be read, or None when it resolves inside."""
    text = str(ref)
    if not text or "\0" in text:
        return "is empty" if not text else "holds a NUL byte"
    if Path(text).is_absolute() or PurePosixPath(text).is_absolute() or Path(text).drive:
        return "is an absolute path; paths in a dataset are relative to its directory"
    base = Path(root).resolve()
    real = (base / text).resolve()
    if not real.is_relative_to(base):
        return f"resolves outside {root} (to {real})"
    return None


def confined(root: Path, ref: Any, where: str) -> Path:
    """The file `ref` names inside `root`, resolved; a UserError naming `where` if it leads outside."""
    problem = escapes(root, ref)
    if problem is not None:
        raise UserError(f"{where}: {str(ref)[:200]!r} {problem}")
    return (Path(root).resolve() / str(ref)).resolve()
