"""The export's 3D viewer page, opened from a file:// URL in headless Chromium with software WebGL."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import time
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


class DevTools:
    """Headless Chromium driven over the DevTools protocol through `--remote-debugging-pipe`
    (commands on fd 3, replies on fd 4, NUL-separated JSON): no client library needed."""

    def __init__(self) -> None:
        to_chrome, self._send = os.pipe()
        self._receive, from_chrome = os.pipe()
        # out of the way of 3 and 4, which the child's descriptors are moved to
        to_chrome, from_chrome = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chrome, from_chrome))

        def wire() -> None:
            os.dup2(to_chrome, 3)
            os.dup2(from_chrome, 4)

        self.proc = subprocess.Popen([BROWSER, "--headless", "--no-sandbox", "--use-gl=angle", "--use-angle=swiftshader",
                                      "--enable-unsafe-swiftshader", "--remote-debugging-pipe",
                                      f"--window-size={SIZE[0]},{SIZE[1]}", "about:blank"],
                                     close_fds=False, preexec_fn=wire,  # (close_fds would close 3 and 4)
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome)
        os.close(from_chrome)
        self._buffer, self._id, self.session = b"", 0, None

    def call(self, method: str, **params):
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        os.write(self._send, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._receive, 1 << 16)
                assert chunk, "Chromium closed the DevTools pipe"
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                assert "error" not in reply, reply
                return reply["result"]

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", url=url)["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def js(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def close(self) -> None:
        self.session = None
        self.call("Browser.close")
        self.proc.wait(timeout=30)
        os.close(self._send)
        os.close(self._receive)


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


PROJECT = """(() => { const v = window.metaspatialViewer; return v.objects.map(o => {
  const p = new MetaspatialThree.Vector3(); o.getWorldPosition(p); p.project(v.camera);
  return [o.userData.object_id, (p.x + 1) / 2 * innerWidth, (1 - p.y) / 2 * innerHeight]; }); })()"""


def test_hovering_an_object_shows_its_name(pages):
    html, _, best = pages
    browser = DevTools()
    try:
        browser.open(f"{html.as_uri()}#0")
        for _ in range(200):
            if browser.js("document.body.dataset.status") == "ready":
                break
            time.sleep(0.1)
        ids = {o["new_object_id"] for o in json.loads(best.scene[0])}
        shown = []
        for object_id, x, y in browser.js(PROJECT):
            browser.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
            tip = browser.js("document.getElementById('tip').style.display === 'block' && "
                             "document.getElementById('tip').textContent")
            shown.append((object_id, tip.split("\n")[0] if tip else None))
        browser.call("Input.dispatchMouseEvent", type="mouseMoved", x=5, y=SIZE[1] // 2)  # beside the room
        assert browser.js("document.getElementById('tip').style.display") == "none"
    finally:
        browser.close()
    assert all(name in ids for _, name in shown if name), shown  # a tip always names a real object
    hits = sum(object_id == name for object_id, name in shown)
    assert hits >= len(shown) / 2, shown  # an object's centre mostly shows that object (some hide others)

