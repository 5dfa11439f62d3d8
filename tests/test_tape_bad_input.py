"""Bad inputs where they enter the tape and the Objective: named, never blamed on the time step."""

import numpy as np
import pytest

from diffsim import Objective, Parameter, Rollout, gradcheck
from diffsim.errors import ConfigError
from diffsim.mass_spring import MassSpringChain


@pytest.fixture(scope="module")
def rollout():
    r = Rollout(MassSpringChain(n=3, dt=0.01), steps=10)
    r.set_controls(force=np.zeros((10, 1)))
    return r


def test_nan_initial_state_is_named(rollout):
    with pytest.raises(ConfigError, match=r"initial state field 'v'\[1\] is nan"):
        rollout.set_state0(v=np.array([0.0, np.nan, 0.0]))
    with pytest.raises(ConfigError, match="'q' is complex"):
        rollout.forward(state0={"q": np.array([0.0, 1j, 0.0])})
    assert np.all(np.isfinite(rollout.state0["v"]))  # nothing was written
    assert np.isfinite(rollout.forward())


def test_complex_controls_are_refused(rollout):
    with pytest.raises(ConfigError, match="control 'force' is complex"):
        rollout.set_controls(force=np.zeros((10, 1)) + 1e-3j)


def test_nan_parameter_vector_names_the_entry(rollout):
    obj = Objective(rollout, ["stiffness", Parameter("v", kind="state0")])
    x = obj.x0()
    x[2] = np.nan
    with pytest.raises(ConfigError, match=r"entry 2 \(v\[1\]\) is nan"):
        obj(x)
    with pytest.raises(ConfigError, match="complex"):
        obj(obj.x0() + 0j)


def test_a_failed_forward_leaves_nothing_to_backpropagate(rollout):
    from diffsim.errors import DiffsimError, SimulationDiverged

    rollout.forward()
    rollout.set_controls(force=np.full((10, 1), 1e300))
    with pytest.raises(SimulationDiverged):
        rollout.forward()
    with pytest.raises(DiffsimError):
        rollout.backward()
    rollout.set_controls(force=np.zeros((10, 1)))
    assert np.isfinite(rollout.forward())


def test_storage_taichi_cannot_index_is_refused_before_allocation():
    """Taichi 1.7.4 counts ndarray elements in int32: 3 masses x 8e8 StoreAll slots would be
    allocated wrongly (and segfault later); the tape refuses it up front and says what fits."""
    from diffsim import Binomial

    system = MassSpringChain(n=3, dt=0.01)
    with pytest.raises(ConfigError, match=r"state field 'q', 800000001 working slots would be one array of "
                                          r"2,400,000,003 elements .*Binomial\(snapshots=s\)"):
        Rollout(system, steps=800_000_000)
    with pytest.raises(ConfigError, match="control 'force', 2200000000 steps .* elements"):
        Rollout(system, steps=2_200_000_000, schedule=Binomial(8))


def test_storage_beyond_available_memory_is_refused(monkeypatch):
    from diffsim import Binomial, storage

    monkeypatch.setattr(storage, "available_memory", lambda: 50_000_000)  # 50 MB free
    system = MassSpringChain(n=3, dt=0.01)
    with pytest.raises(ConfigError, match=r"needs 0.336 GB of storage \(state field '[qv]', 3000001 working slots: "
                                          r"0.144 GB.*only 0.05 GB of memory is available \(the tape takes at most 80% of it.*\); "
                                          r"store fewer states"):
        Rollout(system, steps=3_000_000)
    with pytest.raises(ConfigError, match="control 'force'.* stored whatever the schedule"):
        Rollout(system, steps=4_000_000, schedule=Binomial(16))
    assert Rollout(system, steps=1000).stats.storage_bytes < 50_000_000  # a small one still builds


@pytest.mark.parametrize("schedule,call", [("Binomial", lambda s: s(2.5)), ("Binomial", lambda s: s("8")),
                                           ("Binomial", lambda s: s(True)), ("Periodic", lambda s: s(0)),
                                           ("Periodic", lambda s: s(4.0))])
def test_schedule_counts_must_be_whole_numbers(schedule, call):
    import diffsim

    with pytest.raises(ConfigError, match=rf"{schedule}\(.*must be a whole number >= 1, got"):
        call(getattr(diffsim, schedule))
    assert diffsim.Binomial(np.int64(3)).snapshots == 3


def test_system_check_state_refuses_a_quaternion_that_is_not_unit():
    from diffsim.rigid import Box, ModelBuilder, RigidSystem

    b = ModelBuilder(3)
    b.add_body(Box([0.1, 0.1, 0.1]), mass=1.0, position=[0, 0, 1.0])
    rollout = Rollout(RigidSystem(b.finalize()), 5)
    with pytest.raises(ConfigError, match=r"initial state 'q' of body 0 has norm 2;.*np.linalg.norm"):
        rollout.set_state0(q=np.array([[2.0, 0.0, 0.0, 0.0]]))
    rollout.set_state0(q=np.array([[0.6, 0.8, 0.0, 0.0]]))  # a unit quaternion is fine
    assert np.isfinite(rollout.forward())


def test_wrong_kinds_of_numbers_are_named(rollout):
    system = MassSpringChain(n=3, dt=0.01)
    with pytest.raises(ConfigError, match="segment must be a whole number >= 1"):
        Rollout(system, 10, segment=2.5)
    with pytest.raises(ConfigError, match="budget_bytes must be a number of bytes"):
        Rollout.within_budget(system, 100, "1GB")
    with pytest.raises(ConfigError, match="control 'force' must be an array of real numbers"):
        rollout.set_controls(force="abc")
    with pytest.raises(ConfigError, match="whole number n >= 1"):
        MassSpringChain(n=2.5)
    with pytest.raises(ConfigError, match="dt > 0"):
        MassSpringChain(n=3, dt=float("nan"))
    obj = Objective(rollout, ["stiffness"])
    with pytest.raises(ConfigError, match="must hold real numbers"):
        obj("a")
    with pytest.raises(ConfigError, match=r"Parameter 'stiffness': entry 0 has lower=2 > upper=1"):
        Objective(rollout, [Parameter("stiffness", lower=2.0, upper=1.0)])
    with pytest.raises(ConfigError, match="must return a pair"):
        gradcheck(lambda x: 1.0, np.ones(2))
