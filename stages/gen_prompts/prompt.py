"""The prompt text: a template (built in, or a file of your own) filled from a scene.

Templates use `$name` placeholders (Python's string.Template: plain substitution, no code).
Available: room_type, room_x, room_y, room_z, preference, num_objects, scene_json, object_ids,
object_boxes (one short line per object: its box along x, y and z as placed, and its relations),
first_id, and for the hf source problem: the dataset's own prompt text (the built-in template
`paper` is just that, so a reproduction sees the paper's prompts verbatim). The answer format asked for is the paper's:
`<think>...</think><answer>[{"new_object_id": ..., "x": ..., "y": ..., "z": ...}, ...]</answer>`.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

from stages.core.errors import UserError
from stages.core.scene import Scene

TEMPLATE_DIR = Path(__file__).parent / "templates"
PLACEHOLDERS = {"room_type", "room_x", "room_y", "room_z", "preference", "num_objects", "scene_json",
                "object_ids", "object_boxes", "first_id", "problem"}
SOURCE_ONLY = {"problem": "hf"}
"""Placeholders only one source can fill."""


def builtin_templates() -> list[str]:
    return sorted(p.stem for p in TEMPLATE_DIR.glob("*.txt"))


def load_template(name_or_path: str) -> string.Template:
    """A built-in template by name, or a text file; unknown placeholders fail here, naming them."""
    path = TEMPLATE_DIR / f"{name_or_path}.txt"
    if not path.exists():
        path = Path(name_or_path)
        if not path.is_file():
            raise UserError(f"--template: {name_or_path!r} is neither a built-in template "
                            f"({', '.join(builtin_templates())}) nor a file")
    template = string.Template(path.read_text())
    unknown = set(template.get_identifiers()) - PLACEHOLDERS
    if unknown or not template.is_valid():
        raise UserError(f"{path}: unknown placeholder(s) {', '.join(sorted(unknown)) or '(malformed $)'}; "
                        f"available: {', '.join(sorted(PLACEHOLDERS))}")
    return template


def scene_json(scene: Scene) -> str:
    """The objects as the model sees them: IDesign dicts without positions, one per line."""
    lines = []
    for obj in scene.objects:
        d = obj.to_idesign(with_position=False)
        d.pop("cluster", None)  # IDesign's search bookkeeping; says nothing about the task
        d["rotation"] = {"z_angle": scene.z_angle(obj)}
        lines.append(json.dumps(d, ensure_ascii=False))
    return "[\n" + ",\n".join(lines) + "\n]"


def object_boxes(scene: Scene) -> str:
    """The objects in a few tokens each, for prompts that must stay short (a CPU's cost is the prompt):
    `bed_1: 1.6 x 2.1 x 0.5, floor, against north_wall`: the box's extent along x and y as the object
    faces (length and width swapped when it faces east or west) and its height, then its relations."""
    lines = []
    for obj in scene.objects:
        across = round(scene.z_angle(obj)) % 180 == 90
        dx, dy = (obj.width, obj.length) if across else (obj.length, obj.width)
        parts = [f"{obj.id}: {dx:g} x {dy:g} x {obj.height:g}", *(["floor"] if obj.on_floor else [])]
        parts += [f"{r.preposition} {r.element}" for r in obj.layout_relations]
        parts += [f"{r.preposition} {r.object_id}" for r in obj.object_relations]
        lines.append(", ".join(parts))
    return "\n".join(lines)


def check_source(template: string.Template, source: str) -> None:
    """A template may use a source's own placeholder only with that source."""
    for name in set(template.get_identifiers()) & set(SOURCE_ONLY):
        if SOURCE_ONLY[name] != source:
            raise UserError(f"--template: ${name} is only filled by --source {SOURCE_ONLY[name]} (not {source})")


def fill(template: string.Template, scene: Scene, preference: str, problem: str | None = None) -> str:
    return template.substitute(
        problem=problem or "",
        room_type=scene.room_type or "room", room_x=f"{scene.size.x:g}", room_y=f"{scene.size.y:g}",
        room_z=f"{scene.size.z:g}", preference=preference.strip() or "a comfortable, practical room",
        num_objects=len(scene.objects), scene_json=scene_json(scene), object_boxes=object_boxes(scene), object_ids=", ".join(scene.ids),
        first_id=scene.ids[0] if scene.ids else "object_1",
    )
