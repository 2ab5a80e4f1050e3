"""`metaspatial report`'s 3D section: the best held-out layout of each evaluated model, in the export viewer."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import trimesh
from export_data import scored_dataset
from helpers import cli


def test_report_shows_each_models_best_layout_in_3d(tmp_path: Path):
    scored = scored_dataset(tmp_path / "work", rooms=2)
    run = tmp_path / "run"
    for model, drop in ((1, "exact"), (2, "none")):  # model 1 never wrote the exact answers
        target = run / "eval" / f"model-{model}" / "score"
        shutil.copytree(scored, target)
        rows = pd.read_parquet(target)
        for part in [*target.glob("train-*.parquet"), target / "_manifest.json"]:  # edited: no checksums
            part.unlink()
        rows[rows.kind != drop].to_parquet(target / "train-00000-of-00001.parquet")
    (run / "eval" / "eval.csv").write_text("model,reward\nbefore,0.1\nafter,0.2\n")
    code, out = cli("report", run)
    assert code == 0, out
    report = (run / "report.html").read_text()
    assert '<iframe src="report-3d.html"' in report
    viewer = (run / "report-3d.html").read_text()
    rooms = json.loads(re.search(r'<script type="application/json" id="rooms">(.*?)</script>', viewer, re.S).group(1))
    assert [r["label"].split(":")[0] for r in rooms] == ["before", "after"]
    for room, model in zip(rooms, (1, 2), strict=True):
        rows = pd.read_parquet(run / "eval" / f"model-{model}" / "score")
        best = rows.loc[rows.reward.idxmax()]
        scene = trimesh.load(io.BytesIO(base64.b64decode(room["glb"])), file_type="glb")
        assert scene.metadata["sample_id"] == best.sample_id
        assert f"(reward {best.reward:.3f})" in room["label"]
