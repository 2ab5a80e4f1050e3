"""`eval_every`: a recipe evaluates the start model and every N-th iteration's model on its eval rooms
(plain `metaspatial eval` steps, so plan, resume and skip work as for any step), and the report draws
the held-out reward per iteration with standard errors over rooms."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_report import pngs, write_scores

from metaspatial_cli.recipes.runner import is_complete
from metaspatial_cli.recipes.spec import load_recipe
from metaspatial_cli.recipes.steps import build_steps
from metaspatial_cli.report import build_report
from metaspatial_cli.report_data import held_out_curve

CLI = [sys.executable, "-m", "metaspatial_cli"]
REPO = Path(__file__).resolve().parents[1]
RECIPE = """workdir: {workdir}
model: ${{workdir}}/models/tiny
make_model: tiny-qwen2.5-vl
iterations: {iterations}
eval_every: 2
gen-prompts: {{num_rooms: 2, seed: 3, test_fraction: 0.0, template: concise, image_size: 64}}
rollout: {{n: 2, guided: true, guided_think_chars: 0, max_new_tokens: 24}}
render: {{views: [topdown], size: 64}}
score: {{judge: rules}}
update: {{learning_rate: 1.0e-3, per_device_train_batch_size: 4, max_steps: 1}}
eval: {{rooms: {rooms}, split: null, max_rooms: 2, n: 1}}
"""


def recipe_file(tmp_path: Path, iterations: int) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(RECIPE.format(workdir=tmp_path / "run", iterations=iterations, rooms=REPO / "examples" / "rooms"))
    return path


def test_plan_shows_an_eval_step_at_the_start_and_every_nth_iteration(tmp_path):
    recipe = recipe_file(tmp_path, iterations=5)
    plan = subprocess.run([*CLI, "recipe", "plan", str(recipe)], capture_output=True, text=True, check=True).stdout
    evals = [line for line in plan.splitlines() if line.startswith("metaspatial eval")]
    assert len(evals) == 4  # iteration 0 (the start), 2, 4, then the final comparison
    run = tmp_path / "run"
    assert f"--model {run}/models/tiny --label 'iteration 0' --output {run}/iter-000/eval" in evals[0]
    assert f"--model {run}/iter-002/update --label 'iteration 2' --output {run}/iter-002/eval" in evals[1]
    assert f"--output {run}/iter-004/eval" in evals[2] and f"--output {run}/eval" in evals[3]
    names = [s.name for s in build_steps(load_recipe(recipe))]
    assert names.index("iter-002/eval") == names.index("iter-002/update") + 1  # right after its update


def test_eval_every_needs_an_eval_section(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(recipe_file(tmp_path, 2).read_text().split("eval: {")[0])
    result = subprocess.run([*CLI, "recipe", "plan", str(recipe)], capture_output=True, text=True)
    assert result.returncode == 2 and "eval_every" in result.stderr and "eval:" in result.stderr


def test_report_draws_the_held_out_curve_with_standard_errors_over_rooms(tmp_path):
    run = tmp_path / "run"
    for iteration, reward in ((0, 1.0), (2, 1.5)):
        out = run / f"iter-{iteration:03d}" / "eval"
        write_scores(out / "model-1" / "score", iteration + 1, reward, layouts=False)
        (out / "eval.csv").write_text("model\n")
    write_scores(run / "iter-004" / "eval" / "model-1" / "score", 3, 2.0, layouts=False)  # no eval.csv: running
    points = held_out_curve(run)
    assert [p.iteration for p in points] == [0, 2]
    # rooms a and b both score reward + 0.005 on average (samples differ by 0.01): no spread over rooms
    assert points[1].reward == pytest.approx(1.505) and points[1].rooms == 2 and points[1].sem == pytest.approx(0)
    page = build_report(run)
    assert "Held-out reward during training" in page and len(pngs(page)) >= 1


@pytest.mark.slow
def test_tiny_recipe_with_eval_every_runs_resumes_and_reports_the_curve(tmp_path):
    recipe = recipe_file(tmp_path, iterations=2)
    result = subprocess.run([*CLI, "recipe", "run", str(recipe)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    steps = build_steps(load_recipe(recipe))
    assert all(is_complete(step) for step in steps)
    run = tmp_path / "run"
    assert [p.iteration for p in held_out_curve(run)] == [0, 2]
    assert "iteration 2" in (run / "iter-002" / "eval" / "eval.md").read_text()
    rerun = subprocess.run([*CLI, "recipe", "run", str(recipe)], capture_output=True, text=True)
    assert rerun.returncode == 0 and rerun.stderr.count("complete, skipped") == len(steps)
    report = subprocess.run([*CLI, "report", str(run)], capture_output=True, text=True)
    assert report.returncode == 0, report.stderr
    page = (run / "report.html").read_text()
    table = page.split("Held-out reward during training")[1].split("</table>")[0]
    assert len(re.findall(r"<tr><td>[02]</td><td>2</td>", table)) == 2  # iterations 0 and 2, two rooms each
