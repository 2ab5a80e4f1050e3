"""The `rules` judge: offline, deterministic grades computed from the scene and the layout.

Each of the paper's five criteria becomes a measurable proxy, mapped linearly onto 1..10
(`1 + 9·fraction`):

* realism_and_3d_geometric_consistency: share of objects that neither collide, leave the room nor
  float/sink (1 − mean of each object's worst physics degree).
* functionality_and_activity_based_alignment: half clearance, half walkability. Clearance: share
  of furniture on the floor (footprint ≥ 0.15 m²) with a free zone `clearance` m deep in front of
  it (objects related to it, like the chair at a desk, and floor coverings do not block it).
  Walkability: share of the free floor (0.1 m grid, coarser beyond 20 m) in its largest 4-connected region.
* layout_and_furniture: half wall alignment, half relations. Wall alignment: share of objects
  placed on a wall or in a corner whose back is against that wall and who face into the room.
  Relations: 1 − the mean constraint degree.
* color_scheme_and_material_choices: coherence of the object list: mean of the shares of the most
  common style and of the most common material (the layout cannot change it).
* overall_aesthetic_and_atmosphere: half grouping, half balance. Grouping: share of object
  relations whose two objects are within reach (their half diagonals + 0.5 m). Balance: how close
  the area-weighted centre of the floor furniture is to the room's centre.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from stages.core import layout, physics
from stages.core.scene import WALLS, Scene

from .base import GRADE_KEYS, Judgement, JudgeRequest

CELL = 0.1
MAX_CELLS = 200
"""Cells along a side at most: rooms wider than 20 m get coarser cells, so a hall of 1 km costs what
a 20 m room does (0.1 m cells there would be 10^8 points)."""
COVERING_HEIGHT = 0.05
INWARD = {"south_wall": (0.0, 1.0), "north_wall": (0.0, -1.0), "east_wall": (-1.0, 0.0), "west_wall": (1.0, 0.0)}


def _grade(fraction: float) -> float:
    return round(1.0 + 9.0 * float(np.clip(fraction, 0.0, 1.0)), 3)


def _inside_footprints(batch: physics.LayoutBatch, mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Which points (P, 2) lie inside any of the masked objects' footprints."""
    u, v = batch.axes()
    k = np.flatnonzero(mask)
    d = points[:, None, :] - batch.center[None, k, :2]
    along_u = np.abs(d[..., 0] * u[k, 0] + d[..., 1] * u[k, 1]) <= batch.half[k, 0]
    along_v = np.abs(d[..., 0] * v[k, 0] + d[..., 1] * v[k, 1]) <= batch.half[k, 1]
    return (along_u & along_v).any(axis=1)


def walkability(batch: physics.LayoutBatch, standing: np.ndarray) -> float:
    """Share of free floor cells in the largest 4-connected free region."""
    from scipy import ndimage

    room_x, room_y = batch.room[0, 0], batch.room[0, 1]
    cell = max(CELL, max(room_x, room_y) / MAX_CELLS)
    nx, ny = max(1, int(room_x / cell)), max(1, int(room_y / cell))
    gx, gy = np.meshgrid((np.arange(nx) + 0.5) * room_x / nx, (np.arange(ny) + 0.5) * room_y / ny, indexing="ij")
    free = ~_inside_footprints(batch, standing, np.stack([gx.ravel(), gy.ravel()], axis=1)).reshape(nx, ny)
    total = int(free.sum())
    if total == 0:
        return 0.0
    labels, _ = ndimage.label(free)
    return float(np.bincount(labels.ravel())[1:].max()) / total


def clearance(batch: physics.LayoutBatch, scene: Scene, ids: list[str], standing: np.ndarray, depth: float) -> float:
    """Share of floor furniture with a free zone in front of it."""
    needs = standing & (4 * batch.half[:, 0] * batch.half[:, 1] >= 0.15)
    if not needs.any():
        return 1.0
    u, v = batch.axes()
    index = {oid: k for k, oid in enumerate(ids)}
    linked: dict[int, set[int]] = {k: set() for k in range(len(ids))}
    for k, oid in enumerate(ids):
        for rel in scene.get(oid).object_relations:
            if rel.object_id in index:
                linked[k].add(index[rel.object_id])
                linked[index[rel.object_id]].add(k)
    clear = []
    for k in np.flatnonzero(needs).tolist():
        related = linked[k]
        zone_center = batch.center[k, :2] + v[k] * (batch.half[k, 1] + depth / 2)
        others = [m for m in np.flatnonzero(standing) if m != k and m not in related]
        blocked = False
        if others:
            zone = physics.LayoutBatch(
                row=np.zeros(1 + len(others), dtype=int),
                center=np.vstack([np.r_[zone_center, 0.0], batch.center[others]]),
                half=np.vstack([[batch.half[k, 0], depth / 2, 1.0], batch.half[others]]),
                angle=np.r_[batch.angle[k], batch.angle[others]], on_floor=np.ones(1 + len(others), dtype=bool),
                room=batch.room[:1])
            zeros = np.zeros(len(others), dtype=int)
            blocked = bool((physics.footprint_overlap(zone, zeros, np.arange(1, len(others) + 1)) > 0.02).any())
        inside = 0 <= zone_center[0] <= batch.room[0, 0] and 0 <= zone_center[1] <= batch.room[0, 1]
        clear.append(inside and not blocked)
    return float(np.mean(clear))


def wall_alignment(batch: physics.LayoutBatch, scene: Scene, ids: list[str], gap: float) -> float:
    """Share of wall-placed objects with their back against the wall, facing into the room."""
    u, v = batch.axes()
    ext = batch.extents()
    checks = []
    for k, oid in enumerate(ids):
        walls = [r.element for r in scene.get(oid).layout_relations if r.element in WALLS]
        for wall in walls[:1]:
            x, y = batch.center[k, :2]
            room_x, room_y = batch.room[0, :2]
            dist = {"south_wall": y - ext[k, 1], "north_wall": room_y - y - ext[k, 1],
                    "west_wall": x - ext[k, 0], "east_wall": room_x - x - ext[k, 0]}[wall]
            facing_in = float(v[k] @ np.array(INWARD[wall])) >= math.cos(math.radians(45))
            checks.append(abs(dist) <= gap and facing_in)
    return float(np.mean(checks)) if checks else 1.0


def grouping_and_balance(batch: physics.LayoutBatch, scene: Scene, ids: list[str], standing: np.ndarray) -> float:
    index = {oid: k for k, oid in enumerate(ids)}
    near = []
    for k, oid in enumerate(ids):
        for rel in scene.get(oid).object_relations:
            m = index.get(rel.object_id)
            if m is not None:
                reach = np.hypot(*batch.half[k, :2]) + np.hypot(*batch.half[m, :2]) + 0.5
                near.append(np.hypot(*(batch.center[k, :2] - batch.center[m, :2])) <= reach)
    grouping = float(np.mean(near)) if near else 1.0
    area = 4 * batch.half[:, 0] * batch.half[:, 1] * standing
    if area.sum() <= 0:
        return 0.5 * grouping + 0.5
    centroid = (batch.center[:, :2] * area[:, None]).sum(axis=0) / area.sum()
    half_diag = np.hypot(*batch.room[0, :2]) / 2
    balance = 1.0 - np.hypot(*(centroid - batch.room[0, :2] / 2)) / half_diag
    return 0.5 * grouping + 0.5 * balance


def coherence(scene: Scene) -> float:
    if not scene.objects:
        return 1.0
    styles = Counter(o.style.strip().lower() for o in scene.objects)
    materials = Counter(o.material.strip().lower() for o in scene.objects)
    n = len(scene.objects)
    return 0.5 * max(styles.values()) / n + 0.5 * max(materials.values()) / n


class RulesJudge:
    name = "rules"
    needs_images = False

    def __init__(self, clearance: float = 0.5, adjacent_gap: float = 0.05):
        self.clearance = clearance
        self.gap = adjacent_gap

    def grade_one(self, request: JudgeRequest) -> dict[str, float]:
        batch, _, (ids,) = layout.build([(request.scene, request.placements)])
        per = request.measures.per_object
        worst = [max(per[o]["collision"], per[o]["out_of_bounds"], per[o]["support"]) for o in ids] or [0.0]
        standing = batch.on_floor & (2 * batch.half[:, 2] > COVERING_HEIGHT)
        functional = 0.5 * clearance(batch, request.scene, ids, standing, self.clearance) \
            + 0.5 * walkability(batch, standing)
        arranged = 0.5 * wall_alignment(batch, request.scene, ids, self.gap) + 0.5 * (1 - request.measures.constraint)
        values = (1 - float(np.mean(worst)), functional, arranged, coherence(request.scene),
                  grouping_and_balance(batch, request.scene, ids, standing))
        return {key: _grade(value) for key, value in zip(GRADE_KEYS, values, strict=True)}

    def grade(self, requests: list[JudgeRequest]) -> list[Judgement]:
        return [Judgement(self.grade_one(r)) for r in requests]
