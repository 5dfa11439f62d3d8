"""Honest results: success=False, with a plain message and a Reason, when a fit did not work.

The issue's false-success cases rebuilt as small NumPy problems: Adam that blows a state up to a
huge but finite value, a negative learning rate, a gradient that is exactly zero at x0."""

import warnings

import numpy as np
import pytest

import optimizers as opt
from optimizers import ConfigError, Reason

T = 200  # steps of the toy rollout below


class Runaway:
    """A gain ``x`` compounded over ``T`` steps: the final state is ``v_T = exp(T x)`` and the loss
    ``(v_T - 2)^2`` (minimum 0 at ``x = ln 2 / T``; 1 at ``x0 = 0``). A step of 1 in ``x`` gives
    ``v_T = 7e86``: huge, but finite. With ``limit``, a state beyond it is reported the way the
    tape reports a diverged rollout to ``Objective(on_diverged="nan")``: a NaN loss and gradient,
    and the reason in ``last_divergence``."""

    def __init__(self, limit=None):
        self.limit, self.last_divergence = limit, None

    def __call__(self, x):
        v = np.exp(T * x[0])
        self.last_divergence = None
        if self.limit is not None and not v <= self.limit:
            self.last_divergence = f"step {T}: state field 'v'[0] is {v:.3g}, beyond {self.limit:g}"
            return np.nan, np.full(1, np.nan)
        return float((v - 2.0) ** 2), np.array([2.0 * (v - 2.0) * T * v])


def test_adam_that_blows_the_state_up_is_not_a_success():
    # The case: the first step (lr 1) takes the state to 7e86; the next gradient squared
    # overflows Adam's second moment to inf, so Adam never moves again. The loss ends at 5e173;
    # this used to be success=True ("reached iters").
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # g**2 overflows, as it did in the issue
        res = opt.minimize(Runaway(), np.zeros(1), "adam", 50, lr=1.0, on_nonfinite="backoff")
    assert res.fun > 1e170 and not res.success and res.reason == Reason.LOSS_INCREASED
    assert res.reason == "loss_increased"  # a plain string as well
    assert res.message.startswith(f"the loss rose from 1 at the start to {res.fun:.6g} at the end")
    assert "reached iters = 50" in res.message  # what the run itself ended on


def test_adam_backing_off_from_a_diverged_state_reports_where_it_ended():
    # With the tape's range check (emulated: NaN beyond 1e6), backing off halves the step until
    # the state stays in range; Adam then overshoots into the flat region x < 0 and ends at
    # loss 4, above the start: reported, with both numbers.
    res = opt.minimize(Runaway(limit=1e6), np.zeros(1), "adam", 100, lr=1.0,
                       on_nonfinite="backoff")
    assert res.nbackoff == 4 and np.all(res.history["loss"] < 1e12)
    assert not res.success and res.reason == "loss_increased"
    assert res.fun == pytest.approx(4.0, abs=1e-3)
    assert "the loss rose from 1 at the start to 4" in res.message

    # out of back-offs: the run ends at the last finite iterate, and says why (the objective's
    # own reason, e.g. the diverged state's step and field, is quoted)
    res = opt.minimize(Runaway(limit=1e6), np.zeros(1), "adam", 100, lr=1.0,
                       on_nonfinite="backoff", max_backoffs=2)
    assert not res.success and res.reason == Reason.DIVERGED
    assert res.x[0] == 0.0 and res.nit == 0 and res.fun == 1.0
    assert res.message.startswith("iteration 1: loss is NaN (the objective reports: step 200: "
                                  "state field 'v'[0] is 5.18e+21, beyond 1e+06), still after "
                                  "halving the step 2 times")

    # a sensible rate reaches the goal and says so
    res = opt.minimize(Runaway(limit=1e6), np.zeros(1), opt.Adam(lr=opt.cosine_decay(5e-3, 300)),
                       300, on_nonfinite="backoff")
    assert res.success and res.reason == "budget" and res.fun < 1e-12
    assert res.x[0] == pytest.approx(np.log(2.0) / T, rel=1e-6)


def bowl(x):
    return float(x @ x), 2.0 * x


@pytest.mark.parametrize("method", ["sgd", "adam", "adamw", "rmsprop"])
@pytest.mark.parametrize("lr", [-0.1, 0.0, np.nan, np.inf])
def test_a_learning_rate_that_is_not_positive_is_a_config_error(method, lr):
    # the old code took lr=-0.1, climbed the loss 100x and reported success=True
    with pytest.raises(ConfigError,
                       match=r"lr = (-0\.1|0|nan|inf) .*(must be positive|not finite)"):
        opt.minimize(bowl, np.ones(3), method, 10, lr=lr)
    assert issubclass(ConfigError, ValueError)


def test_learning_rate_errors_name_the_argument_and_the_fix():
    with pytest.raises(ConfigError, match=r"^lr = -0\.01 must be positive: a learning rate of "
                                          r"-0\.01 climbs the loss instead of descending; pass a "
                                          r"positive number \(e\.g\. 1e-3 for Adam"):
        opt.Adam(lr=-0.01)
    with pytest.raises(ConfigError, match="never moves"):
        opt.chain(opt.clip_by_global_norm(1.0), opt.sgd(0.0))
    with pytest.raises(ConfigError, match=r"cosine_decay\(init\) = -0\.1 must be positive"):
        opt.cosine_decay(-0.1, 100)
    with pytest.raises(ConfigError, match=r"exponential_decay\(decay_rate\) = 0 must be positive"):
        opt.exponential_decay(0.1, 0.0, 10)
    with pytest.raises(ConfigError, match=r"constant\(value\) = -1 must be positive"):
        opt.constant(-1.0)
    with pytest.raises(ConfigError, match="warmup"):
        opt.warmup(5, 0.1, init=-0.1)
    with pytest.raises(ConfigError, match="alpha"):
        opt.cosine_decay(0.1, 100, alpha=-0.5)
    with pytest.raises(ConfigError, match="must be a positive number, got 'fast'"):
        opt.SGD(lr="fast")


def test_a_schedule_that_turns_negative_is_stopped_at_that_step():
    def falling(step):  # a user's schedule that crosses zero after 10 steps
        return 0.1 - 0.01 * step

    with pytest.raises(ConfigError, match=r"schedule lr = .*falling.* gives -0\.01 at step 11"):
        opt.minimize(bowl, np.ones(3), opt.SGD(lr=falling), 50)
    with pytest.raises(ConfigError, match="gives -0.1 at step 0"):
        opt.adam(lambda step: -0.1)
    # schedules may pass through zero: a warmup from 0, a cosine decay to 0
    res = opt.minimize(bowl, np.ones(3), opt.Adam(lr=opt.warmup(5, opt.cosine_decay(0.1, 45))), 50)
    assert res.success and res.fun < 0.05 * 3.0


def test_an_ascent_that_no_check_can_see_is_still_reported():
    # a custom chain whose last transform forgot the sign flip climbs the loss
    ascent = opt.chain(opt.scale_by_adam(), opt.scale(0.1))
    res = opt.minimize(bowl, np.ones(3), ascent, 20)
    assert not res.success and res.reason == "loss_increased" and res.fun > 5 * 3.0
    assert res.message.startswith("the loss rose from 3 at the start to")


def flat_until_contact(x):
    """A cue shot: the loss (object ball's distance to the pocket) only changes once the cue ball
    reaches it, at x[0] > 1; before that it is flat, so the gradient is exactly zero."""
    if x[0] <= 1.0:
        return 0.56, np.zeros_like(x)
    d = x - np.array([2.0, 0.5])
    return 0.56 - 0.5 + float(d @ d), 2.0 * d


METHODS = ["sgd", "adam", "adamw", "rmsprop", "lbfgs",
           opt.chain(opt.clip_by_global_norm(1.0), opt.adam(0.1))]


@pytest.mark.parametrize("method", METHODS, ids=["sgd", "adam", "adamw", "rmsprop", "lbfgs",
                                                 "chain"])
def test_zero_gradient_at_x0_stops_at_once_and_says_so(method):
    calls = []

    def counted(x):
        calls.append(x.copy())
        return flat_until_contact(x)

    res = opt.minimize(counted, np.zeros(2), method, 100, gtol=1e-6)
    assert not res.success and res.reason == Reason.ZERO_GRADIENT
    assert res.message.startswith("the loss does not depend on these parameters here (gradient "
                                  "exactly 0 at the start): no contact, or a parameter that "
                                  "nothing reads?")
    assert res.nit == 0 and res.nfev == 1 and len(calls) == 1  # no iterating on a flat loss
    np.testing.assert_array_equal(res.x, np.zeros(2))
    # from where the loss does depend on x, the same fit converges
    res = opt.minimize(flat_until_contact, np.array([1.5, 0.0]), "lbfgs", 100)
    assert res.success and np.allclose(res.x, [2.0, 0.5])


def test_a_partly_zero_gradient_is_not_flagged():
    res = opt.minimize(lambda x: (float((x[0] - 1.0) ** 2), np.array([2.0 * (x[0] - 1.0), 0.0])),
                       np.zeros(2), "lbfgs", 50)
    assert res.success and res.reason == "converged"


def test_the_reason_survives_a_finished_checkpoint(tmp_path):
    path = tmp_path / "flat.ckpt"
    first = opt.minimize(flat_until_contact, np.zeros(2), "adam", 10, checkpoint=path)
    again = opt.minimize(flat_until_contact, np.zeros(2), "adam", 10, checkpoint=path)
    assert (again.success, again.reason, again.message) == (False, "zero_gradient", first.message)


def test_success_still_means_converged_or_done():
    for method in ["sgd", "adam", "lbfgs"]:
        res = opt.minimize(bowl, np.ones(3), method, 500, lr=None if method == "lbfgs" else 0.05)
        assert res.success and res.fun < 1e-6, method
        assert res.reason in ("budget", "converged")
    res = opt.minimize(bowl, np.ones(3), "sgd", 3, lr=0.01, gtol=1e-12)
    assert not res.success and res.reason == "budget"
    res = opt.minimize(bowl, np.ones(3), "sgd", 100, lr=0.1, callback=lambda k, *a: k == 2)
    assert res.success and res.reason == "callback"


def test_a_run_that_never_moved_is_not_a_success():
    # Adam at a point whose gradient squared overflows: its second moment is inf, so every step
    # is 0 and the loss stays exactly where it started (the old code said success=True)
    def steep(x):
        return float(1e200 * x[0]), np.array([1e200])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = opt.minimize(steep, np.ones(1), "adam", 20)
    assert res.nit == 20 and res.x[0] == 1.0
    assert not res.success and res.reason == Reason.NO_PROGRESS
    assert res.message.startswith("the loss is still exactly its starting value 1e+200 after 20 "
                                  "iterations (the run ended: reached iters = 20)")
    # a schedule that stays at 0 never moves either
    res = opt.minimize(bowl, np.ones(3), opt.SGD(lr=lambda step: 0.0), 5)
    assert not res.success and res.reason == "no_progress"
    # an evaluation-only call (iters=0) and a start that already meets gtol are not failures
    assert opt.minimize(bowl, np.ones(3), "adam", 0).success
    res = opt.minimize(bowl, np.full(3, 1e-9), "lbfgs", 10, gtol=1e-6)
    assert res.success and res.nit == 0 and res.reason == "gtol"


def test_lbfgs_with_a_gradient_that_is_not_the_loss_says_so():
    res = opt.minimize(lambda x: (float(x @ x), -2.0 * x), np.ones(2), "lbfgs", 10)  # wrong sign
    assert not res.success and res.reason == Reason.LINE_SEARCH
    assert res.message == ("ABNORMAL: L-BFGS-B's line search found no lower point along its "
                           "direction (is the gradient the loss's? is the loss smooth here?)")
    assert res.fun == 2.0 and np.all(res.x == 1.0)  # the last iterate, not a rejected trial


def test_lbfgs_that_stops_on_a_kink_says_stalled_not_converged():
    """L-BFGS-B's relative-reduction test fires on an L1 kink with the gradient as large as at the
    start; scipy calls that convergence. After retries with a fresh memory the run says
    ``stalled``, success False, and why."""

    def l1(x):
        return float(np.sum(np.abs(x - 1.0)) + 0.1 * x @ x) + 3.0, np.sign(x - 1.0) + 0.2 * x

    res = opt.minimize(l1, np.array([3.3, -2.1, 0.7]), "lbfgs", 500)
    assert not res.success and res.reason == Reason.STALLED, res.message
    assert res.message.startswith("stalled: L-BFGS-B stopped because the loss no longer fell")
    assert "not a smooth minimum" in res.message and "method='adam'" in res.message
    # a smooth but badly scaled bowl that L-BFGS-B solves is still converged, and so is a warm
    # start that begins at its minimum (the loss cannot fall: no premature stop)

    def valley(x):
        w = np.array([1.0, 1e4])
        return float(0.5 * np.sum(w * (x - 1.0) ** 2)), w * (x - 1.0)

    res = opt.minimize(valley, np.array([5.0, -3.0]), "lbfgs", 200)
    assert res.success and res.reason == Reason.CONVERGED and np.allclose(res.x, 1.0, atol=1e-4)
    res = opt.minimize(valley, np.array([1.0 + 1e-7, 1.0 - 1e-9]), "lbfgs", 200)
    assert res.success, res.message


def test_lbfgs_that_runs_out_of_iterations_is_not_converged():
    """scipy's L-BFGS-B reports a spent iteration budget as a failure; so does minimize: a
    user's fit that stopped at ``iters`` on the way down must not read as converged. The
    message gives how far it got; a larger budget converges and says so."""

    def rosenbrock(x):
        a, b = 1.0 - x[0], x[1] - x[0] ** 2
        return float(a * a + 100.0 * b * b), np.array([-2.0 * a - 400.0 * x[0] * b, 200.0 * b])

    res = opt.minimize(rosenbrock, np.array([-1.2, 1.0]), "lbfgs", 10)
    assert res.nit == 10 and not res.success and res.reason == Reason.BUDGET
    assert res.message.startswith("reached iters = 10 before L-BFGS-B's convergence tests were met (the loss "
                                  f"fell from 24.2 to {res.fun:.6g}; the gradient norm is ")
    assert res.fun < 24.2 and "not converged; raise iters" in res.message
    res = opt.minimize(rosenbrock, np.array([-1.2, 1.0]), "lbfgs", 200)
    assert res.success and res.reason == Reason.CONVERGED and res.nit < 200
    np.testing.assert_allclose(res.x, [1.0, 1.0], atol=1e-4)
    # a first-order method has no convergence test: its budget is the end asked for
    res = opt.minimize(rosenbrock, np.array([-1.2, 1.0]), "adam", 10, lr=1e-3)
    assert res.success and res.reason == Reason.BUDGET and res.message == "reached iters = 10"
