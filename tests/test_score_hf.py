"""The `hf` judge with a tiny random Qwen2.5-VL built locally (`stages.core.tiny_vlm`): the whole
path runs (image + rubric prompt through the processor, generation, strict reply parsing); a random
model's reply is not a grade sheet, so the row's failure must be reported, and the stage falls back."""

import json

import pytest
from PIL import Image
from test_score_data import answer_text, gt_placements, scene_row, scenes

from stages.core.answer import parse_answer
from stages.core.measure import measure
from stages.core.scene import Scene
from stages.score.judges import JudgeRequest
from stages.score.judges.hf import HFJudge
from stages.score.judges.rules import RulesJudge
from stages.score.scoring import score_rows

ROOM = next(iter(scenes()))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from stages.core.tiny_vlm import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm"), seed=0)


@pytest.fixture(scope="module")
def render(tmp_path_factory):
    path = tmp_path_factory.mktemp("renders") / "top.png"
    Image.new("RGB", (56, 56), (120, 160, 200)).save(path)
    return path


def test_hf_judge_runs_the_model_and_reports_an_unparseable_reply(tiny_model, render):
    raw = scenes()[ROOM]
    scene = Scene.from_idesign(raw["scene_graph"], raw["room_size"], ROOM)
    placements = parse_answer(answer_text(gt_placements(ROOM)), scene.ids).placements
    (m,) = measure([(scene, placements)])
    judge = HFJudge(str(tiny_model), max_new_tokens=16)
    (result,) = judge.grade([JudgeRequest(scene, placements, raw["description"], m, [render])])
    assert result.grades is None and result.error.startswith("hf: malformed reply")
    (missing,) = judge.grade([JudgeRequest(scene, placements, "x", m, [render.parent / "nope.png"])])
    assert missing.grades is None and "cannot read render" in missing.error


def test_hf_judge_failure_falls_back_to_rules_in_the_stage(tiny_model, render):
    from stages import score

    cfg = score.Config(judge="hf", judge_model=str(tiny_model), judge_max_tokens=16)
    row = dict(scene_row(ROOM, answer_text(gt_placements(ROOM))), render_topdown=str(render))
    (out,) = score_rows([row], cfg, HFJudge(str(tiny_model), max_new_tokens=16), RulesJudge(), None)
    assert out["judge"] == "rules (fallback)" and out["judge_error"].startswith("hf:")
    assert out["judge_score"] is not None and json.loads(out["judge_grades"])
