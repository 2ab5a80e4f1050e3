"""Judges: the openai judge against a real HTTP server on loopback, the rules judge, the hf judge."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image
from test_score_data import answer_text, gt_placements, scene_row, scenes

from stages.core.answer import parse_answer
from stages.core.measure import measure
from stages.core.scene import Scene
from stages.score.judges import GRADE_KEYS, JudgeRequest, RulesJudge
from stages.score.judges.openai_api import OpenAIJudge, OpenAISettings
from stages.score.judges.rubric import parse_grades

GOOD = json.dumps({k: {"grade": 6, "comment": "fine"} for k in GRADE_KEYS})
ROOM = next(iter(scenes()))


class FakeOpenAI:
    """A scripted OpenAI-compatible chat endpoint. `script` is consumed one reply per request:
    ("ok", text) / ("status", code) / ("sleep", seconds) / ("garbage", body)."""

    def __init__(self):
        self.script, self.default = [], ("ok", GOOD)
        self.requests, self.auth, self.in_flight, self.max_in_flight = 0, [], 0, 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length", 0)))
                with fake.lock:
                    fake.requests += 1
                    fake.auth.append(self.headers.get("authorization"))
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                    kind, arg = fake.script.pop(0) if fake.script else fake.default
                try:
                    self.reply(kind, arg)
                finally:
                    with fake.lock:
                        fake.in_flight -= 1

            def reply(self, kind, arg):
                time.sleep(0.05)
                if kind == "sleep":
                    time.sleep(arg)
                    kind, arg = "ok", GOOD
                if kind == "status":
                    body, code = json.dumps({"error": {"message": f"status {arg}"}}).encode(), arg
                elif kind == "garbage":
                    body, code = arg.encode(), 200
                else:
                    body, code = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                                             "choices": [{"index": 0, "finish_reason": "stop", "message": {
                                                 "role": "assistant", "content": arg}}]}).encode(), 200
                try:
                    self.send_response(code)
                    self.send_header("content-type", "application/json")
                    if code == 429:
                        self.send_header("retry-after", "0")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server():
    fake = FakeOpenAI()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def request_factory(tmp_path_factory):
    image = tmp_path_factory.mktemp("renders") / "top.png"
    Image.new("RGB", (32, 32), (200, 180, 160)).save(image)
    raw = scenes()[ROOM]
    scene = Scene.from_idesign(raw["scene_graph"], raw["room_size"], ROOM)
    placements = parse_answer(answer_text(gt_placements(ROOM)), scene.ids).placements
    (m,) = measure([(scene, placements)])

    def make(n=1, preference="a gym"):
        return [JudgeRequest(scene, placements, f"{preference} {k}", m, [image]) for k in range(n)]

    return make


def judge_for(server, **options):
    settings = dict(url=server.url, model="m", timeout=2.0, retries=2, concurrency=2)
    settings.update(options)
    return OpenAIJudge(OpenAISettings(**settings))


def test_openai_judge_grades_over_http_with_key_from_environment(server, request_factory, monkeypatch):
    monkeypatch.setenv("MY_JUDGE_KEY", "sk-test-123")
    (result,) = judge_for(server, api_key_env="MY_JUDGE_KEY").grade(request_factory())
    assert result.grades == dict.fromkeys(GRADE_KEYS, 6.0) and result.error is None
    assert server.auth == ["Bearer sk-test-123"]


def test_http_500_and_429_are_retried(server, request_factory):
    server.script = [("status", 500), ("status", 429), ("ok", GOOD)]
    (result,) = judge_for(server, concurrency=1).grade(request_factory())
    assert result.grades is not None and server.requests == 3


def test_persistent_failures_are_reported_not_zeroed(server, request_factory):
    server.default = ("status", 503)
    (result,) = judge_for(server).grade(request_factory())
    assert result.grades is None and "HTTP 503" in result.error and "3 attempts" in result.error


def test_client_errors_are_not_retried(server, request_factory):
    server.default = ("status", 400)
    (result,) = judge_for(server).grade(request_factory())
    assert result.grades is None and "HTTP 400" in result.error and server.requests == 1


def test_timeouts_are_retried_then_reported(server, request_factory):
    server.script = [("sleep", 1.0)]
    (result,) = judge_for(server, timeout=0.3, concurrency=1).grade(request_factory())
    assert result.grades is not None and server.requests == 2
    server.script, server.requests = [("sleep", 1.0)] * 3, 0
    (result,) = judge_for(server, timeout=0.3, retries=1).grade(request_factory(preference="other"))
    assert result.grades is None and "timed out" in result.error


@pytest.mark.parametrize("reply", [("ok", "I think it is a 7 overall."), ("ok", '{"layout_and_furniture": 11}'),
                                   ("garbage", "{not json"), ("ok", json.dumps({k: "unknown" for k in GRADE_KEYS}))])
def test_malformed_replies_are_reported_not_retried(server, request_factory, reply):
    server.default = reply  # the judge runs at temperature 0: asking again gets the same reply
    (result,) = judge_for(server, retries=1).grade(request_factory())
    assert result.grades is None and "malformed" in result.error and server.requests == 1


def test_concurrency_limit_and_no_row_lost(server, request_factory):
    server.script = [("ok", GOOD), ("status", 500)] * 3
    results = judge_for(server, concurrency=3).grade(request_factory(n=9))
    assert len(results) == 9 and all(r.grades is not None for r in results)
    assert 1 < server.max_in_flight <= 3


def test_cache_keyed_by_image_and_prompt(server, request_factory, tmp_path):
    judge = judge_for(server, cache_dir=tmp_path / "cache")
    first = judge.grade(request_factory(n=2))
    assert server.requests == 2 and len(list((tmp_path / "cache").glob("*.json"))) == 2
    again = judge.grade(request_factory(n=2))
    assert server.requests == 2 and [r.grades for r in again] == [r.grades for r in first]
    judge.grade(request_factory(n=1, preference="another preference"))
    assert server.requests == 3


def test_rubric_parser_accepts_fences_and_prose():
    assert parse_grades("Sure!\n```json\n" + GOOD + "\n```")[0] == dict.fromkeys(GRADE_KEYS, 6.0)
    assert parse_grades(json.dumps(dict.fromkeys(GRADE_KEYS, 8)))[0] == dict.fromkeys(GRADE_KEYS, 8.0)
    assert parse_grades(json.dumps(dict.fromkeys(GRADE_KEYS, True)))[0] is None


def test_rules_judge_prefers_the_reference_layout_to_a_pile(request_factory):
    (request,) = request_factory()
    raw = scenes()[ROOM]
    pile = {oid: (raw["room_size"]["x"] / 2, raw["room_size"]["y"] / 2, 0.5) for oid in request.placements}
    (pile_m,) = measure([(request.scene, pile)])
    judge = RulesJudge()
    good = judge.grade([request])[0].grades
    bad = judge.grade([JudgeRequest(request.scene, pile, "a gym", pile_m)])[0].grades
    assert all(1 <= g <= 10 for g in list(good.values()) + list(bad.values()))
    assert good["realism_and_3d_geometric_consistency"] > bad["realism_and_3d_geometric_consistency"]
    assert sum(good.values()) > sum(bad.values())
    assert judge.grade([request])[0].grades == good  # deterministic


def test_rows_reach_the_judge_only_when_valid():
    from test_score_data import score_library

    rows = score_library([scene_row(ROOM, answer_text(gt_placements(ROOM))), scene_row(ROOM, "no answer")])
    assert rows[0]["judge"] == "rules" and rows[0]["judge_score"] is not None
    assert rows[1]["judge"] is None and rows[1]["judge_score"] is None
