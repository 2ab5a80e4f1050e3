"""The vllm backend: vLLM's offline `LLM` engine (continuous batching, tensor parallel, multimodal).

Prompts are rendered with the model's own chat template through `stages.core.vlm` (the same text
the transformers backend and `update` use) and sent with their images as `multi_modal_data`; vLLM
expands the image tokens. --guided passes the row's grammar as `structured_outputs.grammar` to the
xgrammar backend. A LoRA directory from `update` is served on its base with `enable_lora`.
Log-probabilities are vLLM's `processed_logprobs` (after temperature and top-p), which equal the
transformers backend's when top-p is 1 and decoding is not guided.

Data parallelism: vLLM's offline engine is one replica per process, so replicas are processes:
`--num-shards N --shard-index I`, one per GPU group (see README).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stages.core import vlm
from stages.core.errors import UserError

from .base import Completion, Progress, Request, ignore


class VLLMBackend:
    name = "vllm"

    def __init__(self, cfg: Any) -> None:
        try:
            from vllm import LLM
        except ImportError as err:
            raise UserError(f"--backend vllm: vLLM is not importable ({err}); install the `vllm` extra "
                            "(GPU) or see the README for the CPU build") from None
        self.cfg = cfg
        base, adapter = vlm.model_source(cfg.model)
        self.processor = vlm.load_processor(cfg.model, pixels=cfg.pixel_limits())
        self.lora = None
        if adapter is not None:
            from vllm.lora.request import LoRARequest

            self.lora = LoRARequest("policy", 1, str(adapter))
        self.llm = LLM(**engine_options(cfg, base, adapter))

    def sampling_params(self, request: Request):
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        cfg = self.cfg
        guided = StructuredOutputsParams(grammar=request.grammar) if request.grammar is not None else None
        return SamplingParams(n=request.n, temperature=cfg.temperature, top_p=cfg.top_p, top_k=0,
                              max_tokens=cfg.max_new_tokens, seed=request.seed, logprobs=0 if cfg.logprobs else None,
                              structured_outputs=guided, skip_special_tokens=True)

    def prompt(self, request: Request) -> dict[str, Any]:
        text = vlm.chat_text(self.processor, request.messages)
        images = vlm.message_images(request.messages)
        return {"prompt": text, "multi_modal_data": {"image": images[0]}} if images else {"prompt": text}

    def generate(self, requests: list[Request], progress: Progress = ignore) -> list[list[Completion]]:
        outputs = self.llm.generate([self.prompt(r) for r in requests], [self.sampling_params(r) for r in requests],
                                    lora_request=self.lora, use_tqdm=False)
        done = [[self._completion(o, len(out.prompt_token_ids or [])) for o in out.outputs] for out in outputs]
        progress(sum(map(len, done)), sum(c.num_tokens or 0 for c in sum(done, [])))  # one engine call: the whole chunk
        return done

    @staticmethod
    def _completion(output: Any, prompt_tokens: int) -> Completion:
        ids = list(output.token_ids)
        logprobs = None
        if output.logprobs is not None:
            logprobs = [float(step[token].logprob) for step, token in zip(output.logprobs, ids, strict=True)]
        return Completion(text=output.text, token_ids=ids, finish_reason=output.finish_reason or "stop",
                          logprobs=logprobs, num_prompt_tokens=prompt_tokens)


LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The values vLLM accepts for max_lora_rank (vllm/config/lora.py, MaxLoRARanks); its default is 16."""


def engine_options(cfg: Any, base: str, adapter: Path | None) -> dict[str, Any]:
    """The `LLM(...)` arguments: images only (one per prompt; video off, so vLLM reserves no memory for
    it), a LoRA adapter's rank allowed for (vLLM's default, 16, rejects `update --lora-r 32` adapters)."""
    options: dict[str, Any] = {
        "model": base, "tokenizer": str(adapter) if adapter is not None and (adapter / "tokenizer_config.json").is_file()
        else base, "dtype": cfg.dtype, "seed": cfg.seed, "tensor_parallel_size": cfg.tensor_parallel_size,
        "gpu_memory_utilization": cfg.gpu_memory_utilization, "max_model_len": cfg.max_model_len,
        "enforce_eager": cfg.enforce_eager, "limit_mm_per_prompt": {"image": 1, "video": 0},
        "logprobs_mode": "processed_logprobs",
        "structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": True},
        "enable_lora": adapter is not None}
    if adapter is not None:
        options["max_lora_rank"] = _lora_rank_bound(adapter)
    if cfg.pixel_limits():  # vLLM resizes images itself: the same limits as the processor update encodes with
        options["mm_processor_kwargs"] = cfg.pixel_limits()
    return options


def _lora_rank_bound(adapter: Path) -> int:
    """The smallest max_lora_rank vLLM accepts that holds the adapter's rank (`r` in adapter_config.json)."""
    config = adapter / vlm.ADAPTER_CONFIG
    try:
        rank = json.loads(config.read_text())["r"]
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"{config}: cannot read the LoRA rank `r` ({err})") from None
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1 or rank > LORA_RANKS[-1]:
        raise UserError(f"{config}: r: vLLM serves LoRA ranks 1 to {LORA_RANKS[-1]}, got {rank!r}")
    return next(r for r in LORA_RANKS if r >= rank)
