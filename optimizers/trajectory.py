"""Trajectory optimisation on top of :func:`optimizers.minimize`: single shooting and
receding-horizon model-predictive control (MPC). Nothing here knows the simulator: it is reached
only through the callables the user passes."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .bounds import Box, as_box
from .driver import minimize
from .errors import ConfigError
from .result import OptimizeResult


def single_shooting(rollout: Callable, u0, method="adam", iters=100,
                    **minimize_kwargs) -> OptimizeResult:
    """Optimise a whole control sequence through one rollout.

    Args:
        rollout: ``u -> (loss, grad)``, ``u`` and ``grad`` shaped like ``u0``, typically
            simulate-then-backpropagate from a fixed initial state.
        u0: initial controls, e.g. (T, nu) float.
        method, iters, minimize_kwargs: as for :func:`~optimizers.minimize`.

    Returns:
        :class:`OptimizeResult` whose ``x`` and ``jac`` have ``u0``'s shape.
    """
    u0 = np.array(u0, dtype=np.float64)
    shape = u0.shape

    def objective(u_flat):
        loss, grad = rollout(u_flat.reshape(shape))
        return loss, np.asarray(grad, dtype=np.float64).reshape(-1)

    res = minimize(objective, u0.reshape(-1), method, iters, **minimize_kwargs)
    res.x, res.jac = res.x.reshape(shape), res.jac.reshape(shape)
    return res


@dataclass
class MPCResult:
    """Outcome of :func:`mpc`.

    Attributes:
        controls: applied controls, (n_total, nu) float64.
        states: the ``n_total + 1`` states visited, ``states[0]`` the initial one.
        solves: one :class:`OptimizeResult` per re-plan (``x`` flat, length ``horizon * nu``).
        solve_steps: the time step at which each plan was made.
    """

    controls: np.ndarray
    states: list
    solves: list = field(repr=False)
    solve_steps: list = field(repr=False)


def mpc(plan_objective: Callable, simulate: Callable, x0: Any, horizon: int, n_apply: int,
        n_total: int, u_init, method="adam", iters_per_solve=50, *, u_bounds=None,
        **minimize_kwargs) -> MPCResult:
    """Receding-horizon control: plan ``horizon`` steps, apply the first ``n_apply``, re-plan.

    Each plan is warm-started from the previous one shifted by ``n_apply`` steps, its tail
    filled by repeating the last planned control.

    Args:
        plan_objective: ``(state, t, horizon) -> objective``, the objective a callable
            ``u -> (loss, grad)`` over the flat plan ``u`` of length ``horizon * nu``
            (row-major (horizon, nu)) starting from ``state`` at step ``t``.
        simulate: ``(state, u_t) -> new_state``, advancing the real system by one control step
            under ``u_t``, (nu,) float64.
        x0: initial state (any object ``simulate`` understands).
        horizon: planning horizon H, in control steps.
        n_apply: controls applied per plan, 1 <= n_apply <= horizon.
        n_total: total control steps to apply.
        u_init: first plan's initial guess, (horizon, nu) (or (horizon,) for nu = 1).
        method, iters_per_solve: optimiser and iteration budget of each plan.
        u_bounds: ``(lo, hi)`` per control channel, scalars or (nu,) arrays, repeated over the
            horizon.
        minimize_kwargs: passed to every :func:`~optimizers.minimize` call (``lr``, ``tol``...;
            ``progress`` defaults to False here). ``checkpoint`` is not supported.

    Returns:
        :class:`MPCResult`.
    """
    if "checkpoint" in minimize_kwargs:
        raise TypeError("mpc does not checkpoint its solves; remove checkpoint=")
    if not 1 <= n_apply <= horizon:
        raise ConfigError(f"n_apply must be in [1, horizon={horizon}], got {n_apply}")
    plan = np.array(u_init, dtype=np.float64)
    if plan.ndim == 1:
        plan = plan[:, None]
    if plan.ndim != 2 or plan.shape[0] != horizon:
        raise ConfigError(f"u_init must have shape (horizon={horizon}, nu), got {plan.shape}")
    nu = plan.shape[1]
    if u_bounds is not None:
        box = as_box(u_bounds, nu)
        minimize_kwargs["bounds"] = Box(np.tile(box.lo, horizon), np.tile(box.hi, horizon))
    minimize_kwargs.setdefault("progress", False)

    state, t = x0, 0
    controls, states, solves, solve_steps = [], [x0], [], []
    while t < n_total:
        res = minimize(plan_objective(state, t, horizon), plan.reshape(-1), method,
                       iters_per_solve, **minimize_kwargs)
        solves.append(res)
        solve_steps.append(t)
        best = res.x.reshape(horizon, nu)
        k = min(n_apply, n_total - t)
        for u_t in best[:k]:
            state = simulate(state, u_t.copy())
            controls.append(u_t.copy())
            states.append(state)
        t += k
        plan = np.concatenate([best[k:], np.repeat(best[-1:], k, axis=0)])
    return MPCResult(np.array(controls).reshape(n_total, nu), states, solves, solve_steps)
