"""`metaspatial report`: a self-contained HTML page of a run, checked in headless Chromium at the
widths people read it at (no horizontal overflow, every image loaded, captions clear of each other)."""

import base64
import html
import io
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

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
COLOURS = {1: (200, 60, 60), 2: (60, 160, 60)}
WARM = "warmed_up_on_48_synthetic_rooms_of_their_own_seed"  # a --label with no place to break a line
LONG = "/a/very/long/path/that/people/keep/their/experiments/under/runs/quickstart-with-a-long-name"


def example_room() -> dict:
    """The first room of examples/rooms with its reference layout written as the model's answer."""
    room = json.loads((REPO / "examples" / "rooms" / "rooms.jsonl").read_text().splitlines()[0])
    objects = [o for o in room["scene_graph"] if "itemType" not in o]  # furniture, not the walls
    answer = [{"new_object_id": o["new_object_id"], "x": o["position"]["x"], "y": o["position"]["y"],
               "z": o["position"]["z"]} for o in objects]
    return {"room_x": room["room_size"]["x"], "room_y": room["room_size"]["y"], "room_z": room["room_size"]["z"],
            "scene": json.dumps(room["scene_graph"]), "response": f"<answer>{json.dumps(answer)}</answer>"}


def write_scores(directory: Path, iteration: int, reward: float, layouts: bool) -> None:
    """A small score dataset: two rooms × two samples, each with a 64 px render of its own colour;
    with `layouts`, the rows also hold a real scene and answer (which the report draws again)."""
    rows = []
    for room in ("room-a", "room-b"):
        for sample in (0, 1):
            image = f"_images/{room}-{sample}.png"
            path = directory / image
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (64, 64), COLOURS.get(iteration, (60, 60, 200))).save(path)
            rows.append({"room_id": room, "sample_index": sample, "reward": reward + 0.01 * sample,
                         "format_reward": 1.0, "collision_ratio": 0.5 / iteration, "out_of_bounds_ratio": 0.1,
                         "support_ratio": 0.4 / iteration, "constraint_ratio": 0.2, "judge_score": 30.0,
                         "render_topdown": image, **(example_room() if layouts else {})})
    ds.write_rows(directory / ds.part_name(0, 1, "parquet"), rows, None, "parquet")
    ds.update_manifest(directory, {"stage": "score", "num_shards": 1}, ds.part_name(0, 1, "parquet"),
                       {"rows": len(rows)})


def fake_run(tmp_path: Path, layouts: bool = False) -> Path:
    run = tmp_path / "run"
    for iteration, reward in ((1, 0.2), (2, 0.5)):
        write_scores(run / f"iter-{iteration:03d}" / "turn-1" / "score", iteration, reward, layouts)
        update = run / f"iter-{iteration:03d}" / "update"
        update.mkdir(parents=True)
        (update / "metrics.jsonl").write_text(
            "\n".join(json.dumps({"step": s, "loss": 0.1 * s, "reward": reward}) for s in (1, 2)) + "\n")
    for model in (1, 2, 3):
        write_scores(run / "eval" / f"model-{model}" / "score", model, 0.1 * model, layouts)
    (run / "eval" / "eval.csv").write_text(
        "model,path,rooms,samples,format_valid,object_set_match,collision_ratio,out_of_bounds_ratio,support_ratio,"
        "constraint_ratio,judge_score,format_reward,reward,reward_sem\n"
        f"random,{LONG}/models/tiny,2,4,0.5,0.5,0.4,0.1,0.6,0.2,30,0.8,0.1,0.01\n"
        f"{WARM},{LONG}/models/pretrained,2,4,0.5,0.5,0.4,0.1,0.5,0.2,30,0.8,0.15,0.01\n"
        f"{LONG}/iter-002/update,{LONG}/iter-002/update,2,4,1.0,1.0,0.2,0.1,0.3,0.2,30,1.0,0.2,0.01\n")
    return run


def pngs(page: str) -> list[bytes]:
    return [base64.b64decode(i) for i in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_report_embeds_tables_curves_and_galleries(tmp_path):
    run = fake_run(tmp_path)
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    page = (run / "report.html").read_text()
    assert "<script" not in page and not re.search(r'(src|href)="(?!data:)', page)  # self-contained, offline
    images = pngs(page)
    assert len(images) == 3 + 2 * 2 + 2 * 3  # three charts; 2 rooms × 2 iterations; 2 rooms × 3 models
    assert all(i.startswith(b"\x89PNG") for i in images)
    assert "iteration 2, turn 1" in page and f">{WARM}<" in page and "0.500" in page
    training = page[page.index("<h2>Training"):page.index("<h2>Evaluation")]
    assert "unsupported↓" in training and "0.200" in training  # support ratio of iteration 2 (0.4 / 2)


def test_models_are_labelled_by_role_with_the_path_on_hover_and_in_a_footnote(tmp_path):
    run = fake_run(tmp_path)
    assert CliRunner().invoke(app, ["report", str(run)]).exit_code == 0
    page = (run / "report.html").read_text()
    table = page[page.index("<h2>Evaluation"):page.index("<h2>Renders")]
    assert f'<td class=model title="{LONG}/models/tiny">random</td>' in table
    assert f"<code>{LONG}/models/pretrained</code>" in table
    assert ">iter-002/update</td>" in table  # evaluated without --label: the path parts that tell it apart
    assert f'<figure title="{LONG}/models/tiny">' in page and "<figcaption>random — reward" in page


def test_gallery_draws_each_layout_again_at_a_readable_size(tmp_path):
    run = fake_run(tmp_path, layouts=True)
    assert CliRunner().invoke(app, ["report", str(run)]).exit_code == 0
    sizes = [Image.open(io.BytesIO(i)).size for i in pngs((run / "report.html").read_text())]
    assert sizes[3:] == [(512, 512)] * (2 * 2 + 2 * 3)  # the 64 px renders, drawn again as 512 px plans


@pytest.mark.parametrize("make", [lambda p: p / "nope", lambda p: p])
def test_report_of_a_folder_that_is_not_a_run_exits_2(tmp_path, make):
    (tmp_path / "notes.txt").write_text("not a run")
    result = CliRunner().invoke(app, ["report", str(make(tmp_path))])
    assert result.exit_code == 2 and "error:" in result.output
    assert not (tmp_path / "report.html").exists()


PROBE = """<script>addEventListener('load', () => {
  const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const text = e => { const range = document.createRange(); range.selectNodeContents(e); return box(range); };
  const doc = document.documentElement;
  const out = {page: [doc.scrollWidth, doc.clientWidth],
    images: [...document.images].map(i => i.complete && i.naturalWidth > 0),
    tables: [...document.querySelectorAll('.wide')].map(e => [e.scrollWidth, e.clientWidth]),
    figures: [...document.querySelectorAll('figure')].map(f => ({figure: box(f),
      picture: box(f.querySelector('img, .missing')), caption: text(f.querySelector('figcaption'))}))};  // the text's own box
  const pre = document.createElement('pre'); pre.id = 'measure'; pre.hidden = true;
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
});</script>"""


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=180)


def measure(page: Path, width: int, tmp_path: Path) -> dict:
    """Element boxes measured by Chromium at `width` px: the page with a probe script that writes them
    into the DOM (the report itself has no script), read back with --dump-dom."""
    probe = tmp_path / f"probe-{width}.html"
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    proc = chromium(tmp_path, f"--window-size={width},1000", "--virtual-time-budget=10000", "--dump-dom",
                    probe.as_uri())
    found = re.search(r'<pre id="measure" hidden="">(.*?)</pre>', proc.stdout, re.S)
    assert found, proc.stderr[-2000:]
    return json.loads(html.unescape(found.group(1)))


def overlap(a: list[float], b: list[float]) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def inside(inner: list[float], outer: list[float]) -> bool:
    return inner[0] >= outer[0] - 0.5 and inner[2] <= outer[2] + 0.5


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (apt-get install -y chromium)")
@pytest.mark.parametrize("width", [1280, 1920])
def test_report_in_headless_chromium_fits_loads_and_keeps_captions_apart(tmp_path, width):
    run = fake_run(tmp_path, layouts=True)
    assert CliRunner().invoke(app, ["report", str(run)]).exit_code == 0
    boxes = measure(run / "report.html", width, tmp_path)
    assert boxes["page"][0] <= boxes["page"][1], boxes["page"]  # no horizontal scrolling
    assert len(boxes["images"]) == 13 and all(boxes["images"])
    assert all(scroll <= client for scroll, client in boxes["tables"]), boxes["tables"]  # tables not cut
    figures = boxes["figures"]
    assert len(figures) == 10
    for i, fig in enumerate(figures):
        assert inside(fig["picture"], fig["figure"]) and inside(fig["caption"], fig["figure"])
        assert overlap(fig["caption"], fig["picture"]) == 0
        for other in figures[i + 1:]:
            assert overlap(fig["caption"], other["caption"]) == 0
            assert overlap(fig["caption"], other["picture"]) == 0

    shot = tmp_path / "shot.png"
    proc = chromium(tmp_path, f"--window-size={width},2400", f"--screenshot={shot}", (run / "report.html").as_uri())
    assert shot.is_file(), proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line and "report.html" in line]
    assert console == []  # the report's own messages (the 3D page in its iframe has tests of its own)
    with Image.open(shot) as img:
        colours = img.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # text, charts and renders, not a blank page


def test_a_metric_without_rows_reads_as_a_dash_not_nan():
    from metaspatial_cli.report import _number

    assert [_number(v) for v in ("nan", float("inf"), "0.5", 3, "12")] == ["–", "–", "0.500", "3", "12"]


def test_evaluation_table_shows_the_paired_comparison_when_eval_made_one(tmp_path):
    run = fake_run(tmp_path)
    csv = run / "eval" / "eval.csv"
    lines = csv.read_text().splitlines()
    tail = ["delta_reward,delta_reward_se,rooms_up,rooms_paired", ",,,", "0.05,0.02,2,2", "-0.125,0.5,1,2"]
    csv.write_text("\n".join(f"{a},{b}" for a, b in zip(lines, tail, strict=True)) + "\n")
    assert CliRunner().invoke(app, ["report", str(run)]).exit_code == 0
    page = (run / "report.html").read_text()
    table = page[page.index("<h2>Evaluation"):]
    table = table[:table.index("</table>")]
    assert "Δ reward vs baseline (per room)" in table and "rooms up" in table
    rows = table.split("<tr>")[2:]
    assert "–" in rows[0] and "0.050" in rows[1] and "2/2" in rows[1] and "-0.125" in rows[2] and "1/2" in rows[2]
