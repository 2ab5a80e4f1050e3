"""The interface every sampling backend implements: requests in, completions out (a module of its own
so that the backends and the package that picks one import it, not each other)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

Progress = Callable[[int, int], None]
"""`progress(samples, tokens)`: that many more samples, of that many tokens in all, are finished."""


def ignore(samples: int, tokens: int) -> None:
    """The default progress hook: nobody is watching."""


@dataclass
class Request:
    """One chat to sample `n` completions for. Image payloads in `messages` are RGB PIL images."""

    messages: list[dict[str, Any]]
    n: int
    seed: int
    """Seed of this request's samples (derived from --seed and the sample ids)."""
    grammar: str | None = None
    """xgrammar EBNF the whole response must match (--guided), else None."""


@dataclass
class Completion:
    text: str
    token_ids: list[int] = field(default_factory=list)
    """The sampled tokens, including the stop token when the model stopped (empty when unknown)."""
    finish_reason: str = "stop"
    """`stop` (end of turn), `length` (hit --max-new-tokens) or `error` (the server failed; see text)."""
    logprobs: list[float] | None = None
    """Per-token log-probabilities under the sampling temperature, when --logprobs."""
    num_prompt_tokens: int | None = None
    num_tokens: int | None = None
    """Response length in tokens (default: len(token_ids); servers report it as usage)."""
    error: str | None = None
    """Why the sample failed (finish_reason `error`), keys redacted; stored in column `sample_error`."""

    def __post_init__(self) -> None:
        if self.num_tokens is None and self.token_ids:
            self.num_tokens = len(self.token_ids)


class Backend(Protocol):
    name: str

    def generate(self, requests: list[Request], progress: Progress = ignore) -> list[list[Completion]]:
        """`requests[i].n` completions for each request, in order; `progress(samples, tokens)` as they finish."""
