"""The checkpointed tape: every schedule equals StoreAll bitwise, revolve's counts, bad input."""

import re

import numpy as np
import pytest

from diffsim import Binomial, Periodic, Rollout, StoreAll
from diffsim.checkpointing import revolve_cost
from diffsim.errors import ConfigError, DiffsimError, SimulationDiverged
from diffsim.mass_spring import MassSpringChain


def controls(T):
    return {"force": 0.3 * np.sin(0.37 * np.arange(T))[:, None]}


def run(system, T, schedule, segment=None):
    ro = Rollout(system, T, schedule, segment=segment)
    ro.set_controls(**controls(T))
    loss = ro.forward()
    return ro, loss, ro.backward()


def assert_bitwise(a, b):
    (la, ga), (lb, gb) = a, b
    assert la == lb
    for kind in ("params", "controls", "state0"):
        da, db = getattr(ga, kind), getattr(gb, kind)
        assert da.keys() == db.keys()
        for k in da:
            assert np.array_equal(da[k], db[k]), f"{kind} {k} differs"


@pytest.fixture(scope="module")
def chain():
    return MassSpringChain(n=6, dt=0.01, segment=10)


@pytest.fixture(scope="module")
def chain_per_step():
    return MassSpringChain(n=6, dt=0.01, fused=False)


@pytest.mark.parametrize("T", [1, 2, 7, 100, 1000])
def test_every_schedule_equals_store_all_bitwise(chain, chain_per_step, T):
    segment = 1 if T <= 100 else 10
    for system in (chain, chain_per_step) if T <= 100 else (chain,):
        ref = run(system, T, StoreAll(), segment)[1:]
        schedules = [Binomial(s) for s in (1, 2, 3, 10, 32)] + [Periodic(every=k * segment) for k in (1, 3)]
        for sch in schedules:
            if T == 1000 and sch == Binomial(1):
                continue  # 4,950 recomputed segments: covered at T=100
            assert_bitwise(run(system, T, sch, segment)[1:], ref)


def test_fused_and_per_step_agree_to_roundoff(chain, chain_per_step):
    _, la, ga = run(chain, 50, StoreAll(), 10)
    _, lb, gb = run(chain_per_step, 50, StoreAll())
    assert la == pytest.approx(lb, rel=1e-14)
    for k in ga.params:
        np.testing.assert_allclose(ga.params[k], gb.params[k], rtol=1e-11, atol=1e-15)
    np.testing.assert_allclose(ga.controls["force"], gb.controls["force"], rtol=1e-11, atol=1e-15)


@pytest.mark.parametrize("m,s", [(1, 1), (2, 1), (10, 1), (10, 2), (37, 3), (100, 3), (100, 10), (210, 4),
                                 (300, 32), (64, 64)])
def test_binomial_recomputes_exactly_the_revolve_minimum(chain_per_step, m, s):
    ro, _, _ = run(chain_per_step, m, Binomial(s))
    assert ro.stats.recomputed_steps == revolve_cost(m, s)
    assert ro.stats.forward_steps == m + revolve_cost(m, s)
    assert ro.stats.snapshots_peak <= s
    assert ro.stats.snapshot_capacity == min(s, m - 1)
    assert ro.stats.work_slots == 2  # one step's input and output, whatever T


def test_periodic_recomputes_all_but_the_last_stretch(chain):
    ro, _, _ = run(chain, 95, Periodic(every=20), segment=10)
    assert ro.stats.recomputed_steps == 95 - 15
    assert ro.stats.snapshots_peak == 4  # boundaries 0, 20, 40, 60; the last stretch stays in the working slots
    assert ro.stats.work_slots == 21


def test_store_all_keeps_the_trajectory(chain):
    ro, _, _ = run(chain, 30, StoreAll(), 10)
    q = ro.trajectory("q")
    assert q.shape == (31, 6)
    np.testing.assert_array_equal(q[-1], ro.final_state()["q"])
    np.testing.assert_array_equal(q[0], chain.initial_state()["q"])
    with pytest.raises(ConfigError, match="StoreAll"):
        run(chain, 30, Binomial(2), 10)[0].trajectory("q")


def test_memory_of_binomial_is_independent_of_steps(chain):
    small = Rollout(chain, 100, Binomial(8), segment=10).stats
    large = Rollout(chain, 10_000, Binomial(8), segment=10).stats
    assert small.work_bytes == large.work_bytes
    assert small.snapshot_bytes == large.snapshot_bytes
    assert large.snapshot_bytes == 8 * 2 * 6 * 8  # 8 snapshots of (q, v), 6 nodes, float64, no adjoint


def test_bad_input_gets_clear_errors(chain):
    for steps in (0, -3, 2.5, True):
        with pytest.raises(ConfigError, match="steps"):
            Rollout(chain, steps)
    with pytest.raises(ConfigError, match="snapshot"):
        Binomial(0)
    with pytest.raises(ConfigError, match="every"):
        Periodic(every=0)
    with pytest.raises(ConfigError, match="multiple of the segment"):
        Rollout(chain, 100, Periodic(every=15), segment=10)
    ro = Rollout(chain, 10, Binomial(3))
    with pytest.raises(DiffsimError, match="before forward"):
        ro.backward()
    with pytest.raises(ConfigError, match=r"\(10, 1\)"):
        ro.set_controls(force=np.zeros((9, 1)))
    with pytest.raises(ConfigError, match="unknown control"):
        ro.set_controls(torque=np.zeros((10, 1)))
    with pytest.raises(ConfigError, match="finite"):
        ro.set_controls(force=np.full((10, 1), np.nan))
    with pytest.raises(ConfigError, match="shape"):
        ro.set_state0(q=np.zeros(5))
    ro.forward()
    ro.backward()
    with pytest.raises(DiffsimError, match="already run"):
        ro.backward()
    with pytest.raises(ConfigError, match="mass of node 2"):
        MassSpringChain(n=4, mass=[1.0, 1.0, -1.0, 1.0])


@pytest.mark.parametrize("schedule", [StoreAll(), Periodic(every=20), Binomial(4)])
def test_divergence_names_the_first_bad_step_field_and_index(schedule):
    """The first state that is NaN, Inf or beyond System.plausible_magnitudes() is named."""
    stiff = MassSpringChain(n=5, dt=0.05, stiffness=5e4, segment=10)  # dt far beyond 2 sqrt(m/k)
    ref = Rollout(stiff, 200, StoreAll(), check_finite=False)
    ref.forward()
    q, v = ref.trajectory("q"), ref.trajectory("v")
    lim = stiff.plausible_magnitudes()
    with np.errstate(invalid="ignore"):
        bad_q = np.argwhere(~(np.abs(q) <= lim["q"]))  # NaN, Inf or beyond the plausible magnitude
        bad_v = np.argwhere(~(np.abs(v) <= lim["v"]))
    first = min(bad_q[0][0], bad_v[0][0])
    # on a tie the tape names the first field in state_shapes order (q, then v)
    field, bad = ("q", bad_q) if bad_q[0][0] <= bad_v[0][0] else ("v", bad_v)
    with pytest.raises(SimulationDiverged) as err:
        Rollout(stiff, 200, schedule).forward()
    e = err.value
    assert (e.step, e.field, e.index) == (first, field, (int(bad[0][1]),))
    assert f"step {first}" in str(e) and "reduce dt" in str(e)


@pytest.mark.parametrize("schedule", [StoreAll(), Periodic(every=20), Binomial(3)])
def test_huge_but_finite_state_is_a_divergence(chain, schedule):
    """A kick of 1e99 N at step 37 sends the tip to ~1e99 m/s: finite, but a divergence."""
    T = 60
    force = np.zeros((T, 1))
    force[37, 0] = 1e99
    free = Rollout(chain, T, StoreAll(), check_finite=False)
    free.forward(controls={"force": force})
    v = free.trajectory("v")
    assert np.all(np.isfinite(v[:39])) and np.abs(v[38]).max() > 1e97  # step 38: huge, yet finite
    with pytest.raises(SimulationDiverged) as err:
        Rollout(chain, T, schedule, segment=10).forward(controls={"force": force})
    e = err.value
    assert (e.step, e.field, e.index) == (38, "q", (5,))  # q and v both jump at step 38; q is listed first
    assert np.isfinite(e.value) and abs(e.value) > chain.plausible_magnitudes()["q"]
    assert "plausible magnitude" in str(e) and "'q'" in str(e) and "reduce dt" in str(e)


def test_huge_state_gives_nan_through_the_objective(chain):
    from diffsim import Objective

    force = np.zeros((40, 1))
    force[20, 0] = 1e99
    ro = Rollout(chain, 40, Binomial(2), segment=10)
    ro.set_controls(force=force)
    obj = Objective(ro, ["stiffness"], on_diverged="nan")
    loss, grad = obj(obj.x0())
    assert np.isnan(loss) and np.all(np.isnan(grad))
    assert np.isnan(obj.forward_loss(obj.x0()))
    with pytest.raises(SimulationDiverged, match="plausible magnitude"):
        Objective(ro, ["stiffness"])(obj.x0())


def test_bad_plausible_magnitudes_are_refused():
    class Bad(MassSpringChain):
        def __init__(self, table):
            super().__init__(n=3)
            self.table = table

        def plausible_magnitudes(self):
            return self.table

    with pytest.raises(ConfigError, match="not a state field"):
        Rollout(Bad({"w": 1.0}), 5)
    with pytest.raises(ConfigError, match="positive number"):
        Rollout(Bad({"q": -1.0}), 5)
    with pytest.raises(ConfigError, match="positive number"):
        Rollout(Bad({"q": float("nan")}), 5)


def test_non_finite_initial_state_is_named_where_it_enters(chain):
    ro = Rollout(chain, 10, Binomial(2))
    q0 = chain.initial_state()["q"].copy()
    q0[3] = np.inf
    with pytest.raises(ConfigError, match=r"initial state field 'q'\[3\] is inf"):
        ro.set_state0(q=q0)


def test_parameter_without_gradient_is_refused():
    import taichi as ti

    class NoGrad(MassSpringChain):
        def parameters(self):
            return {"stiffness": ti.ndarray(ti.f64, 1)}

    with pytest.raises(ConfigError, match="needs_grad"):
        Rollout(NoGrad(n=3), 5)


def test_within_budget_picks_the_snapshots_that_fit(chain):
    budget = 100_000
    ro = Rollout.within_budget(chain, 5000, budget, segment=10)
    assert ro.stats.storage_bytes <= budget
    state = 2 * 6 * 8
    assert ro.schedule.snapshots == (budget - ro.stats.work_bytes - ro.stats.control_bytes) // state
    with pytest.raises(ConfigError, match="does not hold"):
        Rollout.within_budget(chain, 5000, 1000)


def test_final_state_survives_backward(chain):
    ro = Rollout(chain, 50, Binomial(3), segment=10)
    ro.set_controls(**controls(50))
    ro.forward()
    before = ro.final_state()
    ro.backward()
    after = ro.final_state()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])


def test_within_budget_refuses_a_reversal_that_would_never_finish(chain):
    """Two snapshots for 10^6 steps run ~1,000 forward sweeps (one: ~5e11 steps). Say so, with the
    budget that would do, instead of starting it."""
    from diffsim.checkpointing import recompute_sweeps, snapshots_for_budget

    with pytest.raises(ConfigError, match=r"forward sweeps .* give at least (\d+) bytes") as err:
        snapshots_for_budget(200, 100, 1_000_000)  # two snapshots: ~1,000 sweeps
    need = int(re.search(r"give at least (\d+) bytes", str(err.value)).group(1))
    s = snapshots_for_budget(need, 100, 1_000_000)
    assert recompute_sweeps(1_000_000, s) <= 10.0
    assert snapshots_for_budget(1_000, 100, 1_000_000, max_sweeps=float("inf")) == 10
    with pytest.raises(ConfigError, match="max_sweeps=30"):
        Rollout.within_budget(chain, 200_000, 3_200_500, segment=1)  # controls 3.2 MB, then one snapshot


def test_gradients_left_out_by_only_do_not_leak_into_a_later_backward(chain):
    """backward(only=...) neither clears nor copies the parameters and controls it leaves out:
    a later backward that asks for them (after several that did not) gives exactly the
    gradients of a fresh rollout."""
    T = 40
    _, _, full = run(chain, T, StoreAll(), 10)
    ro = Rollout(chain, T, StoreAll(), segment=10)
    ro.set_controls(**controls(T))
    for _ in range(3):
        ro.forward()
        part = ro.backward(only=("stiffness", "q"))
        assert set(part.params) == {"stiffness"} and not part.controls and set(part.state0) == {"q"}
        assert np.array_equal(part.params["stiffness"], full.params["stiffness"])
    ro.forward()
    again = ro.backward()
    assert_bitwise((0.0, again), (0.0, full))
