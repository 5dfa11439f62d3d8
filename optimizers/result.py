"""The one result type returned by every optimiser, and the reasons a run stops."""

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np


class Reason(StrEnum):
    """Why a run stopped (``OptimizeResult.reason``); a ``str``, so ``res.reason == "gtol"`` works.

    Success: ``GTOL``, ``TOL``, ``CONVERGED`` (L-BFGS-B's own tests), ``CALLBACK`` and ``BUDGET``
    (for a first-order method asked for no ``tol``/``gtol``; for L-BFGS, whose own convergence
    tests always apply, a spent budget is a failure), unless the loss ended above where it started.
    Failure, always: ``LOSS_INCREASED``, ``NO_PROGRESS``, ``ZERO_GRADIENT``, ``DIVERGED``,
    ``LINE_SEARCH``, ``STALLED``.
    """

    GTOL = "gtol"                      # gradient norm <= gtol
    TOL = "tol"                        # |loss change| <= tol
    CONVERGED = "converged"            # L-BFGS-B's ftol / pgtol tests
    CALLBACK = "callback"              # the callback returned True
    BUDGET = "budget"                  # iters (or L-BFGS-B's maxfun) used up
    LOSS_INCREASED = "loss_increased"  # final loss above the starting loss
    NO_PROGRESS = "no_progress"        # final loss exactly the starting loss, after iterating
    ZERO_GRADIENT = "zero_gradient"    # gradient exactly 0 at x0: nothing to follow
    DIVERGED = "diverged"              # non-finite losses that backing off could not get past
    LINE_SEARCH = "line_search"        # L-BFGS-B's line search found no lower point
    STALLED = "stalled"                # L-BFGS-B's loss stopped falling with the gradient far from 0


@dataclass
class OptimizeResult:
    """Outcome of :func:`optimizers.minimize`, whatever the method.

    Attributes:
        x:        final parameters, (n,) float64.
        fun:      loss at ``x``.
        jac:      gradient at ``x``, (n,) float64.
        nit:      iterations (parameter updates) performed.
        nfev:     objective evaluations, including rejected ones (line searches, backoffs).
        success:  True when the run stopped on a criterion it was asked to meet (``tol``/``gtol``,
                  the callback, a first-order method's iteration budget when no ``tol``/``gtol``
                  was given, or L-BFGS-B's own convergence tests) *and* the final loss is not
                  above the starting loss. False, with ``message`` saying why, when the loss rose,
                  when the gradient at ``x0`` was exactly zero (nothing to follow: the run stops
                  at once), when non-finite losses could not be backed off from, when a tolerance
                  was asked for and not met, or when L-BFGS used up ``iters`` unconverged.
        message:  why the run stopped, in words (with the numbers).
        reason:   the same, machine-readable: a :class:`Reason`.
        history:  ``{"loss": (nit + 1,), "grad_norm": (nit + 1,)}`` float64 arrays, entry ``k``
                  at the iterate after ``k`` updates (``grad_norm`` is the 2-norm of the raw
                  gradient, not the projected one).
        timings:  wall seconds: ``total_s``, ``per_iteration_s`` and ``objective_s`` (time
                  inside the objective), summed over resumed sessions.
        method:   name of the method (``"adam"``, ``"lbfgs"``, ``"custom"`` ...).
        nbackoff: step halvings made by ``on_nonfinite="backoff"`` (for L-BFGS: line-search
                  trials that came back non-finite).
    """

    x: np.ndarray
    fun: float
    jac: np.ndarray
    nit: int
    nfev: int
    success: bool
    message: str
    history: dict = field(repr=False)
    timings: dict = field(repr=False)
    method: str = ""
    nbackoff: int = 0
    reason: Reason | None = None

    def __repr__(self):
        return (f"OptimizeResult(method={self.method!r}, success={self.success}, "
                f"reason={str(self.reason)!r}, fun={self.fun:.6g}, nit={self.nit}, "
                f"nfev={self.nfev}, message={self.message!r}, "
                f"x={np.array2string(self.x, threshold=8)})")
