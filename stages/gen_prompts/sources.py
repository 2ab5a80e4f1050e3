"""Where rooms come from. Each source returns room records, validated before any work starts:

    {"room_id", "description", "room_type", "room_size": {x, y, z}, "scene_graph": [...], "source"}

`scene_graph` is an IDesign list (objects, then layout elements). Errors name the file, the
line or row, and the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stages.core.errors import UserError
from stages.core.scene import Scene

ROOM_TYPES = ("bedroom", "living room", "kitchen", "office", "dining room", "bathroom", "library", "studio",
              "playroom", "cafe", "gym", "nursery", "game room", "laundry room", "classroom", "bar")


def guess_room_type(description: str) -> str:
    """The first known room type named in a description ('A cozy library with ...' -> 'library')."""
    text = description.lower()
    hits = [(text.find(t), t) for t in ROOM_TYPES if t in text]
    return min(hits)[1] if hits else "room"


def room_record(raw: dict[str, Any], where: str, source: str) -> dict[str, Any]:
    """Validate one room (its scene must parse) and normalise it to a room record."""
    for key in ("room_id", "room_size", "scene_graph"):
        if key not in raw:
            raise UserError(f"{where}: missing field '{key}'")
    if not isinstance(raw["room_id"], (str, int)) or isinstance(raw["room_id"], bool) or str(raw["room_id"]) == "":
        raise UserError(f"{where}, field room_id: expected a non-empty string, got {raw['room_id']!r}")
    description = raw.get("description") or ""
    if not isinstance(description, str):
        raise UserError(f"{where}, field description: expected a string, got {description!r}")
    room_type = raw.get("room_type") or guess_room_type(description)
    scene = Scene.from_idesign(raw["scene_graph"], raw["room_size"], str(raw["room_id"]), description, room_type,
                               where=f"{where}, field scene_graph")
    return {"room_id": str(raw["room_id"]), "description": description, "room_type": room_type,
            "preference": raw.get("preference") or description, "room_size": scene.size.as_dict(),
            "scene_graph": raw["scene_graph"], "source": source}


def check_unique(records: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    seen: dict[str, int] = {}
    for i, rec in enumerate(records):
        if rec["room_id"] in seen:
            raise UserError(f"{where}: room_id {rec['room_id']!r} appears twice (entries {seen[rec['room_id']] + 1} "
                            f"and {i + 1}); room ids must be unique")
        seen[rec["room_id"]] = i
    return records


def from_jsonl(path: Path) -> list[dict[str, Any]]:
    """Lines `{room_id, description, room_size{x,y,z}, scene_graph}` (optional room_type, preference)."""
    if path is None or not Path(path).is_file():
        raise UserError(f"--input: {path} is not a file (the jsonl source reads a .jsonl file of rooms)")
    records = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(f"{path}, line {lineno}: not valid JSON ({err.msg} at column {err.colno})") from None
            if not isinstance(raw, dict):
                raise UserError(f"{path}, line {lineno}: expected a JSON object, got {type(raw).__name__}")
            records.append(room_record(raw, f"{path}, line {lineno}", "jsonl"))
    if not records:
        raise UserError(f"{path}: no rooms in this file")
    return check_unique(records, str(path))
