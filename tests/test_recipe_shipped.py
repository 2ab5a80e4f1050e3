"""Every recipe shipped in recipes/ loads and validates, and its header gives its exact command."""

from pathlib import Path

import pytest

from metaspatial_cli.recipes.spec import load_recipe
from metaspatial_cli.recipes.steps import build_steps, plan_script

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


def test_the_promised_recipes_are_shipped():
    names = {p.stem for p in RECIPES}
    assert {"quickstart", "metaspatial-qwen2.5-vl-3b", "metaspatial-qwen2.5-vl-7b", "multiturn"} <= names
    assert any("nojudge" in n for n in names)  # the ablation


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_shipped_recipe_validates_and_plans(path):
    recipe = load_recipe(path)
    steps = build_steps(recipe)
    assert steps[-1].name == "eval"
    assert sum(s.name.endswith("/update") for s in steps) == recipe.iterations
    plan = plan_script(recipe, [])
    assert all(step.command_line() in plan for step in steps)
    header = path.read_text().split("\n\n")[0]
    assert f"metaspatial recipe run recipes/{path.name}" in header
