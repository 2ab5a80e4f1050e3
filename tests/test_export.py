"""`metaspatial export`: glTF scenes and IDesign graphs from scored layouts, read back with trimesh and the sources."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import trimesh
from export_data import answer, scored_dataset
from helpers import cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stages.core.scene import Scene
from stages.export.gltf import SHELL, to_gltf
from stages.export.rows import SOURCE
from stages.export.work import Exporter
from stages.gen_prompts.sources import from_idesign_dir, from_jsonl


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> Path:
    return scored_dataset(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def exported(scored: Path) -> Path:
    out = scored.parent / "export"
    code, text = cli("export", "--input", scored, "--output", out)
    assert code == 0, text
    return out


def placements(row) -> dict[str, tuple[float, float, float]]:
    """What the answer placed, read independently of the exporter: the reference positions it was built from."""
    reference = json.loads(row.reference_layout)
    shift = 0.4 if row.kind == "shifted" else 0.0
    ids = list(reference)
    chosen = {"exact": ids, "shifted": ids, "bad-coordinate": ids[:-1], "left-out": ids[1:], "garbage": []}[row.kind]
    return {oid: (reference[oid][0] + shift, reference[oid][1], reference[oid][2]) for oid in chosen}


def node_angle(matrix: np.ndarray) -> float:
    """The clockwise scene angle (degrees, 0..360) of a node rotating about glTF's +y."""
    return math.degrees(math.atan2(-matrix[0, 2], matrix[0, 0])) % 360


def test_round_trip_nodes_transforms_and_meshes(exported: Path):
    df = pd.read_parquet(exported)
    assert len(df) == 15 and df.glb.notna().all()
    for _, row in df.iterrows():
        scene = Scene.from_idesign(json.loads(row.scene), {"x": row.room_x, "y": row.room_y, "z": row.room_z})
        loaded = trimesh.load(exported / row.glb)
        expected = placements(row)
        assert set(loaded.graph.nodes_geometry) == set(expected) | set(SHELL), row.kind
        assert row.objects_exported == len(expected)
        for oid, position in expected.items():
            matrix, geometry = loaded.graph[oid]
            obj = scene.get(oid)
            assert np.allclose(matrix[:3, 3], to_gltf(position), atol=1e-3)
            assert abs((node_angle(matrix) - scene.z_angle(obj) + 180) % 360 - 180) < 0.1
            local = loaded.geometry[geometry].vertices  # glTF frame: x = length, y = height, z = width
            half = np.array([obj.length, obj.height, obj.width]) / 2 + 1e-5
            assert np.all(np.abs(local) <= half), oid
        extras = loaded.metadata
        assert extras["sample_id"] == row.sample_id and extras["units"] == "metres"
        assert math.isclose(extras["reward"], row.reward)
        missing = {e["id"] for e in extras["not_placed"]}
        assert missing == set(scene.ids) - set(expected) | ({"ghost_1"} if row.kind == "left-out" else set())


def test_object_nodes_carry_scores(exported: Path):
    row = pd.read_parquet(exported).query("kind == 'exact'").iloc[0]
    loaded = trimesh.load(exported / row.glb)
    scores = json.loads(row.object_scores)
    for oid in scores:
        extras = loaded.graph.transforms.edge_data[("world", oid)]["metadata"]
        assert extras["scores"] == scores[oid] and extras["mesh"] == "procedural"


def test_idesign_graph_reads_back_through_both_sources(exported: Path, tmp_path: Path):
    df = pd.read_parquet(exported).query("kind == 'exact'")
    rooms = {r["room_id"]: r for r in from_idesign_dir(exported / "_scenes", None)}
    lines = []
    for _, row in df.iterrows():
        folder = Path(row.idesign).parent.name
        graph = json.loads((exported / row.idesign).read_text())
        scene = Scene.from_idesign(rooms[folder]["scene_graph"], rooms[folder]["room_size"])
        assert scene.reference_layout() == {k: list(v) for k, v in placements(row).items()}
        original = Scene.from_idesign(json.loads(row.scene), rooms[folder]["room_size"])
        assert all(o.rotation == original.z_angle(original.get(o.id)) for o in scene.objects)
        lines.append(json.dumps({"room_id": row.room_id, "room_size": rooms[folder]["room_size"], "scene_graph": graph}))
    (tmp_path / "rooms.jsonl").write_text("\n".join(lines) + "\n")
    assert [r["room_id"] for r in from_jsonl(tmp_path / "rooms.jsonl")] == list(df.room_id)


def test_best_per_room_is_the_max_reward_row(scored: Path, tmp_path: Path):
    code, out = cli("export", "--input", scored, "--output", tmp_path / "best", "--best-per", "room")
    assert code == 0, out
    best = pd.read_parquet(tmp_path / "best")
    rows = pd.read_parquet(scored)
    assert sorted(best.room_id) == sorted(rows.room_id.unique())
    for _, row in best.iterrows():
        assert row.reward == rows[rows.room_id == row.room_id].reward.max()


def test_candidates_compete_and_shards_split_rooms(scored: Path, tmp_path: Path):
    rows = pd.read_parquet(scored)
    worse, better = tmp_path / "worse", tmp_path / "better"
    for path, frame in ((worse, rows[rows.kind != "exact"]), (better, rows[rows.kind == "exact"])):
        path.mkdir()
        frame.to_parquet(path / "train-00000-of-00001.parquet")
    for shard in (0, 1):
        code, out = cli("export", "--input", worse, "--candidates", better, "--best-per", "room",
                        "--output", tmp_path / "best", "--num-shards", 2, "--shard-index", shard)
        assert code == 0, out
    best = pd.read_parquet(tmp_path / "best")
    assert sorted(best.room_id) == sorted(rows.room_id.unique()) and set(best.kind) == {"exact"}
    assert all(Path(g).parent.name.startswith(f"{r}-") for g, r in zip(best.glb, best.room_id, strict=True))
    page = (tmp_path / "best" / "_viewer.html").read_text()  # written by the shard that finished last
    assert all(f"{r} (reward" in page for r in best.sample_id)


def test_candidates_with_other_column_types_are_refused(scored: Path, tmp_path: Path):
    rows = pd.read_parquet(scored)
    other = tmp_path / "other"
    other.mkdir()
    rows.assign(num_objects=rows.num_objects.astype(str)).to_parquet(other / "train-00000-of-00001.parquet")
    code, out = cli("export", "--input", scored, "--candidates", other, "--best-per", "room", "--output", tmp_path / "o")
    assert code == 2 and "--candidates: their columns do not match" in out and "num_objects" in out, out
    assert not (tmp_path / "o").exists()


def test_a_dataset_without_layouts_is_refused_and_nothing_written(scored: Path, tmp_path: Path):
    prompts = scored.parent / "prompts"
    code, out = cli("export", "--input", prompts, "--output", tmp_path / "out")
    assert code == 2 and "missing column(s) response" in out and "rollout, render or score dataset" in out
    assert not (tmp_path / "out").exists()
    code, out = cli("export", "--input", scored.parent / "rollouts", "--output", tmp_path / "out", "--best-per", "room")
    assert code == 2 and "reward" in out and "metaspatial score" in out
    assert not (tmp_path / "out").exists()


def test_best_per_room_refuses_a_reward_that_is_not_a_number(scored: Path, tmp_path: Path):
    rows = pd.read_parquet(scored)
    rows.loc[4, "reward"] = float("nan")
    source = tmp_path / "nan"
    source.mkdir()
    rows.to_parquet(source / "train-00000-of-00001.parquet")
    code, out = cli("export", "--input", source, "--output", tmp_path / "out", "--best-per", "room")
    assert code == 2 and "row 4, field reward: expected a finite number" in out
    assert not (tmp_path / "out").exists()


@settings(max_examples=200, deadline=None)
@given(angle=st.floats(-720, 720), x=st.floats(-50, 50), y=st.floats(-50, 50), z=st.floats(-5, 5),
       size=st.tuples(*[st.floats(0.05, 4)] * 3))
def test_node_transform_is_the_render_transform_in_gltf_axes(angle, x, y, z, size):
    """For any angle and position, node matrix x (glTF-axes local mesh) = glTF axes x render's world mesh."""
    from stages.core.render.furniture import furniture
    from stages.export.gltf import TO_GLTF, node_matrix

    local = furniture("armchair_1", *size)
    world = local.transformed(angle, (x, y, z)).tris.reshape(-1, 3).astype(np.float64) @ TO_GLTF.T
    placed = trimesh.transform_points(local.tris.reshape(-1, 3).astype(np.float64) @ TO_GLTF.T,
                                      node_matrix((x, y, z), angle))
    assert np.allclose(placed, world, atol=1e-4)


def test_unreadable_asset_falls_back_to_the_procedural_mesh(scored: Path, tmp_path: Path):
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "desk.glb").write_bytes(b"not a mesh at all")
    trimesh.creation.icosphere().export(assets / "armchair.obj")
    code, out = cli("export", "--input", scored, "--output", tmp_path / "out", "--assets", assets, "--max-rows", 1)
    assert code == 0, out
    row = pd.read_parquet(tmp_path / "out").iloc[0]
    loaded = trimesh.load(tmp_path / "out" / row.glb)
    extras = {oid: loaded.graph.transforms.edge_data[("world", oid)]["metadata"] for oid in ("desk_1", "armchair_1")}
    assert extras["desk_1"]["mesh"] == "procedural (desk.glb unusable)"
    assert extras["armchair_1"]["mesh"] == "asset armchair.obj"
    size = extras["armchair_1"]["size_m"]
    local = loaded.geometry[loaded.graph["armchair_1"][1]].vertices
    assert np.allclose(local.max(axis=0) - local.min(axis=0), [size["length"], size["height"], size["width"]], atol=1e-4)


def test_a_room_of_no_objects_exports_its_shell(scored: Path, tmp_path: Path):
    row = pd.read_parquet(scored).iloc[0].to_dict()
    row.update(scene="[]", response="<think></think><answer>[]</answer>", object_scores=None)
    source = tmp_path / "empty"
    source.mkdir()
    pd.DataFrame([row]).to_parquet(source / "train-00000-of-00001.parquet")
    code, out = cli("export", "--input", source, "--output", tmp_path / "out")
    assert code == 0, out
    exported_row = pd.read_parquet(tmp_path / "out").iloc[0]
    loaded = trimesh.load(tmp_path / "out" / exported_row.glb)
    assert set(loaded.graph.nodes_geometry) == set(SHELL) and exported_row.objects_exported == 0


def test_bad_scene_names_the_row(scored: Path, tmp_path: Path):
    rows = pd.read_parquet(scored)
    rows.loc[3, "room_x"] = -1.0
    source = tmp_path / "bad"
    source.mkdir()
    rows.to_parquet(source / "train-00000-of-00001.parquet")
    code, out = cli("export", "--input", source, "--output", tmp_path / "out")
    assert code == 2 and "row 3" in out and "field room_x" in out
    assert not (tmp_path / "out").exists()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(max_size=200), st.builds(
    lambda xs: answer([{"new_object_id": "desk_1", "x": x, "y": 1.0, "z": 0.4} for x in xs]),
    st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.none()), max_size=3))))
def test_any_response_exports_a_loadable_scene(scored: Path, tmp_path: Path, text: str):
    row = pd.read_parquet(scored).iloc[0].to_dict()
    exporter = Exporter(tmp_path, None)
    out = exporter.export({**row, "response": text, SOURCE: str(scored)})
    loaded = trimesh.load(tmp_path / out["glb"])
    assert set(SHELL) <= set(loaded.graph.nodes_geometry)
    assert json.loads((tmp_path / out["idesign"]).read_text())
    for oid in set(loaded.graph.nodes_geometry) - set(SHELL):
        assert np.all(np.isfinite(loaded.graph[oid][0]))


def test_world_meshes_match_what_render_draws(exported: Path):
    """Node transform x local mesh = the render engine's world triangles, turned to glTF's axes."""
    from stages.core.render import Arrangement
    from stages.core.render.scene3d import item_soup

    row = pd.read_parquet(exported).query("kind == 'exact'").iloc[0]
    scene = Scene.from_idesign(json.loads(row.scene), {"x": row.room_x, "y": row.room_y, "z": row.room_z})
    loaded = trimesh.load(exported / row.glb)
    for item in Arrangement.from_scene(scene, placements(row)).drawn:
        matrix, geometry = loaded.graph[item.id]
        world = trimesh.transform_points(loaded.geometry[geometry].vertices, matrix)
        drawn = item_soup(item, None).tris.reshape(-1, 3).astype(np.float64)
        assert np.allclose(world, drawn @ np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]]).T, atol=1e-4), item.id
