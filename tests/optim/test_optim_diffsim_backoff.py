"""L-BFGS through a diverging rollout: a diffsim Objective(on_diverged="nan") on the reference
chain.

Explicit Euler on this 3-node chain (dt = 0.02 s, m = 0.1 kg) is unstable above about 260 N/m;
from 50 N/m towards the 200 N/m that made the data, L-BFGS-B's first trial step (unit length in
its variables, here 10 * log k) lands at k = 50 e^10 N/m, where the rollout diverges."""

import numpy as np
import pytest

import optimizers as opt
from diffsim import Objective, Parameter, Rollout, SimulationDiverged
from diffsim.costs import TrajectoryMatch
from diffsim.mass_spring import MassSpringChain

KW = {"n": 3, "dt": 0.02, "mass": 0.1, "kappa": 0.0, "segment": 10}
STEPS = 100
SCALE = 10.0  # the optimiser's variable is log(k) / SCALE


class Scaled:
    """``z -> objective(SCALE z)``: a user's rescaling, keeping the objective's protocol."""

    def __init__(self, objective):
        self.objective = objective

    @property
    def last_divergence(self):
        return self.objective.last_divergence

    def __call__(self, z):
        loss, grad = self.objective(SCALE * z)
        return loss, SCALE * grad


@pytest.fixture(scope="module")
def fit():
    force = np.sin(0.3 * np.arange(STEPS))[:, None]
    ref = Rollout(MassSpringChain(stiffness=200.0, **KW), STEPS)
    ref.set_controls(force=force)
    ref.forward()
    ro = Rollout(TrajectoryMatch(MassSpringChain(stiffness=50.0, **KW), {"q": ref.trajectory("q")}),
                 STEPS)
    ro.set_controls(force=force)
    objective = Objective(ro, [Parameter("stiffness", transform="log")], on_diverged="nan")
    return objective, np.log([50.0]) / SCALE


def test_lbfgs_backs_off_from_a_diverged_rollout_and_fits(fit):
    objective, z0 = fit
    with pytest.raises(opt.NonFiniteError, match=r"^iteration 1: loss is NaN; .*'backoff' \(the "
                                                  r"objective reports: step \d+: state field"):
        opt.minimize(Scaled(objective), z0, "lbfgs", 50)
    res = opt.minimize(Scaled(objective), z0, "lbfgs", 50, on_nonfinite="backoff")
    assert res.success and res.reason == "converged" and res.nbackoff >= 1
    assert np.exp(SCALE * res.x[0]) == pytest.approx(200.0, rel=1e-6)
    assert np.all(np.isfinite(res.history["loss"]))
    # the same with an Objective that raises SimulationDiverged (a FloatingPointError): minimize
    # backs off from the exception as from a NaN
    strict = Objective(objective.rollout, [Parameter("stiffness", transform="log")])
    again = opt.minimize(Scaled(strict), z0, "lbfgs", 50, on_nonfinite="backoff")
    assert again.x.tobytes() == res.x.tobytes() and again.nbackoff == res.nbackoff


def test_a_trial_that_diverges_says_how_to_back_off(fit):
    """With the default on_nonfinite="raise" the objective's own SimulationDiverged propagates,
    with a note naming the option that steps back from such trial points."""
    objective, z0 = fit
    strict = Objective(objective.rollout, [Parameter("stiffness", transform="log")])
    with pytest.raises(SimulationDiverged) as info:
        opt.minimize(Scaled(strict), z0, "lbfgs", 50)
    assert any("on_nonfinite='backoff'" in note for note in getattr(info.value, "__notes__", [])), info.value
    with pytest.raises(SimulationDiverged) as at_x0:  # at x0 the note would mislead: no trial yet
        opt.minimize(Scaled(strict), np.log([5e11]) / SCALE, "lbfgs", 5)
    assert not getattr(at_x0.value, "__notes__", None)
