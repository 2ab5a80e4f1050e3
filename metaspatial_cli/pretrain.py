"""Supervised warm-up of a small VLM on the reference layouts of synthetic rooms.

Supervised fine-tuning before RL is the usual start of an RL run, and the quickstart shows the three
models side by side (random, fine-tuned, fine-tuned + RL). This script fine-tunes the base model for
a few epochs on synthetic rooms of their own seed (never the training or evaluation rooms), with the
generator's reference layouts as answers, written with one decimal so answers stay short. It is
deterministic for a given seed and machine. On the quickstart's budget its own effect on the reward
is small; the README gives the measured numbers.

    metaspatial pretrain --base runs/quickstart/models/tiny --output runs/quickstart/models/pretrained
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel, ConfigDict, Field

from stages.core import rows
from stages.core.columns import REFERENCE_LAYOUT

from .options import add_config_command, err_console

ANSWER_OPEN = "<think></think>\n<answer>"


class PretrainConfig(BaseModel):
    """Options of the warm-up; also the `pretrain:` section of a recipe (minus base and output)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    base: str = ""
    """The model to start from (a local directory, e.g. from `metaspatial make-model`)."""
    output: Path = Path("pretrained")
    """Where to write the fine-tuned model (written to a temporary folder, then renamed into place)."""
    num_rooms: int = Field(default=64, ge=1)
    """Synthetic rooms to learn from."""
    seed: int = 100
    """Seed of those rooms and of the shuffling; keep it apart from the seeds of training and eval rooms."""
    template: str = "default"
    """Prompt template (as gen-prompts --template): use the one the recipe's rollouts use."""
    image_size: int = Field(default=64, ge=64)
    """Side of the empty-room image, in pixels."""
    epochs: int = Field(default=3, ge=1)
    """Passes over the rooms."""
    learning_rate: float = Field(default=3e-3, gt=0)
    """AdamW learning rate."""
    batch_size: int = Field(default=8, ge=1)
    """Rooms per optimizer step (gradients accumulated one room at a time)."""
    decimals: int = Field(default=1, ge=0, le=4)
    """Decimals of the coordinates in the answers shown to the model."""


def answer_text(reference: dict[str, list[float]], decimals: int) -> str:
    """The answer in the format rollouts produce under guided decoding, coordinates rounded."""
    items = [{"new_object_id": oid, "x": round(p[0], decimals), "y": round(p[1], decimals),
              "z": round(p[2], decimals)} for oid, p in reference.items()]
    return f"{ANSWER_OPEN}{json.dumps(items)}</answer>"


def _rooms(cfg: PretrainConfig, workdir: Path) -> list[dict[str, Any]]:
    from stages import gen_prompts
    from stages.core import dataset as ds

    out = workdir / "prompts"
    gen_prompts.run(gen_prompts.Config(source="synthetic", num_rooms=cfg.num_rooms, seed=cfg.seed,
                                       template=cfg.template, image_size=cfg.image_size, test_fraction=0.0,
                                       output=out))
    return [dict(r, image=str(out / r["image"])) for r in ds.read_rows(out) if r.get("reference_layout")]


def _example(processor: Any, row: dict[str, Any], decimals: int) -> dict[str, Any]:
    """Token ids of prompt + answer, with the prompt's tokens masked out of the loss."""
    from stages.core import vlm

    image = vlm.open_image(None, row["image"])
    messages = vlm.build_messages(row["prompt"], image)
    prompt = vlm.chat_text(processor, messages)
    layout = rows.reference_layout(row.get(REFERENCE_LAYOUT), f"reference_layout of room {row.get('room_id')}")
    answer = answer_text(layout or {}, decimals) + processor.tokenizer.eos_token
    prompt_len = processor(text=[prompt], images=[image], return_tensors="pt")["input_ids"].shape[1]
    batch = processor(text=[prompt + answer], images=[image], return_tensors="pt")
    labels = batch["input_ids"].clone()
    labels[:, :prompt_len] = -100
    return {**batch, "labels": labels}


def run(cfg: PretrainConfig) -> Path:
    import torch

    from stages.core import dataset as ds
    from stages.core import vlm
    from stages.core.console import Meter

    ds.check_output(cfg.output, [Path(cfg.base)])
    torch.manual_seed(cfg.seed)
    start = time.time()
    cfg.output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cfg.output.parent, prefix=f".{cfg.output.name}.tmp-") as tmp:
        processor = vlm.load_processor(cfg.base, flag="--base")
        examples = [_example(processor, r, cfg.decimals) for r in _rooms(cfg, Path(tmp))]
        model = vlm.load_model(cfg.base, dtype="float32").train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate)
        order = random.Random(cfg.seed)
        losses = []
        meter = Meter("pretrain", cfg.epochs * len(examples), "rooms", console=err_console)
        for epoch in range(1, cfg.epochs + 1):
            order.shuffle(examples)
            total = 0.0
            for i, example in enumerate(examples, start=1):
                loss = model(**example).loss
                (loss / cfg.batch_size).backward()
                total += loss.item()
                meter.add(1, int(example["input_ids"].numel()))
                if i % cfg.batch_size == 0 or i == len(examples):
                    optimizer.step()
                    optimizer.zero_grad()
            losses.append(round(total / len(examples), 4))
            err_console.print(f"pretrain: epoch {epoch}/{cfg.epochs} mean loss {losses[-1]:.4f}")
        staged = Path(tmp) / "model"
        shutil.copytree(cfg.base, staged, ignore=shutil.ignore_patterns("*.safetensors", "_manifest.json"))
        model.save_pretrained(staged)
        (staged / "pretrain.json").write_text(json.dumps(
            {"config": cfg.model_dump(mode="json"), "rooms": len(examples), "epoch_loss": losses,
             "seconds": round(time.time() - start, 1)}, indent=2) + "\n")
        if cfg.output.exists():
            shutil.rmtree(cfg.output)
        staged.rename(cfg.output)
    err_console.print(f"pretrain: wrote {cfg.output} ({len(examples)} rooms, {cfg.epochs} epochs) "
                      f"in {time.time() - start:.1f} s")
    return cfg.output


def register(app: typer.Typer) -> None:
    add_config_command(app, "pretrain", PretrainConfig, run,
                       "Fine-tune a small VLM on synthetic reference layouts (a supervised warm-up before RL).",
                       rich_help_panel="Tools")
