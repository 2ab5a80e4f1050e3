"""Real meshes from a folder (`--assets DIR`), used instead of the procedural furniture.

A file is matched by name, most specific first: the object id (`sofa_2.glb`), its category
(`sofa.obj`), then its drawing kind (`chair.ply`). Formats are whatever trimesh reads (GLB/GLTF,
OBJ, PLY, STL, OFF). Meshes are taken as z-up with their front towards +y; glTF files, which are
y-up with the front towards +z by that format's definition, are turned to match. Each mesh is
stretched to exactly fill the object's size box, so the picture shows the space the scene gives it.

Safety: object ids come from untrusted data, so no path is ever built from them. The folder is
indexed once; an id is only a key into that index, and every indexed file must resolve inside the
folder (symlinks pointing out are refused).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..paths import confined
from .layout import Item
from .palette import KIND_COLOURS
from .primitives import Soup

log = logging.getLogger(__name__)
MESH_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl", ".off")
Y_UP_SUFFIXES = (".glb", ".gltf")
MAX_FACES = 200_000


def index_folder(folder: Path) -> dict[str, Path]:
    """name (lower case, no suffix) -> mesh file, for the mesh files directly in `folder`."""
    root = Path(folder).resolve()
    if not root.is_dir():
        raise UserError(f"--assets {folder}: no such directory")
    index: dict[str, Path] = {}
    for path in sorted(root.iterdir()):
        if path.suffix.lower() not in MESH_SUFFIXES or not path.is_file():
            continue
        real = confined(root, path.name, f"--assets {folder}, file {path.name}")
        index.setdefault(path.stem.lower(), real)
    return index


class AssetLibrary:
    """Meshes of one assets folder, loaded on first use and kept (normalised) for the process."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.index = index_folder(self.folder)
        self._cache: dict[Path, Soup | None] = {}

    def path_for(self, item: Item) -> Path | None:
        for key in (item.id.lower(), item.category, item.kind):
            if key in self.index:
                return self.index[key]
        return None

    def mesh_for(self, item: Item) -> Soup | None:
        """The asset for `item` scaled to its box and centred on it, or None to use the procedural mesh."""
        path = self.path_for(item)
        if path is None:
            return None
        if path not in self._cache:
            self._cache[path] = _load_unit(path, KIND_COLOURS[item.kind])
        unit = self._cache[path]
        if unit is None:
            return None
        size = np.array([item.length, item.width, item.height], np.float32)
        return Soup(unit.tris * size, unit.colours)


def _load_unit(path: Path, fallback: tuple[int, int, int]) -> Soup | None:
    """The mesh fitted into the cube [-0.5, 0.5]^3, or None (logged) if the file is unusable."""
    import trimesh

    try:
        mesh = trimesh.load(path, force="mesh")
    except Exception as err:  # trimesh raises many types for broken files; fall back, say why
        log.warning("asset %s cannot be read (%s); using the procedural mesh", path.name, err)
        return None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0 or len(mesh.faces) > MAX_FACES:
        log.warning("asset %s has no usable triangles (or more than %d); using the procedural mesh",
                    path.name, MAX_FACES)
        return None
    tris = np.asarray(mesh.triangles, np.float64)
    if path.suffix.lower() in Y_UP_SUFFIXES:
        tris = tris[..., [0, 2, 1]] * np.array([-1.0, 1.0, 1.0])  # (x, y, z)_gltf -> (-x, z, y): a rotation
    lo, hi = tris.reshape(-1, 3).min(axis=0), tris.reshape(-1, 3).max(axis=0)
    if not np.all(np.isfinite([lo, hi])):
        log.warning("asset %s has non-finite vertices; using the procedural mesh", path.name)
        return None
    extent = np.where(hi - lo > 1e-9, hi - lo, 1.0)
    unit = (tris - (lo + hi) / 2) / extent
    return Soup(unit.astype(np.float32), _face_colours(mesh, fallback))


def _face_colours(mesh, fallback: tuple[int, int, int]) -> np.ndarray:
    """The mesh's own colours (face or vertex colours, or a textured material's main colour);
    the kind's palette colour when the file has none."""
    visual = mesh.visual
    if visual.kind is not None:
        try:
            colours = visual.to_color() if visual.kind == "texture" else visual
            faces = np.asarray(colours.face_colors)[:, :3]
            if len(faces) == len(mesh.faces):
                return faces.astype(np.uint8)
        except (AttributeError, ValueError, IndexError):
            log.warning("colours of an asset cannot be read; using the palette colour")
    return np.tile(np.asarray(fallback, np.uint8), (len(mesh.faces), 1))
