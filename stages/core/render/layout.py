"""What a picture shows: the room, every object of the scene, and where (if anywhere) each one went.

An `Arrangement` is the renderer's whole input. It keeps every scene object, placed or not, so
that the views can show what the answer left out instead of silently dropping it: each `Item`
carries a status (`placed`, `omitted`, `invalid`, `far`) and a legend number shared by all views.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..scene import RoomSize, Scene
from .palette import category_of, kind_of

PLACED, OMITTED, INVALID, FAR = "placed", "omitted", "invalid", "far"
STATUS_TEXT = {OMITTED: "not in answer", INVALID: "bad coordinates", FAR: "far outside"}
# Objects whose box lies beyond this many room sizes from the room are not drawn (they would
# shrink the room to a dot); they are listed instead.
FAR_ROOMS = 1.0


@dataclass
class Item:
    number: int
    id: str
    length: float
    width: float
    height: float
    angle: float
    position: tuple[float, float, float] | None
    status: str

    @property
    def kind(self) -> str:
        return kind_of(self.id)

    @property
    def category(self) -> str:
        return category_of(self.id)

    @property
    def drawn(self) -> bool:
        return self.status == PLACED

    def footprint(self) -> list[tuple[float, float]]:
        """The four floor corners of the (rotated) box, counter-clockwise from back-left."""
        assert self.position is not None
        x, y, _ = self.position
        a = -math.radians(self.angle)
        ca, sa = math.cos(a), math.sin(a)
        corners = [(-self.length / 2, -self.width / 2), (self.length / 2, -self.width / 2),
                   (self.length / 2, self.width / 2), (-self.length / 2, self.width / 2)]
        return [(x + cx * ca - cy * sa, y + cx * sa + cy * ca) for cx, cy in corners]

    def facing(self) -> tuple[float, float]:
        """Unit vector of the object's front on the floor plan (0 degrees = +y, 90 = +x)."""
        a = math.radians(self.angle)
        return math.sin(a), math.cos(a)


@dataclass
class Arrangement:
    room: RoomSize
    items: list[Item]
    error: str | None = None
    """Why the answer is not a complete valid layout (first problem), if it is not."""
    unknown: list[str] = field(default_factory=list)
    """Ids the answer placed that the scene does not have (nothing to draw, but worth saying)."""

    @property
    def drawn(self) -> list[Item]:
        return [i for i in self.items if i.drawn]

    @property
    def undrawn(self) -> list[Item]:
        return [i for i in self.items if not i.drawn]

    def outside(self, item: Item) -> bool:
        """A drawn object whose footprint is not entirely on the floor of the room."""
        room = self.room
        return item.drawn and any(not (-1e-6 <= x <= room.x + 1e-6 and -1e-6 <= y <= room.y + 1e-6)
                                  for x, y in item.footprint())

    def note(self, item: Item) -> str | None:
        """What the legend says under an object: why it is not drawn, or that it leaves the room."""
        if not item.drawn:
            return STATUS_TEXT[item.status]
        return "outside the room" if self.outside(item) else None

    @property
    def no_layout(self) -> bool:
        """Nothing of the answer can be drawn: the picture is the empty room with a mark."""
        return bool(self.items) and not self.drawn

    @classmethod
    def empty_room(cls, room: RoomSize) -> Arrangement:
        return cls(room=room, items=[])

    @classmethod
    def from_scene(cls, scene: Scene, placements: dict[str, tuple[float, float, float]] | None,
                   omitted: list[str] | tuple[str, ...] = (), error: str | None = None,
                   unknown: list[str] | tuple[str, ...] = ()) -> Arrangement:
        """Items for every scene object. `placements` None means: use the scene's own positions
        (a reference layout). Ids in `omitted` were absent from the answer; any other object
        without a placement had one that could not be used."""
        items = []
        for number, obj in enumerate(scene.objects, start=1):
            pos = obj.position if placements is None else placements.get(obj.id)
            if pos is None:
                status = OMITTED if obj.id in omitted or placements is None else INVALID
            elif _far(scene.size, pos, max(obj.length, obj.width, obj.height)):
                status = FAR
            else:
                status = PLACED
            items.append(Item(number, obj.id, obj.length, obj.width, obj.height, scene.z_angle(obj),
                              (pos[0], pos[1], pos[2]) if pos is not None else None, status))
        return cls(room=scene.size, items=items, error=error, unknown=list(unknown))


def grid_lines(extent: float, most: int = 40) -> list[float]:
    """Positions of the floor grid lines strictly inside (0, extent): every metre, or every 10 m,
    100 m, ... when a room is so large that 1 m lines would be a grey smear (or millions of lines)."""
    step = 1.0
    while extent / step > most:
        step *= 10
    return [k * step for k in range(1, math.ceil(extent / step)) if k * step < extent]


def _far(room: RoomSize, pos: tuple[float, float, float], reach: float) -> bool:
    limits = [(room.x, pos[0]), (room.y, pos[1]), (room.z, pos[2])]
    return any(not math.isfinite(v) or v + reach < -FAR_ROOMS * size or v - reach > (1 + FAR_ROOMS) * size
               for size, v in limits)
