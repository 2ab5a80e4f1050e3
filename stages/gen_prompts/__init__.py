"""Build a prompt dataset from rooms: one row per room with its prompt and an empty-room image.

Sources: `synthetic` (an offline generator of realistic rooms), `jsonl` (IDesign scene graphs, one
room a line), `idesign` (a folder of IDesign `scene_graph*.json` files), `hf` (the paper's
Hugging Face dataset format, from a local Parquet file or the Hub) and `llm` (new rooms' scene
graphs written by any OpenAI-compatible model from room descriptions, then placed by our placer).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, ClassVar, Literal

import pyarrow as pa
from pydantic import Field, model_validator

from stages.core import dataset as ds
from stages.core.columns import IMAGE, PROMPT, PROMPT_ID, REFERENCE_LAYOUT, ROOM_SIZE, SCENE, SYSTEM_PROMPT
from stages.core.config import StageConfig
from stages.core.errors import UserError
from stages.core.render.plan import room_plan
from stages.core.scene import Scene
from stages.core.stage import Context, Stage, console, run_stage

from . import llm, sources
from . import prompt as prompt_mod


class Config(StageConfig):
    source: Literal["synthetic", "jsonl", "idesign", "hf", "llm"] = "synthetic"
    """Where rooms come from: synthetic (offline generator), jsonl (file of rooms), idesign (folder of
    scene_graph*.json files), hf (the paper's dataset: --input data.parquet, or --dataset NAME), llm
    (scene graphs written by a model behind --llm-url from room descriptions)."""
    input: Path | None = None
    """The source's input: a .jsonl file (jsonl), a folder (idesign) or a .parquet file (hf)."""
    num_rooms: int = Field(default=50, ge=1)
    """Number of rooms to generate (synthetic), or to ask the model for (llm: the first N --descriptions,
    else N drawn from the shipped 9,744 room descriptions)."""
    seed: int = 0
    """Random seed of the synthetic generator and of the llm source's draw and requests."""
    dataset: str | None = None
    """Hugging Face Hub dataset name for the hf source, e.g. zhenyupan/3d_layout_reasoning (needs the Hub)."""
    split: str = "train"
    """Split of the Hugging Face dataset to read (hf source with --dataset)."""
    sizes: Path | None = None
    """idesign source: a JSON file mapping each scene file's room to {description, room_size}."""
    system_prompt: str | None = None
    """A system message for every prompt (column system_prompt; default: none, the model's own). The paper
    recipes give a reasoning-format instruction, as the paper's runs did."""
    template: str = "default"
    """Prompt template: a built-in name (default, concise, paper: the hf dataset's own prompt text) or a text
    file with $placeholders."""
    test_fraction: float = Field(default=0.1, ge=0.0, le=1.0)
    """Share of rooms assigned to split 'test' (deterministic by room id)."""
    image_size: int = Field(default=512, ge=64, le=4096)
    """Side of the square empty-room image, in pixels."""
    descriptions: Path | None = None
    """llm: a JSON list or JSONL file of {"description": ..., "size": {"x", "y", "z"}} entries (metres;
    optional room_id); default: the shipped room descriptions."""
    llm_url: str | None = None
    """llm: the server's URL, e.g. http://127.0.0.1:8000/v1 (default: $OPENAI_BASE_URL, else OpenAI)."""
    llm_model: str | None = None
    """llm: the model name the server knows."""
    llm_api_key_env: str = "OPENAI_API_KEY"
    """llm: name of the environment variable holding the API key (keys are never flags or files)."""
    llm_json_schema: bool = True
    """llm: constrain the reply to the scene-graph JSON schema (response_format json_schema; vLLM, OpenAI)."""
    llm_temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    """llm: sampling temperature (each room's request also sends a seed derived from --seed)."""
    llm_max_tokens: int = Field(default=4096, ge=64)
    """llm: longest reply; a reply cut there is rejected as truncated."""
    llm_concurrency: int = Field(default=4, ge=1)
    """llm: requests in flight at once."""
    llm_timeout: float = Field(default=300.0, gt=0.0)
    """llm: seconds one whole request attempt may take (then it is retried)."""
    llm_max_retries: int = Field(default=3, ge=0)
    """llm: retries of a failed request (timeouts, 429, 5xx; with backoff) before the room is rejected."""
    llm_cache: Path | None = None
    """llm: folder of cached replies, keyed by model and request (default: OUTPUT/_llm_cache)."""

    RUN_FIELDS: ClassVar[tuple[str, ...]] = StageConfig.RUN_FIELDS + (
        "llm_api_key_env", "llm_concurrency", "llm_timeout", "llm_max_retries", "llm_cache")

    @model_validator(mode="after")
    def _source_inputs(self) -> Config:
        if self.source in ("jsonl", "idesign") and self.input is None:
            raise ValueError(f"source {self.source!r} needs --input")
        if self.source == "hf" and self.input is None and self.dataset is None:
            raise ValueError("source 'hf' needs --input FILE.parquet or --dataset NAME")
        if self.source == "llm" and not self.llm_model:
            raise ValueError("source 'llm' needs --llm-model NAME (and --llm-url URL for a local server)")
        return self


COLUMNS = [
    pa.field(PROMPT_ID, pa.string()), pa.field("room_id", pa.string()), pa.field("split", pa.string()),
    pa.field("source", pa.string()), pa.field("room_type", pa.string()), pa.field("description", pa.string()),
    pa.field("preference", pa.string()), *[pa.field(axis, pa.float64()) for axis in ROOM_SIZE],
    pa.field(SCENE, pa.string()), pa.field("num_objects", pa.int64()), pa.field(REFERENCE_LAYOUT, pa.string()),
    pa.field(PROMPT, pa.string()), pa.field(IMAGE, pa.string()), pa.field(SYSTEM_PROMPT, pa.string()),
]
"""The prompt rows; the columns other stages read are named in `stages.core.columns`."""


def split_of(room_id: str, test_fraction: float) -> str:
    """'test' for a fixed share of room ids, whatever the run, shard or source order."""
    h = int.from_bytes(hashlib.sha256(room_id.encode()).digest()[:8], "big") / 2**64
    return "test" if h < test_fraction else "train"


def load_rooms(cfg: Config) -> list[dict[str, Any]] | sources.JsonlRooms:
    """The rooms to shard: a list, or for the jsonl source a stream that reads only the shard's lines."""
    # fail on a bad template before anything is written
    prompt_mod.check_source(prompt_mod.load_template(cfg.template), cfg.source)
    if cfg.source == "llm":  # descriptions; the rooms are asked for chunk by chunk
        return llm.descriptions(cfg.descriptions, cfg.num_rooms, cfg.seed)
    if cfg.source == "jsonl":
        return sources.JsonlRooms(cfg.input)
    if cfg.source == "synthetic":
        from . import synthetic

        return synthetic.generate(cfg.num_rooms, cfg.seed)
    if cfg.source == "idesign":
        return sources.from_idesign_dir(cfg.input, cfg.sizes)
    return sources.from_hf(cfg.input, cfg.dataset, cfg.split)


def make_processor(cfg: Config, ctx: Context):
    template = prompt_mod.load_template(cfg.template)
    if cfg.source != "llm":
        return lambda rooms: [_row(rec, cfg, ctx, template) for rec in rooms]
    asker = llm.Asker(cfg, cfg.llm_cache or cfg.output / "_llm_cache")
    outcomes = _outcome_dir(cfg)
    return lambda rooms: [_row(rec, cfg, ctx, template) for rec in llm.ask_rooms(asker, rooms, cfg.seed, outcomes)]


def _outcome_dir(cfg: Config) -> Path:
    return cfg.output / llm.OUTCOMES / ds.part_name(cfg.shard_index, cfg.num_shards, cfg.format)


def _row(rec: dict[str, Any], cfg: Config, ctx: Context, template: Any) -> dict[str, Any]:
    scene = Scene.from_idesign(rec["scene_graph"], rec["room_size"], rec["room_id"], rec["description"],
                               rec["room_type"])
    reference = scene.reference_layout()
    row = {
        "prompt_id": scene.room_id, "room_id": scene.room_id, "split": split_of(scene.room_id, cfg.test_fraction),
        "source": rec["source"], "room_type": scene.room_type, "description": scene.description,
        "preference": rec["preference"], "room_x": float(scene.size.x), "room_y": float(scene.size.y),
        "room_z": float(scene.size.z), "scene": json.dumps(scene.to_idesign(with_positions=False)),
        "num_objects": len(scene.objects), "reference_layout": json.dumps(reference) if reference else None,
        "prompt": prompt_mod.fill(template, scene, rec["preference"], rec.get("problem")),
        "image": _empty_room_image(scene, cfg.image_size, ctx), "system_prompt": cfg.system_prompt or None,
    }
    ctx.advance(1)
    return row


def _empty_room_image(scene: Scene, pixels: int, ctx: Context) -> str:
    """The empty-room picture depends only on the room's size, so rooms of one size share one file
    (a 1,000-room run draws a few dozen pictures instead of 1,000)."""
    key = f"{scene.size.x!r}x{scene.size.y!r}x{scene.size.z!r}@{pixels}"
    image = f"_images/rooms/{hashlib.sha1(key.encode()).hexdigest()[:16]}.png"
    path = ctx.output_dir / image
    if not path.exists():
        tmp = ctx.image_path(f"{image}.{os.getpid()}.tmp")  # shards may draw the same size at once
        room_plan(scene.size, pixels).save(tmp, format="PNG")
        os.replace(tmp, path)
    return image


STAGE = Stage(name="gen-prompts", config_class=Config, adds=COLUMNS, make_processor=make_processor,
              source_rows=load_rooms, unit="rooms")


def run(cfg: Config) -> Path:
    if not isinstance(cfg, Config):
        raise UserError("gen-prompts: expected a gen_prompts.Config")
    if cfg.source == "llm" and cfg.overwrite:
        shutil.rmtree(_outcome_dir(cfg), ignore_errors=True)
    out = run_stage(STAGE, cfg)
    if cfg.source == "llm":
        console.print(llm.summary(_outcome_dir(cfg)))
    return out
