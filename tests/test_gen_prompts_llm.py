"""gen-prompts --source llm against a small OpenAI-compatible server on 127.0.0.1 started here.

The server answers by the marker in the room description: a good scene graph, the same graph in
a code fence with numbers as strings, malformed or truncated JSON, hostile graphs (duplicate keys,
an object larger than the room, relations in a cycle), a 401 that echoes the API key, and a 500
before a good reply. Placed rooms are checked with the synthetic source's geometric checks.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
from fake_openai import FakeOpenAI, Reply, Trickle, completion, error, prompt_text
from helpers import cli
from hypothesis import given, settings
from hypothesis import strategies as st
from test_gen_prompts_sources import check_object_relation, objects, touches_wall

from stages.core.scene import OBJECT_PREPOSITIONS, RoomSize
from stages.gen_prompts import llm_place, llm_scene

SECRET = "sk-test-Secret0123456789abcdef"


def obj(oid, length, width, height, layout=(), relations=(), floor=True, facing="middle of the room"):
    return {"new_object_id": oid, "style": "modern", "material": "oak",
            "size_in_meters": {"length": length, "width": width, "height": height}, "is_on_the_floor": floor,
            "facing": facing,
            "placement": {"room_layout_elements": [{"layout_element_id": e, "preposition": p} for e, p in layout],
                          "objects_in_room": [{"object_id": o, "preposition": p, "is_adjacent": a}
                                              for o, p, a in relations]}}


GOOD = {"objects": [
    obj("bed_1", 2.0, 1.6, 0.5, [("north_wall", "on")]),
    obj("nightstand_1", 0.5, 0.4, 0.55, relations=[("bed_1", "left of", True)]),
    obj("lamp_1", 0.2, 0.2, 0.4, relations=[("nightstand_1", "on", True)], floor=False),
    obj("wardrobe_1", 1.2, 0.6, 2.0, [("south_wall", "in the corner"), ("west_wall", "in the corner")]),
    obj("painting_1", 1.0, 0.05, 0.7, relations=[("bed_1", "above", False)], floor=False),
    obj("rug_1", 2.0, 1.4, 0.01, [("middle of the room", "on")]),
]}


def fenced() -> str:
    graph = json.loads(json.dumps(GOOD))
    graph["objects"][0]["new_object_id"] = "Bed 1"
    graph["objects"][0]["size_in_meters"]["length"] = "2.0"
    graph["objects"][1]["placement"]["objects_in_room"].append(
        {"object_id": "ghost_9", "preposition": "left of", "is_adjacent": True})
    return "Here is the room:\n```json\n" + json.dumps(graph) + "\n```"


REPLIES = {
    "GOOD": json.dumps(GOOD),
    "FENCED": fenced(),
    "MALFORMED": '{"objects": [{"new_object_id": "bed_1", ',
    "DUPKEY": '{"objects": [{"new_object_id": "sofa_99", "new_object_id": "bed_1"}]}',
    "HUGE": json.dumps({"objects": [obj("stage_1", 50.0, 20.0, 1.0, [("middle of the room", "on")])]}),
    "CYCLE": json.dumps({"objects": [obj("a_1", 1, 1, 0.5, relations=[("b_1", "on", True)]),
                                     obj("b_1", 1, 1, 0.5, relations=[("a_1", "on", True)])]}),
    "NAN": '{"objects": [{"new_object_id": "bed_1", "size_in_meters": {"length": NaN}}]}',
}


class LLMServer(FakeOpenAI):
    """Chat completions answering by the marker word that starts the room description; with `trickle`,
    every reply comes one byte every 0.2 s (20 s in all)."""

    def __init__(self, trickle: bool = False) -> None:
        self.trickle, self.failed = trickle, set()
        super().__init__(self._answer)

    def _answer(self, body: dict, auth: str) -> Reply | Trickle:
        marker = prompt_text(body).split("Room: ", 1)[1].split()[0]
        with self.lock:
            first = marker not in self.failed
            self.failed.add(marker)
        if marker == "ECHO":
            return error(401, f"Incorrect API key provided: {auth}")
        if marker == "FLAKY" and first:
            return error(500, "overloaded")
        finish = "length" if marker == "TRUNCATED" else "stop"
        reply = completion(REPLIES.get(marker, REPLIES["GOOD"]), body["model"], finish, 100, 50)
        return Trickle(reply, 0.2, 100) if self.trickle else Reply(200, reply)


@pytest.fixture
def server():
    s = LLMServer()
    yield s
    s.close()


def descriptions(path: Path, markers: list[str]) -> Path:
    entries = [{"description": f"{m} bedroom with a bed by the north wall", "size": {"x": 4.0, "y": 3.5, "z": 2.8}}
               for m in markers]
    path.write_text(json.dumps(entries))
    return path


def gen(server: LLMServer, tmp_path: Path, markers: list[str], out: str = "p", *extra) -> tuple[int, str]:
    return cli("gen-prompts", "--source", "llm", "--llm-url", server.url, "--llm-model", "tiny",
               "--descriptions", descriptions(tmp_path / "d.json", markers), "--num-rooms", len(markers),
               "--image-size", 64, "--output", tmp_path / out, "--llm-max-retries", 1, *extra)


def outcomes(out: Path) -> dict[str, dict]:
    lines = [json.loads(line) for f in sorted((out / "_llm_rooms").rglob("*.jsonl")) for line in f.read_text().splitlines()]
    return {o["description"].split()[0]: o for o in lines}


MARKERS = ["GOOD", "FENCED", "MALFORMED", "DUPKEY", "HUGE", "CYCLE", "NAN", "TRUNCATED", "ECHO", "FLAKY"]


def test_accepted_rooms_are_valid_and_placed_rejects_carry_reasons(server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    code, log = gen(server, tmp_path, MARKERS)
    assert code == 0, log
    df = pd.read_parquet(tmp_path / "p").set_index("description")
    by_marker = {d.split()[0]: row for d, row in df.iterrows()}
    assert sorted(by_marker) == ["CYCLE", "FENCED", "FLAKY", "GOOD"]
    for marker in ("GOOD", "FENCED", "FLAKY"):
        row = by_marker[marker]
        assert row["source"] == "llm" and row["num_objects"] == 6 and row["reference_layout"] is not None
        scene = json.loads(row["scene"])
        assert "bed_1" in [o["new_object_id"] for o in scene]  # "Bed 1" repaired
    assert pd.isna(by_marker["CYCLE"]["reference_layout"])
    seen = outcomes(tmp_path / "p")
    assert seen["CYCLE"]["status"] == "accepted without reference layout" and "cycle" in seen["CYCLE"]["reason"]
    assert "dropped an object relation" in seen["FENCED"]["repairs"]
    reasons = {m: seen[m]["reason"] for m in MARKERS if seen[m]["status"] == "rejected"}
    assert reasons == {"MALFORMED": "malformed", "DUPKEY": "malformed", "HUGE": "object larger than the room",
                       "NAN": "malformed", "TRUNCATED": "truncated", "ECHO": "request failed"}
    assert "HTTP 401" in seen["ECHO"]["detail"]
    assert "10 asked" in log and "3 accepted" in log and "6 rejected" in log
    for path in tmp_path.rglob("*"):  # the key is never written anywhere
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in log


def test_placed_llm_rooms_hold_their_relations(server, tmp_path):
    code, log = gen(server, tmp_path, ["GOOD", "FENCED"])
    assert code == 0, log
    for _, row in pd.read_parquet(tmp_path / "p").iterrows():
        scene = json.loads(row["scene"])
        reference = json.loads(row["reference_layout"])
        placed = [{**o, "position": dict(zip("xyz", reference[o["new_object_id"]], strict=True))} for o in scene
                  if "itemType" not in o]
        record = {"room_size": {"x": row["room_x"], "y": row["room_y"], "z": row["room_z"]}, "scene_graph": placed}
        by_id = {o["new_object_id"]: o for o in objects(record)}
        for o in by_id.values():
            for rel in o["placement"]["objects_in_room"]:
                check_object_relation(o, by_id[rel["object_id"]], rel)
            for rel in o["placement"]["room_layout_elements"]:
                if rel["layout_element_id"].endswith("_wall"):
                    assert touches_wall(o, rel["layout_element_id"], record["room_size"])


def test_rerun_asks_nothing_and_is_deterministic(server, tmp_path):
    code, _ = gen(server, tmp_path, ["GOOD", "FENCED", "CYCLE"], "a")
    assert code == 0
    asked = len(server.bodies)
    code, log = gen(server, tmp_path, ["GOOD", "FENCED", "CYCLE"], "a", "--overwrite")
    assert code == 0, log
    assert len(server.bodies) == asked and "3 from the cache" in log
    code, _ = gen(server, tmp_path, ["GOOD", "FENCED", "CYCLE"], "b", "--llm-cache", tmp_path / "a" / "_llm_cache")
    assert code == 0 and len(server.bodies) == asked
    a, b = pd.read_parquet(tmp_path / "a"), pd.read_parquet(tmp_path / "b")
    assert a.drop(columns="image").equals(b.drop(columns="image"))


def test_requests_carry_the_schema_and_a_seed(server, tmp_path):
    assert gen(server, tmp_path, ["GOOD"])[0] == 0
    body = server.bodies[0]
    assert body["response_format"]["type"] == "json_schema" and isinstance(body["seed"], int)
    assert body["model"] == "tiny"
    assert gen(server, tmp_path, ["GOOD"], "q", "--no-llm-json-schema", "--seed", 5)[0] == 0
    assert "response_format" not in server.bodies[-1]


def test_a_trickled_reply_is_cut_at_the_timeout(tmp_path):
    slow = LLMServer(trickle=True)
    try:
        start = time.monotonic()
        code, log = gen(slow, tmp_path, ["GOOD"], "p", "--llm-timeout", 1, "--llm-max-retries", 0)
        took = time.monotonic() - start
    finally:
        slow.close()
    assert code == 2 and "every request of a chunk failed" in log and "timed out" in log
    assert took < 15  # the server would trickle for 20 s


def test_bad_options_exit_2_naming_the_flag(server, tmp_path):
    code, log = cli("gen-prompts", "--source", "llm", "--output", tmp_path / "p")
    assert code == 2 and "--llm-model" in log
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"description": "a room", "size": {"x": -1, "y": 2, "z": 2}}]))
    code, log = cli("gen-prompts", "--source", "llm", "--llm-model", "m", "--llm-url", server.url, "--descriptions",
                    bad, "--output", tmp_path / "p")
    assert code == 2 and "entry 0, field size.x" in log and not (tmp_path / "p").exists()


def test_shipped_descriptions_are_drawn_by_seed(server, tmp_path):
    code, log = cli("gen-prompts", "--source", "llm", "--llm-url", server.url, "--llm-model", "tiny",
                    "--num-rooms", 3, "--seed", 4, "--image-size", 64, "--output", tmp_path / "p")
    assert code == 0, log
    assert len(pd.read_parquet(tmp_path / "p")) + sum(
        o["status"] == "rejected" for o in outcomes(tmp_path / "p").values()) == 3


# -------------------------------------------------------------- units, over arbitrary replies

ROOM = RoomSize(4.0, 3.5, 2.8)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300) | st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
                                            lambda kids: st.lists(kids, max_size=4)
                                            | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                                            max_leaves=20).map(lambda v: json.dumps({"objects": v})))
def test_any_reply_is_a_valid_scene_or_a_reason(text):
    try:
        scene, _ = llm_scene.scene_from_reply(text, ROOM, "r", "a room", "bedroom")
    except llm_scene.Rejected as err:
        assert err.kind and err.detail
        return
    assert scene.objects


@st.composite
def graphs(draw):
    n = draw(st.integers(1, 8))
    ids = [f"thing_{i}" for i in range(n)]
    out = []
    for i, oid in enumerate(ids):
        dims = [draw(st.floats(0.05, 2.5)) for _ in range(3)]
        layout = draw(st.sampled_from([[], [("north_wall", "on")], [("south_wall", "in the corner")],
                                       [("middle of the room", "on")], [("ceiling", "on")]]))
        rel = []
        if i and draw(st.booleans()):
            rel = [(draw(st.sampled_from(ids[:i])), draw(st.sampled_from(OBJECT_PREPOSITIONS)), draw(st.booleans()))]
        out.append(obj(oid, *dims, layout, rel, floor=draw(st.booleans())))
    return {"objects": out}


@settings(max_examples=60, deadline=None)
@given(graphs())
def test_any_valid_graph_is_placed_inside_the_room_or_says_why(graph):
    scene, _ = llm_scene.scene_from_reply(json.dumps(graph), ROOM, "r", "a room", "bedroom")
    try:
        placed = llm_place.place(scene)
    except llm_place.Unplaceable as err:
        assert "no free spot" in str(err)
        return
    for p in placed:
        b = p.box
        assert 0 <= b.x0 < b.x1 <= 4000 and 0 <= b.y0 < b.y1 <= 3500 and 0 <= b.z0 < b.z1 <= 2800
    for i, a in enumerate(placed):
        assert not any(a.box.overlaps(b.box) for b in placed[i + 1:])


@pytest.mark.parametrize("placement", [5, "on", None, {"room_layout_elements": 3, "objects_in_room": "bed"},
                                       {"objects_in_room": [None, 7, {"object_id": 3}]}])
def test_odd_placement_values_are_repaired_or_rejected(placement):
    graph = {"objects": [{**obj("bed_1", 2, 1.6, 0.5), "placement": placement}]}
    try:
        scene, _ = llm_scene.scene_from_reply(json.dumps(graph), ROOM, "r", "a room", "bedroom")
    except llm_scene.Rejected as err:
        assert err.kind == "invalid scene"
        return
    assert scene.objects[0].object_relations == []
