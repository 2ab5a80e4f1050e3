"""Speed of the render engine: ms per view per backend, views/s with worker processes, and Blender.

    python benchmarks/bench_render.py [--size 512] [--repeats 20] [--rows 32]
                                      [--blender-venv .nox/bench-bpy] [--no-blender]

Baseline, measured in the same run: the 2D plan (NumPy/Pillow). Each 3D backend renders the same
fixture room (perspective and corner views) after one warm-up frame; "array" is the picture in
memory (scene building, shading, rasterising, labels), "+png" adds PNG encoding. Throughput runs the
render stage's worker pool on rows of random layouts with the default views (topdown + perspective)
for 1 and 2 workers, after a warm-up batch, interleaved and best of two. Blender (`bpy`, installed into a throwaway venv; never
a project dependency) renders the very same triangles and camera with Workbench, EEVEE (1 sample)
and Cycles (16 samples), and the ratios say how many times faster the engine is. Nothing is
asserted: the numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from stages.core.render import Arrangement, Renderer  # noqa: E402
from stages.core.render.camera import fit_camera  # noqa: E402
from stages.core.render.scene3d import frame_points, view_soup  # noqa: E402
from stages.core.scene import Scene  # noqa: E402
from stages.render.work import Job, WorkerPool  # noqa: E402

ORACLE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "upstream-oracle"
ROOM = "room_5041"
VIEWS_3D = ("perspective", "corner-ne")
BPY_REQUIREMENT = "bpy==4.5.*"


def load_scene() -> tuple[dict, Scene]:
    for line in (ORACLE / "scenes.jsonl").read_text().splitlines():
        raw = json.loads(line)
        if raw["room_id"] == ROOM:
            return raw, Scene.from_idesign(raw["scene_graph"], raw["room_size"], ROOM)
    raise SystemExit(f"{ROOM} not in {ORACLE}/scenes.jsonl")


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up: first frame compiles shaders, allocates buffers
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def summary(ms: list[float]) -> str:
    return f"{statistics.median(ms):7.1f} ms [{min(ms):.0f}-{max(ms):.0f}]"


def png_bytes(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def bench_views(arr: Arrangement, size: int, repeats: int) -> dict[str, float]:
    """Median ms per view for the plan baseline and each importable backend."""
    medians: dict[str, float] = {}
    plan = Renderer(size)
    ms = timed(lambda: plan.render_view(arr, "topdown"), repeats)
    medians["plan"] = statistics.median(ms)
    print(f"  baseline  topdown plan (NumPy/Pillow)   array {summary(ms)}   "
          f"+png {summary(timed(lambda: png_bytes(plan.render_view(arr, 'topdown')), repeats))}")
    for backend in ("pyrender", "open3d"):
        try:
            renderer = Renderer(size, backend=backend)
            start = time.perf_counter()
            renderer.render_view(arr, VIEWS_3D[0])
            first = time.perf_counter() - start
        except Exception as err:  # a backend that cannot start here is reported, not fatal
            print(f"  {backend:9s} not measured: {str(err).splitlines()[0][:120]}")
            continue
        print(f"  {backend:9s} first frame incl. context + shaders: {first:.1f} s")
        for view in VIEWS_3D:
            ms = timed(lambda v=view, r=renderer: r.render_view(arr, v), repeats)
            png = timed(lambda v=view, r=renderer: png_bytes(r.render_view(arr, v)), repeats)
            medians[f"{backend}/{view}"] = statistics.median(ms)
            print(f"  {backend:9s} {view:28s} array {summary(ms)}   +png {summary(png)}   "
                  f"= {statistics.median(ms) / medians['plan']:.1f}x the plan")
        renderer.close()
    return medians


def random_rows(raw: dict, scene: Scene, count: int) -> list[dict]:
    rng = np.random.default_rng(0)
    size = raw["room_size"]
    rows = []
    for _ in range(count):
        answer = [{"new_object_id": o.id, "x": float(rng.uniform(0, size["x"])),
                   "y": float(rng.uniform(0, size["y"])), "z": o.height / 2} for o in scene.objects]
        rows.append({"scene": json.dumps(scene.to_idesign(with_positions=False)), "room_x": size["x"],
                     "room_y": size["y"], "room_z": size["z"],
                     "response": f"<think>.</think><answer>{json.dumps(answer)}</answer>"})
    return rows


def bench_workers(raw: dict, scene: Scene, size: int, count: int) -> None:
    """Views/s for 1 and 2 workers, measured interleaved (1, 2, 1, 2) and the best of each kept:
    other jobs on a shared machine come and go, and the best run is the least disturbed one."""
    views = ("topdown", "perspective")
    rows = random_rows(raw, scene, count)
    best: dict[int, float] = {}
    for workers in (1, 2, 1, 2):
        with tempfile.TemporaryDirectory() as out:
            pool = WorkerPool(Job(out, views, size, "pyrender", None, True), workers)
            pool.map(rows[: 2 * workers], 1, lambda n: None)  # start workers, contexts, shaders
            start = time.perf_counter()
            pool.map(rows, 4, lambda n: None)
            seconds = time.perf_counter() - start
            pool.close()
        best[workers] = max(best.get(workers, 0.0), count * len(views) / seconds)
    for workers, rate in best.items():
        print(f"  --workers {workers}: {rate:6.1f} views/s ({count} rows x {len(views)} views, PNGs written; "
              f"best of 2) = {rate / best[1]:.2f}x one worker")


BLENDER_SCRIPT = r"""
import json, sys, time
import bpy, numpy as np
from mathutils import Matrix
data = np.load(sys.argv[1]); repeats = json.loads(sys.argv[2]); out = sys.argv[3]
bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
tris = data["tris"].reshape(-1, 3).astype(float)
mesh = bpy.data.meshes.new("room")
mesh.from_pydata(tris.tolist(), [], np.arange(len(tris)).reshape(-1, 3).tolist())
colours = np.repeat(data["colours"], 3, axis=0) / 255.0
attr = mesh.color_attributes.new("col", "BYTE_COLOR", "CORNER")
attr.data.foreach_set("color_srgb", np.c_[colours, np.ones(len(colours))].ravel().tolist())
obj = bpy.data.objects.new("room", mesh)
scene.collection.objects.link(obj)
mat = bpy.data.materials.new("col"); mat.use_nodes = True
nodes = mat.node_tree.nodes
node = nodes.new("ShaderNodeVertexColor"); node.layer_name = "col"
mat.node_tree.links.new(node.outputs["Color"], nodes["Principled BSDF"].inputs["Base Color"])
obj.data.materials.append(mat)
sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN")); sun.data.energy = 3.0
sun.rotation_euler = (0.5, 0.3, 0.0); scene.collection.objects.link(sun)
scene.world = bpy.data.worlds.new("w"); scene.world.color = (0.8, 0.8, 0.8)
cam = bpy.data.cameras.new("cam"); cam.sensor_fit = "VERTICAL"; cam.angle_y = float(data["yfov"])
cam.clip_start, cam.clip_end = float(data["znear"]), float(data["zfar"])
cam_obj = bpy.data.objects.new("cam", cam); scene.collection.objects.link(cam_obj)
cam_obj.matrix_world = Matrix(data["pose"].tolist()); scene.camera = cam_obj
size = int(data["size"])
scene.render.resolution_x = scene.render.resolution_y = size
scene.render.resolution_percentage = 100
scene.render.filepath = out
engines = [e.identifier for e in bpy.types.RenderSettings.bl_rna.properties["engine"].enum_items]
results = {}
for name, engine in (("Workbench", "BLENDER_WORKBENCH"), ("EEVEE 1 sample", "BLENDER_EEVEE_NEXT"),
                     ("Cycles 16 spp", "CYCLES")):
    if engine not in engines:
        engine = "BLENDER_EEVEE" if "EEVEE" in engine else engine
    scene.render.engine = engine
    if engine == "BLENDER_WORKBENCH":
        scene.display.shading.color_type = "VERTEX"
    elif engine == "CYCLES":
        scene.cycles.samples = 16; scene.cycles.use_denoising = False; scene.cycles.device = "CPU"
        scene.cycles.use_adaptive_sampling = False; scene.render.use_persistent_data = True
    else:
        scene.eevee.taa_render_samples = 1
    bpy.ops.render.render(write_still=True)  # warm-up
    times = []
    for _ in range(repeats[name]):
        start = time.perf_counter(); bpy.ops.render.render(write_still=True)
        times.append((time.perf_counter() - start) * 1000)
    results[name] = times
print("RESULT " + json.dumps(results))
"""


def ensure_bpy(venv: Path) -> Path | None:
    """A Python with bpy: the given venv, created and filled on first use. None if bpy will not install."""
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", "import bpy"], capture_output=True).returncode == 0:
        return python
    print(f"  installing {BPY_REQUIREMENT} into the throwaway venv {venv} (not a project dependency) ...")
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
    pip = subprocess.run([python, "-m", "pip", "install", "-q", BPY_REQUIREMENT], capture_output=True, text=True,
                         timeout=1800) if made.returncode == 0 else made
    if pip.returncode != 0:
        print(f"  Blender not measured: bpy did not install ({(pip.stderr or pip.stdout).strip()[-300:]})")
        return None
    return python


def bench_blender(arr: Arrangement, size: int, python: Path, engine_ms: float, save: Path | None) -> None:
    view = VIEWS_3D[0]
    camera = fit_camera(view, frame_points(arr))
    soup = view_soup(arr, view)
    repeats = {"Workbench": 5, "EEVEE 1 sample": 2, "Cycles 16 spp": 2}
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "scene.npz"
        np.savez(npz, tris=soup.tris, colours=soup.colours, pose=camera.pose, yfov=camera.yfov,
                 znear=camera.znear, zfar=camera.zfar, size=size)
        script = Path(tmp) / "blender_bench.py"
        script.write_text(BLENDER_SCRIPT)
        picture = (save or Path(tmp)) / "blender_perspective.png"
        run = subprocess.run([python, str(script), str(npz), json.dumps(repeats), str(picture)],
                             capture_output=True, text=True, timeout=3600)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    if run.returncode != 0 or not lines:
        print(f"  Blender failed (exit {run.returncode}): {(run.stderr or run.stdout).strip()[-400:]}")
        return
    for name, ms in json.loads(lines[0][len("RESULT "):]).items():
        print(f"  Blender {name:16s} {view:14s} png {summary(ms)}   "
              f"= {statistics.median(ms) / engine_ms:6.0f}x slower than pyrender (+png)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--blender-venv", type=Path, default=Path(".nox/bench-bpy"))
    parser.add_argument("--no-blender", action="store_true")
    parser.add_argument("--save-images", type=Path, default=None,
                        help="also write the engine's and Blender's pictures (last engine: Cycles) to this folder")
    args = parser.parse_args()
    raw, scene = load_scene()
    arr = Arrangement.from_scene(scene, None)
    print(f"render benchmark: {ROOM} ({len(scene.objects)} objects), {args.size}x{args.size} px, "
          f"{os.cpu_count()} CPUs, median of {args.repeats} after one warm-up")
    medians = bench_views(arr, args.size, args.repeats)
    if args.save_images:
        args.save_images.mkdir(parents=True, exist_ok=True)
        for view in ("topdown", *VIEWS_3D):
            Renderer(args.size).render_view(arr, view).save(args.save_images / f"engine_{view}.png")
    print("throughput (render stage worker pool, pyrender):")
    bench_workers(raw, scene, args.size, args.rows)
    if args.no_blender or "pyrender/perspective" not in medians:
        return
    print("Blender, same triangles and camera (perspective view):")
    python = ensure_bpy(args.blender_venv)
    if python is not None:
        renderer = Renderer(args.size)
        with_png = statistics.median(timed(lambda: png_bytes(renderer.render_view(arr, VIEWS_3D[0])), args.repeats))
        bench_blender(arr, args.size, python, with_png, args.save_images)


if __name__ == "__main__":
    main()
