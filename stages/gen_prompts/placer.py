"""A constructive placer: gives every object of a synthetic room a valid position, or drops it.

Works in whole millimetres on axis-aligned boxes (rotations are multiples of 90 degrees), so
"touching" is exact and "overlapping" never comes from rounding. Each placement honours the
relation it will be written with: a wall object has its back on the wall and faces into the room,
a corner object touches both walls, an object `on` another stands on its top inside its footprint,
`left of`/`right of`/`in front`/`behind` sit on that side of the parent (in the parent's own frame,
IDesign's convention: right of = the facing vector turned clockwise), `above`/`under` are clear of
the parent vertically. Every box stays inside the room and overlaps no other box.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

# Facing direction of each z_angle (IDesign: 0 faces +y, 90 faces +x).
DIRECTION = {0: (0, 1), 90: (1, 0), 180: (0, -1), 270: (-1, 0)}
ANGLE_OF = {d: a for a, d in DIRECTION.items()}
# An object with its back on a wall faces the opposite wall.
BACK_WALL_ANGLE = {"south_wall": 0, "west_wall": 90, "north_wall": 180, "east_wall": 270}
OPPOSITE = {"south_wall": "north_wall", "north_wall": "south_wall", "east_wall": "west_wall", "west_wall": "east_wall"}
FACING_WALL = {0: "north_wall", 90: "east_wall", 180: "south_wall", 270: "west_wall"}
CORNERS = (("south_wall", "west_wall"), ("south_wall", "east_wall"), ("north_wall", "west_wall"),
           ("north_wall", "east_wall"))
FRONT_KEEPOUT = 400
"""Millimetres kept free in front of floor objects against a wall, so free-standing ones don't block them."""


@dataclass(frozen=True)
class Box:
    x0: int
    x1: int
    y0: int
    y1: int
    z0: int
    z1: int

    def overlaps(self, other: Box) -> bool:
        """Interiors intersect (boxes that only touch do not overlap)."""
        return (self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1
                and self.z0 < other.z1 and other.z0 < self.z1)

    def grown(self, mm: int) -> Box:
        return Box(self.x0 - mm, self.x1 + mm, self.y0 - mm, self.y1 + mm, self.z0, self.z1)


@dataclass
class Placed:
    oid: str
    item: str
    size: tuple[int, int, int]
    """length, width, height in mm."""
    angle: int
    box: Box
    facing: str
    on_floor: bool
    root: str
    """The id of the top ancestor: free space reserved by that object is open to its own children."""
    wall: str | None = None
    layout: list[tuple[str, str]] = field(default_factory=list)
    relations: list[tuple[str, str, bool]] = field(default_factory=list)
    keepout: Box | None = None

    @property
    def center(self) -> tuple[int, int, int]:
        b = self.box
        return (b.x0 + b.x1) // 2, (b.y0 + b.y1) // 2, (b.z0 + b.z1) // 2


def footprint(size: tuple[int, int, int], angle: int) -> tuple[int, int]:
    """x- and y-extent: `length` lies along x at 0/180, along y at 90/270."""
    return (size[0], size[1]) if angle in (0, 180) else (size[1], size[0])


def spread(lo: int, hi: int, rng: random.Random, n: int = 7) -> list[int]:
    """Up to n candidate values in [lo, hi] (both ends included), in random order."""
    if hi <= lo:
        return [lo]
    values = sorted({lo + (hi - lo) * k // (n - 1) for k in range(n)})
    rng.shuffle(values)
    return values


class Placer:
    """Places objects one at a time into a room of X x Y x Z mm, keeping every invariant."""

    def __init__(self, room: tuple[int, int, int], rng: random.Random):
        self.X, self.Y, self.Z = room
        self.rng = rng
        self.placed: list[Placed] = []

    # ----------------------------------------------------------------- checks
    def fits(self, box: Box, root: str) -> bool:
        """Inside the room, overlapping no box, and (on the floor) outside the space other objects
        reserve, except space reserved by `root`, the object's own top ancestor."""
        if box.x0 < 0 or box.y0 < 0 or box.z0 < 0 or box.x1 > self.X or box.y1 > self.Y or box.z1 > self.Z:
            return False
        for other in self.placed:
            if box.overlaps(other.box):
                return False
            if (box.z0 == 0 and other.keepout is not None and other.root != root
                    and box.overlaps(other.keepout)):
                return False
        return True

    def _wall_box(self, wall: str, size: tuple[int, int, int], start: int, z0: int) -> tuple[Box, int]:
        angle = BACK_WALL_ANGLE[wall]
        ex, ey = footprint(size, angle)
        z1 = z0 + size[2]
        if wall == "south_wall":
            return Box(start, start + ex, 0, ey, z0, z1), angle
        if wall == "north_wall":
            return Box(start, start + ex, self.Y - ey, self.Y, z0, z1), angle
        if wall == "west_wall":
            return Box(0, ex, start, start + ey, z0, z1), angle
        return Box(self.X - ex, self.X, start, start + ey, z0, z1), angle

    def _front_keepout(self, box: Box, angle: int) -> Box:
        dx, dy = DIRECTION[angle]
        return Box(box.x0 + min(dx, 0) * FRONT_KEEPOUT, box.x1 + max(dx, 0) * FRONT_KEEPOUT,
                   box.y0 + min(dy, 0) * FRONT_KEEPOUT, box.y1 + max(dy, 0) * FRONT_KEEPOUT, 0, self.Z)

    def _add(self, obj: Placed) -> Placed:
        self.placed.append(obj)
        return obj

    # ----------------------------------------------------------------- roots
    def against_wall(self, oid: str, item: str, size: tuple[int, int, int], walls: list[str],
                     z0: int = 0) -> Placed | None:
        """Back on one of `walls` (tried in order), facing into the room; z0 > 0 hangs it."""
        for wall in walls:
            along = self.X if wall in ("south_wall", "north_wall") else self.Y
            ext = size[0]
            if ext > along:
                continue
            starts = {0, along - ext, *(self.rng.randrange(0, along - ext + 1, 10) for _ in range(4))}
            for other in self.placed:
                lo, hi = (other.box.x0, other.box.x1) if wall in ("south_wall", "north_wall") else (other.box.y0,
                                                                                                  other.box.y1)
                starts.update(s for s in (hi, lo - ext) if 0 <= s <= along - ext)
            order = sorted(starts)
            self.rng.shuffle(order)
            for start in order:
                box, angle = self._wall_box(wall, size, start, z0)
                if self.fits(box, oid):
                    keepout = self._front_keepout(box, angle) if z0 == 0 else None
                    return self._add(Placed(oid, item, size, angle, box, OPPOSITE[wall], z0 == 0, oid, wall,
                                            [(wall, "on")], keepout=keepout))
        return None

    def in_corner(self, oid: str, item: str, size: tuple[int, int, int]) -> Placed | None:
        corners = list(CORNERS)
        self.rng.shuffle(corners)
        for pair in corners:
            backs = list(pair)
            self.rng.shuffle(backs)
            for back in backs:
                angle = BACK_WALL_ANGLE[back]
                ex, ey = footprint(size, angle)
                x0 = 0 if "west_wall" in pair else self.X - ex
                y0 = 0 if "south_wall" in pair else self.Y - ey
                box = Box(x0, x0 + ex, y0, y0 + ey, 0, size[2])
                if self.fits(box, oid):
                    return self._add(Placed(oid, item, size, angle, box, OPPOSITE[back], True, oid, back,
                                            [(pair[0], "in the corner"), (pair[1], "in the corner")],
                                            keepout=self._front_keepout(box, angle)))
        return None

    def in_middle(self, oid: str, item: str, size: tuple[int, int, int], clearance: int,
                  facing_wall: str | None, rows: bool = False) -> Placed | None:
        """Free-standing; keeps `clearance` mm free around it when the room allows, else less.
        With `rows`, spots lie on a lattice filled front row first (desks of a classroom)."""
        walls = [facing_wall] if facing_wall else self.rng.sample(list(FACING_WALL.values()), 4)
        for margin in (clearance, clearance // 2, 0):
            for wall in walls:
                angle = next(a for a, w in FACING_WALL.items() if w == wall)
                ex, ey = footprint(size, angle)
                if ex + 2 * margin > self.X or ey + 2 * margin > self.Y:
                    continue
                starts = self._lattice(ex, ey, margin, angle) if rows else [
                    (self.rng.randrange(margin, self.X - margin - ex + 1),
                     self.rng.randrange(margin, self.Y - margin - ey + 1)) for _ in range(12)]
                for x0, y0 in starts:
                    box = Box(x0, x0 + ex, y0, y0 + ey, 0, size[2])
                    if self.fits(box, oid) and (margin == 0 or self.fits(box.grown(margin), oid)):
                        return self._add(Placed(oid, item, size, angle, box, wall, True, oid, None,
                                                [("middle of the room", "on")], keepout=box.grown(margin)))
        return None

    def _lattice(self, ex: int, ey: int, margin: int, angle: int) -> list[tuple[int, int]]:
        """Starts of a centred grid with `margin` free around each spot, the row nearest the faced
        wall first."""
        def axis(room: int, ext: int) -> list[int]:
            pitch = ext + 2 * margin
            n = (room - 2 * margin - ext) // pitch + 1
            first = (room - (n - 1) * pitch - ext) // 2
            return [first + k * pitch for k in range(n)]

        spots = [(x0, y0) for x0 in axis(self.X, ex) for y0 in axis(self.Y, ey)]
        self.rng.shuffle(spots)
        dx, dy = DIRECTION[angle]
        return sorted(spots, key=lambda s: -(s[0] * dx + s[1] * dy))

    def on_ceiling(self, oid: str, item: str, size: tuple[int, int, int]) -> Placed | None:
        ex, ey = footprint(size, 0)
        centres = [((self.X - ex) // 2, (self.Y - ey) // 2)]
        centres += [(self.rng.randrange(0, self.X - ex + 1), self.rng.randrange(0, self.Y - ey + 1)) for _ in range(8)]
        for x0, y0 in centres:
            box = Box(x0, x0 + ex, y0, y0 + ey, self.Z - size[2], self.Z)
            if self.fits(box, oid):
                return self._add(Placed(oid, item, size, 0, box, "middle of the room", False, oid, None,
                                        [("ceiling", "on")]))
        return None

    # ----------------------------------------------------------------- relative to a parent
    def _child(self, oid: str, item: str, size: tuple[int, int, int], angle: int, box: Box, facing: str,
               parent: Placed, relation: tuple[str, str, bool]) -> Placed:
        """Record a child; one on the floor whose back touches a wall also stands `on` that wall."""
        back = {0: box.y0 == 0, 90: box.x0 == 0, 180: box.y1 == self.Y, 270: box.x1 == self.X}[angle]
        wall = next(w for w, a in BACK_WALL_ANGLE.items() if a == angle) if back else None
        layout = [(wall, "on")] if wall else []
        return self._add(Placed(oid, item, size, angle, box, facing, box.z0 == 0, parent.root, wall, layout,
                                [relation]))

    def _lateral(self, lo: int, hi: int, ext: int) -> list[int]:
        """Start coordinates keeping a span of `ext` inside [lo, hi] (centred when it is wider)."""
        return spread(lo, hi - ext, self.rng) if ext <= hi - lo else [(lo + hi - ext) // 2]

    def beside(self, oid: str, item: str, size: tuple[int, int, int], parent: Placed, relation: str,
               gap: int, toward: bool) -> Placed | None:
        """On the floor, on one side of the parent in its own frame, `gap` mm away (0 = touching),
        facing the parent (`toward`) or the same way as the parent."""
        fx, fy = DIRECTION[parent.angle]
        dx, dy = {"in front": (fx, fy), "behind": (-fx, -fy), "right of": (fy, -fx), "left of": (-fy, fx)}[relation]
        angle = ANGLE_OF[(-dx, -dy)] if toward else parent.angle
        ex, ey = footprint(size, angle)
        p = parent.box
        if dx:
            x0 = p.x1 + gap if dx > 0 else p.x0 - gap - ex
            boxes = [Box(x0, x0 + ex, y0, y0 + ey, 0, size[2]) for y0 in self._lateral(p.y0, p.y1, ey)]
        else:
            y0 = p.y1 + gap if dy > 0 else p.y0 - gap - ey
            boxes = [Box(x0, x0 + ex, y0, y0 + ey, 0, size[2]) for x0 in self._lateral(p.x0, p.x1, ex)]
        wall = parent.wall
        if wall:  # beside a wall object: flush with its wall first (a nightstand by the bed)
            boxes.sort(key=lambda b: not self._touches(b, wall))
        for box in boxes:
            if self.fits(box, parent.root):
                facing = parent.oid if toward else parent.facing
                return self._child(oid, item, size, angle, box, facing, parent, (parent.oid, relation, gap == 0))
        return None

    def _touches(self, box: Box, wall: str) -> bool:
        return {"south_wall": box.y0 == 0, "north_wall": box.y1 == self.Y, "west_wall": box.x0 == 0,
                "east_wall": box.x1 == self.X}[wall]

    def on_top(self, oid: str, item: str, size: tuple[int, int, int], parent: Placed) -> Placed | None:
        """Standing on the parent's top surface, inside its footprint, turned like the parent."""
        ex, ey = footprint(size, parent.angle)
        p = parent.box
        if ex > p.x1 - p.x0 or ey > p.y1 - p.y0:
            return None
        for x0, y0 in zip(self._lateral(p.x0, p.x1, ex), self._lateral(p.y0, p.y1, ey) * 7, strict=False):
            box = Box(x0, x0 + ex, y0, y0 + ey, p.z1, p.z1 + size[2])
            if self.fits(box, parent.root):
                return self._child(oid, item, size, parent.angle, box, parent.facing, parent, (parent.oid, "on", True))
        return None

    def above(self, oid: str, item: str, size: tuple[int, int, int], parent: Placed, mount: str,
              bottom: int) -> Placed | None:
        """Clear above the parent: hung on the parent's wall (wall items, bottom edge at `bottom` mm
        or higher) or hanging from the ceiling over its footprint (ceiling items)."""
        p = parent.box
        if mount == "wall" and parent.wall:
            z0 = min(max(bottom, p.z1 + 100), self.Z - size[2])
            along = (p.x0, p.x1) if parent.wall in ("south_wall", "north_wall") else (p.y0, p.y1)
            boxes = [self._wall_box(parent.wall, size, s, z0)[0] for s in self._lateral(*along, size[0])]
            angle, facing, layout = BACK_WALL_ANGLE[parent.wall], OPPOSITE[parent.wall], [(parent.wall, "on")]
        elif mount == "ceiling":
            angle, facing, layout = parent.angle, parent.facing, [("ceiling", "on")]
            ex, ey = footprint(size, angle)
            z0 = self.Z - size[2]
            boxes = [Box(x0, x0 + ex, y0, y0 + ey, z0, self.Z)
                     for x0, y0 in zip(self._lateral(p.x0, p.x1, ex), self._lateral(p.y0, p.y1, ey) * 7, strict=False)]
        else:
            return None
        for box in boxes:
            if box.z0 >= p.z1 and self.fits(box, parent.root):
                return self._add(Placed(oid, item, size, angle, box, facing, False, parent.root, None, layout,
                                        [(parent.oid, "above", False)]))
        return None

    def under(self, oid: str, item: str, size: tuple[int, int, int], parent: Placed) -> Placed | None:
        """On the floor below a raised parent (a shoe rack under a coat rack), flush with its wall."""
        p = parent.box
        if p.z0 < size[2] or not parent.wall:
            return None
        along = (p.x0, p.x1) if parent.wall in ("south_wall", "north_wall") else (p.y0, p.y1)
        for start in self._lateral(*along, size[0]):
            box, angle = self._wall_box(parent.wall, size, start, 0)
            if self.fits(box, parent.root):
                return self._child(oid, item, size, angle, box, OPPOSITE[parent.wall], parent,
                                   (parent.oid, "under", False))
        return None
