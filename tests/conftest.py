"""One Taichi runtime for the whole test session: CPU, float64, deterministic (one thread).

Tests that need other runtime settings (f32, two threads) run in a subprocess, since
Taichi cannot be re-initialised safely in one process (TAICHI.md, section 7).
"""

import os
import subprocess
import sys

# scipy's L-BFGS-B ran 30x slower with OpenBLAS's default threads on these loaded 2-core machines
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest

import diffsim

# DIFFSIM_TEST_THREADS=2 runs the suite as users run (two threads, not bitwise repeatable): a sweep
# for adjoints that read garbage only with several threads (TAICHI.md); tests of bitwise repeats
# then fail by design, the gradient checks must not
_threads = os.environ.get("DIFFSIM_TEST_THREADS")
if _threads:
    diffsim.init(arch="cpu", precision="f64", threads=int(_threads))
else:
    diffsim.init(arch="cpu", precision="f64", deterministic=True)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(code: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter from the repository root; returns the completed process."""
    full_env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.fixture
def python_subprocess():
    return run_python


def execute_notebook(name: str, small: bool = True):
    """Execute ``notebooks/<name>`` in a fresh kernel, at small size (DIFFSIM_SMALL=1) or at its
    default size (``small=False``: DIFFSIM_SMALL=0, what a user who opens it runs); return the
    executed notebook and the text it printed. Fails if it was committed with outputs, and
    (nbclient's CellExecutionError) if a cell raises, e.g. a notebook's assertion that its goal
    was reached."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(os.path.join(ROOT, "notebooks", name), as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit it without outputs"
    saved = dict(os.environ)
    os.environ.update(DIFFSIM_SMALL="1" if small else "0", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": ROOT}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    return nb, text


# The plain `pytest` runs in two worker processes (pytest-xdist, `-n auto --dist loadgroup` in
# pyproject.toml): the suite is mostly Taichi compiles, one core each. Taichi writes what a process
# compiled to its offline cache only when the process exits, so two workers running tests of the same
# simulator would each compile its kernels: each simulator's tests form one group that one worker
# runs, in the order below (longest first; `--no-loadscope-reorder` keeps it). Tests outside these
# folders are handed out one by one after them.
GROUPS = ("rigid", "articulated", "md")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    tests = os.path.join(ROOT, "tests")

    def folder(item):
        part = os.path.relpath(str(item.path), tests).split(os.sep)[0]
        return part if part in GROUPS else None

    for item in items:
        if folder(item):
            item.add_marker(pytest.mark.xdist_group(folder(item)))
    rank = {name: k for k, name in enumerate(GROUPS)}
    items.sort(key=lambda item: rank.get(folder(item), len(GROUPS)))  # stable: files keep their order
