"""The scene model: IDesign round trips, validation messages, rotation rules."""

import copy
import json

import pytest

from stages.core.errors import UserError
from stages.core.scene import LAYOUT_ELEMENTS, Scene, layout_elements


def _scenes(oracle_dir):
    return [json.loads(line) for line in (oracle_dir / "scenes.jsonl").read_text().splitlines()]


def test_every_fixture_scene_round_trips_exactly(oracle_dir):
    for raw in _scenes(oracle_dir):
        scene = Scene.from_idesign(raw["scene_graph"], raw["room_size"], raw["room_id"])
        out = scene.to_idesign()
        assert out == raw["scene_graph"]
        assert [o["new_object_id"] for o in out[-6:]] == list(LAYOUT_ELEMENTS)
        assert scene.size.as_dict() == raw["room_size"]


def test_layout_elements_follow_idesign_file_order_and_geometry():
    from stages.core.scene import RoomSize

    els = {e["new_object_id"]: e for e in layout_elements(RoomSize(5, 4, 3))}
    assert els["east_wall"]["position"] == {"x": 5, "y": 2.0, "z": 1.5}
    assert els["east_wall"]["size_in_meters"] == {"length": 4, "width": 0.0, "height": 3}
    assert els["north_wall"]["rotation"]["z_angle"] == 180.0
    assert els["ceiling"]["position"]["z"] == 3


def _one(oracle_dir):
    raw = _scenes(oracle_dir)[0]
    return copy.deepcopy(raw["scene_graph"]), raw["room_size"]


@pytest.mark.parametrize("mutate, expect", [
    (lambda g: g[0]["size_in_meters"].__setitem__("length", -1), "size_in_meters.length"),
    (lambda g: g[0]["placement"]["room_layout_elements"].append(
        {"layout_element_id": "north_wall", "preposition": "beside"}), "unknown preposition 'beside'"),
    (lambda g: g[0]["placement"]["objects_in_room"].append(
        {"object_id": "ghost_1", "preposition": "on", "is_adjacent": True}), "unknown object 'ghost_1'"),
    (lambda g: g[1].__setitem__("new_object_id", g[0]["new_object_id"]), "duplicate object id"),
    (lambda g: g[0].pop("style"), "missing field 'style'"),
    (lambda g: g[0].__setitem__("is_on_the_floor", "yes"), "is_on_the_floor"),
    (lambda g: g[0].__setitem__("facing", "the window"), "field facing"),
])
def test_validation_names_object_and_field(oracle_dir, mutate, expect):
    graph, size = _one(oracle_dir)
    mutate(graph)
    with pytest.raises(UserError) as err:
        Scene.from_idesign(graph, size, where="rooms.jsonl, line 1, field scene_graph")
    msg = str(err.value)
    assert expect in msg and "rooms.jsonl, line 1" in msg
    assert "scene_graph[" in msg or "duplicate" in msg


def test_bad_room_size_is_rejected():
    with pytest.raises(UserError, match="room_size.y: must be a positive number"):
        Scene.from_idesign([], {"x": 4, "y": 0, "z": 3}, where="f.jsonl, line 2")


def test_rotation_defaults_follow_idesign(oracle_dir):
    graph, size = _one(oracle_dir)
    for obj in graph[:-6]:
        obj.pop("rotation")
    scene = Scene.from_idesign(graph, size)
    for obj, raw in zip(scene.objects, _one(oracle_dir)[0], strict=False):
        assert scene.z_angle(obj) == raw["rotation"]["z_angle"], obj.id
