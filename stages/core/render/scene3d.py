"""Arrangement -> the triangles of one 3D view: room shell, furniture, floor grid and shadows.

Shading is computed here, per triangle, from a fixed key light and fill light, and baked into the
triangle colours; the backends then draw colours unlit. That keeps every backend's picture the
same, costs nothing on the GPU side, and gives full control of contrast: tops bright, the sides
facing the light mid, the far sides darker, as an illustrator would shade a room.
"""

from __future__ import annotations

import numpy as np

from .assets import AssetLibrary
from .camera import hidden_walls
from .furniture import furniture
from .layout import Arrangement, Item, grid_lines
from .primitives import Soup, box, quad

FLOOR = (222, 204, 176)
FLOOR_GRID = (196, 176, 146)
WALL = (236, 232, 226)
WALL_THICKNESS = 0.08
KEY_LIGHT = np.array([0.3, -0.5, 0.81])
FILL_LIGHT = np.array([-0.6, 0.45, 0.35])
SHADOW_DIRECTION = np.array([0.18, 0.3, -1.0])  # sunlight travel direction for floor shadows
SHADOW_FACTOR = 0.72
SHADOW_MAX_BOTTOM = 0.4  # objects hanging higher than this (m) cast no floor shadow


def room_shell(arr: Arrangement, view: str) -> Soup:
    """Floor slab with a metre grid, and the walls not hidden for this view (full height)."""
    X, Y, Z = arr.room.x, arr.room.y, arr.room.z
    t = WALL_THICKNESS
    parts = [box((-t, X + t, -t, Y + t, -0.1, 0.0), FLOOR)]
    line = min(0.012, max(X, Y) / 400) * max(1.0, max(X, Y) / 20)
    for m in grid_lines(X):
        parts.append(quad(np.array([(m - line, 0, 0.001), (m + line, 0, 0.001), (m + line, Y, 0.001),
                                    (m - line, Y, 0.001)]), FLOOR_GRID))
    for m in grid_lines(Y):
        parts.append(quad(np.array([(0, m - line, 0.001), (X, m - line, 0.001), (X, m + line, 0.001),
                                    (0, m + line, 0.001)]), FLOOR_GRID))
    walls = {
        "south_wall": (-t, X + t, -t, 0.0), "north_wall": (-t, X + t, Y, Y + t),
        "west_wall": (-t, 0.0, -t, Y + t), "east_wall": (X, X + t, -t, Y + t),
    }
    hidden = hidden_walls(view)
    for name, (x0, x1, y0, y1) in walls.items():
        height = 0.06 if name in hidden else Z  # a low kerb still marks where the wall stands
        parts.append(box((x0, x1, y0, y1, 0.0, height), WALL))
    return Soup.join(parts)


def item_soup(item: Item, assets: AssetLibrary | None) -> Soup:
    """An object's mesh in world coordinates."""
    local = assets.mesh_for(item) if assets is not None else None
    if local is None:
        local = furniture(item.id, item.length, item.width, item.height)
    assert item.position is not None
    return local.transformed(item.angle, item.position)


def shaded(soup: Soup, contrast: float = 1.0) -> Soup:
    """Bake the two-light shading into the colours (flat per triangle). `contrast` below 1 flattens
    it (the room shell: walls should read as a light backdrop, not compete with the furniture)."""
    if not len(soup.tris):
        return soup
    normals = np.cross(soup.tris[:, 1] - soup.tris[:, 0], soup.tris[:, 2] - soup.tris[:, 0])
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)
    key = np.clip(normals @ (KEY_LIGHT / np.linalg.norm(KEY_LIGHT)), 0, 1)
    fill = np.clip(normals @ (FILL_LIGHT / np.linalg.norm(FILL_LIGHT)), 0, 1)
    factor = 1.0 - contrast * (0.4 - 0.36 * key - 0.12 * fill)
    colours = np.clip(soup.colours.astype(np.float32) * factor[:, None], 0, 255).astype(np.uint8)
    return Soup(soup.tris, colours)


def floor_shadow(soup: Soup, arr: Arrangement, height: float) -> Soup:
    """The object's triangles projected along the sunlight onto the floor, clipped to the room."""
    d = SHADOW_DIRECTION / -SHADOW_DIRECTION[2]
    tris = soup.tris.copy()
    z = tris[..., 2:3]
    tris[..., :2] = tris[..., :2] + z * d[:2]
    tris[..., 0] = np.clip(tris[..., 0], 0, arr.room.x)
    tris[..., 1] = np.clip(tris[..., 1], 0, arr.room.y)
    tris[..., 2] = height
    colour = np.array([int(c * SHADOW_FACTOR) for c in FLOOR], np.uint8)
    return Soup(tris.astype(np.float32), np.tile(colour, (len(tris), 1)))


def view_soup(arr: Arrangement, view: str, assets: AssetLibrary | None = None) -> Soup:
    """Everything one perspective view draws, shaded, in world coordinates."""
    objects, shadows = [], []
    for item in arr.drawn:
        soup = item_soup(item, assets)
        objects.append(soup)
        assert item.position is not None
        x, y, z = item.position
        on_floor_of_room = 0 <= x <= arr.room.x and 0 <= y <= arr.room.y  # else the clipped shadow is a sliver
        if z - item.height / 2 < SHADOW_MAX_BOTTOM and on_floor_of_room:
            shadows.append(floor_shadow(soup, arr, 0.002))
    return Soup.join([shaded(room_shell(arr, view), contrast=0.45), *shadows, shaded(Soup.join(objects))])


def frame_points(arr: Arrangement) -> np.ndarray:
    """Points a perspective view must show: the room's box and every drawn object's box."""
    X, Y, Z = arr.room.x, arr.room.y, arr.room.z
    pts = [(x, y, z) for x in (0, X) for y in (0, Y) for z in (0, Z)]
    for item in arr.drawn:
        assert item.position is not None
        z = item.position[2]
        for cx, cy in item.footprint():
            pts += [(cx, cy, z - item.height / 2), (cx, cy, z + item.height / 2)]
    return np.array(pts, np.float64)
