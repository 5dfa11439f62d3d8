"""A game developer's spinning plank: a 0.5 m x 2 cm x 10 cm plank thrown spinning, no gravity.
Torque-free, it must keep its kinetic energy and angular momentum, tumble as Euler's equations
say (a spin about the intermediate axis flips over and back: the Dzhanibekov effect), and stay
stable at a game's 60 Hz step. Stepped explicitly, Euler's equations gain energy whenever a body
spins: this plank spun up from |L| 0.48 to 1.95 in 5 s at dt = 1 ms and diverged within 100 steps
at 60 Hz, reported as a contact-spring problem though nothing touched."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from diffsim import Objective, Parameter, Rollout, StoreAll, gradcheck
from diffsim.rigid import Box, ModelBuilder, RigidSystem, Upright
from diffsim.rotations import quat_to_matrix_np


def plank(angular_velocity, angular_damping=0.0):
    b = ModelBuilder(3)
    b.add_body(Box((0.5, 0.02, 0.1)), density=500.0, angular_velocity=angular_velocity,
               angular_damping=angular_damping, name="plank")
    return b.finalize()


def spin(angular_velocity, dt, seconds):
    """Body-frame angular velocity, world angular momentum and kinetic energy over the run."""
    model = plank(angular_velocity)
    out = RigidSystem(model, dt=dt, gravity=[0, 0, 0]).simulate(int(round(seconds / dt)))
    inertia = model.inertia()[0]
    R = quat_to_matrix_np(out["q"][:, 0])
    w_body = np.einsum("tji,tj->ti", R, out["omega"][:, 0])
    L = np.einsum("tij,tj->ti", R, inertia * w_body)
    return inertia, w_body, L, 0.5 * np.sum(inertia * w_body ** 2, axis=1)


def euler_reference(inertia, w0, times):
    """Euler's equations I dw/dt = -w x I w, integrated by SciPy to 1e-11."""
    sol = solve_ivp(lambda t, w: -np.cross(w, inertia * w) / inertia, (0.0, times[-1]), np.asarray(w0, float),
                    t_eval=times, rtol=1e-11, atol=1e-11)
    return sol.y.T


# principal moments (kg m^2): x 0.0139 (long axis, least), z 0.334 (intermediate), y 0.347 (most)
@pytest.mark.parametrize("w0", [[30.0, 0.5, 0.5], [0.1, 10.0, 0.1], [0.3, 0.2, 30.0]],
                         ids=["long axis", "greatest axis", "intermediate axis"])
def test_a_spinning_plank_keeps_energy_and_momentum_and_tumbles_as_euler_says(w0):
    dt = 1e-3
    inertia, w_body, L, ke = spin(w0, dt, 5.0)
    assert np.abs(ke / ke[0] - 1.0).max() < 1e-3
    assert np.abs(np.linalg.norm(L, axis=1) / np.linalg.norm(L[0]) - 1.0).max() < 1e-3
    # the frame update lags the body-frame rate by half a step: a bounded 1.5 % in direction here
    assert np.linalg.norm(L - L[0], axis=1).max() / np.linalg.norm(L[0]) < 0.03
    times = np.arange(1001) * dt
    ref = euler_reference(inertia, w0, times)
    assert np.abs(w_body[:1001] - ref).max() < 2e-3 * np.abs(ref).max()
    if w0[2] == 30.0:  # the intermediate axis: the spin flips (w_z changes sign) as often as the reference's
        flips = np.sum(np.diff(np.sign(w_body[:1001, 2])) != 0)
        assert flips == np.sum(np.diff(np.sign(ref[:, 2])) != 0) and flips >= 2


def test_a_spinning_plank_stays_stable_at_sixty_hertz():
    for w0 in ([30.0, 0.5, 0.5], [0.3, 0.2, 30.0]):
        _, _, L, ke = spin(w0, 1.0 / 60.0, 60.0)
        assert np.abs(ke / ke[0] - 1.0).max() < 0.1
        assert np.abs(np.linalg.norm(L, axis=1) / np.linalg.norm(L[0]) - 1.0).max() < 0.05
        assert abs(ke[-1] / ke[0] - 1.0) < 1e-3  # no drift: the error comes and goes


def test_gradients_through_a_tumbling_plank_match_central_differences():
    system = RigidSystem(plank([0.3, 0.2, 12.0], angular_damping=0.1), dt=2e-3, gravity=[0, 0, 0],
                         costs=[Upright([0], axis=(1.0, 0.0, 0.0), up=(0.3, 0.4, 0.866))])
    objective = Objective(Rollout(system, 300, StoreAll()), ["angular_damping", Parameter("omega", kind="state0")])
    report = gradcheck(objective, objective.x0(), rtol=1e-6, step=1e-5, seed=1)
    assert report.ok, str(report)
