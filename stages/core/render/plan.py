"""A top-down floor plan of an empty room, drawn with Pillow: the grid in metres and the walls named.

Cheap (a few ms) and exact; `gen-prompts` uses it as the room image the model is shown.
"""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

from .scene import RoomSize

BACKGROUND = (245, 244, 240)
FLOOR = (222, 206, 178)
GRID = (196, 178, 150)
WALL = (70, 70, 78)
TEXT = (40, 40, 48)


def room_plan(size: RoomSize, pixels: int = 512) -> Image.Image:
    """The room seen from above, north up, with a 1 m grid and labelled walls."""
    img = Image.new("RGB", (pixels, pixels), BACKGROUND)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=max(10, pixels // 36))
    margin = pixels * 0.12
    scale = (pixels - 2 * margin) / max(size.x, size.y)
    x0 = (pixels - size.x * scale) / 2
    y0 = (pixels - size.y * scale) / 2

    def to_px(x: float, y: float) -> tuple[float, float]:
        return x0 + x * scale, y0 + (size.y - y) * scale  # y grows north, pixels grow down

    draw.rectangle([to_px(0, size.y), to_px(size.x, 0)], fill=FLOOR)
    for m in range(1, int(size.x) + 1):
        if m < size.x:
            draw.line([to_px(m, 0), to_px(m, size.y)], fill=GRID, width=1)
        draw.text(to_px(m, 0), f"{m}", fill=TEXT, font=font, anchor="mt")
    for m in range(1, int(size.y) + 1):
        if m < size.y:
            draw.line([to_px(0, m), to_px(size.x, m)], fill=GRID, width=1)
        draw.text(to_px(0, m), f"{m} ", fill=TEXT, font=font, anchor="rm")
    draw.rectangle([to_px(0, size.y), to_px(size.x, 0)], outline=WALL, width=max(2, pixels // 128))
    draw.text(to_px(size.x / 2, size.y), "north_wall", fill=TEXT, font=font, anchor="md")
    draw.text((to_px(size.x / 2, 0)[0], to_px(0, 0)[1] + margin * 0.45), "south_wall", fill=TEXT, font=font, anchor="mt")
    draw.text((to_px(0, size.y / 2)[0] - margin * 0.35, to_px(0, size.y / 2)[1]), "west", fill=TEXT, font=font, anchor="rm")
    draw.text(to_px(size.x, size.y / 2), " east", fill=TEXT, font=font, anchor="lm")
    draw.text((pixels / 2, pixels - 4), f"{size.x:g} m × {size.y:g} m × {size.z:g} m (x × y × height)",
              fill=TEXT, font=font, anchor="md")
    return img
