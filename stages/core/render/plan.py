"""The top-down plan: the room from above, drawn with Pillow, exact and cheap (a few ms).

North is up. The floor carries a 1 m grid numbered along two sides, the walls are named, and each
placed object is its rotated footprint in its kind's colour, with an arrow on the side it faces and
a number that the legend on the right resolves to the object's id. Objects the answer left out or
placed unusably are listed in the legend as such; an answer with nothing drawable gets a red
"no valid layout" mark over the empty room. Shapes are drawn at twice the size and scaled down, so
edges are smooth. Without objects (gen-prompts' room image) the plan fills the whole picture.
"""

from __future__ import annotations

import math
import textwrap

from PIL import Image, ImageDraw, ImageFont

from ..scene import RoomSize
from .layout import Arrangement, Item, grid_lines
from .legend import ALERT, MUTED, TEXT, draw_legend, font, shows_labels, split_canvas
from .palette import KIND_COLOURS, shade

BACKGROUND = (246, 246, 244)
FLOOR = (226, 210, 184)
GRID = (200, 180, 150)
WALL = (70, 70, 78)
SUPERSAMPLE = 2
CEILING_HEIGHT = 1.9  # objects whose bottom is above this (lights, hanging things) are drawn as outlines


def room_plan(size: RoomSize, pixels: int = 512) -> Image.Image:
    """The empty room seen from above, with the grid and labelled walls (gen-prompts' room image)."""
    return draw_plan(Arrangement.empty_room(size), pixels)


def draw_plan(arr: Arrangement, pixels: int = 512) -> Image.Image:
    """Shapes are drawn at SUPERSAMPLE times the size and reduced (smooth edges); text is drawn
    afterwards at the final size, where Pillow anti-aliases it anyway."""
    big = Image.new("RGB", (pixels * SUPERSAMPLE, pixels * SUPERSAMPLE), BACKGROUND)
    base_font = font(max(9, pixels // 38))
    lo, span = plan_extent(arr)
    margins = (min(base_font.size * 4.2, pixels * 0.2), min(base_font.size * 3.0, pixels * 0.15))
    plan_box, legend_box, columns = split_canvas(arr, pixels, span, margins)
    plan = _PlanFrame(arr, plan_box, base_font, margins)
    pen = ImageDraw.Draw(big)
    plan.room_shapes(pen)
    for item in sorted(arr.drawn, key=lambda i: (i.position[2] + i.height / 2) if i.position else 0):
        plan.item_shapes(pen, item)
    badged = arr.drawn if shows_labels(pixels) else []
    plan.place_badges(badged)
    for item in badged:
        plan.badge_shape(pen, item)
    if arr.no_layout:
        plan.cross(pen)
    img = big.reduce(SUPERSAMPLE)
    pen = ImageDraw.Draw(img)
    plan.room_text(pen)
    for item in badged:
        plan.badge_text(pen, item)
    if arr.no_layout:
        plan.no_layout_text(pen, arr.error)
    if legend_box is not None:
        draw_legend(pen, arr, legend_box, columns, pixels)
    return img


def plan_extent(arr: Arrangement) -> tuple[tuple[float, float], tuple[float, float]]:
    """South-west corner and size (metres) of what the plan shows: the room and every drawn footprint."""
    xs, ys = [0.0, arr.room.x], [0.0, arr.room.y]
    for item in arr.drawn:
        for x, y in item.footprint():
            xs.append(x)
            ys.append(y)
    return (min(xs), min(ys)), (max(xs) - min(xs), max(ys) - min(ys))


class _PlanFrame:
    """Metres -> pixels for the plan area, fitted to the room and every drawn footprint.
    `px` gives final-image pixels; `big` the same point on the supersampled canvas."""

    def __init__(self, arr: Arrangement, box: tuple[int, int, int, int], font: ImageFont.FreeTypeFont,
                 margins: tuple[float, float]) -> None:
        self.arr, self.font = arr, font
        self.lo, (span_x, span_y) = plan_extent(arr)
        left, top, right, bottom = box
        self.scale = min((right - left - 2 * margins[0]) / span_x, (bottom - top - 2 * margins[1]) / span_y)
        self.x0 = left + (right - left - span_x * self.scale) / 2
        self.y0 = top + (bottom - top - span_y * self.scale) / 2
        self.span_x, self.span_y = span_x, span_y
        self.badges: dict[str, tuple[float, float]] = {}
        self.unit = max(1, round(font.size / 13)) * SUPERSAMPLE  # line width on the big canvas

    def px(self, x: float, y: float) -> tuple[float, float]:
        return self.x0 + (x - self.lo[0]) * self.scale, self.y0 + (self.span_y - (y - self.lo[1])) * self.scale

    def big(self, x: float, y: float) -> tuple[float, float]:
        u, v = self.px(x, y)
        return u * SUPERSAMPLE, v * SUPERSAMPLE

    def room_shapes(self, pen: ImageDraw.ImageDraw) -> None:
        room, u = self.arr.room, self.unit
        pen.rectangle([self.big(0, room.y), self.big(room.x, 0)], fill=FLOOR)
        for m in grid_lines(room.x):
            pen.line([self.big(m, 0), self.big(m, room.y)], fill=GRID, width=u)
        for m in grid_lines(room.y):
            pen.line([self.big(0, m), self.big(room.x, m)], fill=GRID, width=u)
        pen.rectangle([self.big(0, room.y), self.big(room.x, 0)], outline=WALL, width=3 * u)

    def room_text(self, pen: ImageDraw.ImageDraw) -> None:
        """Metre numbers and wall names; a text that would cross the picture's edge (small pictures)
        is left out rather than cut, and the south wall's room size goes first."""
        room, f = self.arr.room, self.font
        gap = f.size * 0.4
        width, height = pen.im.size

        def put(xy: tuple[float, float], texts: list[str], fill: tuple[int, int, int], anchor: str) -> None:
            for text in texts:
                left, top, right, bottom = pen.textbbox(xy, text, font=f, anchor=anchor)
                if left >= 0 and top >= 0 and right <= width and bottom <= height:
                    pen.text(xy, text, fill=fill, font=f, anchor=anchor)
                    return

        origin = ["0 m"] if pen.textlength("0 m1", font=f) < self.scale else ["0"]  # "0 m" fits in a metre
        for m in [0.0, *grid_lines(room.x), *([room.x] if room.x == int(room.x) else [])]:
            x, y = self.px(m, 0)
            put((x, y + gap), origin if m == 0 else [f"{m:g}"], MUTED, "mt")
        for m in [*grid_lines(room.y), *([room.y] if room.y == int(room.y) else [])]:
            x, y = self.px(0, m)
            put((x - gap, y), [f"{m:g}"], MUTED, "rm")
        cx, top = self.px(room.x / 2, room.y)
        _, bottom = self.px(room.x / 2, 0)
        left, cy = self.px(0, room.y / 2)
        right, _ = self.px(room.x, room.y / 2)
        put((cx, top - gap), ["north wall"], TEXT, "md")
        put((cx, bottom + gap * 2 + f.size), [f"south wall  ·  room {room.x:g} x {room.y:g} m, {room.z:g} m high",
                                               "south wall"], TEXT, "mt")
        put((left - gap * 2 - f.size * 0.6, cy), ["west"], TEXT, "rm")
        put((right + gap, cy), ["east"], TEXT, "lm")

    def item_shapes(self, pen: ImageDraw.ImageDraw, item: Item) -> None:
        colour = KIND_COLOURS[item.kind]
        corners = [self.big(x, y) for x, y in item.footprint()]
        assert item.position is not None
        hanging = item.position[2] - item.height / 2 > CEILING_HEIGHT
        outline = ALERT if self.arr.outside(item) else shade(colour, 0.55)
        pen.polygon(corners, fill=None if hanging else colour, outline=outline, width=self.unit)
        self._arrow(pen, item, shade(colour, 0.4))

    def _arrow(self, pen: ImageDraw.ImageDraw, item: Item, colour: tuple[int, int, int]) -> None:
        """A small triangle just inside the front edge, pointing where the object faces."""
        assert item.position is not None
        fx, fy = item.facing()
        size = min(item.length, item.width) * 0.35
        tip = (item.position[0] + fx * item.width * 0.48, item.position[1] + fy * item.width * 0.48)
        base = (tip[0] - fx * size * 0.8, tip[1] - fy * size * 0.8)
        side = (-fy * size * 0.5, fx * size * 0.5)
        pts = [tip, (base[0] + side[0], base[1] + side[1]), (base[0] - side[0], base[1] - side[1])]
        pen.polygon([self.big(x, y) for x, y in pts], fill=colour)

    def place_badges(self, items: list[Item]) -> None:
        """Final number positions: beside small objects, and nudged apart where they would overlap."""
        wanted = [self.badge_at(item) for item in items]
        r = self.font.size * 0.75
        right = self.x0 + (self.span_x * self.scale)
        bounds = (0.0, 0.0, right + r * 4, self.y0 * 2 + self.span_y * self.scale)
        self.badges = dict(zip([i.id for i in items], spread_badges(wanted, r, bounds), strict=True))

    def badge_at(self, item: Item) -> tuple[float, float]:
        """Where the object's number goes: its centre, or beside it (towards the room's middle,
        with a leader line) when the object is too small to show around the number."""
        assert item.position is not None
        x, y = self.px(item.position[0], item.position[1])
        r = self.font.size * 0.75
        corners = [self.px(cx, cy) for cx, cy in item.footprint()]
        width = max(c[0] for c in corners) - min(c[0] for c in corners)
        height = max(c[1] for c in corners) - min(c[1] for c in corners)
        if max(width, height) >= 3.5 * r or min(width, height) >= 2 * r:  # the object shows around the disc
            return x, y
        mx, my = self.px(self.arr.room.x / 2, self.arr.room.y / 2)
        dx, dy = mx - x, my - y
        norm = math.hypot(dx, dy) or 1.0
        step = r + max(width, height) / 2 + r * 0.6
        return x + dx / norm * step, y + dy / norm * step

    def badge_shape(self, pen: ImageDraw.ImageDraw, item: Item) -> None:
        """A white disc for the object's legend number (with a leader line if moved aside)."""
        assert item.position is not None
        x, y = self.badges[item.id]
        k = SUPERSAMPLE
        cx, cy = self.px(item.position[0], item.position[1])
        if (cx, cy) != (x, y):
            pen.line([(cx * k, cy * k), (x * k, y * k)], fill=(60, 60, 60), width=self.unit // 2 or 1)
        r = self.font.size * 0.75
        pen.ellipse([(x - r) * k, (y - r) * k, (x + r) * k, (y + r) * k], fill=(255, 255, 255),
                    outline=(60, 60, 60), width=self.unit // 2 or 1)

    def badge_text(self, pen: ImageDraw.ImageDraw, item: Item) -> None:
        pen.text(self.badges[item.id], str(item.number), fill=TEXT, font=self.font, anchor="mm")

    def cross(self, pen: ImageDraw.ImageDraw) -> None:
        room = self.arr.room
        (left, top), (right, bottom) = self.big(0, room.y), self.big(room.x, 0)
        pen.line([(left, top), (right, bottom)], fill=ALERT, width=2 * self.unit)
        pen.line([(left, bottom), (right, top)], fill=ALERT, width=2 * self.unit)

    def no_layout_text(self, pen: ImageDraw.ImageDraw, reason: str | None) -> None:
        room = self.arr.room
        (left, top), (right, bottom) = self.px(0, room.y), self.px(room.x, 0)
        big = font(int(self.font.size * 1.8))
        cx, cy = (left + right) / 2, (top + bottom) / 2
        pad = self.font.size * 0.5
        lines = textwrap.wrap(reason or "", width=max(20, int((right - left) / (self.font.size * 0.55))))[:3]
        title = pen.textbbox((cx, cy), "NO VALID LAYOUT", font=big, anchor="mm")
        text = "\n".join(lines)
        body = pen.multiline_textbbox((cx, title[3] + pad), text, font=self.font, anchor="ma",
                                      align="center") if lines else title
        pen.rectangle([min(title[0], body[0]) - pad, title[1] - pad, max(title[2], body[2]) + pad, body[3] + pad],
                      fill=(255, 255, 255), outline=ALERT, width=2)
        pen.text((cx, cy), "NO VALID LAYOUT", fill=ALERT, font=big, anchor="mm")
        if lines:
            pen.multiline_text((cx, title[3] + pad), text, fill=ALERT, font=self.font, anchor="ma", align="center")


def spread_badges(points: list[tuple[float, float]], r: float,
                  bounds: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    """Number discs of radius r at the given points, each moved to the nearest free spot (8
    directions, growing distance) when it would cover one already placed; greedy, in order."""
    placed: list[tuple[float, float]] = []
    left, top, right, bottom = bounds

    def free(x: float, y: float) -> bool:
        return (left + r <= x <= right - r and top + r <= y <= bottom - r
                and all((x - px) ** 2 + (y - py) ** 2 >= (1.9 * r) ** 2 for px, py in placed))

    for x, y in points:
        spot = (x, y)
        if placed and not free(x, y):
            candidates = [(x + d * r * math.cos(a), y + d * r * math.sin(a))
                          for d in (2.0, 3.0, 4.0, 5.5) for a in (k * math.pi / 4 for k in range(8))]
            spot = next((c for c in candidates if free(*c)), spot)
        placed.append(spot)
    return placed
