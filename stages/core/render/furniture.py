"""Procedural furniture: a recognisable mesh per kind, scaled to the object's size box.

Each builder gets the box (length along x, width along y, height along z; metres), the kind's
colour and the category name, and returns triangles centred on the box centre with the object's
front towards +y (the scene's facing convention at 0 degrees). Parts are sized in metres where
real furniture has fixed proportions (legs, seat height, a cabinet's door gap) and in fractions of
the box elsewhere, so a 2 m table keeps slim legs. Parts are then clipped to the box, so whatever
sizes a scene declares, what the model was told an object occupies is exactly what is drawn.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

from .palette import KIND_COLOURS, RGB, kind_of, shade
from .primitives import Soup, box, shape

WHITE_LINEN = (238, 234, 226)
DARK = (44, 48, 56)
GLASS = (176, 206, 222)
TERRACOTTA = (184, 104, 72)
BRASS = (190, 160, 90)


class Frame:
    """The object's box in local coordinates, with helpers that place parts inside it."""

    def __init__(self, length: float, width: float, height: float) -> None:
        self.L, self.W, self.H = length, width, height
        self.x0, self.x1 = -length / 2, length / 2
        self.y0, self.y1 = -width / 2, width / 2
        self.z0, self.z1 = -height / 2, height / 2

    def z(self, frac: float) -> float:
        return self.z0 + frac * self.H

    def legs(self, top: float, thick: float, colour: RGB, inset: float = 0.0) -> list[Soup]:
        """Four legs at the corners, from the floor of the box up to `top`."""
        t = min(thick, self.L / 4, self.W / 4)
        xs = [(self.x0 + inset, self.x0 + inset + t), (self.x1 - inset - t, self.x1 - inset)]
        ys = [(self.y0 + inset, self.y0 + inset + t), (self.y1 - inset - t, self.y1 - inset)]
        return [box((x[0], x[1], y[0], y[1], self.z0, top), colour) for x in xs for y in ys]


def _bed(f: Frame, c: RGB, name: str) -> list[Soup]:
    base_top = f.z0 + min(0.3, f.H * 0.35)
    mattress_top = min(base_top + 0.22, f.z1 - 0.02)
    head = min(0.08, f.W * 0.1)
    pillow_y = f.y0 + head
    pillow_w = min(0.35, f.W * 0.22)
    gap = f.L * 0.04
    return [
        box((f.x0, f.x1, f.y0, f.y1, f.z0, base_top), shade(c, 0.7)),
        box((f.x0, f.x1, f.y0, f.y0 + head, f.z0, f.z1), shade(c, 0.6)),
        box((f.x0 + 0.02, f.x1 - 0.02, f.y0 + head, f.y1 - 0.02, base_top, mattress_top), WHITE_LINEN),
        box((f.x0 + 0.01, f.x1 - 0.01, pillow_y + pillow_w + 0.05, f.y1, base_top + 0.02, mattress_top + 0.02), c),
        box((f.x0 + gap, -gap / 2, pillow_y + 0.03, pillow_y + pillow_w, mattress_top, mattress_top + 0.06),
            WHITE_LINEN),
        box((gap / 2, f.x1 - gap, pillow_y + 0.03, pillow_y + pillow_w, mattress_top, mattress_top + 0.06),
            WHITE_LINEN),
    ]


def _seating(f: Frame, c: RGB, name: str) -> list[Soup]:
    """Sofas and armchairs: a solid base, seat cushions, a back and two arms."""
    if "bean" in name:
        return [shape("sphere", (f.x0, f.x1, f.y0, f.y1, f.z0 - f.H * 0.3, f.z1), c)]
    seat = f.z(min(0.5, 0.45 / f.H if f.H > 0.45 else 0.5))
    back = min(0.22, f.W * 0.3)
    arm = min(0.16, f.L * 0.12)
    return [
        box((f.x0, f.x1, f.y0, f.y1, f.z0 + 0.06, seat - 0.1), shade(c, 0.75)),
        box((f.x0 + arm, f.x1 - arm, f.y0 + back, f.y1 - 0.02, seat - 0.1, seat), shade(c, 1.12)),
        box((f.x0, f.x1, f.y0, f.y0 + back, f.z0 + 0.06, f.z1), c),
        box((f.x0, f.x0 + arm, f.y0, f.y1, f.z0 + 0.06, f.z(0.72)), shade(c, 0.9)),
        box((f.x1 - arm, f.x1, f.y0, f.y1, f.z0 + 0.06, f.z(0.72)), shade(c, 0.9)),
        *f.legs(f.z0 + 0.06, 0.05, DARK, inset=0.03),
    ]


def _chair(f: Frame, c: RGB, name: str) -> list[Soup]:
    seat = f.z(0.5) if f.H > 0.6 else f.z(0.55)
    back = min(0.06, f.W * 0.15)
    wood = shade(c, 0.6)
    return [
        *f.legs(seat - 0.04, 0.04, wood, inset=0.02),
        box((f.x0, f.x1, f.y0, f.y1, seat - 0.05, seat), c),
        box((f.x0 + 0.02, f.x1 - 0.02, f.y0, f.y0 + back, seat, f.z1), shade(c, 0.85)),
    ]


def _stool(f: Frame, c: RGB, name: str) -> list[Soup]:
    if "ottoman" in name or "pouf" in name:
        return [box((f.x0, f.x1, f.y0, f.y1, f.z0, f.z1 - 0.05), shade(c, 0.8)),
                box((f.x0 + 0.01, f.x1 - 0.01, f.y0 + 0.01, f.y1 - 0.01, f.z1 - 0.05, f.z1), shade(c, 1.1))]
    return [shape("cylinder", (f.x0, f.x1, f.y0, f.y1, f.z1 - 0.05, f.z1), c),
            *f.legs(f.z1 - 0.05, 0.035, shade(c, 0.55), inset=min(f.L, f.W) * 0.12)]


def _table(f: Frame, c: RGB, name: str) -> list[Soup]:
    top = min(0.05, f.H * 0.12)
    if any(w in name for w in ("counter", "island")):
        return [box((f.x0 + 0.03, f.x1 - 0.03, f.y0 + 0.03, f.y1 - 0.03, f.z0, f.z1 - top), shade(c, 0.75)),
                box((f.x0, f.x1, f.y0, f.y1, f.z1 - top, f.z1), (222, 220, 214))]
    if "bench" in name:
        return [box((f.x0, f.x1, f.y0, f.y1, f.z1 - top, f.z1), c),
                box((f.x0 + 0.05, f.x0 + 0.1, f.y0 + 0.03, f.y1 - 0.03, f.z0, f.z1 - top), shade(c, 0.6)),
                box((f.x1 - 0.1, f.x1 - 0.05, f.y0 + 0.03, f.y1 - 0.03, f.z0, f.z1 - top), shade(c, 0.6))]
    return [box((f.x0, f.x1, f.y0, f.y1, f.z1 - top, f.z1), c),
            *f.legs(f.z1 - top, 0.06, shade(c, 0.65), inset=0.04)]


def _desk(f: Frame, c: RGB, name: str) -> list[Soup]:
    top = min(0.04, f.H * 0.1)
    drawers = min(0.45, f.L * 0.35)
    return [box((f.x0, f.x1, f.y0, f.y1, f.z1 - top, f.z1), c),
            box((f.x1 - drawers, f.x1 - 0.02, f.y0 + 0.02, f.y1 - 0.02, f.z0, f.z1 - top), shade(c, 0.8)),
            box((f.x1 - drawers + 0.03, f.x1 - 0.05, f.y1 - 0.02, f.y1, f.z(0.55), f.z(0.85)), shade(c, 1.15)),
            box((f.x0 + 0.02, f.x0 + 0.06, f.y0 + 0.02, f.y1 - 0.02, f.z0, f.z1 - top), shade(c, 0.65))]


def _doors(f: Frame, c: RGB, bottom: float, top: float) -> list[Soup]:
    """Door or drawer fronts across the +y face, separated by dark gaps."""
    count = max(1, round(f.L / 0.55))
    step = f.L / count
    gap = min(0.015, step * 0.05)
    doors = []
    for i in range(count):
        x0 = f.x0 + i * step + gap
        doors.append(box((x0, x0 + step - 2 * gap, f.y1 - 0.02, f.y1, bottom + gap, top - gap), shade(c, 1.12)))
    return doors


def _cabinet(f: Frame, c: RGB, name: str) -> list[Soup]:
    plinth = min(0.06, f.H * 0.08)
    depth = max(f.y1 - 0.02, f.y0 + 0.01)
    return [box((f.x0, f.x1, f.y0, depth, f.z0 + plinth, f.z1), c),
            box((f.x0 + 0.02, f.x1 - 0.02, f.y0 + 0.02, depth - 0.02, f.z0, f.z0 + plinth), DARK),
            *_doors(f, c, f.z0 + plinth, f.z1)]


def _shelf(f: Frame, c: RGB, name: str) -> list[Soup]:
    side = min(0.03, f.L * 0.1)
    parts = [box((f.x0, f.x0 + side, f.y0, f.y1, f.z0, f.z1), shade(c, 0.8)),
             box((f.x1 - side, f.x1, f.y0, f.y1, f.z0, f.z1), shade(c, 0.8)),
             box((f.x0, f.x1, f.y0, f.y0 + min(0.02, f.W * 0.2), f.z0, f.z1), shade(c, 0.65))]
    levels = max(1, round(f.H / 0.38))
    book_colours = [(170, 70, 60), (70, 100, 150), (220, 190, 120), (90, 130, 90), (120, 80, 120)]
    for i in range(levels + 1):
        z = f.z0 + i * f.H / levels
        parts.append(box((f.x0, f.x1, f.y0, f.y1, max(f.z0, z - 0.025), min(f.z1, z)), c))
        if i < levels and "rack" not in name:
            height = min(0.28, f.H / levels * 0.7)
            parts.append(box((f.x0 + side + 0.02, f.x0 + side + 0.02 + (f.L - 2 * side) * 0.6, f.y0 + 0.03,
                              f.y1 - 0.04, z, z + height), book_colours[i % len(book_colours)]))
    return parts


def _screen(f: Frame, c: RGB, name: str) -> list[Soup]:
    stand = f.H * 0.18 if "monitor" in name or f.W > 0.15 else 0.0
    panel = min(0.06, f.W)
    y0 = -panel / 2
    parts = [box((f.x0, f.x1, y0, y0 + panel, f.z0 + stand, f.z1), c),
             box((f.x0 + 0.02, f.x1 - 0.02, y0 + panel, min(y0 + panel + 0.005, f.y1), f.z0 + stand + 0.02,
                  f.z1 - 0.02), DARK)]
    if stand:
        parts += [box((-0.03, 0.03, y0 - 0.02, y0, f.z0, f.z0 + stand + 0.05), shade(c, 0.7)),
                  box((f.x0 * 0.4, f.x1 * 0.4, f.y0, f.y1, f.z0, f.z0 + 0.02), shade(c, 0.7))]
    return parts


def _lamp(f: Frame, c: RGB, name: str) -> list[Soup]:
    shade_h = f.H * 0.35
    pole = min(0.03, f.L * 0.1)
    return [shape("cylinder", (f.x0 * 0.6, f.x1 * 0.6, f.y0 * 0.6, f.y1 * 0.6, f.z0, f.z0 + 0.03), DARK),
            box((-pole / 2, pole / 2, -pole / 2, pole / 2, f.z0, f.z1 - shade_h), BRASS),
            shape("cylinder", (f.x0, f.x1, f.y0, f.y1, f.z1 - shade_h, f.z1), c)]


def _ceiling_light(f: Frame, c: RGB, name: str) -> list[Soup]:
    return [shape("cylinder", (f.x0 * 0.3, f.x1 * 0.3, f.y0 * 0.3, f.y1 * 0.3, f.z(0.5), f.z1), BRASS),
            shape("sphere", (f.x0, f.x1, f.y0, f.y1, f.z0, f.z(0.7)), c)]


def _plant(f: Frame, c: RGB, name: str) -> list[Soup]:
    pot = f.z(0.3)
    return [shape("cylinder", (f.x0 * 0.6, f.x1 * 0.6, f.y0 * 0.6, f.y1 * 0.6, f.z0, pot), TERRACOTTA),
            shape("sphere", (f.x0, f.x1, f.y0, f.y1, pot - 0.02, f.z1), c)]


def _flat(f: Frame, c: RGB, name: str) -> list[Soup]:
    """Rugs and mats: a slab with a lighter field inside a border."""
    border = min(0.08, f.L * 0.08, f.W * 0.08)
    return [box((f.x0, f.x1, f.y0, f.y1, f.z0, f.z1 - 0.002), shade(c, 0.8)),
            box((f.x0 + border, f.x1 - border, f.y0 + border, f.y1 - border, f.z1 - 0.003, f.z1), c)]


def _wall_art(f: Frame, c: RGB, name: str) -> list[Soup]:
    if "clock" in name:
        face = f.y1 - min(0.004, f.W * 0.2)
        return [shape("ycylinder", (f.x0, f.x1, f.y0, face, f.z0, f.z1), (240, 240, 236)),
                box((-0.01, 0.01, face, f.y1, 0.0, f.H * 0.35), DARK),
                box((0.0, f.L * 0.3, face, f.y1, -0.01, 0.01), DARK)]
    inner = (250, 250, 248) if "whiteboard" in name or "board" in name else shade(c, 1.35)
    rim = min(0.05, f.L * 0.08, f.H * 0.08)
    return [box((f.x0, f.x1, f.y0, f.y1, f.z0, f.z1), c),
            box((f.x0 + rim, f.x1 - rim, f.y1 - 0.002, f.y1, f.z0 + rim, f.z1 - rim), inner)]


def _mirror(f: Frame, c: RGB, name: str) -> list[Soup]:
    rim = min(0.04, f.L * 0.08)
    return [box((f.x0, f.x1, f.y0, f.y1, f.z0, f.z1), BRASS),
            box((f.x0 + rim, f.x1 - rim, f.y1 - 0.002, f.y1, f.z0 + rim, f.z1 - rim), c)]


def _bath(f: Frame, c: RGB, name: str) -> list[Soup]:
    if "shower" in name:
        wall = 0.03
        return [box((f.x0, f.x1, f.y0, f.y1, f.z0, f.z0 + 0.1), c),
                box((f.x0, f.x1, f.y0, f.y0 + wall, f.z0, f.z1), GLASS),
                box((f.x0, f.x0 + wall, f.y0, f.y1, f.z0, f.z1), GLASS),
                box((f.x1 - wall, f.x1, f.y0, f.y1, f.z0, f.z1), GLASS)]
    rim = min(0.08, f.L * 0.12, f.W * 0.12)
    return [box((f.x0, f.x1, f.y0, f.y1, f.z0, f.z1 - 0.003), c),
            box((f.x0 + rim, f.x1 - rim, f.y0 + rim, f.y1 - rim, f.z1 - 0.006, f.z1), shade(GLASS, 0.85))]


def _toilet(f: Frame, c: RGB, name: str) -> list[Soup]:
    tank = min(0.2, f.W * 0.35)
    return [box((f.x0, f.x1, f.y0, f.y0 + tank, f.z(0.45), f.z1), c),
            shape("cylinder", (f.x0 + 0.04, f.x1 - 0.04, f.y0 + tank - 0.05, f.y1, f.z0, f.z(0.5)), shade(c, 0.92))]


def _fitness(f: Frame, c: RGB, name: str) -> list[Soup]:
    if "bench" in name:
        return [box((f.x0, f.x1, f.y0, f.y1, f.z1 - 0.08, f.z1), DARK),
                *f.legs(f.z1 - 0.08, 0.05, c, inset=0.05)]
    deck = f.z0 + min(0.2, f.H * 0.18)
    return [box((f.x0, f.x1, f.y0, f.y1, f.z0, deck), c),
            box((f.x0 + 0.05, f.x1 - 0.05, f.y0 + 0.05, f.y1 - 0.25, deck, deck + 0.01), DARK),
            box((f.x0, f.x0 + 0.05, f.y1 - 0.2, f.y1 - 0.12, deck, f.z1 - 0.1), shade(c, 0.7)),
            box((f.x1 - 0.05, f.x1, f.y1 - 0.2, f.y1 - 0.12, deck, f.z1 - 0.1), shade(c, 0.7)),
            box((f.x0, f.x1, f.y1 - 0.25, f.y1, f.z1 - 0.1, f.z1), DARK)]


def _appliance(f: Frame, c: RGB, name: str) -> list[Soup]:
    if "fireplace" in name:
        return [box((f.x0, f.x1, f.y0, f.y1 - 0.003, f.z0, f.z1), (190, 176, 160)),
                box((f.x0 + f.L * 0.2, f.x1 - f.L * 0.2, f.y1 - 0.01, f.y1, f.z0 + 0.05, f.z(0.6)), DARK)]
    return [box((f.x0, f.x1, f.y0, f.y1 - 0.003, f.z0, f.z1), c),
            box((f.x0 + f.L * 0.1, f.x1 - f.L * 0.1, f.y1 - 0.006, f.y1, f.z(0.15), f.z(0.75)), shade(DARK, 1.3))]


def _decor(f: Frame, c: RGB, name: str) -> list[Soup]:
    if "globe" in name:
        return [shape("cylinder", (f.x0 * 0.5, f.x1 * 0.5, f.y0 * 0.5, f.y1 * 0.5, f.z0, f.z0 + 0.03), BRASS),
                shape("sphere", (f.x0, f.x1, f.y0, f.y1, f.z(0.2), f.z1), (90, 140, 200))]
    if "tent" in name:
        return [shape("cone", (f.x0, f.x1, f.y0, f.y1, f.z0, f.z1), c)]
    if "bowl" in name:
        return [shape("sphere", (f.x0, f.x1, f.y0, f.y1, f.z0, f.z1), c)]
    if "book" in name or "tower" in name:
        n = 4
        return [box((f.x0, f.x1, f.y0, f.y1, f.z0 + i * f.H / n, f.z0 + (i + 1) * f.H / n), shade(c, 0.7 + 0.15 * i))
                for i in range(n)]
    return [shape("cylinder", (f.x0, f.x1, f.y0, f.y1, f.z0, f.z1), c)]


def _plain_box(f: Frame, c: RGB, name: str) -> list[Soup]:
    return [box((f.x0, f.x1, f.y0, f.y1, f.z0, f.z1), c)]


BUILDERS: dict[str, Callable[[Frame, RGB, str], list[Soup]]] = {
    "bed": _bed, "sofa": _seating, "armchair": _seating, "chair": _chair, "stool": _stool, "table": _table,
    "desk": _desk, "cabinet": _cabinet, "wardrobe": _cabinet, "shelf": _shelf, "screen": _screen, "lamp": _lamp,
    "ceiling_light": _ceiling_light, "plant": _plant, "rug": _flat, "mat": _flat, "wall_art": _wall_art,
    "mirror": _mirror, "bath": _bath, "toilet": _toilet, "fitness": _fitness, "appliance": _appliance,
    "decor": _decor, "box": _plain_box,
}


@lru_cache(maxsize=4096)
def furniture(object_id: str, length: float, width: float, height: float) -> Soup:
    """The procedural mesh of an object, centred on its box centre, front towards +y.
    Cached: the rollouts of one prompt draw the same objects many times. Treat it as read-only."""
    kind = kind_of(object_id)
    soup = Soup.join(BUILDERS[kind](Frame(length, width, height), KIND_COLOURS[kind], object_id.lower()))
    half = np.array([length, width, height], np.float32) / 2
    return Soup(np.clip(soup.tris, -half, half), soup.colours)
