"""Shared data for the score tests: fixture scenes and cases as score-stage rows (no tests here)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from stages import score
from stages.core.answer import parse_answer
from stages.core.scene import Scene
from stages.score.judges import RulesJudge, make_judge
from stages.score.scoring import score_rows

ORACLE = Path(__file__).resolve().parent / "fixtures" / "upstream-oracle"


@cache
def scenes() -> dict[str, dict]:
    return {d["room_id"]: d for d in map(json.loads, (ORACLE / "scenes.jsonl").read_text().splitlines())}


@cache
def cases() -> list[dict]:
    return [json.loads(line) for line in (ORACLE / "cases.jsonl").read_text().splitlines()]


def probes() -> dict:
    return json.loads((ORACLE / "probes.json").read_text())


def scene_row(room_id: str, response: str, **extra) -> dict:
    """A row as gen-prompts + rollout would write it for a fixture scene."""
    return raw_row(scenes()[room_id], response, **extra)


def raw_row(raw: dict, response: str, **extra) -> dict:
    """A row as gen-prompts + rollout would write it for a raw room (fixture or synthetic)."""
    room_id = raw["room_id"]
    scene = Scene.from_idesign(raw["scene_graph"], raw["room_size"], room_id, raw["description"])
    size = raw["room_size"]
    return {"room_id": room_id, "preference": raw["description"], "room_x": float(size["x"]),
            "room_y": float(size["y"]), "room_z": float(size["z"]),
            "scene": json.dumps(scene.to_idesign(with_positions=False)),
            "reference_layout": json.dumps(scene.reference_layout()), "response": response, **extra}


def case_rows() -> list[dict]:
    return [scene_row(c["room_id"], c["response"], case_kind=c["case_kind"], case_index=k)
            for k, c in enumerate(cases())]


def answer_text(placements: dict[str, tuple[float, float, float]]) -> str:
    body = [{"new_object_id": oid, "x": x, "y": y, "z": z} for oid, (x, y, z) in placements.items()]
    return "<think>placing</think>\n<answer>\n" + json.dumps(body) + "\n</answer>"


def gt_placements(room_id: str) -> dict[str, tuple[float, float, float]]:
    return {o["new_object_id"]: (o["position"]["x"], o["position"]["y"], o["position"]["z"])
            for o in scenes()[room_id]["scene_graph"][:-6]}


def centres_inside(row: dict) -> bool:
    """Whether every object the row's answer places has its centre inside the room (the in-room layouts)."""
    placements = parse_answer(row["response"], list(gt_placements(row["room_id"]))).placements
    room = (row["room_x"], row["room_y"], row["room_z"])
    return all(0 <= c <= d for xyz in placements.values() for c, d in zip(xyz, room, strict=True))


def score_library(rows: list[dict], **options) -> list[dict]:
    """Score rows in-process with a score.Config (no dataset on disk)."""
    cfg = score.Config(**options)
    return score_rows(rows, cfg, make_judge(cfg), RulesJudge(), None)


def obj(oid: str, size=(1.0, 0.5, 0.8), floor: bool = True, facing: str = "north_wall", layout=(), rel=(),
        rotation: float | None = None) -> dict:
    """An IDesign object dict for hand-made scenes."""
    item = {"new_object_id": oid, "style": "Modern", "material": "Oak", "is_on_the_floor": floor, "facing": facing,
            "size_in_meters": dict(zip(("length", "width", "height"), size, strict=True)),
            "placement": {"room_layout_elements": [{"layout_element_id": e, "preposition": p} for e, p in layout],
                          "objects_in_room": [{"object_id": o, "preposition": p, "is_adjacent": a} for o, p, a in rel]}}
    if rotation is not None:
        item["rotation"] = {"z_angle": rotation}
    return item


def made_row(objects: list[dict], placements: dict, room=(4.0, 4.0, 3.0), **extra) -> dict:
    """A score row for a hand-made scene and a layout."""
    return {"room_id": "made", "preference": "a tidy room", "room_x": room[0], "room_y": room[1], "room_z": room[2],
            "scene": json.dumps(objects), "reference_layout": None, "response": answer_text(placements), **extra}
