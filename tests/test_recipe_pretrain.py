"""The warm-up's answers look exactly like guided rollouts, so the model learns the format it samples in."""

import json

from helpers import cli

from metaspatial_cli.pretrain import answer_text
from stages.core import vlm
from stages.core.answer import VALID, parse_answer
from stages.core.tiny_vlm import build_tiny_vlm


def test_answer_text_is_a_valid_rounded_answer():
    text = answer_text({"bed_1": [2.04, 1.26, 0.3], "lamp_1": [0.5, 3.0, 1.449]}, decimals=1)
    parsed = parse_answer(text, ["bed_1", "lamp_1"])
    assert parsed.format_level == VALID
    assert parsed.placements == {"bed_1": (2.0, 1.3, 0.3), "lamp_1": (0.5, 3.0, 1.4)}
    body = text.split("<answer>")[1].split("</answer>")[0]
    assert json.loads(body)[0] == {"new_object_id": "bed_1", "x": 2.0, "y": 1.3, "z": 0.3}
    assert text.startswith("<think></think>\n<answer>[{\"new_object_id\": \"bed_1\", \"x\": 2.0")


def test_pretrain_command_writes_a_loadable_model_whose_loss_falls(tmp_path):
    base = build_tiny_vlm(tmp_path / "tiny")
    out = tmp_path / "warm"
    code, text = cli("pretrain", "--base", base, "--output", out, "--num-rooms", 2, "--epochs", 3,
                     "--learning-rate", 0.01, "--batch-size", 1)
    assert code == 0, text
    report = json.loads((out / "pretrain.json").read_text())
    assert report["rooms"] == 2 and report["epoch_loss"][-1] < report["epoch_loss"][0]
    assert vlm.load_model(str(out), dtype="float32") is not None
    assert not list(tmp_path.glob(".warm.tmp-*"))  # the staging folder is gone


def test_pretrain_command_rejects_bad_options_and_writes_nothing(tmp_path):
    code, text = cli("pretrain", "--base", tmp_path / "tiny", "--output", tmp_path / "warm", "--epochs", 0)
    assert code == 2 and "epochs" in text
    code, text = cli("pretrain", "--base", tmp_path / "missing", "--output", tmp_path / "warm", "--num-rooms", 1)
    assert code == 2 and "--base: cannot load" in text
    assert not (tmp_path / "warm").exists() and not list(tmp_path.glob(".warm.tmp-*"))
