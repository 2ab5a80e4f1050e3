"""Export layouts as glTF scenes (.glb) and IDesign scene graphs, for Blender, game engines and the web.

Reads a rollout, render or score dataset (columns `scene`, `response`, `room_x/y/z`) and writes,
per row or per room (`--best-per room`: the highest `reward` of each `room_id`, over `--input` and
any `--candidates`), `_scenes/<id>-<hash>/scene.glb` (room shell + one node per object, named by its id,
metres, y-up; reward and per-object scores in `extras`) and `_scenes/<id>-<hash>/scene_graph.json` (the
layout as an IDesign scene graph). Adds columns `glb`, `idesign`, `objects_exported`, `not_placed`;
when every shard is done, `_viewer.html` shows the rooms in 3D in any browser, offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from stages.core.columns import EXPORT_FIELDS
from stages.core.config import OptionalFolder, StageConfig
from stages.core.errors import UserError
from stages.core.stage import Context, Stage, console, run_stage

COLUMNS = EXPORT_FIELDS


class Config(StageConfig):
    best_per: Literal["room"] | None = None
    """`room`: export only the highest-reward row of each room (rows need `room_id` and `reward`); default: every row."""
    candidates: list[Path] = Field(default_factory=list)
    """With --best-per room: more datasets whose rows compete with --input's (e.g. earlier turns)."""
    assets: OptionalFolder = None
    """Folder of real meshes (GLB/OBJ/PLY…) named by object id, category or kind, matched as `render` does;
    an unreadable file falls back to the procedural mesh (named in the node's extras)."""

    @model_validator(mode="after")
    def _candidates_need_best(self) -> Config:
        if self.candidates and self.best_per is None:
            raise ValueError("--candidates only makes sense with --best-per room")
        return self


def run(cfg: Config) -> Path:
    """Validate every row (and the assets folder) before writing, then export this shard's rows."""
    from .rows import select_rows
    from .viewer import write_dataset_page
    from .work import Exporter

    if not isinstance(cfg, Config):
        raise UserError("export: expected an export.Config")
    if cfg.input is None:
        raise UserError("export: --input is required (a rollout, render or score dataset directory)")
    rows, schema = select_rows(cfg.input, cfg.candidates, cfg.best_per)
    if cfg.assets is not None:
        from stages.core.render.assets import index_folder

        index_folder(cfg.assets)
    kept = [f for f in schema if f.name not in {c.name for c in COLUMNS}]

    def make_processor(cfg: Config, ctx: Context):
        exporter = Exporter(cfg.output, cfg.assets, by_room=cfg.best_per == "room")

        def process(batch):
            out = []
            for row in batch:
                out.append(exporter.export(dict(row)))
                ctx.advance(1)
            return out

        return process

    stage = Stage(name="export", config_class=Config, adds=[*kept, *COLUMNS], make_processor=make_processor,
                  source_rows=lambda _: rows, unit="rows")
    out = run_stage(stage, cfg)
    page = write_dataset_page(out)
    if page is not None:
        console.print(f"export: 3D viewer: {page}")
    return out
