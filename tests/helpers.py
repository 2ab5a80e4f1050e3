"""Small helpers shared by test files: run the real CLI in-process or as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from metaspatial_cli.app import app

REPO = Path(__file__).resolve().parents[1]


def cli(*args: object) -> tuple[int, str]:
    """Run `metaspatial ARGS` in-process; returns (exit code, stdout+stderr)."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output  # click mixes stderr into output


def cli_process(*args: object, **kwargs) -> subprocess.Popen:
    """Start `metaspatial ARGS` as a real process (for kills and parallel shards)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "metaspatial_cli", *map(str, args)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def write_rooms(path: Path, scenes: list[dict], copies: int = 1) -> Path:
    """A jsonl room file from fixture scenes, optionally repeated under new room ids."""
    with open(path, "w") as fh:
        for k in range(copies):
            for scene in scenes:
                room = dict(scene)
                if copies > 1:
                    room["room_id"] = f"{scene['room_id']}-copy{k}"
                fh.write(json.dumps(room) + "\n")
    return path


EXAMPLE_ROOMS = REPO / "examples" / "rooms" / "rooms.jsonl"


def example_prompts(out: Path, image_size: int) -> Path:
    """gen-prompts over the shipped example rooms, with empty-room images of `image_size` pixels."""
    code, text = cli("gen-prompts", "--source", "jsonl", "--input", EXAMPLE_ROOMS, "--output", out,
                     "--image-size", image_size)
    assert code == 0, text
    return out
