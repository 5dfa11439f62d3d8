"""Bad inputs where they enter the tape and the Objective: named, never blamed on the time step."""

import numpy as np
import pytest

from diffsim import Objective, Parameter, Rollout
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
