"""Parameter(index=...): fit chosen entries of a field and leave the others alone."""

import numpy as np
import pytest

from diffsim import Objective, Parameter, Rollout
from diffsim.errors import ConfigError
from diffsim.mass_spring import MassSpringChain

T = 40


@pytest.fixture(scope="module")
def rollout():
    chain = MassSpringChain(n=4, dt=0.01)
    r = Rollout(chain, steps=T)
    r.set_controls(force=0.1 * np.sin(np.arange(T))[:, None])
    r.set_state0(v=np.array([0.0, 0.1, -0.2, 0.3]))
    return r


def test_selected_entries_carry_the_full_gradient(rollout):
    full = Objective(rollout, ["force", Parameter("v", kind="state0")])
    loss, g = full(full.x0())
    sub = Objective(rollout, [Parameter("force", index=(slice(10, 20), 0)),
                              Parameter("v", kind="state0", index=[1, 3], lower=[-1.0, -2.0])])
    assert sub.size == 12
    assert sub.names[:2] == ["force[10,0]", "force[11,0]"] and sub.names[-2:] == ["v[1]", "v[3]"]
    assert sub.bounds[-2:] == [(-1.0, None), (-2.0, None)]
    loss_s, g_s = sub(sub.x0())
    assert loss_s == loss
    names = full.names
    np.testing.assert_array_equal(g_s, g[[names.index(n) for n in sub.names]])


def test_unselected_entries_keep_their_values(rollout):
    sub = Objective(rollout, [Parameter("v", kind="state0", index=np.array([True, False, False, True]))])
    x = sub.x0()
    np.testing.assert_array_equal(x, [0.0, 0.3])
    sub.set(np.array([0.5, -0.5]))
    np.testing.assert_array_equal(rollout.state0["v"], [0.5, 0.1, -0.2, -0.5])
    np.testing.assert_array_equal(sub.unpack(np.array([1.0, 2.0]))["v"], [1.0, 0.1, -0.2, 2.0])
    sub.set(np.array([0.0, 0.3]))


@pytest.mark.parametrize("index", [7, np.array([True, False]), []])
def test_bad_index_names_the_parameter(rollout, index):
    with pytest.raises(ConfigError, match="Parameter 'v'"):
        Objective(rollout, [Parameter("v", kind="state0", index=index)])


class _LimitedChain(MassSpringChain):
    def control_limits(self):
        return {"force": (np.array([-0.5]), np.array([0.25]))}


def test_bounds_from_the_systems_actuator_limits():
    r = Rollout(_LimitedChain(n=3, dt=0.01), steps=5)
    obj = Objective(r, [Parameter("force", bounds="effort")])
    assert obj.bounds == [(-0.5, 0.25)] * 5
    sub = Objective(r, [Parameter("force", index=slice(0, 2), bounds="limits")])
    assert sub.bounds == [(-0.5, 0.25)] * 2
    with pytest.raises(ConfigError, match="control_limits"):
        Objective(r, [Parameter("stiffness", bounds="effort")])
    with pytest.raises(ConfigError, match="not both"):
        Parameter("force", bounds="effort", lower=0.0)
