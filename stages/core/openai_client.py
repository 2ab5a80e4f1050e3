"""One way to talk to an OpenAI-compatible server: the `openai` client, bounded and redacted.

The `openai` client already retries connection errors, 408/409/429 and 5xx with exponential
backoff; what it lacks is a bound on a whole HTTP attempt. Its timeout (httpx's) limits each
socket read, so a server that trickles one byte a second keeps a request alive forever.
`DeadlineTransport` ends an attempt once its total time passes the timeout (a read timeout,
which the client then retries like any other). The API key is read from an environment variable
named by the caller, never from a flag or a file, and `redact` strips it (and anything shaped
like a key) from every message that could be written: servers echo keys back in 401 errors.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx2

from .errors import UserError

KEY_SHAPED = re.compile(r"(?i)(bearer\s+)?\b(sk|pk|rk|key|token|hf)[-_][A-Za-z0-9_\-*.]{6,}")


class _DeadlineStream(httpx2.SyncByteStream):
    def __init__(self, inner: httpx2.SyncByteStream, deadline: float, request: httpx2.Request) -> None:
        self.inner, self.deadline, self.request = inner, deadline, request

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            if time.monotonic() > self.deadline:
                raise httpx2.ReadTimeout("the whole request took longer than its timeout", request=self.request)
            yield chunk

    def close(self) -> None:
        self.inner.close()


class DeadlineTransport(httpx2.HTTPTransport):
    """An HTTP transport whose every attempt (connect, send, whole reply) ends after `seconds`."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        deadline = time.monotonic() + self.seconds
        response = super().handle_request(request)
        assert isinstance(response.stream, httpx2.SyncByteStream)
        response.stream = _DeadlineStream(response.stream, deadline, request)
        return response


def api_key(env_var: str, base_url: str | None, flag: str) -> str:
    """The key from `$env_var`; a local server (a --base-url given) needs none."""
    key = os.environ.get(env_var)
    if key:
        return key
    if base_url is None:
        raise UserError(f"{flag}: set ${env_var} (the API key) or give the server's URL for a local server")
    return "EMPTY"  # local servers (vllm serve) accept any key


def make_client(base_url: str | None, key: str, timeout: float, max_retries: int) -> Any:
    """An `openai.OpenAI` client whose attempts each end after `timeout` seconds in total."""
    from openai import OpenAI

    http = httpx2.Client(transport=DeadlineTransport(timeout), timeout=timeout)
    return OpenAI(base_url=base_url, api_key=key, timeout=timeout, max_retries=max_retries, http_client=http)


def redact(text: str, *secrets: str) -> str:
    """`text` without the given secrets and without anything shaped like an API key."""
    for secret in secrets:
        if secret and secret != "EMPTY":
            text = text.replace(secret, "[redacted]")
    return KEY_SHAPED.sub("[redacted]", text)


def describe_error(err: BaseException, *secrets: str) -> str:
    """A one-line, redacted description of a failed request: the HTTP status and the server's
    own message when there was a reply, else the kind of failure."""
    status = getattr(err, "status_code", None)
    message = getattr(err, "message", None) or str(err)
    head = f"HTTP {status}" if status else type(err).__name__
    return redact(f"{head}: {' '.join(message.split())}"[:500], *secrets)
