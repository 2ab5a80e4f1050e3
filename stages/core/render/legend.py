"""The plan's legend (number, colour and id of every object, and why an object is not drawn), and
where it goes: beside the plan for deep rooms, below it in columns for wide ones, whichever leaves
the room drawn larger."""

from __future__ import annotations

import math
from functools import lru_cache

from PIL import ImageDraw, ImageFont

from .layout import Arrangement
from .palette import KIND_COLOURS, shade

TEXT = (36, 36, 44)
MUTED = (120, 120, 126)
ALERT = (200, 40, 40)
Box = tuple[int, int, int, int]
# Below this size a legend's smallest legible text (9 px) and the number discs cover what they name
# (a 128 px plan draws the room ~40 px wide): smaller plans and views show the shapes alone.
LABELS_MIN_PIXELS = 256


def shows_labels(pixels: int) -> bool:
    """Whether a picture of this size carries object numbers and a legend."""
    return pixels >= LABELS_MIN_PIXELS


@lru_cache(maxsize=32)
def font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's bundled font at `size` px (loaded once per size and process)."""
    return ImageFont.load_default(size=size)  # type: ignore[return-value]


def _lines(arr: Arrangement) -> int:
    return len(arr.items) + sum(1 for i in arr.items if arr.note(i)) + (2 if arr.unknown else 0)


def split_canvas(arr: Arrangement, pixels: int, span: tuple[float, float],
                 margins: tuple[float, float]) -> tuple[Box, Box | None, int]:
    """(plan box, legend box, legend columns) for a plan of `span` metres (x, y)."""
    full = (0, 0, pixels, pixels)
    if not arr.items or not shows_labels(pixels):
        return full, None, 1
    line = max(9, pixels // 38) * 1.25
    side_width = int(pixels * 0.3)
    columns = 3 if pixels >= 384 else 2
    below_height = int((math.ceil(_lines(arr) / columns) + 1.6) * line + pixels * 0.02)
    options = [((0, 0, pixels - side_width, pixels), (pixels - side_width, 0, pixels, pixels), 1),
               ((0, 0, pixels, pixels - below_height), (0, pixels - below_height, pixels, pixels), columns)]

    def scale(box: Box) -> float:
        return min((box[2] - box[0] - 2 * margins[0]) / span[0], (box[3] - box[1] - 2 * margins[1]) / span[1])

    return max(options, key=lambda option: scale(option[0]))


def draw_legend(draw: ImageDraw.ImageDraw, arr: Arrangement, box: Box, columns: int, pixels: int) -> None:
    """Entries flow down the first column, then the next; unplaced objects greyed with the reason."""
    left, top, right, bottom = box
    per_column = math.ceil(_lines(arr) / columns) + 1.6
    size = max(8, min(pixels // 38, int((bottom - top - pixels * 0.02) / per_column / 1.25)))
    small = font(size)
    line = size * 1.25
    width = (right - left) / columns
    x, y = left + size * 0.4, top + pixels * 0.01 + (pixels * 0.02 if columns == 1 else 0)
    draw.text((x, y), "Objects", fill=TEXT, font=small)
    y += line * 1.2
    first_row, column = y, 0
    max_chars = max(6, int((width - size) / (size * 0.52)) - 3)
    sw = size * 0.8
    for item in arr.items:
        note = arr.note(item)
        rows_needed = 2 if note else 1
        if y + rows_needed * line > bottom:
            if column + 1 >= columns:
                draw.text((x, y - line * 0.2), f"+{len(arr.items) - item.number + 1} more", fill=MUTED, font=small)
                return
            x, y, column = x + width, first_row, column + 1
        colour = KIND_COLOURS[item.kind]
        if item.drawn:
            draw.rectangle([x, y + 1, x + sw, y + 1 + sw], fill=colour, outline=shade(colour, 0.55))
        else:
            draw.rectangle([x, y + 1, x + sw, y + 1 + sw], outline=MUTED, width=max(1, size // 8))
        draw.text((x + sw + size * 0.4, y), _clip(f"{item.number} {item.id}", max_chars),
                  fill=TEXT if item.drawn else MUTED, font=small)
        y += line
        if note:
            draw.text((x + sw + size * 0.4, y), _clip(note, max_chars), fill=ALERT, font=small)
            y += line
    if arr.unknown:
        if y + 2 * line > bottom and column + 1 < columns:
            x, y = x + width, first_row
        draw.text((x, y), "unknown ids in the answer:", fill=ALERT, font=small)
        draw.text((x, y + line), _clip(", ".join(arr.unknown), max_chars + 2), fill=ALERT, font=small)


def _clip(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: max(1, chars - 1)] + "…"
