"""The one place that knows TRL's GRPOTrainer internals (TRL is pinned to 1.16.0 in pyproject).

`update` trains on completions that were sampled, rendered and scored earlier, so it drives
`GRPOTrainer` through its experimental `rollout_func`: instead of generating, the trainer gets the
stored completion tokens of each prompt, and a pass-through reward function hands back the stored
rewards. Everything else (advantages within groups, loss variants, KL, clipping, accumulation, PEFT,
accelerate/DeepSpeed/FSDP, checkpoints, logging) is TRL's own code. A TRL upgrade that changes the
rollout contract touches this file only.

How the trainer's prompts are matched to stored groups: the training dataset has one row per group;
TRL's sampler repeats each row `num_generations` times in a row, and a generation batch (all
processes together) holds whole groups. The group id travels inside the prompt's first message
(chat templates ignore unknown keys), and a completion's position within its group follows from
its position in the global batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GROUP_KEY = "metaspatial_group"
"""Key of the prompt's first message carrying the group id to the rollout function."""


@dataclass
class StoredGroup:
    """What the trainer needs of one group: its prompt tokens, completions and rewards."""

    prompt_ids: list[int]
    completion_ids: list[list[int]]
    rewards: list[float]


class StoredRollouts:
    """A `rollout_func` that returns stored completions instead of generating new ones."""

    def __init__(self, groups: dict[str, StoredGroup], num_generations: int):
        self.groups = groups
        self.num_generations = num_generations
        self.calls = 0

    def __call__(self, prompts: list[list[dict[str, Any]]], trainer: Any) -> dict[str, list[Any]]:
        # Each process gets a contiguous slice of the global generation batch, which starts with a
        # whole group; so the position in the global batch gives the sample index within the group.
        offset = trainer.accelerator.process_index * len(prompts)
        out: dict[str, list[Any]] = {"prompt_ids": [], "completion_ids": [], "logprobs": [], "stored_reward": []}
        for j, prompt in enumerate(prompts):
            key = prompt[0][GROUP_KEY]
            index = (offset + j) % self.num_generations
            if index and j and prompts[j - 1][0][GROUP_KEY] != key:
                raise RuntimeError("TRL's batch layout changed: a group does not start at a multiple of "
                                   "num_generations; stages/update/trl_bridge.py needs updating")
            group = self.groups[key]
            out["prompt_ids"].append(group.prompt_ids)
            out["completion_ids"].append(group.completion_ids[index])
            # Without vLLM, TRL treats the batch as on-policy and uses these only for off-policy masking.
            out["logprobs"].append([0.0] * len(group.completion_ids[index]))
            out["stored_reward"].append(group.rewards[index])
        self.calls += 1
        return out


def stored_reward(completions: list[Any], stored_reward: list[float], **_: Any) -> list[float]:
    """Pass-through reward: the rewards the `score` stage computed, forwarded by `StoredRollouts`."""
    return list(stored_reward)


def tag_prompt(messages: list[dict[str, Any]], group_id: str) -> list[dict[str, Any]]:
    """The prompt messages with the group id attached to the first message."""
    return [{**messages[0], GROUP_KEY: group_id}, *messages[1:]]


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
                  peft_config: Any, callbacks: list[Any]) -> Any:
    """A real `GRPOTrainer` whose generation step is `rollouts`."""
    from transformers import PrinterCallback
    from trl import GRPOTrainer

    trainer = GRPOTrainer(model=model, reward_funcs=[stored_reward], args=args, train_dataset=dataset,
                          processing_class=_checkpointable(processor), peft_config=peft_config,
                          rollout_func=rollouts, callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # our metrics callback prints a shorter line per step
    return trainer


def _checkpointable(processor: Any) -> Any:
    """The processor, able to save itself into checkpoints although it has no video processor
    (the Trainer saves `processing_class` with every checkpoint; the stock method trips on None)."""

    def save_pretrained(self: Any, save_directory: Any, **kwargs: Any) -> None:
        self.tokenizer.save_pretrained(save_directory)
        self.image_processor.save_pretrained(save_directory)

    cls = type(processor)
    processor.__class__ = type(cls.__name__, (cls,), {"save_pretrained": save_pretrained})
    return processor


def batch_advantages(trainer: Any) -> list[float]:
    """Advantages TRL computed for the latest generation batch (all processes)."""
    return list(trainer._logs["advantages"])


def metrics_callback(write: Callable[[dict[str, Any]], None], trainer_ref: Callable[[], Any]) -> Any:
    """A TrainerCallback that passes each log record, plus tokens/s and advantage stats, to `write`."""
    from transformers import TrainerCallback

    class MetricsCallback(TrainerCallback):
        def __init__(self) -> None:
            self.last = (time.perf_counter(), 0.0)

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.last = (time.perf_counter(), float(state.num_input_tokens_seen or 0))

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
            if not state.is_world_process_zero or not logs or "loss" not in logs:
                return
            now, tokens = time.perf_counter(), float(logs.get("num_tokens", state.num_input_tokens_seen))
            record = {"step": state.global_step, "epoch": state.epoch, **logs}
            if now > self.last[0] and tokens >= self.last[1]:
                record["tokens_per_s"] = (tokens - self.last[1]) / (now - self.last[0])
            self.last = (now, tokens)
            adv = batch_advantages(trainer_ref())
            if adv:
                mean = sum(adv) / len(adv)
                record["advantages/mean"] = mean
                record["advantages/std"] = (sum((a - mean) ** 2 for a in adv) / len(adv)) ** 0.5
                record["advantages/min"] = min(adv)
                record["advantages/max"] = max(adv)
            write(record)
            print(f"update: step {state.global_step}/{state.max_steps} loss {logs['loss']:.4g} "
                  f"reward {logs.get('reward', float('nan')):.4g} grad_norm {logs.get('grad_norm', float('nan')):.4g} "
                  f"tokens/s {record.get('tokens_per_s', float('nan')):.0f}", flush=True)

    return MetricsCallback()
