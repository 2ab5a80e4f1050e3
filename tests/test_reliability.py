"""Framework guarantees against careless use: one writer per output part, steps that die with their
recipe runner, outputs that are not inputs, files or links, checksummed parts, a run's input identity."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers import REPO, cli, cli_process, write_rooms
from test_update_data import scored_rows, write_dataset

from stages.core import dataset as ds
from stages.core import vlm

CLI = [sys.executable, "-m", "metaspatial_cli"]
PART = "train-00000-of-00001.parquet"


@pytest.fixture(scope="module")
def many_rooms(tmp_path_factory, oracle_dir):
    """348 rooms: enough that gen-prompts with small chunks runs for a while."""
    scenes = [json.loads(line) for line in (oracle_dir / "scenes.jsonl").read_text().splitlines()]
    return write_rooms(tmp_path_factory.mktemp("rooms") / "rooms.jsonl", scenes, copies=12)


@pytest.fixture(scope="module")
def answered(tmp_path_factory, oracle_dir):
    """A rollout-like dataset without a manifest (as pandas writes one): prompt rows with a response."""
    root = tmp_path_factory.mktemp("answered")
    code, text = cli("gen-prompts", "--source", "jsonl", "--input", oracle_dir / "scenes.jsonl", "--output",
                     root / "prompts", "--image-size", 64)
    assert code == 0, text
    rows = pd.read_parquet(root / "prompts")
    rows["response"] = '<answer>{"new_object_id": "x"}</answer>'
    shutil.copytree(root / "prompts" / "_images", root / "in" / "_images")
    rows.to_parquet(root / "in" / PART)
    return root / "in"


def _wait_for(predicate, seconds=120.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _gone(pid: int) -> bool:
    """Whether a process has ended (a zombie waiting for its reaper counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_second_writer_is_refused_naming_the_holder_and_a_dead_holders_lock_is_taken_over(tmp_path, many_rooms):
    out = tmp_path / "out"
    args = ("gen-prompts", "--source", "jsonl", "--input", many_rooms, "--output", out, "--image-size", 64,
            "--chunk-size", 10)
    first = cli_process(*args)
    chunks = out / "_chunks" / PART
    assert _wait_for(lambda: len(list(chunks.glob("chunk-*.parquet"))) >= 1), first.stdout.read()
    code, text = cli(*args, "--template", "concise", "--overwrite")
    assert code == 2 and f"pid {first.pid} on " in text and "being written" in text, text
    assert json.loads((out / ds.MANIFEST).read_text())["config"]["template"] == "default"
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert (out / f".lock-{PART}").exists()  # left behind by the kill, held by nobody
    code, text = cli(*args)
    assert code == 0 and "already done" in text, text
    assert len(pd.read_parquet(out)) == 348 and not (out / f".lock-{PART}").exists()


def test_second_writer_of_a_model_output_is_refused_and_a_dead_holders_lock_is_taken_over(tmp_path, tiny_model):
    """The same for a model folder: while an update runs (stopped, so alive however fast it trains), a second
    update, with --overwrite or not, and a pretrain into the folder exit 2 naming it and change nothing."""
    data = write_dataset(tmp_path / "scores", scored_rows(vlm.load_processor(tiny_model).tokenizer,
                                                          tmp_path / "scores"))
    out = tmp_path / "model"
    args = ["update", "--input", data, "--output", out, "--model", tiny_model, "--per-device-train-batch-size", 4,
            "--max-steps", 1]
    log = tmp_path / "first.log"
    with open(log, "w") as sink:
        first = subprocess.Popen([*CLI, *map(str, args)], cwd=REPO, stdout=sink, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    lock = out / ".lock-model"
    try:
        assert _wait_for(lambda: first.poll() is not None or lock.exists() and lock.read_text().endswith("}"))
        os.killpg(first.pid, signal.SIGSTOP)
        assert first.poll() is None, log.read_text()[-2000:]
        assert json.loads(lock.read_text())["pid"] == first.pid
        before = _files(out)
        pretrain = ["pretrain", "--base", tiny_model, "--output", out, "--num-rooms", 1]
        for second in (args, [*args, "--overwrite"], pretrain):
            code, text = cli(*second)
            assert code == 2 and len(text.strip().splitlines()) == 1, text
            assert f"{out}: model is being written by pid {first.pid} on " in text, text
        assert _files(out) == before
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert lock.exists()  # left behind by the kill, held by nobody
    code, text = cli(*args)
    assert code == 0, text
    assert json.loads((out / ds.MANIFEST).read_text())["complete"] and not lock.exists()
    (out / "stale.txt").write_text("from before\n")
    code, text = cli(*args, "--overwrite")  # clears the folder but its lock, under the lock
    assert code == 0 and not (out / "stale.txt").exists() and (out / ds.MANIFEST).exists(), text


def test_recipe_steps_die_with_their_runner(tmp_path, many_rooms):
    for how in (signal.SIGKILL, signal.SIGTERM):
        workdir = tmp_path / f"run-{how.name}"
        recipe = tmp_path / f"{how.name}.yaml"
        recipe.write_text(f"workdir: {workdir}\nmodel: unused\nstages: [gen-prompts]\ngen-prompts:\n  source: jsonl\n"
                          f"  input: {many_rooms}\n  image_size: 64\n  chunk_size: 4\n")
        runner = subprocess.Popen([*CLI, "recipe", "run", str(recipe)], cwd=REPO, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        lock = workdir / "gen-prompts" / f".lock-{PART}"
        assert _wait_for(lambda: lock.exists() and lock.read_text().strip().endswith("}"))  # noqa: B023
        step = json.loads(lock.read_text())["pid"]
        assert step != runner.pid and not _gone(step)
        runner.send_signal(how)
        runner.wait(timeout=60)
        assert _wait_for(lambda: _gone(step), 30), f"step {step} outlived its runner ({how.name})"  # noqa: B023
        rerun = subprocess.run([*CLI, "recipe", "run", str(recipe)], cwd=REPO, capture_output=True, text=True)
        assert rerun.returncode == 0, rerun.stderr
        assert len(pd.read_parquet(workdir / "gen-prompts")) == 348


def test_score_refuses_to_write_over_its_own_input(tmp_path, answered):
    src = tmp_path / "in"
    src.mkdir()
    (src / PART).write_bytes((answered / PART).read_bytes())
    code, text = cli("score", "--input", src, "--output", src, "--overwrite")
    assert code == 2 and "is or holds an input" in text, text
    code, text = cli("score", "--input", src, "--output", tmp_path, "--overwrite")  # its parent folder
    assert code == 2 and "is or holds an input" in text, text
    assert list(_files(src)) == [PART] and (src / PART).read_bytes() == (answered / PART).read_bytes()


def _stage_args(stage: str, answered: Path, oracle_dir: Path) -> list[object]:
    if stage == "gen-prompts":
        return ["gen-prompts", "--source", "jsonl", "--input", oracle_dir / "scenes.jsonl"]
    if stage == "rollout":
        return ["rollout", "--input", answered, "--model", "org/model"]
    if stage == "update":
        return ["update", "--input", answered, "--model", "org/model"]
    return [stage, "--input", answered]


@pytest.mark.parametrize("stage", ["gen-prompts", "rollout", "render", "score", "update"])
def test_output_that_is_a_file_or_a_link_is_refused(stage, tmp_path, answered, oracle_dir):
    a_file = tmp_path / "taken.txt"
    a_file.write_text("keep me\n")
    code, text = cli(*_stage_args(stage, answered, oracle_dir), "--output", a_file)
    assert code == 2 and "is a file, not a directory" in text and len(text.strip().splitlines()) == 1, text
    assert a_file.read_text() == "keep me\n"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    code, text = cli(*_stage_args(stage, answered, oracle_dir), "--output", tmp_path / "link")
    assert code == 2 and "is a symbolic link" in text, text
    assert not list((tmp_path / "elsewhere").iterdir())


def test_config_naming_a_directory_is_one_line(tmp_path):
    code, text = cli("score", "--config", tmp_path)
    assert code == 2 and text.strip() == f"error: {tmp_path}: is a directory, not a YAML file", text


@pytest.fixture(scope="module")
def scored(tmp_path_factory, answered):
    out = tmp_path_factory.mktemp("scored") / "scored"
    code, text = cli("score", "--input", answered, "--output", out)
    assert code == 0, text
    return out


def test_manifest_records_a_checksum_of_every_part(scored):
    manifest = json.loads((scored / ds.MANIFEST).read_text())
    assert manifest["parts"][PART]["sha256"] == ds.sha256_file(scored / PART)
    assert manifest["inputs"][0]["sha256"]


@pytest.mark.parametrize("stage", ["score", "render", "rollout"])
def test_a_part_with_zeroed_bytes_is_refused_naming_the_file(stage, tmp_path, scored, oracle_dir):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name, data in _files(scored).items():
        (damaged / name).parent.mkdir(parents=True, exist_ok=True)
        (damaged / name).write_bytes(data)
    data = bytearray((damaged / PART).read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)
    (damaged / PART).write_bytes(bytes(data))
    code, text = cli(*_stage_args(stage, damaged, oracle_dir), "--output", tmp_path / "out")
    assert code == 2 and f"{damaged / PART}: its contents do not match the sha256" in text, text
    assert not (tmp_path / "out").exists()


def test_a_dataset_without_manifest_still_reads(tmp_path, answered):
    assert not (answered / ds.MANIFEST).exists()
    code, text = cli("score", "--input", answered, "--output", tmp_path / "out")
    assert code == 0, text


def test_resuming_from_another_input_is_refused(tmp_path, answered, scored):
    other = tmp_path / "other"
    other.mkdir()
    rows = pd.read_parquet(answered)
    rows["response"] = "no answer"
    rows.to_parquet(other / PART)
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / PART).write_bytes((answered / PART).read_bytes())
    out = tmp_path / "out"
    assert cli("score", "--input", answered, "--output", out, "--max-rows", 3)[0] == 0
    (out / PART).unlink()  # as if the run had failed before committing its part
    before = (out / ds.MANIFEST).read_text()
    code, text = cli("score", "--input", other, "--output", out, "--max-rows", 3)
    assert code == 2 and "made from another input" in text, text
    assert (out / ds.MANIFEST).read_text() == before and not (out / PART).exists()
    assert cli("score", "--input", copy, "--output", out, "--max-rows", 3)[0] == 0  # same contents elsewhere
    assert cli("score", "--input", other, "--output", out, "--max-rows", 3, "--overwrite")[0] == 0
    assert (pd.read_parquet(out)["response"] == "no answer").all()
