"""What a model-writing stage (update, pretrain) writes, and how it resumes: one base config and one
manifest code for both.

    OUTPUT/config.json, model.safetensors, ...   the weights (update: or a LoRA adapter naming its base)
    OUTPUT/tokenizer*, processor_config.json     the processor used, so OUTPUT loads on its own
    OUTPUT/metrics.jsonl                         one JSON record per optimizer step
    OUTPUT/_manifest.json                        stage, config, inputs, counts, timings; `complete` when done
    OUTPUT/_checkpoints/checkpoint-N/            trainer checkpoints while the stage runs (resume)
    OUTPUT/.lock-model                           the writer's lock while it runs (`stages.core.lock`)

Only the main process (rank 0) writes, and holds the lock; the others train.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from . import dataset as ds
from . import lock
from .errors import UserError

CHECKPOINTS = "_checkpoints"
METRICS = "metrics.jsonl"
LOCK = "model"
"""The writer lock's name, one for every model-writing stage: an update and a pretrain into one folder
exclude each other too."""


class ModelStageConfig(BaseModel):
    """The base of a model-writing stage's options: where it writes, whether it starts again, and which
    fields decide the trained weights (compared when resuming, as a dataset stage compares its settings)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_default=True)

    output: Path = Path("model")
    """Output model directory (Hugging Face format, safetensors) with metrics.jsonl and _manifest.json."""
    overwrite: bool = False
    """Start again even if --output holds a finished or interrupted run (default: resume or skip)."""

    RUN_FIELDS: ClassVar[tuple[str, ...]] = ("output", "overwrite")
    """Fields that do not change the trained model; an interrupted run may resume across them."""

    def result_fields(self) -> dict[str, Any]:
        """The fields that determine the trained weights (compared when resuming)."""
        return {k: v for k, v in self.manifest_dict().items() if k not in self.RUN_FIELDS}

    def manifest_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def writing(out: Path) -> Iterator[None]:
    """Hold `out`'s writer lock for the block, in the main process (the one that writes), as a dataset
    stage holds its part's: a second run into `out` stops with exit 2 naming this one, whatever its
    settings or `--overwrite`, and a dead run's lock is taken over. A folder the block leaves empty
    (the inputs failed their checks) is removed if the lock made it."""
    if not is_main_process():
        yield
        return
    made = not out.exists()
    try:
        with lock.hold(out, LOCK):
            yield
    finally:
        if made:
            with contextlib.suppress(OSError):  # not empty: the run wrote something
                out.rmdir()


def prepare_output(out: Path, stage: str, result_config: dict[str, Any], overwrite: bool) -> str:
    """Decide what to do with `out` (called under `writing`): 'done' (finished, same settings), 'resume'
    or 'fresh'."""
    manifest = ds.read_manifest(out) if out.exists() else None
    if overwrite or manifest is None:
        held = lock.lock_path(out, LOCK)
        contents = [p for p in out.iterdir() if p != held] if out.is_dir() else []
        if contents and manifest is None and not overwrite:
            raise UserError(f"{out}: exists and is not an {stage} output; choose another --output or pass "
                            "--overwrite")
        if overwrite and is_main_process():
            for path in contents:  # not the lock: the next run into `out` must still see it
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        return "fresh"
    if manifest.get("stage") != stage:
        raise UserError(f"{out}: holds a '{manifest.get('stage')}' output, not an {stage} output; choose another "
                        "--output or pass --overwrite")
    old = manifest.get("result_config", {})
    diff = sorted(k for k in set(old) | set(result_config) if old.get(k) != result_config.get(k))
    if diff:
        raise UserError(f"{out}: was written by {stage} with different settings ({', '.join(diff)}); "
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


def checkpoint_schedule() -> Any:
    """A TrainerCallback that keeps checkpoints to every `save_steps` steps. The Trainer also writes one
    when training ends (weights and optimizer state, about 16 bytes a parameter: some 130 GB for a 7B
    model), which the stage would delete moments later, after saving the model."""
    from transformers import TrainerCallback

    class EverySaveSteps(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if state.global_step >= state.max_steps and state.global_step % args.save_steps:
                control.should_save = False
            return control

    return EverySaveSteps()


def checkpoint_step(checkpoint: str | None) -> int | None:
    return int(Path(checkpoint).name.split("-")[1]) if checkpoint else None


def save_processor(processor: Any, out: Path) -> None:
    """The processor itself (tokenizer, chat template, image processor with its pixel limits); the image
    processor also on its own (preprocessor_config.json), for readers that look only there."""
    processor.save_pretrained(out)
    if getattr(processor, "image_processor", None) is not None:
        processor.image_processor.save_pretrained(out)


def write_manifest(out: Path, header: dict[str, Any], **fields: Any) -> None:
    if is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        manifest = {**(ds.read_manifest(out) or {}), **header, **fields,
                    "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        ds.write_json(out / ds.MANIFEST, manifest)
