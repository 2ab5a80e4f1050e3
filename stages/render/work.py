"""The render stage's per-row work, and the worker processes that do it.

Each worker process holds one `Renderer` (one GL context, created on first use) for its whole life,
and one writer thread: PNG encoding and writing of a row overlap the rendering of the next row
(zlib releases the GIL). A batch returns only when its files are on disk, so a chunk the stage
runner commits never points at an image still being written.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.core.columns import LAYOUT, PARSE_ERROR, RESPONSE, ROOM_SIZE, SCENE, render_column
from stages.core.render import Arrangement, Renderer
from stages.core.rows import answer
from stages.core.scene import Scene

IMAGE_DIR = "_images/renders"
ROW_FIELDS = (SCENE, RESPONSE, *ROOM_SIZE)


@dataclass(frozen=True)
class Job:
    """Everything a worker needs besides the rows (picklable, sent once per batch)."""

    output: str
    views: tuple[str, ...]
    pixels: int
    backend: str
    assets: str | None
    labels: bool

    def fingerprint(self) -> bytes:
        return json.dumps([self.pixels, self.backend, self.assets, self.labels]).encode()


def arrangement_of(row: dict[str, Any]) -> tuple[Arrangement, dict[str, list[float]], str | None]:
    """The row's picture input, its parsed layout and the parse error (never raises on the response)."""
    scene = Scene.from_row(row)
    parsed = answer(row, scene.ids)
    arr = Arrangement.from_scene(scene, parsed.placements, omitted=parsed.missing, error=parsed.error,
                                 unknown=parsed.unknown)
    layout = {oid: list(pos) for oid, pos in parsed.placements.items()}
    return arr, layout, parsed.error


def image_name(row: dict[str, Any], view: str, job: Job) -> str:
    """A content address: the same scene, answer, view and settings give the same file name."""
    h = hashlib.sha1(job.fingerprint())
    for key in ROW_FIELDS:
        h.update(repr(row.get(key)).encode())
        h.update(b"\0")
    h.update(view.encode())
    return f"{IMAGE_DIR}/{h.hexdigest()[:20]}.png"


class Worker:
    """Renders batches of rows with one persistent renderer and one PNG writer thread."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.renderer = Renderer(job.pixels, job.backend, Path(job.assets) if job.assets else None, job.labels)
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="png-writer")

    def render_batch(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out, pending = [], []
        for row in rows:
            arr, layout, error = arrangement_of(row)
            result: dict[str, Any] = {LAYOUT: json.dumps(layout), PARSE_ERROR: error}
            for view, image in self.renderer.render(arr, list(self.job.views)).items():
                rel = image_name(row, view, self.job)
                result[render_column(view)] = rel
                pending.append(self.writer.submit(_save, image, Path(self.job.output) / rel))
            out.append(result)
        for future in pending:
            future.result()
        return out

    def close(self) -> None:
        self.writer.shutdown(wait=True)
        self.renderer.close()


def _save(image, path: Path) -> None:
    """Write atomically: a reader never sees half a PNG, and two rows sharing a file are safe."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    image.save(tmp, format="PNG", compress_level=1)
    os.replace(tmp, path)


_worker: Worker | None = None


def _init_worker(job: Job) -> None:
    global _worker
    _worker = Worker(job)


def _run_batch(batch: tuple[int, list[dict[str, Any]]]) -> tuple[int, list[dict[str, Any]]]:
    assert _worker is not None
    index, rows = batch
    return index, _worker.render_batch(rows)


class WorkerPool:
    """`workers` processes (spawned: a GL context must not be forked) or, for 1, this process.
    A worker that dies (a driver crash, the OOM killer) fails the run instead of hanging it."""

    def __init__(self, job: Job, workers: int) -> None:
        self.job, self.workers = job, workers
        self._pool: Any = None
        self._local: Worker | None = None

    def map(self, rows: list[dict[str, Any]], batch_size: int, advance) -> list[dict[str, Any]]:
        slim = [{k: row.get(k) for k in ROW_FIELDS} for row in rows]
        batches = [(i, slim[i:i + batch_size]) for i in range(0, len(slim), batch_size)]
        results: dict[int, list[dict[str, Any]]] = {}
        if self.workers == 1:
            if self._local is None:
                self._local = Worker(self.job)
            for index, batch in batches:
                results[index] = self._local.render_batch(batch)
                advance(len(batch))
        else:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_init_worker, initargs=(self.job,))
            for future in as_completed([self._pool.submit(_run_batch, batch) for batch in batches]):
                index, out = future.result()
                results[index] = out
                advance(len(out))
        return [r for index in sorted(results) for r in results[index]]

    def close(self) -> None:
        if self._local is not None:
            self._local.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
