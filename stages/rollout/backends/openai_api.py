"""The openai backend: any OpenAI-compatible chat-completions server (vLLM's, hosted models).

Images travel as PNG data URLs. Each sample is its own request (n=1, seed = the sample's seed
unless --no-send-seed), so every sample gets its own finish reason and token count whatever the
server does with `n`. Requests run `--concurrency` at a time; `--timeout` bounds each whole attempt
and the `openai` client retries timeouts, connection errors, 429s and 5xx `--max-retries` times
with backoff (`stages.core.openai_http`). A sample that still fails is returned with finish_reason
`error` and the reason (the last HTTP error the server sent included, keys redacted); the stage
records it and decides whether the run can go on.

Every sampling setting is sent explicitly: a vLLM server fills whatever a request leaves out from
the model's generation config (Qwen's set `top_k=1`, `repetition_penalty=1.05`), which would make
every group near-greedy. The vLLM-specific ones (`top_k`, `min_p`, `repetition_penalty`, and the
`--guided` grammar as `structured_outputs`) go in the request body's extras; api.openai.com, which
refuses unknown parameters and has no such defaults, gets only the standard ones.
The API key is read from the environment variable named by --api-key-env, never from a flag.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
from typing import Any
from urllib.parse import urlparse

from stages.core.errors import UserError
from stages.core.openai_http import ServerLog, async_client, chat_reply, run_async

from .base import Completion, Progress, Request, ignore

NEUTRAL_SAMPLING = {"top_k": 0, "min_p": 0.0, "repetition_penalty": 1.0}
"""vLLM's values for "off": sent so that no generation-config default applies."""


def data_url(image: Any) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def api_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages in the API's shape: image parts become `image_url` parts with data URLs."""
    out = []
    for m in messages:
        if not isinstance(m["content"], list):
            out.append(m)
            continue
        parts = [{"type": "image_url", "image_url": {"url": data_url(p["image"])}} if p.get("type") == "image"
                 else {"type": "text", "text": p["text"]} for p in m["content"]]
        out.append({"role": m["role"], "content": parts})
    return out


def sampling_body(cfg: Any, base_url: str | None, seed: int, grammar: str | None) -> dict[str, Any]:
    """The request's sampling settings, every one explicit (see the module docstring)."""
    body: dict[str, Any] = {"temperature": cfg.temperature, "top_p": cfg.top_p, "max_tokens": cfg.max_new_tokens,
                            "presence_penalty": 0.0, "frequency_penalty": 0.0, "n": 1}
    if cfg.send_seed:
        body["seed"] = seed
    hosted_openai = base_url is None or urlparse(base_url).hostname == "api.openai.com"
    extra: dict[str, Any] = {} if hosted_openai else dict(NEUTRAL_SAMPLING)
    if grammar is not None:
        extra["structured_outputs"] = {"grammar": grammar}
    if extra:
        body["extra_body"] = extra
    return body


class OpenAIBackend:
    name = "openai"

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.base_url = cfg.base_url or os.environ.get("OPENAI_BASE_URL")
        api_key = os.environ.get(cfg.api_key_env)
        if not api_key:
            if self.base_url is None:
                raise UserError(f"--backend openai: set ${cfg.api_key_env} (the API key) or pass --base-url "
                                "for a local server")
            api_key = "EMPTY"  # local servers (vllm serve) accept any key
        self.api_key = api_key
        self.log = ServerLog([api_key], cfg.timeout, cfg.max_retries)

    async def _one(self, client: Any, messages: Any, seed: int, grammar: str | None) -> Completion:
        import openai

        try:
            reply = await client.chat.completions.create(
                model=self.cfg.model, messages=messages, **sampling_body(self.cfg, self.base_url, seed, grammar))
            answer = chat_reply(reply)
        except openai.OpenAIError as err:
            return Completion(text="", finish_reason="error", num_tokens=0, error=self.log.describe(err))
        except (ValueError, IndexError, AttributeError, TypeError) as err:  # a reply of an unexpected shape
            return Completion(text="", finish_reason="error", num_tokens=0,
                              error=self.log.clean(f"malformed reply: {type(err).__name__}: {err}"))
        return Completion(text=answer.text, finish_reason=answer.finish_reason, num_tokens=answer.completion_tokens,
                          num_prompt_tokens=answer.prompt_tokens)

    async def _generate(self, requests: list[Request], progress: Progress) -> list[list[Completion]]:
        converted = [api_messages(r.messages) for r in requests]
        gate = asyncio.Semaphore(self.cfg.concurrency)
        async with async_client(self.base_url, self.api_key, self.cfg.timeout, self.cfg.max_retries,
                                self.log) as client:
            async def sample(i: int, k: int) -> Completion:
                async with gate:
                    done = await self._one(client, converted[i], requests[i].seed + k, requests[i].grammar)
                progress(1, done.num_tokens or 0)
                return done

            async def request(i: int) -> list[Completion]:
                return list(await asyncio.gather(*(sample(i, k) for k in range(requests[i].n))))

            return list(await asyncio.gather(*(request(i) for i in range(len(requests)))))

    def generate(self, requests: list[Request], progress: Progress = ignore) -> list[list[Completion]]:
        return run_async(lambda: self._generate(requests, progress))
