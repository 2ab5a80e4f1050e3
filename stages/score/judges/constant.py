"""The `constant` judge: the same grades for every layout (ablations, and the fixture check)."""

from __future__ import annotations

from .base import GRADE_KEYS, Judgement, JudgeRequest


class ConstantJudge:
    name = "constant"
    needs_images = False

    def __init__(self, grades: list[float]):
        self.grades = dict(zip(GRADE_KEYS, (float(g) for g in grades), strict=True))

    def grade(self, requests: list[JudgeRequest]) -> list[Judgement]:
        return [Judgement(dict(self.grades)) for _ in requests]
