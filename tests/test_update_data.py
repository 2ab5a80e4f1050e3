"""Scored rollout datasets for the update tests, written directly as Parquet (no rollout/score run).
A helper module (no tests of its own), shared by the update test files and benchmarks/bench_update.py.

Completions are real token sequences of the tiny model's tokenizer, ending in its EOS, with
rewards chosen by the test, so a test knows exactly which completions should gain probability.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

RESPONSES = [
    '<think>sofa by the wall</think><answer>[{"new_object_id": "sofa_1", "x": 1.0, "y": 0.5, "z": 0.4}]</answer>',
    '<think>bed in the middle</think><answer>[{"new_object_id": "bed_1", "x": 2.0, "y": 2.0, "z": 0.3}]</answer>',
    "no layout here",
    '<answer>[{"new_object_id": "desk_1", "x": 0.5}]</answer>',
    "<think>table</think>",
    '<answer>[{"new_object_id": "lamp_1", "x": 3.1, "y": 1.2, "z": 1.5}]</answer>',
]


def write_image(directory: Path, name: str, shade: int) -> str:
    rel = f"_images/rooms/{name}.png"
    path = directory / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (56, 56), (shade, 255 - shade, 128)).save(path)
    return rel


def scored_rows(tokenizer: Any, directory: Path, groups: int = 2, group_size: int = 4,
                rewards: list[list[float]] | None = None, with_images: bool = True,
                responses: list[str] = RESPONSES) -> list[dict[str, Any]]:
    """Rows of a single-turn scored dataset: `groups` prompts x `group_size` completions; sample s of
    group g answers `responses[(g + s) % len(responses)]`."""
    rows = []
    for g in range(groups):
        image = write_image(directory, f"{g:04x}", 40 * g) if with_images else None
        for s in range(group_size):
            text = responses[(g + s) % len(responses)]
            ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            reward = rewards[g][s] if rewards else float(s % 2)
            rows.append({
                "prompt": f"Room {g}: place a sofa, a bed and a lamp in a {3 + g} x 4 m bedroom.",
                "image": image, "history": None, "response": text, "response_token_ids": ids,
                "group_id": f"g{g}", "sample_index": s, "turn": 0, "trajectory_id": f"g{g}-s{s}",
                "reward": reward, "return": reward, "split": "train",
            })
    return rows


def write_dataset(directory: Path, rows: list[dict[str, Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), directory / "train-00000-of-00001.parquet")
    (directory / "_manifest.json").write_text(json.dumps({"stage": "score", "rows": len(rows)}))
    return directory


def completion_logps(model: Any, processor: Any, directory: Path, rows: list[dict[str, Any]],
                     temperature: float = 1.0) -> list[Any]:
    """Per-token log-probabilities of each row's stored completion under `model`, computed here
    independently of TRL: one unpadded forward per row on the chat `rollout` would have sent."""
    return [dist.gather(1, torch_ids(row)[:, None])[:, 0]
            for row, dist in zip(rows, completion_log_softmax(model, processor, directory, rows, temperature),
                                 strict=True)]


def torch_ids(row: dict[str, Any]) -> Any:
    import torch

    return torch.tensor(row["response_token_ids"])


def completion_log_softmax(model: Any, processor: Any, directory: Path, rows: list[dict[str, Any]],
                           temperature: float = 1.0) -> list[Any]:
    """For each row, the log-softmax over the vocabulary (logits / temperature) at each completion token."""
    import torch

    from stages.core import rows as contract
    from stages.core import vlm

    out = []
    for row in rows:
        messages = vlm.build_messages(row["prompt"], row["image"], contract.history(row["history"]),
                                      row.get("system_prompt"))
        for message in messages:
            for part in message["content"]:
                if part["type"] == "image":
                    part["image"] = vlm.open_image(directory, part["image"])
        enc = vlm.encode_chats(processor, [messages])
        completion = torch.tensor([row["response_token_ids"]])
        input_ids = torch.cat([enc["input_ids"], completion], dim=1)
        extra = {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask")}
        if "mm_token_type_ids" in extra:
            extra["mm_token_type_ids"] = torch.cat([extra["mm_token_type_ids"], torch.zeros_like(completion)], 1)
        logits = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **extra).logits
        logits = logits[0, enc["input_ids"].shape[1] - 1: -1].float()
        out.append(torch.log_softmax(logits / temperature, dim=-1))
    return out


def tiny_model_dir(tmp_path_factory: Any) -> Path:
    """The tiny random VLM, built once per test session (shared by the update test modules)."""
    from stages.core.tiny_vlm import build_tiny_vlm

    path = tmp_path_factory.getbasetemp() / "update-tiny-vlm"
    if not (path / "model.safetensors").exists():
        build_tiny_vlm(path, seed=0)
    return path


def read_metrics(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def final_turn_rows(tokenizer: Any, directory: Path, rooms: int = 2, trajectories: int = 4,
                    returns: list[list[float]] | None = None) -> list[dict[str, Any]]:
    """Rows of a turn-2 scored dataset as a multi-turn run writes them: each trajectory was continued
    once, so each row has its own history (previous answer, reward, feedback, render) and its own
    group of one; the trajectories of a room share `prompt_id`."""
    rows = []
    for r in range(rooms):
        for t in range(trajectories):
            render = write_image(directory, f"r{r:02x}{t:02x}", 30 * t + 7 * r)
            text = RESPONSES[(r + t) % len(RESPONSES)]
            history = [{"turn": 1, "response": RESPONSES[(r + t + 1) % len(RESPONSES)], "reward": 0.1 * t,
                        "feedback": {"collisions": [["sofa_1", "bed_1"]] if t % 2 else []}, "image": render}]
            value = returns[r][t] if returns else float(t % 2)
            rows.append({
                "prompt_id": f"room{r}", "prompt": f"Room {r}: place a sofa and a bed.",
                "image": write_image(directory, f"{r:04x}", 40 * r), "history": json.dumps(history),
                "response": text,
                "response_token_ids": tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id],
                "group_id": f"room{r}-s{t}-t2", "sample_index": 0, "turn": 2, "trajectory_id": f"room{r}-s{t}",
                "reward": value, "return": value, "split": "train",
            })
    return rows
