"""The command line itself: help that lists every command, flags generated from config classes."""

import pytest
from helpers import cli

from stages.gen_prompts import Config


def test_help_lists_every_stage_and_tool():
    code, out = cli("--help")
    assert code == 0
    for name in ("gen-prompts", "rollout", "render", "score", "update", "recipe", "inspect"):
        assert name in out


def test_every_config_field_is_a_documented_flag():
    code, out = cli("gen-prompts", "--help")
    assert code == 0
    flat = " ".join(out.split())
    for name, field in Config.model_fields.items():
        assert "--" + name.replace("_", "-") in flat
        assert field.description, f"{name} has no docstring"
    assert "(default: 256)" in flat


def test_inspect_summarises_a_dataset_and_rejects_a_non_dataset(tmp_path, oracle_dir):
    assert cli("gen-prompts", "--source", "jsonl", "--input", oracle_dir / "scenes.jsonl", "--output", tmp_path / "p",
               "--image-size", 64)[0] == 0
    code, out = cli("inspect", tmp_path / "p")
    assert code == 0
    assert "gen-prompts" in out and "29" in out and "room_type" in out and "gym" in out
    code, out = cli("inspect", tmp_path / "nothing")
    assert code == 2 and "no such dataset directory" in out


def test_a_misspelt_config_key_gets_did_you_mean_like_a_misspelt_flag(tmp_path):
    (tmp_path / "r.yaml").write_text("max_new_tokns: 3\n")
    code, out = cli("rollout", "--config", tmp_path / "r.yaml", "--model", "m", "--output", tmp_path / "o")
    assert code == 2 and "max_new_tokns: unknown key (did you mean max_new_tokens?)" in out
    assert not (tmp_path / "o").exists()


def test_a_source_without_its_input_says_so_in_one_line(tmp_path):
    code, out = cli("gen-prompts", "--source", "jsonl", "--output", tmp_path / "p")
    assert code == 2
    assert out.strip() == "error: options: source 'jsonl' needs --input"


def test_output_is_required_not_silently_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out = cli("gen-prompts", "--num-rooms", 1)
    assert code == 2 and "--output: required" in out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["recipe", "plan"], ["recipe", "run"], ["inspect"], ["report"], ["design", "--model", "m", "--output", "o", "--rooms"]])
def test_errors_quoting_markup_are_printed_as_text(tmp_path, command):
    """A message that quotes brackets (a server's reply, a path, `[redacted]`) is shown as written."""
    odd = tmp_path / "x[/]y[redacted]"
    code, output = cli(*command, odd)
    assert code == 2 and "[/]y[redacted]" in " ".join(output.split()), output
