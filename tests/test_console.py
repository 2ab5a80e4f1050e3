"""What the console and the logs show: no hard wraps in logs, an eval table whose cells and headers
are never cut, models named by their role in the recipe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from helpers import REPO, cli

from metaspatial_cli.eval_metrics import METRICS, print_table, short_labels
from stages.core.console import make_console

LONG = "/very/long/path/to/some/run/directory/that/goes/on/and/on/iter-003/turn-1/score/train-00000-of-00001.parquet"


def test_a_log_gets_long_paths_on_one_line():
    code = f"from stages.core.console import make_console; make_console().print('wrote {LONG} in 1.0 s')"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}, check=True).stderr
    assert out == f"wrote {LONG} in 1.0 s\n"


def test_the_eval_table_keeps_headers_and_model_names_whole(capsys, tmp_path):
    row = {"model": LONG, "rooms": 20, "samples": 40, "reward_sem": 0.008,
           **{key: 0.5 for key, _, _ in METRICS}}
    print_table([row, {**row, "model": "iteration 3"}],
                SimpleNamespace(rooms=Path("examples/rooms"), split=None, n=2, output=tmp_path, compare_to=None))
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("model"))
    for _, heading, _ in METRICS:
        assert f" {heading} " in f"{header} "
    assert sum(LONG in line for line in lines) == 1 and any("iteration 3" in line for line in lines)
    assert any("0.500 ± 0.008" in line for line in lines)
    assert make_console(stderr=False).width >= 80


def test_models_without_labels_are_named_by_the_path_parts_that_tell_them_apart():
    assert short_labels(["/a/run/models/tiny", "/a/run/iter-003/update"]) == ["models/tiny", "iter-003/update"]
    assert short_labels(["runs/a/iter-003/update", "runs/b/iter-003/update"]) == ["a/iter-003/update",
                                                                                  "b/iter-003/update"]
    assert short_labels(["Qwen/Qwen2.5-VL-7B-Instruct", "m"]) == ["Qwen/Qwen2.5-VL-7B-Instruct", "m"]


def test_the_recipe_labels_its_eval_models_by_role():
    code, out = cli("recipe", "plan", REPO / "recipes" / "quickstart.yaml")
    line = next(line for line in out.splitlines() if line.startswith("metaspatial eval"))
    assert "--label random" in line and "--label 'warmed up'" in line and "--label 'iteration 6'" in line


def test_meter_says_how_far_work_is_with_rate_and_eta_until_the_end():
    import io

    from rich.console import Console

    from stages.core.console import Meter, duration

    log = io.StringIO()
    meter = Meter("rollout", 10, "samples", every=0, console=Console(file=log, width=200))
    meter.add(4, 400)
    meter.add(6, 600)  # the end: the caller prints its own summary
    lines = log.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rollout: 4/10 samples, ") and "tokens/s, ETA " in lines[0]
    assert [duration(s) for s in (4.4, 200, 7500)] == ["4 s", "3 min 20 s", "2 h 05 min"]
