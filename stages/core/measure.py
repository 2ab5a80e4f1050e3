"""Per-row and per-object physics and constraint results for many layouts at once.

Each measure is a degree in [0, 1] per object (0 up to the tolerance, then linear, 1 at tolerance +
scale), averaged over the row's objects:

* collision: the deepest penetration of the object into any other object (floor furniture
  standing on a rug or mat does not count);
* out of bounds: how far the object reaches through a wall, the floor or the ceiling;
* support: how far a floor object floats above or sinks into the floor; how far any other
  object is from resting on the floor, an object below it, a wall or the ceiling;
* constraint: the worst of the object's relations (distance from where the relation holds).

The per-object lists (which pairs collide, which objects leave the room, which relations fail)
are what the multi-turn feedback and object-level credit assignment read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from . import layout, physics
from .constraints import PREPOSITIONS, relation_distance
from .scene import LAYOUT_ELEMENTS, Scene


@dataclass(frozen=True)
class Tolerances:
    tolerance: float = 0.02
    """Metres of overlap, protrusion or gap that count as nothing (touching objects, a rug under a table)."""
    relation_tolerance: float = 0.005
    """Metres by which a relation may be missed and still hold (answers are written to the millimetre)."""
    scale: float = 0.15
    """Metres beyond the tolerance at which a violation counts in full."""
    adjacent_gap: float = 0.05
    """How far apart two 'adjacent' objects (or an object and its wall) may be."""
    outside: float = 0.0
    """An object whose centre lies more than this beyond a wall, the floor or the ceiling is out of the room
    (0: as soon as its centre leaves the room)."""
    floor_covering: float = 0.05
    """Floor objects at most this high (rugs, mats) are walked on: floor furniture may stand on them."""


@dataclass
class RowMeasures:
    collision: float = 0.0
    constraint: float = 0.0
    out_of_bounds: float = 0.0
    support: float = 0.0
    collisions: list[list[str]] = field(default_factory=list)
    out_of_bounds_ids: list[str] = field(default_factory=list)
    """Objects reaching outside the room by more than the tolerance."""
    outside_ids: list[str] = field(default_factory=list)
    """Objects placed out of the room: their centre lies more than `outside` beyond a wall, floor or ceiling."""
    unsupported: list[str] = field(default_factory=list)
    violations: list[dict[str, str]] = field(default_factory=list)
    per_object: dict[str, dict[str, float]] = field(default_factory=dict)


def measure(items: Sequence[tuple[Scene, layout.Placements]], tol: Tolerances = Tolerances()) -> list[RowMeasures]:
    """Measure every row in one vectorised pass."""
    batch, rel, ids = layout.build(items)
    n_rows, size = len(items), batch.size
    i, j = physics.row_pairs(batch.row)
    footprint = physics.footprint_overlap(batch, i, j)
    depth = physics.penetration(batch, i, j, footprint)
    covering = batch.on_floor & (2 * batch.half[:, 2] <= tol.floor_covering)
    depth[(covering[i] & batch.on_floor[j]) | (covering[j] & batch.on_floor[i])] = -np.inf
    pair_degree = physics.degree(depth, tol.tolerance, tol.scale)
    collision = physics.per_object_max(pair_degree, i, j, size)
    protrusion = physics.protrusion(batch)
    oob = physics.degree(protrusion, tol.tolerance, tol.scale)
    support = physics.degree(physics.support_gap(batch, i, j, tol.tolerance, footprint), tol.tolerance, tol.scale)
    distance = relation_distance(batch, rel, tol.adjacent_gap)
    constraint = np.zeros(size)
    np.maximum.at(constraint, rel.a, physics.degree(distance, tol.relation_tolerance, tol.scale))

    room = batch.room[batch.row]
    centre_out = ((batch.center < -tol.outside) | (batch.center > room + tol.outside)).any(axis=1)
    means = [physics.row_mean(v, batch.row, n_rows).tolist() for v in (collision, constraint, oob, support)]
    results = [RowMeasures(*values) for values in zip(*means, strict=True)] if n_rows else []
    flat_ids = [oid for row_ids in ids for oid in row_ids]
    row = batch.row.tolist()
    for k in np.flatnonzero(depth > tol.tolerance).tolist():
        results[row[i[k]]].collisions.append([flat_ids[i[k]], flat_ids[j[k]]])
    for flags, field_name in ((protrusion > tol.tolerance, "out_of_bounds_ids"), (centre_out, "outside_ids"),
                              (support > 0, "unsupported")):
        for k in np.flatnonzero(flags).tolist():
            getattr(results[row[k]], field_name).append(flat_ids[k])
    for k in np.flatnonzero(distance > tol.relation_tolerance).tolist():
        a, b = int(rel.a[k]), int(rel.b[k])
        target = flat_ids[b] if b >= 0 else LAYOUT_ELEMENTS[rel.layout[k]]
        results[row[a]].violations.append(
            {"object_id": flat_ids[a], "preposition": PREPOSITIONS[rel.prep[k]], "target": target})
    columns = [np.round(v, 6).tolist() for v in (collision, constraint, oob, support)]
    names = ("collision", "constraint", "out_of_bounds", "support")
    for oid, r, *values in zip(flat_ids, row, *columns, strict=True):
        results[r].per_object[oid] = dict(zip(names, values, strict=True))
    return results
