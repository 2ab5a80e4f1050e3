"""rollout --backend openai and score --judge openai against a real vLLM server (run by `nox -s vllm`).

vLLM's CPU build serves a tiny local text-only Qwen2 over HTTP on 127.0.0.1, started and stopped
here (one server for the module: it takes 1-3 minutes to start on a shared 2-core machine). The
server gets `--max-num-batched-tokens 8192`: vLLM's CPU engine dies on a seeded request whose
prompt is processed in more than one step. The model is text-only, so prompts go without images
(`--no-images`), and the judge's image request is refused (HTTP 400), which the fallback handles.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from helpers import cli, example_prompts
from PIL import Image
from test_rollout_vllm import _tiny_text_lm

from stages.core import dataset as ds
from stages.core.answer import parse_answer
from stages.core.scene import Scene

pytestmark = pytest.mark.vllm

START_TIMEOUT = 600


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The base URL of a vLLM OpenAI-compatible server serving the tiny model as `tiny`."""
    root = tmp_path_factory.mktemp("vllm-server")
    model = _tiny_text_lm(root / "lm")
    port = _free_port()
    log = open(root / "server.log", "w")  # noqa: SIM115 - open while the server runs
    proc = subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model), "--served-model-name",
         "tiny", "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "4096",
         "--max-num-batched-tokens", "8192", "--dtype", "float32", "--enforce-eager"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _healthy(f"http://127.0.0.1:{port}/health"):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail("vLLM server did not start:\n" + (root / "server.log").read_text()[-4000:])
            time.sleep(2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def prompts(tmp_path_factory) -> Path:
    return example_prompts(tmp_path_factory.mktemp("prompts") / "p", 64)


def _rollout(server: str, prompts: Path, out: Path, *extra: object) -> pd.DataFrame:
    code, text = cli("rollout", "--input", prompts, "--output", out, "--backend", "openai", "--base-url", server,
                     "--model", "tiny", "--max-rows", 2, "--n", 2, "--no-images", "--timeout", 300, *extra)
    assert code == 0, text
    rows = pd.read_parquet(out)
    assert len(rows) == 4 and rows.groupby("group_id").size().tolist() == [2, 2]
    assert set(rows.finish_reason) <= {"stop", "length"} and rows.sample_error.isna().all()
    assert (rows.num_response_tokens > 0).all() and rows.image.isna().all()
    return rows


def test_rollout_plain_and_guided_then_score_with_judge_fallback(server, prompts, tmp_path):
    plain = _rollout(server, prompts, tmp_path / "plain", "--max-new-tokens", 24)
    assert (plain.num_response_tokens <= 24).all()
    guided = _rollout(server, prompts, tmp_path / "guided", "--guided", "--guided-think-chars", 20,
                      "--max-new-tokens", 1500)
    for row in guided.itertuples():
        parsed = parse_answer(row.response, Scene.from_row(row._asdict()).ids)
        assert row.finish_reason == "stop" and parsed.valid, row.response

    renders = tmp_path / "guided"
    (renders / "_images").mkdir(exist_ok=True)
    for k in range(len(guided)):
        Image.new("RGB", (32, 32), (40 * k, 90, 120)).save(renders / "_images" / f"r{k}.png")
    guided["render_topdown"] = [f"_images/r{k}.png" for k in range(len(guided))]
    for part in ds.data_files(renders):
        part.unlink()
    (renders / ds.MANIFEST).unlink()
    guided.to_parquet(renders / "train-00000-of-00001.parquet")
    code, text = cli("score", "--input", renders, "--output", tmp_path / "scores", "--judge", "openai",
                     "--judge-url", server, "--judge-model", "tiny", "--judge-timeout", 120, "--judge-retries", 1)
    assert code == 0, text
    scores = pd.read_parquet(tmp_path / "scores")
    assert set(scores.judge) == {"rules (fallback)"}, scores.judge_error.tolist()  # a text-only model
    assert scores.judge_error.str.startswith("openai: HTTP 400").all()
    assert scores.judge_score.notna().all() and scores.reward.between(0, 3).all()
    assert "4 failed (4 to rules" in " ".join(text.split())


def test_gen_prompts_llm_with_structured_outputs(server, tmp_path):
    """`gen-prompts --source llm` end to end against vLLM: the scene-graph JSON schema is honoured (no
    reply is malformed), every room is accounted for, and a re-run asks nothing (all from the cache)."""
    args = ("gen-prompts", "--source", "llm", "--llm-url", server, "--llm-model", "tiny", "--num-rooms", 3,
            "--llm-max-tokens", 1200, "--llm-timeout", 300, "--image-size", 64, "--output", tmp_path / "p")
    code, text = cli(*args)
    assert code == 0, text
    outcomes = [json.loads(line) for f in (tmp_path / "p" / "_llm_rooms").rglob("*.jsonl")
                for line in f.read_text().splitlines()]
    assert len(outcomes) == 3 and "3 asked (0 from the cache)" in text
    assert not [o for o in outcomes if o.get("reason") in ("malformed", "request failed")], outcomes
    code, text = cli(*args, "--overwrite")
    assert code == 0 and "3 asked (3 from the cache)" in text, text
