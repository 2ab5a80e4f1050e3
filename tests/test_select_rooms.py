"""Rooms per iteration: each iteration draws its own rooms, every room once before any repeats.

- the draw (hypothesis): k rooms per iteration, no room twice in one draw, every room exactly once
  per epoch of consecutive draws, the same draw for the same (rooms, k, iteration, seed);
- the stage keeps rows and images unchanged, draws only from the training split, and refuses more
  rooms than there are;
- a 3-iteration tiny recipe with rooms_per_iteration 2 over 6 rooms trains on 6 different rooms,
  and each update's KL reference is the recipe's initial model.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from metaspatial_cli.recipes.spec import load_recipe
from metaspatial_cli.recipes.steps import build_steps
from stages import gen_prompts, select_rooms
from stages.core.errors import UserError

CLI = [sys.executable, "-m", "metaspatial_cli"]


@given(count=st.integers(1, 30), data=st.data(), seed=st.integers(0, 2**32))
def test_every_room_comes_round_before_any_repeats(count, data, seed):
    rooms = data.draw(st.integers(1, count))
    draws = [select_rooms.draw(count, rooms, i, seed) for i in range(1, 3 * count // rooms + 3)]
    assert all(len(d) == len(set(d)) == rooms for d in draws)
    sequence = [room for d in draws for room in d]
    for start in range(0, len(sequence) - count + 1, count):  # each epoch holds every room once
        assert sorted(sequence[start:start + count]) == list(range(count))
    assert draws[-1] == select_rooms.draw(count, rooms, len(draws), seed)


def test_draw_refuses_more_rooms_than_there_are():
    with pytest.raises(ValueError, match="cannot draw 4 different rooms from 3"):
        select_rooms.draw(3, 4, 1, 0)


def prompts(tmp_path, num_rooms: int = 6, test_fraction: float = 0.0):
    return gen_prompts.run(gen_prompts.Config(output=tmp_path / "prompts", num_rooms=num_rooms, seed=5,
                                              test_fraction=test_fraction, image_size=64))


def test_stage_writes_the_drawn_training_rows_with_their_images(tmp_path):
    source = prompts(tmp_path, num_rooms=10, test_fraction=0.3)
    rows = pd.read_parquet(source)
    train = rows[rows["split"] == "train"]
    out = select_rooms.run(select_rooms.Config(input=source, output=tmp_path / "iter-2", rooms=3, iteration=2,
                                               seed=1))
    picked = pd.read_parquet(out)
    expected = [train.iloc[i]["prompt_id"] for i in select_rooms.draw(len(train), 3, 2, 1)]
    assert list(picked["prompt_id"]) == expected
    assert list(picked.columns) == list(rows.columns)
    assert all((out / image).is_file() for image in picked["image"])
    with pytest.raises(UserError, match=f"--rooms {len(train) + 1} is more than its {len(train)} room"):
        select_rooms.run(select_rooms.Config(input=source, output=tmp_path / "x", rooms=len(train) + 1))


RECIPE = """workdir: {workdir}
model: ${{workdir}}/models/tiny
make_model: tiny-qwen2.5-vl
iterations: 3
rooms_per_iteration: 2
seed: 4
gen-prompts: {{num_rooms: 6, seed: 3, test_fraction: 0.0, template: concise, image_size: 64}}
rollout: {{n: 2, guided: true, guided_think_chars: 0, max_new_tokens: 24}}
render: {{views: [topdown], size: 64}}
score: {{judge: rules}}
update: {{learning_rate: 1.0e-3, per_device_train_batch_size: 4, max_steps: 1, beta: 0.01}}
"""


def test_plan_draws_rooms_before_each_iteration_and_fixes_the_reference(tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(RECIPE.format(workdir=tmp_path / "run"))
    steps = build_steps(load_recipe(recipe))
    names = [s.name for s in steps]
    for i in (1, 2, 3):
        select, rollout = names.index(f"iter-{i:03d}/select-rooms"), names.index(f"iter-{i:03d}/turn-1/rollout")
        assert select < rollout and steps[rollout].args[steps[rollout].args.index("--input") + 1] == str(
            tmp_path / "run" / f"iter-{i:03d}" / "prompts")
    updates = [s for s in steps if s.name.endswith("/update")]
    assert all(s.args[s.args.index("--reference-model") + 1] == str(tmp_path / "run" / "models" / "tiny")
               for s in updates)
    assert updates[2].args[updates[2].args.index("--model") + 1] == str(tmp_path / "run" / "iter-002" / "update")
    for bad, key in (("rooms_per_iteration=0", "rooms_per_iteration"), ("seed=x", "seed")):
        with pytest.raises(UserError, match=f"tiny.yaml: {key}: "):
            load_recipe(recipe, [bad])


@pytest.mark.slow
def test_three_iterations_of_two_rooms_train_on_six_rooms(tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(RECIPE.format(workdir=tmp_path / "run"))
    result = subprocess.run([*CLI, "recipe", "run", str(recipe)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    trained = []
    for i in (1, 2, 3):
        scores = pd.read_parquet(run / f"iter-{i:03d}" / "turn-1" / "score")
        assert Counter(scores["prompt_id"]).most_common()[0][1] == 2  # n samples of each room, no room twice
        trained += sorted(set(scores["prompt_id"]))
        manifest = json.loads((run / f"iter-{i:03d}" / "update" / "_manifest.json").read_text())
        assert manifest["groups"] == 2 and manifest["complete"]
        assert manifest["reference_model"] == str(run / "models" / "tiny")
    assert len(trained) == len(set(trained)) == 6
    assert set(trained) == set(pd.read_parquet(run / "gen-prompts")["prompt_id"])
    plan = [s.command_line() for s in build_steps(load_recipe(recipe)) if s.name.endswith("select-rooms")]
    assert len(plan) == 3 and all("--rooms 2" in line and "--seed 4" in line for line in plan)


def test_without_rooms_it_keeps_every_training_room_in_order(tmp_path):
    source = prompts(tmp_path, num_rooms=10, test_fraction=0.3)
    rows = pd.read_parquet(source)
    out = select_rooms.run(select_rooms.Config(input=source, output=tmp_path / "train"))
    assert list(pd.read_parquet(out)["prompt_id"]) == list(rows[rows["split"] == "train"]["prompt_id"])
    with pytest.raises(UserError, match="no rooms of split 'nothing'"):
        select_rooms.run(select_rooms.Config(input=source, output=tmp_path / "none", split="nothing"))


def test_recipe_iterations_read_only_training_rooms(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"workdir: {tmp_path}/run\nmodel: m\niterations: 2\ngen-prompts: {{test_fraction: 0.2}}\n"
                      "update: {per_device_train_batch_size: 4}\n")
    steps = build_steps(load_recipe(recipe))
    assert [s.name for s in steps[:3]] == ["gen-prompts", "train-prompts", "iter-001/turn-1/rollout"]
    assert steps[1].args[:5] == ("select-rooms", "--input", str(tmp_path / "run/gen-prompts"), "--output",
                                 str(tmp_path / "run/train-prompts"))
    rollouts = [s for s in steps if s.name.endswith("turn-1/rollout")]
    assert all(s.args[s.args.index("--input") + 1] == str(tmp_path / "run/train-prompts") for s in rollouts)
    # without test rooms (or with rooms_per_iteration, which draws from the training split) no extra step
    assert "train-prompts" not in [s.name for s in build_steps(load_recipe(recipe, ["gen-prompts.test_fraction=0"]))]
