"""Every optimiser reaches the known minimum of a convex quadratic and of 2-D Rosenbrock."""

import numpy as np
import pytest

import optimizers as opt


def rosenbrock(x):
    """f(a, b) = (1 - a)^2 + 100 (b - a^2)^2, minimum 0 at (1, 1)."""
    a, b = x
    r = b - a * a
    return (1 - a) ** 2 + 100 * r ** 2, np.array([-2 * (1 - a) - 400 * a * r, 200 * r])


_Q = np.linalg.qr(np.random.default_rng(3).normal(size=(5, 5)))[0]
A = _Q @ np.diag([1.0, 2.0, 4.0, 6.0, 10.0]) @ _Q.T  # SPD, condition number 10
C = np.array([1.0, -2.0, 0.5, 3.0, -1.0])


def quadratic(x):
    """f(x) = (x - c)^T A (x - c) / 2, minimum 0 at c."""
    d = x - C
    return 0.5 * d @ A @ d, A @ d


# (method, iterations, tolerance on max |x - x*|) for the quadratic from x = 0
QUADRATIC = {
    "sgd": (opt.SGD(lr=0.15), 300, 1e-8),
    "momentum": (opt.SGD(lr=0.05, momentum=0.9), 400, 1e-8),
    "nesterov": (opt.SGD(lr=0.05, momentum=0.9, nesterov=True), 400, 1e-8),
    "adam": (opt.Adam(lr=opt.cosine_decay(0.3, 1500)), 1500, 1e-6),
    "adamw": (opt.AdamW(lr=opt.cosine_decay(0.3, 1500), weight_decay=1e-8), 1500, 1e-6),
    "rmsprop": (opt.RMSProp(lr=opt.cosine_decay(0.05, 2000)), 2000, 1e-6),
    "lbfgs": (opt.LBFGS(), 100, 1e-6),
}

# Rosenbrock from the classical start (-1.2, 1)
ROSENBROCK = {
    "sgd": (opt.SGD(lr=1.5e-3), 10000, 5e-3),
    "momentum": (opt.SGD(lr=1e-3, momentum=0.9), 4000, 1e-6),
    "nesterov": (opt.SGD(lr=1e-3, momentum=0.9, nesterov=True), 4000, 1e-6),
    "adam": (opt.Adam(lr=opt.cosine_decay(0.05, 4000)), 4000, 1e-4),
    # small decay: the minimiser of f + wd |x|^2 / 2 moves by O(wd)
    "adamw": (opt.AdamW(lr=opt.cosine_decay(0.05, 4000), weight_decay=1e-5), 4000, 1e-3),
    "rmsprop": (opt.RMSProp(lr=opt.exponential_decay(0.01, 0.01, 4000)), 10000, 1e-4),
    "lbfgs": (opt.LBFGS(), 200, 1e-5),
}


@pytest.mark.parametrize("name", list(QUADRATIC))
def test_convex_quadratic(name):
    method, iters, tol = QUADRATIC[name]
    res = opt.minimize(quadratic, np.zeros(5), method, iters)
    assert np.max(np.abs(res.x - C)) < tol, res
    assert res.fun == pytest.approx(quadratic(res.x)[0])
    assert res.history["loss"][-1] < 1e-3 * res.history["loss"][0]


@pytest.mark.parametrize("name", list(ROSENBROCK))
def test_rosenbrock(name):
    method, iters, tol = ROSENBROCK[name]
    res = opt.minimize(rosenbrock, [-1.2, 1.0], method, iters)
    assert np.max(np.abs(res.x - 1.0)) < tol, res
    assert res.fun < 1e-3


def test_methods_by_name_with_lr():
    for name, lr in [("sgd", 0.1), ("adam", 0.05), ("adamw", 0.05), ("rmsprop", 0.01)]:
        res = opt.minimize(quadratic, np.zeros(5), name, 2000, lr=opt.cosine_decay(lr, 2000))
        assert res.method == name
        assert np.max(np.abs(res.x - C)) < 1e-3, (name, res)
    res = opt.minimize(quadratic, np.zeros(5), "lbfgs", 100)
    assert res.method == "lbfgs" and res.success and np.max(np.abs(res.x - C)) < 1e-6


def test_composed_transform_as_method():
    method = opt.chain(opt.clip_by_global_norm(1.0), opt.adam(opt.cosine_decay(0.2, 2000)))
    res = opt.minimize(quadratic, np.zeros(5), method, 2000)
    assert res.method == "custom"
    assert np.max(np.abs(res.x - C)) < 1e-4
