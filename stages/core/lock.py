"""One writer per output part: a lock file that a second writer sees, and that dies with its holder.

Two runs writing the same part at once would interleave their chunks and leave a manifest naming
one run's settings. Each writer therefore holds an exclusive `flock` on `DIR/.lock-<part>` while
it works. The kernel releases a flock when its process dies (even by `kill -9`), so a lock left by
a dead process is simply taken over; a live holder makes the second writer stop with a UserError
naming it (pid, host, start time), which the file records for exactly that message.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import UserError


def lock_path(directory: Path, name: str) -> Path:
    # A hidden name: pyarrow, pandas and `datasets` skip it when reading the dataset.
    return Path(directory) / f".lock-{name}"


def _holder_text(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        return f"pid {info['pid']} on {info['host']}, started {info['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _open_locked(path: Path) -> int:
    """Open `path` and take its flock, retrying if the file was replaced meanwhile (a holder that
    finished removes its file; a lock on the removed file would guard nothing)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(f"{path.parent}: {path.name.removeprefix('.lock-')} is being written by "
                            f"{_holder_text(path)}; wait for it to finish, or stop it first") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextlib.contextmanager
def hold(directory: Path, name: str) -> Iterator[None]:
    """Hold the write lock of part `name` of the dataset in `directory` for the block."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    path = lock_path(directory, name)
    fd = _open_locked(path)
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)
