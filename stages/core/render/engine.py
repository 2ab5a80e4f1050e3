"""The render engine's entry point: one `Renderer` per process, any number of pictures.

    renderer = Renderer(pixels=512, backend="pyrender")
    images = renderer.render(arrangement, ["topdown", "perspective"])   # {view: PIL image}

The plan view needs no GPU context; the 3D backend is created on the first 3D view and kept, so a
worker pays for the context once. `Renderer` is what the `render` stage's workers hold, what
`gen-prompts` and `report` call.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from ..errors import UserError
from .assets import AssetLibrary
from .backends import Backend, make_backend
from .camera import PLAN_VIEWS, VIEWS, fit_camera
from .layout import Arrangement
from .overlay import annotate
from .plan import draw_plan
from .scene3d import frame_points, view_soup


def check_views(views: list[str]) -> list[str]:
    """The views, validated (each known, none twice); a UserError names the bad one."""
    unknown = [v for v in views if v not in VIEWS]
    if unknown:
        raise UserError(f"--views: unknown view {unknown[0]!r} (one of {', '.join(VIEWS)})")
    if len(set(views)) != len(views) or not views:
        raise UserError("--views: give each view once, at least one")
    return views


class Renderer:
    def __init__(self, pixels: int = 512, backend: str = "pyrender", assets: Path | None = None,
                 labels: bool = True) -> None:
        self.pixels = pixels
        self.backend_name = backend
        self.assets = AssetLibrary(assets) if assets is not None else None
        self.labels = labels
        self._backend: Backend | None = None

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = make_backend(self.backend_name, self.pixels)
        return self._backend

    def render(self, arr: Arrangement, views: list[str]) -> dict[str, Image.Image]:
        return {view: self.render_view(arr, view) for view in views}

    def render_view(self, arr: Arrangement, view: str) -> Image.Image:
        if view in PLAN_VIEWS:
            return draw_plan(arr, self.pixels)
        camera = fit_camera(view, frame_points(arr))
        pixels = self.backend.draw(view_soup(arr, view, self.assets), camera)
        image = Image.fromarray(pixels)
        return annotate(image, arr, camera, view) if self.labels else image

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
