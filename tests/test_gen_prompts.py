"""gen-prompts through the real CLI: the jsonl source, prompts, splits and bad inputs."""

import json

import pandas as pd
import pytest
from helpers import cli, write_rooms

from stages.core.scene import Scene
from stages.gen_prompts import split_of


def _scenes(oracle_dir):
    return [json.loads(line) for line in (oracle_dir / "scenes.jsonl").read_text().splitlines()]


def test_fixture_scenes_round_trip_through_the_prompt_dataset(tmp_path, oracle_dir):
    code, log = cli("gen-prompts", "--source", "jsonl", "--input", oracle_dir / "scenes.jsonl",
                    "--output", tmp_path / "p", "--image-size", 96)
    assert code == 0, log
    df = pd.read_parquet(tmp_path / "p").set_index("room_id")
    for raw in _scenes(oracle_dir):
        row = df.loc[raw["room_id"]]
        scene = Scene.from_idesign(json.loads(row["scene"]), {"x": row["room_x"], "y": row["room_y"], "z": row["room_z"]})
        objects = [{k: v for k, v in o.items() if k != "position"} for o in raw["scene_graph"][:-6]]
        assert scene.to_idesign() == objects + raw["scene_graph"][-6:]
        reference = json.loads(row["reference_layout"])
        assert reference == {o["new_object_id"]: [o["position"][a] for a in "xyz"]
                             for o in raw["scene_graph"][:-6]}
        assert (row["room_x"], row["room_y"], row["room_z"]) == tuple(raw["room_size"][a] for a in "xyz")
        assert row["num_objects"] == len(raw["scene_graph"]) - 6
        assert row["room_type"] == raw["room_type"]
        for obj in raw["scene_graph"][:-6]:
            assert obj["new_object_id"] in row["prompt"]
        assert "<answer>" in row["prompt"] and '"position"' not in row["prompt"]


def test_splits_are_deterministic_by_room_id():
    ids = [f"room_{i}" for i in range(2000)]
    splits = [split_of(i, 0.1) for i in ids]
    assert splits == [split_of(i, 0.1) for i in ids]
    assert 150 < splits.count("test") < 250
    assert all(split_of(i, 0.0) == "train" for i in ids[:50])


def _bad_room_file(tmp_path, oracle_dir, edit):
    rooms = _scenes(oracle_dir)[:3]
    lines = [json.dumps(r) for r in rooms]
    lines[1] = edit(rooms[1], lines[1])
    path = tmp_path / "rooms.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _set(path, value):
    def edit(room, line):
        target = room
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return json.dumps(room)
    return edit


@pytest.mark.parametrize("edit, expected", [
    (lambda room, line: line[:-5], "line 2: not valid JSON"),
    (lambda room, line: json.dumps({k: v for k, v in room.items() if k != "room_size"}), "line 2: missing field 'room_size'"),
    (_set(("scene_graph", 0, "size_in_meters", "width"), -0.5), "field scene_graph[0] ('{id}'), field size_in_meters.width"),
    (_set(("scene_graph", 0, "placement", "room_layout_elements"), [{"layout_element_id": "north_wall",
                                                                     "preposition": "next to"}]),
     "room_layout_elements[0].preposition: unknown preposition 'next to'"),
    (_set(("room_size", "z"), "tall"), "line 2, field room_size.z: must be a positive number"),
    (lambda room, line: "[1, 2]", "line 2: expected a JSON object"),
])
def test_bad_room_files_exit_2_naming_line_and_field_and_write_nothing(tmp_path, oracle_dir, edit, expected):
    path = _bad_room_file(tmp_path, oracle_dir, edit)
    first_id = _scenes(oracle_dir)[1]["scene_graph"][0]["new_object_id"]
    code, log = cli("gen-prompts", "--source", "jsonl", "--input", path, "--output", tmp_path / "out")
    assert code == 2, log
    flat = " ".join(log.split())
    assert "rooms.jsonl" in flat and expected.format(id=first_id) in flat
    assert "Traceback" not in log
    assert not (tmp_path / "out").exists()


def test_unknown_source_and_unknown_config_key_exit_2(tmp_path, oracle_dir):
    code, log = cli("gen-prompts", "--source", "blender", "--output", tmp_path / "out")
    assert code == 2 and "source" in log and "synthetic" in log
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("source: jsonl\nnum_romos: 3\n")
    code, log = cli("gen-prompts", "--config", cfg, "--input", oracle_dir / "scenes.jsonl", "--output", tmp_path / "out")
    assert code == 2 and "num_romos: unknown key" in log and str(cfg) in " ".join(log.split())
    assert not (tmp_path / "out").exists()


def test_duplicate_room_ids_and_bad_template_are_refused(tmp_path, oracle_dir):
    rooms = write_rooms(tmp_path / "rooms.jsonl", _scenes(oracle_dir)[:2] * 2)
    code, log = cli("gen-prompts", "--source", "jsonl", "--input", rooms, "--output", tmp_path / "out")
    assert code == 2 and "appears twice" in log
    tpl = tmp_path / "t.txt"
    tpl.write_text("Place $objects in $room_type")
    code, log = cli("gen-prompts", "--source", "jsonl", "--input", oracle_dir / "scenes.jsonl", "--template", tpl,
                    "--output", tmp_path / "out")
    assert code == 2 and "unknown placeholder(s) objects" in log


def test_config_file_supplies_options_and_flags_win(tmp_path, oracle_dir):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"source: jsonl\ninput: {oracle_dir / 'scenes.jsonl'}\ntemplate: concise\nimage_size: 64\n")
    code, log = cli("gen-prompts", "--config", cfg, "--template", "default", "--output", tmp_path / "out")
    assert code == 0, log
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert manifest["config"]["template"] == "default" and manifest["config"]["image_size"] == 64
    assert pd.read_parquet(tmp_path / "out")["prompt"].str.startswith("You are").all()


def test_object_boxes_give_each_box_along_x_and_y_as_the_object_faces():
    """`$object_boxes` states extents along the room's axes: every reference layout of examples/rooms
    (solved, inside the room) keeps each stated box inside the room, and an object turned to face
    east or west has its length along y."""
    from pathlib import Path

    from stages.gen_prompts.prompt import fill, load_template, object_boxes

    repo = Path(__file__).resolve().parents[1]
    rooms = repo / "examples" / "rooms" / "rooms.jsonl"
    turned = 0
    for line in rooms.read_text().splitlines():
        room = json.loads(line)
        scene = Scene.from_idesign(room["scene_graph"], room["room_size"], room["room_id"])
        for obj, text in zip(scene.objects, object_boxes(scene).splitlines(), strict=True):
            name, sizes = text.split(", ")[0].split(": ")
            dx, dy, dz = (float(v) for v in sizes.split(" x "))
            assert name == obj.id and dz == obj.height
            x, y, _ = obj.position
            assert x - dx / 2 >= -0.02 and x + dx / 2 <= scene.size.x + 0.02, text
            assert y - dy / 2 >= -0.02 and y + dy / 2 <= scene.size.y + 0.02, text
            turned += round(scene.z_angle(obj)) % 180 == 90 and (dx, dy) == (obj.width, obj.length) != (obj.length, obj.width)
    assert turned > 0
    prompt = fill(load_template(str(repo / "recipes" / "templates" / "boxes.txt")), scene, "")
    assert object_boxes(scene) in prompt and "$" not in prompt
