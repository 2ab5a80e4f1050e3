"""`metaspatial make-model KIND DIR`: build a small model locally, so nothing needs a model hub.

The quickstart and the tests use it to get a real, loadable vision-language model on any machine.
"""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path

import typer

from .options import err_console, print_error


class Kind(str, Enum):
    tiny_qwen2_5_vl = "tiny-qwen2.5-vl"
    tiny_llava = "tiny-llava"
    random_qwen2_5_vl_3b = "random-qwen2.5-vl-3b"


def make_model(
    kind: Kind = typer.Argument(..., help="What to build. tiny-qwen2.5-vl: a random ~0.8 M-parameter "
                                "Qwen2.5-VL with a locally trained byte-level BPE tokenizer and processor. "
                                "tiny-llava: a random LLaVA (CLIP + Qwen2) with the same tokenizer. random-qwen2.5-vl-3b: "
                                "Qwen2.5-VL-3B-Instruct's shapes (public config, 3.75 B parameters, bfloat16, 7.5 GB) "
                                "with random weights and the same tokenizer, for GPU memory and speed checks."),
    out_dir: Path = typer.Argument(..., help="Directory to write the model to (created if missing)."),
    seed: int = typer.Option(0, help="Random seed of the weights and tokenizer corpus; same seed, same files."),
    overwrite: bool = typer.Option(False, help="Replace a model already in DIR."),
) -> None:
    """Build a random VLM locally (no model hub needed); load it with --model DIR."""
    if (out_dir / "config.json").exists() and not overwrite:
        print_error(f"{out_dir} already holds a model; pass --overwrite to replace it")
        raise typer.Exit(2)
    from stages.core.tiny_vlm import build_tiny_llava, build_tiny_vlm

    start = time.time()
    if kind is Kind.tiny_llava:
        build_tiny_llava(out_dir, seed=seed)
    else:
        build_tiny_vlm(out_dir, seed=seed, shapes="tiny" if kind is Kind.tiny_qwen2_5_vl else "qwen2.5-vl-3b")
    err_console.print(f"[green]make-model[/]: wrote {kind.value} to {out_dir} in {time.time() - start:.1f} s")


def register(app: typer.Typer) -> None:
    app.command("make-model", rich_help_panel="Tools")(make_model)
