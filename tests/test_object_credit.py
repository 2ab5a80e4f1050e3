"""Object-level credit (3D-SPO): entry spans, token spans, object advantages, and TRL's loss with them.

- spans: every object entry of an answer maps to the smallest token range covering it, for two
  tokenizers and for token ids that are not the text's canonical tokenization (as an engine samples);
- advantages: a hand-computed two-object group;
- the loss: with strength 0 it equals plain GRPO's to 1e-6; with strength 1 it equals an independent
  computation of the per-token objective (spans found here by decoding every prefix, not by bisection).
"""

from __future__ import annotations

import json
import math
import re
import statistics

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_update_data import completion_logps, read_metrics, scored_rows, write_dataset

from stages import update
from stages.core import answer, vlm
from stages.core.errors import UserError
from stages.core.tiny_vlm import train_tokenizer
from stages.update import object_credit

TOKENIZERS = {size: train_tokenizer(0, size) for size in (512, 4096)}


def entry(oid: str, x: float, y: float, z: float, extra: str = "") -> str:
    return json.dumps({"new_object_id": oid, "x": x, "y": y, "z": z}) + extra


ids_st = st.text("abcdefgh_ 0123456789éü", min_size=1, max_size=12)
number = st.floats(-50, 50, allow_nan=False).map(lambda v: round(v, 3))


@st.composite
def answers(draw):
    objs = draw(st.lists(st.tuples(ids_st, number, number, number), min_size=1, max_size=6, unique_by=lambda t: t[0]))
    sep = draw(st.sampled_from([", ", ",", ",\n  "]))
    think = draw(st.text(max_size=40).filter(lambda t: "<" not in t))
    body = "[" + sep.join(entry(*o) for o in objs) + "]"
    if draw(st.booleans()):
        body = "```json\n" + body + "\n```"
    return f"<think>{think}</think><answer>{body}</answer>", [o[0] for o in objs]


@settings(max_examples=60, deadline=None)
@given(answers(), st.sampled_from(sorted(TOKENIZERS)), st.booleans())
def test_token_spans_are_the_smallest_covering_ranges(case, vocab, engine_split):
    text, ids_in_order = case
    tok = TOKENIZERS[vocab]
    if engine_split:  # not the canonical tokenization: pieces tokenized apart, as a sampler may emit them
        ids = [t for k in range(0, len(text), 7) for t in tok(text[k:k + 7], add_special_tokens=False)["input_ids"]]
    else:
        ids = tok(text, add_special_tokens=False)["input_ids"]

    def decode(x):
        return tok.decode(x, skip_special_tokens=True)

    decoded = decode(ids)
    chars = answer.entry_spans(decoded)
    assert sorted(chars) == sorted(set(ids_in_order))
    for oid, (s, e) in chars.items():
        assert json.loads(decoded[s:e])["new_object_id"] == oid
    for oid, (a, b) in object_credit.token_spans(decode, ids, chars).items():
        s, e = chars[oid]
        assert len(decode(ids[:a])) <= s < len(decode(ids[:a + 1]))  # token a holds the entry's first char
        assert len(decode(ids[:b])) >= e > len(decode(ids[:b - 1]))  # token b-1 holds its last char


def test_entry_spans_read_the_block_the_parser_reads():
    text = ('<answer>[{"new_object_id": "a", "x": 0, "y": 0, "z": 0}]</answer> then '
            '<answer>[{"new_object_id": "a", "x": 1, "y": "}{", "z": 2}, {"new_object_id": "a", "x": 9, "y": 9, "z": 9},'
            ' 7, {"broken": }, {"new_object_id": "b", "x": 1, "y": 1, "z": 1}]</answer>')
    spans = answer.entry_spans(text)
    assert sorted(spans) == ["a", "b"]
    assert json.loads(text[slice(*spans["a"])])["x"] == 1  # the last block, the first entry of an id
    assert answer.entry_spans("no answer") == {} and answer.entry_spans('<answer>{"a": [1, 2, 3]}</answer>') == {}


def test_two_objects_by_hand():
    # sample 0 put the sofa well and the lamp badly; sample 1 the other way round; sample 2 left the lamp out
    scores = [{"sofa": {"collision": 0.0, "penalty": 0.0}, "lamp": {"collision": 1.0, "penalty": 0.5}},
              {"sofa": {"collision": 1.0, "penalty": 0.5}, "lamp": {"collision": 0.0, "penalty": 0.0}},
              {"sofa": {"collision": 0.5, "penalty": 0.25}, "unplaced": {"penalty": float("nan")}}]
    adv = object_credit.object_advantages(scores)
    # deviations from each object's mean: sofa (0, 0.5, 0.25) - 0.25 = -0.25, 0.25, 0; lamp (0.5, 0) - 0.25
    scale = ((4 * 0.25 ** 2) / 5) ** 0.5  # the group's: five placed (sample, object) deviations
    assert adv[0]["sofa"] == pytest.approx(0.25 / (scale + 1e-4))
    assert adv[1]["sofa"] == pytest.approx(-0.25 / (scale + 1e-4))
    assert adv[2]["sofa"] == pytest.approx(0.0)
    assert adv[0]["lamp"] == pytest.approx(-0.25 / (scale + 1e-4))
    assert adv[1]["lamp"] == pytest.approx(0.25 / (scale + 1e-4))
    assert "lamp" not in adv[2] and "unplaced" not in adv[2]
    # an object all samples placed equally gets nothing; the others keep the group's scale
    same = [{"a": {"penalty": 0.3}, "b": {"penalty": 0.0}}, {"a": {"penalty": 0.3}, "b": {"penalty": 1.0}}]
    scale = (0.5 ** 2 * 2 / 4) ** 0.5  # deviations a: 0, 0; b: -0.5, 0.5
    assert object_credit.object_advantages(same) == [{"a": 0.0, "b": pytest.approx(0.5 / (scale + 1e-4))},
                                                     {"a": 0.0, "b": pytest.approx(-0.5 / (scale + 1e-4))}]
    sequence = torch.tensor([0.5, -1.0, 0.5])
    credits = [[(2, 5, adv[0]["sofa"]), (6, 8, adv[0]["lamp"])], [], [(0, 1, 0.0)]]
    out = object_credit.token_advantages(sequence, credits, 10, 0.5)
    assert out.shape == (3, 10)
    assert out[0, 2:5].tolist() == pytest.approx([0.5 + 0.5 * adv[0]["sofa"]] * 3, abs=1e-6)
    assert out[0, 6:8].tolist() == pytest.approx([0.5 + 0.5 * adv[0]["lamp"]] * 2, abs=1e-6)
    assert out[0, [0, 1, 5, 8, 9]].tolist() == [0.5] * 5 and out[1].tolist() == [-1.0] * 10


anything = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10 ** 30, 10 ** 30),
                     st.booleans(), st.none(), st.text(max_size=3))


@settings(max_examples=200, deadline=None)
@example([{"a": {"penalty": 1e308}}, {"a": {"penalty": 1e308}}, {"a": {"penalty": 0.5}}])  # the mean overflows
@given(st.lists(st.dictionaries(st.sampled_from(["a", "b", "c"]),
                                st.dictionaries(st.sampled_from(["penalty", "collision"]), anything), max_size=3),
                min_size=1, max_size=6))
def test_object_advantages_are_finite_whatever_a_dataset_says(scores):
    """object_scores come from a dataset: huge, negative, non-finite or non-numeric penalties give no NaN."""
    for sample in object_credit.object_advantages(scores):
        assert all(math.isfinite(v) for v in sample.values())


# ------------------------------------------------------------------ the loss, through TRL

TWO = [('<think>a</think><answer>[{"new_object_id": "sofa_1", "x": 1.0, "y": 0.5, "z": 0.4}, '
        '{"new_object_id": "lamp_1", "x": 3.1, "y": 1.2, "z": 1.5}]</answer>'),
       ('<think>b</think><answer>[{"new_object_id": "sofa_1", "x": 2.5, "y": 1.5, "z": 0.4}, '
        '{"new_object_id": "lamp_1", "x": 0.2, "y": 2.2, "z": 0.5}]</answer>')]


def credit_rows(tokenizer, directory):
    rows = scored_rows(tokenizer, directory, groups=2, group_size=4, rewards=[[0.9, 0.1, 0.5, 0.3], [0.0, 1.2, 0.7, 0.2]],
                       responses=TWO)
    for k, row in enumerate(rows):
        bad = (k * 0.37) % 1.0
        row["object_scores"] = json.dumps({"sofa_1": {"collision": bad, "penalty": 0.6 * bad},
                                           "lamp_1": {"constraint": 1 - bad, "penalty": 0.2 * (1 - bad) + 0.1}})
    return rows


def independent_advantages(rows, tokenizer, strength):
    """Per-token advantages computed the slow, obvious way: offsets from decoding every prefix."""
    out = []
    groups: dict[str, list[int]] = {}
    for k, row in enumerate(rows):
        groups.setdefault(row["group_id"], []).append(k)
    for row in rows:
        members = groups[row["group_id"]]
        rewards = [rows[j]["reward"] for j in members]
        seq = (row["reward"] - statistics.mean(rewards)) / (statistics.stdev(rewards) + 1e-4)
        ids = row["response_token_ids"]
        ends = [len(tokenizer.decode(ids[:t + 1], skip_special_tokens=True)) for t in range(len(ids))]
        starts = [0, *ends[:-1]]
        text = tokenizer.decode(ids, skip_special_tokens=True)
        token_adv = [seq] * len(ids)
        penalties = {oid: [json.loads(rows[j]["object_scores"])[oid]["penalty"] for j in members]
                     for oid in ("sofa_1", "lamp_1")}
        deviations = [p - statistics.mean(ps) for ps in penalties.values() for p in ps]
        scale = statistics.mean(d * d for d in deviations) ** 0.5
        for oid in ("sofa_1", "lamp_1"):
            mine = json.loads(row["object_scores"])[oid]["penalty"]
            b = -(mine - statistics.mean(penalties[oid])) / (scale + 1e-4)
            s = text.index(f'{{"new_object_id": "{oid}"')
            e = text.index("}", s) + 1
            for t in range(len(ids)):
                if ends[t] > s and starts[t] < e:
                    token_adv[t] = seq + strength * b
        out.append(torch.tensor(token_adv))
    return out


def dapo_step(model, processor, directory, rows, advantages):
    """DAPO's first-step loss (token mean over the batch) and gradient norm with per-token advantages."""
    logps = completion_logps(model, processor, directory, rows)
    total, count = 0.0, 0
    for lp, adv in zip(logps, advantages, strict=True):
        ratio = torch.exp(lp - lp.detach())
        total = total - torch.min(ratio * adv, torch.clamp(ratio, 0.8, 1.2) * adv).sum()
        count += len(lp)
    loss = total / count
    model.zero_grad()
    loss.backward()
    grad_norm = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in model.parameters() if p.grad is not None))
    return float(loss), float(grad_norm)


def first_step(tmp_path, tiny_model, data, name, **options):
    out = update.run(update.Config(input=data, output=tmp_path / name, model=str(tiny_model), max_steps=1,
                                   per_device_train_batch_size=8, loss_type="dapo", max_grad_norm=1e6, **options))
    first = read_metrics(out)[0]
    return (first["loss"], first["grad_norm"]), json.loads((out / "_manifest.json").read_text())


def test_strength_zero_is_plain_grpo_and_strength_one_matches_by_hand(tmp_path, tiny_model, processor):
    data = tmp_path / "scores"
    rows = credit_rows(processor.tokenizer, data)
    write_dataset(data, rows)
    plain, _ = first_step(tmp_path, tiny_model, data, "plain")
    zero, manifest = first_step(tmp_path, tiny_model, data, "zero", object_credit=0.0)
    assert zero[0] == pytest.approx(plain[0], abs=1e-6) and zero[1] == pytest.approx(plain[1], rel=1e-6)
    assert manifest["object_credit"] == 0.0 and manifest["object_credit_entries"] == 16
    one, _ = first_step(tmp_path, tiny_model, data, "one", object_credit=1.0)
    model = vlm.load_model(tiny_model).train()
    loss, grad_norm = dapo_step(model, processor, data, rows, independent_advantages(rows, processor.tokenizer, 1.0))
    assert one[0] == pytest.approx(loss, abs=1e-5) and one[1] == pytest.approx(grad_norm, rel=1e-5)
    assert abs(one[1] - plain[1]) > 1e-3 * plain[1]  # the credit changed the gradient


def test_object_credit_without_object_scores_exits_2(tmp_path, tiny_model, processor):
    data = write_dataset(tmp_path / "scores", scored_rows(processor.tokenizer, tmp_path / "scores"))
    with pytest.raises(UserError) as err:
        update.run(update.Config(input=data, output=tmp_path / "m", model=str(tiny_model), max_steps=1,
                                 object_credit=0.5))
    assert "object_scores" in str(err.value)
    assert not (tmp_path / "m" / "model.safetensors").exists()


# ------------------------------------------------------------------ --loss-tokens free

@settings(max_examples=60, deadline=None)
@given(answers())
def test_free_spans_are_the_reasoning_and_every_coordinate(case):
    text, ids_in_order = case
    spans = answer.free_spans(text)
    think = text[len("<think>"):text.index("</think>")]
    entries = [json.loads(text[lo:hi]) for lo, hi in sorted(answer.entry_spans(text).values())]
    values = [json.dumps(e[k]) for e in entries for k in "xyz"]
    assert [text[a:b - 1] for a, b in spans] == [think, *values]
    assert [text[b - 1] for a, b in spans] == ["<", *[",", ",", "}"] * len(ids_in_order)]


def test_loss_tokens_free_matches_by_hand(tmp_path, tiny_model, processor):
    """Only the reasoning and coordinate tokens count: DAPO's token mean over them, computed independently."""
    data = tmp_path / "scores"
    rows = credit_rows(processor.tokenizer, data)
    write_dataset(data, rows)
    plain, _ = first_step(tmp_path, tiny_model, data, "plain")
    free, manifest = first_step(tmp_path, tiny_model, data, "free", loss_tokens="free")
    assert manifest["loss_tokens"] == "free" and 0.1 < manifest["loss_token_share"] < 0.6
    model = vlm.load_model(tiny_model).train()
    logps = completion_logps(model, processor, data, rows)
    total, count = 0.0, 0
    for row, lp, adv in zip(rows, logps, independent_advantages(rows, processor.tokenizer, 0.0), strict=True):
        ids = row["response_token_ids"]
        text = processor.tokenizer.decode(ids, skip_special_tokens=True)
        chars = {k for m in re.finditer(r'(?<=": )-?[0-9.]+', text) for k in range(m.start(), m.end() + 1)}
        chars |= set(range(len("<think>"), text.index("</think>") + 1))
        ends = [len(processor.tokenizer.decode(ids[:t + 1], skip_special_tokens=True)) for t in range(len(ids))]
        keep = torch.tensor([any(k in chars for k in range(s, e)) for s, e in zip([0, *ends[:-1]], ends, strict=True)])
        ratio = torch.exp(lp - lp.detach())
        total = total - (torch.min(ratio * adv, torch.clamp(ratio, 0.8, 1.2) * adv) * keep).sum()
        count += int(keep.sum())
    loss = total / count
    model.zero_grad()
    loss.backward()
    grad_norm = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in model.parameters() if p.grad is not None))
    assert free[0] == pytest.approx(float(loss), abs=1e-5) and free[1] == pytest.approx(float(grad_norm), rel=1e-5)
    assert abs(free[1] - plain[1]) > 1e-3 * plain[1]
