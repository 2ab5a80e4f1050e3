"""Relation boxes of the `metaspatial-v1` preset: the paper's constraint boxes, quirks included.

Each function returns `(x_min, x_max, y_min, y_max, z_min, z_max)` for "A <preposition> B". The
arithmetic is written in the same order as upstream's (left to right), because reference layouts
sit exactly on box edges and a different rounding would flip `<=` tests. Reproduced quirks:
the lateral margin `((adj·w) − (not adj·w))/2` (a constant −0.5 m unless adjacent), directional
relations defined only for B at exactly 0/90/180/270 degrees (other angles raise), `above` not
clamped to the ceiling, `in the corner` a strip along the whole wall, sizes swapped only for
angles exactly in (90, 270).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

WALL_SIGNS = {  # signs of (B.l, B.l, B.w, B.w, A.l, A.l, A.w, A.w) in x_min, x_max, y_min, y_max
    "west_wall": (+1, +1, -1, +1, +1, +1, +1, -1),
    "east_wall": (-1, -1, -1, +1, -1, -1, +1, -1),
    "north_wall": (-1, +1, -1, -1, +1, -1, -1, -1),
    "south_wall": (-1, +1, +1, +1, +1, -1, +1, +1),
}
Box = tuple[float, float, float, float, float, float]


class UnboundRotation(Exception):
    """Upstream's UnboundLocalError for a directional relation to an object at another angle."""


def _dims(obj: dict[str, Any], swap: bool) -> tuple[float, float, float]:
    s = obj["size_in_meters"]
    if swap and obj["rotation"]["z_angle"] in (90.0, 270.0):
        return s["width"], s["length"], s["height"]
    return s["length"], s["width"], s["height"]


def _margin(adjacent: bool, size: float) -> float:
    """`((is_adjacent * w) - (not is_adjacent * w)) / 2`, with Python's precedence."""
    return ((adjacent * size) - (not adjacent * size)) / 2


def _sorted_clamped(box: list[float], a: tuple[float, float, float], room: tuple[float, float, float],
                    axes: int) -> Box:
    for k in range(0, 2 * axes, 2):
        if box[k] > box[k + 1]:
            box[k], box[k + 1] = box[k + 1], box[k]
    for k in range(axes):
        half = a[k] / 2
        box[2 * k + 1] = max(half, min(box[2 * k + 1], room[k] - half))
        box[2 * k] = max(box[2 * k], 0.0 + half)
    return tuple(box)  # type: ignore[return-value]


def on(a_obj, b, adjacent, floor, room) -> Box:
    la, wa, ha = _dims(a_obj, True)
    lb, wb, hb = _dims(b, True)
    p, bid = b["position"], b["new_object_id"]
    if bid not in WALL_SIGNS and bid != "ceiling":
        z = p["z"] + hb / 2 + ha / 2 if not floor else ha / 2
        box = [p["x"] - lb / 2 + la / 2, p["x"] + lb / 2 - la / 2, p["y"] - wb / 2 + wa / 2,
               p["y"] + wb / 2 - wa / 2, z, z]
    elif bid == "ceiling":
        z = p["z"] - hb / 2 - ha / 2
        box = [p["x"] - lb / 2 + la / 2, p["x"] + lb / 2 - la / 2, p["y"] - wb / 2 + wa / 2,
               p["y"] + wb / 2 - wa / 2, z, z]
    else:
        s = WALL_SIGNS[bid]
        box = [p["x"] + s[0] * lb / 2 + s[4] * la / 2, p["x"] + s[1] * lb / 2 + s[5] * la / 2,
               p["y"] + s[2] * wb / 2 + s[6] * wa / 2, p["y"] + s[3] * wb / 2 + s[7] * wa / 2,
               p["z"] - hb / 2 + ha / 2 if not floor else ha / 2, p["z"] + hb / 2 - ha / 2 if not floor else ha / 2]
    return _sorted_clamped(box, (la, wa, ha), room, 3)


def under(a_obj, b, adjacent, floor, room) -> Box:
    la, wa, ha = _dims(a_obj, True)
    lb, wb, hb = _dims(b, True)
    p = b["position"]
    box = [p["x"] - lb / 2 - la / 2, p["x"] + lb / 2 + la / 2, p["y"] - wb / 2 - wa / 2, p["y"] + wb / 2 + wa / 2,
           ha / 2, p["z"] - hb / 2 - ha / 2 if not floor else ha / 2]
    return _sorted_clamped(box, (la, wa, ha), room, 3)


def _side_z(a: tuple[float, float, float], b: dict[str, Any], floor: bool, room) -> tuple[float, float]:
    hb = b["size_in_meters"]["height"]
    z_min = b["position"]["z"] - hb / 2 + a[2] / 2 if not floor else a[2] / 2
    z_max = room[2] - a[2] / 2 if not floor else a[2] / 2
    return z_min, z_max


def _angle(b: dict[str, Any]) -> float:
    angle = b["rotation"]["z_angle"]
    if angle not in (0.0, 90.0, 180.0, 270.0):
        raise UnboundRotation(f"check_constraints: UnboundLocalError: relation to "
                              f"{b['new_object_id']!r} at z_angle {angle}")
    return angle


def _directional(kind: str, a_obj, b, adj, floor, room) -> Box:
    """left of / right of / in front / behind, for B at 0/90/180/270 degrees."""
    la, wa, ha = _dims(a_obj, True)
    lb, wb = b["size_in_meters"]["length"], b["size_in_meters"]["width"]
    x, y = b["position"]["x"], b["position"]["y"]
    X, Y = room[0], room[1]
    ml, mw = _margin(adj, la), _margin(adj, wa)
    # Bands along each axis, in upstream's arithmetic order.
    x_lat0 = [x - lb / 2 + ml, x + lb / 2 - ml]                 # B at 0/180: lateral band along x
    y_lat0 = [y - wb / 2 + mw, y + wb / 2 - mw]
    x_lat90 = [x - wb / 2 + ml, x + wb / 2 - ml]                # B at 90/270
    y_lat90 = [y - lb / 2 + mw, y + lb / 2 - mw]
    east0 = x + lb / 2 + la / 2
    west0 = x - lb / 2 - la / 2
    north0 = y + wb / 2 + wa / 2
    south0 = y - wb / 2 - wa / 2
    east90 = x + wb / 2 + la / 2
    west90 = x - wb / 2 - la / 2
    north90 = y + lb / 2 + wa / 2
    south90 = y - lb / 2 - wa / 2
    to_east0 = [east0, east0 if adj else X - la / 2]
    to_west0 = [west0 if adj else la / 2, west0]
    to_north0 = [north0, north0 if adj else Y - wa / 2]
    to_south0 = [south0 if adj else wa / 2, south0]
    to_east90 = [east90, east90 if adj else X - la / 2]
    to_west90 = [west90 if adj else la / 2, west90]
    to_north90 = [north90, north90 if adj else Y - wa / 2]
    to_south90 = [south90 if adj else wa / 2, south90]
    y_lat0_flipped = [y + wb / 2 - mw, y - wb / 2 + mw]
    x_lat90_flipped = [x + wb / 2 - ml, x - wb / 2 + ml]
    y_lat90_flipped = [y + lb / 2 - mw, y - lb / 2 + mw]
    table = {
        "left of": {0.0: to_west0 + y_lat0, 90.0: x_lat90 + to_north90, 180.0: to_east0 + y_lat0,
                    270.0: x_lat90 + to_south90},
        "right of": {0.0: to_east0 + y_lat0, 90.0: x_lat90 + [south90, south90 if adj else wa / 2],
                     180.0: to_west0 + y_lat0_flipped, 270.0: x_lat90_flipped + to_north90},
        "in front": {0.0: x_lat0 + to_north0, 90.0: to_east90 + y_lat90, 180.0: x_lat0 + to_south0,
                     270.0: to_west90 + y_lat90},
        "behind": {0.0: x_lat0 + to_south0, 90.0: to_west90 + y_lat90, 180.0: x_lat0 + to_north0,
                   270.0: to_east90 + y_lat90_flipped},
    }
    box = table[kind][_angle(b)] + list(_side_z((la, wa, ha), b, floor, room))
    return _sorted_clamped(box, (la, wa, ha), room, 2)


def above(a_obj, b, adjacent, floor, room) -> Box:
    la, wa, ha = _dims(a_obj, True)
    lb, wb, hb = b["size_in_meters"]["length"], b["size_in_meters"]["width"], b["size_in_meters"]["height"]
    p = b["position"]
    if _angle(b) in (90.0, 270.0):
        lb, wb = wb, lb
    box = [p["x"] - lb / 2 - la / 2, p["x"] + lb / 2 + la / 2, p["y"] - wb / 2 - wa / 2, p["y"] + wb / 2 + wa / 2,
           p["z"] + hb / 2 + ha / 2 if not floor else ha / 2, room[2] if not floor else ha / 2]
    x0, x1, y0, y1, z0, z1 = _sorted_clamped(box, (la, wa, ha), room, 2)
    z0 = max(ha / 2, min(z0, room[2] - ha / 2))
    return x0, x1, y0, y1, max(z0, 0.0 + ha / 2), z1


def in_corner(a_obj, b, adjacent, floor, room) -> Box:
    la, wa, ha = _dims(a_obj, True)
    lb, wb, hb = b["size_in_meters"]["length"], b["size_in_meters"]["width"], b["size_in_meters"]["height"]
    p = b["position"]
    z = p["z"] - hb / 2 + ha / 2 if not floor else ha / 2
    angle = _angle(b)
    if angle in (0.0, 180.0):
        y = p["y"] + wb / 2 + wa / 2 if angle == 0.0 else p["y"] - wb / 2 - wa / 2
        return p["x"] - lb / 2 + la / 2, p["x"] + lb / 2 - la / 2, y, y, z, z
    x = p["x"] + wb / 2 + la / 2 if angle == 90.0 else p["x"] - wb / 2 - la / 2
    return x, x, p["y"] - lb / 2 + wa / 2, p["y"] + lb / 2 - wa / 2, z, z


FUNCTIONS: dict[str, Callable[..., Box]] = {"on": on, "under": under, "above": above, "in the corner": in_corner, "in the middle of": on,
             **{kind: partial(_directional, kind) for kind in ("left of", "right of", "in front", "behind")}}


def relation_boxes(obj: dict[str, Any], by_id: dict[str, dict[str, Any]], room) -> list[Box]:
    """Every relation box of `obj` whose target has a position (upstream's get_possible_positions)."""
    placement = obj["placement"]
    result = []
    for rel in placement["room_layout_elements"] + placement["objects_in_room"]:
        target = by_id[rel.get("layout_element_id", rel.get("object_id"))]
        if "position" in target:
            adjacent = rel.get("is_adjacent", True)
            result.append(FUNCTIONS[rel["preposition"]](obj, target, adjacent, obj["is_on_the_floor"], room))
    return result
