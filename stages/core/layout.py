"""Turn scenes plus placements into the flat arrays that `physics` and `constraints` measure.

Orientation: `Scene.z_angle`, the one rule that the prompt states and the renderer draws (the
scene's `rotation.z_angle`, else IDesign's rule from `facing`), so a model is measured at the
angle it was told.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .constraints import PREPOSITIONS, Relations
from .physics import LayoutBatch
from .scene import LAYOUT_ELEMENTS, Scene

Placements = dict[str, tuple[float, float, float]]
PREP_CODE = {p: k for k, p in enumerate(PREPOSITIONS)}
LAYOUT_CODE = {e: k for k, e in enumerate(LAYOUT_ELEMENTS)}


@dataclass
class _Template:
    """What `build` needs from a scene, independent of the layout (cached per Scene object)."""

    ids: list[str]
    half: np.ndarray
    on_floor: np.ndarray
    angle: np.ndarray        # radians
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
    angles = [math.radians(scene.z_angle(o)) for o in scene.objects]
    half = np.array([(o.length / 2, o.width / 2, o.height / 2) for o in scene.objects], dtype=float).reshape(-1, 3)
    template = _Template(
        ids, half, np.array([o.on_floor for o in scene.objects], dtype=bool),
        np.array(angles, dtype=float), np.array(columns[0], dtype=int), np.array(columns[1], dtype=int),
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
    return _Template([oid for oid, kept in zip(t.ids, keep, strict=True) if kept], t.half[keep], t.on_floor[keep],
                     t.angle[keep], new_index[t.rel_a[ok]], np.where(b >= 0, new_index[np.maximum(b, 0)], -1),
                     t.rel_layout[ok], t.rel_prep[ok], t.rel_adj[ok])


def build(items: Sequence[tuple[Scene, Placements]]) -> tuple[LayoutBatch, Relations, list[list[str]]]:
    """One batch for many rows. Only placed objects take part; relations to unplaced ones are skipped.
    Returns the batch, its relations and, per row, the ids in batch order. The per-row work is a
    cached template lookup and copying the coordinates; everything else is concatenated at once."""
    subs: list[_Template] = []
    centers: list[tuple[float, float, float]] = []
    rooms: list[tuple[float, float, float]] = []
    ids_per_row: list[list[str]] = []
    for scene, placements in items:
        t = _template(scene)
        if not all(oid in placements for oid in t.ids):
            t = _subset(t, np.array([oid in placements for oid in t.ids], dtype=bool))
        subs.append(t)
        centers.extend(placements[oid] for oid in t.ids)
        rooms.append((scene.size.x, scene.size.y, scene.size.z))
        ids_per_row.append(t.ids)
    counts = np.array([len(t.ids) for t in subs], dtype=int)
    rel_counts = np.array([len(t.rel_a) for t in subs], dtype=int)
    bases = np.repeat(np.cumsum(counts) - counts, rel_counts)

    def joined(get: Any, dtype: Any) -> np.ndarray:
        arrays = [get(t) for t in subs]
        return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype)

    batch = LayoutBatch(row=np.repeat(np.arange(len(subs)), counts), center=np.array(centers, dtype=float).reshape(-1, 3),
                        half=joined(lambda t: t.half, float).reshape(-1, 3), angle=joined(lambda t: t.angle, float),
                        on_floor=joined(lambda t: t.on_floor, bool), room=np.array(rooms, dtype=float).reshape(-1, 3))
    rel_b = joined(lambda t: t.rel_b, int)
    relations = Relations(joined(lambda t: t.rel_a, int) + bases, np.where(rel_b >= 0, rel_b + bases, -1),
                          joined(lambda t: t.rel_layout, int), joined(lambda t: t.rel_prep, int),
                          joined(lambda t: t.rel_adj, bool))
    return batch, relations, ids_per_row
