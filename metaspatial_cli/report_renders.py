"""The galleries' pictures, drawn again for the report at a readable size.

Training renders are as small as a run can afford (the quickstart's are 128 px, where the room is
~40 px wide); the report shows the same layouts as 512 px plans, which the engine draws in tens of
milliseconds without a GL context. A row that cannot be drawn again (no scene or answer columns, a
dataset assembled by hand) keeps its stored render.
"""

from __future__ import annotations

import io
from typing import Any

from stages.core.errors import UserError

REPORT_PIXELS = 512
NEEDED = ("response", "scene", "room_x", "room_y", "room_z")


def plan_png(row: dict[str, Any], pixels: int = REPORT_PIXELS) -> bytes | None:
    """The row's layout as a `pixels`-wide plan (PNG), or None when the row lacks what it takes."""
    from stages.core.render.plan import draw_plan
    from stages.render.work import arrangement_of

    if any(row.get(column) is None for column in NEEDED):
        return None
    try:
        arrangement, _, _ = arrangement_of(row)
    except (UserError, ValueError, TypeError):  # a scene the dataset mangled: show the stored render
        return None
    buf = io.BytesIO()
    draw_plan(arrangement, pixels).save(buf, format="PNG")
    return buf.getvalue()
