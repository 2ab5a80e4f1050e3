"""The scene model: rooms, objects and their relations, in IDesign's scene-graph conventions.

IDesign's scene graph is the lingua franca (MetaSpatial's data comes from it): a JSON list of
object dicts followed by six layout elements. Coordinates are metres; x runs along the room's
length (west -> east), y along its width (south -> north), z up; the origin is the south-west
floor corner; a position is the centre of the object's box. `rotation.z_angle` is in degrees:
0 faces +y (north), 90 faces +x (east), 180 faces -y, 270 faces -x. At 0/180 the box's `length`
lies along x; at 90/270 its `width` does.

`Scene.from_idesign` validates everything and names the offending object and field;
`Scene.to_idesign` writes the same list back (a round trip is exact).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .columns import ROOM_SIZE, SCENE
from .errors import UserError
from .numbers import finite_number

LAYOUT_ELEMENTS = ("south_wall", "north_wall", "east_wall", "west_wall", "middle of the room", "ceiling")
WALLS = LAYOUT_ELEMENTS[:4]
LAYOUT_PREPOSITIONS = ("on", "in the corner")
OBJECT_PREPOSITIONS = ("on", "left of", "right of", "in front", "behind", "under", "above")
# The angle an object gets when it faces a layout element (IDesign's utils.get_rotation).
FACING_ANGLE = {"west_wall": 270.0, "east_wall": 90.0, "north_wall": 0.0, "south_wall": 180.0,
                "middle of the room": 0.0, "ceiling": 0.0}
OBJECT_KEYS = ("new_object_id", "style", "material", "size_in_meters", "is_on_the_floor", "facing", "placement")


_ROW_SCENES: dict[tuple, Scene] = {}
_MAX_ROW_SCENES = 4096


MAX_METRES = 1000.0
"""Largest room side, object side or |coordinate| a scene may state: beyond it a number is a typo or
an attack, and boxes of 1e308 m overflow every sum the physics takes (NaN rewards)."""


class SceneError(UserError):
    """A scene graph that breaks the format; the message names the object and field."""


@dataclass(frozen=True)
class RoomSize:
    x: float
    y: float
    z: float

    def as_dict(self) -> dict[str, float]:
        return {"x": self.x, "y": self.y, "z": self.z}


@dataclass(frozen=True)
class LayoutRelation:
    element: str
    preposition: str


@dataclass(frozen=True)
class ObjectRelation:
    object_id: str
    preposition: str
    is_adjacent: bool | None
    """None when the scene leaves it out: the default preset then does not require touching (upstream
    assumed True, its item 19) and the scene round-trips without the key."""

    @property
    def adjacent(self) -> bool:
        """Whether the relation requires the objects to touch (a missing flag does not)."""
        return bool(self.is_adjacent)


@dataclass
class SceneObject:
    id: str
    style: str
    material: str
    length: float
    width: float
    height: float
    on_floor: bool
    facing: str
    layout_relations: list[LayoutRelation] = field(default_factory=list)
    object_relations: list[ObjectRelation] = field(default_factory=list)
    rotation: float | None = None
    """`rotation.z_angle` as given; None when the input had none (see `Scene.z_angle`)."""
    position: tuple[float, float, float] | None = None
    """A known placement (IDesign's backtracked solution), if the input had one."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys we do not interpret (IDesign's `cluster`, ...), kept for an exact round trip."""

    def to_idesign(self, with_position: bool = True) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "new_object_id": self.id, "style": self.style, "material": self.material,
            "size_in_meters": {"length": self.length, "width": self.width, "height": self.height},
            "is_on_the_floor": self.on_floor, "facing": self.facing,
            "placement": {
                "room_layout_elements": [{"layout_element_id": r.element, "preposition": r.preposition}
                                         for r in self.layout_relations],
                "objects_in_room": [_relation_item(r) for r in self.object_relations],
            },
        }
        if self.rotation is not None:
            obj["rotation"] = {"z_angle": self.rotation}
        obj.update(self.extra)
        if with_position and self.position is not None:
            obj["position"] = dict(zip("xyz", self.position, strict=True))
        return obj


def _relation_item(r: ObjectRelation) -> dict[str, Any]:
    item: dict[str, Any] = {"object_id": r.object_id, "preposition": r.preposition}
    if r.is_adjacent is not None:
        item["is_adjacent"] = r.is_adjacent
    return item


def layout_elements(size: RoomSize) -> list[dict[str, Any]]:
    """The six room priors in IDesign's file order (south, north, east, west, middle, ceiling)."""
    x, y, z = size.x, size.y, size.z

    def prior(eid: str, kind: str, pos: tuple, dims: tuple, angle: float) -> dict[str, Any]:
        return {"new_object_id": eid, "itemType": kind, "position": dict(zip("xyz", pos, strict=True)),
                "size_in_meters": dict(zip(("length", "width", "height"), dims, strict=True)),
                "rotation": {"z_angle": angle}}

    return [
        prior("south_wall", "wall", (x / 2, 0, z / 2), (x, 0.0, z), 0.0),
        prior("north_wall", "wall", (x / 2, y, z / 2), (x, 0.0, z), 180.0),
        prior("east_wall", "wall", (x, y / 2, z / 2), (y, 0.0, z), 270.0),
        prior("west_wall", "wall", (0, y / 2, z / 2), (y, 0.0, z), 90.0),
        prior("middle of the room", "floor", (x / 2, y / 2, 0), (x, y, 0.0), 0.0),
        prior("ceiling", "ceiling", (x / 2, y / 2, z), (x, y, 0.0), 0.0),
    ]


@dataclass
class Scene:
    room_id: str
    size: RoomSize
    objects: list[SceneObject]
    description: str = ""
    room_type: str = ""

    @property
    def ids(self) -> list[str]:
        return [o.id for o in self.objects]

    def get(self, object_id: str) -> SceneObject:
        for o in self.objects:
            if o.id == object_id:
                return o
        raise KeyError(object_id)

    def z_angle(self, obj: SceneObject, _seen: frozenset[str] = frozenset()) -> float:
        """The object's rotation: as given, else IDesign's rule (facing a layout element gives a
        fixed angle; otherwise the first parent object's angle, recursively; otherwise 0).
        The one rotation rule: the prompt states it, the renderer draws it and the score measures
        at it. IDesign laid its scenes out at these angles, so a scene without `rotation` scores its
        reference layout exactly as the same scene with them."""
        if obj.rotation is not None:
            return obj.rotation
        if obj.facing in FACING_ANGLE:
            return FACING_ANGLE[obj.facing]
        for rel in obj.object_relations:
            if rel.object_id in self.ids and rel.object_id not in _seen:
                return self.z_angle(self.get(rel.object_id), _seen | {obj.id})
        return 0.0

    @classmethod
    def from_row(cls, row: dict[str, Any], where: str = "row") -> Scene:
        """The scene of a dataset row (columns `scene` and `room_x/y/z`): the one decoder of a
        row's scene, for every stage. Rows of one prompt share their scene, so each distinct scene
        is parsed once (cached; callers must not modify the result). Errors name `where` and the field."""
        key = (row.get(SCENE), *(row.get(c) for c in ROOM_SIZE))
        try:
            cached, cacheable = _ROW_SCENES.get(key), True
        except TypeError:  # an unhashable value (an Arrow struct read as a dict): not cached
            cached, cacheable = None, False
        if cached is not None:
            return cached
        for column in ROOM_SIZE:
            value = row.get(column)
            if not finite_number(value) or value <= 0:
                raise SceneError(f"{where}, field {column}: must be a positive number of metres, got {value!r:.60}")
        graph = row.get(SCENE)
        if isinstance(graph, str):
            try:
                graph = json.loads(graph)
            except (json.JSONDecodeError, RecursionError) as err:
                raise SceneError(f"{where}, field scene: not valid JSON ({str(err)[:120]})") from None
        size = dict(zip("xyz", (row[c] for c in ROOM_SIZE), strict=True))
        scene = cls.from_idesign(graph, size, where=f"{where}, field scene")
        if cacheable:
            if len(_ROW_SCENES) >= _MAX_ROW_SCENES:
                _ROW_SCENES.clear()
            _ROW_SCENES[key] = scene
        return scene

    def reference_layout(self) -> dict[str, list[float]] | None:
        """Known positions by id, when every object has one (else None)."""
        if not self.objects or any(o.position is None for o in self.objects):
            return None
        return {o.id: list(o.position) for o in self.objects if o.position is not None}

    def to_idesign(self, with_positions: bool = True) -> list[dict[str, Any]]:
        return [o.to_idesign(with_positions) for o in self.objects] + layout_elements(self.size)

    @classmethod
    def from_idesign(cls, graph: Any, room_size: Any, room_id: str = "", description: str = "",
                     room_type: str = "", where: str = "scene_graph") -> Scene:
        """Parse and validate an IDesign scene-graph list. Errors name `where`, the object and field."""
        size = parse_room_size(room_size, f"{where.rsplit(',', 1)[0]}, field room_size")
        if not isinstance(graph, list):
            raise SceneError(f"{where}: expected a list of objects, got {type(graph).__name__}")
        objects = []
        for i, item in enumerate(graph):
            if isinstance(item, dict) and item.get("new_object_id") in LAYOUT_ELEMENTS and "itemType" in item:
                continue  # layout elements are derived from the room size
            objects.append(_parse_object(item, f"{where}[{i}]"))
        scene = cls(room_id=room_id, size=size, objects=objects, description=description, room_type=room_type)
        _check_references(scene, where)
        return scene


def parse_room_size(value: Any, where: str) -> RoomSize:
    if not isinstance(value, dict):
        raise SceneError(f"{where}: expected an object {{x, y, z}}, got {type(value).__name__}")
    dims: list[float] = []
    for axis in "xyz":
        v = value.get(axis)
        if not finite_number(v) or not 0 < v <= MAX_METRES:
            raise SceneError(f"{where}.{axis}: must be a positive number of metres up to {MAX_METRES:g}, got {v!r}")
        dims.append(v)
    return RoomSize(*dims)


def _require(d: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise SceneError(f"{where}: missing field '{key}'")
    v = d[key]
    if not isinstance(v, kind) or (kind is not bool and isinstance(v, bool)):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise SceneError(f"{where}, field {key}: expected {name}, got {v!r}")
    return v


def _parse_object(item: Any, where: str) -> SceneObject:
    if not isinstance(item, dict):
        raise SceneError(f"{where}: expected an object dict, got {type(item).__name__}")
    oid = _require(item, "new_object_id", str, where)
    if not oid.strip():
        raise SceneError(f"{where}, field new_object_id: must not be empty")
    if oid in LAYOUT_ELEMENTS:
        raise SceneError(f"{where} ('{oid}'): an object may not use a layout element's id")
    here = f"{where} ('{oid}')"
    sizes = _require(item, "size_in_meters", dict, here)
    dims = []
    for key in ("length", "width", "height"):
        v = sizes.get(key)
        if not finite_number(v) or not 0 < v <= MAX_METRES:
            raise SceneError(f"{here}, field size_in_meters.{key}: must be a positive number of metres up to "
                             f"{MAX_METRES:g}, got {v!r}")
        dims.append(v)
    placement = _require(item, "placement", dict, here)
    layout_rel = []
    for j, rel in enumerate(placement.get("room_layout_elements") or []):
        f = f"placement.room_layout_elements[{j}]"
        if not isinstance(rel, dict):
            raise SceneError(f"{here}, field {f}: expected an object")
        if rel.get("layout_element_id") not in LAYOUT_ELEMENTS:
            raise SceneError(f"{here}, field {f}.layout_element_id: unknown layout element "
                             f"{rel.get('layout_element_id')!r} (one of {', '.join(LAYOUT_ELEMENTS)})")
        if rel.get("preposition") not in LAYOUT_PREPOSITIONS:
            raise SceneError(f"{here}, field {f}.preposition: unknown preposition {rel.get('preposition')!r} "
                             f"(one of {', '.join(LAYOUT_PREPOSITIONS)})")
        layout_rel.append(LayoutRelation(rel["layout_element_id"], rel["preposition"]))
    object_rel = []
    for j, rel in enumerate(placement.get("objects_in_room") or []):
        f = f"placement.objects_in_room[{j}]"
        if not isinstance(rel, dict) or not isinstance(rel.get("object_id"), str):
            raise SceneError(f"{here}, field {f}: expected an object with a string object_id")
        if rel.get("preposition") not in OBJECT_PREPOSITIONS:
            raise SceneError(f"{here}, field {f}.preposition: unknown preposition {rel.get('preposition')!r} "
                             f"(one of {', '.join(OBJECT_PREPOSITIONS)})")
        adjacent = rel.get("is_adjacent")
        if "is_adjacent" in rel and not isinstance(adjacent, bool):
            raise SceneError(f"{here}, field {f}.is_adjacent: expected true or false, got {adjacent!r}")
        object_rel.append(ObjectRelation(rel["object_id"], rel["preposition"], adjacent))
    rotation = None
    if "rotation" in item:
        rot = item["rotation"]
        if not isinstance(rot, dict) or not finite_number(rot.get("z_angle")):
            raise SceneError(f"{here}, field rotation.z_angle: must be a number of degrees, got {rot!r}")
        rotation = rot["z_angle"]
    position = None
    if "position" in item:
        pos = item["position"]
        if not isinstance(pos, dict) or not all(finite_number(pos.get(a)) and abs(pos[a]) <= MAX_METRES for a in "xyz"):
            raise SceneError(f"{here}, field position: must be {{x, y, z}} numbers of at most {MAX_METRES:g} m, "
                             f"got {pos!r}")
        position = (pos["x"], pos["y"], pos["z"])
    known = set(OBJECT_KEYS) | {"rotation", "position"}
    return SceneObject(
        id=oid, style=_require(item, "style", str, here), material=_require(item, "material", str, here),
        length=dims[0], width=dims[1], height=dims[2],
        on_floor=_require(item, "is_on_the_floor", bool, here), facing=_require(item, "facing", str, here),
        layout_relations=layout_rel, object_relations=object_rel, rotation=rotation, position=position,
        extra={k: v for k, v in item.items() if k not in known},
    )


def _check_references(scene: Scene, where: str) -> None:
    ids = scene.ids
    seen: set[str] = set()
    for i, obj in enumerate(scene.objects):
        here = f"{where}[{i}] ('{obj.id}')"
        if obj.id in seen:
            raise SceneError(f"{here}: duplicate object id '{obj.id}'")
        seen.add(obj.id)
        for rel in obj.object_relations:
            if rel.object_id not in ids:
                raise SceneError(f"{here}, field placement.objects_in_room: refers to unknown object '{rel.object_id}'")
            if rel.object_id == obj.id:
                raise SceneError(f"{here}, field placement.objects_in_room: refers to itself")
        if obj.facing not in LAYOUT_ELEMENTS and obj.facing not in ids:
            raise SceneError(f"{here}, field facing: {obj.facing!r} is neither a layout element "
                             "nor an object id of this scene")
