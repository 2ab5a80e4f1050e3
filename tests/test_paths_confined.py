"""Paths read from a dataset (renders, prompt images) or an assets folder never lead outside it."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from helpers import REPO, cli
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from test_score_cli import rollout_dir

from stages.core import dataset as ds
from stages.core.errors import UserError
from stages.core.paths import confined, escapes

ROOMS = REPO / "examples" / "rooms" / "rooms.jsonl"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/_images/ok.png, root/_images/out.png -> ../../secret.png (a symlink leading out)."""
    secret = tmp_path / "secret.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(secret)
    root = tmp_path / "data" / "set"
    (root / "_images").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "_images" / "ok.png")
    os.symlink(secret, root / "_images" / "out.png")
    return root


def test_confined_refuses_absolute_parent_and_symlinks_out(tree: Path):
    assert confined(tree, "_images/ok.png", "x") == (tree / "_images" / "ok.png").resolve()
    assert escapes(tree, "_images/../_images/ok.png") is None
    assert "absolute" in escapes(tree, str(tree / "_images" / "ok.png"))
    assert "absolute" in escapes(tree, "/etc/passwd")
    assert "outside" in escapes(tree, "../../secret.png")
    assert "outside" in escapes(tree, "_images/out.png")
    with pytest.raises(UserError, match="rows.parquet, row 3, field image: '/etc/passwd' is an absolute"):
        confined(tree, "/etc/passwd", "rows.parquet, row 3, field image")


@given(st.text(alphabet="ab./\\\0~:", max_size=12))
def test_any_string_either_stays_inside_or_is_refused(ref: str):
    root = Path("/tmp/metaspatial-confined-root")
    if escapes(root, ref) is None:
        assert (root / ref).resolve().is_relative_to(root.resolve())


def test_link_image_does_not_copy_a_symlink_leading_out(tree: Path, tmp_path: Path):
    out = tmp_path / "out"
    ds.link_image(tree, out, "_images/ok.png")
    ds.link_image(tree, out, "_images/out.png")
    assert (out / "_images" / "ok.png").is_file() and not (out / "_images" / "out.png").exists()


def test_assets_folder_refuses_a_symlink_leading_out(tree: Path):
    from stages.core.render.assets import index_folder

    os.symlink(tree.parent.parent / "secret.png", tree / "_images" / "sofa.glb")
    with pytest.raises(UserError, match="--assets .*sofa.glb.* resolves outside"):
        index_folder(tree / "_images")


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    from test_score_cli import ORACLE

    return pd.read_parquet(_gen(ORACLE / "scenes.jsonl", tmp_path_factory.mktemp("prompts") / "p"))


def _gen(rooms: Path, out: Path) -> Path:
    code, text = cli("gen-prompts", "--source", "jsonl", "--input", rooms, "--output", out, "--image-size", "64")
    assert code == 0, text
    return out


@pytest.mark.parametrize("ref", ["/etc/passwd", "../../../../etc/passwd", "_images/out.png"])
def test_score_openai_judge_refuses_a_render_outside_the_dataset(prompts, tmp_path: Path, ref: str):
    src = rollout_dir(prompts, tmp_path / "in", kinds=("ground_truth",), images=True)
    os.symlink("/etc/passwd", src / "_images" / "out.png")
    rows = pd.read_parquet(src)
    rows.loc[len(rows) - 1, "render_topdown"] = ref
    rows.to_parquet(src / "train-00000-of-00001.parquet")
    code, text = cli("score", "--input", src, "--output", tmp_path / "out", "--judge", "openai",
                     "--judge-url", "http://127.0.0.1:9/v1", "--judge-model", "m", "--judge-retries", 0)
    assert code == 2, text
    assert f"row {len(rows) - 1}, field render_topdown" in text and ("outside" in text or "absolute" in text)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("ref", ["/etc/hostname", "../../secret.png", "_images/out.png", "_images/none.png"])
def test_rollout_refuses_an_image_outside_the_dataset_before_writing(tree: Path, tmp_path: Path, ref: str):
    prompts = _gen(ROOMS, tmp_path / "p")
    rows = pd.read_parquet(prompts)
    os.symlink(tree.parent.parent / "secret.png", prompts / "_images" / "out.png")
    rows.loc[1, "image"] = ref
    for part in ds.data_files(prompts):
        part.unlink()
    rows.to_parquet(prompts / "train-00000-of-00001.parquet")
    (prompts / ds.MANIFEST).unlink()  # edited by hand, as an attacker would: no manifest, no checksums
    out = tmp_path / "r"
    code, text = cli("rollout", "--input", prompts, "--output", out, "--model", "m", "--backend", "openai",
                     "--base-url", "http://127.0.0.1:9/v1", "--n", 1, "--max-retries", 0)
    assert code == 2, text
    assert "row 1, field image" in text
    assert not out.exists()


def test_update_refuses_an_image_outside_its_dataset(tree: Path):
    from stages.update.prepare import _image_path

    assert _image_path(tree, "_images/ok.png") == str((tree / "_images" / "ok.png").resolve())
    for ref in ("/etc/passwd", "../../secret.png", "_images/out.png"):
        with pytest.raises(UserError, match="outside|absolute"):
            _image_path(tree, ref)
