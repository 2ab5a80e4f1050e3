"""Scoring a chunk of rows: parse, measure (one vectorised pass), judge (one batch), combine."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.core import rows as contract
from stages.core.answer import ParsedAnswer, coordinate
from stages.core.columns import HISTORY, REFERENCE_LAYOUT, RESPONSE, TURN, render_column
from stages.core.layout import Placements
from stages.core.measure import RowMeasures, Tolerances, measure
from stages.core.paths import confined
from stages.core.scene import RoomSize, Scene, layout_elements

from . import reward as reward_mod
from . import upstream_v1 as v1
from .judges import GRADE_KEYS, LOWEST_GRADES, Judge, Judgement, JudgeRequest, grade_sum

IMAGE_COLUMNS = (render_column("topdown"), render_column("perspective"))
FAILED = "failed"
"""The `judge` column of a row whose judgement failed and was dropped (`--judge-fallback drop`)."""
MAX_HISTORY_REWARD = 1e6
"""A history reward beyond ±this was not written by any preset (their rewards lie in [0, 3]); such a
history is ignored like one with an unscored turn, so that no return overflows."""


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

    @property
    def reward_grades(self) -> dict[str, float] | None:
        """The grades the reward counts: the judgement's; the lowest grades for a failed judgement that
        was dropped; None for a row that was not judged."""
        if self.judgement is None:
            return None
        return self.judgement.grades or LOWEST_GRADES


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
    """The positions of upstream's updated scene file that are coordinates by the answer parser's rule
    (what its renderer would draw); others (strings, NaN, 1e308, 400-digit integers) are left out."""
    placements: Placements = {}
    for item in updated:
        pos = item.get("position") or {}
        x, y, z = (coordinate(pos.get(axis)) for axis in "xyz")
        if x is not None and y is not None and z is not None:
            placements[item["new_object_id"]] = (x, y, z)
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
    else:
        for k, _ in failed:
            work[k].judged_by = FAILED


def strict_json(value: Any) -> str:
    """A JSON column's text, readable by any strict parser: no NaN/Infinity (raises instead), and lone
    surrogates that a model's JSON escapes can produce (`"\\ud800"`) replaced, not escaped."""
    text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    return text.encode("utf-8", "replace").decode("utf-8")


def _feedback(w: RowWork) -> str:
    m = w.measures or RowMeasures()
    return strict_json({"collisions": m.collisions, "out_of_bounds": m.out_of_bounds_ids, "violations": m.violations,
                       "unsupported": m.unsupported, "missing": w.parsed.missing, "unknown": w.parsed.unknown,
                       "duplicates": w.parsed.duplicates, "parse_error": w.parsed.error})


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _object_scores(m: RowMeasures, weights: reward_mod.Weights) -> str:
    """Each object's four measures and its `penalty`, weighted as the reward weighs them."""
    return strict_json({oid: {**values, "penalty": reward_mod.object_penalty(values, weights)}
                        for oid, values in m.per_object.items()})


def _columns(w: RowWork, cfg: Any, weights: reward_mod.Weights) -> dict[str, Any]:
    grades = w.judgement.grades if w.judgement is not None else None
    judge_score = grade_sum(grades) / 50 if grades else None
    if cfg.preset == "metaspatial-v1":
        res = w.v1_result
        reward, fmt, preset = res.reward, res.format_reward, cfg.preset
        collision, constraint, oob, support = res.collision_ratio, res.constraint_ratio, None, None
    else:
        fmt, preset = reward_mod.FORMAT_SCORE[w.parsed.format_level], f"{cfg.preset}@{reward_mod.VERSION}"
        m = w.measures if w.parsed.valid else None
        counted = w.reward_grades
        reward = reward_mod.default_reward(w.parsed.format_level, m, grade_sum(counted) / 50 if counted else None,
                                           weights)
        collision, constraint, oob, support = ((m.collision, m.constraint, m.out_of_bounds, m.support)
                                               if m is not None else (None, None, None, None))
    return {
        "reward": float(reward), "format_reward": float(fmt), "collision_ratio": _finite(collision),
        "constraint_ratio": _finite(constraint), "out_of_bounds_ratio": _finite(oob), "support_ratio": _finite(support),
        "judge_score": judge_score, "judge_grades": strict_json({k: grades[k] for k in GRADE_KEYS}) if grades else None,
        "judge": w.judged_by if w.judge_needed else None, "judge_error": w.judge_error,
        "feedback": _feedback(w), "object_scores": _object_scores(w.measures, weights) if w.measures else None,
        "score_preset": preset, "upstream_crash": w.v1_result.crash if cfg.preset == "metaspatial-v1" else None,
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
                w.v1_result = v1.finish(w.v1_result, w.v1_updated, layout_elements(size), (size.x, size.y, size.z),
                                        w.reward_grades)
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
    if not rewards or any(r is None or abs(r) > MAX_HISTORY_REWARD for r in rewards):
        return None
    return [float(r) for r in rewards]
