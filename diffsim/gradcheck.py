"""Gradient checks: reverse mode against central finite differences in float64.

``gradcheck(f, x)`` compares the gradient that ``f`` returns with central differences,
entry by entry (Richardson-extrapolated, error O(h^4)), plus random directions for long
vectors, and optionally with a forward-mode JVP as a third opinion. It returns a report a
person can read and raises :class:`~diffsim.errors.GradientCheckError` on request.
"""

from dataclasses import dataclass, field

import numpy as np
import taichi as ti

from .errors import ConfigError, GradientCheckError


@dataclass
class CheckRow:
    name: str
    reverse: float
    central: float
    forward: float | None
    rel_error: float
    ok: bool


@dataclass
class GradcheckReport:
    """Rows of (entry or direction, reverse, central difference, forward, relative error, ok)."""

    rows: list = field(default_factory=list)
    rtol: float = 1e-6
    step: float = 0.0
    loss: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every checked entry and direction agrees within ``rtol``."""
        return all(r.ok for r in self.rows)

    @property
    def max_rel_error(self) -> float:
        """The largest relative error over the checked rows (0.0 when none)."""
        return max((r.rel_error for r in self.rows), default=0.0)

    def __str__(self):
        head = f"{'entry':<22} {'reverse':>15} {'central FD':>15} {'forward':>15} {'rel.err':>9}  ok"
        lines = [f"gradient check: loss {self.loss:.9g}, relative step {self.step:g}, rtol {self.rtol:g}", head,
                 "-" * len(head)]
        for r in self.rows:
            fwd = "-" if r.forward is None else f"{r.forward:15.8e}"
            lines.append(f"{r.name[:22]:<22} {r.reverse:15.8e} {r.central:15.8e} {fwd:>15} "
                         f"{r.rel_error:9.2e}  {'yes' if r.ok else 'NO'}")
        lines.append(f"max relative error {self.max_rel_error:.2e}: {'PASS' if self.ok else 'FAIL'}")
        return "\n".join(lines)


def _rel_error(a: float, b: float, floor: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), floor)


def _positive(name, value, example, allow_zero=False):
    """ConfigError unless ``value`` is a finite real number > 0 (>= 0 with ``allow_zero``)."""
    real = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not (real and np.isfinite(value) and (value >= 0 if allow_zero else value > 0)):
        raise ConfigError(f"gradcheck: {name}={value!r} must be a finite number {'>= 0' if allow_zero else '> 0'}; "
                          f"e.g. {example}")


def central_difference(loss, x, direction, h):
    """Richardson-extrapolated central difference of ``loss`` along ``direction`` at x."""
    def d(step):
        return (loss(x + step * direction) - loss(x - step * direction)) / (2 * step)

    return (4 * d(h / 2) - d(h)) / 3


def gradcheck(f, x, *, rtol: float = 1e-6, step: float = 1e-4, names=None, entries: int = 32,
              directions: int = 2, forward=None, seed: int = 0, raise_on_fail: bool = False,
              floor: float | None = None) -> GradcheckReport:
    """Check the reverse-mode gradient of ``f`` at ``x`` against central differences.

    f: ``x -> (loss, grad)`` (an :class:`~diffsim.objective.Objective`, say), float64 in and out;
        when ``f.forward_loss(x)`` exists it is used for the finite differences (no adjoint sweep).
    rtol: largest accepted |reverse - FD| / max(|reverse|, |FD|, floor).
    step: relative step, h_i = step * max(1, |x_i|); Richardson extrapolation makes the
        truncation error O(h^4), so the default 1e-4 sits well above round-off.
    entries: check every entry when x has at most this many, else a random sample of them.
    directions: also check this many random unit directions (all entries at once).
    forward: optional ``(x, direction) -> directional derivative`` (forward mode) shown beside.
    floor: denominator floor for tiny derivatives (default 1e-8 times the largest |gradient|).
    """
    try:
        x = np.array(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"gradcheck needs a real 1-D parameter vector x: {exc}") from None
    if x.ndim != 1 or x.size == 0:
        raise ConfigError(f"gradcheck needs a non-empty 1-D parameter vector, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        i = int(np.argmax(~np.isfinite(x)))
        raise ConfigError(f"gradcheck: x[{i}] is {x[i]}; check the gradient at a finite point")
    _positive("step", step, "step=1e-4 (relative to max(1, |x_i|))")
    _positive("rtol", rtol, "rtol=1e-6", allow_zero=True)
    if floor is not None:
        _positive("floor", floor, "floor=1e-8", allow_zero=True)
    for name, value in (("entries", entries), ("directions", directions)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ConfigError(f"gradcheck: {name}={value!r} must be a whole number >= 0")
    out = f(x)
    try:
        loss0, g = out
        g = np.asarray(g, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError("gradcheck: f(x) must return a pair (loss, gradient array), as an Objective does; got "
                          f"{type(out).__name__}") from None
    if g.shape != x.shape:
        raise ConfigError(f"gradient has shape {g.shape}, parameters {x.shape}")
    names = list(names) if names is not None else list(getattr(f, "names", [f"x[{i}]" for i in range(x.size)]))
    rng = np.random.default_rng(seed)
    floor = floor if floor is not None else 1e-8 * max(float(np.max(np.abs(g))), 1e-30)
    scale = step * np.maximum(1.0, np.abs(x))

    loss_only = getattr(f, "forward_loss", None)  # an Objective skips the adjoint sweep for FD

    def loss(y):
        return float(loss_only(y)) if callable(loss_only) else float(f(y)[0])

    report = GradcheckReport(rtol=rtol, step=step, loss=float(loss0))
    idx = np.arange(x.size) if x.size <= entries else np.sort(rng.choice(x.size, entries, replace=False))
    for i in idx:
        e = np.zeros_like(x)
        e[i] = scale[i]
        fd = central_difference(loss, x, e, 1.0) / scale[i]
        fwd = None if forward is None else float(forward(x, e)) / scale[i]
        err = _rel_error(g[i], fd, floor)
        if fwd is not None:
            err = max(err, _rel_error(fwd, fd, floor))
        report.rows.append(CheckRow(names[i], float(g[i]), float(fd), fwd, err, err <= rtol))
    for k in range(directions if x.size > 1 else 0):
        d = rng.standard_normal(x.size)
        d *= scale / np.linalg.norm(d)
        fd = central_difference(loss, x, d, 1.0)
        rev = float(g @ d)
        fwd = None if forward is None else float(forward(x, d))
        dfloor = floor * float(np.linalg.norm(d))
        err = _rel_error(rev, fd, dfloor)
        if fwd is not None:
            err = max(err, _rel_error(fwd, fd, dfloor))
        report.rows.append(CheckRow(f"random direction {k}", rev, float(fd), fwd, err, err <= rtol))
    loss(x)  # leave a stateful objective (a system's parameters) where it was found
    if raise_on_fail and not report.ok:
        raise GradientCheckError(report)
    return report


@ti.kernel
def _seed_dual(p: ti.template(), s: ti.template()):
    for idx in ti.grouped(p):
        p.dual[idx] = s[idx]


def forward_jvp(run, loss, param, direction) -> float:
    """Forward-mode directional derivative d loss / d param . direction with ``ti.ad.FwdMode``.

    For kernels over Taichi *fields* only (Taichi 1.7.4's FwdMode rejects ndarrays, so the
    tape's rollouts are checked in reverse mode and by finite differences). ``run()`` launches
    the kernels; ``loss`` is a 0-d scalar field, ``param`` a scalar field with ``needs_dual``.
    The seed is written in full precision (FwdMode's own seed goes through float32).
    Kernels using vectors need ``ti.init(force_scalarize_matrix=True)`` (Taichi 1.7.4's forward mode
    fails to compile vector expressions otherwise).
    """
    direction = np.asarray(direction, dtype=np.float64).reshape(param.shape)
    seed = ti.field(ti.f64, shape=param.shape)
    seed.from_numpy(direction)
    with ti.ad.FwdMode(loss=loss, param=param, seed=[0.0] * int(np.prod(param.shape)), clear_gradients=True):
        _seed_dual(param, seed)
        run()
    return float(loss.dual[None])
