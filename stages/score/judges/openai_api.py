"""The `openai` judge: any OpenAI-compatible chat endpoint (OpenAI, `vllm serve`, …) grades renders.

* The API key is read from the environment variable named by `--judge-api-key-env` (default
  OPENAI_API_KEY) when the judge is built; it is never a config value, and every error message is
  redacted (`stages.core.redact`), so it reaches no manifest, column, cache or log line. A local
  server without auth works with the variable unset.
* At most `concurrency` requests are in flight; `timeout` bounds each whole attempt, reply
  included; the `openai` client retries timeouts, connection errors, 408/409/429 and 5xx with its
  backoff (`stages.core.openai_http`); other 4xx and malformed replies fail at once (the judge runs
  at temperature 0, so asking again would get the same reply).
* Successful judgements are cached as one JSON file per request in `cache_dir`, keyed by the
  SHA-256 of model, prompt and image bytes, so re-scoring the same renders costs nothing.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.core.dataset import write_json
from stages.core.openai_http import ServerLog, async_client, chat_reply, run_async

from .base import Judgement, JudgeRequest
from .rubric import parse_grades, rubric_prompt


@dataclass(frozen=True)
class OpenAISettings:
    url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = 60.0
    retries: int = 4
    concurrency: int = 4
    max_tokens: int = 512
    cache_dir: Path | None = None


def request_key(model: str, prompt: str, images: list[bytes]) -> str:
    digest = hashlib.sha256(model.encode() + b"\0" + prompt.encode())
    for image in images:
        digest.update(b"\0" + hashlib.sha256(image).digest())
    return digest.hexdigest()


class OpenAIJudge:
    name = "openai"
    needs_images = True

    def __init__(self, settings: OpenAISettings):
        self.settings = settings
        self.api_key = os.environ.get(settings.api_key_env) or "no-key"
        self.log = ServerLog([self.api_key], settings.timeout, settings.retries)
        self.counts: Counter[str] = Counter()
        """Requests answered from the cache (`cached`) and by the server (`asked`), for the run's summary."""

    def grade(self, requests: list[JudgeRequest]) -> list[Judgement]:
        return run_async(lambda: self._grade_all(requests))

    async def _grade_all(self, requests: list[JudgeRequest]) -> list[Judgement]:
        s = self.settings
        gate = asyncio.Semaphore(s.concurrency)
        async with async_client(s.url, self.api_key, s.timeout, s.retries, self.log) as client:
            async def one(request: JudgeRequest) -> Judgement:
                async with gate:
                    return await self._grade_one(client, request)

            return list(await asyncio.gather(*(one(r) for r in requests)))

    async def _grade_one(self, client: Any, request: JudgeRequest) -> Judgement:
        try:
            images = [Path(p).read_bytes() for p in request.images]
        except OSError as err:
            return Judgement(None, f"openai: cannot read render: {err.strerror} ({Path(err.filename or '').name})")
        if not images:
            return Judgement(None, "openai: no render image for this row")
        size = request.scene.size
        prompt = rubric_prompt(request.preference, f"{size.x} x {size.y} x {size.z} m")
        key = request_key(self.settings.model, prompt, images)
        cached = self._cache_get(key)
        if cached is not None:
            self.counts["cached"] += 1
            return Judgement(cached)
        self.counts["asked"] += 1
        result = await self._ask(client, prompt, images)
        if result.grades is not None:
            self._cache_put(key, result.grades)
        return result

    async def _ask(self, client: Any, prompt: str, images: list[bytes]) -> Judgement:
        import openai

        content: list[dict[str, Any]] = [{"type": "text", "text": prompt}] + [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(b).decode()}}
            for b in images]
        try:
            reply = await client.chat.completions.create(
                model=self.settings.model, messages=[{"role": "user", "content": content}],
                max_tokens=self.settings.max_tokens, temperature=0.0)
            text = chat_reply(reply).text
        except openai.OpenAIError as err:
            return Judgement(None, "openai: " + self.log.describe(err))
        except (ValueError, TypeError, AttributeError, IndexError) as err:  # a reply of an unexpected shape
            return Judgement(None, "openai: malformed reply: " + self.log.clean(f"{type(err).__name__}: {err}"))
        grades, problem = parse_grades(text)
        if grades is None:
            return Judgement(None, "openai: malformed reply: " + self.log.clean(problem or ""))
        return Judgement(grades)

    def _cache_get(self, key: str) -> dict[str, float] | None:
        if self.settings.cache_dir is None:
            return None
        path = self.settings.cache_dir / f"{key}.json"
        try:
            grades, problem = parse_grades(path.read_text())
        except OSError:
            return None
        return grades if problem is None else None

    def _cache_put(self, key: str, grades: dict[str, float]) -> None:
        if self.settings.cache_dir is None:
            return
        self.settings.cache_dir.mkdir(parents=True, exist_ok=True)
        write_json(self.settings.cache_dir / f"{key}.json", {k: {"grade": v} for k, v in grades.items()})
