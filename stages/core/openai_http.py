"""Talking to OpenAI-compatible servers (the `openai` judge and rollout backend): one client setup.

* The `openai` client does the retrying: timeouts, connection errors, 408/409/429 and 5xx are
  retried `max_retries` times with its exponential backoff and jitter (a `Retry-After` up to 60 s
  is honoured); other 4xx fail at once.
* `timeout` bounds each whole attempt, reply body included. The HTTP library's own timeouts are
  per network read, so a server trickling one byte a second would never time out; the client here
  cancels an attempt at its deadline (the `openai` client then retries it like any timeout).
* A `ServerLog` keeps the last HTTP error the server sent. When a server dies mid-run the final
  error is a bare `Connection error`; the 500 it answered before is what says why.
* Every message that leaves here is redacted (`stages.core.redact`): servers echo keys in errors.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx2

from .redact import redact

T = TypeVar("T")
RETRIED_STATUS = {408, 409, 429}
LIMIT = 300
"""Longest server message kept (characters)."""


def _deadline_client(seconds: float, **kwargs: Any) -> Any:
    """The `openai` package's default HTTP client (its limits, proxies from the environment), with
    every request, reply body included, ended after `seconds` as a timeout (which the client retries)."""
    from openai import DefaultAsyncHttpxClient

    class DeadlineClient(DefaultAsyncHttpxClient):  # type: ignore[misc, valid-type]
        async def send(self, request: httpx2.Request, **options: Any) -> httpx2.Response:
            try:
                async with asyncio.timeout(seconds):
                    return await super().send(request, **options)  # reads the whole body (not streamed)
            except TimeoutError:
                raise httpx2.ReadTimeout(f"no complete reply within {seconds} s", request=request) from None

    return DeadlineClient(**kwargs)


def _message(response: httpx2.Response) -> str:
    """The human part of an error reply: OpenAI's `error.message`, FastAPI's `detail`, else the text."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return response.text
    if isinstance(body, dict):
        inner = body.get("error")
        for value in (inner.get("message") if isinstance(inner, dict) else inner, body.get("message"),
                      body.get("detail")):
            if value:
                return str(value)
    return response.text


class ServerLog:
    """The last HTTP error a server sent, and one-line descriptions of failed requests (redacted)."""

    def __init__(self, secrets: list[str | None], timeout: float, max_retries: int) -> None:
        self.secrets, self.timeout, self.max_retries = secrets, timeout, max_retries
        self.last_error: str | None = None

    def clean(self, text: str) -> str:
        return redact(" ".join(str(text).split()), self.secrets)[:LIMIT]

    async def on_response(self, response: httpx2.Response) -> None:
        if response.status_code >= 400:
            await response.aread()
            self.last_error = self.clean(f"HTTP {response.status_code}: {_message(response)}")

    def describe(self, err: Exception) -> str:
        """Why a request failed, in one redacted line: the error, and for a connection error or a
        timeout the last HTTP error the server had sent (what says why it went away)."""
        import openai

        retried = f" (after {self.max_retries + 1} attempts)" if self.max_retries else ""
        if isinstance(err, openai.APIStatusError):
            if err.status_code not in RETRIED_STATUS and err.status_code < 500:
                retried = ""
            return self.clean(f"HTTP {err.status_code}: {_message(err.response)}") + retried
        if isinstance(err, openai.APITimeoutError):
            text = f"timed out: no complete reply within {self.timeout} s{retried}"
        elif isinstance(err, openai.APIConnectionError):
            cause = f" ({err.__cause__})" if err.__cause__ is not None and str(err.__cause__) else ""
            text = f"connection failed{cause}{retried}"
        else:
            text = f"{type(err).__name__}: {err}"
        if self.last_error:
            text += f"; last HTTP error from the server: {self.last_error}"
        return self.clean(text)


def async_client(base_url: str | None, api_key: str, timeout: float, max_retries: int, log: ServerLog) -> Any:
    """An `openai.AsyncOpenAI` whose attempts end within `timeout` and whose errors feed `log`."""
    from openai import AsyncOpenAI

    http = _deadline_client(timeout, event_hooks={"response": [log.on_response]})
    return AsyncOpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries, http_client=http)


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a loop of its own (safe when the caller already runs one)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


@dataclass
class ChatReply:
    """The first choice of a chat completion, checked field by field."""

    text: str
    finish_reason: str
    prompt_tokens: int | None
    completion_tokens: int | None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def chat_reply(reply: Any) -> ChatReply:
    """What a chat completion says, every field checked: the server is untrusted, and a number where
    text belongs would otherwise crash the dataset writer. Raises ValueError for a reply without a
    first choice or with content that is not text."""
    choices = getattr(reply, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise ValueError("the reply has no choices")
    choice = choices[0]
    content = getattr(getattr(choice, "message", None), "content", None)
    if content is not None and not isinstance(content, str):
        raise ValueError(f"the reply's content is {type(content).__name__}, not text")
    finish = getattr(choice, "finish_reason", None)
    usage = getattr(reply, "usage", None)
    return ChatReply(content or "", finish if isinstance(finish, str) and finish else "stop",
                     _count(getattr(usage, "prompt_tokens", None)), _count(getattr(usage, "completion_tokens", None)))
