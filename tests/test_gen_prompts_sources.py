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
            assert -EPS <= z0 and z1 <= size["z"] + EPS
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


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), index=st.integers(0, 10**5))
def test_any_room_is_valid_and_reproducible(seed, index):
    room = synthetic.make_room(seed, index)
    assert room == synthetic.make_room(seed, index)
    record = synthetic.room_record(room, "hypothesis room", "synthetic")  # full scene validation
    assert len(objects(record)) >= 4


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
