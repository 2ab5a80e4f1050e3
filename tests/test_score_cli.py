"""End to end: `metaspatial score` on datasets built by `metaspatial gen-prompts` from the fixture scenes."""

import json
import os

import pandas as pd
import pytest
from helpers import cli
from PIL import Image
from test_score_data import ORACLE, cases, centres_inside
from test_score_judges import FakeOpenAI

KINDS = ("ground_truth", "perturb_small", "random_anywhere", "stacked_same_point", "string_coords", "scalar_answer",
         "dict_keyed_by_id", "nan_coords", "two_answer_blocks", "code_fence_in_answer")


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    out = tmp_path_factory.mktemp("score") / "prompts"
    code, text = cli("gen-prompts", "--source", "jsonl", "--input", ORACLE / "scenes.jsonl", "--output", out)
    assert code == 0, text
    return pd.read_parquet(out)


def rollout_dir(prompts, path, kinds=KINDS, images=False):
    """A rollout-like dataset: prompt rows joined with fixture responses (and optional renders)."""
    rows = []
    for k, case in enumerate(cases()):
        if case["case_kind"] in kinds:
            row = prompts[prompts.room_id == case["room_id"]].iloc[0].to_dict()
            rows.append({**row, "response": case["response"], "case_kind": case["case_kind"], "case_index": k})
    path.mkdir(parents=True)
    if images:
        (path / "_images").mkdir()
        for k, row in enumerate(rows):
            Image.new("RGB", (24, 24), (k * 7 % 255, 90, 120)).save(path / "_images" / f"{k:04x}.png")
            row["render_topdown"] = f"_images/{k:04x}.png"
    pd.DataFrame(rows).to_parquet(path / "train-00000-of-00001.parquet")
    return path


def test_v1_preset_cli_matches_upstream(prompts, tmp_path):
    src = rollout_dir(prompts, tmp_path / "in")
    code, text = cli("score", "--input", src, "--output", tmp_path / "out", "--preset", "metaspatial-v1",
                     "--judge", "constant", "--judge-grades", "7,6,8,5,7")
    assert code == 0, text
    out = pd.read_parquet(tmp_path / "out")
    assert len(out) == len(pd.read_parquet(src))
    for _, row in out.iterrows():
        expected = cases()[row.case_index]["upstream"]["combined_score"]
        if expected is None:
            assert row.reward == 0.0 and row.upstream_crash
        else:
            assert row.reward == pytest.approx(expected, abs=1e-6)


def test_default_preset_cli_columns_and_ordering(prompts, tmp_path):
    src = rollout_dir(prompts, tmp_path / "in")
    code, text = cli("score", "--input", src, "--output", tmp_path / "out")
    assert code == 0, text
    out = pd.read_parquet(tmp_path / "out")
    for column in ("reward", "format_reward", "collision_ratio", "constraint_ratio", "out_of_bounds_ratio",
                   "judge_score", "judge_grades", "judge", "judge_error", "return", "feedback"):
        assert column in out.columns
    feedback = [json.loads(f) for f in out.feedback]
    assert all({"collisions", "out_of_bounds", "violations", "missing", "unknown", "parse_error"} <= set(f)
               for f in feedback)
    mean = out[[centres_inside(row) for _, row in out.iterrows()]].groupby("case_kind").reward.mean()
    assert mean["ground_truth"] > mean["perturb_small"] > mean["stacked_same_point"]
    assert out[out.case_kind == "random_anywhere"].reward.max() < out[out.case_kind == "stacked_same_point"].reward.min()
    assert mean[["string_coords", "scalar_answer", "nan_coords", "dict_keyed_by_id"]].max() < 1
    assert (out["return"] == out.reward).all()  # single turn: return is the reward
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert manifest["stage"] == "score" and manifest["config"]["preset"] == "metaspatial"


def test_bug18_scoring_writes_nothing_into_its_input(prompts, tmp_path):
    """Upstream bug 18: shared scratch files. Score reads each row's own paths and writes only its output."""
    src = rollout_dir(prompts, tmp_path / "in", kinds=("ground_truth",))
    before = sorted(p.relative_to(src) for p in src.rglob("*"))
    assert cli("score", "--input", src, "--output", tmp_path / "out")[0] == 0
    assert sorted(p.relative_to(src) for p in src.rglob("*")) == before


def test_multi_turn_return(prompts, tmp_path):
    base = prompts.iloc[0].to_dict()
    gt = next(c for c in cases() if c["case_kind"] == "ground_truth" and c["room_id"] == base["room_id"])
    junk = "<answer>oops</answer>"
    rows = [dict(base, response=r, trajectory_id="t1", turn=t) for t, r in enumerate([junk, gt["response"]])]
    rows.append(dict(base, response=gt["response"], trajectory_id="t2", turn=2,
                     history=json.dumps([{"turn": 0, "reward": 0.0}, {"turn": 1, "reward": 1.0}])))
    (tmp_path / "in").mkdir()
    pd.DataFrame(rows).to_parquet(tmp_path / "in" / "train-00000-of-00001.parquet")
    assert cli("score", "--input", tmp_path / "in", "--output", tmp_path / "avg")[0] == 0
    assert cli("score", "--input", tmp_path / "in", "--output", tmp_path / "sum", "--return-mode",
               "discounted-sum", "--gamma", "0.5")[0] == 0
    avg, total = pd.read_parquet(tmp_path / "avg"), pd.read_parquet(tmp_path / "sum")
    r0, r1, r2 = avg.reward
    assert avg["return"].tolist() == pytest.approx([r0, (r0 + 0.9 * r1) / 1.9, (0 + 0.9 + 0.81 * r2) / 2.71])
    assert total["return"].tolist() == pytest.approx([r0, r0 + 0.5 * r1, 0 + 0.5 + 0.25 * r2])


def test_bad_inputs_fail_with_exit_2_before_writing(prompts, tmp_path):
    src = rollout_dir(prompts, tmp_path / "in", kinds=("ground_truth",))
    code, text = cli("score", "--input", src, "--output", tmp_path / "o1", "--judge", "constant")
    assert code == 2 and "judge-grades" in text
    code, text = cli("score", "--input", src, "--output", tmp_path / "o2", "--judge", "openai",
                     "--judge-url", "http://127.0.0.1:9/v1", "--judge-model", "m")
    assert code == 2 and "render_topdown" in text and not (tmp_path / "o2").exists()
    broken = pd.read_parquet(src)
    broken.loc[1, "scene"] = "[{\"new_object_id\": 3}]"
    (tmp_path / "bad").mkdir()
    broken.to_parquet(tmp_path / "bad" / "train-00000-of-00001.parquet")
    code, text = cli("score", "--input", tmp_path / "bad", "--output", tmp_path / "o3")
    assert code == 2 and "row 1" in text and "new_object_id" in text and not (tmp_path / "o3").exists()
    code, text = cli("score", "--input", src.parent / "missing", "--output", tmp_path / "o4")
    assert code == 2


def test_openai_judge_end_to_end_with_failures_visible(prompts, tmp_path, monkeypatch):
    server = FakeOpenAI()
    try:
        good = json.dumps({k: {"grade": 8} for k in ("realism_and_3d_geometric_consistency",
                                                     "functionality_and_activity_based_alignment",
                                                     "layout_and_furniture", "color_scheme_and_material_choices",
                                                     "overall_aesthetic_and_atmosphere")})
        server.default = ("ok", good)
        server.script = [("status", 500)] * 3 + [("ok", "not json at all")] * 3
        monkeypatch.setenv("JUDGE_SECRET", "sk-never-written")
        src = rollout_dir(prompts, tmp_path / "in", kinds=("ground_truth", "scalar_answer"), images=True)
        code, text = cli("score", "--input", src, "--output", tmp_path / "out", "--judge", "openai",
                         "--judge-url", server.url, "--judge-model", "judge", "--judge-api-key-env", "JUDGE_SECRET",
                         "--judge-retries", "0", "--judge-concurrency", "1")
        assert code == 0, text
    finally:
        server.close()
    out = pd.read_parquet(tmp_path / "out")
    judged = out[out.judge.notna()]
    assert len(out) == len(pd.read_parquet(src)) and len(judged) == (out.case_kind == "ground_truth").sum()
    failed = judged[judged.judge_error.notna()]
    assert len(failed) == 6 and set(failed.judge) == {"rules (fallback)"}
    assert failed.judge_error.str.contains("HTTP 500").sum() == 3 and failed.judge_score.notna().all()
    assert set(judged[judged.judge_error.isna()].judge) == {"openai"}
    assert set(server.auth) == {"Bearer sk-never-written"}
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert b"sk-never-written" not in path.read_bytes()
    assert "sk-never-written" not in text and os.environ["JUDGE_SECRET"] == "sk-never-written"


def test_sharded_score_equals_one_process(prompts, tmp_path):
    src = rollout_dir(prompts, tmp_path / "in", kinds=("ground_truth", "random_inside", "nan_coords"))
    assert cli("score", "--input", src, "--output", tmp_path / "one")[0] == 0
    for shard in (0, 1):
        code, text = cli("score", "--input", src, "--output", tmp_path / "two", "--num-shards", 2,
                         "--shard-index", shard, "--chunk-size", 7)
        assert code == 0, text
    one, two = pd.read_parquet(tmp_path / "one"), pd.read_parquet(tmp_path / "two")
    assert len(two) == len(one)
    merged = two.sort_values("case_index").reset_index(drop=True)
    assert merged.reward.tolist() == one.sort_values("case_index").reward.tolist()


def test_bug19_reference_to_a_missing_object_is_a_clear_input_error(prompts, tmp_path):
    src = rollout_dir(prompts, tmp_path / "in", kinds=("ground_truth",))
    table = pd.read_parquet(src)
    graph = json.loads(table.loc[0, "scene"])
    graph[0]["placement"]["objects_in_room"] = [{"object_id": "ghost_9", "preposition": "on", "is_adjacent": True}]
    table.loc[0, "scene"] = json.dumps(graph)
    (tmp_path / "bad").mkdir()
    table.to_parquet(tmp_path / "bad" / "train-00000-of-00001.parquet")
    code, text = cli("score", "--input", tmp_path / "bad", "--output", tmp_path / "out")
    assert code == 2 and "ghost_9" in text and "row 0" in text and not (tmp_path / "out").exists()


def test_object_penalty_weighs_measures_as_the_reward_does(prompts, tmp_path):
    src = rollout_dir(prompts, tmp_path / "in", kinds=("perturb_small", "stacked_same_point", "random_anywhere"))
    code, text = cli("score", "--input", src, "--output", tmp_path / "out", "--judge", "rules",
                     "--weight-collision", "2", "--weight-constraint", "0", "--weight-out-of-bounds", "1",
                     "--weight-support", "1")
    assert code == 0, text
    seen = 0
    for raw in pd.read_parquet(tmp_path / "out").object_scores.dropna():
        for m in json.loads(raw).values():
            expected = (2 * m["collision"] + m["out_of_bounds"] + m["support"]) / 4
            assert m["penalty"] == pytest.approx(expected, abs=1e-6)
            seen += expected > 0
    assert seen > 10  # the layouts had objects with something wrong
