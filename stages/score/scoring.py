"""Scoring a chunk of rows: parse, measure (one vectorised pass), judge (one batch), combine."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.core import rows as contract
from stages.core.answer import ParsedAnswer
from stages.core.columns import HISTORY, REFERENCE_LAYOUT, RESPONSE, TURN, render_column
from stages.core.layout import Placements
from stages.core.measure import RowMeasures, Tolerances, measure
from stages.core.paths import confined
from stages.core.scene import RoomSize, Scene, layout_elements

from . import reward as reward_mod
from . import upstream_v1 as v1
from .judges import GRADE_KEYS, Judge, Judgement, JudgeRequest, grade_sum

IMAGE_COLUMNS = (render_column("topdown"), render_column("perspective"))


@dataclass
class RowWork:
    """Everything known about one row while its chunk is scored."""

    scene: Scene
    parsed: ParsedAnswer
    measures: RowMeasures | None = None
    judge_needed: bool = False
    judgement: Judgement | None = None
    judged_by: str | None = None
    judge_error: str | None = None
    v1_result: v1.V1Result = field(default_factory=v1.V1Result)
    v1_updated: list[dict[str, Any]] | None = None
    judged_layout: tuple[Placements, RowMeasures] | None = None
    """What the judge sees: the answer's placements (v1: the updated scene file's) and their physics."""


def _v1_objects(scene: Scene, row: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Upstream's scene file: objects with their reference positions. Without any reference layout,
    every object gets a placeholder (returned) that answered objects overwrite; see the README."""
    reference = contract.reference_layout(row.get(REFERENCE_LAYOUT))
    placeholder: dict[str, Any] = {}
    objects = []
    for obj in scene.objects:
        item = obj.to_idesign(with_position=False)
        if reference is None:
            item["position"] = placeholder
        elif obj.id in reference:
            item["position"] = dict(zip("xyz", reference[obj.id], strict=True))
        objects.append(item)
    return objects, placeholder


def _images(row: dict[str, Any], input_dir: Path | None) -> list[Path]:
    """The row's renders, confined to its dataset (library callers without a dataset pass paths as-is)."""
    refs = [(col, str(row[col])) for col in IMAGE_COLUMNS if row.get(col)]
    if input_dir is None:
        return [Path(ref) for _, ref in refs]
    return [confined(input_dir, ref, f"{input_dir}, field {col}") for col, ref in refs]


def _v1_placements(updated: list[dict[str, Any]]) -> Placements:
    """The numeric positions of upstream's updated scene file (what its renderer would draw)."""
    placements: Placements = {}
    for item in updated:
        pos = item.get("position") or {}
        coords = [float(c) for c in (pos.get(axis) for axis in "xyz") if isinstance(c, (int, float))]
        if len(coords) == 3 and all(math.isfinite(c) for c in coords):
            placements[item["new_object_id"]] = (coords[0], coords[1], coords[2])
    return placements


def _set_judged_layouts(work: list[RowWork], cfg: Any, tol: Tolerances) -> None:
    todo = [w for w in work if w.judge_needed]
    if cfg.preset == "metaspatial-v1":
        layouts = [_v1_placements(w.v1_updated or []) for w in todo]
        for w, placements, m in zip(todo, layouts, measure([(w.scene, p) for w, p in zip(todo, layouts, strict=True)],
                                                           tol), strict=True):
            w.judged_layout = (placements, m)
    else:
        for w in todo:
            w.judged_layout = (w.parsed.placements, w.measures or RowMeasures())


def _preference(row: dict[str, Any]) -> str:
    return str(row.get("preference") or row.get("description") or "")


def _judge_all(work: list[RowWork], rows: list[dict[str, Any]], cfg: Any, judge: Judge, fallback: Judge,
               input_dir: Path | None) -> None:
    todo, requests = [], []
    for k, w in enumerate(work):
        if w.judged_layout is not None:
            placements, m = w.judged_layout
            images = _images(rows[k], input_dir) if judge.needs_images else []
            todo.append(k)
            requests.append(JudgeRequest(w.scene, placements, _preference(rows[k]), m, images))
    results = judge.grade(requests) if requests else []
    failed = []
    for k, request, result in zip(todo, requests, results, strict=True):
        work[k].judgement, work[k].judged_by = result, judge.name
        if result.grades is None:
            work[k].judge_error = result.error or f"{judge.name}: no grades"
            failed.append((k, request))
    if failed and cfg.judge_fallback == "rules":
        for (k, _), result in zip(failed, fallback.grade([r for _, r in failed]), strict=True):
            work[k].judgement, work[k].judged_by = result, f"{fallback.name} (fallback)"


def _feedback(w: RowWork) -> str:
    m = w.measures or RowMeasures()
    return json.dumps({"collisions": m.collisions, "out_of_bounds": m.out_of_bounds_ids, "violations": m.violations,
                       "unsupported": m.unsupported, "missing": w.parsed.missing, "unknown": w.parsed.unknown,
                       "duplicates": w.parsed.duplicates, "parse_error": w.parsed.error})


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _columns(w: RowWork, cfg: Any, weights: reward_mod.Weights) -> dict[str, Any]:
    grades = w.judgement.grades if w.judgement is not None else None
    judge_score = grade_sum(grades) / 50 if grades else None
    if cfg.preset == "metaspatial-v1":
        res = w.v1_result
        reward, fmt = res.reward, res.format_reward
        collision, constraint, oob, support = res.collision_ratio, res.constraint_ratio, None, None
    else:
        fmt = reward_mod.FORMAT_SCORE[w.parsed.format_level]
        m = w.measures if w.parsed.valid else None
        reward = reward_mod.default_reward(w.parsed.format_level, m, judge_score, weights)
        collision, constraint, oob, support = ((m.collision, m.constraint, m.out_of_bounds, m.support)
                                               if m is not None else (None, None, None, None))
    return {
        "reward": float(reward), "format_reward": float(fmt), "collision_ratio": _finite(collision),
        "constraint_ratio": _finite(constraint), "out_of_bounds_ratio": _finite(oob), "support_ratio": _finite(support),
        "judge_score": judge_score, "judge_grades": json.dumps({k: grades[k] for k in GRADE_KEYS}) if grades else None,
        "judge": w.judged_by if w.judge_needed else None, "judge_error": w.judge_error,
        "feedback": _feedback(w), "object_scores": json.dumps(w.measures.per_object) if w.measures else None,
        "score_preset": cfg.preset, "upstream_crash": w.v1_result.crash if cfg.preset == "metaspatial-v1" else None,
    }


def score_rows(rows: list[dict[str, Any]], cfg: Any, judge: Judge, fallback: Judge,
               input_dir: Path | None) -> list[dict[str, Any]]:
    work = []
    for row in rows:
        scene = Scene.from_row(row)
        work.append(RowWork(scene, contract.answer(row, scene.ids)))
    measured = [k for k, w in enumerate(work) if w.parsed.placements]
    tol = Tolerances(cfg.tolerance, cfg.relation_tolerance, cfg.scale, cfg.adjacent_gap, cfg.outside,
                     cfg.floor_covering)
    for k, m in zip(measured, measure([(work[k].scene, work[k].parsed.placements) for k in measured], tol),
                    strict=True):
        work[k].measures = m
    for row, w in zip(rows, work, strict=True):
        if cfg.preset == "metaspatial-v1":
            objects, placeholder = _v1_objects(w.scene, row)
            w.v1_result, w.v1_updated = v1.prepare(contract.response(row.get(RESPONSE)), objects)
            if w.v1_updated is not None:
                w.v1_updated = [{k: v for k, v in o.items() if not (k == "position" and v is placeholder)}
                                for o in w.v1_updated]
            w.judge_needed = w.v1_result.judge_used
        else:
            w.judge_needed = w.parsed.valid
    _set_judged_layouts(work, cfg, tol)
    _judge_all(work, rows, cfg, judge, fallback, input_dir)
    if cfg.preset == "metaspatial-v1":
        for row, w in zip(rows, work, strict=True):
            if w.v1_updated is not None:
                size = RoomSize(row["room_x"], row["room_y"], row["room_z"])
                grades = w.judgement.grades if w.judgement is not None else None
                w.v1_result = v1.finish(w.v1_result, w.v1_updated, layout_elements(size), (size.x, size.y, size.z),
                                        grades)
    weights = reward_mod.Weights(cfg.weight_judge, cfg.weight_collision, cfg.weight_constraint,
                                 cfg.weight_out_of_bounds, cfg.weight_support)
    out = [{**row, **_columns(w, cfg, weights)} for row, w in zip(rows, work, strict=True)]
    add_returns(out, cfg.gamma, cfg.return_mode)
    return out


def add_returns(rows: list[dict[str, Any]], gamma: float, mode: str) -> None:
    """`return` of each row: its trajectory's rewards up to and including its turn. Earlier turns'
    rewards come from the row's `history` (as the rollout stage records it) when it has them, else
    from rows of the same `trajectory_id` with a lower `turn` in this chunk; alone, return = reward."""
    by_trajectory: dict[Any, dict[int, float]] = {}
    for row in rows:
        turn = contract.turn(row.get(TURN))
        if row.get("trajectory_id") is not None and turn is not None:
            by_trajectory.setdefault(row["trajectory_id"], {})[turn] = row["reward"]
    for row in rows:
        earlier = _history_rewards(row)
        turn = contract.turn(row.get(TURN))
        if earlier is None and row.get("trajectory_id") is not None and turn is not None:
            turns = by_trajectory[row["trajectory_id"]]
            earlier = [turns[t] for t in sorted(turns) if t < turn]
        row["return"] = reward_mod.trajectory_return((earlier or []) + [row["reward"]], gamma, mode)


def _history_rewards(row: dict[str, Any]) -> list[float] | None:
    """The earlier turns' rewards from the row's history; None without one, or if a turn was not scored."""
    rewards = [entry["reward"] for entry in contract.history(row.get(HISTORY))]
    if not rewards or any(r is None for r in rewards):
        return None
    return [float(r) for r in rewards]
