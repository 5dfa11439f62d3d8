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


_V = ti.types.ndarray(ndim=1)


@ti.kernel
def _axpy(x: _V, y: _V, a: ti.f64, times: ti.i32, square: ti.template()):
    for i in range(x.shape[0]):
        for _ in range(times):
            v = a * x[i]
            if ti.static(square):
                v = v * v
            y[i] += v


@ti.kernel
def _dot(x: _V, y: _V) -> ti.f64:
    total = 0.0
    for i in range(x.shape[0]):
        total += x[i] * y[i]
    return total


def _pair(n, seed, grad=False):
    rng = np.random.default_rng(seed)
    x = ti.ndarray(ti.f64, n, needs_grad=grad)
    y = ti.ndarray(ti.f64, n, needs_grad=grad)
    x.from_numpy(rng.standard_normal(n))
    y.from_numpy(rng.standard_normal(n))
    return x, y


def test_launch_kernel_equals_taichi_own_call_over_repeated_launches():
    """The kept launch sets the numbers of every call afresh, takes templates into its key, and
    returns what the kernel returns; its gradient kernel equals Taichi's."""
    x1, y1 = _pair(5, 0, grad=True)
    x2, y2 = _pair(5, 0, grad=True)
    for a, times, square in [(0.5, 1, False), (2.0, 3, False), (-1.5, 2, True), (0.25, 1, False), (3, 1, True)]:
        _axpy(x1, y1, a, times, square)
        compat.launch_kernel(_axpy, x2, y2, a, times, square)
        np.testing.assert_array_equal(y1.to_numpy(), y2.to_numpy())
        assert compat.launch_kernel(_dot, x2, y2) == _dot(x1, y1)
    for g in (y1.grad, y2.grad):
        g.from_numpy(np.arange(5.0))
    _axpy.grad(x1, y1, 0.7, 2, True)
    for _ in range(2):
        compat.launch_kernel(_axpy.grad, x2, y2, 0.7, 2, True)
    _axpy.grad(x1, y1, 0.7, 2, True)
    np.testing.assert_array_equal(x1.grad.to_numpy(), x2.grad.to_numpy())


def test_launch_kernel_follows_new_arrays_and_takes_numpy_arguments():
    x, y = _pair(4, 1)
    compat.launch_kernel(_axpy, x, y, 1.0, 1, False)
    compat.launch_kernel(_axpy, x, y, 1.0, 1, False)
    for seed in range(5):  # arrays freed and new ones made: ids may be reused, the launch must not
        del x, y
        x, y = _pair(4, 10 + seed)
        expected = y.to_numpy() + 2.0 * x.to_numpy()
        compat.launch_kernel(_axpy, x, y, 2.0, 1, False)
        np.testing.assert_array_equal(y.to_numpy(), expected)
    xs, ys = np.ones(4), np.zeros(4)  # NumPy arrays: written in place, as Taichi's own call does
    for _ in range(2):
        compat.launch_kernel(_axpy, xs, ys, 1.5, 1, False)
    np.testing.assert_array_equal(ys, np.full(4, 3.0))
    with pytest.raises(ti.TaichiRuntimeTypeError):
        compat.launch_kernel(_axpy, x, y, "two", 1, False)  # Taichi's own type error


def test_compile_options_hold_inside_the_block_only_and_give_the_same_gradient():
    """A gradient kernel compiled and launched without Taichi's control-flow optimisation gives
    the default's values; the option holds inside the block only, also when the block raises;
    an unknown field is named."""
    from taichi.lang import impl

    default = impl.current_cfg().cfg_optimization
    grads = []
    for options in ({}, {"cfg_optimization": False}):
        x, y = _pair(6, 2, grad=True)
        y.grad.from_numpy(np.linspace(-1.0, 1.0, 6))
        with compat.compile_options(**options):
            if options:
                assert impl.current_cfg().cfg_optimization is False
            for _ in range(2):   # compiled on the first launch, kept for the second
                compat.launch_kernel(_axpy.grad, x, y, 0.3, 3, True)
        assert impl.current_cfg().cfg_optimization == default
        grads.append(x.grad.to_numpy())
    np.testing.assert_array_equal(grads[0], grads[1])
    assert np.abs(grads[0]).max() > 0
    with pytest.raises(RuntimeError), compat.compile_options(cfg_optimization=False):
        raise RuntimeError("inside")
    assert impl.current_cfg().cfg_optimization == default
    with pytest.raises(ValueError, match="no_such_option"), compat.compile_options(no_such_option=1):
        pass


def test_numpy_arguments_are_passed_by_their_own_address_and_shape_every_launch():
    """A kept launch with NumPy arguments reads and writes the arrays of this call (new arrays,
    other lengths, views), equal to Taichi's own call; another dtype is another compile; a
    Fortran-ordered or strided array takes Taichi's own call (which copies it and back)."""
    rng = np.random.default_rng(3)
    for n in (4, 4, 7, 1, 7, 0, 3):
        xs, ys = rng.standard_normal(n), rng.standard_normal(n)
        expected = ys.copy()
        _axpy(xs.copy(), expected, 0.5, 2, False)
        compat.launch_kernel(_axpy, xs, ys, 0.5, 2, False)
        np.testing.assert_array_equal(ys, expected)
        assert n == 0 or np.abs(expected).max() > 0
    block = rng.standard_normal((3, 6))
    rows = block.copy()
    for i in range(3):   # C-contiguous views into one block: each row its own address
        compat.launch_kernel(_axpy, block[i], rows[i], -1.0, 1, False)
    np.testing.assert_array_equal(rows, 0.0 * block)
    x32, y32 = np.ones(5, dtype=np.float32), np.zeros(5, dtype=np.float32)
    for _ in range(2):
        compat.launch_kernel(_axpy, x32, y32, 0.25, 1, False)
    np.testing.assert_array_equal(y32, np.full(5, 0.5, dtype=np.float32))
    strided = np.zeros(8)[::2]   # not contiguous: Taichi's own call refuses it, so does launch_kernel
    with pytest.raises(ValueError, match="contiguous"):
        compat.launch_kernel(_axpy, np.ones(4), strided, 1.0, 1, False)
    out = np.zeros((4, 1), order="F")[:, 0]   # a 1-d view of a Fortran array: contiguous both ways
    compat.launch_kernel(_axpy, np.ones(4), out, 2.0, 1, False)
    np.testing.assert_array_equal(out, np.full(4, 2.0))


def test_launch_under_options_equals_the_block_and_leaves_the_config_alone():
    """launch_kernel_under(options, ...) gives what launching inside compile_options(**options)
    gives, compiles under them on its first launch, and keeps Taichi's config as it was."""
    from taichi.lang import impl

    default = impl.current_cfg().cfg_optimization
    grads = []
    for under in (False, True):
        x, y = _pair(6, 4, grad=True)
        y.grad.from_numpy(np.linspace(-1.0, 2.0, 6))
        for _ in range(3):
            if under:
                compat.launch_kernel_under({"cfg_optimization": False}, _axpy.grad, x, y, 0.6, 2, True)
            else:
                with compat.compile_options(cfg_optimization=False):
                    compat.launch_kernel(_axpy.grad, x, y, 0.6, 2, True)
            assert impl.current_cfg().cfg_optimization == default
        grads.append(x.grad.to_numpy())
    np.testing.assert_array_equal(grads[0], grads[1])
    assert np.abs(grads[0]).max() > 0


def test_a_field_declared_between_kept_launches_is_materialized():
    """A kept launch skips Taichi's materialize only while no field waits for it: a field
    declared after kept launches is usable by the next kernel, and the kept launch still runs."""
    x, y = _pair(3, 5)
    for _ in range(2):
        compat.launch_kernel(_axpy, x, y, 1.0, 1, False)
    f = ti.field(ti.f64, shape=3)
    expected = y.to_numpy() + x.to_numpy()
    compat.launch_kernel(_axpy, x, y, 1.0, 1, False)
    np.testing.assert_array_equal(y.to_numpy(), expected)
    f[1] = 2.5
    assert f.to_numpy().tolist() == [0.0, 2.5, 0.0]
