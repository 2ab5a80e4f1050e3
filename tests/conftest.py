"""Test-wide settings: one torch thread (two threads ran 5-300x slower on the shared 2-core
machines), no model hub, headless EGL rendering. Set before anything imports torch."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
for var in ("SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN"):
    os.environ.pop(var, None)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "upstream-oracle"


@pytest.fixture(scope="session")
def oracle_dir() -> Path:
    """The upstream-oracle fixture folder (scenes, cases, probes), shipped in tests/fixtures."""
    return FIXTURES


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """The tiny random VLM the update tests train (built once per session)."""
    from test_update_data import tiny_model_dir

    return tiny_model_dir(tmp_path_factory)


@pytest.fixture(scope="session")
def processor(tiny_model):
    from stages.core import vlm

    return vlm.load_processor(tiny_model)
