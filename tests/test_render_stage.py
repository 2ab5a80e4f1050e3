"""End-to-end tests of `metaspatial render` on a rollout dataset built from fixture rooms and answers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import cli, write_rooms
from PIL import Image

ROOMS = ("room_5041", "room_4589")
KINDS = ("ground_truth", "random_inside", "json_string_answer", "null_coords", "perturb_small",
         "stacked_same_point", "string_coords", "missing_coordinate_key")


def build_rollouts(oracle_dir: Path, work: Path) -> Path:
    """gen-prompts on two fixture rooms, then one row per fixture answer of those rooms."""
    scenes = [json.loads(line) for line in (oracle_dir / "scenes.jsonl").read_text().splitlines()]
    rooms = write_rooms(work / "rooms.jsonl", [s for s in scenes if s["room_id"] in ROOMS])
    code, out = cli("gen-prompts", "--source", "jsonl", "--input", rooms, "--output", work / "prompts")
    assert code == 0, out
    prompts = pd.read_parquet(work / "prompts")
    cases = [json.loads(line) for line in (oracle_dir / "cases.jsonl").read_text().splitlines()]
    rows = []
    for _, prompt in prompts.iterrows():
        for case in cases:
            if case["room_id"] == prompt["room_id"] and case["case_kind"] in KINDS:
                rows.append({**prompt.to_dict(), "response": case["response"], "case_kind": case["case_kind"],
                             "sample_id": f"{prompt['room_id']}/{case['case_kind']}"})
    rollouts = work / "rollouts"
    rollouts.mkdir()
    pd.DataFrame(rows).to_parquet(rollouts / "train-00000-of-00001.parquet")
    shutil.copytree(work / "prompts" / "_images", rollouts / "_images")
    return rollouts


@pytest.fixture(scope="module")
def rendered(oracle_dir: Path, tmp_path_factory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("render")
    rollouts = build_rollouts(oracle_dir, work)
    code, out = cli("render", "--input", rollouts, "--output", work / "renders", "--views",
                    "topdown,perspective,corner-ne", "--size", "256")
    assert code == 0, out
    return rollouts, work / "renders"


def pixels(dataset: Path, rel: str) -> np.ndarray:
    return np.asarray(Image.open(dataset / rel).convert("RGB")).astype(int)


def test_columns_and_images(rendered):
    rollouts, renders = rendered
    df = pd.read_parquet(renders)
    source = pd.read_parquet(rollouts)
    assert len(df) == len(source) > 0
    assert {"layout", "parse_error", "render_topdown", "render_perspective", "render_corner_ne"} <= set(df.columns)
    assert set(source.columns) <= set(df.columns)  # input columns are kept
    for col in ("render_topdown", "render_perspective", "render_corner_ne", "image"):
        for rel in df[col]:
            img = pixels(renders, rel)  # the prompt's image too: input images follow their rows
            assert img.shape == ((256, 256, 3) if col != "image" else (512, 512, 3))
            assert img.std() > 10, f"{col} {rel} is blank"
            assert Path(rel).name.split(".")[0].isalnum()


def test_layout_column_holds_the_valid_placements(rendered):
    _, renders = rendered
    df = pd.read_parquet(renders).set_index("case_kind", drop=False)
    gt = df[df.case_kind == "ground_truth"].iloc[0]
    layout = json.loads(gt.layout)
    reference = json.loads(gt.reference_layout)
    assert layout.keys() == reference.keys()
    assert all(np.allclose(layout[k], reference[k]) for k in layout)
    assert pd.isna(gt.parse_error)
    bad = df[df.case_kind == "null_coords"].iloc[0]
    assert "not a finite number" in bad.parse_error
    assert len(json.loads(bad.layout)) == len(layout) - 1  # the broken entry left out, others kept


def test_different_layouts_give_different_images(rendered):
    _, renders = rendered
    df = pd.read_parquet(renders)
    room = df[df.room_id == ROOMS[0]].set_index("case_kind")
    for col in ("render_topdown", "render_perspective", "render_corner_ne"):
        a = pixels(renders, room.loc["ground_truth", col])
        b = pixels(renders, room.loc["random_inside", col])
        c = pixels(renders, room.loc["perturb_small", col])
        assert (np.abs(a - b).sum(axis=2) > 30).mean() > 0.02, col
        assert (np.abs(a - c).sum(axis=2) > 30).sum() > 20, col


def red_share(img: np.ndarray) -> float:
    """Share of pixels in the alert red of the marks (not the pinks and browns of furniture)."""
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return float(((r > 150) & (g < 100) & (b < 100) & (r - g > 90)).mean())


def test_malformed_answers_show_the_empty_room_with_a_mark(rendered):
    _, renders = rendered
    df = pd.read_parquet(renders)
    for _, row in df[df.case_kind.isin(["json_string_answer", "missing_coordinate_key"])].iterrows():
        assert json.loads(row.layout) == {} or row.case_kind == "missing_coordinate_key"
        assert row.parse_error
    bad = df[df.case_kind == "json_string_answer"].iloc[0]
    good = df[(df.case_kind == "ground_truth") & (df.room_id == bad.room_id)].iloc[0]
    for col in ("render_topdown", "render_perspective"):
        assert red_share(pixels(renders, bad[col])) > 0.003 > red_share(pixels(renders, good[col])) * 3, col


def test_missing_objects_are_listed_not_dropped(rendered):
    """An answer with one broken entry: the plan's legend marks it in red; the GT plan has no red."""
    _, renders = rendered
    df = pd.read_parquet(renders)
    broken = df[df.case_kind == "string_coords"].iloc[0]
    gt = df[(df.case_kind == "ground_truth") & (df.room_id == broken.room_id)].iloc[0]
    assert red_share(pixels(renders, broken.render_topdown)) > 2 * red_share(pixels(renders, gt.render_topdown)) + 1e-4


def test_rerun_skips_and_workers_give_the_same_rows(rendered, tmp_path):
    rollouts, renders = rendered
    code, out = cli("render", "--input", rollouts, "--output", renders, "--views", "topdown,perspective,corner-ne",
                    "--size", "256", "--workers", "2")
    assert code == 0 and "skipping" in out  # --workers changes no output, so resuming with another value is fine
    code, out = cli("render", "--input", rollouts, "--output", renders, "--views", "topdown", "--size", "256")
    assert code == 2 and "views" in out  # other views would mix two kinds of rows
    code, out = cli("render", "--input", rollouts, "--output", tmp_path / "w2", "--views",
                    "topdown,perspective,corner-ne", "--size", "256", "--workers", "2", "--max-rows", "6",
                    "--chunk-size", "3")
    assert code == 0, out
    one = pd.read_parquet(renders).head(6)
    two = pd.read_parquet(tmp_path / "w2")
    assert list(one.render_perspective) == list(two.render_perspective)  # same content, same names
    for rel in two.render_perspective:
        a, b = pixels(renders, rel), pixels(tmp_path / "w2", rel)
        assert np.abs(a - b).mean() < 1.0


def test_bad_inputs_fail_clearly_before_writing(rendered, tmp_path):
    rollouts, _ = rendered
    code, out = cli("render", "--input", rollouts, "--output", tmp_path / "o1", "--views", "topdown,side")
    assert code == 2 and "side" in out and "corner-ne" in out
    df = pd.read_parquet(rollouts)
    df.loc[3, "scene"] = "[{\"new_object_id\": 3}]"
    broken = tmp_path / "broken"
    broken.mkdir()
    df.to_parquet(broken / "train-00000-of-00001.parquet")
    code, out = cli("render", "--input", broken, "--output", tmp_path / "o2")
    assert code == 2 and "row 3" in out and "new_object_id" in out
    assert not (tmp_path / "o2").exists()
    df = pd.read_parquet(rollouts)
    df.loc[2, "room_y"] = -1.0
    df.to_parquet(broken / "train-00000-of-00001.parquet")
    code, out = cli("render", "--input", broken, "--output", tmp_path / "o2")
    assert code == 2 and "row 2, field room_y" in out and not (tmp_path / "o2").exists()
    code, out = cli("render", "--input", rollouts.parent / "prompts", "--output", tmp_path / "o3")
    assert code == 2 and "response" in out
    code, out = cli("render", "--input", rollouts, "--output", tmp_path / "o4", "--assets", tmp_path / "nope")
    assert code == 2 and "nope" in out


def test_shards_and_library_use_cover_every_row(rendered, tmp_path):
    """Shard 0 through the library, shard 1 through the CLI; together they hold every row once.
    A null response (a crashed rollout) renders as "no valid layout"."""
    from stages import render

    rollouts, _ = rendered
    df = pd.read_parquet(rollouts).head(5)
    df.loc[1, "response"] = None
    src = tmp_path / "src"
    src.mkdir()
    df.to_parquet(src / "train-00000-of-00001.parquet")
    out = tmp_path / "sharded"
    render.run(render.Config(input=src, output=out, views=["topdown"], num_shards=2, shard_index=0, size=128))
    code, text = cli("render", "--input", src, "--output", out, "--views", "topdown", "--num-shards", "2",
                     "--shard-index", "1", "--size", "128")
    assert code == 0, text
    got = pd.read_parquet(out)
    assert sorted(got.sample_id) == sorted(df.sample_id)
    assert sorted(p.name for p in out.glob("train-*")) == ["train-00000-of-00002.parquet",
                                                            "train-00001-of-00002.parquet"]
    crashed = got[got.sample_id == df.loc[1, "sample_id"]].iloc[0]
    assert "not text" in crashed.parse_error and json.loads(crashed.layout) == {}
    assert red_share(pixels(out, crashed.render_topdown)) > 0.003


def answer_text(layout: dict[str, list[float]]) -> str:
    entries = [{"new_object_id": oid, "x": x, "y": y, "z": z} for oid, (x, y, z) in layout.items()]
    return f"<think>Placing {len(entries)} objects.</think>\n<answer>{json.dumps(entries)}</answer>"


def test_example_rooms_render_with_reference_and_broken_answers(oracle_dir, tmp_path):
    """All 50 example rooms (16 room types) with their reference layouts, a shifted copy of one,
    and fixture answers that are broken whatever the room."""
    repo = Path(__file__).resolve().parents[1]
    code, out = cli("gen-prompts", "--source", "jsonl", "--input", repo / "examples" / "rooms" / "rooms.jsonl",
                    "--output", tmp_path / "prompts", "--image-size", "64")
    assert code == 0, out
    prompts = pd.read_parquet(tmp_path / "prompts")
    rows = [{**p.to_dict(), "response": answer_text(json.loads(p.reference_layout)), "case": "reference"}
            for _, p in prompts.iterrows()]
    first = json.loads(prompts.reference_layout.iloc[0])
    shifted = {k: [x, y * 0.5, z] for k, (x, y, z) in first.items()}
    rows.append({**prompts.iloc[0].to_dict(), "response": answer_text(shifted), "case": "shifted"})
    broken = [json.loads(line)["response"] for line in (oracle_dir / "cases.jsonl").read_text().splitlines()
              if json.loads(line)["case_kind"] in ("invalid_json", "scalar_answer", "no_answer_tags")][:3]
    rows += [{**prompts.iloc[1].to_dict(), "response": text, "case": "broken"} for text in broken]
    src = tmp_path / "rollouts"
    src.mkdir()
    pd.DataFrame(rows).to_parquet(src / "train-00000-of-00001.parquet")
    code, out = cli("render", "--input", src, "--output", tmp_path / "renders", "--size", "128")
    assert code == 0, out
    df = pd.read_parquet(tmp_path / "renders")
    ref = df[df.case == "reference"]
    assert ref.parse_error.isna().all() and len(ref) == 50
    assert all(len(json.loads(row.layout)) == row.num_objects for _, row in ref.iterrows())
    for rel in [*df.render_topdown, *df.render_perspective]:
        assert pixels(tmp_path / "renders", rel).std() > 10
    assert ref.render_perspective.nunique() == 50  # different rooms, different pictures (by content address)
    a = pixels(tmp_path / "renders", df[df.case == "shifted"].render_perspective.iloc[0])
    b = pixels(tmp_path / "renders", ref.render_perspective.iloc[0])
    assert (np.abs(a - b).sum(axis=2) > 30).mean() > 0.01
    for _, row in df[df.case == "broken"].iterrows():
        assert row.parse_error and json.loads(row.layout) == {}
        assert red_share(pixels(tmp_path / "renders", row.render_perspective)) > 0.003
