"""Unit tests of the shared render engine (stages/core/render): meshes, arrangement, cameras, pictures."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from stages.core.errors import UserError
from stages.core.render import Arrangement, Renderer, check_views
from stages.core.render.assets import AssetLibrary, index_folder
from stages.core.render.camera import DIRECTIONS, fit_camera
from stages.core.render.furniture import BUILDERS, furniture
from stages.core.render.layout import FAR, INVALID, OMITTED, PLACED
from stages.core.render.palette import KIND_COLOURS, kind_of
from stages.core.render.plan import draw_plan
from stages.core.scene import RoomSize, Scene


def load_scene(oracle_dir: Path, room_id: str) -> Scene:
    for line in (oracle_dir / "scenes.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["room_id"] == room_id:
            return Scene.from_idesign(rec["scene_graph"], rec["room_size"], room_id)
    raise KeyError(room_id)


@pytest.fixture(scope="module")
def gym(oracle_dir: Path) -> Scene:
    return load_scene(oracle_dir, "room_5041")


@pytest.fixture(scope="module")
def renderer():
    r = Renderer(pixels=192, labels=False)
    yield r
    r.close()


def test_kinds_from_ids():
    assert kind_of("dining_chair_2") == "chair"
    assert kind_of("desk_lamp_1") == "lamp"
    assert kind_of("coffee_table_1") == "table"
    assert kind_of("coffee_maker_1") == "appliance"
    assert kind_of("tv_stand_1") == "cabinet"
    assert kind_of("pendant_light_3") == "ceiling_light"
    assert kind_of("flux_capacitor_1") == "box"
    assert set(BUILDERS) == set(KIND_COLOURS)


@pytest.mark.parametrize("kind_id", ["bed_1", "sofa_1", "bean_bag_1", "office_chair_1", "bar_stool_1", "ottoman_1",
                                     "dining_table_1", "kitchen_island_1", "bench_1", "desk_1", "wardrobe_1",
                                     "bookshelf_1", "weight_rack_1", "tv_1", "monitor_1", "floor_lamp_1",
                                     "ceiling_light_1", "potted_plant_1", "rug_1", "yoga_mat_1", "painting_1",
                                     "wall_clock_1", "whiteboard_1", "mirror_1", "bathtub_1", "shower_cabin_1",
                                     "toilet_1", "treadmill_1", "weight_bench_1", "stove_1", "fireplace_1",
                                     "globe_1", "fruit_bowl_1", "books_1", "vase_1", "play_tent_1", "piano_1",
                                     "thing_1"])
def test_furniture_fills_but_never_leaves_its_box(kind_id):
    for size in [(1.2, 0.6, 0.9), (2.0, 1.6, 1.0), (0.05, 0.04, 0.02), (3.0, 0.3, 2.4)]:
        soup = furniture(kind_id, *size)
        half = np.array(size) / 2
        lo, hi = soup.tris.reshape(-1, 3).min(axis=0), soup.tris.reshape(-1, 3).max(axis=0)
        assert np.all(lo >= -half - 1e-5) and np.all(hi <= half + 1e-5), (kind_id, size)
        assert np.all(hi - lo > half * 0.5), (kind_id, size)  # spans most of the box on every axis
        assert len(soup.colours) == len(soup.tris) and np.isfinite(soup.tris).all()


def test_rotation_follows_the_scene_convention():
    """90 degrees faces +x: the bed's headboard (its back, -y at 0 degrees) ends up on the -x side."""
    soup = furniture("bed_1", 2.0, 1.6, 1.0).transformed(90.0, (5.0, 5.0, 0.5))
    tall = soup.tris.reshape(-1, 3)
    tall = tall[tall[:, 2] > 0.9]  # only the headboard reaches the top of the box
    assert np.all(tall[:, 0] < 5.0 - 0.7)


def test_arrangement_statuses(gym: Scene):
    ids = gym.ids
    placements = {oid: (1.0, 1.0, 0.5) for oid in ids[2:]}
    placements[ids[3]] = (1e300, 2.0, 0.5)  # finite but absurd: not drawn, listed
    arr = Arrangement.from_scene(gym, placements, omitted=[ids[0]], error="1 object(s) not placed")
    status = {i.id: i.status for i in arr.items}
    assert status[ids[0]] == OMITTED and status[ids[1]] == INVALID and status[ids[3]] == FAR
    assert status[ids[2]] == PLACED and len(arr.items) == len(ids)
    assert [i.number for i in arr.items] == list(range(1, len(ids) + 1))
    assert not arr.no_layout and Arrangement.from_scene(gym, {}, omitted=ids).no_layout


@pytest.mark.parametrize("view", sorted(DIRECTIONS))
def test_cameras_frame_the_room_and_objects(view):
    rng = np.random.default_rng(len(view))
    for _ in range(5):
        room = rng.uniform(2, 12, size=3)
        points = np.r_[[(x, y, z) for x in (0, room[0]) for y in (0, room[1]) for z in (0, room[2])],
                       rng.uniform(-1, 1, size=(6, 3)) * room + room / 2]
        cam = fit_camera(view, points)
        px = cam.project(points, 100)
        assert np.all((px >= 0) & (px <= 100)), view
        assert px[:, 0].max() - px[:, 0].min() > 60 or px[:, 1].max() - px[:, 1].min() > 60  # fills the frame


def test_check_views():
    assert check_views(["topdown", "corner-ne"]) == ["topdown", "corner-ne"]
    for bad in (["side"], ["topdown", "topdown"], []):
        with pytest.raises(UserError):
            check_views(bad)


def changed(a: Image.Image, b: Image.Image) -> int:
    return int((np.abs(np.asarray(a, int) - np.asarray(b, int)).sum(axis=2) > 24).sum())


def without(arr: Arrangement, oid: str) -> Arrangement:
    return Arrangement(arr.room, [i for i in arr.items if i.id != oid], arr.error, arr.unknown)


def test_every_placed_object_is_visible_in_3d(gym: Scene, renderer: Renderer):
    arr = Arrangement.from_scene(gym, None)
    views = ["perspective", "corner-ne"]
    full = renderer.render(arr, views)
    for item in arr.items:
        less = renderer.render(without(arr, item.id), views)
        assert max(changed(full[v], less[v]) for v in views) >= 8, f"{item.id} is not visible"


def test_every_placed_object_is_drawn_on_the_plan(gym: Scene):
    arr = Arrangement.from_scene(gym, None)
    full = draw_plan(arr, 256)
    for item in arr.items:
        assert changed(full, draw_plan(without(arr, item.id), 256)) > 10, item.id


def test_plan_and_views_change_with_the_layout(gym: Scene, renderer: Renderer):
    arr = Arrangement.from_scene(gym, None)
    moved = {i.id: (i.position[0], i.position[1], i.position[2]) for i in arr.items if i.position}
    first = arr.items[0]
    moved[first.id] = (gym.size.x - moved[first.id][0], moved[first.id][1], moved[first.id][2])
    other = Arrangement.from_scene(gym, moved)
    for view in ("topdown", "perspective"):
        assert changed(renderer.render_view(arr, view), renderer.render_view(other, view)) > 50, view


@pytest.mark.parametrize("pixels", [64, 100, 1000])
def test_plan_at_any_size(gym: Scene, pixels: int):
    for arr in (Arrangement.empty_room(gym.size), Arrangement.from_scene(gym, None)):
        image = np.asarray(draw_plan(arr, pixels), int)
        assert image.shape == (pixels, pixels, 3) and image.std() > 10


def test_no_layout_mark_and_empty_room(gym: Scene):
    room = RoomSize(4, 3, 2.5)
    empty = np.asarray(draw_plan(Arrangement.empty_room(room), 256), int)
    assert empty.std() > 10
    marked = np.asarray(draw_plan(Arrangement.from_scene(gym, {}, omitted=gym.ids, error="no <answer> block"), 256),
                        int)
    red = (marked[..., 0] > 150) & (marked[..., 1] < 100) & (marked[..., 2] < 100)
    assert red.mean() > 0.005


def test_assets_replace_procedural_meshes(gym: Scene, tmp_path: Path, renderer: Renderer):
    import trimesh

    trimesh.creation.icosphere(radius=1.0).export(tmp_path / "treadmill.ply")  # category name
    (tmp_path / "notes.txt").write_text("not a mesh")
    lib = AssetLibrary(tmp_path)
    arr = Arrangement.from_scene(gym, None)
    treadmill = next(i for i in arr.items if i.id == "treadmill_1")
    mesh = lib.mesh_for(treadmill)
    assert mesh is not None
    extent = mesh.tris.reshape(-1, 3).max(axis=0) - mesh.tris.reshape(-1, 3).min(axis=0)
    assert np.allclose(extent, [treadmill.length, treadmill.width, treadmill.height], atol=1e-4)
    assert lib.mesh_for(next(i for i in arr.items if i.id == "bench_1")) is None
    with_assets = Renderer(pixels=192, labels=False, assets=tmp_path)
    with_assets._backend = renderer.backend  # share the GL context of this test module
    assert changed(with_assets.render_view(arr, "corner-ne"), renderer.render_view(arr, "corner-ne")) > 30


def test_assets_must_stay_inside_the_folder(tmp_path: Path):
    outside = tmp_path / "secret.obj"
    outside.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    folder = tmp_path / "assets"
    folder.mkdir()
    os.symlink(outside, folder / "bed.obj")
    with pytest.raises(UserError, match="outside"):
        index_folder(folder)
    with pytest.raises(UserError, match="no such directory"):
        index_folder(tmp_path / "missing")


def test_broken_asset_falls_back_to_procedural(gym: Scene, tmp_path: Path):
    (tmp_path / "treadmill.glb").write_bytes(b"not a glb at all")
    lib = AssetLibrary(tmp_path)
    item = next(i for i in Arrangement.from_scene(gym, None).items if i.id == "treadmill_1")
    assert lib.mesh_for(item) is None


def test_facing_arrow_direction(gym: Scene):
    item = next(i for i in Arrangement.from_scene(gym, None).items if i.id == "bench_1")
    assert item.angle == 90.0 and np.allclose(item.facing(), (1.0, 0.0), atol=1e-9)
    xs = [x for x, _ in item.footprint()]
    assert math.isclose(max(xs) - min(xs), item.width, rel_tol=1e-9)  # width along x at 90 degrees


def test_open3d_backend_draws_the_same_picture(gym: Scene, renderer: Renderer):
    pytest.importorskip("open3d", reason="the open3d extra is not installed")
    arr = Arrangement.from_scene(gym, None)
    other = Renderer(pixels=192, backend="open3d", labels=False)
    a = np.asarray(other.render_view(arr, "corner-sw"), int)
    b = np.asarray(renderer.render_view(arr, "corner-sw"), int)
    other.close()
    assert np.abs(a - b).mean() < 3.0  # same colours; only anti-aliased edges differ
    assert (np.abs(a - b).sum(axis=2) > 30).mean() < 0.08


coordinate = st.one_of(st.floats(-1e308, 1e308, allow_nan=False), st.floats(-20, 20, allow_nan=False))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_finite_placement_renders(gym: Scene, renderer: Renderer, data):
    """Whatever finite numbers an answer holds, every view renders a non-blank picture."""
    chosen = data.draw(st.lists(st.sampled_from(gym.ids), unique=True))
    placements = {oid: (data.draw(coordinate), data.draw(coordinate), data.draw(coordinate)) for oid in chosen}
    arr = Arrangement.from_scene(gym, placements, omitted=[i for i in gym.ids if i not in placements])
    view = data.draw(st.sampled_from(["topdown", "perspective", "corner-sw"]))
    image = np.asarray(renderer.render_view(arr, view), int)
    assert image.shape == (192, 192, 3) and image.std() > 5


@pytest.mark.parametrize("size", [(0.4, 0.3, 0.5), (5, 4, 3), (900.0, 4.0, 3.0), (1e6, 1e6, 10.0)])
def test_rooms_of_any_size_render_quickly(size, renderer: Renderer):
    """Absurd sizes (a 900 m corridor, a 1000 km hall) still give a picture of the room, at once
    (the grid coarsens instead of drawing millions of lines)."""
    arr = Arrangement.empty_room(RoomSize(*size))
    for view in ("topdown", "corner-ne"):
        image = np.asarray(renderer.render_view(arr, view), int)
        assert (np.abs(image - image[0, 0]).sum(axis=2) > 30).mean() > 0.005, view


def test_objects_leaving_the_room_are_flagged(gym: Scene):
    reference = {i.id: i.position for i in Arrangement.from_scene(gym, None).items}
    moved = dict(reference)
    first = gym.ids[0]
    moved[first] = (gym.size.x + 1.0, reference[first][1], reference[first][2])
    arr = Arrangement.from_scene(gym, moved)
    assert arr.note(arr.items[0]) == "outside the room" and arr.items[0].drawn
    assert all(arr.note(i) is None for i in arr.items[1:])

    def red(a: Arrangement) -> int:
        img = np.asarray(draw_plan(a, 256), int)
        return int(((img[..., 0] > 150) & (img[..., 1] < 100) & (img[..., 2] < 100)).sum())

    assert red(arr) > red(Arrangement.from_scene(gym, reference)) + 20
