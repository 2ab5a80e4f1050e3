"""How long `gen-prompts --source synthetic` takes, split into its parts: making the rooms (the
generator and placer), drawing and saving the empty-room images, and the whole stage run (rooms,
validation, prompts, images, Parquet) as a separate process.

    python benchmarks/bench_gen_prompts_synthetic.py --num-rooms 1000 --image-size 512

Prints one line per measurement and the machine's load average, since timings on a shared
machine depend on it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-rooms", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=512)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    from stages.gen_prompts import synthetic

    start = time.perf_counter()
    synthetic.catalog()
    synthetic.descriptions_by_type()
    loaded = time.perf_counter()
    for i in range(args.num_rooms):
        synthetic.make_room(args.seed, i)
    made = time.perf_counter()
    print(f"catalog + descriptions loaded: {loaded - start:.2f} s")
    print(f"{args.num_rooms} rooms made (generator + placer): {made - loaded:.2f} s "
          f"({(made - loaded) / args.num_rooms * 1000:.2f} ms a room)")

    from stages.core.render.plan import room_plan
    from stages.core.scene import RoomSize

    sizes = [RoomSize(**synthetic.make_room(args.seed, i)["room_size"]) for i in range(min(args.num_rooms, 200))]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        for k, size in enumerate(sizes):
            room_plan(size, args.image_size).save(Path(tmp) / f"{k}.png")
        per_image = (time.perf_counter() - start) / len(sizes)
    print(f"empty-room image ({args.image_size} px, drawn + PNG saved): {per_image * 1000:.1f} ms a room "
          f"(x {args.num_rooms} rooms = {per_image * args.num_rooms:.1f} s)")

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "metaspatial_cli", "gen-prompts", "--source", "synthetic", "--num-rooms",
               str(args.num_rooms), "--seed", str(args.seed), "--image-size", str(args.image_size),
               "--output", str(Path(tmp) / "prompts")]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        print(f"metaspatial gen-prompts (whole process, {args.image_size} px images): "
              f"{time.perf_counter() - start:.2f} s")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
