"""The llm source: new rooms' scene graphs from any OpenAI-compatible model.

For each room description (a file of `{description, size}` entries, or a seeded draw from the
shipped 9,744), the model is asked for an IDesign scene graph (llm_scene), the reply is validated
and repaired, and the room is placed by our constructive placer (llm_place). Requests run
`--llm-concurrency` at a time through the one OpenAI client setup (retries with backoff, a bound
on each whole attempt, redacted errors; the key from an environment variable only). Every reply is cached on disk
keyed by what was asked (model, messages, sampling settings), so a re-run asks nothing it
already has and the output is deterministic given the cache. A failed request is not cached.

Each room asked gets one line in `OUTPUT/_llm_rooms/<part>/`: accepted, accepted without a
reference layout (and why), or rejected (and why); rejected rooms are never written as prompts.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from stages.core import dataset as ds
from stages.core.errors import UserError
from stages.core.openai_http import ServerLog, async_client, chat_reply, run_async
from stages.core.scene import parse_room_size

from .llm_place import Unplaceable, place, placed_graph
from .llm_scene import Rejected, json_schema, messages, scene_from_reply
from .sources import guess_room_type, room_record

SHIPPED = Path(__file__).parent / "data" / "room_descriptions.json"
OUTCOMES = "_llm_rooms"


def _entries(path: Path) -> list[tuple[dict[str, Any], str]]:
    """(entry, where) from a JSON list or a JSONL file of {description, size[, room_id]} objects."""
    if path.suffix == ".jsonl":
        return [(raw, f"{path}, line {n}") for n, raw in ds.iter_jsonl(path)]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not a JSON list of {{description, size}} entries ({err})") from None
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON list of {{description, size}} entries")
    return [(raw, f"{path}, entry {n}") for n, raw in enumerate(data)]


def descriptions(file: Path | None, num_rooms: int, seed: int) -> list[dict[str, Any]]:
    """The rooms to ask for: the first `num_rooms` entries of `file`, else a seeded draw from the
    shipped descriptions. Each: {room_id, description, size}."""
    if file is not None:
        if not Path(file).is_file():
            raise UserError(f"--descriptions: {file} is not a file")
        picked = [(raw, where, f"llm-{Path(file).stem}-{n:05d}") for n, (raw, where) in
                  enumerate(_entries(Path(file))[:num_rooms])]
    else:
        shipped = _entries(SHIPPED)
        order = random.Random(f"metaspatial-llm:{seed}").sample(range(len(shipped)), min(num_rooms, len(shipped)))
        picked = [(*shipped[i], f"llm-{i:05d}") for i in order]
    out = []
    for raw, where, default_id in picked:
        if not isinstance(raw, dict) or not isinstance(raw.get("description"), str) or not raw["description"].strip():
            raise UserError(f"{where}, field description: expected a non-empty string")
        size = parse_room_size(raw.get("size"), f"{where}, field size")
        out.append({"room_id": str(raw.get("room_id") or default_id), "description": raw["description"].strip(),
                    "size": size})
    if not out:
        raise UserError(f"{file}: no descriptions in this file")
    return out


@dataclass
class Reply:
    content: str = ""
    finish_reason: str = ""
    tokens: int = 0
    cached: bool = False
    error: str = ""


class Asker:
    """Asks the model through an on-disk cache, `concurrency` requests at a time (the one OpenAI
    client setup of `stages.core.openai_http`: whole-attempt timeouts, retries, redacted errors)."""

    def __init__(self, cfg: Any, cache_dir: Path) -> None:
        self.cfg, self.cache_dir = cfg, cache_dir
        key = os.environ.get(cfg.llm_api_key_env)
        if not key and cfg.llm_url is None and not os.environ.get("OPENAI_BASE_URL"):
            raise UserError(f"--llm-url: set ${cfg.llm_api_key_env} (the API key) or give a local server's URL")
        self.key = key or "EMPTY"  # local servers (vllm serve) accept any key
        self.log = ServerLog([key], cfg.llm_timeout, cfg.llm_max_retries)

    def request(self, msgs: list[dict[str, str]], seed: int) -> dict[str, Any]:
        cfg = self.cfg
        body: dict[str, Any] = {"model": cfg.llm_model, "messages": msgs, "temperature": cfg.llm_temperature,
                                "max_tokens": cfg.llm_max_tokens, "seed": seed}
        if cfg.llm_json_schema:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "scene_graph", "schema": json_schema()}}
        return body

    def _cache_path(self, body: dict[str, Any]) -> Path:
        digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
        return self.cache_dir / digest[:2] / f"{digest}.json"

    async def _ask(self, client: Any, gate: asyncio.Semaphore, body: dict[str, Any]) -> Reply:
        import openai

        path = self._cache_path(body)
        hit = ds.read_manifest_like(path)
        if isinstance(hit, dict) and isinstance(hit.get("content"), str):
            return Reply(hit["content"], str(hit.get("finish_reason")), int(hit.get("tokens") or 0), cached=True)
        try:
            async with gate:
                answer = chat_reply(await client.chat.completions.create(**body))
        except openai.OpenAIError as err:
            return Reply(error=self.log.describe(err))
        except ValueError as err:
            return Reply(error=self.log.clean(f"malformed reply: {err}"))
        out = Reply(answer.text, answer.finish_reason, (answer.prompt_tokens or 0) + (answer.completion_tokens or 0))
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.write_json(path, {"content": out.content, "finish_reason": out.finish_reason, "tokens": out.tokens})
        return out

    def ask_all(self, bodies: list[dict[str, Any]]) -> list[Reply]:
        async def run() -> list[Reply]:
            gate = asyncio.Semaphore(self.cfg.llm_concurrency)
            cfg = self.cfg
            async with async_client(cfg.llm_url, self.key, cfg.llm_timeout, cfg.llm_max_retries, self.log) as client:
                return list(await asyncio.gather(*(self._ask(client, gate, b) for b in bodies)))

        return run_async(run)


def seed_of(room_id: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{room_id}".encode()).digest()[:4], "big")


def room_from_reply(room: dict[str, Any], reply: Reply) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(a room record to write, or None) and the outcome line of this room."""
    outcome: dict[str, Any] = {"room_id": room["room_id"], "description": room["description"],
                               "tokens": reply.tokens, "cached": reply.cached}
    try:
        if reply.error:
            raise Rejected("request failed", reply.error)
        if reply.finish_reason == "length":
            raise Rejected("truncated", "the reply stopped at --llm-max-tokens")
        room_type = guess_room_type(room["description"])
        scene, repairs = scene_from_reply(reply.content, room["size"], room["room_id"], room["description"], room_type)
    except Rejected as err:
        return None, {**outcome, "status": "rejected", "reason": err.kind, "detail": err.detail}
    try:
        graph = placed_graph(scene, place(scene))
        status, reason = "accepted", ""
    except Unplaceable as err:
        graph = [o.to_idesign(with_position=False) for o in scene.objects]
        status, reason = "accepted without reference layout", str(err)
    raw = {"room_id": scene.room_id, "description": scene.description, "room_type": scene.room_type,
           "preference": scene.description, "room_size": scene.size.as_dict(), "scene_graph": graph}
    record = room_record(raw, f"reply for {scene.room_id}", "llm")
    return record, {**outcome, "status": status, "reason": reason, "repairs": sorted(set(repairs)),
                    "objects": len(scene.objects)}


def ask_rooms(asker: Asker, rooms: list[dict[str, Any]], seed: int, outcome_dir: Path) -> list[dict[str, Any]]:
    """Room records for the accepted rooms of a chunk; every room's outcome goes to `outcome_dir`."""
    bodies = [asker.request(messages(r["description"], r["size"]), seed_of(r["room_id"], seed)) for r in rooms]
    replies = asker.ask_all(bodies)
    if replies and all(r.error for r in replies):
        raise UserError(f"--llm-url {asker.cfg.llm_url}: every request of a chunk failed; last error: "
                        f"{replies[-1].error}")
    results = [room_from_reply(room, reply) for room, reply in zip(rooms, replies, strict=True)]
    name = hashlib.sha1("\n".join(r["room_id"] for r in rooms).encode()).hexdigest()[:16]
    ds.write_rows(outcome_dir / f"{name}.jsonl", [o for _, o in results], None, "jsonl")
    return [rec for rec, _ in results if rec is not None]


def summary(outcome_dir: Path) -> str:
    """Rooms asked, accepted, rejected by reason, objects per room and tokens, over a part."""
    lines = [o for f in sorted(outcome_dir.glob("*.jsonl")) for _, o in ds.iter_jsonl(f)]
    status = Counter(o["status"] for o in lines)
    reasons = Counter(o["reason"] for o in lines if o["status"] == "rejected")
    objects = [o["objects"] for o in lines if "objects" in o]
    per_room = f"{sum(objects) / len(objects):.1f}" if objects else "-"
    rejected = ", ".join(f"{k} {v}" for k, v in reasons.most_common()) or "none"
    return (f"llm rooms: {len(lines)} asked ({sum(o['cached'] for o in lines)} from the cache), "
            f"{status['accepted']} accepted, {status['accepted without reference layout']} accepted without a "
            f"reference layout, {status['rejected']} rejected ({rejected}); {per_room} objects per accepted room; "
            f"{sum(o['tokens'] for o in lines)} tokens")
