"""Benchmark of `update`: tokens/s, peak memory, and where an optimizer step's time goes.

    python benchmarks/bench_update.py                      # tiny model (1.6 M parameters)
    python benchmarks/bench_update.py --hidden 512 --layers 8   # a wider text tower, same tokenizer

Runs the real `update` (library call) on a synthetic scored dataset and times each optimizer step,
split into the model's forward passes, backward passes, the optimizer, and everything else: data
loading, the stored-rollout glue, TRL's batch preparation (the processor re-reading images for
pixel values) and logging. The "outside forward/backward" share is (step - forward - backward -
optimizer) / step; the project's target is under 10% for real model sizes. The first steps are
warm-up and not counted. Prints one table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_update_data import RESPONSES, scored_rows, write_dataset  # noqa: E402

from stages import update  # noqa: E402
from stages.core import vlm  # noqa: E402
from stages.core.tiny_vlm import build_tiny_vlm  # noqa: E402
from stages.update import trl_bridge  # noqa: E402


class StepTimer:
    """Wall time of every optimizer step and of the forward, backward and optimizer work inside it."""

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []
        self.current = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}
        self.marks: dict[str, float] = {}

    def instrument(self, trainer) -> None:
        from transformers import TrainerCallback

        timer = self
        model = trainer.model
        model.register_forward_pre_hook(lambda m, a: timer.marks.__setitem__("forward", time.perf_counter()))
        model.register_forward_hook(lambda m, a, o: timer.add("forward"))
        backward = trainer.accelerator.backward

        def timed_backward(loss, **kwargs):
            start = time.perf_counter()
            backward(loss, **kwargs)
            timer.current["backward"] += time.perf_counter() - start

        trainer.accelerator.backward = timed_backward

        class Marks(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                timer.current = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}
                timer.marks["step"] = time.perf_counter()

            def on_pre_optimizer_step(self, args, state, control, **kw):
                timer.marks["optimizer"] = time.perf_counter()

            def on_optimizer_step(self, args, state, control, **kw):
                timer.add("optimizer")

            def on_step_end(self, args, state, control, **kw):
                timer.steps.append({**timer.current, "step": time.perf_counter() - timer.marks["step"]})

        trainer.add_callback(Marks())

    def add(self, name: str) -> None:
        self.current[name] += time.perf_counter() - self.marks[name]


def wider_model(tiny: Path, out: Path, hidden: int, layers: int) -> Path:
    """The tiny model's tokenizer and vision tower with a wider, deeper text tower (random weights)."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    config = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny).config
    text = config.text_config
    text.hidden_size, text.intermediate_size, text.num_hidden_layers = hidden, 4 * hidden, layers
    text.num_attention_heads, text.num_key_value_heads = hidden // 64, max(1, hidden // 256)
    text.layer_types = ["full_attention"] * layers
    text.rope_parameters = {**text.rope_parameters, "mrope_section": [8, 12, 12]}  # head_dim 64
    config.vision_config.out_hidden_size = hidden
    torch.manual_seed(0)
    Qwen2_5_VLForConditionalGeneration(config).save_pretrained(out)
    for name in processor_files(tiny):
        (out / name).write_bytes((tiny / name).read_bytes())
    return out


def processor_files(model_dir: Path) -> list[str]:
    return [p.name for p in model_dir.iterdir() if p.suffix in (".json", ".jinja") and p.name != "config.json"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=0, help="text tower width (0 = the tiny model's 128)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--lora-r", type=int, default=0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-update-"))
    model = build_tiny_vlm(work / "tiny", seed=0)
    if args.hidden:
        model = wider_model(model, work / "wide", args.hidden, args.layers)
    processor = vlm.load_processor(model)
    long_responses = [" ".join([r] * 3) for r in RESPONSES]  # ~100-150 tokens each
    rows = scored_rows(processor.tokenizer, work / "scores", args.groups, args.group_size,
                       rewards=[[float((g * s) % 3) for s in range(args.group_size)] for g in range(args.groups)],
                       responses=long_responses)
    write_dataset(work / "scores", rows)

    timer = StepTimer()
    build = trl_bridge.build_trainer

    def instrumented(*a, **kw):
        trainer = build(*a, **kw)
        timer.instrument(trainer)
        return trainer

    trl_bridge.build_trainer = instrumented
    start = time.perf_counter()
    out = update.run(update.Config(input=work / "scores", output=work / "model", model=str(model),
                                   max_steps=args.steps + args.warmup, per_device_train_batch_size=args.group_size,
                                   lora_r=args.lora_r, learning_rate=1e-5))
    total = time.perf_counter() - start
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    counted = timer.steps[args.warmup:]
    tokens = metrics[-1]["num_tokens"] - metrics[args.warmup - 1]["num_tokens"] if args.warmup else \
        metrics[-1]["num_tokens"]
    seconds = {k: sum(s[k] for s in counted) for k in ("step", "forward", "backward", "optimizer")}
    outside = seconds["step"] - seconds["forward"] - seconds["backward"] - seconds["optimizer"]
    params = sum(p.numel() for p in vlm.load_model(model).parameters())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"update benchmark: {params / 1e6:.1f} M parameters, {args.groups} groups x {args.group_size}, "
          f"batch {args.group_size}, lora_r {args.lora_r}, {len(counted)} timed steps "
          f"(+{args.warmup} warm-up), torch threads {os.environ['OMP_NUM_THREADS']}")
    print(f"  tokens/s (prompt + completion)     {tokens / seconds['step']:10.0f}")
    print(f"  seconds per optimizer step         {seconds['step'] / len(counted):10.3f}")
    for name in ("forward", "backward", "optimizer"):
        print(f"  share in {name:<26}{seconds[name] / seconds['step']:10.1%}")
    print(f"  share outside forward/backward/opt {outside / seconds['step']:10.1%}")
    print(f"  peak RSS (whole process)           {peak_mb:10.0f} MB")
    print(f"  whole run incl. loading            {total:10.1f} s")


if __name__ == "__main__":
    main()
