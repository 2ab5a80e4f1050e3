"""`supervised_control: true`: a second `pretrain` continues the warm-up for as many training examples as
the RL updates train on, and the eval table gets its row, `supervised only`."""

import csv
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from metaspatial_cli.recipes.control import rl_examples
from metaspatial_cli.recipes.spec import load_recipe
from metaspatial_cli.recipes.steps import build_steps

CLI = [sys.executable, "-m", "metaspatial_cli"]
REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "recipes" / "quickstart.yaml"


def plan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "recipe", "plan", *map(str, args)], capture_output=True, text=True, cwd=REPO)


def test_quickstart_control_matches_rl_examples_and_is_evaluated_as_its_own_row():
    result = plan(QUICKSTART, "--set", "supervised_control=true")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    recipe = load_recipe(QUICKSTART, ["supervised_control=true"])
    # iterations × rooms per iteration × rollout.n × update.num_train_epochs
    rollout, update = recipe.sections["rollout"], recipe.sections["update"]
    examples = recipe.iterations * recipe.rooms_per_iteration * rollout["n"] * update["num_train_epochs"]
    assert rl_examples(recipe, "q") == examples
    control = shlex.split(next(line for line in lines if "supervised-only" in line).split("|| ")[-1])
    value = {control[i]: control[i + 1] for i in range(2, len(control) - 1, 2)}
    epochs = recipe.pretrain["epochs"]
    assert int(value["--num-rooms"]) * epochs >= examples > (int(value["--num-rooms"]) - 1) * epochs
    assert value["--base"] == recipe.model and value["--seed"] == str(recipe.pretrain["seed"] + 1)
    evaluation = next(line for line in lines if line.startswith("metaspatial eval"))
    order = [evaluation.index(label) for label in ("'warmed up'", "'supervised only'", f"'iteration {recipe.iterations}'")]
    assert order == sorted(order) and str(recipe.workdir / "models" / "supervised-only") in evaluation
    names = [s.name for s in build_steps(recipe)]
    assert names.index("supervised-only") == len(names) - 2  # after RL, before the eval


def test_max_steps_counts_completions_per_step(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"workdir: {tmp_path}/run\nmodel: m\nmake_model: tiny-qwen2.5-vl\niterations: 3\n"
                      "pretrain: {base: b, epochs: 2}\nsupervised_control: true\nrollout: {n: 2}\n"
                      "update: {per_device_train_batch_size: 4, gradient_accumulation_steps: 2, max_steps: 5}\n")
    assert rl_examples(load_recipe(recipe), "r") == 3 * 5 * 8


@pytest.mark.parametrize("change, message", [
    ("pretrain: null", "needs a `pretrain:` section"),
    ("gen-prompts.source=jsonl", "known before the run only with gen-prompts.source: synthetic"),
])
def test_a_control_it_cannot_size_is_refused_before_anything_runs(tmp_path, change, message):
    sets = ["supervised_control=true", f"workdir={tmp_path}/run"]
    if change.startswith("pretrain"):
        text = QUICKSTART.read_text()
        start = text.index("pretrain:")
        recipe = tmp_path / "no-warmup.yaml"
        recipe.write_text(text[:start] + text[text.index("gen-prompts:"):])
    else:
        recipe = QUICKSTART
        sets += [change, "gen-prompts.input=examples/rooms/rooms.jsonl", "rooms_per_iteration=null"]
    result = plan(recipe, *[a for s in sets for a in ("--set", s)])
    assert result.returncode == 2 and "supervised_control" in result.stderr and message in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_tiny_recipe_trains_and_evaluates_the_control(tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(f"""workdir: {tmp_path}/run
model: ${{workdir}}/models/warm
make_model: tiny-qwen2.5-vl
supervised_control: true
pretrain: {{base: "${{workdir}}/models/tiny", num_rooms: 2, epochs: 1, template: concise}}
gen-prompts: {{num_rooms: 2, seed: 3, test_fraction: 0.0, template: concise, image_size: 64}}
rollout: {{n: 2, guided: true, guided_think_chars: 0, max_new_tokens: 24}}
render: {{views: [topdown], size: 64}}
score: {{judge: rules}}
update: {{learning_rate: 1.0e-3, per_device_train_batch_size: 4, max_steps: 1}}
eval: {{rooms: {REPO / "examples" / "rooms"}, split: null, max_rooms: 1, n: 1}}
""")
    result = subprocess.run([*CLI, "recipe", "run", str(recipe)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    import json

    manifest = json.loads((tmp_path / "run" / "models" / "supervised-only" / "_manifest.json").read_text())
    assert manifest["complete"] and manifest["rooms"] == 4  # 1 step × 4 completions = 4 examples, 1 epoch
    with open(tmp_path / "run" / "eval" / "eval.csv") as fh:
        labels = [row["model"] for row in csv.DictReader(fh)]
    assert labels == ["random", "warmed up", "supervised only", "iteration 1"]
