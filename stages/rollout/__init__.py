"""Sample layouts from a vision-language model (transformers, vLLM or an OpenAI-compatible API).

Reads a prompt dataset (turn 1) or the scored dataset of turn k (turn k+1) and writes one row per
sample: the input row's columns, the response and its tokens, and the ids that tie samples into
groups (same prompt) and trajectories (same sample across turns).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

import pyarrow as pa
from pydantic import Field, model_validator
from rich.markup import escape

from stages.core import dataset as ds
from stages.core import rows as row_codec
from stages.core import vlm
from stages.core.columns import SCENE_COLUMNS, SYSTEM_PROMPT
from stages.core.config import StageConfig
from stages.core.console import Meter
from stages.core.errors import UserError
from stages.core.stage import Context, Stage, console, run_stage

from . import samples
from .backends import Completion, Request, make_backend  # backends import their ML libraries lazily
from .guided import row_grammar


class Config(StageConfig, vlm.PixelLimits):
    model: str
    """Model: a local directory (e.g. from `metaspatial make-model` or `update`, LoRA adapters too), a
    Hugging Face hub name, or for --backend openai the served model's name."""
    backend: Literal["transformers", "vllm", "openai"] = "transformers"
    """Sampling engine: transformers (CPU/GPU), vllm (offline engine) or openai (any compatible server)."""
    turn: int = Field(default=1, ge=1)
    """Turn to sample. 1 reads prompts; k+1 reads the scored dataset of turn k and refines each trajectory."""
    n: int | None = Field(default=None, ge=1)
    """Samples per input row (default: 4 for turn 1, 1 for later turns; more than 1 branches trajectories)."""
    temperature: float = Field(default=1.0, ge=0.0)
    """Sampling temperature; 0 decodes greedily."""
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    """Nucleus sampling: keep the smallest token set with this much probability."""
    max_new_tokens: int = Field(default=1024, ge=1)
    """Maximum tokens per response; longer responses stop with finish_reason 'length'."""
    seed: int = 0
    """Random seed; the same seed and settings sample the same responses (transformers, vllm)."""
    send_seed: bool = True
    """openai: send each request's seed. --no-send-seed for servers that fail on seeded requests
    (vLLM's CPU server crashes on a seeded prompt processed in more than one step)."""
    images: bool = True
    """Show the room image (later turns: the previous render) in the prompt. --no-images sends text
    only, for text-only models, which refuse image content; the output's image column is then empty."""
    logprobs: bool = False
    """Record each response token's log-probability (column response_logprobs)."""
    guided: bool = False
    """Constrain responses to <think>free text</think> then <answer>the row's layout JSON</answer>: every
    object exactly once, every centre inside the room."""
    guided_think_chars: int = Field(default=1500, ge=0)
    """With --guided: the most characters of reasoning before the answer is forced."""
    followup: Literal["feedback", "paper"] = "feedback"
    """Turn 2+: the prompt shows the task with the previous answer, its reward and structured feedback
    (feedback), or the task with the previous full response and its reward only (paper: MetaSpatial's form)."""
    render_view: str = "perspective"
    """Turn 2+: which render of the previous layout the prompt shows (input column render_<view>)."""
    batch_size: int = Field(default=16, ge=1)
    """transformers: sequences generated together (sorted by prompt length)."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """transformers/vllm: weight dtype (auto: the checkpoint's)."""
    device: str | None = None
    """transformers: torch device (default: cuda if available, else cpu)."""
    tensor_parallel_size: int = Field(default=1, ge=1)
    """vllm: GPUs the model is split over. Data parallel = one process per replica: --num-shards/--shard-index."""
    gpu_memory_utilization: float = Field(default=0.9, gt=0.0, le=1.0)
    """vllm: share of each GPU's memory the engine may use."""
    max_model_len: int | None = Field(default=None, ge=1)
    """vllm: context length to reserve (default: the model's)."""
    enforce_eager: bool = False
    """vllm: skip CUDA graphs / torch.compile (faster start, slower sampling)."""
    base_url: str | None = None
    """openai: server URL, e.g. http://127.0.0.1:8000/v1 (default: $OPENAI_BASE_URL, else OpenAI)."""
    api_key_env: str = "OPENAI_API_KEY"
    """openai: name of the environment variable holding the API key (keys are never passed as flags)."""
    concurrency: int = Field(default=8, ge=1)
    """openai: requests in flight at once."""
    timeout: float = Field(default=120.0, gt=0.0)
    """openai: seconds before a request is abandoned (then retried)."""
    max_retries: int = Field(default=3, ge=0)
    """openai: retries of a failed request (with backoff) before the sample is recorded as an error."""

    RUN_FIELDS: ClassVar[tuple[str, ...]] = StageConfig.RUN_FIELDS + (
        "device", "concurrency", "timeout", "max_retries", "api_key_env", "gpu_memory_utilization")

    @model_validator(mode="after")
    def _backend_options(self) -> Config:
        if self.backend != "vllm" and self.tensor_parallel_size > 1:
            raise ValueError("--tensor-parallel-size applies to --backend vllm only (data parallel: --num-shards)")
        if self.backend == "openai" and self.pixel_limits():
            raise ValueError("--min-pixels/--max-pixels: a served model resizes images itself; set the limits on "
                             "the server (vllm serve --mm-processor-kwargs)")
        if self.backend == "openai" and self.logprobs:
            raise ValueError("--logprobs needs token ids, which chat APIs do not return; use transformers or vllm")
        return self


COLUMNS = [
    pa.field("sample_id", pa.string()), pa.field("group_id", pa.string()), pa.field("sample_index", pa.int64()),
    pa.field("turn", pa.int64()), pa.field("trajectory_id", pa.string()), pa.field("response", pa.string()),
    pa.field("model", pa.string()), pa.field("backend", pa.string()), pa.field("num_response_tokens", pa.int64()),
    pa.field("finish_reason", pa.string()), pa.field("history", pa.string()),
    pa.field("prompt_image", pa.string()), pa.field("messages", pa.string()),
    pa.field("num_prompt_tokens", pa.int64()), pa.field("response_token_ids", pa.list_(pa.int64())),
    pa.field("response_logprobs", pa.list_(pa.float32())), pa.field("temperature", pa.float64()),
    pa.field("sample_error", pa.string()),
]
SHOWN = 5


def _plan(row: dict[str, Any], cfg: Config) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict]]:
    """(sample identities, chat with image refs, history) for one input row."""
    history = samples.history_of(row, cfg)
    messages = vlm.build_messages(row["prompt"], samples.room_image(row, cfg), history,
                                  row_codec.system_prompt(row.get(SYSTEM_PROMPT)))
    return samples.sample_ids(row, cfg), messages, history


def _prompt_columns(messages: list[dict[str, Any]], history: list[dict[str, Any]]) -> dict[str, Any]:
    images = vlm.message_images(messages)
    return {"history": json.dumps(history, ensure_ascii=False), "prompt_image": images[0] if images else None,
            "messages": samples.stored_messages(messages)}


def _sample_columns(c: Completion, cfg: Config) -> dict[str, Any]:
    return {"response": c.text, "model": cfg.model, "backend": cfg.backend, "num_response_tokens": c.num_tokens,
            "finish_reason": c.finish_reason, "num_prompt_tokens": c.num_prompt_tokens,
            "response_token_ids": c.token_ids or None, "response_logprobs": c.logprobs,
            "temperature": cfg.temperature, "sample_error": c.error if c.finish_reason == "error" else None}


def make_processor(cfg: Config, ctx: Context):
    backend = make_backend(cfg)

    def process(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        start = time.time()
        plans = [_plan(row, cfg) for row in rows]
        requests = [Request(messages=samples.with_images(messages, ctx.input_dir), n=len(ids),
                            seed=samples.request_seed(cfg.seed, ids[0]["sample_id"]),
                            grammar=row_grammar(row, cfg.guided_think_chars, "row") if cfg.guided else None)
                    for row, (ids, messages, _) in zip(rows, plans, strict=True)]
        total = sum(r.n for r in requests)
        meter = Meter("rollout", total, "samples", every=5.0, console=console)

        def progress(done: int, tokens: int) -> None:  # the bar counts prompts: a batch moves it by its share
            ctx.advance(done * len(rows) / total)
            meter.add(done, tokens)

        results = backend.generate(requests, progress=progress)
        out: list[dict[str, Any]] = []
        for row, (ids, messages, history), completions in zip(rows, plans, results, strict=True):
            dropped = samples.dropped_columns(list(row))
            shared = {**{k: v for k, v in row.items() if k not in dropped}, **_prompt_columns(messages, history)}
            if not cfg.images and "image" in shared:
                shared["image"] = None  # what the sample saw; update rebuilds its prompt from this
            out.extend({**shared, **ident, **_sample_columns(c, cfg)}
                       for ident, c in zip(ids, completions, strict=True))
        _check_failures(out, getattr(backend, "base_url", None))
        _link_shown_images(out, ctx)
        _report(out, time.time() - start)
        return out

    return process


def _check_failures(rows: list[dict[str, Any]], server: str | None) -> None:
    """Samples the server could not give (finish_reason `error`) are kept and marked, and left out of
    training and eval means downstream; name them and the server's last error. A chunk in which
    every request failed stops the run (a wrong URL, key or model, or a server that went away)."""
    failed = [r for r in rows if r["finish_reason"] == "error"]
    if not failed:
        return
    ids = ", ".join(str(r["sample_id"]) for r in failed[:SHOWN]) + (f", ... ({len(failed)} in all)"
                                                                     if len(failed) > SHOWN else "")
    error = failed[-1]["sample_error"]
    if len(failed) == len(rows):
        raise UserError(f"rollout: every request of this chunk to {server or 'the server'} failed "
                        f"(samples {ids}); last error: {error}")
    console.print(f"[yellow]rollout[/]: {len(failed)} of {len(rows)} samples failed and are recorded with "
                  f"finish_reason 'error' (column sample_error; left out of training): {escape(ids)}; last error: "
                  f"{escape(error or '')}",
                  highlight=False)


def _link_shown_images(rows: list[dict[str, Any]], ctx: Context) -> None:
    """The renders a follow-up prompt shows come from the input dataset; keep them next to the rows."""
    if ctx.input_dir is None:
        return
    for ref in {r["prompt_image"] for r in rows if ds.is_image_ref(r.get("prompt_image"))}:
        ds.link_image(ctx.input_dir, ctx.output_dir, ref)


def _report(rows: list[dict[str, Any]], seconds: float) -> None:
    tokens = sum(r["num_response_tokens"] or 0 for r in rows)
    seconds = max(seconds, 1e-9)
    console.print(f"rollout: {len(rows)} samples, {tokens} tokens in {seconds:.1f} s "
                  f"({len(rows) / seconds:.2f} samples/s, {tokens / seconds:.0f} tokens/s)", highlight=False)
    _warn_truncated(rows)


def _warn_truncated(rows: list[dict[str, Any]]) -> None:
    """Say when responses were cut at --max-new-tokens: a cut answer scores as no answer, so a room
    whose layout does not fit gives every sample reward 0 and its group no learning signal (with
    --guided every object must be listed, about 40 tokens each), which otherwise goes unnoticed."""
    cut = [r for r in rows if r["finish_reason"] == "length"]
    if cut:
        rooms = len({r["prompt_id"] for r in cut})
        console.print(f"[yellow]rollout[/]: {len(cut)} of {len(rows)} samples ({rooms} prompt(s)) stopped at "
                      "--max-new-tokens before finishing; they score as no answer (raise --max-new-tokens)",
                      highlight=False)


def check_input(cfg: Config, columns: list[str]) -> None:
    """What the config and the input's columns tell before a row is read or a model loads."""
    if cfg.guided:
        ds.require_columns(columns, SCENE_COLUMNS, cfg.required_input("rollout"))
    if cfg.turn > 1 and samples.render_column(cfg) not in columns:
        console.print(f"[yellow]rollout[/]: {cfg.input} has no {samples.render_column(cfg)} column (not rendered); "
                      "the follow-up prompts show the room image instead", highlight=False)
    if cfg.backend != "openai":
        local = Path(cfg.model)
        if not local.exists() and (cfg.model.startswith(("/", ".", "~")) or cfg.model.count("/") > 1):
            raise UserError(f"--model: {cfg.model} is neither a model directory nor a hub name (org/name)")


def make_row_check(cfg: Config):
    directory = cfg.required_input("rollout")
    return lambda row, index: samples.check_row(row, index, cfg, directory)


STAGE = Stage(name="rollout", config_class=Config, needs=samples.needed_columns, adds=COLUMNS,
              check_input=check_input, make_row_check=make_row_check, make_processor=make_processor,
              drops=samples.dropped_columns, unit="prompts")
"""`drops`: a new turn does not carry the previous turn's score and render columns."""


def run(cfg: Config) -> Path:
    if not isinstance(cfg, Config):
        raise UserError("rollout: expected a rollout.Config")
    return run_stage(STAGE, cfg)
