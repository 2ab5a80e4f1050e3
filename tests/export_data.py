"""Scored layouts of a few example rooms for the export tests: answers of several qualities per room."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
from helpers import REPO, cli

ROOMS = REPO / "examples" / "rooms" / "rooms.jsonl"


def answer(entries: list[dict]) -> str:
    return f"<think>placing</think><answer>{json.dumps(entries)}</answer>"


def responses(reference: dict[str, list[float]]) -> dict[str, str]:
    """Answers of several qualities for one room: exact, shifted, one bad coordinate, one left out, none."""
    exact = [{"new_object_id": oid, "x": x, "y": y, "z": z} for oid, (x, y, z) in reference.items()]
    shifted = [{**e, "x": e["x"] + 0.4} for e in exact]
    bad = [*exact[:-1], {**exact[-1], "y": "NaN"}]
    return {"exact": answer(exact), "shifted": answer(shifted), "bad-coordinate": answer(bad),
            "left-out": answer(exact[1:] + [{"new_object_id": "ghost_1", "x": 1, "y": 1, "z": 1}]),
            "garbage": "I would put the sofa somewhere nice."}


def build_rollouts(work: Path, rooms: int = 3) -> Path:
    code, out = cli("gen-prompts", "--source", "jsonl", "--input", ROOMS, "--output", work / "prompts",
                    "--max-rows", rooms)
    assert code == 0, out
    rows = []
    for _, prompt in pd.read_parquet(work / "prompts").iterrows():
        for kind, text in responses(json.loads(prompt.reference_layout)).items():
            rows.append({**prompt.to_dict(), "response": text, "sample_id": f"{prompt.room_id}/{kind}", "kind": kind})
    rollouts = work / "rollouts"
    rollouts.mkdir()
    pd.DataFrame(rows).to_parquet(rollouts / "train-00000-of-00001.parquet")
    shutil.copytree(work / "prompts" / "_images", rollouts / "_images")
    return rollouts


def scored_dataset(work: Path, rooms: int = 3) -> Path:
    """`work/score`: the rollouts above scored with the default (rules) judge."""
    code, out = cli("score", "--input", build_rollouts(work, rooms), "--output", work / "score")
    assert code == 0, out
    return work / "score"
