"""The openai judge and rollout backend against misbehaving servers on 127.0.0.1: replies trickled
byte by byte, keys echoed in errors, a server that dies mid-run, failed judgements redone."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
from fake_openai import Die, FakeOpenAI, Reply, Trickle, completion, error
from helpers import cli, example_prompts
from test_score_cli import rollout_dir
from test_score_judges import GOOD

from stages.core.redact import redact

KEY = "sk-proj-Secret0123456789abcdef"
ANSWER = '<think>ok</think><answer>[]</answer>'


class Script:
    """Answers one action per request, then `default`: ("ok", text) / ("status", code, message) /
    ("trickle", seconds) (one byte a second) / ("die", code, message) (answer, then stop listening) /
    ("raw", payload) (any JSON as the 200 reply).
    `{auth}` in a message is replaced by the request's Authorization header (a server echoing the key)."""

    def __init__(self) -> None:
        self.actions: list[tuple] = []
        self.default: tuple = ("ok", ANSWER)

    def __call__(self, body: dict, auth: str) -> Reply | Trickle | Die:
        action = self.actions.pop(0) if self.actions else self.default
        kind = action[0]
        if kind in ("status", "die"):
            reply = error(action[1], action[2].replace("{auth}", auth))
            return Die(reply.status, reply.payload) if kind == "die" else reply
        if kind == "trickle":
            return Trickle(completion(GOOD), 1.0, int(action[1]))
        if kind == "raw":
            return Reply(200, action[1])
        return Reply(200, completion(action[1]))


class Server(FakeOpenAI):
    def __init__(self) -> None:
        self.script = Script()
        super().__init__(self.script)


@pytest.fixture
def server():
    fake = Server()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def prompts(tmp_path_factory) -> Path:
    return example_prompts(tmp_path_factory.mktemp("prompts") / "p", 64)


@pytest.fixture(scope="module")
def renders(tmp_path_factory) -> Path:
    """A dataset of 3 valid layouts with a render each (what score --judge openai reads)."""
    from test_score_cli import ORACLE

    out = tmp_path_factory.mktemp("oracle") / "p"
    code, text = cli("gen-prompts", "--source", "jsonl", "--input", ORACLE / "scenes.jsonl", "--output", out)
    assert code == 0, text
    path = rollout_dir(pd.read_parquet(out), tmp_path_factory.mktemp("renders") / "in", kinds=("ground_truth",),
                       images=True)
    rows = pd.read_parquet(path).head(3)
    rows.to_parquet(path / "train-00000-of-00001.parquet")
    return path


def _score(renders: Path, out: Path, server: Server, *extra: object) -> tuple[int, str]:
    return cli("score", "--input", renders, "--output", out, "--judge", "openai", "--judge-url", server.url,
               "--judge-model", "m", "--judge-retries", 0, "--judge-concurrency", 1, *extra)


def test_redact_removes_configured_and_key_shaped_secrets():
    text = redact(f"401 Incorrect API key provided: Bearer {KEY}. hf_abcdefghijklmnopqrstu api_key=hunter2 "
                  "my-own-key-xyz", ["my-own-key-xyz"])
    assert KEY not in text and "Secret0123" not in text and "hf_abc" not in text and "hunter2" not in text
    assert "my-own-key-xyz" not in text and text.startswith("401 Incorrect API key")
    assert redact("HTTP 500: CPU Generator does not use offset") == "HTTP 500: CPU Generator does not use offset"


def test_judge_timeout_bounds_a_reply_trickled_byte_by_byte(server, renders, tmp_path):
    server.script.actions = [("trickle", 25)]
    start = time.monotonic()
    code, text = _score(renders, tmp_path / "out", server, "--judge-timeout", 2, "--max-rows", 1)
    took = time.monotonic() - start
    assert code == 0, text
    assert took < 15, f"the trickled reply held the judge for {took:.0f} s"
    row = pd.read_parquet(tmp_path / "out").iloc[0]
    assert "timed out" in row.judge_error and row.judge == "rules (fallback)"


def test_a_key_echoed_by_the_server_is_written_nowhere(server, renders, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server.script.default = ("status", 401, "Incorrect API key provided: {auth}. You can find your API key at ...")
    cache = tmp_path / "cache"
    code, text = _score(renders, tmp_path / "out", server, "--judge-cache", cache)
    assert code == 0, text
    rows = pd.read_parquet(tmp_path / "out")
    written = text + "".join(p.read_text(errors="replace") for p in (tmp_path / "out").rglob("*") if p.is_file()
                             and p.suffix != ".png")
    written += rows.to_json()
    assert "Secret0123" not in written and KEY not in written
    assert rows.judge_error.str.contains("HTTP 401: Incorrect API key provided: Bearer").all()
    assert not cache.exists() or not any(cache.iterdir())


def test_summary_line_and_retry_failed_redoes_only_failed_judgements(server, renders, tmp_path):
    out = tmp_path / "out"
    server.script.actions = [("status", 400, "bad image"), ("ok", GOOD), ("status", 400, "bad image")]
    server.script.default = ("ok", GOOD)
    code, text = _score(renders, out, server)
    assert code == 0, text
    assert "score: judge openai: 1 of 3 row(s) judged" in text and "0 from the cache, 3 asked" in text
    assert "2 failed (2 to rules; 0 without a judge term); why: HTTP 400 x2" in " ".join(text.split())
    first = pd.read_parquet(out)
    assert first.judge_error.notna().sum() == 2
    server.bodies.clear()
    code, text = _score(renders, out, server, "--retry-failed")
    assert code == 0, text
    assert len(server.bodies) == 2, "only the two failed rows are judged again"
    again = pd.read_parquet(out)
    assert len(again) == 3 and again.judge_error.isna().all() and set(again.judge) == {"openai"}
    kept = first.judge_error.isna()
    assert (again[kept].reward.to_numpy() == first[kept].reward.to_numpy()).all()
    assert "1 kept from the previous run" in " ".join(text.split())
    code, text = _score(renders, out, server, "--retry-failed", "--judge-fallback", "drop")
    assert code == 2 and "judge_fallback" in text


def _rollout(prompts: Path, out: Path, server: Server, *extra: object) -> tuple[int, str]:
    return cli("rollout", "--input", prompts, "--output", out, "--model", "m", "--backend", "openai",
               "--base-url", server.url, "--max-rows", 2, "--n", 2, *extra)


def test_rollout_sends_every_sampling_setting_and_can_leave_out_seed_and_images(server, prompts, tmp_path):
    code, text = _rollout(prompts, tmp_path / "a", server, "--temperature", 0.9)
    assert code == 0, text
    for body in server.bodies:
        assert (body["temperature"], body["top_p"], body["top_k"], body["min_p"]) == (0.9, 1.0, 0, 0.0)
        assert (body["repetition_penalty"], body["presence_penalty"], body["frequency_penalty"]) == (1.0, 0.0, 0.0)
        assert isinstance(body["seed"], int)
        assert any(p["type"] == "image_url" for p in body["messages"][0]["content"])
    server.bodies.clear()
    code, text = _rollout(prompts, tmp_path / "b", server, "--no-send-seed", "--no-images")
    assert code == 0, text
    assert len(server.bodies) == 4 and not any("seed" in b for b in server.bodies)
    assert all(p["type"] == "text" for b in server.bodies for p in b["messages"][0]["content"])
    rows = pd.read_parquet(tmp_path / "b")
    assert rows.image.isna().all() and rows.prompt_image.isna().all()


def test_rollout_marks_a_failed_sample_and_redacts_the_echoed_key(server, prompts, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server.script.actions = [("status", 400, "This model's maximum context length is 512 tokens; key {auth}")]
    code, text = _rollout(prompts, tmp_path / "r", server, "--concurrency", 1)
    assert code == 0, text
    rows = pd.read_parquet(tmp_path / "r")
    failed = rows[rows.finish_reason == "error"]
    assert len(failed) == 1 and failed.sample_error.iloc[0].startswith("HTTP 400: This model's maximum context")
    assert failed.sample_id.iloc[0] in "".join(text.split()) and "1 of 4 samples failed" in text
    assert "Secret0123" not in text + rows.to_json()
    assert rows.sample_error.isna().sum() == 3


def test_rollout_reports_the_last_http_error_when_the_server_dies(server, prompts, tmp_path):
    server.script.actions = [("die", 500, "EngineCore died: CPU Generator does not use offset [/] {auth}")]
    code, text = _rollout(prompts, tmp_path / "r", server, "--concurrency", 1, "--max-retries", 1, "--timeout", 5)
    assert code == 2, text
    text = " ".join(text.split())
    assert "every request of this chunk" in text and "connection failed" in text
    assert "last HTTP error from the server: HTTP 500: EngineCore died: CPU Generator does not use offset [/] " \
           "Bearer [redacted]" in text  # printed as the server sent it (no markup), the key masked
    assert "synthetic-s0-000000-s1-t1" in text.replace(" ", "")  # the samples affected


ODD = [completion(5), {**completion(ANSWER), "choices": []}, {"choices": "none"},
       {**completion(ANSWER, finish_reason=7), "usage": {"prompt_tokens": "abc", "completion_tokens": -1}}]


def test_rollout_records_odd_replies_instead_of_crashing(server, prompts, tmp_path):
    """A server's reply is untrusted: a number as content, no choices, a number as finish reason or
    token counts are a failed sample (or a plain one), never a crash of the dataset writer."""
    server.script.actions = [("raw", payload) for payload in ODD]
    code, text = _rollout(prompts, tmp_path / "r", server, "--max-retries", 0)
    assert code == 0, text
    rows = pd.read_parquet(tmp_path / "r")
    assert rows.finish_reason.tolist().count("error") == 3 and rows.sample_error.str.contains("malformed").sum() == 3
    plain = rows[rows.finish_reason != "error"]
    assert set(plain.finish_reason) == {"stop"} and plain.num_prompt_tokens.isna().sum() >= 1
