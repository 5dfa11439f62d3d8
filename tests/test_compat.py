"""diffsim.compat: the Taichi internals diffsim relies on, checked against the Taichi it runs on.

test_taichi_is_the_tested_version fails on any Taichi other than compat.TESTED_TAICHI: the
internals may have moved; re-check them (this file) and update TESTED_TAICHI.
"""

import warnings

import numpy as np
import pytest
import taichi as ti

from diffsim import compat


def test_taichi_is_the_tested_version():
    assert compat.taichi_version() == compat.TESTED_TAICHI, (
        f"diffsim.compat was written for taichi {compat.TESTED_TAICHI}, this is {compat.taichi_version()}: check "
        "that subscript, assign, compile_time and arch_built_in still do what their docs say, then update "
        "TESTED_TAICHI")


def test_another_version_warns_and_a_missing_internal_raises(monkeypatch):
    monkeypatch.setattr(compat, "taichi_version", lambda: (9, 9, 9))
    with pytest.warns(compat.TaichiVersionWarning, match="tested on taichi==1.7.4, this is taichi 9.9.9"):
        compat.check_taichi()
    monkeypatch.setattr(compat, "_Expr", type("Expr", (), {}))   # a Taichi whose Expr lost _assign
    with pytest.raises(compat.TaichiVersionError, match="lacks taichi.lang.expr.Expr._assign.*pip install taichi"):
        compat.check_taichi()


@compat.compile_time
def _twice_sum(a, i):
    """Plain Python run while a kernel compiles: a[i, 0] + a[i, 1], doubled."""
    return 2.0 * (compat.subscript(a, i, 0) + compat.subscript(a, i, 1))


@compat.compile_time
def _store(a, i, value):
    compat.assign(compat.subscript(a, i, 2), value)


@ti.kernel
def _sum_rows(a: ti.types.ndarray(ndim=2)):
    for i in range(a.shape[0]):
        _store(a, i, _twice_sum(a, i))


def test_subscript_and_assign_from_compile_time_helpers():
    """The helpers read and write ndarray elements inside a kernel, and calling them there gives
    no 'Calling non-taichi function' warning."""
    a = ti.ndarray(ti.f64, (3, 3))
    a.from_numpy(np.array([[1.0, 2.0, 0.0], [3.0, 4.0, 0.0], [-1.0, 0.5, 0.0]]))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SyntaxWarning)
        _sum_rows(a)
    np.testing.assert_array_equal(a.to_numpy()[:, 2], [6.0, 14.0, -1.0])


def test_arch_built_in():
    assert compat.arch_built_in("cpu") is True
    assert compat.arch_built_in("opengl") is False   # never probed: its probe can segfault
    for name in ("cuda", "vulkan", "metal"):
        assert isinstance(compat.arch_built_in(name), bool)
    assert ti.cfg.arch in (ti.x64, ti.arm64, ti.cuda, ti.vulkan, ti.metal)   # the public config
