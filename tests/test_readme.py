"""Every command block of the README runs as written, in README order, from a fresh checkout's root:
what a new user copies must work. A block that cannot run here says why in a marker comment just above
it (`<!-- readme-test: not run (needs GPUs …) -->`); every other block whose lines start with
`metaspatial` runs in one shared folder (examples/ and recipes/ as in the repository), so a block may use
what an earlier one wrote, as a reader following the README does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

MARKER = re.compile(r"<!-- readme-test: not run \((.+?)\) -->\s*$")
FENCE = re.compile(r"^```(\w*)\s*$")


def command_blocks(text: str) -> list[tuple[int, str, str | None]]:
    """(line number, shell text, reason not run or None) of each fenced shell block with a
    `metaspatial` command."""
    lines, blocks, i = text.splitlines(), [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        body = lines[i + 1:end]
        if fence.group(1) in ("", "bash", "sh") and any(line.startswith("metaspatial ") for line in body):
            marker = MARKER.match(lines[i - 1]) if i else None
            blocks.append((i + 1, "\n".join(body), marker.group(1) if marker else None))
        i = end + 1
    return blocks


BLOCKS = command_blocks((REPO / "README.md").read_text())


def test_blocks_are_found_and_most_of_them_run():
    assert len(BLOCKS) >= 12 and sum(reason is None for _, _, reason in BLOCKS) >= 10


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder laid out like the repository root for the commands: examples/ and recipes/."""
    root = tmp_path_factory.mktemp("readme")
    for name in ("examples", "recipes"):
        (root / name).symlink_to(REPO / name)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("line, script, reason", BLOCKS, ids=[f"README.md:{b[0]}" for b in BLOCKS])
def test_readme_block_runs_as_written(workdir, line, script, reason):
    if reason is not None:
        pytest.skip(f"README.md:{line}: {reason}")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(REPO)}
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, f"README.md:{line}:\n{script}\n--- output:\n{(proc.stdout + proc.stderr)[-4000:]}"
