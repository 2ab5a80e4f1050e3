"""The output model directory: its state across runs, metrics.jsonl, the saved weights, the manifest.

    OUTPUT/config.json, model.safetensors, ...   full weights (or with LoRA: adapter_config.json +
                                                 adapter_model.safetensors, naming the base model)
    OUTPUT/tokenizer*, processor_config.json     the processor the update used, so rollout loads OUTPUT alone
    OUTPUT/metrics.jsonl                         one JSON record per optimizer step
    OUTPUT/_manifest.json                        config, input, counts, timings; `complete` when done
    OUTPUT/_checkpoints/checkpoint-N/            TRL checkpoints while the update runs (resume)

Only the main process (rank 0) writes; the others train.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from stages.core import dataset as ds
from stages.core import vlm
from stages.core.errors import UserError

CHECKPOINTS = "_checkpoints"
METRICS = "metrics.jsonl"
STAGE = "update"


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def prepare_output(out: Path, result_config: dict[str, Any], overwrite: bool) -> str:
    """Decide what to do with `out`: 'done' (finished, same settings), 'resume' or 'fresh'."""
    manifest = ds.read_manifest(out) if out.exists() else None
    if overwrite or manifest is None:
        if out.exists() and any(out.iterdir()) and manifest is None and not overwrite:
            raise UserError(f"{out}: exists and is not an update output; choose another --output or pass "
                            "--overwrite")
        if overwrite and out.exists() and is_main_process():
            shutil.rmtree(out)
        return "fresh"
    if manifest.get("stage") != STAGE:
        raise UserError(f"{out}: holds a '{manifest.get('stage')}' output, not an update; choose another "
                        "--output or pass --overwrite")
    old = manifest.get("result_config", {})
    diff = sorted(k for k in set(old) | set(result_config) if old.get(k) != result_config.get(k))
    if diff:
        raise UserError(f"{out}: was written by an update with different settings ({', '.join(diff)}); "
                        "pass --overwrite or choose another --output")
    return "done" if manifest.get("complete") else "resume"


def last_checkpoint(out: Path) -> str | None:
    """The newest complete TRL checkpoint under OUTPUT/_checkpoints, if any."""
    root = out / CHECKPOINTS
    steps = sorted((int(p.name.split("-")[1]), p) for p in root.glob("checkpoint-*")
                   if p.name.split("-")[1].isdigit() and (p / "trainer_state.json").exists()) if root.is_dir() else []
    return str(steps[-1][1]) if steps else None


class MetricsLog:
    """Appends one JSON record a line to OUTPUT/metrics.jsonl. On resume, the records of steps after
    the checkpoint are dropped: those steps are trained (and logged) again."""

    def __init__(self, out: Path, resume_step: int | None):
        self.path = out / METRICS
        if not is_main_process():
            return
        if resume_step is None or not self.path.exists():
            self.path.unlink(missing_ok=True)
            return
        kept = [line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= resume_step]
        self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record, default=float) + "\n")


def checkpoint_step(checkpoint: str | None) -> int | None:
    return int(Path(checkpoint).name.split("-")[1]) if checkpoint else None


def save_model(trainer: Any, source_model: str, out: Path, merge_lora: bool) -> str:
    """Write the trained weights as safetensors (an adapter, or merged/full weights) plus the processor
    the update used, so OUTPUT loads on its own whatever `--model` was (a hub name included). Returns
    what was written: 'full', 'merged' or 'adapter'."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    sharded = trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled
    # Under FSDP / ZeRO-3 each process holds a shard: gather the whole state (every process takes part).
    state = trainer.accelerator.get_state_dict(trainer.model) if sharded else None
    if not trainer.is_world_process_zero():
        return ""
    kind = "full"
    if hasattr(model, "peft_config"):
        kind = "merged" if merge_lora else "adapter"
    if kind == "merged":
        _save_merged(model, state, source_model, out)
    else:
        model.save_pretrained(out, state_dict=state, safe_serialization=True)
    if kind == "adapter":
        _point_adapter_at_base(out, source_model)
    save_processor(trainer.processing_class, out)
    return kind


def save_processor(processor: Any, out: Path) -> None:
    """The processor itself (tokenizer, chat template, image processor with its pixel limits); the image
    processor also on its own (preprocessor_config.json), for readers that look only there."""
    processor.save_pretrained(out)
    if getattr(processor, "image_processor", None) is not None:
        processor.image_processor.save_pretrained(out)


def _save_merged(model: Any, state: dict[str, Any] | None, source_model: str, out: Path) -> None:
    """Merged weights from the gathered adapter: merging a sharded model in place would merge shards,
    so the adapter is written first and merged into a fresh copy of the base."""
    with tempfile.TemporaryDirectory(dir=out, prefix="_adapter-") as tmp:
        model.save_pretrained(tmp, state_dict=state, safe_serialization=True)
        _point_adapter_at_base(Path(tmp), source_model)
        vlm.load_model(tmp, dtype="auto", merge_adapter=True).save_pretrained(out, safe_serialization=True)


def _point_adapter_at_base(out: Path, source_model: str) -> None:
    """Make the adapter name the base model as a resolvable path (absolute for local directories)."""
    base, _ = vlm.model_source(source_model)
    base = str(Path(base).resolve()) if Path(base).is_dir() else base
    path = out / vlm.ADAPTER_CONFIG
    config = json.loads(path.read_text())
    config["base_model_name_or_path"] = base
    path.write_text(json.dumps(config, indent=2) + "\n")


def write_manifest(out: Path, header: dict[str, Any], **fields: Any) -> None:
    if is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        manifest = {**(ds.read_manifest(out) or {}), **header, **fields,
                    "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        ds.write_json(out / ds.MANIFEST, manifest)
