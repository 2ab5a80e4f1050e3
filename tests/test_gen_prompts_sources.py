"""gen-prompts sources: the synthetic generator (determinism, coverage, sizes, valid reference layouts),
the hf and idesign importers, and their bad inputs (exit code 2, location named, nothing written)."""

import json
import math
from functools import cache

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from helpers import cli
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely import affinity
from shapely.geometry import box as rect

from stages.core.scene import LAYOUT_PREPOSITIONS, OBJECT_PREPOSITIONS, layout_elements, parse_room_size
from stages.gen_prompts import synthetic

EPS = 1e-6
WALL_FACES = {"south_wall": 0.0, "west_wall": 90.0, "north_wall": 180.0, "east_wall": 270.0}


@cache
def rooms(n: int = 160, seed: int = 3) -> tuple:
    return tuple(synthetic.generate(n, seed))


def objects(room: dict) -> list[dict]:
    return [o for o in room["scene_graph"] if "itemType" not in o]


def footprint(obj: dict):
    """The object's floor rectangle as shapely builds it: length x width, turned by z_angle."""
    s, p = obj["size_in_meters"], obj["position"]
    shape = rect(-s["length"] / 2, -s["width"] / 2, s["length"] / 2, s["width"] / 2)
    return affinity.translate(affinity.rotate(shape, -obj["rotation"]["z_angle"]), p["x"], p["y"])


def z_range(obj: dict) -> tuple[float, float]:
    z, h = obj["position"]["z"], obj["size_in_meters"]["height"]
    return z - h / 2, z + h / 2


# ------------------------------------------------------------------ the synthetic generator

def test_same_seed_same_rooms_and_room_i_depends_only_on_seed_and_i():
    assert synthetic.generate(12, 5) == synthetic.generate(12, 5)
    assert synthetic.generate(12, 5)[9:] == synthetic.generate(40, 5)[9:12]
    assert synthetic.generate(31, 5)[30]["scene_graph"] == synthetic.make_room(5, 30)["scene_graph"]
    assert [r["scene_graph"] for r in synthetic.generate(5, 5)] != [r["scene_graph"] for r in synthetic.generate(5, 6)]
    assert len({r["room_id"] for r in rooms()}) == len(rooms())


def test_every_room_type_appears_and_there_are_at_least_ten():
    kinds = synthetic.room_types()
    assert len(kinds) >= 10
    assert {r["room_type"] for r in synthetic.generate(len(kinds), 11)} == set(kinds)
    for r in rooms():
        assert r["source"] == "synthetic" and r["description"] and r["preference"].startswith(r["description"])


def test_object_counts_and_sizes_within_catalog_ranges():
    furniture = yaml.safe_load(synthetic.DATA.joinpath("furniture.yaml").read_text())["items"]
    for r in rooms():
        assert 5 <= len(objects(r)) <= 20, r["room_id"]
        for obj in objects(r):
            spec = furniture[obj["new_object_id"].rsplit("_", 1)[0]]
            for key in ("length", "width", "height"):
                lo, hi = spec[key]
                assert lo - EPS <= obj["size_in_meters"][key] <= hi + EPS, (r["room_id"], obj["new_object_id"], key)
            assert obj["material"] in spec["materials"]


def test_reference_layouts_are_inside_the_room_and_collision_free():
    for r in rooms():
        size = r["room_size"]
        room_rect = rect(0, 0, size["x"], size["y"]).buffer(EPS, join_style="mitre")
        objs = objects(r)
        for obj in objs:
            assert obj["rotation"]["z_angle"] in (0.0, 90.0, 180.0, 270.0)
            assert room_rect.contains(footprint(obj)), (r["room_id"], obj["new_object_id"])
            z0, z1 = z_range(obj)
            assert z0 >= -EPS and z1 <= size["z"] + EPS
        for i, a in enumerate(objs):
            for b in objs[i + 1:]:
                area = footprint(a).intersection(footprint(b)).area
                (a0, a1), (b0, b1) = z_range(a), z_range(b)
                overlap_z = min(a1, b1) - max(a0, b0)
                assert area < EPS or overlap_z < EPS, (r["room_id"], a["new_object_id"], b["new_object_id"])


def touches_wall(obj: dict, wall: str, size: dict) -> bool:
    x0, y0, x1, y1 = footprint(obj).bounds
    return {"south_wall": abs(y0) < EPS, "north_wall": abs(y1 - size["y"]) < EPS,
            "west_wall": abs(x0) < EPS, "east_wall": abs(x1 - size["x"]) < EPS}[wall]


def check_object_relation(obj: dict, parent: dict, rel: dict) -> None:
    """The relation holds geometrically, in the parent's frame (IDesign: right of = facing turned clockwise)."""
    fp, pp = footprint(obj), footprint(parent)
    (z0, z1), (pz0, pz1) = z_range(obj), z_range(parent)
    prep = rel["preposition"]
    if prep == "on":
        assert abs(z0 - pz1) < EPS and pp.buffer(EPS, join_style="mitre").contains(fp)
    elif prep == "above":
        assert z0 >= pz1 - EPS
    elif prep == "under":
        assert z1 <= pz0 + EPS
    else:
        a = math.radians(parent["rotation"]["z_angle"])
        fx, fy = round(math.sin(a)), round(math.cos(a))
        dx, dy = {"in front": (fx, fy), "behind": (-fx, -fy), "right of": (fy, -fx), "left of": (-fy, fx)}[prep]
        ox0, oy0, ox1, oy1 = fp.bounds
        px0, py0, px1, py1 = pp.bounds
        gap = {(1, 0): ox0 - px1, (-1, 0): px0 - ox1, (0, 1): oy0 - py1, (0, -1): py0 - oy1}[(dx, dy)]
        assert gap >= -EPS and (gap < EPS) == rel["is_adjacent"]


def test_relations_use_idesign_prepositions_and_hold_in_the_reference_layout():
    for r in rooms():
        objs = {o["new_object_id"]: o for o in objects(r)}
        for obj in objs.values():
            layout = obj["placement"]["room_layout_elements"]
            assert all(rel["preposition"] in LAYOUT_PREPOSITIONS for rel in layout)
            for rel in layout:
                wall = rel["layout_element_id"]
                if wall in WALL_FACES:
                    assert touches_wall(obj, wall, r["room_size"]), (r["room_id"], obj["new_object_id"], wall)
                if wall in WALL_FACES and rel["preposition"] == "on":  # back on the wall, facing into the room
                    assert obj["rotation"]["z_angle"] == WALL_FACES[wall]
            for rel in obj["placement"]["objects_in_room"]:
                assert rel["preposition"] in OBJECT_PREPOSITIONS and isinstance(rel["is_adjacent"], bool)
                check_object_relation(obj, objs[rel["object_id"]], rel)
            assert obj["facing"] in objs or obj["facing"] in WALL_FACES or obj["facing"] == "middle of the room"
            if obj["is_on_the_floor"]:
                assert abs(z_range(obj)[0]) < EPS


@settings(max_examples=25, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10**6), index=st.integers(0, 10**5))
def test_any_room_is_valid_and_reproducible(seed, index):
    room = synthetic.make_room(seed, index)
    assert room == synthetic.make_room(seed, index)
    record = synthetic.room_record(room, "hypothesis room", "synthetic")  # full scene validation
    assert 5 <= len(objects(record)) <= 20


def test_cli_synthetic_rooms_have_reference_layouts(tmp_path):
    code, log = cli("gen-prompts", "--source", "synthetic", "--num-rooms", 20, "--seed", 2, "--output",
                    tmp_path / "p", "--image-size", 64)
    assert code == 0, log
    df = pd.read_parquet(tmp_path / "p")
    assert len(df) == 20 and (df["source"] == "synthetic").all() and df["reference_layout"].notna().all()
    first = df.sort_values("room_id").iloc[0]
    room = synthetic.make_room(2, 0)
    assert json.loads(first["reference_layout"]) == {o["new_object_id"]: [o["position"][a] for a in "xyz"]
                                                     for o in objects(room)}


def test_example_rooms_file_is_reproducible():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "rooms" / "rooms.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 50
    assert lines == [json.loads(json.dumps(synthetic.make_room(0, i))) for i in range(50)]


# ------------------------------------------------------------------ the hf source (the paper's dataset format)

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408d763f8ffff3f0005fe02fe"
                    "a7d6a4c50000000049454e44ae426082")


def hf_row(room: dict) -> dict:
    """A row as the paper's curation script builds it: the prompt ends with the scene (positions removed)."""
    graph = [{k: v for k, v in o.items() if k != "position"} for o in objects(room)]
    graph += layout_elements(parse_room_size(room["room_size"], "test"))
    problem = ("<image>\n## Task Description\nArrange the objects.\n## Input JSON Data:\n" + json.dumps(graph, indent=2))
    answer = json.dumps({"room_name": room["room_id"], "user_preference": room["description"],
                         "size_of_room": room["room_size"]})
    return {"images": [{"bytes": PNG, "path": None}], "problem": problem, "answer": answer}


def write_hf(path, rows: list[dict], drop: str | None = None):
    table = pa.Table.from_pylist(rows, schema=pa.schema([
        ("images", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
        ("problem", pa.string()), ("answer", pa.string())]))
    pq.write_table(table.drop_columns([drop]) if drop else table, path)
    return path


def test_hf_parquet_import(tmp_path):
    source = [synthetic.make_room(4, i) for i in range(5)]
    data = write_hf(tmp_path / "train-00000-of-00001.parquet", [hf_row(r) for r in source])
    code, log = cli("gen-prompts", "--source", "hf", "--input", data, "--output", tmp_path / "p", "--image-size", 64)
    assert code == 0, log
    df = pd.read_parquet(tmp_path / "p").set_index("room_id")
    assert sorted(df.index) == sorted(r["room_id"] for r in source)
    for room in source:
        row = df.loc[room["room_id"]]
        assert row["source"] == "hf" and row["preference"] == room["description"]
        assert (row["room_x"], row["room_y"], row["room_z"]) == tuple(room["room_size"][a] for a in "xyz")
        assert [o["new_object_id"] for o in json.loads(row["scene"])[:-6]] == [o["new_object_id"] for o in objects(room)]
        assert row["num_objects"] == len(objects(room)) and pd.isna(row["reference_layout"])


def test_paper_template_reproduces_the_datasets_problem_text(tmp_path):
    """--template paper: the prompt is the dataset's `problem` verbatim, the room image in place of its
    leading <image> marker, so the chat holds the tokens the paper's code built (it swapped the marker
    for the image tokens in the templated prompt)."""
    from stages.core import vlm
    from stages.core.tiny_vlm import build_tiny_vlm

    rows = [hf_row(synthetic.make_room(4, i)) for i in range(3)]
    data = write_hf(tmp_path / "train-00000-of-00001.parquet", rows)
    code, log = cli("gen-prompts", "--source", "hf", "--input", data, "--output", tmp_path / "p",
                    "--image-size", 64, "--template", "paper")
    assert code == 0, log
    df = pd.read_parquet(tmp_path / "p")
    processor = vlm.load_processor(build_tiny_vlm(tmp_path / "tiny"))
    for row in rows:
        prompt = df.loc[df["room_id"] == json.loads(row["answer"])["room_name"], "prompt"].item()
        assert prompt == row["problem"].removeprefix("<image>")
        chat = vlm.chat_text(processor, vlm.build_messages(prompt, "room.png"))
        image_tokens = "<|vision_start|><|image_pad|><|vision_end|>"
        assert f"<|im_start|>user\n{row['problem'].replace('<image>', image_tokens)}<|im_end|>" in chat
    code, log = cli("gen-prompts", "--num-rooms", 2, "--output", tmp_path / "s", "--template", "paper")
    assert code == 2 and "$problem is only filled by --source hf" in log and not (tmp_path / "s").exists()


# ------------------------------------------------------------------ the idesign source (a folder of scene graphs)

def test_idesign_folder_import(tmp_path):
    a, b = synthetic.make_room(8, 0), synthetic.make_room(8, 1)
    (tmp_path / "scenes" / "room_a").mkdir(parents=True)
    (tmp_path / "scenes" / "room_a" / "scene_graph-backtracked.json").write_text(json.dumps(a["scene_graph"]))
    (tmp_path / "scenes" / "room_a" / "scene_graph.json").write_text("{ an earlier state: skipped")
    (tmp_path / "scenes" / "scene_graph_b.json").write_text(json.dumps(b["scene_graph"]))
    sizes = tmp_path / "sizes.json"
    sizes.write_text(json.dumps({"room_a": {"description": a["description"], "room_size": a["room_size"],
                                            "room_type": a["room_type"]}}))
    code, log = cli("gen-prompts", "--source", "idesign", "--input", tmp_path / "scenes", "--sizes", sizes,
                    "--output", tmp_path / "p", "--image-size", 64)
    assert code == 0, log
    df = pd.read_parquet(tmp_path / "p").set_index("room_id")
    assert sorted(df.index) == ["room_a", "scene_graph_b"]
    assert df.loc["room_a", "description"] == a["description"] and df.loc["room_a", "room_type"] == a["room_type"]
    assert df.loc["scene_graph_b", "room_x"] == b["room_size"]["x"]  # read from the layout elements
    for room, rid in ((a, "room_a"), (b, "scene_graph_b")):
        assert json.loads(df.loc[rid, "reference_layout"]) == {o["new_object_id"]: [o["position"][k] for k in "xyz"]
                                                               for o in objects(room)}


# ------------------------------------------------------------------ bad inputs: exit 2, location named, no output

def _hf_bad(tmp_path, edit):
    rows = [hf_row(synthetic.make_room(4, i)) for i in range(3)]
    edit(rows[1])
    return ["--source", "hf", "--input", write_hf(tmp_path / "bad.parquet", rows)]


def _edit_scene(row, change):
    head, scene = row["problem"].split("## Input JSON Data:\n")
    graph = json.loads(scene)
    change(graph)
    row["problem"] = head + "## Input JSON Data:\n" + json.dumps(graph)


def _preposition(graph):
    graph[1]["placement"]["objects_in_room"] = [{"object_id": graph[0]["new_object_id"], "preposition": "beside",
                                                 "is_adjacent": True}]


def _negative_height(graph):
    graph[0]["size_in_meters"]["height"] = -0.5


def _negative_room(row):
    info = json.loads(row["answer"])
    info["size_of_room"]["y"] = -3
    row["answer"] = json.dumps(info)


BAD_HF = {
    "malformed scene JSON": (lambda r: r.update(problem=r["problem"].replace('"style"', "style", 1)),
                             ["bad.parquet, row 1, field problem", "not valid JSON"]),
    "unknown preposition": (lambda r: _edit_scene(r, _preposition), ["bad.parquet, row 1", "unknown preposition 'beside'"]),
    "negative object size": (lambda r: _edit_scene(r, _negative_height), ["row 1", "size_in_meters.height"]),
    "negative room size": (_negative_room, ["row 1, field answer.size_of_room.y"]),
    "answer not JSON": (lambda r: r.update(answer="{room_name: 1"), ["row 1, field answer", "not valid JSON"]),
    "no marker": (lambda r: r.update(problem="Arrange the room."), ["row 1, field problem", "## Input JSON Data:"]),
}


@pytest.mark.parametrize("case", sorted(BAD_HF))
def test_bad_hf_rows_exit_2_naming_row_and_field(tmp_path, case):
    edit, expected = BAD_HF[case]
    code, log = cli("gen-prompts", *_hf_bad(tmp_path, edit), "--output", tmp_path / "out")
    assert code == 2, log
    flat = " ".join(log.split())
    for text in expected:
        assert text in flat, (text, log)
    assert not (tmp_path / "out").exists()


def test_hf_missing_column_exits_2(tmp_path):
    data = write_hf(tmp_path / "bad.parquet", [hf_row(synthetic.make_room(4, 0))], drop="answer")
    code, log = cli("gen-prompts", "--source", "hf", "--input", data, "--output", tmp_path / "out")
    flat = " ".join(log.split())
    assert code == 2 and "bad.parquet: missing column(s) answer" in flat, log
    assert not (tmp_path / "out").exists()


def test_bad_idesign_inputs_exit_2(tmp_path):
    room = synthetic.make_room(8, 2)
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    (scenes / "scene_graph_1.json").write_text(json.dumps(objects(room)))  # no layout elements, no sizes entry
    code, log = cli("gen-prompts", "--source", "idesign", "--input", scenes, "--output", tmp_path / "out")
    assert code == 2 and "scene_graph_1.json: no room size" in " ".join(log.split()), log
    sizes = tmp_path / "sizes.json"
    sizes.write_text(json.dumps({"scene_graph_1": {"room_size": {"x": 4, "y": 0, "z": 3}}}))
    code, log = cli("gen-prompts", "--source", "idesign", "--input", scenes, "--sizes", sizes, "--output", tmp_path / "out")
    assert code == 2 and "sizes.json, entry 'scene_graph_1', field room_size.y" in " ".join(log.split()), log
    (scenes / "scene_graph_1.json").write_text(json.dumps(room["scene_graph"]))
    sizes.write_text(json.dumps({"scene_graph_1": {"room_size": {"x": 99, "y": 99, "z": 3}}}))
    code, log = cli("gen-prompts", "--source", "idesign", "--input", scenes, "--sizes", sizes, "--output", tmp_path / "out")
    assert code == 2 and "disagrees with the layout elements" in " ".join(log.split()), log
    assert not (tmp_path / "out").exists()


def test_hub_dataset_that_cannot_be_loaded_exits_2(tmp_path):
    code, log = cli("gen-prompts", "--source", "hf", "--dataset", "zhenyupan/3d_layout_reasoning", "--split", "train",
                    "--output", tmp_path / "out")  # the tests run offline (HF_HUB_OFFLINE=1)
    assert code == 2 and "--dataset zhenyupan/3d_layout_reasoning --split train: could not load" in " ".join(log.split())
    assert not (tmp_path / "out").exists()


def test_reference_layouts_measure_clean_under_the_score_physics():
    """The score stage's own measures (collisions, bounds, support, relations) find nothing wrong."""
    from stages.core.measure import measure
    from stages.core.scene import Scene

    items = []
    for r in rooms()[:80]:
        scene = Scene.from_idesign(r["scene_graph"], r["room_size"], r["room_id"])
        items.append((scene, {o.id: o.position for o in scene.objects}))
    for (scene, _), m in zip(items, measure(items), strict=True):
        assert (m.collision, m.constraint, m.out_of_bounds, m.support) == (0, 0, 0, 0), (scene.room_id, m)


def test_idesign_folder_of_the_oracle_scenes_equals_their_jsonl_import(tmp_path, oracle_dir):
    from stages.gen_prompts import sources

    scenes = [json.loads(line) for line in (oracle_dir / "scenes.jsonl").read_text().splitlines()]
    sizes = {}
    for s in scenes:
        (tmp_path / s["room_id"]).mkdir()
        (tmp_path / s["room_id"] / "scene_graph-backtracked.json").write_text(json.dumps(s["scene_graph"]))
        sizes[s["room_id"]] = {"description": s["description"], "room_size": s["room_size"], "room_type": s["room_type"]}
    (tmp_path / "sizes.json").write_text(json.dumps(sizes))
    from_folder = sources.from_idesign_dir(tmp_path, tmp_path / "sizes.json")
    from_jsonl = sources.from_jsonl(oracle_dir / "scenes.jsonl")
    def by_id(records):
        return sorted(({**r, "source": "-"} for r in records), key=lambda r: r["room_id"])

    assert by_id(from_folder) == by_id(from_jsonl)
