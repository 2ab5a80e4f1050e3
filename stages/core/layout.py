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
from dataclasses import dataclass
from typing import Any

import numpy as np

from .constraints import PREPOSITIONS, Relations
from .physics import LayoutBatch
from .scene import FACING_ANGLE, LAYOUT_ELEMENTS, WALLS, Scene, SceneObject

Placements = dict[str, tuple[float, float, float]]
PREP_CODE = {p: k for k, p in enumerate(PREPOSITIONS)}
LAYOUT_CODE = {e: k for k, e in enumerate(LAYOUT_ELEMENTS)}


def _toward(src: tuple[float, float, float], dst: tuple[float, float]) -> float:
    """Angle (degrees, 0 = +y, 90 = +x) from src towards dst, snapped to a multiple of 90."""
    dx, dy = dst[0] - src[0], dst[1] - src[1]
    if dx == 0 and dy == 0:
        return 0.0
    return float((round(math.degrees(math.atan2(dx, dy)) / 90.0) * 90) % 360)


def z_angle(scene: Scene, oid: str, placements: Placements, obj: SceneObject | None = None) -> float:
    """The angle (degrees) an object is measured at; see the module docstring."""
    obj = obj if obj is not None else scene.get(oid)
    if obj.rotation is not None:
        return float(obj.rotation)
    if obj.facing in WALLS:
        return FACING_ANGLE[obj.facing]
    here = placements[oid]
    if obj.facing in placements:
        return _toward(here, placements[obj.facing][:2])
    return _toward(here, (scene.size.x / 2, scene.size.y / 2))


@dataclass
class _Template:
    """What `build` needs from a scene, independent of the layout (cached per Scene object)."""

    ids: list[str]
    objects: list[SceneObject]
    half: np.ndarray
    on_floor: np.ndarray
    fixed_angle: np.ndarray  # radians; NaN where the angle depends on the layout
    rel_a: np.ndarray        # local object indices
    rel_b: np.ndarray        # local object index, or -1 for a layout element
    rel_layout: np.ndarray
    rel_prep: np.ndarray
    rel_adj: np.ndarray


_TEMPLATES: dict[int, tuple[Scene, _Template]] = {}
_MAX_TEMPLATES = 4096


def _template(scene: Scene) -> _Template:
    cached = _TEMPLATES.get(id(scene))
    if cached is not None and cached[0] is scene:
        return cached[1]
    ids = [o.id for o in scene.objects]
    index = {oid: k for k, oid in enumerate(ids)}
    rels = []
    for k, obj in enumerate(scene.objects):
        rels += [(k, -1, LAYOUT_CODE[r.element], PREP_CODE[r.preposition], True) for r in obj.layout_relations]
        rels += [(k, index[r.object_id], -1, PREP_CODE[r.preposition], r.adjacent)
                 for r in obj.object_relations if r.object_id in index]
    columns: list[tuple[Any, ...]] = list(zip(*rels, strict=True)) if rels else [()] * 5
    fixed = [math.radians(o.rotation) if o.rotation is not None
             else math.radians(FACING_ANGLE[o.facing]) if o.facing in WALLS else math.nan for o in scene.objects]
    half = np.array([(o.length / 2, o.width / 2, o.height / 2) for o in scene.objects], dtype=float).reshape(-1, 3)
    template = _Template(
        ids, list(scene.objects), half, np.array([o.on_floor for o in scene.objects], dtype=bool),
        np.array(fixed, dtype=float), np.array(columns[0], dtype=int), np.array(columns[1], dtype=int),
        np.array(columns[2], dtype=int), np.array(columns[3], dtype=int), np.array(columns[4], dtype=bool))
    if len(_TEMPLATES) >= _MAX_TEMPLATES:
        _TEMPLATES.clear()
    _TEMPLATES[id(scene)] = (scene, template)
    return template


def _subset(t: _Template, keep: np.ndarray) -> _Template:
    """The template restricted to the placed objects (relations to unplaced ones dropped)."""
    new_index = np.cumsum(keep) - 1
    ok = keep[t.rel_a] & ((t.rel_b < 0) | keep[np.maximum(t.rel_b, 0)])
    b = t.rel_b[ok]
    return _Template([oid for oid, kept in zip(t.ids, keep, strict=True) if kept],
                     [o for o, kept in zip(t.objects, keep, strict=True) if kept], t.half[keep], t.on_floor[keep],
                     t.fixed_angle[keep], new_index[t.rel_a[ok]], np.where(b >= 0, new_index[np.maximum(b, 0)], -1),
                     t.rel_layout[ok], t.rel_prep[ok], t.rel_adj[ok])


def build(items: Sequence[tuple[Scene, Placements]]) -> tuple[LayoutBatch, Relations, list[list[str]]]:
    """One batch for many rows. Only placed objects take part; relations to unplaced ones are skipped.
    Returns the batch, its relations and, per row, the ids in batch order. The per-row work is a
    cached template lookup and copying the coordinates; everything else is concatenated at once."""
    subs: list[tuple[_Template, np.ndarray]] = []
    centers: list[tuple[float, float, float]] = []
    rooms: list[tuple[float, float, float]] = []
    ids_per_row: list[list[str]] = []
    for scene, placements in items:
        t = _template(scene)
        if not all(oid in placements for oid in t.ids):
            t = _subset(t, np.array([oid in placements for oid in t.ids], dtype=bool))
        angle = t.fixed_angle
        if np.isnan(angle).any():
            angle = angle.copy()
            for k in np.flatnonzero(np.isnan(angle)):
                angle[k] = math.radians(z_angle(scene, t.ids[k], placements, t.objects[k]))
        subs.append((t, angle))
        centers.extend(placements[oid] for oid in t.ids)
        rooms.append((scene.size.x, scene.size.y, scene.size.z))
        ids_per_row.append(t.ids)
    counts = np.array([len(t.ids) for t, _ in subs], dtype=int)
    rel_counts = np.array([len(t.rel_a) for t, _ in subs], dtype=int)
    bases = np.repeat(np.cumsum(counts) - counts, rel_counts)

    def joined(get: Any, dtype: Any) -> np.ndarray:
        arrays = [get(t, angle) for t, angle in subs]
        return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype)

    batch = LayoutBatch(row=np.repeat(np.arange(len(subs)), counts), center=np.array(centers, dtype=float).reshape(-1, 3),
                        half=joined(lambda t, a: t.half, float).reshape(-1, 3), angle=joined(lambda t, a: a, float),
                        on_floor=joined(lambda t, a: t.on_floor, bool), room=np.array(rooms, dtype=float).reshape(-1, 3))
    rel_b = joined(lambda t, a: t.rel_b, int)
    relations = Relations(joined(lambda t, a: t.rel_a, int) + bases, np.where(rel_b >= 0, rel_b + bases, -1),
                          joined(lambda t, a: t.rel_layout, int), joined(lambda t, a: t.rel_prep, int),
                          joined(lambda t, a: t.rel_adj, bool))
    return batch, relations, ids_per_row
