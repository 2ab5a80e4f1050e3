"""Rasterisers: draw a shaded triangle soup through a camera into an RGB array.

Both backends draw the baked colours unlit (see scene3d), with 4x multisampling, and keep one
offscreen context for the life of the process: creating a GL context costs far more than a frame.

* `pyrender`: OpenGL through EGL (Mesa llvmpipe on a CPU, the NVIDIA driver on GPU servers).
  Needs `PYOPENGL_PLATFORM=egl` (set here if unset) and the system EGL libraries.
* `open3d`: Open3D's Filament renderer (the `open3d` extra). On a CPU it runs on Mesa through
  EGL with `EGL_PLATFORM=surfaceless` (set here if unset); Open3D 0.20's CPU mode goes through
  Vulkan instead and was measured 10-30x slower, so use 0.19 there.
"""

from __future__ import annotations

import os
from typing import Protocol

import numpy as np

from ..errors import UserError
from .camera import Camera
from .primitives import Soup

BACKGROUND = (246, 246, 244)
BACKENDS = ("pyrender", "open3d")


class Backend(Protocol):
    name: str

    def draw(self, soup: Soup, camera: Camera) -> np.ndarray: ...

    def close(self) -> None: ...


class PyrenderBackend:
    name = "pyrender"

    def __init__(self, pixels: int) -> None:
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
        try:
            import pyrender
        except ImportError as err:
            raise UserError(f"--backend pyrender: cannot import pyrender ({err})") from None
        self._pyrender = pyrender
        try:
            self._renderer = pyrender.OffscreenRenderer(pixels, pixels)
        except Exception as err:  # EGL/GL failures come as many exception types
            raise UserError(f"--backend pyrender: cannot create an offscreen OpenGL context ({err}). "
                            "Install the EGL libraries (Debian: libegl1 libegl-mesa0 libgl1-mesa-dri) "
                            "and set PYOPENGL_PLATFORM=egl") from None
        self._material = pyrender.MetallicRoughnessMaterial(baseColorFactor=(1.0, 1.0, 1.0, 1.0),
                                                            doubleSided=True)

    def draw(self, soup: Soup, camera: Camera) -> np.ndarray:
        pr = self._pyrender
        scene = pr.Scene(bg_color=np.array([*BACKGROUND, 255]) / 255.0, ambient_light=(1.0, 1.0, 1.0))
        colours = np.repeat(soup.colours, 3, axis=0)
        prim = pr.Primitive(positions=soup.tris.reshape(-1, 3), color_0=colours, material=self._material,
                            mode=pr.constants.GLTF.TRIANGLES)
        scene.add(pr.Mesh([prim]))
        cam = pr.PerspectiveCamera(yfov=camera.yfov, aspectRatio=1.0, znear=camera.znear, zfar=camera.zfar)
        scene.add(cam, pose=camera.pose)
        rgb, _ = self._renderer.render(scene, flags=pr.RenderFlags.FLAT)
        return rgb

    def close(self) -> None:
        self._renderer.delete()


class Open3dBackend:
    name = "open3d"

    def __init__(self, pixels: int) -> None:
        os.environ.setdefault("EGL_PLATFORM", "surfaceless")
        try:
            import open3d as o3d
            from open3d.visualization import rendering
        except ImportError as err:
            raise UserError(f"--backend open3d: cannot import open3d ({err}); install the extra: "
                            "pip install 'metaspatial[open3d]'") from None
        self._o3d = o3d
        self._rendering = rendering
        try:
            self._renderer = rendering.OffscreenRenderer(pixels, pixels)
        except Exception as err:
            raise UserError(f"--backend open3d: cannot create an offscreen renderer ({err})") from None
        # Open3D darkens the background colour as if it were sRGB going to linear; pre-brighten it.
        self._renderer.scene.set_background((np.array([*BACKGROUND, 255]) / 255.0) ** (1 / 2.2))
        self._renderer.scene.view.set_post_processing(False)
        self._renderer.scene.view.set_antialiasing(True)
        self._material = rendering.MaterialRecord()
        self._material.shader = "defaultUnlit"
        self._pixels = pixels

    def draw(self, soup: Soup, camera: Camera) -> np.ndarray:
        o3d = self._o3d
        mesh = o3d.geometry.TriangleMesh()
        mesh.vertices = o3d.utility.Vector3dVector(soup.tris.reshape(-1, 3).astype(np.float64))
        mesh.triangles = o3d.utility.Vector3iVector(np.arange(len(soup.tris) * 3, dtype=np.int32).reshape(-1, 3))
        # With post-processing off, the unlit shader writes vertex colours as they are (sRGB in, sRGB out).
        mesh.vertex_colors = o3d.utility.Vector3dVector(np.repeat(soup.colours, 3, axis=0) / 255.0)
        scene = self._renderer.scene
        scene.clear_geometry()
        scene.add_geometry("room", mesh, self._material)
        scene.camera.set_projection(np.degrees(camera.yfov), 1.0, camera.znear, camera.zfar,
                                    self._rendering.Camera.FovType.Vertical)
        up = camera.pose[:3, 1]
        scene.camera.look_at(camera.target, camera.eye, up)
        return np.asarray(self._renderer.render_to_image())[..., :3].copy()

    def close(self) -> None:
        del self._renderer


def make_backend(name: str, pixels: int) -> Backend:
    if name == "pyrender":
        return PyrenderBackend(pixels)
    if name == "open3d":
        return Open3dBackend(pixels)
    raise UserError(f"--backend {name}: unknown backend (one of {', '.join(BACKENDS)})")
