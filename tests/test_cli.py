"""The command line itself: help that lists every command, flags generated from config classes."""

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
