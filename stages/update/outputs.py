"""The update's model directory: the saved weights (full, merged or a LoRA adapter naming its base).
Its layout, resume and manifest are those of every model-writing stage (`stages.core.model_output`).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from stages.core import model_output, vlm
from stages.core.model_output import save_processor

STAGE = "update"


def prepare_output(out: Path, result_config: dict[str, Any], overwrite: bool) -> str:
    """'done', 'resume' or 'fresh' for an update output (`model_output.prepare_output`)."""
    return model_output.prepare_output(out, STAGE, result_config, overwrite)


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


