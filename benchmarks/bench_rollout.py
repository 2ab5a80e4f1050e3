"""Tokens/s of rollout's transformers backend against a bare `model.generate` loop, same run.

Both sample the same prompts (gen-prompts on examples/rooms, with their room images) with the same
model, batch size, sampling settings and max new tokens. The baseline is the least a caller must
do: apply the chat template, run the processor, call `generate`. The backend adds what the stage
needs: length-sorted batches, per-batch seeding, EOS trimming, decoding, per-sample records.
Runs alternate (baseline, backend, ...) so machine load hits both alike; the best of each is kept.

    python benchmarks/bench_rollout.py [--prompts 8] [--n 2] [--max-new-tokens 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]


def build_inputs(work: Path, num_prompts: int) -> tuple[Path, Path]:
    model, prompts = work / "tiny", work / "prompts"
    cli = [sys.executable, "-m", "metaspatial_cli"]
    subprocess.run([*cli, "make-model", "tiny-qwen2.5-vl", str(model)], check=True, cwd=REPO, capture_output=True)
    subprocess.run([*cli, "gen-prompts", "--source", "jsonl", "--input", str(REPO / "examples/rooms/rooms.jsonl"),
                    "--output", str(prompts), "--image-size", "128", "--max-rows", str(num_prompts)],
                   check=True, cwd=REPO, capture_output=True)
    return model, prompts


def bare_generate(model, processor, chats, n: int, batch_size: int, max_new_tokens: int) -> int:
    """The baseline: batches in dataset order, `generate`, count new non-pad tokens."""
    import torch
    from transformers import GenerationConfig

    from stages.core import vlm

    tok = processor.tokenizer
    config = GenerationConfig(do_sample=True, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=max_new_tokens,
                              eos_token_id=[tok.eos_token_id], pad_token_id=tok.pad_token_id)
    sequences = [chat for chat in chats for _ in range(n)]
    tokens = 0
    for start in range(0, len(sequences), batch_size):
        batch = sequences[start:start + batch_size]
        inputs = vlm.encode_chats(processor, batch)
        torch.manual_seed(start)
        with torch.inference_mode():
            out = model.generate(**inputs, generation_config=config)
        new = out[:, inputs["input_ids"].shape[1]:]
        tokens += int((new != tok.pad_token_id).sum())
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--n", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import pandas as pd

    from stages import rollout
    from stages.core import vlm
    from stages.rollout import samples
    from stages.rollout.backends import Request
    from stages.rollout.backends.hf import TransformersBackend

    with tempfile.TemporaryDirectory() as tmp:
        model_dir, prompts = build_inputs(Path(tmp), args.prompts)
        rows = pd.read_parquet(prompts).to_dict("records")
        cfg = rollout.Config(input=prompts, output=Path(tmp) / "out", model=str(model_dir), n=args.n,
                             batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
        backend = TransformersBackend(cfg)
        chats = [samples.with_images(vlm.build_messages(r["prompt"], r["image"]), prompts) for r in rows]
        requests = [Request(messages=c, n=args.n, seed=i) for i, c in enumerate(chats)]
        best = {"bare model.generate": 0.0, "rollout backend": 0.0}
        for _ in range(args.repeats):
            start = time.perf_counter()
            tokens = bare_generate(backend.model, backend.processor, chats, args.n, args.batch_size,
                                   args.max_new_tokens)
            best["bare model.generate"] = max(best["bare model.generate"], tokens / (time.perf_counter() - start))
            start = time.perf_counter()
            done = backend.generate(requests)
            tokens = sum(c.num_tokens or 0 for group in done for c in group)
            best["rollout backend"] = max(best["rollout backend"], tokens / (time.perf_counter() - start))
    base = best["bare model.generate"]
    print(f"rollout transformers backend vs bare model.generate: {args.prompts} prompts x n={args.n}, "
          f"batch {args.batch_size}, {args.max_new_tokens} new tokens, best of {args.repeats}")
    for name, rate in best.items():
        print(f"  {name:22s} {rate:9.1f} tokens/s   ratio {rate / base:5.3f}")
    print(f"  overhead: {100 * (1 - best['rollout backend'] / base):+.1f}% (target < 10%)")


if __name__ == "__main__":
    main()
