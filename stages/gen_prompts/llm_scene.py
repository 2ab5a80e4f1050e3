"""What we ask a language model for a new room, and how its reply becomes a valid scene graph.

The model gets a room description and size and answers with a JSON object `{"objects": [...]}` of
IDesign objects (no positions). The reply is untrusted: it is parsed strictly (duplicate keys and
non-finite numbers are errors), repaired where the intent is unambiguous, and then validated by
the scene model, whose message becomes the reject reason. Repairs: a reply wrapped in a code fence
or in prose; numbers written as strings; ids with spaces or capitals; relations to objects that do
not exist, to the object itself, or with an unknown preposition or layout element (dropped); a
`facing` that names nothing in the room (faces the middle of the room). Anything else is rejected.
"""

from __future__ import annotations

import json
import re
from typing import Any

from stages.core.scene import (
    LAYOUT_ELEMENTS,
    LAYOUT_PREPOSITIONS,
    OBJECT_PREPOSITIONS,
    RoomSize,
    Scene,
    SceneError,
)

MAX_OBJECTS = 30
MIN_SIZE = 0.005
"""Metres: the thinnest side an object may have (the placer works in whole millimetres)."""
MAX_TEXT = 80
"""Longest style/material/id kept; longer text is cut (a model that rambles inside a field)."""
LAYOUT_SYNONYMS = {"floor": "middle of the room", "middle": "middle of the room", "center": "middle of the room",
                   "centre": "middle of the room", "roof": "ceiling"}

SYSTEM = (
    "You are an interior designer who writes scene graphs for a 3D layout tool. Answer with one JSON "
    "object and nothing else."
)

INSTRUCTIONS = """Room: {description}
Size: {x:g} m (x, west to east) by {y:g} m (y, south to north), ceiling at {z:g} m.

List the furniture and decor this room needs (between 4 and 20 objects) as {{"objects": [...]}}. Each object:
{{"new_object_id": "sofa_1", "style": "...", "material": "...",
 "size_in_meters": {{"length": ..., "width": ..., "height": ...}},
 "is_on_the_floor": true, "facing": "...",
 "placement": {{"room_layout_elements": [{{"layout_element_id": "...", "preposition": "..."}}],
               "objects_in_room": [{{"object_id": "...", "preposition": "...", "is_adjacent": true}}]}}}}
Rules:
- ids are lower case with a number: bed_1, chair_1, chair_2.
- real-world sizes in metres that fit the room; `length` is the side along the wall the object backs onto.
- layout_element_id is one of: {elements}; its preposition is "on" or "in the corner".
- an object relation refers to another object of this room; its preposition is one of: {prepositions}.
- facing is a layout element or another object's id.
- objects standing on another object (a lamp on a desk) have is_on_the_floor false and an "on" relation."""


def messages(description: str, size: RoomSize) -> list[dict[str, str]]:
    text = INSTRUCTIONS.format(description=description, x=size.x, y=size.y, z=size.z,
                               elements=", ".join(LAYOUT_ELEMENTS), prepositions=", ".join(OBJECT_PREPOSITIONS))
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]


def json_schema() -> dict[str, Any]:
    """The reply's shape as a JSON schema (vLLM and OpenAI constrain decoding to it)."""
    number = {"type": "number"}
    layout = {"type": "object", "required": ["layout_element_id", "preposition"], "additionalProperties": False,
              "properties": {"layout_element_id": {"enum": list(LAYOUT_ELEMENTS)},
                             "preposition": {"enum": list(LAYOUT_PREPOSITIONS)}}}
    relation = {"type": "object", "required": ["object_id", "preposition", "is_adjacent"], "additionalProperties": False,
                "properties": {"object_id": {"type": "string"}, "preposition": {"enum": list(OBJECT_PREPOSITIONS)},
                               "is_adjacent": {"type": "boolean"}}}
    obj = {"type": "object", "additionalProperties": False,
           "required": ["new_object_id", "style", "material", "size_in_meters", "is_on_the_floor", "facing",
                        "placement"],
           "properties": {
               "new_object_id": {"type": "string"}, "style": {"type": "string"}, "material": {"type": "string"},
               "size_in_meters": {"type": "object", "required": ["length", "width", "height"],
                                  "additionalProperties": False,
                                  "properties": {"length": number, "width": number, "height": number}},
               "is_on_the_floor": {"type": "boolean"}, "facing": {"type": "string"},
               "placement": {"type": "object", "required": ["room_layout_elements", "objects_in_room"],
                             "additionalProperties": False,
                             "properties": {"room_layout_elements": {"type": "array", "items": layout},
                                            "objects_in_room": {"type": "array", "items": relation}}}}}
    return {"type": "object", "required": ["objects"], "additionalProperties": False,
            "properties": {"objects": {"type": "array", "minItems": 1, "maxItems": MAX_OBJECTS, "items": obj}}}


class Rejected(Exception):
    """A reply that cannot become a room; the message is the reason, `kind` its category."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise Rejected("malformed", f"key {key!r} appears twice in one object")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise Rejected("malformed", f"{name} is not a JSON number")


def parse_reply(text: str) -> list[Any]:
    """The `objects` list of a reply; fences or prose around one JSON object are tolerated."""
    start = text.find("{")
    if start < 0:
        raise Rejected("malformed", "the reply holds no JSON object")
    decoder = json.JSONDecoder(object_pairs_hook=_strict_object, parse_constant=_no_constant)
    try:
        data, _ = decoder.raw_decode(text[start:])
    except json.JSONDecodeError as err:
        raise Rejected("malformed", f"not valid JSON ({err.msg} at column {err.colno})") from None
    except RecursionError:
        raise Rejected("malformed", "JSON nested too deeply") from None
    objects = data.get("objects") if isinstance(data, dict) else None
    if not isinstance(objects, list) or not objects:
        raise Rejected("malformed", "expected {\"objects\": [ ... ]} with at least one object")
    if len(objects) > MAX_OBJECTS:
        raise Rejected("too many objects", f"{len(objects)} objects (at most {MAX_OBJECTS})")
    return objects


def _number(value: Any) -> Any:
    """A number written as a string ("1.2") becomes the number; anything else is left to validation."""
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return value
    return value


def _clean_id(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    return re.sub(r"\s+", "_", value.strip().lower())[:MAX_TEXT]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _repair_object(item: Any, ids: set[str], repairs: list[str]) -> Any:
    if not isinstance(item, dict):
        return item
    obj = dict(item)
    obj["new_object_id"] = _clean_id(obj.get("new_object_id"))
    for key in ("style", "material"):
        if isinstance(obj.get(key), str):
            obj[key] = obj[key].strip()[:MAX_TEXT]
    if isinstance(obj.get("size_in_meters"), dict):
        obj["size_in_meters"] = {k: _number(v) for k, v in obj["size_in_meters"].items()}
    placement = obj.get("placement")
    if not isinstance(placement, dict):
        placement = {}
    layout, relations = [], []
    for rel in _list(placement.get("room_layout_elements")):
        if isinstance(rel, dict):
            element = LAYOUT_SYNONYMS.get(str(rel.get("layout_element_id")), rel.get("layout_element_id"))
            if element in LAYOUT_ELEMENTS and rel.get("preposition") in LAYOUT_PREPOSITIONS:
                layout.append({"layout_element_id": element, "preposition": rel["preposition"]})
                continue
        repairs.append("dropped a layout relation")
    for rel in _list(placement.get("objects_in_room")):
        target = _clean_id(rel.get("object_id")) if isinstance(rel, dict) else None
        if target in ids and target != obj["new_object_id"] and rel.get("preposition") in OBJECT_PREPOSITIONS:
            kept = {"object_id": target, "preposition": rel["preposition"]}
            if isinstance(rel.get("is_adjacent"), bool):
                kept["is_adjacent"] = rel["is_adjacent"]
            relations.append(kept)
            continue
        repairs.append("dropped an object relation")
    obj["placement"] = {"room_layout_elements": layout, "objects_in_room": relations}
    facing = _clean_id(obj.get("facing"))
    facing = LAYOUT_SYNONYMS.get(facing, facing) if isinstance(facing, str) else facing
    if not (facing in LAYOUT_ELEMENTS or (facing in ids and facing != obj["new_object_id"])):
        repairs.append("facing set to the middle of the room")
        facing = "middle of the room"
    obj["facing"] = facing
    obj.pop("position", None)
    obj.pop("rotation", None)
    return obj


def scene_from_reply(text: str, size: RoomSize, room_id: str, description: str, room_type: str,
                     ) -> tuple[Scene, list[str]]:
    """The validated scene of a reply and the repairs made; raises Rejected with the reason."""
    objects = parse_reply(text)
    ids = {_clean_id(o.get("new_object_id")) for o in objects if isinstance(o, dict)}
    repairs: list[str] = []
    graph = [_repair_object(o, ids, repairs) for o in objects]
    try:
        scene = Scene.from_idesign(graph, size.as_dict(), room_id, description, room_type, where="reply")
    except SceneError as err:
        raise Rejected("invalid scene", str(err)) from None
    for obj in scene.objects:
        if min(obj.length, obj.width, obj.height) < MIN_SIZE:
            raise Rejected("implausible size", f"'{obj.id}' is thinner than {MIN_SIZE * 100:g} cm")
        footprint_fits = (min(obj.length, obj.width) <= min(size.x, size.y)
                          and max(obj.length, obj.width) <= max(size.x, size.y))
        if not footprint_fits or obj.height > size.z:
            raise Rejected("object larger than the room", f"'{obj.id}' ({obj.length:g} x {obj.width:g} x "
                           f"{obj.height:g} m) in a {size.x:g} x {size.y:g} x {size.z:g} m room")
    return scene, repairs
