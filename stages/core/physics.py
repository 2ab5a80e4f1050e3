"""Physics of layouts, vectorised: rotated-box collisions, out-of-bounds and support.

All rows of a batch are flattened into one set of objects (`LayoutBatch`): arrays over every
object of every row, plus the index pairs of objects that share a row. Every measure is then one
NumPy expression over all objects or all pairs, whatever the number of rows or objects.

Boxes are oriented in the floor plane by `rotation.z_angle` (any angle, degrees): at 0 the box's
`length` lies along x and it faces +y; at 90 it faces +x. A box's axes are therefore
`u = (cos θ, −sin θ)` (length, the object's right) and `v = (sin θ, cos θ)` (width, its front).
Collisions use the separating-axis theorem on the footprints plus the z interval: the
penetration depth of a pair is the smallest overlap along the five candidate axes, so two boxes
collide exactly when it is positive, and it says how far apart they must move to stop colliding.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np


@dataclass
class LayoutBatch:
    """Objects of many rows, flattened. `row[k]` is the row of object k; `room` has one line per row."""

    row: np.ndarray        # (M,) int
    center: np.ndarray     # (M, 3)
    half: np.ndarray       # (M, 3) half length, half width, half height
    angle: np.ndarray      # (M,) radians
    on_floor: np.ndarray   # (M,) bool
    room: np.ndarray       # (R, 3)

    @property
    def size(self) -> int:
        return len(self.row)

    def axes(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors (M, 2) along each box's length (u) and width (v, its facing direction)."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        return np.stack([c, -s], axis=1), np.stack([s, c], axis=1)

    def extents(self) -> np.ndarray:
        """Half sizes (M, 3) of each rotated box's axis-aligned bounding box."""
        c, s = np.abs(np.cos(self.angle)), np.abs(np.sin(self.angle))
        hl, hw, hh = self.half.T
        return np.stack([hl * c + hw * s, hl * s + hw * c, hh], axis=1)


@cache
def _triangle(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n, k=1)


def row_pairs(row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j), i < j, of objects in the same row, as flat indices (rows must be contiguous)."""
    starts = np.flatnonzero(np.r_[True, row[1:] != row[:-1]]) if len(row) else np.array([], int)
    counts = np.diff(np.r_[starts, len(row)])
    parts_i, parts_j = [], []
    for start, count in zip(starts, counts, strict=True):
        i, j = _triangle(int(count))
        parts_i.append(i + start)
        parts_j.append(j + start)
    if not parts_i:
        return np.array([], int), np.array([], int)
    return np.concatenate(parts_i), np.concatenate(parts_j)


def projected_half(half: np.ndarray, u: np.ndarray, v: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Half of a footprint's shadow on `axis`: hl·|u·axis| + hw·|v·axis| (all arrays (..., 2))."""
    return (half[..., 0] * np.abs(np.sum(u * axis, axis=-1))
            + half[..., 1] * np.abs(np.sum(v * axis, axis=-1)))


def footprint_overlap(batch: LayoutBatch, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Smallest overlap of the footprints of pairs (i, j) over the four separating axes (< 0: apart).

    Written out per component (no small-axis reductions): with δ = θj − θi, c = cos δ, s = sin δ,
    box j's half shadow on i's length axis is hl_j|c| + hw_j|s|, on i's width axis hl_j|s| + hw_j|c|,
    and symmetrically for box i on j's axes."""
    cos, sin = np.cos(batch.angle), np.sin(batch.angle)
    ci, si, cj, sj = cos[i], sin[i], cos[j], sin[j]
    c = np.abs(ci * cj + si * sj)
    s = np.abs(sj * ci - cj * si)
    hli, hwi, hlj, hwj = batch.half[i, 0], batch.half[i, 1], batch.half[j, 0], batch.half[j, 1]
    dx = batch.center[j, 0] - batch.center[i, 0]
    dy = batch.center[j, 1] - batch.center[i, 1]
    along_ui = hli + hlj * c + hwj * s - np.abs(dx * ci - dy * si)
    along_vi = hwi + hlj * s + hwj * c - np.abs(dx * si + dy * ci)
    along_uj = hlj + hli * c + hwi * s - np.abs(dx * cj - dy * sj)
    along_vj = hwj + hli * s + hwi * c - np.abs(dx * sj + dy * cj)
    return np.minimum(np.minimum(along_ui, along_vi), np.minimum(along_uj, along_vj))


def penetration(batch: LayoutBatch, i: np.ndarray, j: np.ndarray, footprint: np.ndarray | None = None) -> np.ndarray:
    """Penetration depth of pairs (i, j) in metres: > 0 exactly when the two boxes overlap."""
    if footprint is None:
        footprint = footprint_overlap(batch, i, j)
    z_overlap = batch.half[i, 2] + batch.half[j, 2] - np.abs(batch.center[j, 2] - batch.center[i, 2])
    return np.minimum(footprint, z_overlap)


def degree(excess: np.ndarray, tolerance: float, scale: float) -> np.ndarray:
    """How bad a violation is, in [0, 1]: 0 up to `tolerance`, growing linearly, 1 at `tolerance + scale`."""
    return np.clip((excess - tolerance) / scale, 0.0, 1.0)


def protrusion(batch: LayoutBatch) -> np.ndarray:
    """How far (m) each object's box reaches outside its room (through a wall, floor or ceiling)."""
    ext = batch.extents()
    room = batch.room[batch.row]
    outside = np.maximum(ext - batch.center, batch.center + ext - room)
    return np.maximum(outside.max(axis=1), 0.0)


def support_gap(batch: LayoutBatch, i: np.ndarray, j: np.ndarray, tolerance: float,
                footprint: np.ndarray | None = None) -> np.ndarray:
    """How far (m) each object is from being held up.

    Floor objects must stand on the floor: the gap is |bottom| (floating or sunk). Other objects
    may rest on the floor, on top of an object whose footprint they overlap, hang on a wall or from
    the ceiling: the gap is the distance to the nearest of these.
    """
    bottom = batch.center[:, 2] - batch.half[:, 2]
    top = batch.center[:, 2] + batch.half[:, 2]
    ext = batch.extents()
    room = batch.room[batch.row]
    wall_gap = np.minimum(batch.center[:, :2] - ext[:, :2], room[:, :2] - batch.center[:, :2] - ext[:, :2]).min(axis=1)
    gap = np.minimum.reduce([np.abs(bottom), np.abs(room[:, 2] - top), np.abs(wall_gap)])
    if len(i):
        if footprint is None:
            footprint = footprint_overlap(batch, i, j)
        touching = footprint > tolerance
        resting = np.full(batch.size, np.inf)
        np.minimum.at(resting, i[touching], np.abs(bottom[i] - top[j])[touching])
        np.minimum.at(resting, j[touching], np.abs(bottom[j] - top[i])[touching])
        gap = np.minimum(gap, resting)
    return np.where(batch.on_floor, np.abs(bottom), gap)


def per_object_max(values: np.ndarray, i: np.ndarray, j: np.ndarray, size: int) -> np.ndarray:
    """For pair values, each object's largest value over the pairs it belongs to (0 if none)."""
    out = np.zeros(size)
    np.maximum.at(out, i, values)
    np.maximum.at(out, j, values)
    return out


def row_mean(values: np.ndarray, row: np.ndarray, n_rows: int) -> np.ndarray:
    """Mean of per-object values within each row (0 for a row without objects)."""
    sums = np.bincount(row, weights=values, minlength=n_rows)
    counts = np.bincount(row, minlength=n_rows)
    return np.divide(sums, counts, out=np.zeros(n_rows), where=counts > 0)
