"""Stages stream: a shard reads its row range chunk by chunk, rows that belong together stay together,
every row is checked before anything is written, parts are written in row groups."""

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import cli

from stages.core import dataset as ds
from stages.core.config import StageConfig
from stages.core.errors import UserError
from stages.core.stage import Stage, run_stage, shard_bounds
from stages.core.stream import ROW_GROUP_ROWS, DatasetReader


class _Cfg(StageConfig):
    pass


def _dataset(path, n, fmt="parquet", parts=3, row_group=7):
    """n rows {a: i, key: i // 3} over `parts` parts, Parquet row groups of `row_group` rows."""
    rows = [{"a": i, "key": f"k{i // 3}", "text": f"row {i}"} for i in range(n)]
    path.mkdir()
    for p in range(parts):
        lo, hi = shard_bounds(n, parts, p)
        name = path / ds.part_name(p, parts, fmt)
        if fmt == "parquet":
            pq.write_table(pa.Table.from_pylist(rows[lo:hi]), name, row_group_size=row_group)
        else:
            name.write_text("".join(json.dumps(r) + "\n\n" for r in rows[lo:hi]))  # blank lines are skipped
    return rows


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_reader_gives_any_row_range_in_chunks(tmp_path, fmt):
    rows = _dataset(tmp_path / "d", 100, fmt)
    reader = DatasetReader(tmp_path / "d")
    assert reader.num_rows == 100 and reader.columns == ["a", "key", "text"]
    for lo, hi, size in [(0, 100, 256), (13, 71, 5), (33, 34, 1), (66, 67, 3), (99, 100, 8)]:
        chunks = list(reader.chunks(lo, hi, size))
        assert all(len(c) == size for c in chunks[:-1]) and 0 < len(chunks[-1]) <= size
        assert [r for c in chunks for r in c] == rows[lo:hi]
    assert [r for c in reader.chunks(5, 9, 2, ["a"]) for r in c] == [{"a": i} for i in range(5, 9)]


def test_parts_with_different_columns_read_as_one_schema(tmp_path):
    (tmp_path / "d").mkdir()
    pq.write_table(pa.table({"a": [1, 2]}), tmp_path / "d" / "train-00000-of-00002.parquet")
    pq.write_table(pa.table({"a": [3.5], "b": ["x"]}), tmp_path / "d" / "train-00001-of-00002.parquet")
    reader = DatasetReader(tmp_path / "d")
    assert [r for c in reader.chunks(0, 3, 10) for r in c] == [{"a": 1.0, "b": None}, {"a": 2.0, "b": None},
                                                                {"a": 3.5, "b": "x"}]


def _recording_stage(seen, together=None, check=None):
    def make(cfg, ctx):
        class Processor:
            def __call__(self, rows):
                seen.append([r["a"] for r in rows])
                if any(r["a"] == -1 for r in rows):
                    raise RuntimeError("boom")
                return [{**r, "b": r["a"] * 2} for r in rows]

            def close(self):
                seen.append("closed")

        return Processor()

    return Stage("rec", _Cfg, adds=[pa.field("b", pa.int64())], make_processor=make, needs=["a"], together=together,
                 make_row_check=check)


def test_chunks_and_shards_never_split_rows_that_belong_together(tmp_path):
    _dataset(tmp_path / "d", 100)
    whole = []
    run_stage(_recording_stage(whole, together="key"), _Cfg(input=tmp_path / "d", output=tmp_path / "o", chunk_size=4))
    assert whole[-1] == "closed" and all(len(c) == 6 for c in whole[:-2])  # runs of 3: a chunk ends on a run's end
    got = []
    for shard in range(3):
        seen = []
        run_stage(_recording_stage(seen, together="key"),
                  _Cfg(input=tmp_path / "d", output=tmp_path / "s", chunk_size=4, num_shards=3, shard_index=shard))
        rows = [a for c in seen[:-1] for a in c]
        assert rows[0] % 3 == 0 and rows[-1] % 3 == 2 or rows[-1] == 99
        got += rows
    assert got == list(range(100))
    assert sorted(pd.read_parquet(tmp_path / "s")["a"]) == list(range(100))


def test_rows_that_belong_together_must_be_adjacent(tmp_path):
    (tmp_path / "d").mkdir()
    pq.write_table(pa.table({"a": [0, 1, 2, 3], "key": ["x", "y", "x", "z"]}), tmp_path / "d" / "t.parquet")
    with pytest.raises(UserError, match=r"row 2, field key: rows of key 'x' are not adjacent"):
        run_stage(_recording_stage([], together="key"), _Cfg(input=tmp_path / "d", output=tmp_path / "o"))
    assert not (tmp_path / "o").exists()


def test_every_row_is_checked_before_anything_is_written(tmp_path):
    _dataset(tmp_path / "d", 50)

    def check(cfg):
        def row_check(row, index):
            if index == 47:
                raise UserError(f"{cfg.input}, row {index}, field a: no")
        return row_check

    seen = []
    with pytest.raises(UserError, match="row 47, field a"):
        run_stage(_recording_stage(seen, check=check), _Cfg(input=tmp_path / "d", output=tmp_path / "o", chunk_size=4))
    assert seen == [] and not (tmp_path / "o").exists()


def test_the_processor_is_closed_when_a_chunk_fails(tmp_path):
    (tmp_path / "d").mkdir()
    pq.write_table(pa.table({"a": [1, 2, -1, 4]}), tmp_path / "d" / "t.parquet")
    seen = []
    with pytest.raises(RuntimeError, match="boom"):
        run_stage(_recording_stage(seen), _Cfg(input=tmp_path / "d", output=tmp_path / "o", chunk_size=2))
    assert seen == [[1, 2], [-1, 4], "closed"]


def test_parts_are_written_in_row_groups(tmp_path):
    _dataset(tmp_path / "d", 3000)
    run_stage(_recording_stage([]), _Cfg(input=tmp_path / "d", output=tmp_path / "o", chunk_size=256))
    meta = pq.read_metadata(tmp_path / "o" / "train-00000-of-00001.parquet")
    sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
    assert sum(sizes) == 3000 and all(s >= ROW_GROUP_ROWS for s in sizes[:-1]) and max(sizes) < 2 * ROW_GROUP_ROWS
    assert list(pd.read_parquet(tmp_path / "o")["b"]) == [2 * i for i in range(3000)]


def test_score_return_sees_a_trajectorys_earlier_turn_across_a_chunk_boundary(tmp_path, oracle_dir):
    from stages.score.reward import trajectory_return

    code, text = cli("gen-prompts", "--source", "jsonl", "--input", oracle_dir / "scenes.jsonl", "--output",
                     tmp_path / "p", "--image-size", 64, "--max-rows", 1)
    assert code == 0, text
    prompt = pd.read_parquet(tmp_path / "p").iloc[0].to_dict()
    cases = [json.loads(line) for line in (oracle_dir / "cases.jsonl").read_text().splitlines()]
    good = next(c["response"] for c in cases if c["room_id"] == prompt["room_id"] and c["case_kind"] == "ground_truth")
    rows = [{**prompt, "trajectory_id": t, "turn": turn, "response": good if turn == 1 else "none"}
            for t in ("t0", "t1") for turn in (1, 2)]
    (tmp_path / "in").mkdir()
    pd.DataFrame(rows).to_parquet(tmp_path / "in" / "x.parquet")
    code, text = cli("score", "--input", tmp_path / "in", "--output", tmp_path / "out", "--chunk-size", 1)
    assert code == 0, text
    out = pd.read_parquet(tmp_path / "out")
    assert out.reward[0] > 0 and out.reward[1] == 0
    expected = trajectory_return([out.reward[0], out.reward[1]], 0.9, "weighted-average")
    assert out["return"][1] == pytest.approx(expected) and out["return"][0] == out.reward[0]
