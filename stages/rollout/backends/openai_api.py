"""The openai backend: any OpenAI-compatible chat-completions server (vLLM's, hosted models).

Images travel as PNG data URLs. Each sample is its own request (n=1, seed = the sample's seed),
so every sample gets its own finish reason and token count whatever the server does with `n`.
Requests run `--concurrency` at a time; the client retries timeouts, 429s and 5xx `--max-retries`
times with backoff. A sample that still fails is recorded (finish_reason `error`, empty response)
and the run goes on; a chunk in which every request failed stops the run (wrong URL, key, model).
--guided sends the layout grammar as vLLM's `structured_outputs` extension (vLLM servers only).
The API key is read from the environment variable named by --api-key-env, never from a flag.
"""

from __future__ import annotations

import base64
import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from stages.core.errors import UserError
from stages.core.stage import console

from . import Completion, Progress, Request, ignore


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


class OpenAIBackend:
    name = "openai"

    def __init__(self, cfg: Any) -> None:
        from openai import OpenAI

        self.cfg = cfg
        self.model_name = cfg.model
        base_url = cfg.base_url or os.environ.get("OPENAI_BASE_URL")
        api_key = os.environ.get(cfg.api_key_env)
        if not api_key:
            if base_url is None:
                raise UserError(f"--backend openai: set ${cfg.api_key_env} (the API key) or pass --base-url "
                                "for a local server")
            api_key = "EMPTY"  # local servers (vllm serve) accept any key
        self.client = OpenAI(base_url=base_url, api_key=api_key, timeout=cfg.timeout, max_retries=cfg.max_retries)

    def _one(self, messages: Any, seed: int, grammar: str | None) -> Completion:
        import openai

        cfg = self.cfg
        extra = {"structured_outputs": {"grammar": grammar}} if grammar is not None else None
        try:
            reply = self.client.chat.completions.create(
                model=cfg.model, messages=messages, temperature=cfg.temperature, top_p=cfg.top_p,
                max_tokens=cfg.max_new_tokens, seed=seed, n=1, extra_body=extra)
        except openai.OpenAIError as err:
            return Completion(text="", finish_reason="error", num_tokens=0, error=f"{type(err).__name__}: {err}")
        choice = reply.choices[0]
        usage = reply.usage
        return Completion(text=choice.message.content or "", finish_reason=choice.finish_reason or "stop",
                          num_tokens=usage.completion_tokens if usage else None,
                          num_prompt_tokens=usage.prompt_tokens if usage else None)

    def generate(self, requests: list[Request], progress: Progress = ignore) -> list[list[Completion]]:
        jobs = [(i, k) for i, r in enumerate(requests) for k in range(r.n)]
        converted = [api_messages(r.messages) for r in requests]
        missing = [r.n for r in requests]

        def one(job: tuple[int, int]) -> Completion:
            i, k = job
            completion = self._one(converted[i], requests[i].seed + k, requests[i].grammar)
            with lock:
                missing[i] -= 1
                if missing[i] == 0:
                    progress(1)
            return completion

        lock = threading.Lock()
        with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
            done = list(pool.map(one, jobs))
        failed = [c for c in done if c.finish_reason == "error"]
        if failed and len(failed) == len(done):
            raise UserError(f"--backend openai: every request to {self.client.base_url} failed; first error: "
                            f"{failed[0].error}")
        if failed:
            console.print(f"[yellow]rollout[/]: {len(failed)} of {len(done)} requests failed "
                          f"(recorded with finish_reason 'error'); first: {failed[0].error}", highlight=False)
        out: list[list[Completion]] = [[] for _ in requests]
        for (i, _), completion in zip(jobs, done, strict=True):
            out[i].append(completion)
        return out
