"""The `openai` judge: any OpenAI-compatible chat endpoint (OpenAI, `vllm serve`, …) grades renders.

* The API key is read from the environment variable named by `--judge-api-key-env` (default
  OPENAI_API_KEY) when the judge is built; it is never a config value, so it never reaches a
  manifest or a log line. A local server without auth works with the variable unset.
* At most `concurrency` requests are in flight; each has a timeout; timeouts, connection errors,
  HTTP 408/409/429/5xx and unparseable replies are retried with exponential backoff (a 429's
  `Retry-After` is honoured, capped); other 4xx fail at once.
* Successful judgements are cached as one JSON file per request in `cache_dir`, keyed by the
  SHA-256 of model, prompt and image bytes, so re-scoring the same renders costs nothing.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.core.dataset import write_json

from .base import Judgement, JudgeRequest
from .rubric import parse_grades, rubric_prompt

RETRY_STATUS = {408, 409, 429}
MAX_BACKOFF = 30.0


@dataclass(frozen=True)
class OpenAISettings:
    url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = 60.0
    retries: int = 4
    backoff: float = 1.0
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
        from openai import OpenAI

        self.settings = settings
        self.client = OpenAI(base_url=settings.url, api_key=os.environ.get(settings.api_key_env) or "no-key",
                             timeout=settings.timeout, max_retries=0)

    def grade(self, requests: list[JudgeRequest]) -> list[Judgement]:
        with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
            return list(pool.map(self.grade_one, requests))

    def grade_one(self, request: JudgeRequest) -> Judgement:
        try:
            images = [Path(p).read_bytes() for p in request.images]
        except OSError as err:
            return Judgement(None, f"openai: cannot read render: {err}")
        if not images:
            return Judgement(None, "openai: no render image for this row")
        size = request.scene.size
        prompt = rubric_prompt(request.preference, f"{size.x} x {size.y} x {size.z} m")
        key = request_key(self.settings.model, prompt, images)
        cached = self._cache_get(key)
        if cached is not None:
            return Judgement(cached)
        result = self._ask(prompt, images)
        if result.grades is not None:
            self._cache_put(key, result.grades)
        return result

    def _ask(self, prompt: str, images: list[bytes]) -> Judgement:
        import openai

        content: list[dict[str, Any]] = [{"type": "text", "text": prompt}] + [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(b).decode()}}
            for b in images]
        error = "openai: no attempt made"
        for attempt in range(self.settings.retries + 1):
            wait = self.settings.backoff * 2 ** attempt
            try:
                messages: Any = [{"role": "user", "content": content}]
                reply = self.client.chat.completions.create(
                    model=self.settings.model, messages=messages,
                    max_tokens=self.settings.max_tokens, temperature=0.0)
                text = reply.choices[0].message.content if reply.choices else None
                grades, problem = parse_grades(text)
                if grades is not None:
                    return Judgement(grades)
                error = f"openai: malformed reply: {problem}"
            except openai.APIStatusError as err:
                error = f"openai: HTTP {err.status_code}: {str(err.message)[:200]}"
                if err.status_code not in RETRY_STATUS and err.status_code < 500:
                    return Judgement(None, error)
                retry_after = err.response.headers.get("retry-after") if err.response is not None else None
                if retry_after and retry_after.replace(".", "", 1).isdigit():
                    wait = max(wait, float(retry_after))
            except openai.APITimeoutError:
                error = f"openai: timed out after {self.settings.timeout} s"
            except openai.APIConnectionError as err:
                error = f"openai: connection failed: {str(err)[:200]}"
            except (ValueError, TypeError, AttributeError, IndexError) as err:  # a reply of an unexpected shape
                error = f"openai: malformed reply: {type(err).__name__}: {str(err)[:200]}"
            if attempt < self.settings.retries:
                time.sleep(min(wait, MAX_BACKOFF))
        return Judgement(None, f"{error} (after {self.settings.retries + 1} attempts)")

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
