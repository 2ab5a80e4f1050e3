"""Render each row's layout: a top-down plan and perspective views of the room, as PNGs.

Input rows need `response`, `scene`, `room_x`, `room_y` and `room_z` (a rollout dataset). The
answer is parsed with the shared parser (`stages.core.answer`); objects it left out or placed
unusably are listed on the pictures, and an answer with nothing drawable renders the empty room
with a "no valid layout" mark. Adds `layout` (JSON {id: [x, y, z]} of the valid placements),
`parse_error` and one image column per view (`render_topdown`, `render_perspective`,
`render_corner_ne`, …; paths relative to the dataset).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Literal

import pyarrow as pa
from pydantic import Field, field_validator

from stages.core import dataset as ds
from stages.core import rows
from stages.core.columns import RENDER_FIELDS, render_column
from stages.core.config import StageConfig
from stages.core.errors import UserError
from stages.core.render import VIEWS, check_views
from stages.core.stage import Context, Stage, run_stage

from .work import ROW_FIELDS, Job, WorkerPool

NEEDS = list(ROW_FIELDS)


class Config(StageConfig):
    views: list[str] = ["topdown", "perspective"]
    """Views to draw, comma-separated: topdown (2D plan with legend), perspective (from above the
    south side), corner-sw, corner-se, corner-ne, corner-nw (from above that corner)."""
    size: int = Field(default=512, ge=64, le=4096)
    """Side of the square images, in pixels."""
    backend: Literal["pyrender", "open3d"] = "pyrender"
    """3D rasteriser: pyrender (OpenGL/EGL, the default: fastest measured) or open3d (the open3d extra)."""
    assets: Path | None = None
    """Folder of real meshes (GLB/OBJ/PLY…) named by object id, category or kind, used instead of the
    procedural furniture; files must lie inside the folder."""
    labels: bool = True
    """Draw the objects' legend numbers on the 3D views (the plan always numbers them)."""
    workers: int = Field(default=1, ge=1, le=256)
    """Render in N worker processes, each with its own persistent renderer."""

    RUN_FIELDS: ClassVar[tuple[str, ...]] = (*StageConfig.RUN_FIELDS, "workers")

    @field_validator("views")
    @classmethod
    def _known_views(cls, views: list[str]) -> list[str]:
        try:
            return check_views(views)
        except UserError as err:
            raise ValueError(f"{err} (known: {', '.join(VIEWS)})") from None

    @field_validator("assets")
    @classmethod
    def _assets_folder(cls, folder: Path | None) -> Path | None:
        if folder is not None and not folder.is_dir():
            raise ValueError(f"{folder}: no such directory")
        return folder


def columns(cfg: Config) -> list[pa.Field]:
    return [*RENDER_FIELDS, *[pa.field(render_column(v), pa.string()) for v in cfg.views]]


def check_rows(cfg: Config) -> None:
    """Every row's scene, room size and response must be valid before anything is written; errors
    name the row and field (`rows.check`; each distinct scene is parsed once)."""
    if cfg.input is None:
        raise UserError("render: --input is required (a rollout dataset directory)")
    table = ds.read_table(cfg.input)
    ds.require_columns(table, NEEDS, cfg.input)
    table = table.select(NEEDS)
    if cfg.max_rows:
        table = table.slice(0, cfg.max_rows)
    rows.check(table.to_pylist(), NEEDS, cfg.input)
    if cfg.assets is not None:
        from stages.core.render.assets import index_folder

        index_folder(cfg.assets)


@contextlib.contextmanager
def _stage(cfg: Config) -> Iterator[Stage]:
    """The stage, with its worker pool started on first use and always shut down."""
    job = Job(output=str(cfg.output), views=tuple(cfg.views), pixels=cfg.size, backend=cfg.backend,
              assets=str(cfg.assets.resolve()) if cfg.assets else None, labels=cfg.labels)
    pool = WorkerPool(job, cfg.workers)

    def make_processor(cfg: Config, ctx: Context):
        batch = max(1, min(16, cfg.chunk_size // (2 * cfg.workers)))
        return lambda rows: [{**row, **out} for row, out in zip(rows, pool.map(rows, batch, ctx.advance),
                                                                 strict=True)]

    try:
        yield Stage(name="render", config_class=Config, adds=columns(cfg), make_processor=make_processor,
                    needs=NEEDS, unit="rows")
    finally:
        pool.close()


def run(cfg: Config) -> Path:
    if not isinstance(cfg, Config):
        raise UserError("render: expected a render.Config")
    check_rows(cfg)
    with _stage(cfg) as stage:
        return run_stage(stage, cfg)
