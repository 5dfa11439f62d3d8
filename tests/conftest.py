"""One Taichi runtime for the whole test session: CPU, float64, deterministic (one thread).

Tests that need other runtime settings (f32, two threads) run in a subprocess, since
Taichi cannot be re-initialised safely in one process (TAICHI.md, section 7).
"""

import os
import subprocess
import sys

# scipy's L-BFGS-B ran 30x slower with OpenBLAS's default threads on these loaded 2-core machines
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest  # noqa: E402

import diffsim  # noqa: E402

diffsim.init(arch="cpu", precision="f64", deterministic=True)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(code: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter from the repository root; returns the completed process."""
    full_env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def python_subprocess():
    return run_python
