"""`metaspatial report`: a self-contained HTML page of a run, checked in headless Chromium."""

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from metaspatial_cli.app import app
from stages.core import dataset as ds

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
COLOURS = {1: (200, 60, 60), 2: (60, 160, 60)}


def write_scores(directory: Path, iteration: int, reward: float) -> None:
    """A small score dataset: two rooms × two samples, each with a render of its own colour."""
    rows = []
    for room in ("room-a", "room-b"):
        for sample in (0, 1):
            image = f"_images/{room}-{sample}.png"
            path = directory / image
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (64, 64), COLOURS.get(iteration, (60, 60, 200))).save(path)
            rows.append({"room_id": room, "sample_index": sample, "reward": reward + 0.01 * sample,
                         "format_reward": 1.0, "collision_ratio": 0.5 / iteration, "out_of_bounds_ratio": 0.1,
                         "constraint_ratio": 0.2, "judge_score": 30.0, "render_topdown": image})
    ds.write_rows(directory / ds.part_name(0, 1, "parquet"), rows, None, "parquet")
    ds.update_manifest(directory, {"stage": "score", "num_shards": 1}, ds.part_name(0, 1, "parquet"),
                       {"rows": len(rows)})


def fake_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    for iteration, reward in ((1, 0.2), (2, 0.5)):
        write_scores(run / f"iter-{iteration:03d}" / "turn-1" / "score", iteration, reward)
        update = run / f"iter-{iteration:03d}" / "update"
        update.mkdir(parents=True)
        (update / "metrics.jsonl").write_text(
            "\n".join(json.dumps({"step": s, "loss": 0.1 * s, "reward": reward}) for s in (1, 2)) + "\n")
    for model in (1, 2):
        write_scores(run / "eval" / f"model-{model}" / "score", model, 0.1 * model)
    (run / "eval" / "eval.csv").write_text(
        "model,path,rooms,samples,format_valid,object_set_match,collision_ratio,out_of_bounds_ratio,"
        "constraint_ratio,judge_score,format_reward,reward,reward_sem\n"
        "before,models/tiny,2,4,0.5,0.5,0.4,0.1,0.2,30,0.8,0.1,0.01\n"
        "after,run/iter-002/update,2,4,1.0,1.0,0.2,0.1,0.2,30,1.0,0.2,0.01\n")
    return run


def test_report_embeds_tables_curves_and_galleries(tmp_path):
    run = fake_run(tmp_path)
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    page = (run / "report.html").read_text()
    assert "<script" not in page and not re.search(r'(src|href)="(?!data:)', page)  # self-contained, offline
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 3 + 2 * 2 + 2 * 2  # three charts; 2 rooms × 2 iterations; 2 rooms × 2 models
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "iteration 2, turn 1" in page and ">after<" in page and "0.500" in page


def test_report_of_missing_directory_exits_2(tmp_path):
    result = CliRunner().invoke(app, ["report", str(tmp_path / "nope")])
    assert result.exit_code == 2


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (apt-get install -y chromium)")
def test_report_opens_in_headless_chromium_without_console_errors(tmp_path):
    run = fake_run(tmp_path)
    assert CliRunner().invoke(app, ["report", str(run)]).exit_code == 0
    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
             "--enable-logging=stderr", "--v=0", "--window-size=1200,1600"]
    proc = subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", (run / "report.html").as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert shot.is_file(), proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], console
    with Image.open(shot) as img:
        colours = img.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # text, charts and renders, not a blank page
