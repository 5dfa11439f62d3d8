"""The one result type returned by every optimiser."""

from dataclasses import dataclass, field

import numpy as np


@dataclass
class OptimizeResult:
    """Outcome of :func:`optimizers.minimize`, whatever the method.

    Attributes:
        x:        final parameters, (n,) float64.
        fun:      loss at ``x``.
        jac:      gradient at ``x``, (n,) float64.
        nit:      iterations (parameter updates) performed.
        nfev:     objective evaluations, including rejected ones (line searches, backoffs).
        success:  True when the run stopped on a criterion it was asked to meet: ``tol``/``gtol``,
                  the callback, or the iteration budget when no ``tol``/``gtol`` was given (for
                  L-BFGS-B also scipy's own convergence tests).
        message:  why the run stopped.
        history:  ``{"loss": (nit + 1,), "grad_norm": (nit + 1,)}`` float64 arrays, entry ``k``
                  at the iterate after ``k`` updates (``grad_norm`` is the 2-norm of the raw
                  gradient, not the projected one).
        timings:  wall seconds: ``total_s``, ``per_iteration_s`` and ``objective_s`` (time
                  inside the objective), summed over resumed sessions.
        method:   name of the method (``"adam"``, ``"lbfgs"``, ``"custom"`` ...).
        nbackoff: step halvings made by ``on_nonfinite="backoff"``.
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

    def __repr__(self):
        return (f"OptimizeResult(method={self.method!r}, success={self.success}, "
                f"fun={self.fun:.6g}, nit={self.nit}, nfev={self.nfev}, "
                f"message={self.message!r}, x={np.array2string(self.x, threshold=8)})")
