"""Speed of the score stage's physics + constraint computation (`stages.core.measure`).

    python benchmarks/bench_score.py [--repeats 5] [--batch 64]

Prints scenes/second and ms per scene on the fixture scenes and on synthetic scenes of 5-80
objects, next to the paper code's published figures (fixture README: median 16.5 ms per scene at
11.6 objects; 7.8 / 15.9 / 40 / 128 / 491 ms at 5 / 10 / 20 / 40 / 80 objects, same kind of
machine), and against two baselines measured in this run: the same code called one scene at a
time, and this project's scalar re-implementation of the paper's code (`metaspatial-v1`).
Then the cost in the number of rows (near-linear is the goal). No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from stages.core.measure import measure
from stages.core.scene import LAYOUT_ELEMENTS, Scene, layout_elements
from stages.score import upstream_v1

ORACLE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "upstream-oracle"
PUBLISHED_MS = {"fixture": 16.5, 5: 7.8, 10: 15.9, 20: 40.0, 40: 128.0, 80: 491.0}
PREPOSITIONS = ("left of", "right of", "in front", "behind", "on", "above", "under")


def fixture_items() -> list[tuple[Scene, dict, list]]:
    items = []
    for line in (ORACLE / "scenes.jsonl").read_text().splitlines():
        raw = json.loads(line)
        scene = Scene.from_idesign(raw["scene_graph"], raw["room_size"], raw["room_id"])
        items.append((scene, {o.id: o.position for o in scene.objects}, raw["scene_graph"]))
    return items


def synthetic_item(n: int, rng: np.random.Generator) -> tuple[Scene, dict, list]:
    """A room of n objects with wall and object relations, randomly placed (collisions included)."""
    side = max(4.0, 1.2 * n ** 0.5 * 1.5)
    objects = []
    for k in range(n):
        size = rng.uniform(0.3, 1.5, 3).round(2)
        layout, rel = [], []
        if k and rng.random() < 0.5:
            rel = [{"object_id": f"obj_{rng.integers(k)}", "preposition": str(rng.choice(PREPOSITIONS)),
                    "is_adjacent": bool(rng.random() < 0.5)}]
        else:
            layout = [{"layout_element_id": str(rng.choice(LAYOUT_ELEMENTS[:5])), "preposition": "on"}]
        objects.append({"new_object_id": f"obj_{k}", "style": "Modern", "material": "Oak",
                        "size_in_meters": {"length": size[0], "width": size[1], "height": size[2]},
                        "is_on_the_floor": bool(rng.random() < 0.8), "facing": "north_wall",
                        "placement": {"room_layout_elements": layout, "objects_in_room": rel},
                        "rotation": {"z_angle": float(rng.choice([0.0, 90.0, 180.0, 270.0]))},
                        "position": {"x": float(rng.uniform(0.5, side - 0.5)), "y": float(rng.uniform(0.5, side - 0.5)),
                                     "z": float(size[2] / 2)}})
    room = {"x": side, "y": side, "z": 3.0}
    scene = Scene.from_idesign(objects, room, f"synthetic_{n}")
    graph = objects + layout_elements(scene.size)
    return scene, {o.id: o.position for o in scene.objects}, graph


def best_of(repeats: int, fn) -> tuple[float, float]:
    """Median (CPU seconds, wall seconds) of `repeats` calls. The figures compared are CPU time: on
    this shared machine other jobs inflate wall time 2-3x, while the paper's were taken on an idle VM."""
    cpu, wall = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start)
    return statistics.median(cpu), statistics.median(wall)


def v1_scene(graph: list, room: tuple) -> None:
    fresh = copy.deepcopy(graph)
    upstream_v1.collisions(fresh)
    upstream_v1.constraints(fresh, room)


def report(label: str, items: list, repeats: int, batch: int) -> None:
    pairs = [(s, p) for s, p, _ in items]
    reps = max(1, batch // len(pairs))
    batched = (pairs * reps)[:max(batch, len(pairs))]
    t_batch, wall_batch = (t / len(batched) for t in best_of(repeats, lambda: measure(batched)))
    t_single = best_of(repeats, lambda: [measure([p]) for p in pairs])[0] / len(pairs)
    rooms = [(s.size.x, s.size.y, s.size.z) for s, _, _ in items]
    t_v1 = best_of(repeats, lambda: [v1_scene(g, r) for (_, _, g), r in zip(items, rooms, strict=True)])[0] / len(items)
    key = "fixture" if label == "fixture" else int(label)
    published = PUBLISHED_MS[key]
    print(f"{label:>8} | {np.mean([len(s.objects) for s, _, _ in items]):7.1f} | {1 / t_batch:9.0f} | "
          f"{t_batch * 1e3:8.3f} | {wall_batch * 1e3:8.3f} | {published:8.1f} | {published / (t_batch * 1e3):7.0f}x | "
          f"{t_single / t_batch:8.1f}x | {t_v1 / t_batch:8.1f}x")


def scaling(items: list, repeats: int) -> None:
    pairs = [(s, p) for s, p, _ in items]
    print("\nrows    | cpu s    | us per row | per-row cost vs 100 rows")
    base = None
    for rows in (100, 400, 1600, 6400):
        batch = (pairs * (rows // len(pairs) + 1))[:rows]
        seconds = best_of(repeats, lambda batch=batch: measure(batch))[0]
        per_row = seconds / rows
        base = base or per_row
        print(f"{rows:7d} | {seconds:8.3f} | {per_row * 1e6:10.1f} | {per_row / base:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=256, help="scenes per measure() call in the batched run")
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; numpy {np.__version__}")
    print("scenes   | objects | scenes/s  | ms (cpu) | ms(wall) | paper ms | vs paper | vs 1-by-1 | vs v1 here")
    fixture = fixture_items()
    report("fixture", fixture, args.repeats, args.batch)
    rng = np.random.default_rng(0)
    for n in (5, 10, 20, 40, 80):
        report(str(n), [synthetic_item(n, rng) for _ in range(20)], args.repeats, args.batch)
    scaling(fixture, args.repeats)


if __name__ == "__main__":
    main()
