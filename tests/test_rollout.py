"""rollout end to end with the transformers backend: the real CLI, a tiny model built here, the
contract columns, exact token rebuild, --guided validity, turn 2 from a hand-made scored dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import REPO, cli, example_prompts
from PIL import Image

from stages.core import rows as contract
from stages.core import vlm
from stages.core.answer import parse_answer
from stages.core.scene import Scene

ROOMS = REPO / "examples" / "rooms" / "rooms.jsonl"
CONTRACT = ["sample_id", "group_id", "sample_index", "turn", "trajectory_id", "response", "model", "backend",
            "num_response_tokens", "finish_reason", "history"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model") / "tiny"
    code, text = cli("make-model", "tiny-qwen2.5-vl", out)
    assert code == 0, text
    return out


@pytest.fixture(scope="module")
def prompts(tmp_path_factory) -> Path:
    return example_prompts(tmp_path_factory.mktemp("prompts") / "p", 128)


@pytest.fixture(scope="module")
def turn1(tmp_path_factory, tiny, prompts) -> Path:
    out = tmp_path_factory.mktemp("rollouts") / "t1"
    code, text = cli("rollout", "--input", prompts, "--output", out, "--model", tiny, "--n", 2, "--max-rows", 3,
                     "--max-new-tokens", 12, "--logprobs", "--temperature", 0.8, "--chunk-size", 2)
    assert code == 0, text
    assert "samples/s" in text and "tokens/s" in text
    return out


def test_turn1_rows_have_contract_columns_and_groups(turn1, prompts, tiny):
    rows = pd.read_parquet(turn1)
    assert len(rows) == 3 * 2
    assert set(CONTRACT) <= set(rows.columns)
    assert set(pd.read_parquet(prompts).columns) <= set(rows.columns)
    assert rows.sample_id.is_unique and rows.trajectory_id.is_unique
    assert rows.groupby("group_id").size().tolist() == [2, 2, 2]
    assert (rows.groupby("group_id").prompt_id.nunique() == 1).all()
    assert sorted(rows.sample_index.unique()) == [0, 1]
    assert (rows.turn == 1).all() and (rows.history == "[]").all()
    assert set(rows.backend) == {"transformers"} and set(rows.model) == {str(tiny)}
    assert rows.num_response_tokens.between(1, 12).all()
    assert set(rows.finish_reason) <= {"stop", "length"}
    assert (rows.response_token_ids.map(len) == rows.num_response_tokens).all()
    assert (turn1 / rows.image[0]).is_file() and (rows.prompt_image == rows.image).all()
    manifest = json.loads((turn1 / "_manifest.json").read_text())
    assert manifest["stage"] == "rollout" and manifest["rows"] == 6


def test_stored_tokens_rebuild_exactly_through_the_shared_builder(turn1, tiny):
    """What `update` does: rebuild the prompt from prompt + image + history, append the stored
    response tokens, and get the stored log-probabilities back from one forward pass."""
    import torch

    processor, model = vlm.load_processor(tiny), vlm.load_model(tiny)
    for row in pd.read_parquet(turn1).head(3).itertuples():
        messages = vlm.build_messages(row.prompt, vlm.open_image(turn1, row.image), contract.history(row.history))
        enc = vlm.encode_chats(processor, [messages])
        assert enc["input_ids"].shape[1] == row.num_prompt_tokens
        response = torch.tensor([list(row.response_token_ids)])
        ids = torch.cat([enc["input_ids"], response], dim=1)
        types = torch.cat([enc["mm_token_type_ids"], torch.zeros_like(response)], dim=1)
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=enc["pixel_values"],
                           image_grid_thw=enc["image_grid_thw"], mm_token_type_ids=types).logits
        prompt_len = enc["input_ids"].shape[1]
        logps = torch.log_softmax(logits[0, prompt_len - 1:-1].float() / row.temperature, dim=-1)
        expected = logps.gather(1, response[0][:, None]).squeeze(1)
        assert torch.allclose(expected, torch.tensor(list(row.response_logprobs)), atol=2e-3)
        assert processor.tokenizer.decode(response[0], skip_special_tokens=True) == row.response


def test_same_seed_same_samples_and_datasets_reads_it(turn1, tiny, prompts, tmp_path):
    import datasets

    again = tmp_path / "again"
    code, text = cli("rollout", "--input", prompts, "--output", again, "--model", tiny, "--n", 2, "--max-rows", 3,
                     "--max-new-tokens", 12, "--logprobs", "--temperature", 0.8, "--chunk-size", 2)
    assert code == 0, text
    assert pd.read_parquet(again).response.tolist() == pd.read_parquet(turn1).response.tolist()
    loaded = datasets.load_dataset("parquet", data_dir=str(turn1), split="train")
    assert loaded.num_rows == 6 and "response_token_ids" in loaded.column_names


def test_guided_answers_parse_and_name_every_object_once(tiny, prompts, tmp_path):
    out = tmp_path / "guided"
    code, text = cli("rollout", "--input", prompts, "--output", out, "--model", tiny, "--n", 2, "--max-rows", 4,
                     "--guided", "--guided-think-chars", 24, "--max-new-tokens", 1024, "--batch-size", 8)
    assert code == 0, text
    rows = pd.read_parquet(out)
    good = 0
    for row in rows.itertuples():
        ids = Scene.from_row(row._asdict()).ids
        parsed = parse_answer(row.response, ids)
        answer = json.loads(row.response.split("<answer>")[1].split("</answer>")[0])
        named = [item["new_object_id"] for item in answer]
        inside = all(0 <= item[a] <= getattr(row, f"room_{a}") for item in answer for a in "xyz")
        good += sorted(named) == sorted(ids) and len(parsed.placements) == len(ids) and inside
    assert good / len(rows) >= 0.99, rows.response.tolist()


def _scored_turn1(turn1: Path, out: Path) -> Path:
    """What render + score would write for turn 1: renders, rewards and feedback per row."""
    rows = pd.read_parquet(turn1).to_dict("records")
    for k, row in enumerate(rows):
        render = f"_images/renders/{k:04x}.png"
        (out / render).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (96, 96), (40 * k % 255, 80, 160)).save(out / render)
        ids = Scene.from_row(row).ids
        row.update(render_perspective=render, render_topdown=render, layout="[]", parse_error=None,
                   reward=0.25 + k / 100, format_reward=0.1, judge_score=None,
                   feedback=json.dumps({"collisions": [[ids[0], ids[-1]]], "out_of_bounds": [ids[0]],
                                        "violations": [{"object_id": ids[-1], "preposition": "on",
                                                        "target": "north_wall"}],
                                        "missing": [], "unknown": ["ghost_1"], "parse_error": None}))
    (out / "_images" / "rooms").mkdir(parents=True, exist_ok=True)
    for row in rows:
        (out / row["image"]).write_bytes((turn1 / row["image"]).read_bytes())
    pq.write_table(pa.Table.from_pylist(rows), out / "scored.parquet")
    return out


def test_turn2_prompt_shows_previous_answer_reward_feedback_and_render(turn1, tiny, tmp_path):
    scored = _scored_turn1(turn1, tmp_path / "scored")
    out = tmp_path / "t2"
    code, text = cli("rollout", "--input", scored, "--output", out, "--model", tiny, "--turn", 2,
                     "--max-new-tokens", 8)
    assert code == 0, text
    before = pd.read_parquet(scored).set_index("trajectory_id")
    rows = pd.read_parquet(out)
    assert len(rows) == len(before) and (rows.turn == 2).all()
    assert sorted(rows.trajectory_id) == sorted(before.index)
    assert not {"reward", "feedback", "render_perspective", "layout", "judge_score"} & set(rows.columns)
    for row in rows.itertuples():
        prev = before.loc[row.trajectory_id]
        history = json.loads(row.history)
        assert history[-1]["turn"] == 1 and history[-1]["response"] == prev.response
        assert row.prompt_image == prev.render_perspective and (out / row.prompt_image).is_file()
        messages = json.loads(row.messages)
        assert messages[0]["content"][0] == {"type": "image", "image": prev.render_perspective}
        text = messages[0]["content"][1]["text"]
        assert text.startswith(prev.prompt.rstrip())
        assert f"{prev.reward:.3f}" in text and "ghost_1" in text and "should be on north_wall" in text
        assert "Overlapping objects:" in text and "Outside the room:" in text
        assert row.group_id == f"{row.trajectory_id}-t2" and row.sample_id == f"{row.trajectory_id}-t2"


def test_turn2_branches_with_n(turn1, tiny, tmp_path):
    scored = _scored_turn1(turn1, tmp_path / "scored")
    out = tmp_path / "t2b"
    code, text = cli("rollout", "--input", scored, "--output", out, "--model", tiny, "--turn", 2, "--n", 2,
                     "--max-new-tokens", 4, "--max-rows", 2)
    assert code == 0, text
    rows = pd.read_parquet(out)
    assert len(rows) == 4 and rows.groupby("group_id").size().tolist() == [2, 2]
    assert all(t.rsplit(".", 1)[0] == g.rsplit("-t2", 1)[0] for t, g in zip(rows.trajectory_id, rows.group_id, strict=True))


def test_bad_inputs_fail_before_anything_is_written(tiny, prompts, tmp_path):
    out = tmp_path / "never"
    code, text = cli("rollout", "--input", prompts, "--output", out, "--model", tiny, "--turn", 2)
    assert code == 2 and "missing column(s)" in text and "reward" in text
    code, text = cli("rollout", "--input", prompts, "--output", out, "--model", "./no/such/model")
    assert code == 2 and "no/such/model" in text
    code, text = cli("rollout", "--input", prompts, "--output", out, "--model", tiny, "--backend", "openai",
                     "--logprobs")
    assert code == 2 and "logprobs" in text
    assert not out.exists()


def test_lora_adapter_directory_loads_onto_its_base(tiny, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model

    base = vlm.load_model(tiny)
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert vlm.model_source(tmp_path / "adapter") == (config["base_model_name_or_path"], tmp_path / "adapter")
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.inference_mode():
        expected = peft_model(input_ids=ids).logits
        loaded = vlm.load_model(tmp_path / "adapter")(input_ids=ids).logits
        plain = vlm.load_model(tiny)(input_ids=ids).logits
    assert torch.allclose(loaded, expected, atol=1e-5) and not torch.allclose(plain, expected, atol=1e-3)
    assert vlm.load_processor(tmp_path / "adapter").tokenizer.padding_side == "left"


def test_another_architecture_samples_too(prompts, tmp_path):
    """Nothing in the stage is Qwen-specific: a tiny LLaVA (CLIP + Qwen2) samples with images."""
    code, text = cli("make-model", "tiny-llava", tmp_path / "llava")
    assert code == 0, text
    code, text = cli("rollout", "--input", prompts, "--output", tmp_path / "r", "--model", tmp_path / "llava",
                     "--n", 2, "--max-rows", 2, "--max-new-tokens", 4, "--logprobs")
    assert code == 0, text
    rows = pd.read_parquet(tmp_path / "r")
    assert len(rows) == 4 and (rows.response_logprobs.map(len) == rows.num_response_tokens).all()


def test_system_prompt_from_gen_prompts_opens_the_chat(tiny, tmp_path):
    """gen-prompts --system-prompt writes the column; rollout puts it first in the chat it samples from."""
    system = "Reason inside <think></think> first, then answer inside <answer></answer>."
    code, text = cli("gen-prompts", "--source", "jsonl", "--input", ROOMS, "--output", tmp_path / "p",
                     "--image-size", "64", "--system-prompt", system, "--max-rows", 1)
    assert code == 0, text
    assert (pd.read_parquet(tmp_path / "p")["system_prompt"] == system).all()
    code, text = cli("rollout", "--input", tmp_path / "p", "--output", tmp_path / "r", "--model", tiny, "--n", 2,
                     "--max-new-tokens", 4)
    assert code == 0, text
    for row in pd.read_parquet(tmp_path / "r").itertuples():
        messages = json.loads(row.messages)
        assert messages[0] == {"role": "system", "content": [{"type": "text", "text": system}]}
        assert messages[1]["role"] == "user"
    bad = pd.read_parquet(tmp_path / "p").assign(system_prompt=7)
    bad.to_parquet(tmp_path / "p" / "train-00000-of-00001.parquet")
    (tmp_path / "p" / "_manifest.json").unlink()  # read the edited part as it is
    code, text = cli("rollout", "--input", tmp_path / "p", "--output", tmp_path / "r2", "--model", tiny)
    assert code == 2 and "system_prompt: must be text" in text


def test_progress_is_reported_per_generated_batch(tiny):
    from stages import rollout
    from stages.rollout.backends import Request, make_backend

    backend = make_backend(rollout.Config(model=str(tiny), batch_size=2, max_new_tokens=6))
    chat = [{"role": "user", "content": [{"type": "text", "text": "place it"}]}]
    calls: list[tuple[int, int]] = []
    done = backend.generate([Request(messages=chat, n=n, seed=n) for n in (1, 3)],
                            progress=lambda samples, tokens: calls.append((samples, tokens)))
    assert [samples for samples, _ in calls] == [2, 2]  # 4 samples in batches of 2: the bar moves twice
    assert sum(tokens for _, tokens in calls) == sum(c.num_tokens for out in done for c in out)
