"""The transformers backend: batched `model.generate` sampling, on CPU or GPU.

Sequences (requests × n) are sorted by prompt length and generated `--batch-size` at a time, so a
batch pads little. Each batch is seeded from its first request's seed, so a re-run (or a resumed
chunk) samples the same tokens. --guided masks logits with xgrammar; --logprobs records each
sampled token's log-probability under the unconstrained model at the sampling temperature (what
GRPO's ratio uses), without keeping per-step logits for the whole batch.
"""

from __future__ import annotations

from typing import Any

from stages.core import vlm

from .base import Completion, Progress, Request, ignore


def _logprob_recorder(temperature: float):
    """A logits processor that sees the raw logits first and records the chosen tokens' log-probs."""
    import torch
    from transformers import LogitsProcessor

    class LogprobRecorder(LogitsProcessor):
        def __init__(self) -> None:
            self.previous: torch.Tensor | None = None
            self.steps: list[torch.Tensor] = []

        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            self._take(input_ids[:, -1:])
            self.previous = torch.log_softmax(scores.float() / temperature, dim=-1)
            return scores

        def _take(self, chosen: torch.Tensor) -> None:
            if self.previous is not None:
                self.steps.append(self.previous.gather(1, chosen).squeeze(1))

        def result(self, sequences: torch.Tensor) -> torch.Tensor:
            """[batch, new tokens]; the last step's token is only known from the final sequences."""
            self._take(sequences[:, -1:])
            self.previous = None
            return torch.stack(self.steps, dim=1)

    return LogprobRecorder()


class TransformersBackend:
    name = "transformers"

    def __init__(self, cfg: Any) -> None:
        import torch

        self.cfg = cfg
        device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.processor = vlm.load_processor(cfg.model, pixels=cfg.pixel_limits())
        self.model = vlm.load_model(cfg.model, dtype=cfg.dtype, device=device)
        self.device = device
        tokenizer = self.processor.tokenizer
        eos = self.model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        self.eos_ids = sorted(set(eos) | {tokenizer.eos_token_id} - {None})
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]
        self._compiler = None

    def generation_config(self):
        """Exactly the requested sampling, not the checkpoint's defaults (Qwen's ship top_k=1 etc.)."""
        from transformers import GenerationConfig

        cfg = self.cfg
        sample = cfg.temperature > 0
        return GenerationConfig(
            do_sample=sample, temperature=cfg.temperature if sample else None, top_p=cfg.top_p if sample else None,
            top_k=0 if sample else None, repetition_penalty=1.0, max_new_tokens=cfg.max_new_tokens,
            eos_token_id=self.eos_ids, pad_token_id=self.pad_id)

    def grammar_compiler(self):
        import xgrammar as xgr

        if self._compiler is None:
            vocab = self.model.config.get_text_config().vocab_size
            info = xgr.TokenizerInfo.from_huggingface(self.processor.tokenizer, vocab_size=vocab,
                                                      stop_token_ids=self.eos_ids)
            self._compiler = xgr.GrammarCompiler(info, cache_enabled=True)
        return self._compiler

    def generate(self, requests: list[Request], progress: Progress = ignore) -> list[list[Completion]]:
        texts = [vlm.chat_text(self.processor, r.messages) for r in requests]
        jobs = [(len(texts[i]), i, k) for i, r in enumerate(requests) for k in range(r.n)]
        jobs.sort(key=lambda job: job[0])
        out: list[list[Completion | None]] = [[None] * r.n for r in requests]
        size = self.cfg.batch_size
        for start in range(0, len(jobs), size):
            batch = jobs[start:start + size]
            done = self._generate_batch([requests[i] for _, i, _ in batch], [texts[i] for _, i, _ in batch])
            for (_, i, k), completion in zip(batch, done, strict=True):
                out[i][k] = completion
            progress(len(batch), sum(c.num_tokens or 0 for c in done))
        return out  # type: ignore[return-value]

    def _generate_batch(self, requests: list[Request], texts: list[str]) -> list[Completion]:
        import torch

        images = [img for r in requests for img in vlm.message_images(r.messages)]
        inputs = self.processor(text=texts, **({"images": images} if images else {}), padding=True,
                                return_tensors="pt").to(self.device)
        processors = []
        recorder = _logprob_recorder(self.cfg.temperature or 1.0) if self.cfg.logprobs else None
        if recorder is not None:
            processors.append(recorder)
        if requests[0].grammar is not None:
            from xgrammar.contrib.hf import LogitsProcessor as GrammarMask

            compiler = self.grammar_compiler()
            processors.append(GrammarMask([compiler.compile_grammar(r.grammar) for r in requests]))
        torch.manual_seed(requests[0].seed)
        with torch.inference_mode():
            sequences = self.model.generate(**inputs, generation_config=self.generation_config(),
                                            logits_processor=processors)
        prompt_len = inputs["input_ids"].shape[1]
        new = sequences[:, prompt_len:]
        logprobs = recorder.result(sequences) if recorder is not None else None
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        return [self._completion(new[b], logprobs[b] if logprobs is not None else None, prompt_tokens[b])
                for b in range(new.shape[0])]

    def _completion(self, ids, logprobs, prompt_tokens: int) -> Completion:
        token_ids = ids.tolist()
        stop_at = next((j for j, t in enumerate(token_ids) if t in self.eos_ids), None)
        finish = "stop" if stop_at is not None else "length"
        if stop_at is not None:
            token_ids = token_ids[:stop_at + 1]
        text = self.processor.tokenizer.decode(token_ids, skip_special_tokens=True)
        lp = logprobs[:len(token_ids)].tolist() if logprobs is not None else None
        return Completion(text=text, token_ids=token_ids, finish_reason=finish, logprobs=lp,
                          num_prompt_tokens=int(prompt_tokens))
