"""Score layouts: format, physics, relation constraints and a judge, combined into a reward.

Two presets: `metaspatial` (default) fixes the paper's reward bugs and adds out-of-bounds and
support terms; `metaspatial-v1` reproduces the paper's code number for number. Judges: `rules`
(offline, default), `constant`, `openai` (any compatible endpoint) and `hf` (local VLM). Runs on a
render dataset, or on a rollout dataset directly when the judge needs no image.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar, Literal

import pyarrow as pa
from pydantic import Field, model_validator

from stages.core import rows
from stages.core.columns import (
    HISTORY,
    REFERENCE_LAYOUT,
    RESPONSE,
    SCENE_COLUMNS,
    SCORE_FIELDS,
    TRAJECTORY_ID,
    TURN,
)
from stages.core.config import StageConfig
from stages.core.errors import UserError
from stages.core.paths import confined
from stages.core.stage import Context, Stage, run_stage

from .judge_runs import kept_rows, print_summary, row_key

NEEDS = [RESPONSE, *SCENE_COLUMNS]
CHECKED = [*NEEDS, TURN, HISTORY, REFERENCE_LAYOUT]
"""The columns checked up front: what scoring reads (`turn` and `history` make the return;
`reference_layout` fills objects an answer leaves out in the metaspatial-v1 preset)."""


class Config(StageConfig):
    preset: Literal["metaspatial", "metaspatial-v1"] = "metaspatial"
    """Reward formula: metaspatial (fixed, default) or metaspatial-v1 (the paper's code, bugs included)."""
    judge: Literal["rules", "constant", "openai", "hf"] = "rules"
    """Who grades the layouts: rules (offline), constant, openai (an OpenAI-compatible endpoint), hf (local VLM)."""
    judge_grades: list[float] | None = None
    """The five grades of the constant judge, e.g. 7,6,8,5,7 (each 1..10)."""
    judge_url: str | None = None
    """Base URL of the OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (openai judge)."""
    judge_model: str | None = None
    """Model name at the endpoint (openai judge) or local model directory (hf judge)."""
    judge_api_key_env: str = "OPENAI_API_KEY"
    """Name of the environment variable holding the API key (the key itself is never a setting)."""
    judge_timeout: float = Field(default=60.0, gt=0)
    """Seconds one judge request may take, reply included, before it is abandoned and retried (openai judge)."""
    judge_retries: int = Field(default=4, ge=0)
    """Retries of a failed request, with the openai client's backoff: timeouts, connection errors,
    408/409/429, 5xx (openai judge)."""
    retry_failed: bool = False
    """Re-score an existing output: rows whose judge failed (judge_error set) are judged again, every
    other row keeps its scores. The same settings as the run that wrote it."""
    judge_concurrency: int = Field(default=4, ge=1)
    """Requests in flight at once (openai judge)."""
    judge_max_tokens: int = Field(default=512, ge=16)
    """Longest reply the judge may write."""
    judge_cache: Path | None = None
    """Directory caching judgements by image+prompt hash (openai judge); re-scoring then costs nothing."""
    judge_fallback: Literal["rules", "drop"] = "rules"
    """When the judge fails for a row: grade it with rules, or drop the judgement: the reward counts the lowest
    grades, judge = 'failed', the error in judge_error."""
    tolerance: float = Field(default=0.02, ge=0)
    """Metres of overlap, protrusion or gap that count as nothing (metaspatial)."""
    relation_tolerance: float = Field(default=0.005, ge=0)
    """Metres by which a relation may be missed and still hold (metaspatial)."""
    scale: float = Field(default=0.15, gt=0)
    """Metres beyond the tolerance at which a violation counts in full (metaspatial)."""
    adjacent_gap: float = Field(default=0.05, ge=0)
    """How far apart 'adjacent' objects, and objects 'on' a wall and that wall, may be (metaspatial)."""
    outside: float = Field(default=0.0, ge=0)
    """An object whose centre lies more than this beyond a wall, floor or ceiling is out of the room (metaspatial)."""
    floor_covering: float = Field(default=0.05, ge=0)
    """Floor objects at most this high (rugs, mats) may have floor furniture standing on them (metaspatial)."""
    weight_judge: float = Field(default=1.0, ge=0)
    """Weight of the judge score in the quality term (metaspatial)."""
    weight_collision: float = Field(default=3.0, ge=0)
    """Weight of 1 - collision_ratio in the quality term (metaspatial)."""
    weight_constraint: float = Field(default=1.0, ge=0)
    """Weight of 1 - constraint_ratio in the quality term (metaspatial)."""
    weight_out_of_bounds: float = Field(default=0.5, ge=0)
    """Weight of 1 - out_of_bounds_ratio in the quality term (metaspatial)."""
    weight_support: float = Field(default=0.5, ge=0)
    """Weight of 1 - support_ratio in the quality term (metaspatial)."""
    gamma: float = Field(default=0.9, gt=0, le=1)
    """Discount of later turns in the multi-turn return."""
    return_mode: Literal["weighted-average", "discounted-sum"] = "weighted-average"
    """Multi-turn return: the paper's sum(g^t r_t)/sum(g^t), or the plain discounted sum sum(g^t r_t)."""

    # How requests are made, not what they compute: a --retry-failed run may raise the timeout.
    RUN_FIELDS: ClassVar[tuple[str, ...]] = StageConfig.RUN_FIELDS + (
        "retry_failed", "judge_timeout", "judge_retries", "judge_concurrency", "judge_cache", "judge_api_key_env")

    @model_validator(mode="after")
    def _judge_options(self) -> Config:
        grades = self.judge_grades or []
        if self.judge == "constant" and (len(grades) != 5 or not all(1 <= g <= 10 for g in grades)):
            raise ValueError("judge 'constant' needs --judge-grades with five numbers from 1 to 10, e.g. 7,6,8,5,7")
        if self.judge == "openai" and not (self.judge_url and self.judge_model):
            raise ValueError("judge 'openai' needs --judge-url and --judge-model")
        if self.judge == "hf" and not self.judge_model:
            raise ValueError("judge 'hf' needs --judge-model (a local model directory)")
        return self


COLUMNS: list[pa.Field] = SCORE_FIELDS


def check_input(cfg: Config, columns: list[str]) -> None:
    from .scoring import IMAGE_COLUMNS

    if cfg.judge in ("openai", "hf") and not any(c in columns for c in IMAGE_COLUMNS):
        raise UserError(f"{cfg.input}: judge '{cfg.judge}' grades renders, but the dataset has no "
                        f"{' or '.join(IMAGE_COLUMNS)} column; run `metaspatial render` first or use --judge rules")


def make_row_check(cfg: Config):
    """Every row's contract columns and, for judges that look, its renders' paths must be valid
    before anything is written; errors name the row and field."""
    from .scoring import IMAGE_COLUMNS

    renders = IMAGE_COLUMNS if cfg.judge in ("openai", "hf") else ()
    directory = cfg.required_input("score")

    def check(row: dict, index: int) -> None:
        rows.check([row], [*CHECKED, *renders], directory, index)
        for column in renders:
            if row.get(column):
                confined(directory, row[column], f"{directory}, row {index}, field {column}")

    return check


def make_processor(cfg: Config, ctx: Context, run: RunState | None = None):
    from .judges import RulesJudge, make_judge
    from .scoring import add_returns, score_rows

    run = run or RunState()
    judge = make_judge(cfg)
    counts = getattr(judge, "counts", None)  # a judge that asks a server counts its cache hits
    if isinstance(counts, Counter):
        run.counts = counts
    fallback = RulesJudge(adjacent_gap=cfg.adjacent_gap)

    def process(chunk):
        kept = [run.kept.get(row_key(r, OWN_COLUMNS)) for r in chunk] if run.kept else [None] * len(chunk)
        scored = iter(score_rows([r for r, k in zip(chunk, kept, strict=True) if k is None], cfg, judge, fallback,
                                 ctx.input_dir))
        out = [{**row, **{c: k[c] for c in OWN_COLUMNS}} if k is not None else next(scored)
               for row, k in zip(chunk, kept, strict=True)]
        run.reused += sum(k is not None for k in kept)
        if run.kept:
            add_returns(out, cfg.gamma, cfg.return_mode)  # returns over kept and re-scored turns alike
        ctx.advance(len(chunk))
        return out

    return process


STAGE = Stage(name="score", config_class=Config, needs=NEEDS, adds=COLUMNS, check_input=check_input,
              make_row_check=make_row_check, make_processor=make_processor, together=TRAJECTORY_ID)
"""`together`: a row's multi-turn return adds its earlier turns' rewards, taken from its `history` or,
without one, from the rows of the same trajectory, which must therefore be adjacent (and never split
between chunks or shards)."""
OWN_COLUMNS = {f.name for f in COLUMNS}


@dataclass
class RunState:
    """What one `score` run carries between chunks: rows kept by --retry-failed, judge counts."""

    kept: dict[bytes, dict] = field(default_factory=dict)
    reused: int = 0
    counts: Counter[str] = field(default_factory=Counter)


def run(cfg: Config) -> Path:
    if not isinstance(cfg, Config):
        raise UserError("score: expected a score.Config")
    state = RunState(kept=kept_rows(cfg, OWN_COLUMNS) if cfg.retry_failed else {})
    if cfg.retry_failed:
        cfg = cfg.model_copy(update={"overwrite": True})
    stage = replace(STAGE, make_processor=lambda c, ctx: make_processor(c, ctx, state))
    out = run_stage(stage, cfg)
    print_summary(out, cfg.judge, state.counts, state.reused)
    return out
