"""Judges: `rules` (offline default), `constant`, `openai` (any compatible endpoint), `hf` (local VLM)."""

from __future__ import annotations

from typing import Any

from .base import GRADE_KEYS, LOWEST_GRADES, Judge, Judgement, JudgeRequest, grade_sum
from .constant import ConstantJudge
from .rules import RulesJudge

__all__ = ["GRADE_KEYS", "LOWEST_GRADES", "Judge", "JudgeRequest", "Judgement", "grade_sum", "make_judge", "RulesJudge"]


def make_judge(cfg: Any) -> Judge:
    """Build the judge a score config asks for (heavy clients are imported only here)."""
    if cfg.judge == "rules":
        return RulesJudge(adjacent_gap=cfg.adjacent_gap)
    if cfg.judge == "constant":
        return ConstantJudge(cfg.judge_grades)
    if cfg.judge == "openai":
        from .openai_api import OpenAIJudge, OpenAISettings

        return OpenAIJudge(OpenAISettings(
            url=cfg.judge_url, model=cfg.judge_model, api_key_env=cfg.judge_api_key_env, timeout=cfg.judge_timeout,
            retries=cfg.judge_retries, concurrency=cfg.judge_concurrency,
            max_tokens=cfg.judge_max_tokens, cache_dir=cfg.judge_cache))
    from .hf import HFJudge

    return HFJudge(cfg.judge_model, max_new_tokens=cfg.judge_max_tokens)
