"""Memory and time of the stages against the number of rows: do they stream?

    python benchmarks/bench_streaming.py [--rows 10000,40000,160000] [--render-rows 1000,4000,16000]
                                         [--stages score,render,gen-prompts] [--work DIR]

For `score` (default preset, rules judge), `render` (top-down view, 128 px) and `gen-prompts --source
jsonl`, builds inputs of each size from the fixture scenes and responses (rows repeated under new ids),
runs the real `metaspatial` command in a subprocess and reads its peak RSS from `wait4` (the child's
`ru_maxrss`) and its wall time. Linux counts in a child's `ru_maxrss` the peak of the parent's image it
was forked from, so this process stays small: it builds the inputs in a child process of their own. Then, at the largest size, one shard of 4 (`--num-shards 4
--shard-index 1`). Prints, per stage, peak MB and seconds per size, and the ratios the streaming design
promises, measured in this run: peak memory at the largest size over the smallest (flat: about 1),
seconds per row at the largest over the smallest (flat: about 1), and the shard of 4 over the unsharded
run at the same size (time about 0.25, memory about 1 or less). With `--baseline DIR` (a checkout of
older code), each size up to `--baseline-rows` also runs there, and the ratio to it is printed.
No number is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ORACLE = REPO / "tests" / "fixtures" / "upstream-oracle"
WRITE_ROWS = 4096


def run(args: list[str], code: Path = REPO) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of `metaspatial ARGS` run to completion in a child process, with the
    package from `code` (this checkout, or a baseline's)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(code)}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "metaspatial_cli", *map(str, args)], cwd=code, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"metaspatial {' '.join(args)} failed ({proc.returncode}):\n{stderr.decode()[-2000:]}")
    return usage.ru_maxrss / 1024, seconds


def rooms_file(path: Path, n: int) -> Path:
    """n rooms: the fixture scenes repeated under new room ids."""
    scenes = [json.loads(line) for line in (ORACLE / "scenes.jsonl").read_text().splitlines()]
    with open(path, "w") as fh:
        for i in range(n):
            fh.write(json.dumps({**scenes[i % len(scenes)], "room_id": f"room-{i:07d}"}) + "\n")
    return path


def answered_dataset(work: Path, n: int) -> Path:
    """A rollout-like dataset of n rows (prompts of the fixture rooms with the fixture's responses),
    written in row groups as the stages write theirs, without holding n rows in memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    prompts = work / "prompts"
    if not prompts.exists():
        run(["gen-prompts", "--source", "jsonl", "--input", ORACLE / "scenes.jsonl", "--output", prompts,
             "--image-size", "64"])
    by_room = {r["room_id"]: r for r in pq.read_table(prompts).to_pylist()}
    cases = [json.loads(line) for line in (ORACLE / "cases.jsonl").read_text().splitlines()]
    base = [{**by_room[c["room_id"]], "response": c["response"]} for c in cases if c["room_id"] in by_room]
    out = work / f"answered-{n}"
    if out.exists():
        return out
    out.mkdir()
    shutil.copytree(prompts / "_images", out / "_images")
    schema = pa.Table.from_pylist(base[:1]).schema.append(pa.field("trajectory_id", pa.string()))
    with pq.ParquetWriter(out / "train-00000-of-00001.parquet", schema) as writer:
        for lo in range(0, n, WRITE_ROWS):
            rows = [{**base[i % len(base)], "trajectory_id": f"t{i:07d}"} for i in range(lo, min(n, lo + WRITE_ROWS))]
            writer.write_table(pa.Table.from_pylist(rows, schema=schema), row_group_size=1024)
    return out


def command(stage: str, source: Path, output: Path) -> list[str]:
    if stage == "gen-prompts":
        return ["gen-prompts", "--source", "jsonl", "--input", str(source), "--output", str(output),
                "--image-size", "64"]
    if stage == "render":
        return ["render", "--input", str(source), "--output", str(output), "--views", "topdown", "--size", "128"]
    return ["score", "--input", str(source), "--output", str(output)]


def build_input(stage: str, n: int, work: Path) -> Path:
    """The input of `stage` with n rows, built in a child process (see the module docstring)."""
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_streaming as b; "
            f"from pathlib import Path; "
            + (f"print(b.rooms_file(Path({str(work / f'rooms-{n}.jsonl')!r}), {n}))" if stage == "gen-prompts"
               else f"print(b.answered_dataset(Path({str(work)!r}), {n}))"))
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    return Path(out.stdout.strip().splitlines()[-1])


def bench_stage(stage: str, sizes: list[int], work: Path, baseline: Path | None, baseline_rows: int) -> None:
    results = {}
    for n in sizes:
        source = build_input(stage, n, work)
        results[n] = run(command(stage, source, work / f"{stage}-{n}"))
        print(f"{stage:12s} {n:>8d} rows  peak {results[n][0]:7.0f} MB  {results[n][1]:8.1f} s  "
              f"{1e3 * results[n][1] / n:6.2f} ms/row", flush=True)
        shutil.rmtree(work / f"{stage}-{n}")
        if baseline is not None and n <= baseline_rows:
            base = run(command(stage, source, work / f"{stage}-{n}-baseline"), baseline)
            print(f"{stage:12s} {n:>8d} rows  baseline peak {base[0]:7.0f} MB  {base[1]:8.1f} s  -> this "
                  f"checkout: memory {results[n][0] / base[0]:.2f}x, time {results[n][1] / base[1]:.2f}x", flush=True)
            shutil.rmtree(work / f"{stage}-{n}-baseline")
    largest, smallest = sizes[-1], sizes[0]
    shard = run([*command(stage, source, work / f"{stage}-shard"), "--num-shards", "4", "--shard-index", "1"])
    print(f"{stage:12s} {largest:>8d} rows, shard 1 of 4  peak {shard[0]:7.0f} MB  {shard[1]:8.1f} s", flush=True)
    (mem_hi, sec_hi), (mem_lo, sec_lo) = results[largest], results[smallest]
    print(f"{stage:12s} ratios: peak memory {largest // 1000}k/{smallest // 1000}k {mem_hi / mem_lo:.2f}x, "
          f"time per row {largest // 1000}k/{smallest // 1000}k {(sec_hi / largest) / (sec_lo / smallest):.2f}x, "
          f"shard of 4 / unsharded: time {shard[1] / sec_hi:.2f}x, memory {shard[0] / mem_hi:.2f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="10000,40000,160000", help="sizes for score and gen-prompts")
    parser.add_argument("--render-rows", default="1000,4000,16000", help="sizes for render (it draws every row)")
    parser.add_argument("--stages", default="score,render,gen-prompts")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a checkout of the code to compare with (e.g. `git worktree add` of an older commit)")
    parser.add_argument("--baseline-rows", type=int, default=40000,
                        help="run the baseline only up to this many rows (a non-streaming one holds them all)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-streaming-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        for stage in args.stages.split(","):
            sizes = args.render_rows if stage == "render" else args.rows
            bench_stage(stage, sorted(int(n) for n in sizes.split(",")), work, args.baseline, args.baseline_rows)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
