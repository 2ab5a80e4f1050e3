"""A chat-completions server on 127.0.0.1 for the tests of everything that talks to one (rollout's
openai backend, the openai judge, gen-prompts --source llm, design). A test says how it answers:
`answer(request)` returns a `Reply` (status and JSON), a `Trickle` (headers at once, then the body
one byte at a time) or a `Die` (answer, then stop listening, as a crashed server does). Every request
is recorded, with its Authorization header, and the most requests ever in flight at once."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int
    payload: dict[str, Any]


@dataclass
class Trickle:
    payload: dict[str, Any]
    byte_seconds: float
    max_bytes: int


@dataclass
class Die:
    status: int
    payload: dict[str, Any]


def completion(text: str, model: str = "m", finish_reason: str = "stop", prompt_tokens: int = 5,
               completion_tokens: int = 3) -> dict[str, Any]:
    """A chat completion's JSON, as OpenAI-compatible servers send it."""
    return {"id": "x", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "finish_reason": finish_reason, "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def error(status: int, message: str) -> Reply:
    return Reply(status, {"error": {"message": message, "code": status}})


def prompt_text(body: dict[str, Any]) -> str:
    """Every text part of a request's messages, joined."""
    parts = [p for m in body["messages"] for p in (m["content"] if isinstance(m["content"], list)
                                                   else [{"type": "text", "text": m["content"]}])]
    return " ".join(p.get("text", "") for p in parts)


class FakeOpenAI:
    def __init__(self, answer: Callable[[dict[str, Any], str], Reply | Trickle | Die], delay: float = 0.0) -> None:
        """`answer(body, authorization)` answers each POST; `delay` seconds are spent in flight."""
        self.answer, self.delay = answer, delay
        self.bodies: list[dict[str, Any]] = []
        self.authorizations: list[str] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                auth = self.headers.get("Authorization", "")
                with server.lock:
                    server.bodies.append(body)
                    server.authorizations.append(auth)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                time.sleep(server.delay)
                with server.lock:
                    server.in_flight -= 1
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._act(server.answer(body, auth))

            def _act(self, reply: Reply | Trickle | Die) -> None:
                raw = json.dumps(reply.payload).encode()
                self.send_response(200 if isinstance(reply, Trickle) else reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                if isinstance(reply, Trickle):
                    for k in range(min(len(raw), reply.max_bytes)):
                        self.wfile.write(raw[k:k + 1])
                        self.wfile.flush()
                        time.sleep(reply.byte_seconds)
                    return
                self.wfile.write(raw)
                if isinstance(reply, Die):
                    threading.Thread(target=server.close).start()

        return Handler

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
