"""Turn scenes plus placements into the flat arrays that `physics` and `constraints` measure.

Orientation: an object's `rotation.z_angle` from the scene is used when the scene has one (the
layout was made with it, and the renderer draws it). Otherwise it is derived from `facing`, and
unlike the paper's code (which maps "middle of the room" to 0 degrees and copies a parent's angle
for objects that face another object) it points where the object faces: a wall's inward normal
side, the room's centre, or the faced object, snapped to the nearest quarter turn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .constraints import PREPOSITIONS, Relations
from .physics import LayoutBatch
from .scene import FACING_ANGLE, LAYOUT_ELEMENTS, WALLS, Scene

Placements = dict[str, tuple[float, float, float]]


def _toward(src: tuple[float, float, float], dst: tuple[float, float]) -> float:
    """Angle (degrees, 0 = +y, 90 = +x) from src towards dst, snapped to a multiple of 90."""
    dx, dy = dst[0] - src[0], dst[1] - src[1]
    if dx == 0 and dy == 0:
        return 0.0
    return float((round(math.degrees(math.atan2(dx, dy)) / 90.0) * 90) % 360)


def z_angle(scene: Scene, oid: str, placements: Placements) -> float:
    """The angle (degrees) an object is measured at; see the module docstring."""
    obj = scene.get(oid)
    if obj.rotation is not None:
        return float(obj.rotation)
    if obj.facing in WALLS:
        return FACING_ANGLE[obj.facing]
    here = placements[oid]
    if obj.facing in placements:
        return _toward(here, placements[obj.facing][:2])
    return _toward(here, (scene.size.x / 2, scene.size.y / 2))


def build(items: Sequence[tuple[Scene, Placements]]) -> tuple[LayoutBatch, Relations, list[list[str]]]:
    """One batch for many rows. Only placed objects take part; relations to unplaced ones are skipped.
    Returns the batch, its relations and, per row, the ids in batch order."""
    rows, centers, halves, angles, floors, rooms = [], [], [], [], [], []
    rel_a, rel_b, rel_layout, rel_prep, rel_adj = [], [], [], [], []
    ids_per_row = []
    for r, (scene, placements) in enumerate(items):
        ids = [o.id for o in scene.objects if o.id in placements]
        base = len(rows)
        index = {oid: base + k for k, oid in enumerate(ids)}
        for oid in ids:
            obj = scene.get(oid)
            rows.append(r)
            centers.append(placements[oid])
            halves.append((obj.length / 2, obj.width / 2, obj.height / 2))
            angles.append(math.radians(z_angle(scene, oid, placements)))
            floors.append(obj.on_floor)
            for lrel in obj.layout_relations:
                rel_a.append(index[oid]), rel_b.append(-1), rel_layout.append(LAYOUT_ELEMENTS.index(lrel.element))
                rel_prep.append(PREPOSITIONS.index(lrel.preposition)), rel_adj.append(True)
            for orel in obj.object_relations:
                if orel.object_id in index:
                    rel_a.append(index[oid]), rel_b.append(index[orel.object_id]), rel_layout.append(-1)
                    rel_prep.append(PREPOSITIONS.index(orel.preposition)), rel_adj.append(orel.is_adjacent)
        rooms.append((scene.size.x, scene.size.y, scene.size.z))
        ids_per_row.append(ids)
    batch = LayoutBatch(
        row=np.array(rows, dtype=int), center=np.array(centers, dtype=float).reshape(-1, 3),
        half=np.array(halves, dtype=float).reshape(-1, 3), angle=np.array(angles, dtype=float),
        on_floor=np.array(floors, dtype=bool), room=np.array(rooms, dtype=float).reshape(-1, 3))
    relations = Relations(np.array(rel_a, dtype=int), np.array(rel_b, dtype=int), np.array(rel_layout, dtype=int),
                          np.array(rel_prep, dtype=int), np.array(rel_adj, dtype=bool))
    return batch, relations, ids_per_row
