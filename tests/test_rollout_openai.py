"""rollout --backend openai against a small OpenAI-compatible server on 127.0.0.1 started here."""

from __future__ import annotations

import base64
import io
import threading
from pathlib import Path

import pandas as pd
import pytest
from fake_openai import FakeOpenAI, Reply, completion, error
from helpers import cli, example_prompts
from PIL import Image


def images_seen(body: dict, auth: str) -> Reply:
    """Answers with the number of images the request holds."""
    images = sum(p.get("type") == "image_url" for m in body["messages"] for p in m["content"])
    return Reply(200, completion(f"<think>saw {images} image(s)</think><answer>[]</answer>", body["model"],
                                 prompt_tokens=11, completion_tokens=7))


class FakeServer(FakeOpenAI):
    """`images_seen`, except that the first request answered gets a 500 (the client must retry it)."""

    def __init__(self) -> None:
        self.failed = threading.Event()
        super().__init__(self._answer, delay=0.05)

    def _answer(self, body: dict, auth: str) -> Reply:
        with self.lock:
            fail = not self.failed.is_set()
            self.failed.set()
        return error(500, "try again") if fail else images_seen(body, auth)


@pytest.fixture
def server():
    fake = FakeServer()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def prompts(tmp_path_factory) -> Path:
    return example_prompts(tmp_path_factory.mktemp("prompts") / "p", 96)


def test_samples_come_from_the_server_with_images_as_data_urls(server, prompts, tmp_path, monkeypatch):
    monkeypatch.setenv("MY_KEY", "secret-key")
    out = tmp_path / "r"
    code, text = cli("rollout", "--input", prompts, "--output", out, "--model", "served-vlm", "--backend", "openai",
                     "--base-url", server.url, "--api-key-env", "MY_KEY", "--n", 3, "--max-rows", 4,
                     "--concurrency", 4, "--max-new-tokens", 77, "--temperature", 0.7, "--max-retries", 2)
    assert code == 0, text
    rows = pd.read_parquet(out)
    assert len(rows) == 12 and set(rows.backend) == {"openai"} and set(rows.model) == {"served-vlm"}
    assert set(rows.response) == {"<think>saw 1 image(s)</think><answer>[]</answer>"}
    assert (rows.num_response_tokens == 7).all() and (rows.num_prompt_tokens == 11).all()
    assert set(rows.finish_reason) == {"stop"}
    assert len(server.bodies) == 13  # one request per sample, and the first one again after its 500
    assert set(server.authorizations) == {"Bearer secret-key"}
    assert 1 < server.max_in_flight <= 4
    assert len({r["seed"] for r in server.bodies}) == 12
    assert {(r["max_tokens"], r["temperature"], r["n"]) for r in server.bodies} == {(77, 0.7, 1)}
    sent = {r["messages"][0]["content"][1]["text"]: r["messages"][0]["content"][0]["image_url"]["url"]
            for r in server.bodies}
    for row in rows.itertuples():
        url = sent[row.prompt]
        assert url.startswith("data:image/png;base64,")
        decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
        assert decoded.tobytes() == Image.open(prompts / row.image).convert("RGB").tobytes()


def test_guided_sends_the_row_grammar(server, prompts, tmp_path):
    out = tmp_path / "g"
    code, text = cli("rollout", "--input", prompts, "--output", out, "--model", "m", "--backend", "openai",
                     "--base-url", server.url, "--n", 1, "--max-rows", 2, "--guided", "--max-retries", 2)
    assert code == 0, text
    grammars = list(dict.fromkeys(r["structured_outputs"]["grammar"] for r in server.bodies))  # the 500's retry resends one
    assert len(server.bodies) == 3 and len(grammars) == 2 and all(g.startswith('root ::= "<think>"') for g in grammars)
    assert grammars[0] != grammars[1]  # per row: its own objects and room size


def test_unreachable_server_fails_with_a_clear_message(prompts, tmp_path):
    code, text = cli("rollout", "--input", prompts, "--output", tmp_path / "x", "--model", "m", "--backend", "openai",
                     "--base-url", "http://127.0.0.1:9/v1", "--max-rows", 1, "--n", 1, "--max-retries", 0,
                     "--timeout", 5)
    assert code == 2 and "every request" in text and "127.0.0.1:9" in text


def test_progress_counts_each_finished_sample_once(server):
    from stages import rollout
    from stages.rollout.backends import Request
    from stages.rollout.backends.openai_api import OpenAIBackend

    backend = OpenAIBackend(rollout.Config(model="m", backend="openai", base_url=server.url, concurrency=3))
    chat = [{"role": "user", "content": [{"type": "image", "image": Image.new("RGB", (8, 8))},
                                         {"type": "text", "text": "place it"}]}]
    finished: list[int] = []
    done = backend.generate([Request(messages=chat, n=n, seed=n) for n in (1, 3, 2)],
                            progress=lambda samples, tokens: finished.append(samples))
    assert [len(c) for c in done] == [1, 3, 2] and sum(finished) == 6
