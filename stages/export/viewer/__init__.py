"""A self-contained HTML page that shows exported rooms in 3D (three.js), offline from a file:// URL.

Browsers refuse ES modules and fetches from file:// URLs, so everything is inlined: the vendored
three.js bundle (three-viewer.min.js; see VENDOR.txt for its version, licence and how to rebuild
it), the page's own script, and each room's `.glb` as base64. Labels come from datasets, so they
are only ever set as text (never as HTML), and the embedded JSON cannot close its script tag.

    html = page([Room("bedroom-1, reward 2.98", glb_bytes)], title="metaspatial export")
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from stages.core import dataset as ds
from stages.core.paths import confined

HERE = Path(__file__).parent
PAGE = "_viewer.html"
"""Underscore: pyarrow and pandas skip it when they read the dataset directory."""
MAX_ROOMS = 50
"""Rooms one export page embeds (the first rows of the dataset); each adds its .glb (~0.1 MB) to the page."""


@dataclass(frozen=True)
class Room:
    label: str
    glb: bytes


@cache
def _asset(name: str) -> str:
    return (HERE / name).read_text(encoding="utf-8")


def page(rooms: list[Room], title: str) -> str:
    """The HTML of a viewer showing `rooms` (a drop-down picks one; `#N` in the URL opens room N)."""
    data = json.dumps([{"label": r.label, "glb": base64.b64encode(r.glb).decode("ascii")} for r in rooms])
    data = data.replace("<", "\\u003c")  # `</script>` inside a label cannot end the JSON block
    return (_asset("page.html").replace("%%TITLE%%", html.escape(title))
            .replace("%%ROOMS%%", data).replace("%%THREE%%", _asset("three-viewer.min.js")))


def room_label(row: dict) -> str:
    name = str(row.get("sample_id") or row.get("room_id") or "room")
    reward = row.get("reward")
    return f"{name} (reward {reward:.3f})" if isinstance(reward, float) else name


def write_dataset_page(dataset: Path) -> Path | None:
    """`DATASET/_viewer.html` with the first MAX_ROOMS exported rows, once every part is written
    (None while other shards are still running; the last one to finish writes the page)."""
    manifest = ds.read_manifest(dataset) or {}
    parts = manifest.get("parts", {})
    if len(parts) != manifest.get("num_shards") or not all((dataset / p).is_file() for p in parts):
        return None
    table = ds.read_table(dataset)
    rows = table.slice(0, MAX_ROOMS).to_pylist()
    rooms = [Room(room_label(row), confined(dataset, row["glb"], f"{dataset}, row {i}, field glb").read_bytes())
             for i, row in enumerate(rows) if row.get("glb")]
    title = f"metaspatial export: {dataset.name}" + (f" (first {MAX_ROOMS} of {table.num_rows} rows)"
                                                     if table.num_rows > MAX_ROOMS else "")
    path = dataset / PAGE
    ds.write_bytes(path, page(rooms, title).encode("utf-8"))
    return path
