"""The update itself: check everything, load the policy, run TRL's GRPO, save the model.

Order matters for users: the dataset is checked (columns, rewards, groups) before a model is
loaded, and prompt lengths right after the processor is, so every input error exits with code 2
before any training starts.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stages.core import dataset as ds
from stages.core import model_output, vlm
from stages.core.collapse import Collapse
from stages.core.console import make_console
from stages.core.errors import UserError
from stages.core.failures import describe
from stages.core.stage import code_version

from . import object_credit, outputs, prepare, trl_bridge
from .groups import Excluded, identical_samples, load_groups, zero_variance

if TYPE_CHECKING:  # the package imports this module to run an update; only its type is needed here
    from . import Config

console = make_console()


def say(message: str) -> None:
    """Print once per job, from the main process (every process of a multi-GPU run gets here)."""
    if model_output.is_main_process():
        console.print(message)


def _num_processes() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _check_batch(cfg: Config, group_size: int) -> None:
    """TRL needs whole groups in every optimizer step; say so in terms of our flags."""
    per_step = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * _num_processes()
    if per_step % group_size:
        raise UserError(f"--per-device-train-batch-size ({cfg.per_device_train_batch_size}) x "
                        f"--gradient-accumulation-steps ({cfg.gradient_accumulation_steps}) x processes "
                        f"({_num_processes()}) = {per_step} completions per step, which is not a multiple of the "
                        f"group size {group_size}; change the batch size or accumulation steps")


def _check_group_count(cfg: Config, groups: int, group_size: int) -> None:
    """TRL draws whole steps of groups; groups that do not fill the last step of an epoch sit it out."""
    per_step = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * _num_processes() // group_size
    if groups < per_step:
        raise UserError(f"only {groups} group(s) to train on, but one optimizer step takes {per_step} "
                        f"(batch x accumulation x processes / group size {group_size}); lower "
                        "--per-device-train-batch-size or --gradient-accumulation-steps")
    if groups % per_step:
        say(f"update: {groups % per_step} of {groups} group(s) do not fill the last step of an epoch and sit "
            "that epoch out (a different draw each epoch)")


def _check_trackers(cfg: Config) -> None:
    """A tracker named in --report-to must be installed (the trainer would fail after loading)."""
    import importlib.util

    missing = [t for t in cfg.report_to if t != "none" and importlib.util.find_spec(t) is None]
    if missing:
        raise UserError(f"--report-to {','.join(missing)}: not installed here (pip install {' '.join(missing)}), "
                        "or leave it out")


def _check_attention(cfg: Config) -> None:
    """flash_attention_2 runs only on GPUs with the flash-attn package; say so before loading anything."""
    import importlib.util

    import torch

    if cfg.attn_implementation == "flash_attention_2" and not (
            torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None):
        raise UserError("--attn-implementation flash_attention_2: needs a GPU and the flash-attn package "
                        "(pip install flash-attn); use sdpa here")


def _context_length(model_dir: str) -> int:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(vlm.model_source(model_dir)[0])
    text = getattr(config, "text_config", None) or config
    return int(getattr(text, "max_position_embeddings", 0) or 1 << 30)


def policy_dtype(cfg: Config, on_gpu: bool, deepspeed: bool) -> str:
    """The policy's weight dtype (see Config.dtype): float32 master weights unless they are frozen (LoRA)
    or DeepSpeed keeps its own float32 copy."""
    if not on_gpu:
        return "float32"
    if cfg.dtype != "auto":
        return cfg.dtype
    return "bfloat16" if cfg.bf16 and (cfg.lora_r or deepspeed) else "float32"


def _load_policy(cfg: Config) -> tuple[Any, Any]:
    """The model to train and the LoRA config for TRL (None when training all weights, or when an
    existing adapter is trained further)."""
    import torch

    dtype = policy_dtype(cfg, torch.cuda.is_available(), os.environ.get("ACCELERATE_USE_DEEPSPEED") == "true")
    base, adapter = vlm.model_source(cfg.model)
    if cfg.lora_r and adapter is not None:
        from peft import PeftModel

        say(f"update: training the existing LoRA adapter {adapter} further (its rank and targets win)")
        model = PeftModel.from_pretrained(vlm.load_model(base, dtype=dtype, attn_implementation=cfg.attn_implementation),
                                          str(adapter), is_trainable=True)
        return model, None
    model = vlm.load_model(cfg.model, dtype=dtype, attn_implementation=cfg.attn_implementation)
    if not cfg.lora_r:
        return model, None
    from peft import LoraConfig

    return model, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                             target_modules=list(cfg.lora_target_modules), task_type="CAUSAL_LM")


def _sampling_temperature(cfg: Config, input_dir: Path) -> float:
    """The temperature the trainer computes log-probabilities at: the one the completions were sampled
    (and their stored log-probabilities taken) at, so the ratio compares like with like."""
    if cfg.temperature is not None:
        return cfg.temperature
    table = ds.read_table(input_dir)
    if "temperature" not in table.column_names:
        return 1.0
    found = sorted({float(t) for t in table.column("temperature").to_pylist() if t is not None})
    if len(found) > 1:
        raise UserError(f"{input_dir}: rows were sampled at different temperatures ({', '.join(map(str, found))}); "
                        "pass --temperature to choose the one log-probabilities are computed at")
    if found and found[0] == 0.0:
        say("update: the rows were decoded greedily (temperature 0); log-probabilities are computed at 1.0")
    return found[0] if found and found[0] > 0.0 else 1.0


def _reference(cfg: Config) -> Any:
    """The KL term's reference model, or None where none is loaded: --beta 0, or LoRA over the reference
    itself (TRL then disables the adapters to get it)."""
    import torch

    reference = cfg.reference_model or cfg.model
    if not cfg.beta or (cfg.lora_r and _same_model(reference, vlm.model_source(cfg.model)[0])):
        return None
    dtype = "bfloat16" if cfg.bf16 and torch.cuda.is_available() else "float32"
    return vlm.load_model(reference, dtype=dtype, attn_implementation=cfg.attn_implementation)


def _same_model(a: str, b: str) -> bool:
    return Path(a).resolve() == Path(b).resolve() if Path(a).exists() and Path(b).exists() else a == b


def _grpo_options(cfg: Config, group_size: int, longest_completion: int, temperature: float) -> dict[str, Any]:
    options = {
        "num_generations": group_size, "max_completion_length": longest_completion,
        "per_device_train_batch_size": cfg.per_device_train_batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "loss_type": cfg.loss_type, "scale_rewards": cfg.scale_rewards, "beta": cfg.beta,
        "epsilon": cfg.epsilon, "epsilon_high": cfg.epsilon_high, "delta": cfg.delta,
        "importance_sampling_level": cfg.importance_sampling_level, "num_iterations": cfg.num_iterations,
        "off_policy_mask_threshold": cfg.off_policy_mask_threshold,
        "learning_rate": cfg.learning_rate, "lr_scheduler_type": cfg.lr_scheduler_type,
        "warmup_steps": cfg.warmup_ratio, "weight_decay": cfg.weight_decay, "max_grad_norm": cfg.max_grad_norm,
        "num_train_epochs": cfg.num_train_epochs, "max_steps": cfg.max_steps or -1, "seed": cfg.seed,
        "bf16": cfg.bf16, "save_steps": cfg.save_steps, "save_total_limit": cfg.checkpoints_to_keep,
        "entropy_coef": cfg.entropy_coef, "temperature": temperature,
        "report_to": [r for r in cfg.report_to if r != "none"] or "none",
        # Always given, under transformers 5's name: TRL's default is on (and under the deprecated name).
        "activation_checkpointing": cfg.gradient_checkpointing,
    }
    return options


def run_update(cfg: Config) -> Path:
    if cfg.input is None:
        raise UserError("update: --input is required (a scored rollout dataset)")
    ds.check_output(cfg.output, [cfg.input, Path(cfg.model)])
    with model_output.writing(cfg.output):
        return _update(cfg, cfg.input)


def _update(cfg: Config, input_dir: Path) -> Path:
    """Skip, resume or start the update into its output (this run the only writer), train, save."""
    state = outputs.prepare_output(cfg.output, cfg.result_fields(), cfg.overwrite)
    if state == "done":
        say(f"update: {cfg.output} already holds this update; skipping (pass --overwrite to redo)")
        return cfg.output
    processor, prepared, header = _checked_inputs(cfg, input_dir)
    model_output.write_manifest(cfg.output, header)
    checkpoint = model_output.last_checkpoint(cfg.output) if state == "resume" else None
    trainer = _trainer(cfg, processor, prepared, header, checkpoint)
    start = time.time()
    if checkpoint:
        say(f"update: resuming from {checkpoint}")
    trainer.train(resume_from_checkpoint=checkpoint)
    kind = outputs.save_model(trainer, cfg.model, cfg.output, cfg.merge_lora)
    seconds = round(time.time() - start, 3)
    if model_output.is_main_process():
        if not cfg.keep_checkpoints:
            shutil.rmtree(cfg.output / model_output.CHECKPOINTS, ignore_errors=True)
        model_output.write_manifest(cfg.output, header, complete=True, weights=kind, steps=trainer.state.global_step,
                               seconds=seconds, resumed_from=checkpoint,
                               finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        say(f"update: wrote {kind} weights to {cfg.output} after {trainer.state.global_step} step(s) "
            f"in {seconds:.1f} s")
    return cfg.output


def _checked_inputs(cfg: Config, input_dir: Path) -> tuple[Any, prepare.Prepared, dict[str, Any]]:
    """Every check that can fail on the user's input, then the tokenized groups and the manifest header."""
    _check_trackers(cfg)
    _check_attention(cfg)
    excluded = Excluded()
    groups = load_groups(input_dir, cfg.turns, cfg.reward_column, cfg.split or None, cfg.max_rows, cfg.group_by,
                         excluded)
    if excluded.rows:
        say(f"update: left out {sum(excluded.rows.values())} row(s) whose sample or judgement failed "
            f"({describe(excluded.rows)}: not the model's doing) and {len(excluded.groups)} group(s) they left "
            "with under two samples or fewer than the other groups")
    group_size = len(groups[0].samples)
    _check_batch(cfg, group_size)
    if cfg.off_policy_mask_threshold is not None:
        unknown = [s.row for g in groups for s in g.samples if s.logprobs is None]
        if unknown:
            raise UserError(f"--off-policy-mask-threshold needs sampling log-probabilities (response_logprobs and "
                            f"response_token_ids; rollout --logprobs), missing in {len(unknown)} row(s), e.g. "
                            f"row {unknown[0]}")
    known = sum(s.logprobs is not None for g in groups for s in g.samples)
    sampling_logprobs = cfg.off_policy_correction and known == sum(len(g.samples) for g in groups)
    if cfg.off_policy_correction and not sampling_logprobs:
        say(f"update: {'no' if not known else 'not all'} completions have sampling log-probabilities "
            "(rollout --logprobs); the ratio is taken against the policy at the start of each step, so clipping "
            "does not act on how far it moved since sampling")
    flat = zero_variance(groups)
    seen = Collapse(len(groups), len(identical_samples(groups)), len(flat))
    if seen.identical or seen.flat:
        say(f"update: {seen.line()}" + (f", e.g. {', '.join(flat[:3])}" if flat else "")
            + (f"; [yellow]warning[/]: {seen.advice()}" if seen.warn else ""))
    processor = vlm.load_processor(cfg.model, pixels=cfg.pixel_limits())
    max_length = cfg.max_length or _context_length(cfg.model)
    if cfg.object_credit is not None and not any(object_credit.penalty(m) is not None for g in groups
                                                 for s in g.samples for m in s.object_scores.values()):
        raise UserError(f"--object-credit: {input_dir} has no object penalties in object_scores (score writes them "
                        "per object); score this dataset with the current `metaspatial score`, or leave "
                        "--object-credit out")
    prepared = prepare.encode_groups(groups, processor, input_dir, max_length, cfg.skip_too_long,
                                     cfg.object_credit is not None, cfg.loss_tokens == "free")
    if prepared.too_long:
        say(f"update: skipped {len(prepared.too_long)} group(s) longer than {max_length} tokens")
    _check_group_count(cfg, len(prepared.groups), group_size)
    temperature = _sampling_temperature(cfg, input_dir)
    header = {"stage": outputs.STAGE, "config": cfg.manifest_dict(), "result_config": cfg.result_fields(),
              "inputs": [{"path": str(input_dir), "stage": (ds.read_manifest(input_dir) or {}).get("stage")}],
              "code_version": code_version(), "groups": len(prepared.groups), "group_size": group_size,
              "completions": len(prepared.groups) * group_size, "zero_variance_groups": len(flat),
              "identical_sample_groups": seen.identical,
              "failed_rows_left_out": dict(excluded.rows), "groups_left_short": len(excluded.groups),
              "skipped_too_long": len(prepared.too_long), "longest_sequence_tokens": prepared.longest,
              "reference_model": (cfg.reference_model or cfg.model) if cfg.beta else None,
              "old_logprobs": "sampling" if sampling_logprobs else "policy", "temperature": temperature,
              "object_credit": cfg.object_credit,
              "object_credit_entries": sum(len(c) for g in prepared.stored.values() for c in g.credit),
              "loss_tokens": cfg.loss_tokens,
              "loss_token_share": _loss_token_share(prepared),
              "complete": False}
    return processor, prepared, header


def _loss_token_share(prepared: prepare.Prepared) -> float:
    """The share of completion tokens the loss counts (1.0 unless --loss-tokens free)."""
    total = sum(len(c) for g in prepared.stored.values() for c in g.completion_ids)
    if not any(g.free for g in prepared.stored.values()):
        return 1.0
    kept = sum(b - a for g in prepared.stored.values() for spans in g.free for a, b in spans)
    return round(kept / total, 4) if total else 0.0


def _trainer(cfg: Config, processor: Any, prepared: prepare.Prepared, header: dict[str, Any],
             checkpoint: str | None) -> Any:
    """TRL's trainer over the prepared groups, logging to OUTPUT/metrics.jsonl."""
    group_size = header["group_size"]
    longest_completion = max(len(c) for g in prepared.stored.values() for c in g.completion_ids)
    # The config first: under DeepSpeed ZeRO-3 it makes from_pretrained load each weight as a shard.
    args = trl_bridge.grpo_config(cfg.output / model_output.CHECKPOINTS,
                                  _grpo_options(cfg, group_size, longest_completion, header["temperature"]))
    model, peft_config = _load_policy(cfg)
    metrics = model_output.MetricsLog(cfg.output, model_output.checkpoint_step(checkpoint))
    rollouts = trl_bridge.StoredRollouts(prepared.stored, group_size)
    callbacks = [trl_bridge.metrics_callback(metrics.write), model_output.checkpoint_schedule()]
    return trl_bridge.build_trainer(model, processor, prepare.train_dataset(prepared.groups), rollouts, args,
                                    peft_config, callbacks,
                                    reference=_reference(cfg), sampling_logprobs=header["old_logprobs"] == "sampling",
                                    object_credit=cfg.object_credit)
