"""Speed of `export` against `render` on the same rows, and the size of a typical .glb.

    python benchmarks/bench_export.py [--rooms 50] [--size 512] [--repeats 2]

Rows: the example rooms (examples/rooms/rooms.jsonl, 5 to 20 objects each), each answered with its
reference layout. Baseline, measured in the same run: the render stage with its default views
(topdown + perspective, 512 px, one worker) on the very same rows. Both run as stages (library
call, fresh output, --overwrite), interleaved, best of `--repeats`. Sizes: the .glb of every row
(median, min, max; per object), the scene_graph.json and the dataset's _viewer.html. Nothing is
asserted: the numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pandas as pd  # noqa: E402

from stages import export, gen_prompts, render  # noqa: E402

ROOMS = Path(__file__).resolve().parents[1] / "examples" / "rooms" / "rooms.jsonl"


def make_rows(work: Path, rooms: int) -> Path:
    """A rollout-like dataset: one row per room whose response is the room's reference layout."""
    gen_prompts.run(gen_prompts.Config(source="jsonl", input=ROOMS, output=work / "prompts", max_rows=rooms))
    rows = []
    for _, prompt in pd.read_parquet(work / "prompts").iterrows():
        layout = [{"new_object_id": oid, "x": x, "y": y, "z": z}
                  for oid, (x, y, z) in json.loads(prompt.reference_layout).items()]
        rows.append({**prompt.to_dict(), "response": f"<think>.</think><answer>{json.dumps(layout)}</answer>",
                     "sample_id": f"{prompt.room_id}-s0"})
    out = work / "rollouts"
    out.mkdir()
    pd.DataFrame(rows).to_parquet(out / "train-00000-of-00001.parquet")
    return out


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows = make_rows(work, args.rooms)
        n = len(pd.read_parquet(rows))
        render_cfg = render.Config(input=rows, output=work / "render", size=args.size, overwrite=True)
        export_cfg = export.Config(input=rows, output=work / "export", overwrite=True)
        render.run(render_cfg)  # warm-up: GL context, imports, furniture cache
        export.run(export_cfg)
        times: dict[str, list[float]] = {"render": [], "export": []}
        for _ in range(args.repeats):
            times["render"].append(timed(lambda: render.run(render_cfg)))
            times["export"].append(timed(lambda: export.run(export_cfg)))
        out = pd.read_parquet(work / "export")
        glb = [(work / "export" / p).stat().st_size for p in out.glb]
        graph = [(work / "export" / p).stat().st_size for p in out.idesign]
        per_object = [size / max(k, 1) for size, k in zip(glb, out.objects_exported, strict=True)]
        page = (work / "export" / "_viewer.html").stat().st_size
    best = {k: min(v) for k, v in times.items()}
    print(f"rows: {n} example rooms ({int(out.objects_exported.sum())} objects), best of {args.repeats}")
    print(f"render (topdown + perspective, {args.size} px, 1 worker): {n / best['render']:8.1f} rows/s")
    print(f"export (.glb + scene_graph.json + viewer page):          {n / best['export']:8.1f} rows/s")
    print(f"export / render speed ratio: {best['render'] / best['export']:.2f}x")
    print(f".glb size: median {statistics.median(glb) / 1024:.0f} KiB (min {min(glb) / 1024:.0f}, "
          f"max {max(glb) / 1024:.0f}), {statistics.median(per_object) / 1024:.1f} KiB per object")
    print(f"scene_graph.json: median {statistics.median(graph) / 1024:.1f} KiB; "
          f"_viewer.html with {min(n, 50)} rooms: {page / 1024 / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
