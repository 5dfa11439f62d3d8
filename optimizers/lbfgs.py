"""L-BFGS-B (Byrd, Lu, Nocedal & Zhu 1995) through ``scipy.optimize.minimize``.

Resuming: scipy keeps the quasi-Newton memory inside its own loop, so it cannot be saved.
With ``resume="replay"`` (the default) every evaluation (a hash of ``x``, the loss and the
gradient) is appended to a tape file next to the checkpoint, ``<checkpoint>.tape``; a resumed
run restarts L-BFGS-B from ``x0`` and answers its requests from the tape for as long as it asks
for the recorded points, which it does since it is deterministic, then continues with live
evaluations. The result is bitwise that of an uninterrupted run; the price is the tape's size,
8 bytes per parameter per evaluation (10^4 parameters and 1000 evaluations: 80 MB), written once.
Should scipy ask for a point the tape does not hold (another scipy or BLAS build), a warning is
issued and the run continues live from there. With ``resume="restart"`` there is no tape: the
checkpoint keeps the last iterate and L-BFGS-B restarts from it with an empty memory, which is
cheap but not identical to an uninterrupted run.

Non-finite trials: scipy's L-BFGS-B ends the run when a line-search trial returns NaN. With
``minimize(..., on_nonfinite="backoff")`` such a trial is answered with a finite stand-in (see
``back_off`` in :meth:`LBFGS.run`) that makes the line search reject it and halve the step, so a
trial that diverges costs one evaluation, not the run; the quasi-Newton memory and the bounds
are kept, and the tape records the real (non-finite) evaluation, so resuming stays bitwise.
When ``max_backoffs`` trials in a row fail (or the line search settles on a non-finite trial),
L-BFGS-B is restarted with an empty memory from the lowest finite point found, so its next step
is a steepest-descent one; only if that too gets nowhere does the run end, ``reason="diverged"``.
"""


import warnings
from dataclasses import dataclass

import numpy as np

from .checkpoint import EvaluationTape
from .errors import CheckpointError, ConfigError
from .finite import nonfinite_error
from .result import Reason

# L-BFGS-B's relative-reduction test (ftol) also fires where the loss merely stopped falling
# (a quasi-Newton memory gone bad in a stiff valley, or a kink) with the gradient far from zero.
# Near a smooth minimum that test fires only once the projected gradient is a tiny fraction of
# its value at x0 (|g| ~ sqrt(2 ftol lambda)), so a stop with it above STALL_RATIO of that value,
# in a run whose loss fell by more than STALL_DECREASE ftol max(|f|, 1) (not a warm start that
# began at its minimum), is premature: it is retried from the same point with an empty memory,
# at most STALL_RESTARTS times, and reported as ``reason="stalled"``, ``success=False`` if the
# last retry ends the same way.
STALL_RATIO = 1e-2
STALL_DECREASE = 1e3
STALL_RESTARTS = 2


class _Stop(Exception):
    """Raised inside scipy's callback to end the run on one of ``minimize``'s criteria."""


class _Restart(Exception):
    """Raised inside scipy's calls when non-finite trials defeated a line search: L-BFGS-B is
    started again (empty memory) from the best point known."""


@dataclass(frozen=True, eq=False)
class LBFGS:
    """Limited-memory BFGS with box bounds (scipy's L-BFGS-B).

    Args:
        maxcor: number of correction pairs kept (the memory ``m``).
        bounds: box bounds, as accepted by :func:`optimizers.bounds.as_box`; ``None`` for none.
        ftol, gtol: scipy's own stopping tests (relative loss reduction; infinity norm of the
            projected gradient), on top of ``minimize``'s ``tol``/``gtol``.
        maxls: maximum line-search steps per iteration.
        maxfun: maximum objective evaluations.
        resume: ``"replay"`` (bitwise resume from a tape of evaluations kept beside the
            checkpoint) or ``"restart"`` (from the last iterate, with an empty memory); see the
            module docstring.
    """

    maxcor: int = 10
    bounds: object = None
    ftol: float = 2.220446049250313e-09
    gtol: float = 1e-5
    maxls: int = 20
    maxfun: int = 15000
    resume: str = "replay"
    name = "lbfgs"

    def __post_init__(self):
        if self.resume not in ("replay", "restart"):
            raise ConfigError(f"resume must be 'replay' or 'restart', got {self.resume!r}")

    def run(self, sess, x0, iters):
        """Run under ``minimize``'s session ``sess`` (evaluation, history, checkpoints)."""
        import scipy.optimize  # imported here: it takes longer to import than all the rest
        box = sess.box
        payload = sess.resume_payload
        it = 0
        x_start = box.project(x0) if box else x0
        tape = None
        if self.resume == "replay" and sess.checkpoint:
            if payload is not None and "tape_len" not in payload:
                raise CheckpointError(f"{sess.checkpoint} was written with "
                                      "LBFGS(resume='restart'), so it has no tape to replay; "
                                      "resume with that setting or delete the checkpoint")
            tape = EvaluationTape(f"{sess.checkpoint}.tape", x0.size,
                                  payload["tape_len"] if payload is not None else 0)
            if payload is not None:  # history and counters are rebuilt by the replay
                sess.loss, sess.grad_norm, sess.nfev, sess.nbackoff = [], [], 0, 0
        elif payload is not None:  # restart from the last iterate
            it, x_start = payload["top"]["it"], payload["top"]["x"]
        n_replay = tape.committed if tape is not None else 0
        pos = 0  # evaluations replayed so far
        last = {}  # the latest finite evaluation and the latest accepted iterate
        first = [payload is None or tape is not None]
        # the current line search: its non-finite trials (NonFiniteErrors and points) and its
        # lowest finite trial; whether L-BFGS-B's memory is empty (fresh); where it restarts
        search = {"failed": [], "points": [], "best": None, "fresh": True, "resume_at": None}

        def evaluate(x):
            """``(loss, grad)`` at ``x``: from the tape while replaying, else live (and taped)."""
            nonlocal pos, n_replay
            key = tape.key(x) if tape is not None else None
            if pos < n_replay:
                recorded_key, f, g = tape.read(pos)
                if recorded_key == key:
                    pos += 1
                    sess.nfev += 1
                    return f, g
                warnings.warn(f"L-BFGS-B asked for a point not on the checkpoint's tape after "
                              f"{pos} of {n_replay} evaluations; continuing with live "
                              "evaluations, so the run will differ from the original",
                              RuntimeWarning, stacklevel=3)
                tape.truncate(pos)
                n_replay = pos
            f, g = sess.evaluate(x)
            if tape is not None:
                tape.append(key, f, g)
            return f, g

        def fun(x):
            resume_at = search["resume_at"]
            if resume_at is not None:  # a restarted L-BFGS-B asks for its start: known already
                search["resume_at"] = None
                if np.array_equal(x, resume_at[0]):
                    last["eval"] = resume_at
                    return resume_at[1], resume_at[2].copy()
            f, g = evaluate(x)
            err = nonfinite_error(it + (0 if first[0] else 1), f, g, sess.names)
            if err is not None:
                if first[0] or "accepted" not in last:
                    raise sess.nonfinite(err, "the objective is non-finite at x0")
                if sess.on_nonfinite == "raise":
                    raise sess.nonfinite(err, "tighten the bounds so that the objective stays "
                                              "finite, or pass on_nonfinite='backoff'")
                return back_off(x, err)
            last["eval"] = (x.copy(), f, g.copy())
            if first[0]:
                first[0] = False
                accept(last["eval"])
            last.setdefault("accepted", last["eval"])  # restart mode: x_start, already recorded
            best = search["best"]
            if best is None or f < best[1]:
                search["best"] = last["eval"]
            return f, g

        def back_off(x, err):
            """Answer a non-finite trial so that the line search halves its step: with the
            quadratic along ``s = x - x_k`` through the latest iterate's loss and slope
            (``phi(0) = f_k``, ``phi'(0) = g_k . s < 0``) that is lowest at half the step,
            ``phi(a) = f_k + (g_k . s) (a - a^2)``: loss ``phi(1) = f_k`` (no decrease, so the
            trial is rejected) and gradient ``g_k - 2 (g_k . s) s / |s|^2`` (slope ``-g_k . s``
            there). Both the cubic and the quadratic interpolation of the Moré-Thuente search
            then pick ``a = 1/2``; the quasi-Newton memory is kept."""
            search["failed"].append(sess.nonfinite(err, ""))
            search["points"].append(x.copy())
            sess.nbackoff += 1
            xk, fk, gk = last["accepted"]
            step = x - xk
            ss, gs = float(step @ step), float(gk @ step)
            if len(search["failed"]) > sess.max_backoffs or not (ss > 0.0 and gs < 0.0):
                raise _Restart
            return fk, gk - (2.0 * gs / ss) * step

        def diverged():
            failed = search["failed"]
            n = len(failed)
            tried = f"{n} trial steps in a row" if n > 1 else "its trial step"
            message = (f"the line search from iteration {it} could not get past non-finite values "
                       f"({tried} failed, along a steepest-descent step with the quasi-Newton "
                       f"memory empty; last: {failed[-1]}); ended at iteration {it}, the last "
                       "finite iterate: bound the parameters to where the objective is finite, "
                       "or raise max_backoffs")
            return message, False, Reason.DIVERGED

        def restart():
            """After a line search that non-finite trials defeated: go on from its lowest finite
            trial if that is below the latest iterate (a new iterate), else from the latest
            iterate, with an empty quasi-Newton memory (a steepest-descent step). Returns the
            start for L-BFGS-B, or raises ``_Stop`` when a fresh start got nowhere either."""
            nonlocal it
            best, accepted = search["best"], last["accepted"]
            if best is not None and best[1] < accepted[1]:
                it += 1
                accept(best)  # may raise _Stop
            elif search["fresh"]:  # nothing to forget: a restart would repeat the same trials
                raise _Stop(diverged())
            search["fresh"] = True
            search["resume_at"] = last["accepted"]
            return last["accepted"][0]

        def tape_len():  # commit the tape before the checkpoint that counts its records
            return {"tape_len": tape.commit()} if tape is not None else {}

        def pgnorm(x, g):
            return float(np.linalg.norm(box.projected_gradient(x, g) if box else g))

        def stalled():
            """Is the latest iterate a premature relative-reduction stop (see STALL_RATIO)?"""
            x, f, g = last["accepted"]
            went = sess.loss[0] - f > STALL_DECREASE * self.ftol * max(abs(f), 1.0)
            return went and pgnorm(x, g) > STALL_RATIO * last["pg0"]

        def accept(evaluation):
            x, f, g = evaluation
            last["accepted"] = evaluation
            last.setdefault("pg0", pgnorm(x, g))
            search.update(failed=[], points=[], best=None)
            sess.record(it, f, g)
            replaying = pos < n_replay
            if sess.checkpoint and it % sess.every == 0 and it > 0 and not replaying:
                sess.save("lbfgs", {"it": it, "x": x}, len(sess.loss), **tape_len())
            stop = sess.stop_reason(it, x, f, g, call_back=not replaying)
            if stop is not None:
                raise _Stop(stop)

        def on_iteration(xk):
            nonlocal it
            if any(np.array_equal(xk, p) for p in search["points"]):
                raise _Restart  # the line search gave up on a non-finite trial and took it
            search["fresh"] = False  # L-BFGS-B now holds a correction pair
            it += 1
            ev = last["eval"]
            if not np.array_equal(ev[0], xk):  # scipy accepts the last point it evaluated
                f, g = sess.evaluate(xk)
                ev = (np.array(xk, dtype=np.float64), f, g)
            accept(ev)

        options = {"maxcor": self.maxcor, "ftol": self.ftol, "gtol": self.gtol,
                   "maxls": self.maxls}
        x_scipy, nfev0 = x_start, sess.nfev
        stalls = 0
        try:
            try:
                while True:
                    options.update(maxiter=max(iters - it, 0) + 1,
                                   maxfun=max(self.maxfun - (sess.nfev - nfev0), 1))
                    try:
                        res = scipy.optimize.minimize(fun, x_scipy, jac=True, method="L-BFGS-B",
                                                      bounds=box.to_scipy() if box else None,
                                                      callback=on_iteration, options=options)
                    except _Restart:
                        x_scipy = restart()
                        continue
                    if not res.success and search["failed"]:
                        x_scipy = restart()  # scipy gave up on a line search after NaN trials
                        continue
                    if res.success and _reduction_stop(res) and stalls < STALL_RESTARTS and it < iters and stalled():
                        stalls += 1  # the loss stopped falling, the gradient did not: forget the memory
                        search["fresh"], search["resume_at"] = True, last["accepted"]
                        x_scipy = last["accepted"][0]
                        continue
                    break
            except _Stop as s:
                stop = s.args[0]
                x, f, g = last["accepted"]
                if stop[2] == Reason.BUDGET and stop[1]:   # iters ran out before L-BFGS-B's own tests
                    pg = pgnorm(x, g)
                    stop = (f"{stop[0]} before L-BFGS-B's convergence tests were met (the loss fell from "
                            f"{sess.loss[0]:.6g} to {f:.6g}; the {'projected ' if box else ''}gradient norm is "
                            f"{pg:.3g}, {pg / last['pg0']:.1%} of its {last['pg0']:.3g} at the start): not "
                            "converged; raise iters to go on (with checkpoint=, the run resumes)", False,
                            Reason.BUDGET)
            else:
                stop = _scipy_stop(res)
                x, f, g = (res.x, res.fun, res.jac) if res.success else last["accepted"]
                if res.success and _reduction_stop(res) and stalls >= STALL_RESTARTS and stalled():
                    pg = pgnorm(*last["accepted"][::2])
                    stop = (f"stalled: L-BFGS-B stopped because the loss no longer fell ({res.message}), but the "
                            f"{'projected ' if box else ''}gradient norm is still {pg:.3g}, "
                            f"{pg / last['pg0']:.1%} of its {last['pg0']:.3g} at the start, also after "
                            f"{stalls} restarts with a fresh memory: this is not a smooth minimum (a kink, "
                            "or a valley too stiff for the memory). Rescale the "
                            "parameters (or their bounds), smooth the loss, or continue with method='adam'",
                            False, Reason.STALLED)
            return sess.finish("lbfgs", {"it": it, "x": last["accepted"][0]}, len(sess.loss), x,
                               f, g, it, stop, **tape_len())
        finally:
            if tape is not None:
                tape.close()


def _reduction_stop(res) -> bool:
    """scipy ended on its relative-reduction test (ftol), not on the projected gradient."""
    return "REDUCTION" in str(res.message).upper()


def _scipy_stop(res):
    """``(message, success, reason)`` for a run that scipy ended on its own tests."""
    message = str(res.message)
    if res.success:
        return message, True, Reason.CONVERGED
    if message.upper().startswith("ABNORMAL"):
        message = (f"{message.rstrip(': ')}: L-BFGS-B's line search found no lower point along "
                   "its direction (is the gradient the loss's? is the loss smooth here?)")
        return message, False, Reason.LINE_SEARCH
    return message, False, Reason.BUDGET
