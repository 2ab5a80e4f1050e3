"""One layout -> a glTF scene (`.glb`): the room shell and one node per placed object.

glTF is y-up and metres by definition; the scene model is z-up (x east, y north). A point goes
(x, y, z) -> (x, z, -y), a proper rotation, so north is glTF's -z and the room stays right-handed.
An object's node holds its transform (translation = box centre, rotation about the vertical axis
by the scene's clockwise `z_angle`, i.e. -angle about +y) and its mesh in the object's own frame,
centred on the box, front towards glTF's -z (the scene's +y). Meshes are the render engine's: the
procedural furniture, or the `--assets` mesh that `render` would draw, with the same colours
(as vertex colours with a matte material; viewers light them).

Node names: every object by its id; the shell as `floor`, `ceiling` and the IDesign wall ids
(`south_wall`, ...). Scene ids may not be `floor` (checked before export). Everything a viewer
or a script may want to know goes into `extras`: the reward and metrics on the scene, each
object's scores, size and angle on its node, and the objects the answer left out or placed
unusably in `scene.extras.not_placed`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from stages.core.render import Arrangement, Item
from stages.core.render.assets import AssetLibrary
from stages.core.render.furniture import furniture
from stages.core.render.layout import STATUS_TEXT
from stages.core.render.primitives import Soup, box
from stages.core.render.scene3d import FLOOR, WALL, WALL_THICKNESS

TO_GLTF = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
"""Scene (x east, y north, z up) -> glTF (x, y up, z south)."""
SHELL = ("floor", "ceiling", "south_wall", "north_wall", "east_wall", "west_wall")
SLAB = 0.1
"""Thickness of the floor and ceiling slabs (outside the room's box, like the walls)."""


def to_gltf(point: tuple[float, float, float] | np.ndarray) -> np.ndarray:
    return TO_GLTF @ np.asarray(point, np.float64)


def node_matrix(position: tuple[float, float, float], angle_deg: float) -> np.ndarray:
    """4x4 glTF transform of an object: rotate by the clockwise scene angle (-angle about +y), then move."""
    a = -math.radians(angle_deg)
    matrix = np.eye(4)
    matrix[:3, :3] = [[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, math.cos(a)]]
    matrix[:3, 3] = to_gltf(position)
    return matrix


def _linear(srgb: np.ndarray) -> np.ndarray:
    """sRGB bytes -> linear bytes: glTF's COLOR_0 is linear, the palette is sRGB."""
    c = srgb.astype(np.float64) / 255
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return np.round(lin * 255).astype(np.uint8)


def _mesh(soup: Soup):
    """A trimesh mesh from a triangle soup (scene frame -> glTF frame): unmerged vertices with the
    triangle's colour (no normals: viewers shade the faces flat), a matte white material."""
    import trimesh
    from trimesh.visual.material import PBRMaterial
    from trimesh.visual.texture import TextureVisuals

    vertices = soup.tris.reshape(-1, 3).astype(np.float64) @ TO_GLTF.T
    faces = np.arange(len(vertices)).reshape(-1, 3)
    colours = np.repeat(_linear(soup.colours), 3, axis=0)
    rgba = np.concatenate([colours, np.full((len(colours), 1), 255, np.uint8)], axis=1)
    visual = TextureVisuals(material=PBRMaterial(name="matte", baseColorFactor=[255, 255, 255, 255],
                                                 metallicFactor=0.0, roughnessFactor=0.85))
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, visual=visual, process=False)
    visual.vertex_attributes["color"] = rgba  # the mesh keeps this very visual (`mesh.visual is visual`)
    return mesh


def shell_soups(arr: Arrangement) -> dict[str, Soup]:
    """Floor, ceiling and the four walls as slabs just outside the room's box, in world coordinates."""
    X, Y, Z = arr.room.x, arr.room.y, arr.room.z
    t = WALL_THICKNESS
    return {
        "floor": box((-t, X + t, -t, Y + t, -SLAB, 0.0), FLOOR),
        "ceiling": box((-t, X + t, -t, Y + t, Z, Z + SLAB), WALL),
        "south_wall": box((-t, X + t, -t, 0.0, 0.0, Z), WALL),
        "north_wall": box((-t, X + t, Y, Y + t, 0.0, Z), WALL),
        "west_wall": box((-t, 0.0, -t, Y + t, 0.0, Z), WALL),
        "east_wall": box((X, X + t, -t, Y + t, 0.0, Z), WALL),
    }


def object_mesh(item: Item, assets: AssetLibrary | None) -> tuple[Soup, str]:
    """The object's mesh in its own frame and where it came from (an asset file or procedural)."""
    path = assets.path_for(item) if assets is not None else None
    local = assets.mesh_for(item) if assets is not None else None
    if local is not None and path is not None:
        return local, f"asset {path.name}"
    source = "procedural" if path is None else f"procedural ({path.name} unusable)"
    return furniture(item.id, item.length, item.width, item.height), source


def not_placed(arr: Arrangement) -> list[dict[str, Any]]:
    """The scene's objects without a node, and why; ids the answer invented are listed too."""
    entries: list[dict[str, Any]] = [{"id": item.id, "reason": STATUS_TEXT[item.status],
                                      "position": list(item.position) if item.position else None}
                                     for item in arr.undrawn]
    entries += [{"id": oid, "reason": "not in the scene", "position": None} for oid in arr.unknown]
    return entries


def build_scene(arr: Arrangement, assets: AssetLibrary | None, scene_extras: dict[str, Any],
                object_scores: dict[str, Any]):
    """The trimesh scene of one layout (export it with `scene.export(file_type="glb")`)."""
    import trimesh

    scene = trimesh.Scene(base_frame="__metaspatial_root__")  # not written; no object id can clash with it
    for name, soup in shell_soups(arr).items():
        scene.add_geometry(_mesh(soup), node_name=name, geom_name=name,
                           metadata={"role": "ceiling" if name == "ceiling" else "wall" if "wall" in name else "floor"})
    for item in arr.drawn:
        assert item.position is not None
        soup, source = object_mesh(item, assets)
        extras = {"role": "object", "object_id": item.id, "kind": item.kind, "mesh": source,
                  "size_m": {"length": item.length, "width": item.width, "height": item.height},
                  "z_angle_deg": item.angle, "position_scene_m": list(item.position),
                  "outside_room": arr.outside(item), "scores": object_scores.get(item.id)}
        scene.add_geometry(_mesh(soup), node_name=item.id, geom_name=item.id,
                           transform=node_matrix(item.position, item.angle), metadata=extras)
    scene.metadata.update({**scene_extras, "units": "metres", "up": "+y",
                           "axes": "scene x (east) -> glTF x, scene y (north) -> glTF -z, scene z (up) -> glTF y",
                           "room_m": arr.room.as_dict(), "not_placed": not_placed(arr),
                           "parse_error": arr.error})
    return scene


def glb_bytes(scene) -> bytes:
    return scene.export(file_type="glb")
