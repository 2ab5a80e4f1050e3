"""IDesign's relation constraints, measured as distances and vectorised over all relations.

For every relation "A <preposition> B" we compute how far (m) A's centre is from the region where
the relation holds (0 inside it). The regions, in B's own frame (B faces `v`, its right is `u`):

* `in front` / `behind` / `right of` / `left of`: A lies on that side of B, touching B's box when
  `is_adjacent` (up to `adjacent_gap` away), anywhere further out otherwise; sideways, A stays
  within B's span when adjacent, or at least overlaps it when not. Any angle of A or B.
* `on` (an object): A's footprint within B's top, A's bottom on B's top. `under` / `above`: the
  footprints overlap, A entirely below / above B (and below the ceiling).
* `on` a wall: A's back against that wall. `in the corner` of a wall: against that wall and one
  of the two walls meeting it. `on` the floor (`middle of the room`) / the ceiling: standing on
  it / hanging from it.
* Objects with `is_on_the_floor` must stand on the floor in every relation.

An object satisfies its constraints when it satisfies all of them (IDesign intersects them); an
object without relations has nothing to violate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .physics import LayoutBatch, projected_half
from .scene import LAYOUT_ELEMENTS

PREPOSITIONS = ("on", "under", "left of", "right of", "in front", "behind", "above", "in the corner",
                "in the middle of")
ON, UNDER, LEFT, RIGHT, FRONT, BEHIND, ABOVE, CORNER, MIDDLE = range(len(PREPOSITIONS))
SOUTH, NORTH, EAST, WEST, FLOOR, CEILING = range(len(LAYOUT_ELEMENTS))


@dataclass
class Relations:
    """All relations of a batch: A (flat object index), B (flat index, or -1 for a layout element),
    the layout element's index in LAYOUT_ELEMENTS (or -1), the preposition code and adjacency."""

    a: np.ndarray
    b: np.ndarray
    layout: np.ndarray
    prep: np.ndarray
    adjacent: np.ndarray

    @classmethod
    def empty(cls) -> Relations:
        z = np.zeros(0, dtype=int)
        return cls(z, z, z, z, np.zeros(0, dtype=bool))


def _outside(value: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Distance from `value` to the interval [lo, hi] (0 inside)."""
    return np.maximum.reduce([lo - value, np.zeros_like(value), value - hi])


def _object_targets(batch: LayoutBatch, rel: Relations, gap: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Horizontal misses (along B's right and front axes) and z interval for object targets."""
    a, b = rel.a, np.where(rel.b >= 0, rel.b, rel.a)
    u, v = batch.axes()
    d = batch.center[a, :2] - batch.center[b, :2]
    s_r, s_f = np.sum(d * u[b], axis=1), np.sum(d * v[b], axis=1)
    p_r = projected_half(batch.half[a], u[a], v[a], u[b])
    p_f = projected_half(batch.half[a], u[a], v[a], v[b])
    hl_b, hw_b, hh_b = batch.half[b].T
    adj = rel.adjacent
    inside_r, inside_f = np.abs(hl_b - p_r), np.abs(hw_b - p_f)          # A within B's span
    overlap_r, overlap_f = hl_b + p_r, hw_b + p_f                        # A overlaps B's span
    lateral_r = np.where(adj, inside_r, overlap_r)
    lateral_f = np.where(adj, inside_f, overlap_f)

    def side(along: np.ndarray, contact: np.ndarray, lateral: np.ndarray, lateral_limit: np.ndarray):
        far = np.where(adj, contact + gap, np.inf)
        return _outside(along, contact, far), np.maximum(np.abs(lateral) - lateral_limit, 0.0)

    prep = rel.prep
    miss = {
        FRONT: side(s_f, overlap_f, s_r, lateral_r), BEHIND: side(-s_f, overlap_f, s_r, lateral_r),
        RIGHT: side(s_r, overlap_r, s_f, lateral_f), LEFT: side(-s_r, overlap_r, s_f, lateral_f),
    }
    within = (np.maximum(np.abs(s_r) - inside_r, 0.0), np.maximum(np.abs(s_f) - inside_f, 0.0))
    overlapping = (np.maximum(np.abs(s_r) - overlap_r, 0.0), np.maximum(np.abs(s_f) - overlap_f, 0.0))
    conds = [prep == k for k in miss] + [(prep == ON) | (prep == MIDDLE), (prep == UNDER) | (prep == ABOVE)]
    miss_1 = np.select(conds, [m[0] for m in miss.values()] + [within[0], overlapping[0]], 0.0)
    miss_2 = np.select(conds, [m[1] for m in miss.values()] + [within[1], overlapping[1]], 0.0)

    hh_a = batch.half[a, 2]
    room_z = batch.room[batch.row[a], 2]
    z_b = batch.center[b, 2]
    top_b, bottom_b = z_b + hh_b, z_b - hh_b
    z_lo = np.select([(prep == ON) | (prep == MIDDLE), prep == UNDER, prep == ABOVE],
                     [top_b + hh_a, hh_a, top_b + hh_a], bottom_b + hh_a)
    z_hi = np.select([(prep == ON) | (prep == MIDDLE), prep == UNDER], [top_b + hh_a, bottom_b - hh_a], room_z - hh_a)
    return miss_1, miss_2, np.stack([z_lo, z_hi])


def _layout_targets(batch: LayoutBatch, rel: Relations, gap: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Horizontal misses and z interval for walls, floor and ceiling."""
    a = rel.a
    ext = batch.extents()[a]
    room = batch.room[batch.row[a]]
    x, y = batch.center[a, 0], batch.center[a, 1]
    wall_dist = np.stack([y - ext[:, 1], room[:, 1] - y - ext[:, 1], room[:, 0] - x - ext[:, 0], x - ext[:, 0]], axis=1)
    element = np.clip(rel.layout, 0, len(LAYOUT_ELEMENTS) - 1)
    is_wall = element <= WEST
    zero, span = np.zeros(len(a)), np.full(len(a), gap)
    own = wall_dist[np.arange(len(a)), np.minimum(element, WEST)]
    along_walls = np.where(element[:, None] <= NORTH, wall_dist[:, [EAST, WEST]], wall_dist[:, [SOUTH, NORTH]])
    nearest_cross = along_walls.min(axis=1)
    corner = rel.prep == CORNER
    miss_1 = np.where(is_wall, _outside(own, zero, span), 0.0)
    miss_2 = np.where(is_wall & corner, _outside(nearest_cross, zero, span), 0.0)
    # A corner of the floor or ceiling: near any corner of the room.
    any_corner = corner & ~is_wall
    miss_1 = np.where(any_corner, _outside(wall_dist[:, [SOUTH, NORTH]].min(axis=1), zero, span), miss_1)
    miss_2 = np.where(any_corner, _outside(wall_dist[:, [EAST, WEST]].min(axis=1), zero, span), miss_2)
    hh_a = batch.half[a, 2]
    z_lo = np.where((element == CEILING) & ~corner, room[:, 2] - hh_a, hh_a)
    z_hi = np.where((element == FLOOR) & ~corner, hh_a, room[:, 2] - hh_a)
    return miss_1, miss_2, np.stack([z_lo, z_hi])


def relation_distance(batch: LayoutBatch, rel: Relations, adjacent_gap: float) -> np.ndarray:
    """Distance (m) of A's centre from the region where each relation holds; 0 when it holds."""
    if len(rel.a) == 0:
        return np.zeros(0)
    obj = _object_targets(batch, rel, adjacent_gap)
    lay = _layout_targets(batch, rel, adjacent_gap)
    is_obj = rel.b >= 0
    miss_1 = np.where(is_obj, obj[0], lay[0])
    miss_2 = np.where(is_obj, obj[1], lay[1])
    z_lo, z_hi = np.where(is_obj, obj[2], lay[2])
    hh_a = batch.half[rel.a, 2]
    floor = batch.on_floor[rel.a]
    z_lo, z_hi = np.where(floor, hh_a, z_lo), np.where(floor, hh_a, z_hi)
    miss_z = _outside(batch.center[rel.a, 2], z_lo, z_hi)
    return np.sqrt(miss_1 ** 2 + miss_2 ** 2 + miss_z ** 2)
