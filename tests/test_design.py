"""`metaspatial design`: sample, refine the best, export; with an OpenAI-compatible server and the tiny model."""

from __future__ import annotations

import base64
import io
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import trimesh
from fake_openai import FakeOpenAI, Reply, completion, prompt_text
from helpers import REPO, cli
from PIL import Image

ROOMS = REPO / "examples" / "rooms"
LAYOUT_ELEMENTS = {"south_wall", "north_wall", "east_wall", "west_wall", "middle of the room", "ceiling"}


class LayoutServer(FakeOpenAI):
    """A zero-shot 'model' behind an OpenAI-compatible API: places every object of the prompt's scene
    at random spots (seeded by the request's seed), so candidates differ in reward."""

    def __init__(self) -> None:
        super().__init__(self._answer)

    @property
    def images(self) -> list[list[str]]:
        """The data URLs of each request's images, in arrival order."""
        return [[p["image_url"]["url"] for m in b["messages"] if isinstance(m["content"], list) for p in m["content"]
                 if p.get("type") == "image_url"] for b in self.bodies]

    @staticmethod
    def _answer(body: dict, auth: str) -> Reply:
        ids = [i for i in dict.fromkeys(re.findall(r'"new_object_id": "([^"]+)"', prompt_text(body)))
               if i not in LAYOUT_ELEMENTS]
        rng = random.Random(body.get("seed"))
        layout = [{"new_object_id": i, "x": rng.uniform(0.3, 3.0), "y": rng.uniform(0.3, 2.7), "z": 0.4} for i in ids]
        return Reply(200, completion(f"<think>ok</think><answer>{json.dumps(layout)}</answer>", body["model"], prompt_tokens=10,
                                     completion_tokens=10))


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    fake = LayoutServer()
    yield fake
    fake.close()


def pixels(png: bytes) -> bytes:
    return Image.open(io.BytesIO(png)).convert("RGB").tobytes()


def candidates(out: Path, turns: int) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(out / f"turn-{t}" / "score") for t in range(1, turns + 1)])


def check_best_is_max(out: Path, turns: int) -> pd.DataFrame:
    """The exported row of every room is a maximum-reward candidate of all its turns; its .glb is there."""
    best, every = pd.read_parquet(out / "best"), candidates(out, turns)
    assert sorted(best.room_id) == sorted(every.room_id.unique())
    for _, row in best.iterrows():
        mine = every[every.room_id == row.room_id]
        assert row.reward == mine.reward.max()
        assert row.sample_id in set(mine[mine.reward == row.reward].sample_id)
        nodes = set(trimesh.load(out / "best" / row.glb).graph.nodes_geometry)
        assert len(nodes) == row.objects_exported + 6
    assert (out / "best" / "_viewer.html").is_file()
    return best


def test_design_with_an_openai_compatible_server(server: LayoutServer, tmp_path: Path):
    out = tmp_path / "design"
    args = ["design", "--model", "zero-shot", "--rooms", ROOMS, "--n", 3, "--turns", 2, "--max-rooms", 3,
            "--output", out, "--set", "rollout.backend=openai", "--set", f"rollout.base_url={server.url}",
            "--set", "render.size=96"]
    code, text = cli(*args)
    assert code == 0, text
    best = check_best_is_max(out, 2)
    assert len(best) == 3 and len(pd.read_parquet(out / "turn-1" / "score")) == 9
    refined = pd.read_parquet(out / "turn-2" / "rollout")
    assert "glb" not in refined.columns  # the turn-1 pick's export is not carried into its refinements
    picks = pd.read_parquet(out / "turn-1" / "best")
    for _, row in refined.iterrows():  # turn 2 refines the turn-1 best of its room, shown its render and reward
        previous = json.loads(row.history)[-1]
        pick = picks[picks.room_id == row.room_id].iloc[0]
        assert previous["response"] == pick.response and previous["reward"] == pick.reward
        assert previous["image"] == pick.render_perspective and (out / "turn-2" / "rollout" / row.prompt_image).is_file()
    shown = {pixels(base64.b64decode(urls[0].split(",", 1)[1])) for urls in server.images[9:] if len(urls) == 1}
    renders = {pixels((out / "turn-1" / "best" / p).read_bytes()) for p in picks.render_perspective}
    assert len(server.images) == 18 and shown == renders

    plan = subprocess.run([sys.executable, "-m", "metaspatial_cli", *map(str, args), "--plan"],
                          capture_output=True, text=True, check=True).stdout
    planned = [line for line in plan.split("# steps\n")[1].splitlines() if line]
    ran = re.findall(r"run: (metaspatial .*)", (out / "design.log").read_text())
    assert planned == ran  # the plan is exactly what design ran


@pytest.mark.slow
def test_design_with_the_tiny_model_end_to_end(tmp_path: Path):
    model = tmp_path / "tiny"
    code, text = cli("make-model", "tiny-qwen2.5-vl", model)
    assert code == 0, text
    out = tmp_path / "design"
    code, text = cli("design", "--model", model, "--rooms", ROOMS, "--n", 2, "--turns", 2, "--max-rooms", 2,
                     "--output", out, "--set", "rollout.guided=true", "--set", "rollout.guided_think_chars=0",
                     "--set", "rollout.max_new_tokens=1000", "--set", "render.size=96")
    assert code == 0, text
    best = check_best_is_max(out, 2)
    assert len(best) == 2 and (best.model == str(model)).all()


@pytest.mark.parametrize(("extra", "message"), [
    (["--rooms", "nowhere.jsonl"], "--rooms: "),
    (["--set", "rollout.n=4"], "rollout.n: set by design"),
    (["--set", "export.best_per=room"], "export.best_per: set by design"),
    (["--set", "render.sizee=96"], "render.sizee"),
    (["--n", "0"], "n"),
])
def test_bad_options_exit_2_before_any_step(tmp_path: Path, extra: list[str], message: str):
    out = tmp_path / "design"
    args = ["design", "--model", "m", "--rooms", ROOMS, "--output", out, *extra]
    code, text = cli(*args)
    assert code == 2 and message in text, text
    assert not out.exists()
