"""Supervised warm-up of a small VLM on the reference layouts of synthetic rooms.

Supervised fine-tuning before RL is the usual start of an RL run, and the quickstart shows the three
models side by side (random, fine-tuned, fine-tuned + RL). This script fine-tunes the base model for
a few epochs on synthetic rooms of their own seed (never the training or evaluation rooms), with the
generator's reference layouts as answers, written with one decimal so answers stay short. Training
is TRL's `SFTTrainer` (loss on the answer tokens only), so it resumes from its checkpoints and runs
under `accelerate launch` like `update`, and its output follows the same conventions (`metrics.jsonl`,
`_manifest.json` marked complete at the end, `_checkpoints/` while it runs). It is deterministic for
a given seed and machine. On the quickstart's budget its own effect on the reward is small; the
README gives the measured numbers.

    metaspatial pretrain --base runs/quickstart/models/tiny --output runs/quickstart/models/pretrained
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, ClassVar

import typer
from pydantic import Field

from stages.core import model_output as mo
from stages.core import rows
from stages.core.columns import REFERENCE_LAYOUT

from .options import add_config_command, err_console

ANSWER_OPEN = "<think></think>\n<answer>"


class PretrainConfig(mo.ModelStageConfig):
    """Options of the warm-up; also the `pretrain:` section of a recipe (minus base and output)."""

    base: str = ""
    """The model to start from (a local directory, e.g. from `metaspatial make-model`)."""
    output: Path = Path("pretrained")
    """Where to write the fine-tuned model (complete when its _manifest.json says so)."""
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
    """AdamW learning rate (constant)."""
    batch_size: int = Field(default=8, ge=1)
    """Rooms per optimizer step (gradients accumulated one room at a time)."""
    decimals: int = Field(default=1, ge=0, le=4)
    """Decimals of the coordinates in the answers shown to the model."""

    RUN_FIELDS: ClassVar[tuple[str, ...]] = (*mo.ModelStageConfig.RUN_FIELDS, "base")
    """`base` is compared through the weights it names, not its path: a moved base may resume."""


STAGE = "pretrain"
ROOMS = "_rooms"
"""OUTPUT/_rooms: the synthetic prompt dataset the warm-up learns from (made once, kept for resume)."""


def answer_text(reference: dict[str, list[float]], decimals: int) -> str:
    """The answer in the format rollouts produce under guided decoding, coordinates rounded."""
    items = [{"new_object_id": oid, "x": round(p[0], decimals), "y": round(p[1], decimals),
              "z": round(p[2], decimals)} for oid, p in reference.items()]
    return f"{ANSWER_OPEN}{json.dumps(items)}</answer>"


def _rooms(cfg: PretrainConfig, args: Any) -> list[dict[str, Any]]:
    """The rooms: made by the main process first (the trainer's `main_process_first`), the others then
    find the dataset complete."""
    from stages import gen_prompts
    from stages.core import dataset as ds

    out = cfg.output / ROOMS
    with args.main_process_first(desc="pretrain rooms"):
        gen_prompts.run(gen_prompts.Config(source="synthetic", num_rooms=cfg.num_rooms, seed=cfg.seed,
                                           template=cfg.template, image_size=cfg.image_size, test_fraction=0.0,
                                           output=out))
    return [row for row in ds.read_rows(out) if row.get(REFERENCE_LAYOUT)]


def examples(processor: Any, cfg: PretrainConfig, args: Any) -> Any:
    """The rooms as a prompt-completion dataset with images, the shape TRL's SFTTrainer trains a VLM on:
    the prompt exactly as rollout builds it, the reference answer as the completion."""
    from datasets import Dataset

    from stages.core import vlm

    prompts, completions, images = [], [], []
    for row in _rooms(cfg, args):
        image = vlm.open_image(cfg.output / ROOMS, row["image"])
        prompts.append(vlm.chat_text(processor, vlm.build_messages(row["prompt"], image)))
        layout = rows.reference_layout(row.get(REFERENCE_LAYOUT), f"reference_layout of room {row.get('room_id')}")
        completions.append(answer_text(layout or {}, cfg.decimals) + processor.tokenizer.eos_token)
        images.append([image])
    return Dataset.from_dict({"prompt": prompts, "completion": completions, "images": images})


def _args(cfg: PretrainConfig) -> Any:
    """The trainer's options; made first, as they set up the processes of an `accelerate launch`."""
    import torch
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(cfg.output / mo.CHECKPOINTS), num_train_epochs=cfg.epochs, learning_rate=cfg.learning_rate,
        lr_scheduler_type="constant", weight_decay=0.01, max_grad_norm=0.0, per_device_train_batch_size=1,
        gradient_accumulation_steps=cfg.batch_size, seed=cfg.seed, data_seed=cfg.seed, logging_steps=1,
        save_strategy="epoch", save_total_limit=1, report_to="none", disable_tqdm=True, completion_only_loss=True,
        use_cpu=not torch.cuda.is_available(),
        bf16=False, fp16=False, activation_checkpointing=False,  # float32 weights, as the warm-up always trained
        max_length=None, dataset_kwargs={"skip_prepare_dataset": True}, remove_unused_columns=False)


def _trainer(cfg: PretrainConfig, args: Any, processor: Any, data: Any, metrics: mo.MetricsLog) -> Any:
    from transformers import PrinterCallback, TrainerCallback
    from trl import SFTTrainer

    from stages.core import vlm

    class Metrics(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
            if state.is_world_process_zero and logs and "loss" in logs:
                metrics.write({"step": state.global_step, "epoch": state.epoch, **logs})
                err_console.print(f"pretrain: step {state.global_step}/{state.max_steps} loss {logs['loss']:.4f}",
                                  highlight=False)

    model = vlm.load_model(cfg.base, dtype="float32").train()
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=processor, callbacks=[Metrics()])
    trainer.remove_callback(PrinterCallback)  # its raw dict per step would repeat the line above
    return trainer


def run(cfg: PretrainConfig) -> Path:
    from stages.core import dataset as ds
    from stages.core import vlm

    ds.check_output(cfg.output, [Path(cfg.base)])
    processor = vlm.load_processor(cfg.base, flag="--base")
    with mo.writing(cfg.output):
        return _pretrain(cfg, processor)


def _pretrain(cfg: PretrainConfig, processor: Any) -> Path:
    """Skip, resume or start the warm-up into its output (this run the only writer), train, save."""
    from stages.core.stage import code_version

    state = mo.prepare_output(cfg.output, STAGE, cfg.result_fields(), cfg.overwrite)
    if state == "done":
        err_console.print(f"pretrain: {cfg.output} already holds this warm-up; skipping (pass --overwrite to redo)")
        return cfg.output
    header = {"stage": STAGE, "config": cfg.manifest_dict(), "result_config": cfg.result_fields(),
              "inputs": [{"path": str(cfg.base), "role": "base model"}], "code_version": code_version(),
              "complete": False}
    mo.write_manifest(cfg.output, header)
    checkpoint = mo.last_checkpoint(cfg.output) if state == "resume" else None
    args = _args(cfg)
    data = examples(processor, cfg, args)
    trainer = _trainer(cfg, args, processor, data, mo.MetricsLog(cfg.output, mo.checkpoint_step(checkpoint)))
    start = time.time()
    if checkpoint:
        err_console.print(f"pretrain: resuming from {checkpoint}")
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(str(cfg.output))  # every process takes part (a sharded model is gathered)
    if mo.is_main_process():
        (cfg.output / "training_args.bin").unlink(missing_ok=True)  # a pickle of the trainer's options; not model
        mo.save_processor(processor, cfg.output)
        shutil.rmtree(cfg.output / mo.CHECKPOINTS, ignore_errors=True)
        losses = _epoch_losses(trainer.state.log_history)
        (cfg.output / "pretrain.json").write_text(json.dumps(
            {"config": cfg.model_dump(mode="json"), "rooms": len(data), "epoch_loss": losses,
             "seconds": round(time.time() - start, 1)}, indent=2) + "\n")
        mo.write_manifest(cfg.output, header, complete=True, weights="full", rooms=len(data),
                          steps=trainer.state.global_step, resumed_from=checkpoint, epoch_loss=losses,
                          seconds=round(time.time() - start, 3), finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        err_console.print(f"pretrain: wrote {cfg.output} ({len(data)} rooms, {cfg.epochs} epochs) "
                          f"in {time.time() - start:.1f} s")
    return cfg.output


def _epoch_losses(log_history: list[dict[str, Any]]) -> list[float]:
    """Mean logged loss of each epoch (one record per optimizer step), for pretrain.json."""
    by_epoch: dict[int, list[float]] = {}
    for record in log_history:
        if "loss" in record and "epoch" in record:
            by_epoch.setdefault(max(0, int(record["epoch"] - 1e-9)), []).append(float(record["loss"]))
    return [round(sum(v) / len(v), 4) for _, v in sorted(by_epoch.items())]


def register(app: typer.Typer) -> None:
    add_config_command(app, "pretrain", PretrainConfig, run,
                       "Fine-tune a small VLM on synthetic reference layouts (a supervised warm-up before RL).",
                       rich_help_panel="Tools")
