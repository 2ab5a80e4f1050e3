"""The shipped example inputs are what `examples/make_examples.py` writes from the test fixture."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow.parquet as pq
from helpers import REPO

sys.path.insert(0, str(REPO / "examples"))
import make_examples  # noqa: E402


def files(folder: Path) -> dict[str, object]:
    """Every file's content: JSON parsed, Parquet as rows, READMEs left out."""
    out: dict[str, object] = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.suffix == ".json":
            out[key] = json.loads(path.read_text())
        elif path.suffix == ".parquet":
            out[key] = pq.read_table(path).to_pylist()
        elif path.suffix == ".obj":
            out[key] = path.read_text()
    return out


def test_shipped_examples_equal_what_the_script_writes(tmp_path):
    rooms = make_examples.fixture_rooms()
    make_examples.write_idesign(rooms, tmp_path / "idesign")
    make_examples.write_hf(rooms, tmp_path / "hf")
    make_examples.write_assets(tmp_path / "assets")
    for name in ("idesign", "hf", "assets"):
        assert files(tmp_path / name) == files(REPO / "examples" / name), name


def test_the_quickstart_comment_names_the_largest_eval_room():
    rooms = [json.loads(line) for line in (REPO / "examples" / "rooms" / "rooms.jsonl").read_text().splitlines()]
    largest = max(sum("itemType" not in o for o in room["scene_graph"]) for room in rooms)
    assert f"the largest eval rooms, {largest} objects, fit" in (REPO / "recipes" / "quickstart.yaml").read_text()
