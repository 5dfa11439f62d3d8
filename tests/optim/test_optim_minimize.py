"""minimize's contract: result type, history, callback, stopping tests, progress, bad arguments."""

import numpy as np
import pytest

import optimizers as opt

C = np.array([1.0, -2.0, 3.0])


def bowl(x):
    d = x - C
    return float(d @ d), 2.0 * d


@pytest.mark.parametrize("method", ["sgd", "adam", "adamw", "rmsprop", "lbfgs"])
def test_one_result_type_for_every_method(method):
    res = opt.minimize(bowl, np.zeros(3), method, 20)
    assert type(res) is opt.OptimizeResult
    assert res.x.shape == (3,) and res.jac.shape == (3,) and res.x.dtype == np.float64
    assert res.fun == bowl(res.x)[0]
    np.testing.assert_array_equal(res.jac, bowl(res.x)[1])
    assert len(res.history["loss"]) == len(res.history["grad_norm"]) == res.nit + 1
    assert res.history["loss"][0] == bowl(np.zeros(3))[0]
    assert res.history["loss"][-1] == res.fun
    assert res.history["grad_norm"][-1] == pytest.approx(np.linalg.norm(res.jac))
    assert res.nfev >= res.nit + 1
    assert set(res.timings) == {"total_s", "per_iteration_s", "objective_s"}
    assert 0 <= res.timings["objective_s"] <= res.timings["total_s"]
    assert isinstance(res.success, bool) and res.message


def test_iteration_count_and_final_evaluation_for_first_order():
    res = opt.minimize(bowl, np.zeros(3), "sgd", 7, lr=0.1)
    assert res.nit == 7 and res.nfev == 8 and res.success
    assert res.message == "reached iters = 7"
    # x_k = c (1 - 0.8^k) for gradient descent with lr 0.1 on |x - c|^2
    np.testing.assert_allclose(res.x, C * (1 - 0.8 ** 7), rtol=1e-14)


def test_callback_sees_every_iterate_and_can_stop():
    calls = []

    def cb(k, x, loss, grad):
        calls.append((k, x.copy(), loss, grad.copy()))
        x[:] = 1e9  # mutating what it was given must not touch the run
        return k == 5

    res = opt.minimize(bowl, np.zeros(3), "sgd", 100, lr=0.1, callback=cb)
    assert [c[0] for c in calls] == list(range(6))
    assert res.nit == 5 and res.success and "callback" in res.message
    np.testing.assert_array_equal(calls[-1][1], res.x)
    assert calls[-1][2] == res.fun
    np.testing.assert_allclose(res.x, C * (1 - 0.8 ** 5), rtol=1e-14)

    res = opt.minimize(bowl, np.zeros(3), "lbfgs", 100, callback=lambda k, x, f, g: k == 1)
    assert res.nit == 1 and "callback" in res.message and res.success


def test_tol_and_gtol_stop_the_run():
    res = opt.minimize(bowl, np.zeros(3), "sgd", 1000, lr=0.1, gtol=1e-6)
    assert res.success and res.nit < 1000 and "gradient norm" in res.message
    assert np.linalg.norm(res.jac) <= 1e-6
    assert res.history["grad_norm"][-2] > 1e-6  # it stopped at the first iterate that qualified

    res = opt.minimize(bowl, np.zeros(3), "sgd", 1000, lr=0.1, tol=1e-10)
    loss = res.history["loss"]
    assert res.success and "loss change" in res.message
    assert abs(loss[-1] - loss[-2]) <= 1e-10 < abs(loss[-2] - loss[-3])

    res = opt.minimize(bowl, np.zeros(3), "lbfgs", 100, gtol=1e-3)
    assert res.success and np.linalg.norm(res.jac) <= 1e-3


def test_budget_without_convergence_is_not_success_when_a_tolerance_was_asked():
    res = opt.minimize(bowl, np.zeros(3), "sgd", 3, lr=0.01, gtol=1e-12)
    assert not res.success and res.nit == 3


def test_progress_bar_only_when_asked_or_on_a_terminal(capsys):
    opt.minimize(bowl, np.zeros(3), "adam", 5, progress=True)
    err = capsys.readouterr().err
    assert "adam" in err and "5/5" in err
    opt.minimize(bowl, np.zeros(3), "adam", 5, progress=False)
    opt.minimize(bowl, np.zeros(3), "adam", 5)  # stderr is captured, not a terminal
    assert capsys.readouterr().err == ""


def test_inputs_are_not_modified():
    x0 = np.zeros(3)
    opt.minimize(bowl, x0, "adam", 5)
    np.testing.assert_array_equal(x0, np.zeros(3))


def test_argument_errors_say_what_to_do():
    with pytest.raises(ValueError, match="unknown method 'newton'"):
        opt.minimize(bowl, np.zeros(3), "newton")
    with pytest.raises(ValueError, match=r"Adam\(lr=0.1\)"):
        opt.minimize(bowl, np.zeros(3), opt.Adam(), lr=0.1)
    with pytest.raises(ValueError, match="L-BFGS"):
        opt.minimize(bowl, np.zeros(3), "lbfgs", lr=0.1)
    with pytest.raises(ValueError, match="1-D"):
        opt.minimize(bowl, np.zeros((3, 1)))
    with pytest.raises(TypeError, match="gradient transformation"):
        opt.minimize(bowl, np.zeros(3), 42)
    with pytest.raises(ValueError, match=r"gradient of shape \(2,\)"):
        opt.minimize(lambda x: (0.0, np.zeros(2)), np.zeros(3))
    with pytest.raises(ValueError, match="scalar"):
        opt.minimize(lambda x: (np.zeros(2), np.zeros(3)), np.zeros(3))
    with pytest.raises(opt.ConfigError, match=r"\(loss, grad\)"):
        opt.minimize(lambda x: 1.0, np.zeros(3))
    with pytest.raises(opt.ConfigError, match="max_backoffs must be >= 0"):
        opt.minimize(bowl, np.zeros(3), "lbfgs", on_nonfinite="backoff", max_backoffs=-1)
    with pytest.raises(opt.ConfigError, match="on_nonfinite must be 'raise' or 'backoff'"):
        opt.minimize(bowl, np.zeros(3), on_nonfinite="ignore")
    for iters in (2.5, "5", True):
        with pytest.raises(opt.ConfigError, match="iters must be a whole number"):
            opt.minimize(bowl, np.ones(3), iters=iters)
    with pytest.raises(opt.ConfigError, match="non-empty"):
        opt.minimize(bowl, np.zeros(0))
    with pytest.raises(opt.ConfigError, match="x0 must be a vector of real numbers"):
        opt.minimize(bowl, ["a", "b"])
    with pytest.raises(opt.ConfigError, match="not an array of real numbers"):
        opt.minimize(lambda x: (1.0, "a"), np.zeros(2))
    with pytest.raises(ValueError, match="param_names describe 2"):
        opt.minimize(bowl, np.zeros(3), param_names=["a", "b"])
