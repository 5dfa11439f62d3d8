"""``minimize``: one entry point for every optimiser, with progress, stopping tests, non-finite
handling and resumable checkpoints."""

import dataclasses
import sys
import time
from dataclasses import asdict
from numbers import Integral

import numpy as np

from . import checkpoint as ckpt
from .bounds import as_box
from .errors import CheckpointError, ConfigError, NonFiniteError
from .finite import expand_param_names, nonfinite_error
from .first_order import SGD, Adam, AdamW, FirstOrderOptimizer, RMSProp
from .lbfgs import LBFGS
from .result import OptimizeResult, Reason

ZERO_GRADIENT_MESSAGE = ("the loss does not depend on these parameters here (gradient exactly 0 "
                         "at the start): no contact, or a parameter that nothing reads?")

METHODS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSProp, "lbfgs": LBFGS,
           "l-bfgs-b": LBFGS}


def minimize(objective, x0, method="adam", iters=100, *, lr=None, bounds=None, callback=None,
             tol=None, gtol=None, progress=None, checkpoint=None, checkpoint_every=10, seed=0,
             on_nonfinite="raise", max_backoffs=10, param_names=None) -> OptimizeResult:
    """Minimise ``objective`` from ``x0``.

    Args:
        objective: any callable ``x -> (loss, grad)``, ``x`` and ``grad`` (n,) float64 arrays,
            ``loss`` a float. If it has ``get_state()``/``set_state(state)`` (e.g.
            :class:`~optimizers.batching.MiniBatchObjective`), its state is checkpointed; if it has
            ``bind_rng(rng)``, it is handed this run's ``numpy.random.Generator``.
        x0: initial parameters, (n,) array-like (a copy is taken; projected onto ``bounds``).
        method: ``"sgd"``, ``"adam"``, ``"adamw"``, ``"rmsprop"``, ``"lbfgs"``, an optimiser
            instance (``Adam(lr=1e-2)``, ``LBFGS(maxcor=20)``) or any gradient transformation
            (``chain(clip_by_global_norm(1.0), adam(1e-2))``).
        iters: maximum number of iterations (parameter updates).
        lr: learning rate (float or schedule) for a method given by name; defaults: sgd 1e-2,
            adam/adamw 1e-3, rmsprop 1e-2. Not accepted with an instance or for L-BFGS.
        bounds: box bounds (see :func:`optimizers.bounds.as_box`). First-order methods project
            ``x`` onto the box after every step; L-BFGS-B handles them natively.
        callback: ``callback(iteration, x, loss, grad)`` after each evaluated iterate (iteration
            0 is ``x0``); returning True stops the run (``success=True`` unless the loss is
            above the starting loss).
        tol: stop when ``|loss_k - loss_(k-1)| <= tol``.
        gtol: stop when the gradient 2-norm (the projected gradient ``x - P(x - g)`` when
            bounded) is ``<= gtol``.
        progress: a progress bar (``tqdm.auto``: text on stderr, a widget in Jupyter); default:
            when stderr is a terminal or the code runs in a Jupyter kernel.
        checkpoint: file path. The run's full state is saved atomically there every
            ``checkpoint_every`` iterations and at the end; calling ``minimize`` again with the
            same arguments resumes from it. First-order methods resume bitwise identically to an
            uninterrupted run; so does L-BFGS with ``LBFGS(resume="replay")`` (the default),
            which also writes ``<checkpoint>.tape``, see :mod:`optimizers.lbfgs`. A finished checkpoint is returned as is, unless the
            run ended on its iteration budget and ``iters`` has grown, in which case it continues.
        checkpoint_every: iterations between checkpoints.
        seed: seeds the ``numpy.random.Generator`` passed to ``objective.bind_rng``; its state
            is checkpointed.
        on_nonfinite: what to do when the loss or gradient at a new point is NaN or infinite, or
            (with ``"backoff"``) the objective raises ``FloatingPointError``, as a diverged
            :class:`diffsim.Objective` rollout does (:class:`diffsim.SimulationDiverged`).
            ``"raise"``: a :class:`NonFiniteError` naming the iteration and parameter (the
            objective's own errors propagate).
            ``"backoff"``: first-order methods return to the last finite iterate, halve the step
            (for the rest of the run) and retry, at most ``max_backoffs`` times in a row; L-BFGS
            rejects the trial and its line search halves the step, keeping its memory, and after
            ``max_backoffs`` failures in one line search it restarts with an empty memory from
            the lowest point found (see :mod:`optimizers.lbfgs`). When that does not get past
            the non-finite values, the run ends at the last finite iterate with
            ``success=False`` and ``reason="diverged"``. A non-finite value at ``x0`` raises.
        max_backoffs: consecutive retries allowed with ``on_nonfinite="backoff"`` (per iteration
            for first-order methods, per line search for L-BFGS).
        param_names: names for error messages (default: ``objective.names`` when the objective
            has them, as :class:`diffsim.Objective` does): ``n`` strings, or ``{name: shape}`` blocks in
            flattening order (``{"eps": 3}`` names entries ``eps[0]``..``eps[2]``).

    Returns:
        :class:`OptimizeResult`. Whatever the method, ``success`` is False, and ``message`` says
        why in words and ``reason`` in one :class:`~optimizers.result.Reason`, when

        * the final loss is above the starting loss (``"loss_increased"``; both numbers given),
          or exactly equal to it after one or more iterations (``"no_progress"``);
        * the gradient at ``x0`` is exactly zero (``"zero_gradient"``): the loss does not depend
          on the parameters there, so the run stops at once instead of iterating;
        * non-finite values could not be backed off from (``"diverged"``);
        * a ``tol``/``gtol`` was asked for and the budget ran out first (``"budget"``), or
          L-BFGS-B's line search failed (``"line_search"``);
        * L-BFGS ran out of ``iters`` before its own convergence tests were met (``"budget"``, as
          scipy's L-BFGS-B says; the message gives the loss and gradient norm reached). The
          first-order methods have no convergence test of their own: for them the budget is the
          end the caller asked for, and a success unless a ``tol``/``gtol`` was given.

    Raises:
        ConfigError: a bad argument (a non-positive learning rate, an unknown method, ...).
        NonFiniteError: a non-finite loss or gradient with ``on_nonfinite="raise"``, or at
            ``x0``.
    """
    try:
        x0 = np.array(x0, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"x0 must be a vector of real numbers: {err}") from None
    if x0.ndim != 1 or x0.size == 0:
        raise ConfigError(f"x0 must be a non-empty 1-D parameter vector, got shape {x0.shape}; flatten it")
    for name, value in (("iters", iters), ("checkpoint_every", checkpoint_every), ("max_backoffs", max_backoffs)):
        if isinstance(value, bool) or not isinstance(value, Integral):
            raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if checkpoint is not None:
        ckpt.check_writable(checkpoint)
    if iters < 0:
        raise ConfigError(f"iters must be >= 0, got {iters}")
    if on_nonfinite not in ("raise", "backoff"):
        raise ConfigError(f"on_nonfinite must be 'raise' or 'backoff', got {on_nonfinite!r}")
    if checkpoint_every < 1:
        raise ConfigError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    if max_backoffs < 0:
        raise ConfigError(f"max_backoffs must be >= 0, got {max_backoffs}")
    opt, name = _resolve_method(method, lr)
    if isinstance(opt, LBFGS):
        if opt.bounds is not None and bounds is not None:
            raise ConfigError("bounds given both to LBFGS(...) and to minimize(...); give one")
        bounds = opt.bounds if bounds is None else bounds
    if param_names is None:
        names = getattr(objective, "names", None)
        param_names = list(names) if names is not None and len(names) == x0.size else None
    sess = _Session(objective, x0, name, iters, as_box(bounds, x0.size), callback, tol, gtol,
                    progress, checkpoint, checkpoint_every, seed, on_nonfinite, max_backoffs,
                    expand_param_names(param_names, x0.size), options=_describe(opt))
    finished = sess.load_checkpoint("lbfgs" if isinstance(opt, LBFGS) else "first_order")
    if finished is not None:
        return finished
    with sess:
        if isinstance(opt, LBFGS):
            return opt.run(sess, x0, iters)
        return _run_first_order(sess, opt, x0, iters)


def _describe(opt):
    """The settings of an optimiser that a checkpoint must match, in plain values (a schedule or
    a transformation is named by its function, whose closure values it cannot see). Bounds are
    fingerprinted apart; L-BFGS's ``resume`` policy is how to resume, not what the run is."""
    def plain(value):
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        return getattr(value, "__qualname__", type(value).__name__)

    if dataclasses.is_dataclass(opt):
        return (type(opt).__name__, tuple((f.name, plain(getattr(opt, f.name)))
                                          for f in dataclasses.fields(opt) if f.name not in ("bounds", "resume")))
    return type(opt).__name__


def _resolve_method(method, lr):
    if isinstance(method, str):
        key = method.lower()
        if key not in METHODS:
            raise ConfigError(f"unknown method {method!r}; choose one of {sorted(METHODS)} or pass "
                              "an optimiser instance or gradient transformation")
        cls = METHODS[key]
        if cls is LBFGS:
            if lr is not None:
                raise ConfigError("lr= does not apply to L-BFGS (it has a line search)")
            return LBFGS(), "lbfgs"
        return (cls() if lr is None else cls(lr=lr)), cls.name
    if lr is not None:
        raise ConfigError("lr= is only for methods given by name; set the learning rate on the "
                          f"optimiser instead, e.g. Adam(lr={lr!r})")
    if isinstance(method, (LBFGS, FirstOrderOptimizer)):
        return method, method.name
    if callable(getattr(method, "init", None)) and callable(getattr(method, "update", None)):
        return method, "custom"
    raise TypeError(f"method must be a name, an optimiser or a gradient transformation, got "
                    f"{type(method).__name__}")


def _run_first_order(sess, opt, x0, iters):
    """Step ``x <- P(x + scale * step)``; ``prev = (x, step, loss, grad)`` of the last finite
    iterate is what a back-off returns to."""
    box = sess.box
    top = sess.resume_top
    if top is None:
        it, scale, prev = 0, 1.0, None
        x = box.project(x0) if box else x0
        state = opt.init(x)
    else:
        it, x, state, scale, prev = top["it"], top["x"], top["state"], top["scale"], top["prev"]
    resumed_at = it if top is not None else None
    retries = 0
    while True:
        if retries == 0:
            top = {"it": it, "x": x, "state": state, "scale": scale, "prev": prev}
            if sess.checkpoint and it >= iters:  # may be the last: keep what resuming needs
                top["run"] = sess.snapshot()
            if sess.checkpoint and it % sess.every == 0 and it != resumed_at:
                sess.save("first_order", top, len_history=it)
        err = nonfinite_error(it, None, None, sess.names, x=x)
        if err is None:
            loss, grad = sess.evaluate(x)
            err = nonfinite_error(it, loss, grad, sess.names)
        if err is not None:
            if sess.on_nonfinite == "raise" or prev is None:
                if prev is None:
                    hint = ("x0 must be finite" if err.quantity == "parameter"
                            else "the objective is non-finite at x0")
                else:
                    hint = ("lower the learning rate, add clip_by_global_norm, or pass "
                            "on_nonfinite='backoff'")
                raise sess.nonfinite(err, hint)
            if retries >= sess.max_backoffs:
                it -= 1
                x, _, loss, grad = prev
                tried = (f"still after halving the step {sess.max_backoffs} times (step scale "
                         f"now {scale:.3g})" if sess.max_backoffs else "with max_backoffs=0")
                message = (f"{sess.nonfinite(err, '')}, {tried}; ended at iteration {it}, the "
                           "last finite iterate: lower the learning rate, add "
                           "clip_by_global_norm, or bound the parameters")
                stop = message, False, Reason.DIVERGED
                break
            retries += 1
            sess.nbackoff += 1
            scale *= 0.5
            x = prev[0] + scale * prev[1]
            x = box.project(x) if box else x
            continue
        retries = 0
        sess.record(it, loss, grad)
        stop = sess.stop_reason(it, x, loss, grad)
        if stop is not None:
            break
        step, state = opt.update(grad, state, x)
        prev = (x, step, loss, grad)
        x = x + scale * step
        x = box.project(x) if box else x
        it += 1
    return sess.finish("first_order", top, it, x, loss, grad, it, stop)


def _watched() -> bool:
    """True in a terminal (stderr is a TTY) or inside a running Jupyter kernel (an IPython shell
    from ipykernel, not merely ipykernel imported, as a test run that executes notebooks does)."""
    if getattr(sys.stderr, "isatty", lambda: False)():
        return True
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)() if ipython is not None else None
    return shell is not None and type(shell).__module__.startswith("ipykernel")


class _Session:
    """What every method shares: evaluation, history, stopping tests, progress, checkpoints."""

    def __init__(self, objective, x0, method, iters, box, callback, tol, gtol, progress, path,
                 every, seed, on_nonfinite, max_backoffs, names, options=None):
        self.objective, self.method, self.iters, self.box = objective, method, iters, box
        self.callback, self.tol, self.gtol = callback, tol, gtol
        self.checkpoint, self.every = path, every
        self.x0 = box.project(x0) if box is not None else x0  # where every method's first evaluation is
        self.on_nonfinite, self.max_backoffs, self.names = on_nonfinite, max_backoffs, names
        self.fingerprint = {"n": x0.size, "x0": ckpt.digest(x0), "method": method, "seed": seed,
                            "options": options, "tol": tol, "gtol": gtol, "on_nonfinite": on_nonfinite,
                            "max_backoffs": max_backoffs,
                            "bounds": None if box is None else ckpt.digest(np.stack([box.lo, box.hi]))}
        self.rng = np.random.default_rng(seed)
        if hasattr(objective, "bind_rng"):
            objective.bind_rng(self.rng)
        self.loss, self.grad_norm = [], []
        self.nfev = self.nbackoff = 0
        self.raised = None  # the FloatingPointError of the latest evaluation, see evaluate()
        self.objective_s = self.elapsed_before = 0.0
        self.resume_top = self.resume_payload = None
        if progress is None:
            progress = _watched()
        self.show_progress = progress
        self.bar = None

    # -- lifetime ---------------------------------------------------------------------------
    def __enter__(self):
        self.t_start = time.perf_counter()
        if self.show_progress:
            from tqdm.auto import tqdm
            initial = self.resume_top["it"] if self.resume_top else 0
            self.bar = tqdm(total=self.iters, initial=initial, desc=self.method,
                            unit="it", file=sys.stderr, dynamic_ncols=True)
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()

    def elapsed(self):
        return self.elapsed_before + time.perf_counter() - self.t_start

    # -- evaluation and bookkeeping ----------------------------------------------------------
    def evaluate(self, x):
        """``objective(x)`` as ``(float, (n,) float64 copy)``, timed and counted. With
        ``on_nonfinite="backoff"``, an objective that raises ``FloatingPointError`` (as
        :class:`diffsim.SimulationDiverged` is) counts as a NaN loss and gradient, and the error
        is kept to be quoted."""
        t0 = time.perf_counter()
        self.raised = None
        try:
            out = self.objective(x.copy())
        except FloatingPointError as err:
            if self.on_nonfinite != "backoff":
                if self.nfev > 0 and hasattr(err, "add_note"):  # a trial point, not x0 (notes: Python 3.11+)
                    err.add_note("This was a trial point of the optimizer's: minimize(..., on_nonfinite='backoff') "
                                 "steps back from such points; or bound the parameters to where the "
                                 "simulation stays stable.")
                raise
            self.raised = err
            out = np.nan, np.full(x.shape, np.nan)
        finally:
            self.objective_s += time.perf_counter() - t0
            self.nfev += 1
        try:
            loss, grad = out
        except (TypeError, ValueError):
            raise ConfigError("the objective must return a pair (loss, grad), got "
                              f"{type(out).__name__}") from None
        loss_arr = np.asarray(loss)
        if loss_arr.size != 1:
            raise ConfigError(f"the objective returned a loss of shape {loss_arr.shape}; "
                              "it must be a scalar")
        try:
            grad = np.array(grad, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"the objective returned a gradient that is not an array of real numbers: {err}") from None
        if grad.shape != x.shape:
            raise ConfigError(f"the objective returned a gradient of shape {grad.shape} for "
                              f"parameters of shape {x.shape}")
        return float(loss_arr.reshape(())), grad

    def record(self, it, loss, grad):
        self.loss.append(loss)
        self.grad_norm.append(float(np.linalg.norm(grad)))
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4g}", grad_norm=f"{self.grad_norm[-1]:.3g}",
                                 refresh=False)
            self.bar.update(it - self.bar.n)

    def stop_reason(self, it, x, loss, grad, call_back=True):
        """``(message, success, reason)`` if the run should stop at this iterate, else ``None``.
        The same tests for every method; :meth:`finish` then checks the loss went down."""
        if call_back and self.callback is not None and self.callback(it, x.copy(), loss,
                                                                     grad.copy()):
            return f"stopped by callback at iteration {it}", True, Reason.CALLBACK
        if it == 0 and not np.any(grad):
            message = (f"{ZERO_GRADIENT_MESSAGE} (or x0 is exactly a stationary point); stopped "
                       f"at x0 with loss {loss:.6g}")
            return message, False, Reason.ZERO_GRADIENT
        if self.gtol is not None:
            g = self.box.projected_gradient(x, grad) if self.box else grad
            gnorm = float(np.linalg.norm(g))
            if gnorm <= self.gtol:
                what = "projected gradient" if self.box else "gradient"
                return (f"converged: {what} norm {gnorm:.3g} <= gtol = {self.gtol:g}", True,
                        Reason.GTOL)
        if self.tol is not None and len(self.loss) >= 2:
            change = abs(self.loss[-1] - self.loss[-2])
            if change <= self.tol:
                return (f"converged: |loss change| {change:.3g} <= tol = {self.tol:g}", True,
                        Reason.TOL)
        if it >= self.iters:
            return (f"reached iters = {self.iters}", self.tol is None and self.gtol is None,
                    Reason.BUDGET)
        return None

    def nonfinite(self, err, hint):
        """``err`` (a :class:`NonFiniteError`) with ``hint`` appended and, when the objective
        says why (the error it raised, or ``objective.last_divergence``, e.g. a diverged
        rollout), that reason."""
        why = self.raised or getattr(self.objective, "last_divergence", None)
        message = str(err) + (f"; {hint}" if hint else "")
        if why is not None:
            message += f" (the objective reports: {why})"
        return NonFiniteError(message, iteration=err.iteration, quantity=err.quantity,
                              index=err.index, name=err.name)

    # -- checkpoints ---------------------------------------------------------------------------
    def snapshot(self):
        """The run's mutable state outside the optimiser: RNGs, counters and timings."""
        get_state = getattr(self.objective, "get_state", None)
        return {"rng": self.rng.bit_generator.state,
                "objective_state": get_state() if callable(get_state) else None,
                "nfev": self.nfev, "nbackoff": self.nbackoff, "objective_s": self.objective_s,
                "elapsed": self.elapsed()}

    def save(self, kind, top, len_history, result=None, stop_kind=None, **extra):
        ckpt.save(self.checkpoint, {
            "kind": kind, "fingerprint": self.fingerprint, "iters": self.iters, "top": top,
            "history": (self.loss[:len_history], self.grad_norm[:len_history]),
            "run": top.get("run") or self.snapshot(), "result": result, "stop_kind": stop_kind,
            **extra})

    def load_checkpoint(self, kind):
        """Restore from ``self.checkpoint``; returns the stored result if that run is finished."""
        if not self.checkpoint:
            return None
        payload = ckpt.load(self.checkpoint)
        if payload is None:
            return None
        if payload["kind"] != kind or payload["fingerprint"] != self.fingerprint:
            saved = dict(payload["fingerprint"], kind=payload["kind"])
            here = dict(self.fingerprint, kind=kind)
            differ = "; ".join(f"{key}: saved {saved.get(key)!r}, now {here.get(key)!r}"
                               for key in sorted(set(saved) | set(here)) if saved.get(key) != here.get(key))
            raise CheckpointError(
                f"checkpoint {self.checkpoint} belongs to another run ({differ}); delete it or pass "
                "another checkpoint path")
        self.check_objective(payload)
        if payload["result"] is not None and not (payload["stop_kind"] == "budget"
                                                  and self.iters > payload["iters"]):
            return OptimizeResult(**payload["result"])
        self.resume_payload = payload
        self.resume_top = payload["top"]
        self.restore(payload["run"], payload["history"])
        return None

    def check_objective(self, payload):
        """Refuse a checkpoint whose run started from another loss at x0: the same options and
        x0 on a different objective (another target, data set or model) must not resume. Costs
        one evaluation; the objective's state and the run's RNG are put back afterwards, so a
        resumed run stays bitwise the uninterrupted one."""
        saved = payload["history"][0]
        if not len(saved):
            return
        get_state = getattr(self.objective, "get_state", None)
        state = get_state() if callable(get_state) else None
        rng_state = self.rng.bit_generator.state
        try:
            loss, _ = self.evaluate(self.x0)
        finally:
            self.rng.bit_generator.state = rng_state
            if state is not None:
                self.objective.set_state(state)
            self.nfev, self.objective_s = 0, 0.0
        was = float(saved[0])
        same = (np.isnan(was) and np.isnan(loss)) or loss == was or abs(loss - was) <= 1e-8 * max(abs(was), abs(loss))
        if not same:
            raise CheckpointError(
                f"checkpoint {self.checkpoint} was written by a run whose loss at x0 was {was:.12g}; this "
                f"objective gives {loss:.12g} there, so it is another problem (other data, target or model) "
                "with the same options; delete the checkpoint or pass another checkpoint path")

    def restore(self, run, history):
        self.rng.bit_generator.state = run["rng"]
        if run["objective_state"] is not None:
            self.objective.set_state(run["objective_state"])
        self.loss, self.grad_norm = list(history[0]), list(history[1])
        self.nfev, self.nbackoff = run["nfev"], run["nbackoff"]
        self.objective_s, self.elapsed_before = run["objective_s"], run["elapsed"]

    def verdict(self, loss, nit, stop):
        """The final ``(message, success, reason)``: ``stop`` as the method ended, unless the
        loss ended above where it started, or exactly there after ``nit`` > 0 iterations. The one
        place that judges every method's run."""
        message, success, reason = stop
        start = self.loss[0]
        if reason in (Reason.ZERO_GRADIENT, Reason.DIVERGED):
            return message, bool(success), reason
        if loss > start:
            best = int(np.argmin(self.loss))
            message = (f"the loss rose from {start:.6g} at the start to {loss:.6g} at the end "
                       f"(best {self.loss[best]:.6g} at iteration {best}; the run ended: "
                       f"{message}): lower the learning rate, clip the gradient, or check that "
                       "the gradient is the loss's")
            success, reason = False, Reason.LOSS_INCREASED
        elif loss == start and nit > 0:
            message = (f"the loss is still exactly its starting value {start:.6g} after {nit} "
                       f"iterations (the run ended: {message}): the steps did not change it; "
                       "check the learning rate and that the loss depends on the parameters")
            success, reason = False, Reason.NO_PROGRESS
        return message, bool(success), reason

    def finish(self, kind, top, len_history, x, loss, grad, nit, stop, **extra):
        """Build the result and write the final checkpoint, in which ``top`` and the first
        ``len_history`` history entries are what a continuation (larger ``iters``) resumes from.
        ``stop`` is ``(message, success, reason)`` as the method ended; see :meth:`verdict`."""
        message, success, reason = self.verdict(float(loss), int(nit), stop)
        total = self.elapsed()
        result = OptimizeResult(
            x=np.array(x, dtype=np.float64), fun=float(loss), jac=np.array(grad, dtype=np.float64),
            nit=int(nit), nfev=self.nfev, success=success, message=message,
            history={"loss": np.array(self.loss), "grad_norm": np.array(self.grad_norm)},
            timings={"total_s": total, "per_iteration_s": total / max(nit, 1),
                     "objective_s": self.objective_s},
            method=self.method, nbackoff=self.nbackoff, reason=reason)
        if self.checkpoint:
            self.save(kind, top, len_history, result=asdict(result), stop_kind=stop[2],
                      **extra)
        return result
