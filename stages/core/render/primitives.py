"""Triangle soups for the primitive shapes furniture is built from, as NumPy arrays.

Everything the renderer draws is a list of triangles with one colour each: an (N, 3, 3) float32
array of corners and an (N, 3) uint8 array of sRGB colours. Keeping one flat format makes a whole
room a single draw call, lets the shading be computed once in NumPy (so every backend shows the
same picture), and makes transforms a matrix product.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

RGB = tuple[int, int, int]


@dataclass
class Soup:
    """Triangles and one colour per triangle."""

    tris: np.ndarray  # (N, 3, 3) float32, metres
    colours: np.ndarray  # (N, 3) uint8, sRGB

    @staticmethod
    def empty() -> Soup:
        return Soup(np.zeros((0, 3, 3), np.float32), np.zeros((0, 3), np.uint8))

    @staticmethod
    def join(soups: list[Soup]) -> Soup:
        soups = [s for s in soups if len(s.tris)]
        if not soups:
            return Soup.empty()
        return Soup(np.concatenate([s.tris for s in soups]), np.concatenate([s.colours for s in soups]))

    def transformed(self, angle_deg: float, offset: tuple[float, float, float]) -> Soup:
        """Rotated about z so that local +y faces the scene's facing direction, then moved.

        Scene convention: 0 degrees faces +y, 90 faces +x, i.e. a clockwise turn by the angle.
        """
        a = -np.radians(angle_deg)
        rot = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]], np.float32)
        return Soup((self.tris @ rot.T + np.asarray(offset, np.float32)).astype(np.float32), self.colours)


Bounds = tuple[float, float, float, float, float, float]
"""x0, x1, y0, y1, z0, z1 of the axis-aligned box a shape fills."""


@cache
def _unit(shape: str) -> np.ndarray:
    """A shape filling the cube [-0.5, 0.5]^3, as triangles (built once per process)."""
    import trimesh

    if shape == "box":
        mesh = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    elif shape == "cylinder":
        mesh = trimesh.creation.cylinder(radius=0.5, height=1.0, sections=20)
    elif shape == "ycylinder":
        mesh = trimesh.creation.cylinder(radius=0.5, height=1.0, sections=20)
        mesh.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (1, 0, 0)))
    elif shape == "cone":
        mesh = trimesh.creation.cone(radius=0.5, height=1.0, sections=20)
        mesh.apply_translation((0, 0, -0.5))
    elif shape == "sphere":
        mesh = trimesh.creation.icosphere(subdivisions=2, radius=0.5)
    else:
        raise ValueError(f"unknown primitive {shape!r}")
    return np.asarray(mesh.triangles, np.float32)


def shape(kind: str, bounds: Bounds, colour: RGB) -> Soup:
    """The primitive `kind` stretched to fill `bounds`, in one colour."""
    x0, x1, y0, y1, z0, z1 = bounds
    unit = _unit(kind)
    size = np.array([x1 - x0, y1 - y0, z1 - z0], np.float32)
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2, (z0 + z1) / 2], np.float32)
    tris = unit * size + centre
    return Soup(tris.astype(np.float32), np.tile(np.asarray(colour, np.uint8), (len(tris), 1)))


def box(bounds: Bounds, colour: RGB) -> Soup:
    return shape("box", bounds, colour)


def quad(corners: np.ndarray, colour: RGB) -> Soup:
    """A flat quadrilateral (4 corners in order) as two triangles."""
    c = np.asarray(corners, np.float32)
    tris = np.stack([c[[0, 1, 2]], c[[0, 2, 3]]])
    return Soup(tris, np.tile(np.asarray(colour, np.uint8), (2, 1)))
