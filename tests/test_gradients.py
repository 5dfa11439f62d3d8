"""Reverse-mode gradients through the tape agree with float64 central differences."""

from typing import ClassVar

import numpy as np
import pytest
import taichi as ti

import diffsim
from diffsim import Binomial, Objective, Parameter, Rollout, StoreAll, gradcheck
from diffsim.errors import ConfigError, GradientCheckError
from diffsim.mass_spring import MassSpringChain
from diffsim.tape import launch

T = 60


def make_objective(system, schedule, names):
    ro = Rollout(system, T, schedule, segment=10)
    ro.set_controls(force=0.3 * np.sin(0.37 * np.arange(T))[:, None])
    return Objective(ro, names)


@pytest.fixture(scope="module")
def chain():
    return MassSpringChain(n=5, dt=0.01, stiffness=150.0, damping=0.3, mass=[0.1, 0.12, 0.08, 0.1, 0.15],
                           kappa=200.0, segment=10)


@pytest.mark.parametrize("schedule", [StoreAll(), Binomial(3)])
def test_parameter_gradients_match_central_differences(chain, schedule):
    obj = make_objective(chain, schedule, ["stiffness", "damping", "mass"])
    report = gradcheck(obj, obj.x0(), rtol=1e-6)
    assert report.ok, str(report)
    assert len(report.rows) == 7 + 2  # every entry and two random directions
    assert report.max_rel_error < 1e-6


def test_control_gradients_match_central_differences(chain):
    obj = make_objective(chain, Binomial(4), ["force"])
    report = gradcheck(obj, obj.x0(), rtol=1e-6, entries=12, directions=3)
    assert report.ok, str(report)
    # the last controls act on the tip: their gradient is not negligible
    assert abs(report.rows[-4].reverse) > 1e-8


def test_initial_state_gradients_match_central_differences(chain):
    obj = make_objective(chain, Binomial(2), [Parameter("q", kind="state0"), Parameter("v", kind="state0")])
    report = gradcheck(obj, obj.x0(), rtol=1e-6)
    assert report.ok, str(report)


def test_log_transform_and_bounds(chain):
    obj = make_objective(chain, StoreAll(), [Parameter("stiffness", transform="log", lower=1.0, upper=1e3),
                                             Parameter("damping", lower=0.0)])
    x = obj.x0()
    assert x[0] == pytest.approx(np.log(150.0))
    assert obj.bounds == [(0.0, pytest.approx(np.log(1e3))), (0.0, None)]
    report = gradcheck(obj, x, rtol=1e-6)
    assert report.ok, str(report)
    assert obj.unpack(x)["stiffness"][0] == pytest.approx(150.0)
    assert obj.names == ["stiffness[0]", "damping[0]"]


def test_objective_errors(chain):
    ro = Rollout(chain, 5)
    with pytest.raises(ConfigError, match="not a parameter"):
        Objective(ro, ["spring_constant"])
    with pytest.raises(ConfigError, match="say which"):
        chain_q = Rollout(QControlled(n=3), 5)
        Objective(chain_q, ["q"])
    obj = Objective(ro, ["stiffness"])
    with pytest.raises(ConfigError, match=r"shape \(1,\)"):
        obj(np.zeros(3))


class QControlled(MassSpringChain):
    """A system whose control is also named like a state field, to test disambiguation."""

    control_shapes: ClassVar[dict] = {"force": (1,), "q": (1,)}


# ---------------------------------------------------------------- a deliberately wrong kernel

_A1 = ti.types.ndarray(ndim=1)
_A2 = ti.types.ndarray(ndim=2)


@ti.kernel
def _spring_forces(q: _A2, k: _A1, f: _A1, src: ti.i32):
    for i in range(q.shape[1]):
        f[i] = -k[0] * q[src, i]


@ti.kernel
def _integrate(q: _A2, v: _A2, f: _A1, src: ti.i32, dst: ti.i32):
    for i in range(q.shape[1]):
        vn = v[src, i] + 0.01 * f[i]
        v[dst, i] = vn
        q[dst, i] = q[src, i] + 0.01 * vn


@ti.kernel
def _tip_height(q: _A2, slot: ti.i32, loss: _A1):
    for i in range(q.shape[1]):
        loss[0] += q[slot, i] * q[slot, i]


class ScratchWithoutGrad(diffsim.System):
    """Forces go through a scratch array allocated WITHOUT needs_grad: the forward is right, the
    stiffness gradient silently misses every path through the force (taichi-dev/taichi#1966)."""

    state_shapes: ClassVar[dict] = {"q": (3,), "v": (3,)}

    def __init__(self):
        self.k = ti.ndarray(ti.f64, 1, needs_grad=True)
        self.k.from_numpy(np.array([4.0]))
        self.f = ti.ndarray(ti.f64, 3)  # the bug: no needs_grad

    def parameters(self):
        return {"k": self.k}

    def initial_state(self):
        return {"q": np.array([0.1, -0.2, 0.3]), "v": np.zeros(3)}

    def step(self, x, u, src, dst, t):
        return [launch(_spring_forces, x.q, self.k, self.f, src), launch(_integrate, x.q, x.v, self.f, src, dst)]

    def terminal_cost(self, x, slot, loss):
        return [launch(_tip_height, x.q, slot, loss)]


def test_gradcheck_catches_a_wrong_kernel():
    obj = Objective(Rollout(ScratchWithoutGrad(), 40), ["k"])
    report = gradcheck(obj, obj.x0())
    assert not report.ok
    assert report.rows[0].reverse == 0.0 and abs(report.rows[0].central) > 1e-3
    with pytest.raises(GradientCheckError, match="FAIL"):
        gradcheck(obj, obj.x0(), raise_on_fail=True)


def test_report_is_readable(chain):
    obj = make_objective(chain, StoreAll(), ["damping"])
    text = str(gradcheck(obj, obj.x0()))
    assert "central FD" in text and "damping[0]" in text and "PASS" in text


def test_forward_mode_jvp_agrees_on_a_field_kernel():
    """Forward mode (fields only in Taichi 1.7.4) as a third opinion: LJ dimer energy."""
    r = ti.field(ti.f64, shape=())
    sigma = ti.field(ti.f64, shape=(), needs_grad=True, needs_dual=True)
    energy = ti.field(ti.f64, shape=(), needs_grad=True, needs_dual=True)

    @ti.kernel
    def lj():
        sr6 = (sigma[None] / r[None]) ** 6
        energy[None] = 4.0 * (sr6 * sr6 - sr6)

    r[None] = 1.3

    def f(x):
        sigma[None] = x[0]
        with ti.ad.Tape(loss=energy):
            lj()
        return energy[None], np.array([sigma.grad[None]])

    def fwd(x, d):
        sigma[None] = x[0]
        return diffsim.forward_jvp(lj, energy, sigma, d)

    report = gradcheck(f, np.array([1.05]), forward=fwd)
    assert report.ok, str(report)
    s = 1.05
    exact = 4 * (12 * s**11 / 1.3**12 - 6 * s**5 / 1.3**6)
    assert report.rows[0].forward == pytest.approx(exact, rel=1e-12)
