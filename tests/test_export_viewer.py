"""The export's 3D viewer page, opened from a file:// URL in headless Chromium with software WebGL."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from export_data import scored_dataset
from helpers import cli
from PIL import Image

from stages.export.viewer import Room, page

BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="needs Chromium (Debian: apt-get install chromium)")
SIZE = (900, 700)


def chromium(url: str, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium with SwiftShader (software WebGL) and the page's console on stderr."""
    command = [BROWSER, "--headless", "--no-sandbox", "--use-gl=angle", "--use-angle=swiftshader",
               "--enable-unsafe-swiftshader", "--enable-logging=stderr", "--v=0",
               f"--window-size={SIZE[0]},{SIZE[1]}", "--virtual-time-budget=8000", *args, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def console_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if ":CONSOLE" in line]


def screenshot(html: Path, room: int, tmp: Path) -> np.ndarray:
    shot = tmp / f"{html.parent.name}-{room}.png"
    result = chromium(f"{html.as_uri()}#{room}", f"--screenshot={shot}")
    assert shot.is_file(), result.stderr[-2000:]
    assert console_lines(result) == []
    return np.asarray(Image.open(shot).convert("RGB")).astype(int)


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> tuple[Path, Path, pd.DataFrame]:
    """The viewer of the best layout per room, and of the same rooms with nothing placed."""
    work = tmp_path_factory.mktemp("viewer")
    scored = scored_dataset(work)
    code, out = cli("export", "--input", scored, "--output", work / "best", "--best-per", "room")
    assert code == 0, out
    rows = pd.read_parquet(scored)
    empty = work / "nothing-placed"
    empty.mkdir()
    rows[rows.kind == "garbage"].to_parquet(empty / "train-00000-of-00001.parquet")
    code, out = cli("export", "--input", empty, "--output", work / "empty")
    assert code == 0, out
    return work / "best" / "_viewer.html", work / "empty" / "_viewer.html", pd.read_parquet(work / "best")


def test_page_loads_every_room_without_console_errors(pages):
    html, _, best = pages
    assert html.is_file() and "MetaspatialThree" in html.read_text()
    for room in range(len(best)):
        result = chromium(f"{html.as_uri()}#{room}", "--dump-dom")
        body = re.search(r"<body([^>]*)>", result.stdout)
        assert body, result.stderr[-2000:]
        assert 'data-status="ready"' in body.group(1), body.group(1)
        assert f'data-objects="{best.objects_exported[room]}"' in body.group(1)
        assert console_lines(result) == []


def test_canvas_shows_the_room_and_its_objects(pages, tmp_path: Path):
    html, empty_html, best = pages
    furnished = screenshot(html, 0, tmp_path)
    empty = screenshot(empty_html, 0, tmp_path)
    canvas = furnished[60:-60]  # below the tool bar, above the info box
    assert canvas.std() > 20, "blank canvas"
    assert len(np.unique(canvas.reshape(-1, 3), axis=0)) > 50
    differs = np.abs(furnished - empty).max(axis=2) > 40
    assert differs.mean() > 0.01, f"objects not visible: {differs.mean():.4f} of pixels differ from the empty room"


def test_labels_cannot_break_out_of_the_page():
    html = page([Room("</script><script>alert(1)</script>", b"glb")], title="<b>x</b>")
    assert "</script><script>alert(1)" not in html and "<b>x</b>" not in html
