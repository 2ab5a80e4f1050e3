"""The repository stands alone: no committed file names a path of the machine it was written on or a
folder beside the clone, and the Markdown links point at files inside the repository (or the web)."""

from __future__ import annotations

import re
import subprocess

import pytest
from helpers import REPO

# Built from parts, so that this file does not match itself.
MACHINE_PATHS = re.compile("|".join(["/" + "work/", "/" + "home/", "/" + "root/", r"\.\./" + "shared"]))
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _tracked() -> list[str]:
    result = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip("not a git checkout")
    return result.stdout.splitlines()


def _text(name: str) -> str | None:
    try:
        return (REPO / name).read_text(encoding="utf-8")
    except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
        return None


def test_no_committed_file_names_a_machine_path():
    found = []
    for name in _tracked():
        text = _text(name)
        for number, line in enumerate((text or "").splitlines(), start=1):
            if MACHINE_PATHS.search(line):
                found.append(f"{name}:{number}: {line.strip()[:100]}")
    assert found == []


def test_markdown_links_stay_inside_the_repository():
    outside = []
    for name in (n for n in _tracked() if n.endswith(".md")):
        for target in LINK.findall(_text(name) or ""):
            if target.startswith(("http://", "https://", "mailto:", "#")):
                continue
            path = (REPO / name).parent / target.split("#")[0]
            if not path.resolve().is_relative_to(REPO.resolve()) or not path.exists():
                outside.append(f"{name}: {target}")
    assert outside == []
