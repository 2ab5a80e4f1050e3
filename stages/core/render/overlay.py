"""Text drawn over the 3D views: object numbers (the plan's legend numbers), what was not placed,
and the "no valid layout" mark. Drawn with Pillow after rasterising, so it is crisp at any size."""

from __future__ import annotations

import textwrap

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .camera import Camera
from .layout import Arrangement
from .legend import font as load_font
from .legend import shows_labels
from .plan import spread_badges

TEXT = (36, 36, 44)
ALERT = (200, 40, 40)


def annotate(image: Image.Image, arr: Arrangement, camera: Camera, view: str) -> Image.Image:
    pixels = image.width
    draw = ImageDraw.Draw(image)
    font = load_font(max(9, pixels // 40))
    if shows_labels(pixels):
        _badges(draw, arr, camera, pixels, font)
    caption = view.replace("-", " ")
    undrawn = arr.undrawn
    if undrawn:
        names = ", ".join(f"{i.number} {i.id}" for i in undrawn[:4]) + (" …" if len(undrawn) > 4 else "")
        caption += f"  ·  not shown: {names}"
    draw.text((pixels * 0.02, pixels * 0.98), caption, fill=ALERT if undrawn else TEXT, font=font, anchor="ld")
    if arr.no_layout:
        _no_layout(draw, arr.error, pixels, font)
    return image


def _badges(draw: ImageDraw.ImageDraw, arr: Arrangement, camera: Camera, pixels: int,
            font: ImageFont.FreeTypeFont) -> None:
    """Each drawn object's number, in a white disc just above the object's top."""
    items = arr.drawn
    if not items:
        return
    tops = np.array([(i.position[0], i.position[1], i.position[2] + i.height / 2) for i in items if i.position])
    anchors = camera.project(tops, pixels)
    r = font.size * 0.7
    spots = spread_badges([(float(x), float(y)) for x, y in anchors], r, (0.0, 0.0, pixels, pixels))
    for item, (ax, ay), (x, y) in zip(items, anchors, spots, strict=True):
        if not (0 <= ax < pixels and 0 <= ay < pixels):
            continue
        if (x, y) != (ax, ay):
            draw.line([(ax, ay), (x, y)], fill=(60, 60, 60))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 255), outline=(60, 60, 60))
        draw.text((x, y), str(item.number), fill=TEXT, font=font, anchor="mm")


def _no_layout(draw: ImageDraw.ImageDraw, reason: str | None, pixels: int, font: ImageFont.FreeTypeFont) -> None:
    big = load_font(int(font.size * 1.9))
    lines = textwrap.wrap(reason or "", width=int(pixels * 0.8 / (font.size * 0.55)))[:3]
    cx, cy = pixels / 2, pixels * 0.45
    title = draw.textbbox((cx, cy), "NO VALID LAYOUT", font=big, anchor="mm")
    pad = font.size * 0.6
    body = draw.multiline_textbbox((cx, title[3] + pad * 0.6), "\n".join(lines), font=font, anchor="ma",
                                   align="center") if lines else title
    draw.rectangle([min(title[0], body[0]) - pad, title[1] - pad, max(title[2], body[2]) + pad, body[3] + pad],
                   fill=(255, 255, 255), outline=ALERT, width=max(2, pixels // 200))
    draw.text((cx, cy), "NO VALID LAYOUT", fill=ALERT, font=big, anchor="mm")
    if lines:
        draw.multiline_text((cx, title[3] + pad * 0.6), "\n".join(lines), fill=ALERT, font=font, anchor="ma",
                            align="center")
