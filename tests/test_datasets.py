"""The dataset contract: readers, sharding, resume after a real kill, atomic parts, manifests."""

import json
import signal
import time

import pandas as pd
import pyarrow as pa
import pytest
from helpers import cli, cli_process, write_rooms

from stages.core import dataset as ds
from stages.core.config import StageConfig
from stages.core.errors import UserError
from stages.core.stage import Stage, run_stage, shard_bounds


def _scenes(oracle_dir):
    return [json.loads(line) for line in (oracle_dir / "scenes.jsonl").read_text().splitlines()]


@pytest.fixture()
def rooms(tmp_path, oracle_dir):
    return write_rooms(tmp_path / "rooms.jsonl", _scenes(oracle_dir))


def _gen(rooms, out, *extra):
    return cli("gen-prompts", "--source", "jsonl", "--input", rooms, "--output", out, "--image-size", 64, *extra)


def test_output_is_readable_by_pandas_polars_and_datasets(tmp_path, rooms):
    import datasets
    import polars as pl

    code, out = _gen(rooms, tmp_path / "p", "--num-shards", 2, "--shard-index", 0)
    assert code == 0, out
    code, out = _gen(rooms, tmp_path / "p", "--num-shards", 2, "--shard-index", 1)
    assert code == 0, out
    n = len(_scenes_from(rooms))
    assert len(pd.read_parquet(tmp_path / "p")) == n
    assert pl.read_parquet(str(tmp_path / "p" / "*.parquet")).height == n
    loaded = datasets.load_dataset("parquet", data_dir=str(tmp_path / "p"))
    assert loaded["train"].num_rows == n
    manifest = json.loads((tmp_path / "p" / "_manifest.json").read_text())
    assert manifest["stage"] == "gen-prompts" and manifest["rows"] == n
    assert set(manifest["parts"]) == {"train-00000-of-00002.parquet", "train-00001-of-00002.parquet"}
    df = pd.read_parquet(tmp_path / "p")
    assert all((tmp_path / "p" / img).is_file() for img in df["image"])


def _scenes_from(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_jsonl_format_has_the_same_rows(tmp_path, rooms):
    assert _gen(rooms, tmp_path / "j", "--format", "jsonl")[0] == 0
    assert _gen(rooms, tmp_path / "p")[0] == 0
    a = pd.DataFrame(ds.read_rows(tmp_path / "j")).sort_values("prompt_id").reset_index(drop=True)
    b = pd.read_parquet(tmp_path / "p").sort_values("prompt_id").reset_index(drop=True)
    # a column that is null in every row reads back as None from JSONL and as NaN from Parquet
    a, b = (df.astype(object).where(df.notna(), None) for df in (a, b))
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


def test_three_shard_processes_equal_an_unsharded_run(tmp_path, oracle_dir):
    rooms = write_rooms(tmp_path / "rooms.jsonl", _scenes(oracle_dir), copies=2)
    procs = [cli_process("gen-prompts", "--source", "jsonl", "--input", rooms, "--output", tmp_path / "sharded",
                         "--image-size", 64, "--num-shards", 3, "--shard-index", i) for i in range(3)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stdout.read()
    assert _gen(rooms, tmp_path / "whole")[0] == 0
    sharded = pd.read_parquet(tmp_path / "sharded").sort_values("prompt_id").reset_index(drop=True)
    whole = pd.read_parquet(tmp_path / "whole").sort_values("prompt_id").reset_index(drop=True)
    assert sharded["prompt_id"].is_unique and len(sharded) == 2 * len(_scenes(oracle_dir))
    pd.testing.assert_frame_equal(sharded, whole)
    assert json.loads((tmp_path / "sharded" / "_manifest.json").read_text())["rows"] == len(whole)


def test_slurm_array_variables_pick_the_shard(monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")
    cfg = StageConfig(output="x")
    assert (cfg.num_shards, cfg.shard_index) == (4, 2)


def test_shard_bounds_cover_every_row_once():
    for n in range(0, 40):
        for shards in range(1, 7):
            spans = [shard_bounds(n, shards, i) for i in range(shards)]
            assert spans[0][0] == 0 and spans[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))


def test_killed_run_resumes_without_redoing_parts_or_duplicating_rows(tmp_path, oracle_dir):
    rooms = write_rooms(tmp_path / "rooms.jsonl", _scenes(oracle_dir), copies=12)  # 348 rooms
    out = tmp_path / "out"
    args = ("gen-prompts", "--source", "jsonl", "--input", rooms, "--output", out, "--image-size", 64,
            "--chunk-size", 10, "--num-shards", 2)
    assert _gen(rooms, out, "--chunk-size", 10, "--num-shards", 2, "--shard-index", 0)[0] == 0
    part0 = out / "train-00000-of-00002.parquet"
    mtime0 = part0.stat().st_mtime_ns
    proc = cli_process(*args, "--shard-index", 1)
    chunks = out / "_chunks" / "train-00001-of-00002.parquet"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(chunks.glob("chunk-*.parquet"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(chunks.glob("chunk-*.parquet")))
    assert done_before >= 2 and not (out / "train-00001-of-00002.parquet").exists()
    for shard in (0, 1):
        code, log = _gen(rooms, out, "--chunk-size", 10, "--num-shards", 2, "--shard-index", shard)
        assert code == 0, log
        if shard == 0:
            assert "complete; skipping" in log
        else:
            assert f"{done_before} of 18 chunks already done" in log
    assert part0.stat().st_mtime_ns == mtime0
    df = pd.read_parquet(out)
    assert len(df) == 348 and df["prompt_id"].is_unique
    assert not (out / "_chunks").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".") and "tmp" in p.name]


def test_overwrite_redoes_and_changed_settings_refuse_to_mix(tmp_path, rooms):
    out = tmp_path / "out"
    assert _gen(rooms, out)[0] == 0
    code, log = _gen(rooms, out, "--template", "concise")
    assert code == 2 and "different settings (template)" in log
    assert _gen(rooms, out, "--template", "concise", "--overwrite")[0] == 0
    assert pd.read_parquet(out)["prompt"].str.startswith("Room:").all()
    code, log = _gen(rooms, out, "--template", "concise", "--num-shards", 2)
    assert code == 2 and "another --num-shards" in log


class _Cfg(StageConfig):
    factor: int = 2
    """Multiplier."""


def _double(cfg, ctx):
    return lambda rows: [{**r, "b": r["a"] * cfg.factor} for r in rows]


STAGE = Stage("double", _Cfg, adds=[pa.field("b", pa.int64())], make_processor=_double, needs=["a"])


def test_runner_keeps_input_columns_and_checks_needed_ones(tmp_path):
    src = tmp_path / "in"
    ds.write_rows(src / ds.part_name(0, 1, "jsonl"), [{"a": i, "keep": f"r{i}"} for i in range(5)], None, "jsonl")
    run_stage(STAGE, _Cfg(input=src, output=tmp_path / "out", factor=3))
    assert pd.read_parquet(tmp_path / "out").to_dict("list") == {"a": [0, 1, 2, 3, 4], "keep": [f"r{i}" for i in range(5)],
                                                                 "b": [0, 3, 6, 9, 12]}
    ds.write_rows(tmp_path / "bad" / ds.part_name(0, 1, "parquet"), [{"x": 1}], None, "parquet")
    with pytest.raises(UserError, match=r"bad: missing column\(s\) a"):
        run_stage(STAGE, _Cfg(input=tmp_path / "bad", output=tmp_path / "out2"))
    assert not (tmp_path / "out2").exists()


def test_malformed_jsonl_dataset_names_file_and_line(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "rows.jsonl").write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(UserError, match=r"rows.jsonl, line 2: not valid JSON"):
        ds.read_rows(tmp_path / "in")
