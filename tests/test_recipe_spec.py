"""Recipe files: overrides, ${...} references and up-front validation naming file and key."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from metaspatial_cli.app import app
from metaspatial_cli.recipes.spec import apply_overrides, interpolate, load_recipe
from metaspatial_cli.registry import STAGES
from metaspatial_cli.registry import config_class as stage_config_class
from stages.core.errors import UserError

SCENES = Path(__file__).resolve().parent / "fixtures" / "upstream-oracle" / "scenes.jsonl"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


def prompts_only(tmp_path: Path, extra: str = "") -> Path:
    return write(tmp_path, f"workdir: {tmp_path}/run\nmodel: m\nstages: [gen-prompts]\n"
                           f"gen-prompts:\n  source: jsonl\n  input: {SCENES}\n{extra}")


def test_overrides_are_parsed_as_yaml_and_create_sections():
    raw = {"rollout": {"n": 2}, "iterations": 1}
    apply_overrides(raw, ["rollout.n=8", "iterations=3", "score.judge=rules", "rollout.guided=true"], "r.yaml")
    assert raw == {"rollout": {"n": 8, "guided": True}, "iterations": 3, "score": {"judge": "rules"}}


def test_override_without_equals_sign_is_refused():
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        apply_overrides({}, ["rollout.n"], "r.yaml")


def test_references_resolve_nested_and_keep_types():
    raw = {"workdir": "runs/q", "model": "${workdir}/models/tiny", "n": 4,
           "rollout": {"n": "${n}", "out": "${model}-x"}}
    out = interpolate(raw, "r.yaml")
    assert out["model"] == "runs/q/models/tiny"
    assert out["rollout"] == {"n": 4, "out": "runs/q/models/tiny-x"}


@pytest.mark.parametrize("raw, message", [
    ({"workdir": "${workdir}/x"}, "refers to itself"),
    ({"model": "${nothing}"}, r"model: \$\{nothing\} does not name a value"),
    ({"a": {"b": 1}, "model": "${a}"}, "does not name a value"),
])
def test_bad_references_name_the_key(raw, message):
    with pytest.raises(UserError, match=message):
        interpolate(raw, "r.yaml")


def test_valid_recipe_loads_with_override(tmp_path):
    recipe = load_recipe(prompts_only(tmp_path), ["gen-prompts.image_size=64"])
    assert recipe.stages == ["gen-prompts"]
    assert recipe.sections["gen-prompts"]["image_size"] == 64
    assert recipe.workdir == tmp_path / "run"


@pytest.mark.parametrize("extra, message", [
    ("  image_size: big\n", r"r.yaml: gen-prompts.image_size: Input should be a valid integer"),
    ("  num_roms: 3\n", r"r.yaml: gen-prompts.num_roms: unknown key \(did you mean num_rooms"),
    ("  output: x\n", r"r.yaml: gen-prompts.output: set by the recipe runner"),
    ("iterations: 0\n", r"r.yaml: iterations: Input should be greater than or equal to 1"),
    ("iterations: 2\n", "need the update stage"),
    ("wrokdir: x\n", r"r.yaml: wrokdir: unknown key \(did you mean workdir\?"),
    ("stages: [gen-prompts, render]\n", "a prefix of it"),
])
def test_bad_recipes_fail_naming_file_and_key(tmp_path, extra, message):
    path = prompts_only(tmp_path)
    text = path.read_text()
    if extra.startswith("  "):
        text += extra
    else:  # a top-level key replaces any earlier one
        key = extra.split(":")[0]
        text = "\n".join(line for line in text.splitlines() if not line.startswith(key + ":")) + "\n" + extra
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        load_recipe(path)


def test_cli_exit_code_2_and_message_before_anything_runs(tmp_path):
    path = prompts_only(tmp_path, "  image_size: -1\n")
    result = CliRunner().invoke(app, ["recipe", "run", str(path)])
    assert result.exit_code == 2
    assert "gen-prompts.image_size" in result.output
    assert not (tmp_path / "run").exists()


def test_cli_set_override_is_validated_too(tmp_path):
    result = CliRunner().invoke(app, ["recipe", "plan", str(prompts_only(tmp_path)), "--set", "gen-prompts.seed=x"])
    assert result.exit_code == 2
    assert "gen-prompts.seed" in result.output


def test_pretrain_section_is_validated_and_becomes_a_step(tmp_path):
    from metaspatial_cli.recipes.steps import build_steps

    base = (f"workdir: {tmp_path}/run\nmodel: ${{workdir}}/models/warm\nmake_model: tiny-qwen2.5-vl\n"
            "stages: [gen-prompts]\ngen-prompts: {num_rooms: 2}\n")
    path = write(tmp_path, base + "pretrain:\n  base: ${workdir}/models/tiny\n  epochs: 2\n")
    steps = build_steps(load_recipe(path))
    assert [s.name for s in steps] == ["make-model", "pretrain", "gen-prompts"]
    assert steps[0].args[-1] == f"{tmp_path}/run/models/tiny"
    assert steps[1].command_line().startswith("metaspatial pretrain --config ")
    assert steps[1].output == tmp_path / "run" / "models" / "warm"
    for extra, message in [("pretrain: {base: x, epochs: 0}\n", "pretrain.epochs"),
                           ("pretrain: {epochs: 2}\n", "pretrain.base: required"),
                           ("pretrain: {base: x, output: y}\n", "pretrain.output: set by the recipe runner")]:
        with pytest.raises(UserError, match=message):
            load_recipe(write(tmp_path, base + extra))


def test_every_stage_has_its_config_class():
    import stages.rollout

    assert stage_config_class("rollout") is stages.rollout.Config
    assert all(stage_config_class(stage) is not None for stage in STAGES)
