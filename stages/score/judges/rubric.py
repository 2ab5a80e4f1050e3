"""The rubric prompt shared by the VLM judges, and a strict parser of their replies.

The prompt is our own wording of the paper's five criteria. It asks for a bare JSON object; the
parser still accepts the object inside a code fence or surrounded by prose, but every grade must be
a number from 1 to 10 (a string, a boolean, "unknown" or a value out of range is a failed reply,
never a silent zero).
"""

from __future__ import annotations

import json
from typing import Any

from stages.core.numbers import finite_number

from .base import GRADE_KEYS

CRITERIA = {
    "realism_and_3d_geometric_consistency": "Realism and 3D geometric consistency: do objects stand on "
    "the floor or hang plausibly, without overlapping each other or passing through walls?",
    "functionality_and_activity_based_alignment": "Functionality and activity-based alignment: can the "
    "room be used for what the user wants (access to furniture, free walking paths)?",
    "layout_and_furniture": "Layout and furniture: are objects placed sensibly relative to walls and to "
    "each other (against walls, facing into the room, related objects together)?",
    "color_scheme_and_material_choices": "Color scheme and material choices: do colours and materials "
    "work together and match the preference?",
    "overall_aesthetic_and_atmosphere": "Overall aesthetic and atmosphere: is the room balanced and "
    "does it convey the atmosphere the user asked for?",
}


def rubric_prompt(preference: str, room: str) -> str:
    lines = [
        "You are grading a furniture layout shown in the attached render(s) of a room "
        f"({room}). The user asked for:", f'"""{preference.strip()}"""', "",
        "Grade each criterion with an integer from 1 (very poor) to 10 (excellent):",
    ]
    lines += [f"- {key}: {text}" for key, text in CRITERIA.items()]
    example = {key: {"grade": 5, "comment": "one short sentence"} for key in GRADE_KEYS}
    lines += ["", "Reply with only a JSON object of exactly this shape, no other text:", json.dumps(example)]
    return "\n".join(lines)


def _json_object(text: str) -> Any:
    """The first decodable JSON object in the text (bare, fenced, or inside prose)."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start >= 0:
        try:
            value, _ = decoder.raw_decode(text, start)
            if isinstance(value, dict):
                return value
        except (ValueError, RecursionError):
            pass
        start = text.find("{", start + 1)
    return None


def parse_grades(text: Any) -> tuple[dict[str, float] | None, str | None]:
    """(grades, None) from a judge's reply, or (None, reason)."""
    if not isinstance(text, str) or not text.strip():
        return None, "empty reply"
    data = _json_object(text[:100_000])
    if data is None:
        return None, f"reply holds no JSON object: {text[:80]!r}"
    grades = {}
    for key in GRADE_KEYS:
        entry = data.get(key)
        value = entry.get("grade") if isinstance(entry, dict) else entry
        if not finite_number(value) or not 1 <= value <= 10:
            return None, f"reply has no grade from 1 to 10 for {key} (got {value!r})"
        grades[key] = float(value)
    return grades, None
