"""Box bounds: L-BFGS-B against scipy and analytic answers; projection for first-order methods."""

import numpy as np
import pytest
import scipy.optimize

import optimizers as opt
from optimizers.bounds import Box, as_box

C = np.array([2.0, -1.0, 0.5])


def shifted_square(x):
    """f(x) = |x - c|^2; on the box [0, 1]^3 the minimiser is clip(c, 0, 1) = (1, 0, 0.5)."""
    return float(np.sum((x - C) ** 2)), 2.0 * (x - C)


def rosenbrock(x):
    a, b = x
    r = b - a * a
    return (1 - a) ** 2 + 100 * r ** 2, np.array([-2 * (1 - a) - 400 * a * r, 200 * r])


def test_lbfgs_solution_on_active_bounds_matches_analytic_and_scipy():
    x0 = np.array([0.5, 0.5, 0.9])
    res = opt.minimize(shifted_square, x0, "lbfgs", 100, bounds=(0.0, 1.0))
    np.testing.assert_allclose(res.x, [1.0, 0.0, 0.5], atol=1e-10)
    assert res.x[0] == 1.0 and res.x[1] == 0.0  # exactly on the active bounds
    ref = scipy.optimize.minimize(shifted_square, x0, jac=True, method="L-BFGS-B",
                                  bounds=[(0, 1)] * 3)
    np.testing.assert_array_equal(res.x, ref.x)
    assert res.nit == ref.nit and res.nfev == ref.nfev and res.success == ref.success
    assert res.message == ref.message


def test_lbfgs_rosenbrock_with_an_active_bound():
    # with a <= 0.5 the best b is a^2 and f = (1 - a)^2, so the minimiser is (0.5, 0.25)
    bounds = [(None, 0.5), (None, None)]
    res = opt.minimize(rosenbrock, [-1.2, 1.0], opt.LBFGS(bounds=bounds), 200)
    np.testing.assert_allclose(res.x, [0.5, 0.25], atol=1e-6)
    assert res.x[0] == 0.5
    assert res.fun == pytest.approx(0.25, abs=1e-10)
    ref = scipy.optimize.minimize(rosenbrock, [-1.2, 1.0], jac=True, method="L-BFGS-B",
                                  bounds=bounds)
    np.testing.assert_array_equal(res.x, ref.x)
    assert len(res.history["loss"]) == res.nit + 1 == ref.nit + 1
    assert res.history["loss"][-1] == res.fun


def test_projected_first_order_methods_land_on_the_bounds():
    for method in [opt.SGD(lr=0.1), opt.Adam(lr=opt.cosine_decay(0.1, 500))]:
        res = opt.minimize(shifted_square, np.full(3, 5.0), method, 500, bounds=(0.0, 1.0),
                           gtol=1e-8)
        np.testing.assert_allclose(res.x, [1.0, 0.0, 0.5], atol=1e-6)
        assert np.all(res.x >= 0.0) and np.all(res.x <= 1.0)
        # the raw gradient is not zero at a bound-constrained optimum; the projected one is
        assert res.history["grad_norm"][-1] > 1.0
    res = opt.minimize(shifted_square, np.full(3, 5.0), "sgd", 500, lr=0.1, bounds=(0.0, 1.0),
                       gtol=1e-8)
    assert res.success and "projected gradient" in res.message and res.nit < 500


def test_every_iterate_of_a_first_order_method_is_feasible():
    seen = []
    opt.minimize(shifted_square, np.full(3, 0.5), "adam", 50, lr=0.3, bounds=(0.0, 1.0),
                 callback=lambda k, x, f, g: seen.append(x))
    seen = np.array(seen)
    assert seen.min() >= 0.0 and seen.max() <= 1.0
    assert np.any(seen == 1.0)  # the bound was hit, so the projection did something


def test_bounds_formats():
    n = 3
    expect = Box(np.array([0.0, -np.inf, 1.0]), np.array([1.0, 2.0, np.inf]))
    forms = [
        [(0, 1), (None, 2), (1, None)],
        (np.array([0.0, -np.inf, 1.0]), np.array([1.0, 2.0, np.inf])),
        ([0.0, None, 1.0], [1.0, 2.0, None]),
        scipy.optimize.Bounds([0.0, -np.inf, 1.0], [1.0, 2.0, np.inf]),
        expect,
    ]
    for b in forms:
        box = as_box(b, n)
        np.testing.assert_array_equal(box.lo, expect.lo)
        np.testing.assert_array_equal(box.hi, expect.hi)
    box = as_box((0, None), n)
    np.testing.assert_array_equal(box.lo, np.zeros(3))
    assert np.all(np.isinf(box.hi))
    # n == 2: a pair of pairs follows scipy's per-parameter convention, a pair of arrays is (lo, hi)
    np.testing.assert_array_equal(as_box([(0, 1), (2, 3)], 2).lo, [0, 2])
    np.testing.assert_array_equal(as_box((np.array([0, 1]), np.array([2, 3])), 2).lo, [0, 1])
    assert as_box(None, 3) is None
    with pytest.raises(ValueError, match="parameter 1 are empty"):
        as_box([(0, 1), (2, 1), (0, 1)], 3)
    with pytest.raises(ValueError, match="shape"):
        as_box((np.zeros(2), np.ones(2)), 3)


def test_bounds_given_twice_is_an_error():
    with pytest.raises(ValueError, match="bounds given both"):
        opt.minimize(shifted_square, np.zeros(3), opt.LBFGS(bounds=(0, 1)), 10, bounds=(0, 1))
