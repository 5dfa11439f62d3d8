"""Gradient transformations and schedules against independent transcriptions and hand values."""

import math
import pickle

import numpy as np
import pytest

import optimizers as opt
from optimizers import schedules

STEPS = 20


def _grad(k, x):
    """A deterministic, x-dependent gradient sequence (a rotated quadratic plus a wobble)."""
    A = np.array([[3.0, 0.5, 0.0], [0.5, 1.0, -0.2], [0.0, -0.2, 0.3]])
    return A @ x + 0.1 * np.sin(k + np.arange(3))


def _run(transform, x0, steps=STEPS):
    """Iterates x_1..x_steps of ``x += step`` driven by ``_grad``."""
    x, state, xs = x0.copy(), transform.init(x0), []
    for k in range(steps):
        step, state = transform.update(_grad(k, x), state, x)
        x = x + step
        xs.append(x)
    return np.array(xs)


X0 = np.array([1.0, -2.0, 0.5])


def test_adam_matches_kingma_ba_algorithm_1():
    lr, b1, b2, eps = 0.05, 0.9, 0.999, 1e-8
    # Kingma & Ba (2015), Algorithm 1, transcribed literally.
    theta, m, v, ref = X0.copy(), np.zeros(3), np.zeros(3), []
    for t in range(1, STEPS + 1):
        g = _grad(t - 1, theta)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
        ref.append(theta)
    got = _run(opt.adam(lr, b1, b2, eps), X0)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(_run(opt.Adam(lr=lr), X0), ref, rtol=0, atol=1e-12)


def test_adamw_matches_decoupled_weight_decay():
    lr, b1, b2, eps, wd = 0.05, 0.9, 0.99, 1e-8, 0.1
    # Loshchilov & Hutter (2019), Algorithm 2 with schedule multiplier eta = lr and alpha = 1,
    # as PyTorch and optax implement it: the decay acts on theta, not through m and v.
    theta, m, v, ref = X0.copy(), np.zeros(3), np.zeros(3), []
    for t in range(1, STEPS + 1):
        g = _grad(t - 1, theta)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        theta = theta - lr * (m_hat / (np.sqrt(v_hat) + eps) + wd * theta)
        ref.append(theta)
    got = _run(opt.adamw(lr, b1, b2, eps, weight_decay=wd), X0)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    # and the decay really is decoupled: it differs from Adam on g + wd * theta (L2 penalty)
    l2 = opt.chain(opt.add_decayed_weights(wd), opt.adam(lr, b1, b2, eps))
    assert np.max(np.abs(_run(l2, X0) - got)) > 1e-4


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_matches_pytorch_rule(nesterov):
    lr, mu = 0.05, 0.9
    # torch.optim.SGD: buf = mu * buf + g (buf = g at the first step); nesterov: g + mu * buf.
    x, buf, ref = X0.copy(), None, []
    for k in range(STEPS):
        g = _grad(k, x)
        buf = g.copy() if buf is None else mu * buf + g
        d = g + mu * buf if nesterov else buf
        x = x - lr * d
        ref.append(x)
    got = _run(opt.sgd(lr, momentum=mu, nesterov=nesterov), X0)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    got_cls = _run(opt.SGD(lr=lr, momentum=mu, nesterov=nesterov), X0)
    np.testing.assert_allclose(got_cls, ref, rtol=0, atol=1e-12)


def test_plain_sgd_and_rmsprop_match_their_rules():
    lr = 0.05
    x, ref = X0.copy(), []
    for k in range(STEPS):
        x = x - lr * _grad(k, x)
        ref.append(x)
    np.testing.assert_allclose(_run(opt.sgd(lr), X0), ref, rtol=0, atol=1e-12)

    decay, eps, mu = 0.9, 1e-8, 0.5  # torch.optim.RMSprop with momentum
    x, v, buf, ref = X0.copy(), np.zeros(3), np.zeros(3), []
    for k in range(STEPS):
        g = _grad(k, x)
        v = decay * v + (1 - decay) * g * g
        buf = mu * buf + g / (np.sqrt(v) + eps)
        x = x - lr * buf
        ref.append(x)
    got = _run(opt.rmsprop(lr, decay, eps, momentum=mu), X0)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


def test_learning_rate_schedule_is_used_per_step():
    sched = opt.exponential_decay(0.1, 0.5, 1)  # 0.1, 0.05, 0.025 ...
    t = opt.sgd(sched)
    state = t.init(np.zeros(1))
    for k in range(4):
        step, state = t.update(np.ones(1), state, np.zeros(1))
        assert step[0] == pytest.approx(-0.1 * 0.5 ** k, abs=1e-15)


def test_clipping_by_hand():
    g = np.array([3.0, -4.0])  # norm 5
    x = np.zeros(2)
    step, _ = opt.clip_by_global_norm(1.0).update(g, (), x)
    np.testing.assert_allclose(step, [0.6, -0.8], atol=1e-15)
    step, _ = opt.clip_by_global_norm(10.0).update(g, (), x)
    np.testing.assert_array_equal(step, g)  # below the threshold: untouched
    step, _ = opt.clip_by_value(-1.0, 2.0).update(np.array([3.0, -4.0, 0.5]), (), np.zeros(3))
    np.testing.assert_array_equal(step, [2.0, -1.0, 0.5])
    step, _ = opt.clip(3.5).update(g, (), x)
    np.testing.assert_array_equal(step, [3.0, -3.5])


def test_normalize_by_hand():
    step, _ = opt.normalize().update(np.array([3.0, -4.0]), (), np.zeros(2))
    np.testing.assert_allclose(step, [0.6, -0.8], atol=1e-15)
    step, _ = opt.normalize().update(np.zeros(2), (), np.zeros(2))
    np.testing.assert_array_equal(step, [0.0, 0.0])  # zero stays zero, no NaN


def test_chain_order_matters():
    g, x = np.array([3.0, -4.0]), np.zeros(2)
    a = opt.chain(opt.clip(1.0), opt.scale(10.0))
    b = opt.chain(opt.scale(10.0), opt.clip(1.0))
    step_a, _ = a.update(g, a.init(x), x)
    step_b, _ = b.update(g, b.init(x), x)
    np.testing.assert_array_equal(step_a, [10.0, -10.0])
    np.testing.assert_array_equal(step_b, [1.0, -1.0])


def test_scale_by_schedule_counts_updates_without_flipping_sign():
    t = opt.chain(opt.normalize(), opt.scale_by_schedule(lambda k: 1.0 / (k + 1)))
    x = np.zeros(2)
    state = t.init(x)
    steps = []
    for _ in range(3):
        s, state = t.update(np.array([0.0, 2.0]), state, x)
        steps.append(s[1])
    np.testing.assert_allclose(steps, [1.0, 0.5, 1.0 / 3.0], atol=1e-15)


def test_schedules_by_hand():
    assert opt.constant(0.3)(0) == 0.3 and opt.constant(0.3)(10 ** 6) == 0.3
    e = opt.exponential_decay(1.0, 0.5, 10)
    assert e(0) == 1.0 and e(10) == 0.5 and e(20) == 0.25
    assert e(5) == pytest.approx(0.5 ** 0.5, rel=1e-15)
    assert opt.exponential_decay(1.0, 0.5, 10, staircase=True)(19) == 0.5
    c = opt.cosine_decay(2.0, 100, alpha=0.1)
    assert c(0) == pytest.approx(2.0)
    assert c(50) == pytest.approx(2.0 * (0.9 * 0.5 + 0.1))  # cos(pi/2) = 0
    assert c(100) == pytest.approx(0.2) and c(1000) == pytest.approx(0.2)
    assert c(25) == pytest.approx(2.0 * (0.9 * 0.5 * (1 + math.cos(math.pi / 4)) + 0.1))
    w = opt.warmup(4, opt.cosine_decay(1.0, 10))
    assert [w(k) for k in range(5)] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert w(9) == pytest.approx(0.5)  # halfway through the cosine
    w2 = opt.warmup(2, 0.4, init=0.2)
    assert [w2(k) for k in range(4)] == pytest.approx([0.2, 0.3, 0.4, 0.4])


def test_schedules_and_states_pickle():
    s = opt.warmup(3, opt.cosine_decay(1e-2, 100))
    assert pickle.loads(pickle.dumps(s))(7) == s(7)
    assert repr(s).startswith("Warmup(steps=3, after=CosineDecay(")
    t = opt.chain(opt.clip_by_global_norm(1.0), opt.adamw(s, weight_decay=0.1))
    state = t.init(X0)
    _, state = t.update(_grad(0, X0), state, X0)
    back = pickle.loads(pickle.dumps(state))
    a, _ = t.update(_grad(1, X0), state, X0)
    b, _ = t.update(_grad(1, X0), back, X0)
    np.testing.assert_array_equal(a, b)


def test_update_does_not_modify_its_inputs():
    t = opt.sgd(0.1, momentum=0.9)
    g, x = np.array([1.0, 2.0]), np.array([0.5, 0.5])
    state = t.init(x)
    _, state1 = t.update(g, state, x)
    _, _ = t.update(g, state1, x)
    np.testing.assert_array_equal(state1[0].trace, g)  # not advanced in place
    np.testing.assert_array_equal(g, [1.0, 2.0])


def test_bad_settings_fail_at_construction():
    with pytest.raises(ValueError, match="momentum"):
        opt.SGD(momentum=1.5)
    with pytest.raises(ValueError, match="nesterov"):
        opt.sgd(0.1, nesterov=True)
    with pytest.raises(ValueError, match="max_norm"):
        opt.clip_by_global_norm(0.0)
    with pytest.raises(ValueError, match="decay_steps"):
        schedules.cosine_decay(1.0, 0)
