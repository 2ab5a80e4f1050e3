"""The sampling backends behind one interface: chats in, `n` completions per chat out.

- `transformers` (default): `model.generate` in batches, on CPU or GPU; xgrammar for --guided.
- `vllm`: vLLM's offline `LLM` engine (tensor parallel, multimodal, structured outputs).
- `openai`: any OpenAI-compatible chat-completions server (vLLM's, hosted models).

A backend is built once per process (it loads the model) and then called chunk by chunk.
"""

from __future__ import annotations

from typing import Any

from .base import Backend, Completion, Progress, Request, ignore  # noqa: F401  (the package's interface)


def make_backend(cfg: Any) -> Backend:
    """The backend the config names (imports only that backend's libraries)."""
    if cfg.backend == "transformers":
        from .hf import TransformersBackend

        return TransformersBackend(cfg)
    if cfg.backend == "vllm":
        from .vllm_engine import VLLMBackend

        return VLLMBackend(cfg)
    from .openai_api import OpenAIBackend

    return OpenAIBackend(cfg)
