"""diffsim.particles.ParticleSystem: a user's own forces as @ti.func, fused by the tape.

Checked as a user would: the trajectory against the same law stepped in NumPy, momentum, the
gradient against central differences through a collision, every schedule bitwise equal, a fit
that reaches its goal, and bad input named.
"""

import numpy as np
import pytest
import taichi as ti

import diffsim
from diffsim import Binomial, Objective, Parameter, Rollout, StoreAll
from diffsim.costs import NumpyCost
from diffsim.errors import ConfigError
from diffsim.particles import ParticleSystem


@ti.func
def soft_contact(i, j, xi, vi, xj, vj, p: ti.template()):
    """A smooth repulsion between discs: k * softplus(overlap / w) * w along the centre line (N)."""
    d = xi - xj
    r = ti.sqrt(d.dot(d) + 1e-12)
    overlap = p.radius[i] + p.radius[j] - r
    w = p.width[None]
    push = p.stiffness[None] * w * ti.log(1.0 + ti.exp(overlap / w))
    return push * d / r


@ti.func
def drag(i, x, v, p: ti.template()):
    """Linear drag on the table (N)."""
    return -p.drag[None] * v


PARAMS = {"mass": [0.17, 0.16, 0.18], "radius": [0.03, 0.03, 0.035], "stiffness": 2e3, "width": 2e-3,
          "drag": 0.05}
X0 = np.array([[0.0, 0.0], [0.3, 0.01], [0.6, -0.02]])
V0 = np.array([[2.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
DT, STEPS = 1e-3, 400


def numpy_reference(x, v, steps, p, u=None):
    """The same law, stepped by semi-implicit Euler in NumPy."""
    x, v = x.copy(), v.copy()
    m = np.asarray(p["mass"], float)[:, None]
    rad = np.asarray(p["radius"], float)
    out = [x.copy()]
    for t in range(steps):
        f = -p["drag"] * v + (0.0 if u is None else u[t])
        for i in range(len(x)):
            for j in range(len(x)):
                if i != j:
                    d = x[i] - x[j]
                    r = np.sqrt(d @ d + 1e-12)
                    push = p["stiffness"] * p["width"] * np.log1p(np.exp((rad[i] + rad[j] - r) / p["width"]))
                    f[i] = f[i] + push * d / r
        v = v + DT * f / m
        x = x + DT * v
        out.append(x.copy())
    return np.array(out)


@pytest.fixture(scope="module")
def system():
    return ParticleSystem(X0, V0, dt=DT, pair_force=soft_contact, body_force=drag, parameters=PARAMS, segment=50)


def test_trajectory_is_the_law_stepped_by_hand_and_conserves_momentum(system):
    push = np.zeros((STEPS, 3, 2))
    push[:50, 2, 1] = 0.3  # a control force (N) on the third disc
    out = system.simulate(STEPS, controls={"force": push})
    ref = numpy_reference(X0, V0, STEPS, PARAMS, push)
    np.testing.assert_allclose(out["x"], ref, rtol=0, atol=1e-12)
    assert out["x"][-1, 1, 0] > 0.31  # the collision happened: the second disc was pushed on
    # Without drag and controls, the pair forces are equal and opposite: momentum is conserved.
    free = ParticleSystem(X0, V0, dt=DT, pair_force=soft_contact, parameters={**PARAMS, "drag": 0.0})
    v = free.simulate(STEPS)["v"]
    momentum = np.einsum("i,tik->tk", np.asarray(PARAMS["mass"]), v)
    np.testing.assert_allclose(momentum, np.tile(momentum[0], (STEPS + 1, 1)), rtol=0, atol=1e-13)


def test_newton_third_law_halves_the_pairs_and_changes_nothing_but_rounding(system):
    half = ParticleSystem(X0, V0, dt=DT, pair_force=soft_contact, body_force=drag, parameters=PARAMS, segment=50,
                          newton_third_law=True)
    costs = [NumpyCost(lambda s, t: float(np.sum(s["x"] ** 2)), lambda s, t: {"x": 2.0 * s["x"]}, fields="x")]
    out = []
    for sys_ in (system, half):
        ro = Rollout(sys_, STEPS, costs=costs)
        out.append((ro.forward(), ro.trajectory("x"), ro.backward()))
    assert out[0][0] == pytest.approx(out[1][0], rel=1e-13)
    np.testing.assert_allclose(out[1][1], out[0][1], rtol=0, atol=1e-13)
    for name in ("stiffness", "mass", "radius"):
        np.testing.assert_allclose(out[1][2].params[name], out[0][2].params[name], rtol=1e-11)
    np.testing.assert_allclose(out[1][2].state0["v"], out[0][2].state0["v"], rtol=1e-11)


def test_gradient_through_a_collision_matches_central_differences(system):
    target = np.array([0.55, 0.02])

    def end(states, steps):
        return float(np.sum((states["x"][-1, 1] - target) ** 2))

    def end_grad(states, steps):
        g = np.zeros_like(states["x"])
        g[-1, 1] = 2.0 * (states["x"][-1, 1] - target)
        return {"x": g}

    ro = Rollout(system, STEPS, Binomial(3), costs=[NumpyCost(end, end_grad, fields="x", steps=[STEPS])])
    objective = Objective(ro, ["stiffness", "mass", "radius", "drag",
                               Parameter("v", kind="state0", index=0)])
    x = objective.x0()
    # floor: the third disc's radius moves the loss by 1e-7 against ~0.5 for the others; at
    # that size the central difference carries ~5e-12 of round-off
    report = diffsim.gradcheck(objective, x, rtol=1e-6, floor=1e-5)
    assert report.ok, report
    loss, grad = objective(x)
    assert np.all(np.abs(grad[:4]) > 0)  # every parameter kind reaches the loss


def test_every_schedule_gives_bitwise_the_same_gradient(system):
    costs = [NumpyCost(lambda s, t: float(np.sum(s["x"] ** 2)), lambda s, t: {"x": 2.0 * s["x"]}, fields="x")]
    grads = []
    for schedule in (StoreAll(), Binomial(2), diffsim.Periodic(every=100)):
        ro = Rollout(system, STEPS, schedule, costs=costs)
        loss = ro.forward()
        g = ro.backward()
        grads.append((loss, g.params["stiffness"], g.params["mass"], g.state0["v"]))
    for other in grads[1:]:
        for a, b in zip(grads[0], other, strict=True):
            np.testing.assert_array_equal(a, b)


def test_a_user_fit_finds_the_cue_speed_that_sends_a_disc_to_its_spot(system):
    """The second disc must stop its run 0.5 m past where it stands (goal: within 1 mm)."""
    spot = 0.3 + 0.5

    def miss(states, steps):
        return float((states["x"][-1, 1, 0] - spot) ** 2)

    def miss_grad(states, steps):
        g = np.zeros_like(states["x"])
        g[-1, 1, 0] = 2.0 * (states["x"][-1, 1, 0] - spot)
        return {"x": g}

    two = ParticleSystem(X0[:2], V0[:2], dt=DT, pair_force=soft_contact, body_force=drag,
                         parameters={**PARAMS, "mass": PARAMS["mass"][:2], "radius": [0.03, 0.03], "drag": 0.5})
    ro = Rollout(two, 1500, costs=[NumpyCost(miss, miss_grad, fields="x", steps=[1500])])
    objective = Objective(ro, [Parameter("v", kind="state0", index=(0, 0), lower=0.5, upper=5.0)])
    from optimizers import minimize

    result = minimize(objective, objective.x0(), method="lbfgs", iters=30, bounds=objective.bounds)
    objective(result.x)
    end = ro.final_state()["x"][1, 0]
    assert abs(end - spot) < 1e-3, (result.message, end)


def test_bad_input_is_named():
    ok = {"dt": DT, "pair_force": soft_contact, "parameters": PARAMS}
    with pytest.raises(ConfigError, match="'mass'"):
        ParticleSystem(X0, dt=DT, pair_force=soft_contact, parameters={"radius": 0.1})
    with pytest.raises(ConfigError, match="mass must be a positive"):
        ParticleSystem(X0, **{**ok, "parameters": {**PARAMS, "mass": [0.1, -0.1, 0.1]}})
    with pytest.raises(ConfigError, match="identifier"):
        ParticleSystem(X0, **{**ok, "parameters": {**PARAMS, "my-k": 1.0}})
    with pytest.raises(ConfigError, match="pair_force, body_force or both"):
        ParticleSystem(X0, dt=DT, parameters=PARAMS)
    with pytest.raises(ConfigError, match=r"\(n, 2\) or \(n, 3\)"):
        ParticleSystem(np.zeros(3), **ok)
    with pytest.raises(ConfigError, match="dt"):
        ParticleSystem(X0, **{**ok, "dt": -1.0})
    with pytest.raises(ConfigError, match="finite"):
        ParticleSystem(X0, **{**ok, "parameters": {**PARAMS, "stiffness": np.nan}})


@ti.func
def weight_per_body(i, x, v, p: ti.template()):
    """Gravity as a user writes it first: the mass read per body (N)."""
    return p.mass[i] * ti.Vector([0.0, -9.81])


@ti.func
def drag_misspelt(i, x, v, p: ti.template()):
    return -p.darg[None] * v


def test_a_parameter_read_the_wrong_way_is_named_with_its_line():
    """``p.mass[i]`` with mass given as one number (a 0-d field), ``p.radius[None]`` with one
    radius per body, or a name not in parameters: Taichi raises an IndexError without a message
    at the first launch; here the construction refuses it, naming the line and the fix. Read
    the right way, the same force gives the closed form of semi-implicit Euler for a free fall."""
    one = np.array([[0.0, 1.0]])
    with pytest.raises(ConfigError, match=r"body_force: p.mass\[i\] at .*test_particles.py:\d+ \(in "
                                          r"weight_per_body\).*read p.mass\[None\]"):
        ParticleSystem(one, dt=DT, body_force=weight_per_body, parameters={"mass": 2.0})
    with pytest.raises(ConfigError, match=r"p.darg at .*is not a parameter; the parameters are drag, mass"):
        ParticleSystem(one, dt=DT, body_force=drag_misspelt, parameters={"mass": 2.0, "drag": 0.1})
    with pytest.raises(ConfigError, match=r"p.width\[None\] at .*array of shape \(3,\): index it"):
        ParticleSystem(X0, dt=DT, pair_force=soft_contact, parameters={**PARAMS, "width": [2e-3] * 3})
    with pytest.raises(ConfigError, match="parameter 'drag' must be a number or an array"):
        ParticleSystem(X0, dt=DT, pair_force=soft_contact, parameters={**PARAMS, "drag": "light"})
    falling = ParticleSystem(one, dt=DT, body_force=weight_per_body, parameters={"mass": [2.0]})
    y = falling.simulate(100)["x"][:, 0, 1]
    t = np.arange(101)
    np.testing.assert_allclose(y, 1.0 - 9.81 * DT**2 * t * (t + 1) / 2, rtol=0, atol=1e-14)


@ti.func
def summed_contact(i, j, xi, vi, xj, vj, p: ti.template()):
    """soft_contact written as a user might: a sum over a dynamic loop (refused)."""
    d = xi - xj
    r = ti.sqrt(d.dot(d) + 1e-12)
    push = 0.0
    for _k in range(2):
        push += 0.5 * p.stiffness[None] * ti.max(p.radius[i] + p.radius[j] - r, 0.0)
    return push * d / r


@ti.func
def spring_sum(x, n_terms):
    s = 0.0
    while n_terms > 0:
        s += x
        n_terms -= 1
    return s


@ti.func
def calls_a_looping_helper(i, x, v, p: ti.template()):
    return -spring_sum(p.drag[None], 3) * v


@ti.func
def unrolled_contact(i, j, xi, vi, xj, vj, p: ti.template()):
    """A quadratic repulsion with a compile-time loop and an `if`: differentiated exactly."""
    d = xi - xj
    r = ti.sqrt(d.dot(d) + 1e-12)
    f = ti.Vector.zero(ti.f64, 2)
    overlap = p.radius[i] + p.radius[j] - r
    if overlap > 0:
        for k in ti.static(range(2)):
            f[k] = p.stiffness[None] * overlap * overlap * d[k] / r
    return f


def test_a_dynamic_loop_in_a_force_is_refused_with_its_line():
    """Taichi's reverse mode crashed the interpreter (a segmentation fault in the adjoint) on
    summed_contact's two-iteration loop: refused at construction, naming the file and line,
    also when the loop sits in a @ti.func the force calls; plain Python functions too."""
    with pytest.raises(ConfigError, match=r"pair_force: the `for` loop at .*test_particles.py:\d+ \(in summed_contact\)"):
        ParticleSystem(X0, dt=DT, pair_force=summed_contact, parameters=PARAMS)
    with pytest.raises(ConfigError, match=r"body_force: the `while` loop at .* \(in spring_sum\).*ti.static"):
        ParticleSystem(X0, dt=DT, body_force=calls_a_looping_helper, parameters=PARAMS)
    with pytest.raises(ConfigError, match="decorated with @ti.func"):
        ParticleSystem(X0, dt=DT, body_force=lambda i, x, v, p: -v, parameters=PARAMS)


def test_compile_time_loops_and_branches_are_differentiated_exactly():
    system = ParticleSystem(X0, V0, dt=DT, pair_force=unrolled_contact, body_force=drag,
                            parameters={**PARAMS, "stiffness": 2e5}, segment=50)
    out = Rollout(system, STEPS)
    out.forward()
    assert np.linalg.norm(out.final_state()["v"][1]) > 1.0  # the cue disc hit the second

    def miss(states, t):
        return float(np.sum((states["x"][-1, 1] - [0.8, 0.0]) ** 2))

    def miss_grad(states, t):
        g = np.zeros_like(states["x"])
        g[-1, 1] = 2.0 * (states["x"][-1, 1] - [0.8, 0.0])
        return {"x": g}

    rollout = Rollout(system, STEPS, StoreAll(), costs=[NumpyCost(miss, miss_grad, fields="x", steps=[STEPS])])
    objective = Objective(rollout, ["stiffness", "radius", Parameter("v", kind="state0", index=(0, 0))])
    report = diffsim.gradcheck(objective, objective.x0(), rtol=1e-6, step=1e-5)
    assert report.ok, str(report)
