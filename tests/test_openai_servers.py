"""The openai judge and rollout backend against misbehaving servers on 127.0.0.1: replies trickled
byte by byte, keys echoed in errors, a server that dies mid-run, failed judgements redone."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from helpers import REPO, cli
from test_score_cli import rollout_dir
from test_score_judges import GOOD

from stages.core.redact import redact

KEY = "sk-proj-Secret0123456789abcdef"
ROOMS = REPO / "examples" / "rooms" / "rooms.jsonl"
ANSWER = '<think>ok</think><answer>[]</answer>'


class Server:
    """A chat-completions endpoint run by a script of actions, one per request (then `default`):
    ("ok", text) / ("status", code, message) / ("trickle", seconds) / ("die", code, message): answer,
    then stop listening (a server that crashed)."""

    def __init__(self) -> None:
        self.script: list[tuple] = []
        self.default: tuple = ("ok", ANSWER)
        self.bodies: list[dict] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.bodies.append(body)
                    action = server.script.pop(0) if server.script else server.default
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._act(action)

            def _act(self, action: tuple) -> None:
                kind = action[0]
                if kind in ("status", "die"):
                    message = action[2].replace("{auth}", self.headers.get("Authorization", ""))
                    self._send(action[1], json.dumps({"error": {"message": message, "code": action[1]}}).encode())
                    if kind == "die":
                        threading.Thread(target=server.close).start()
                    return
                text = action[1] if kind == "ok" else GOOD
                raw = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                                  "choices": [{"index": 0, "finish_reason": "stop",
                                               "message": {"role": "assistant", "content": text}}],
                                  "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}).encode()
                if kind == "ok":
                    self._send(200, raw)
                    return
                self.send_response(200)  # "trickle": headers at once, then one byte a second
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                for k in range(min(len(raw), int(action[1]))):
                    self.wfile.write(raw[k:k + 1])
                    self.wfile.flush()
                    time.sleep(1.0)

            def _send(self, status: int, raw: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        return Handler

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    fake = Server()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def prompts(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prompts") / "p"
    code, text = cli("gen-prompts", "--source", "jsonl", "--input", ROOMS, "--output", out, "--image-size", "64")
    assert code == 0, text
    return out


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
    server.script = [("trickle", 25)]
    start = time.monotonic()
    code, text = _score(renders, tmp_path / "out", server, "--judge-timeout", 2, "--max-rows", 1)
    took = time.monotonic() - start
    assert code == 0, text
    assert took < 15, f"the trickled reply held the judge for {took:.0f} s"
    row = pd.read_parquet(tmp_path / "out").iloc[0]
    assert "timed out" in row.judge_error and row.judge == "rules (fallback)"


def test_a_key_echoed_by_the_server_is_written_nowhere(server, renders, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server.default = ("status", 401, "Incorrect API key provided: {auth}. You can find your API key at ...")
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
    server.script = [("status", 400, "bad image"), ("ok", GOOD), ("status", 400, "bad image")]
    server.default = ("ok", GOOD)
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
    server.script = [("status", 400, "This model's maximum context length is 512 tokens; key {auth}")]
    code, text = _rollout(prompts, tmp_path / "r", server, "--concurrency", 1)
    assert code == 0, text
    rows = pd.read_parquet(tmp_path / "r")
    failed = rows[rows.finish_reason == "error"]
    assert len(failed) == 1 and failed.sample_error.iloc[0].startswith("HTTP 400: This model's maximum context")
    assert failed.sample_id.iloc[0] in "".join(text.split()) and "1 of 4 samples failed" in text
    assert "Secret0123" not in text + rows.to_json()
    assert rows.sample_error.isna().sum() == 3


def test_rollout_reports_the_last_http_error_when_the_server_dies(server, prompts, tmp_path):
    server.script = [("die", 500, "EngineCore died: CPU Generator does not use offset [/] {auth}")]
    code, text = _rollout(prompts, tmp_path / "r", server, "--concurrency", 1, "--max-retries", 1, "--timeout", 5)
    assert code == 2, text
    text = " ".join(text.split())
    assert "every request of this chunk" in text and "connection failed" in text
    assert "last HTTP error from the server: HTTP 500: EngineCore died: CPU Generator does not use offset [/] " \
           "Bearer [redacted]" in text  # printed as the server sent it (no markup), the key masked
    assert "synthetic-s0-000000-s1-t1" in text.replace(" ", "")  # the samples affected
