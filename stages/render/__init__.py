"""Render each row's layout: a top-down plan and perspective views of the room, as PNGs.

Input rows need `response`, `scene`, `room_x`, `room_y` and `room_z` (a rollout dataset). The
answer is parsed with the shared parser (`stages.core.answer`); objects it left out or placed
unusably are listed on the pictures, and an answer with nothing drawable renders the empty room
with a "no valid layout" mark. Adds `layout` (JSON {id: [x, y, z]} of the valid placements),
`parse_error` and one image column per view (`render_topdown`, `render_perspective`,
`render_corner_ne`, …; paths relative to the dataset).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import pyarrow as pa
from pydantic import Field, field_validator

from stages.core import rows
from stages.core.columns import RENDER_FIELDS, render_column
from stages.core.config import OptionalFolder, StageConfig
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
    assets: OptionalFolder = None
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


def columns(cfg: Config) -> list[pa.Field]:
    return [*RENDER_FIELDS, *[pa.field(render_column(v), pa.string()) for v in cfg.views]]


def check_input(cfg: Config, columns: list[str]) -> None:
    if cfg.assets is not None:
        from stages.core.render.assets import index_folder

        index_folder(cfg.assets)


def make_row_check(cfg: Config):
    """Every row's scene, room size and response must be valid before anything is written; errors
    name the row and field (`rows.check`; each distinct scene is parsed once)."""
    return lambda row, index: rows.check([row], NEEDS, cfg.input, index)


class Renderer:
    """The processor: draws a chunk's rows in a pool of workers, each with its own persistent
    renderer, started on first use; the stage framework closes it however the run ends."""

    def __init__(self, cfg: Config, ctx: Context) -> None:
        job = Job(output=str(cfg.output), views=tuple(cfg.views), pixels=cfg.size, backend=cfg.backend,
                  assets=str(cfg.assets.resolve()) if cfg.assets else None, labels=cfg.labels)
        self.pool = WorkerPool(job, cfg.workers)
        self.batch = max(1, min(16, cfg.chunk_size // (2 * cfg.workers)))
        self.ctx = ctx

    def __call__(self, chunk: list[dict]) -> list[dict]:
        drawn = self.pool.map(chunk, self.batch, self.ctx.advance)
        return [{**row, **out} for row, out in zip(chunk, drawn, strict=True)]

    def close(self) -> None:
        self.pool.close()


STAGE = Stage(name="render", config_class=Config, needs=NEEDS, adds=columns, check_input=check_input,
              make_row_check=make_row_check, make_processor=Renderer)


def run(cfg: Config) -> Path:
    if not isinstance(cfg, Config):
        raise UserError("render: expected a render.Config")
    return run_stage(STAGE, cfg)
