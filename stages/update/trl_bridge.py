"""The one place that knows TRL's GRPOTrainer internals (TRL is pinned to 1.16.0 in pyproject).

`update` trains on completions that were sampled, rendered and scored earlier, so it drives
`GRPOTrainer` through its experimental `rollout_func`: instead of generating, the trainer gets the
stored completion tokens of each prompt, and a pass-through reward function hands back the stored
rewards. Everything else (advantages within groups, loss variants, KL, clipping, accumulation, PEFT,
accelerate/DeepSpeed/FSDP, checkpoints, logging) is TRL's own code. A TRL upgrade that changes the
rollout contract touches this file only.

How stored samples reach the trainer: the training dataset has one row per group; TRL's sampler
repeats each row `num_generations` times in a row, and a generation batch (all processes
together) holds whole groups, so a row's position in the global batch says which sample of its
group it stands for. `_prepare_inputs` (the Trainer hook that receives each drawn batch) swaps in
that sample's own chat and images, tagged with its identity, before TRL builds the loss inputs
from them; the rollout function then reads the tag. Samples of one group may so have different
prompts (multi-turn trajectories of one room, each with its own history and render).

Off-policy samples: TRL assumes a generation batch was sampled by the policy of the step that
trains on it, so its clipped ratio starts at 1. Stored completions were sampled earlier (by the
previous iteration's model, by vLLM, and ever staler as an update takes more steps), so where their
sampling log-probabilities are known they become the ratio's old log-probabilities: clipping then
acts on how far the policy has moved since sampling, as in PPO.

Reference: TRL builds the KL reference from the policy it is given (for full fine-tuning a copy of
the model loaded from `--model`; for a trained adapter a copy of that adapter), i.e. the previous
iteration's model. `build_trainer` instead takes the reference the caller chose (the recipe's initial
policy), or none for LoRA over that same base, whose reference is the model with adapters disabled.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from .object_credit import token_advantages

GROUP_COLUMN = "metaspatial_group"
"""Column of the training dataset holding the group id."""
SAMPLE_KEY = "metaspatial_sample"
"""Key of a prompt's first message carrying (group id, sample index) to the rollout function
(chat templates ignore unknown keys)."""
IMAGE_CACHE = 512
"""Decoded images kept in memory (each group's images are used once per epoch and iteration)."""


@dataclass
class StoredGroup:
    """What the trainer needs of one group, per sample: its chat (image placeholders), image files,
    prompt tokens, completion tokens, reward, and sampling log-probabilities (None where unknown)."""

    chats: list[list[dict[str, Any]]]
    image_paths: list[list[str]]
    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    rewards: list[float]
    logprobs: list[list[float | None]]
    credit: list[Any] = field(default_factory=list)
    """Per sample, its object entries' (first token, end token, object advantage); [] without object credit."""
    free: list[list[tuple[int, int]]] = field(default_factory=list)
    """Per sample, the token ranges the loss keeps (`--loss-tokens free`); [] to keep every token."""


class StoredRollouts:
    """The stored samples, handed out in the trainer's batch order instead of generating."""

    def __init__(self, groups: dict[str, StoredGroup], num_generations: int):
        self.groups = groups
        self.num_generations = num_generations

    def expand(self, batch: list[dict[str, Any]], process_index: int) -> list[dict[str, Any]]:
        """Replace each drawn group row by the sample its position stands for."""
        offset = process_index * len(batch)
        out = []
        for j, row in enumerate(batch):
            key, index = row[GROUP_COLUMN], (offset + j) % self.num_generations
            if index and j and batch[j - 1][GROUP_COLUMN] != key:
                raise RuntimeError("TRL's batch layout changed: a group does not start at a multiple of "
                                   "num_generations; stages/update/trl_bridge.py needs updating")
            group = self.groups[key]
            chat = group.chats[index]
            sample = {**row, "prompt": [{**chat[0], SAMPLE_KEY: [key, index]}, *chat[1:]]}
            if group.image_paths[index]:
                sample["images"] = [_open_image(p) for p in group.image_paths[index]]
            out.append(sample)
        return out

    def credit(self, tag: list[Any]) -> Any:
        """The object-credit spans of the sample a prompt is tagged with."""
        group = self.groups[tag[0]]
        return group.credit[tag[1]] if group.credit else []

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, Any]:
        """TRL's `rollout_func`: the stored tokens and rewards of the tagged samples."""
        out: dict[str, list[Any]] = {"prompt_ids": [], "completion_ids": [], "logprobs": [], "stored_reward": []}
        for prompt in prompts:
            key, index = prompt[0][SAMPLE_KEY]
            group = self.groups[key]
            out["prompt_ids"].append(group.prompt_ids[index])
            out["completion_ids"].append(group.completion_ids[index])
            # The old log-probabilities of the ratio when all are known (see build_trainer); TRL's off-policy
            # sequence masking (--off-policy-mask-threshold) reads them too, None (NaN) meaning "no evidence".
            out["logprobs"].append(group.logprobs[index])
            out["stored_reward"].append(group.rewards[index])
            if group.free:  # TRL's env_mask: the loss counts the tokens marked 1, the model still attends to all
                mask = [0] * len(group.completion_ids[index])
                for a, b in group.free[index]:
                    mask[a:b] = [1] * (b - a)
                out.setdefault("env_mask", []).append(mask)
        return out


@lru_cache(maxsize=IMAGE_CACHE)
def _open_image(path: str) -> Any:
    from PIL import Image

    with Image.open(path) as img:
        return img.convert("RGB")


def stored_reward(completions: list[Any], stored_reward: list[float], **_: Any) -> list[float | None]:
    """Pass-through reward: the rewards the `score` stage computed, forwarded by `StoredRollouts`."""
    return list(stored_reward)


def grpo_config(output_dir: Path, options: dict[str, Any]) -> Any:
    """A `GRPOConfig` for stored rollouts on whatever hardware is present (CPU included)."""
    import torch
    from trl import GRPOConfig

    on_gpu = torch.cuda.is_available()
    bf16 = bool(options.pop("bf16", False)) and on_gpu
    return GRPOConfig(output_dir=str(output_dir), use_cpu=not on_gpu, bf16=bf16, fp16=False,
                      logging_steps=1, save_strategy="steps", remove_unused_columns=False,
                      log_completions=False, dataloader_num_workers=0, disable_tqdm=True, **options)


def build_trainer(model: Any, processor: Any, dataset: Any, rollouts: StoredRollouts, args: Any,
                  peft_config: Any, callbacks: list[Any], reference: Any = None,
                  sampling_logprobs: bool = False, object_credit: float | None = None) -> Any:
    """A real `GRPOTrainer` whose generation step is `rollouts`, logging advantage and ratio statistics
    and tokens/s along with TRL's own metrics (to every `report_to` tracker and to `callbacks`).

    `reference`: the KL term's reference model (required for full fine-tuning when `args.beta` > 0;
    None with LoRA means the policy with adapters disabled). `sampling_logprobs`: every stored sample
    has its sampling log-probabilities, which become the old log-probabilities of the clipped ratio.
    `object_credit`: the strength of object-level credit (None: sequence advantages only)."""
    import torch
    from transformers import PrinterCallback
    from trl import GRPOTrainer

    class StoredRolloutTrainer(GRPOTrainer):
        def _prepare_inputs(self, generation_batch: Any) -> Any:
            if self.is_in_train:
                throughput.start(self.state)
                generation_batch = rollouts.expand(generation_batch, self.accelerator.process_index)
            return super()._prepare_inputs(generation_batch)

        def _generate_and_score_completions(self, inputs: Any) -> dict[str, Any]:
            output = super()._generate_and_score_completions(inputs)
            if sampling_logprobs:
                output["old_per_token_logps"] = output["sampling_per_token_logps"]
            if object_credit is not None:
                credits = [rollouts.credit(x["prompt"][0][SAMPLE_KEY]) for x in inputs]
                output["advantages"] = token_advantages(output["advantages"], credits,
                                                        output["completion_ids"].shape[1], object_credit)
            return output

        def _get_per_token_logps_and_entropies(self, *args: Any, **kwargs: Any) -> Any:
            result = super()._get_per_token_logps_and_entropies(*args, **kwargs)
            if kwargs.get("compute_entropy"):  # the loss pass: the old and reference passes ask for no entropy
                self._loss_logps = result[0].detach()
            return result

        def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> Any:
            loss = super()._compute_loss(model, inputs)
            old = inputs.get("old_per_token_logps")  # None: TRL took the current log-probs (ratio 1)
            log_ratio = torch.zeros_like(self._loss_logps) if old is None else self._loss_logps - old
            mask = inputs["completion_mask"] * inputs["tool_mask"] if "tool_mask" in inputs else inputs["completion_mask"]
            ratios.add(self.accelerator, log_ratio, mask)
            return loss

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            if "loss" in logs:
                logs = {**logs, **advantage_stats(list(self._logs["advantages"])), **ratios.pop(),
                        **throughput.update(self.state)}
            super().log(logs, start_time)

    # TRL 1.16 toggles checkpointing around every generation and log-prob pass through transformers 5's
    # deprecated aliases (`is_gradient_checkpointing`, `gradient_checkpointing_enable/disable`): four
    # FutureWarnings per step that are TRL's to fix, not the user's. Only those messages are silenced.
    for alias in ("is_gradient_checkpointing", "gradient_checkpointing_enable", "gradient_checkpointing_disable"):
        warnings.filterwarnings("ignore", message=f"`{alias}` is deprecated", category=FutureWarning)
    throughput, ratios = Throughput(), RatioStats()
    beta, args.beta = args.beta, 0.0  # keep TRL from building a reference out of the policy it is given
    trainer = StoredRolloutTrainer(model=model, reward_funcs=[stored_reward], args=args, train_dataset=dataset,
                                   processing_class=processor, peft_config=peft_config,
                                   rollout_func=rollouts, callbacks=callbacks)
    trainer.beta = args.beta = beta
    if beta and reference is not None:
        trainer.ref_model = _prepared_reference(trainer, reference)
    elif beta and not hasattr(trainer.accelerator.unwrap_model(trainer.model), "peft_config"):
        raise ValueError("full fine-tuning with beta > 0 needs a reference model")
    trainer.remove_callback(PrinterCallback)  # the metrics callback prints a shorter line per step
    return trainer


def _prepared_reference(trainer: Any, reference: Any) -> Any:
    """The reference model prepared the way TRL prepares its own: log-probabilities from a fused LM head at
    the trainer's temperature, placed by DeepSpeed, FSDP or on the devices."""
    from trl.models import prepare_deepspeed, prepare_fsdp
    from trl.trainer.utils import add_fused_lm_head

    reference.eval().requires_grad_(False)
    add_fused_lm_head(reference, temperature=trainer.temperature, cast_lm_head_to_fp32=trainer.args.cast_lm_head_to_fp32)
    if trainer.is_deepspeed_enabled:
        return prepare_deepspeed(reference, trainer.accelerator)
    if trainer.is_fsdp_enabled:
        return prepare_fsdp(reference, trainer.accelerator)
    return trainer.accelerator.prepare_model(reference, evaluation_mode=True)


class RatioStats:
    """New over old probability of each completion token (the clipped ratio's argument), over the
    micro-batches of one logging step and all processes: mean, min and max."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total, self.count, self.low, self.high = 0.0, 0.0, math.inf, -math.inf

    def add(self, accelerator: Any, log_ratio: Any, mask: Any) -> None:
        """Called by every process for each micro-batch (the gathers are collective)."""
        import torch

        ratio = torch.exp(log_ratio.float())[mask.bool()]
        inf = torch.tensor([math.inf], device=ratio.device)
        sums = accelerator.reduce(torch.stack([ratio.sum(), torch.tensor(float(ratio.numel()), device=ratio.device)]),
                                  reduction="sum")
        low = accelerator.gather(ratio.min()[None] if ratio.numel() else inf).min()
        high = accelerator.gather(ratio.max()[None] if ratio.numel() else -inf).max()
        self.total += float(sums[0])
        self.count += float(sums[1])
        self.low, self.high = min(self.low, float(low)), max(self.high, float(high))

    def pop(self) -> dict[str, float]:
        """The statistics since the previous call (none if no token was seen), then start again."""
        stats = ({"ratio/mean": self.total / self.count, "ratio/min": self.low, "ratio/max": self.high}
                 if self.count else {})
        self.reset()
        return stats


class Throughput:
    """Prompt + completion tokens per second of wall time since the previous log record."""

    def __init__(self) -> None:
        self.last: tuple[float, float] | None = None

    def start(self, state: Any) -> None:
        """Start the clock at the first batch (after model loading and setup; on resume, from the
        checkpoint's token count)."""
        if self.last is None:
            self.last = (time.perf_counter(), float(state.num_input_tokens_seen or 0))

    def update(self, state: Any) -> dict[str, float]:
        now, tokens = time.perf_counter(), float(state.num_input_tokens_seen or 0)
        last, self.last = self.last, (now, tokens)
        if last is None or now <= last[0]:
            return {}
        return {"tokens_per_s": (tokens - last[1]) / (now - last[0])}


def advantage_stats(advantages: list[float]) -> dict[str, float]:
    """Mean, std, min and max of the advantages TRL computed for the latest generation batch."""
    if not advantages:
        return {}
    mean = sum(advantages) / len(advantages)
    return {"advantages/mean": mean,
            "advantages/std": (sum((a - mean) ** 2 for a in advantages) / len(advantages)) ** 0.5,
            "advantages/min": min(advantages), "advantages/max": max(advantages)}


def metrics_callback(write: Callable[[dict[str, Any]], None]) -> Any:
    """A TrainerCallback that passes each step's log record to `write` and prints a short line."""
    from transformers import TrainerCallback

    from stages.core.console import eta

    class MetricsCallback(TrainerCallback):
        start: tuple[float, int] | None = None  # (time, step) of the first step of this process (resume too)

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.start is None:
                self.start = (time.monotonic(), state.global_step)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
            if not state.is_world_process_zero or not logs or "loss" not in logs:
                return
            write({"step": state.global_step, "epoch": state.epoch, **logs})
            nan = float("nan")
            began, first = self.start or (time.monotonic(), state.global_step)
            left = eta(time.monotonic() - began, state.global_step - first, state.max_steps - first)
            print(f"update: step {state.global_step}/{state.max_steps} loss {logs['loss']:.4g} "
                  f"reward {logs.get('reward', nan):.4g} grad_norm {logs.get('grad_norm', nan):.4g} "
                  f"tokens/s {logs.get('tokens_per_s', nan):.0f} ETA {left}", flush=True)

    return MetricsCallback()
