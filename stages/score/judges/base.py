"""The judge interface: five grades from 1 to 10 per layout, the paper's rubric.

A judge receives a batch of `JudgeRequest`s and returns one `Judgement` per request, in order. It
never raises for a single bad layout or reply: a failure is a Judgement with `grades=None` and an
`error` message, which the stage records in `judge_error` and handles by its fallback policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from stages.core.layout import Placements
from stages.core.measure import RowMeasures
from stages.core.scene import Scene

GRADE_KEYS = ("realism_and_3d_geometric_consistency", "functionality_and_activity_based_alignment",
              "layout_and_furniture", "color_scheme_and_material_choices", "overall_aesthetic_and_atmosphere")

LOWEST_GRADES = dict.fromkeys(GRADE_KEYS, 1.0)
"""What a failed judgement counts as under `--judge-fallback drop`: the lowest grade on every criterion,
so a failure is never worth more than a judgement of the same layout."""


@dataclass
class JudgeRequest:
    scene: Scene
    placements: Placements
    preference: str
    measures: RowMeasures
    images: list[Path] = field(default_factory=list)


@dataclass
class Judgement:
    grades: dict[str, float] | None
    error: str | None = None


class Judge(Protocol):
    name: str
    needs_images: bool

    def grade(self, requests: list[JudgeRequest]) -> list[Judgement]: ...


def grade_sum(grades: dict[str, float]) -> float:
    return float(sum(grades[k] for k in GRADE_KEYS))
