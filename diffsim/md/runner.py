"""Forward-only runs of an :class:`~diffsim.md.system.MDSystem`: the engine of
:meth:`MDSystem.simulate <diffsim.md.system.MDSystem.simulate>`, apart from the tape.

A :class:`ForwardRunner` owns two state slots (stepped in place on the fast path) and, in a
periodic box of at least three list radii with pair potentials only, the full neighbour list
of :mod:`diffsim.md.cells` (in a triclinic cell its twin
:class:`~diffsim.md.tricells.TriclinicFullList`, binned in fractional coordinates, at least three
list radii across every perpendicular width) with gather force kernels; with a lone pair
potential each step is one launch (:mod:`diffsim.md.step`). Elsewhere (open boxes, small boxes,
many-body potentials, ``fast=False``) it runs the tape's own kernels. Frames go to a
:class:`~diffsim.md.trajectory.Recorder`. Checked against the tape's kernels in
tests/md/test_md_fast_path.py.
"""

import warnings

import numpy as np

from .. import storage
from ..compat import launch_kernel
from ..errors import ConfigError
from ..progress import progress_bar
from ..runtime import config
from ..tape import Slots
from .cells import FullNeighborList
from .forcefield import zero_forces
from .integrators import (
    Berendsen,
    kinetic_sum,
    md_drift,
    md_kick,
    md_kick_drift,
    scale_state,
    scale_velocities,
    virial_trace,
)
from .step import LAGGED_ATOMS, gather_kick_drift, kick_drift_gather, leave_pending
from .system import _count
from .trajectory import Recorder
from .tricells import TriclinicFullList


class ForwardRunner:
    """Runs ``system`` forward without a tape (see the module doc). ``slots``: the two state
    slots (x, v, f, pe, vir (n, 6), and the system's other fields); ``cells``: the full list of
    the fast path once built (None before, or where it does not apply)."""

    def __init__(self, system):
        self.system = system
        n = system.n
        shapes = dict(system.state_shapes, pe=(n,), vir=(n, 6))  # energies and pressures always recordable
        self.slots = Slots({k: storage.slots(s, 2, False) for k, s in shapes.items()})
        self.io = {k: storage.slots(s, 1, False) for k, s in shapes.items()}
        self.cells = None

    def full_list(self):
        """The full neighbour list of the fast path, or None where it does not apply."""
        ff = self.system.ff
        if not ff.has_pairs or not ff.gathers or ff.nlist.method != "cells":
            return None
        if self.cells is None:
            nl = ff.nlist
            if nl.triclinic:  # the "cells" method has checked >= 3 bins per axis and the cutoff
                self.cells = TriclinicFullList(self.system.n, nl.cutoff, nl.skin, nl.boxes_np[0], nl.tilts_np[0])
            else:
                self.cells = FullNeighborList(self.system.n, nl.cutoff, nl.skin, nl.boxes_np[0])
        return self.cells

    def run(self, steps, positions=None, velocities=None, thermostat=None, record_every=0, fast=True, rebuild_every=0,
            trajectory=None, keep_frames=True, first_step=0, progress=None, barostat=None) -> dict:
        """:meth:`MDSystem.simulate <diffsim.md.system.MDSystem.simulate>` (its docstring says what
        each argument means and what comes back).

        barostat: None, or a callable ``barostat(step, pressure, volume) -> mu`` with an ``every``
        attribute (steps), called after every ``every``-th step with the instantaneous pressure
        (kinetic plus virial, energy/length^3) and volume (length^3); positions and the cell (lengths
        and tilts: its shape is kept) are then scaled by mu, velocities by 1/mu, and the list rebuilt
        (:func:`diffsim.md.npt.simulate_npt`; fast path only). The cell at the end is in
        ``result["box"]`` (and ``result["tilt"]``); the list is dropped afterwards, so later runs use
        the model's cell again."""
        sysm = self.system
        if thermostat is not None and not isinstance(thermostat, Berendsen):
            raise ConfigError(f"thermostat must be None or Berendsen(...), got {thermostat!r}")
        steps = _count("steps", steps)
        record_every = _count("record_every", record_every)
        rebuild_every = _count("rebuild_every", rebuild_every)
        t0 = _count("first_step", first_step)
        if t0 + steps >= 2 ** 31:
            raise ConfigError(f"first_step + steps = {t0 + steps} is beyond the 2^31 steps the noise counter holds")
        if trajectory is not None and not record_every:
            raise ConfigError(f"trajectory={str(trajectory)!r} needs frames: pass record_every=k (a frame every k "
                              "steps)")
        st = sysm.initial_state()
        given = {"x": ("positions", positions), "v": ("velocities", velocities)}
        for k, (name, value) in given.items():
            if value is not None:
                if np.iscomplexobj(value):
                    raise ConfigError(f"{name} must be real numbers, got a complex array (its imaginary part would "
                                      "be dropped)")
                try:
                    st[k] = np.array(value, dtype=np.float64)
                except (TypeError, ValueError) as exc:
                    raise ConfigError(f"{name} must be a real array of shape ({sysm.n}, 3): {exc}") from None
            if st[k].shape != (sysm.n, 3):
                raise ConfigError(f"{name} must have shape ({sysm.n}, 3), got {st[k].shape}")
            if not np.all(np.isfinite(st[k])):
                i = tuple(int(q) for q in np.argwhere(~np.isfinite(st[k]))[0])
                raise ConfigError(f"{name}[{i[0]}, {i[1]}] is {st[k][i]}: the initial {name} must be finite "
                                  f"({'given to simulate()' if value is not None else 'from the model'})")
        cells = self.full_list() if fast else None
        if barostat is not None and cells is None:
            raise ConfigError("constant pressure runs on the fast path only: pair potentials, a cell periodic on all "
                              "axes and at least three list radii (cutoff + skin) across (every perpendicular width of "
                              "a triclinic cell), fast=True")
        if barostat is not None and record_every:
            raise ConfigError("record_every with a barostat: frames would carry a fixed box; the run returns the "
                              "volume and pressure at each barostat step instead")
        shift = None
        if cells is not None:
            # start inside the box: the list counts box crossings in int32 (an atom 2^31 boxes out
            # would wrap around); the whole boxes taken off here, in float64, are added back at the end
            shift = cells.whole_cells_np(st["x"])
            st["x"] = st["x"] - shift
        if rebuild_every and cells is None:
            raise ConfigError(f"rebuild_every={rebuild_every}: use 0, or N > 0 with the fast path (fast=True in a "
                              "periodic box of at least three list radii)")
        late = 0
        xs = self.slots
        for k in ("x", "v"):
            self.io[k].from_numpy(st[k][None].astype(config().numpy_real))
            storage.copy_slot(self.io[k], 0, xs[k], 0)
        dof = max(3 * sysm.n - 3, 1)
        kB, ftm = sysm.units.kB, sysm.units.ftm
        recorder = Recorder(sysm.model, sysm.dt, record_every, trajectory, keep_frames) if record_every else None

        def record(t, s):
            pos = xs.x.to_numpy()[s].astype(np.float64)
            if cells is not None:  # wrapped in the box: add the counted crossings and the initial shift back
                pos += cells.offsets_np() + shift
            recorder.record(t, pos, xs.v.to_numpy()[s].astype(np.float64), float(xs.pe.to_numpy()[s].sum()),
                            xs.vir.to_numpy()[s].astype(np.float64).sum(0))

        def forces(s, track):
            if cells is None:
                # energies and virials only where a frame is taken (the tape's observe= is not needed here)
                for lc in sysm.ff.force_launches(xs.x, s, xs.f, s, xs.pe, xs.vir, s, int(track)):
                    lc.forward()
            else:
                sysm.ff.gather_forces(cells, xs.x, s, xs.f, xs.pe, xs.vir, track)

        try:
            seed = int(getattr(sysm.integrator, "seed", 0)) & 0x7FFFFFFF
            if cells is None:
                sysm._build(xs, 0, 0)
            else:
                cells.build(xs.x, 0)
                sysm.ff.prepare_gather()
                sysm.rebuilds += 1
            zero_forces(xs.f, 0, xs.pe, xs.vir, 0, 1)
            forces(0, int(bool(record_every)))
            if record_every:
                record(t0, 0)
            cur = 0
            kicks = 1  # half-kicks the next drift applies (2: the closing kick of the last step was deferred)
            if cells is not None:
                # squared displacements: the rebuild test (skin/2) and a jump no dynamics makes (half a
                # box: with rebuild_every=N an atom may legitimately move farther than jump_limit() between builds)
                skin2, jump2 = (0.5 * cells.skin) ** 2, (0.5 * float(cells.box_np.min())) ** 2
                # one launch per step (kick-drift, then forces) for a lone pair potential, its forces
                # skipped when the displacement reaches limit2 (the list must be rebuilt first)
                fused = sysm.ff.potentials[0] if len(sysm.ff.potentials) == 1 else None
                limit2 = jump2 if rebuild_every else min(skin2, jump2)
                scale_since_build = 1.0  # a barostat's box scale since the last build
            # the lagged step (diffsim.md.step.gather_kick_drift) leaves the forces at the new positions to
            # its next launch: while `pending`, f[cur] is stale and the list's xg holds x[cur]
            pending = False

            def settle(s):
                """Gather the pending forces at x[s] now (something other than a lagged step needs them)."""
                nonlocal pending
                if pending:
                    launch_kernel(zero_forces, xs.f, s, xs.pe, xs.vir, s, 0)
                    forces(s, 0)
                    pending = False

            bar = progress_bar(steps, "simulate", progress)
            tick = max(1, steps // 200)
            for t in range(steps):
                if (t + 1) % tick == 0:
                    bar.update(tick)
                nxt = cur if cells is not None else 1 - cur  # the fast path steps in place (less memory traffic)
                recorded = bool(record_every) and (t + 1) % record_every == 0
                coupled = barostat is not None and (t + 1) % barostat.every == 0
                tracked = recorded or coupled  # energies and virials wanted after this step
                gathered = lagged = False
                if cells is None:
                    md_drift(xs.x, xs.v, xs.f, xs.pe, xs.vir, sysm._dummy3, sysm._dummy4, sysm.inv_m, sysm.cs,
                             sysm.integrator.mode, seed, t0 + t, cur, nxt, int(recorded), 0, 0)
                    sysm._check(xs, nxt, t, cur)
                else:
                    scheduled = bool(rebuild_every) and (t + 1) % rebuild_every == 0
                    step = (xs.x, xs.v, xs.f, sysm.inv_m, sysm.cs, sysm.integrator.mode, seed, t0 + t, cur, nxt,
                            kicks)
                    # lagged when the forces at the new positions are not needed within this step
                    lagged = (fused is not None and not (tracked or scheduled) and thermostat is None
                              and t + 1 < steps and sysm.n <= LAGGED_ATOMS)
                    if lagged:
                        moved2 = gather_kick_drift(fused, sysm.ff, cells, *step[:9], kicks, pending)
                        gathered = pending = moved2 < limit2
                    else:
                        settle(cur)
                        if fused is None or tracked or scheduled:
                            moved2 = md_kick_drift(*step[:3], xs.pe, xs.vir, cells.ref, *step[3:], tracked)
                        else:
                            moved2 = kick_drift_gather(fused, sysm.ff, cells, *step, limit2)
                            gathered = moved2 < limit2
                    if not gathered:
                        if not moved2 < jump2:  # NaN, Inf, or a jump no dynamics makes
                            sysm._raise_diverged(xs, [(t + 1, nxt, ["x", "v", "f"])], cells.ref)
                        if scheduled or not rebuild_every and not moved2 < skin2:
                            late += scheduled and not moved2 < skin2
                            cells.build(xs.x, nxt)
                            sysm.rebuilds += 1
                            if barostat is not None:
                                scale_since_build = 1.0
                                skin2 = (0.5 * cells.skin) ** 2
                                limit2 = min(skin2, jump2)
                if not gathered:
                    if lagged:  # rebuilt: the next launch gathers (a lagged step is neither tracked nor the last)
                        leave_pending(fused, sysm.ff, cells, xs.x, nxt)
                        pending = True
                    else:
                        forces(nxt, int(tracked))
                # the closing half-kick waits for the next drift unless velocities are needed now
                kicks = 2 if cells is not None and thermostat is None and not tracked and t + 1 < steps else 1
                if kicks == 1:
                    md_kick(xs.v, xs.f, sysm.inv_m, sysm.cs, nxt)
                if thermostat is not None:
                    ke = float(kinetic_sum(xs.v, nxt, sysm.mass)) / ftm
                    temp = 2 * ke / (dof * kB)
                    lam = np.sqrt(max(1.0 + sysm.dt / thermostat.tau * (thermostat.temperature / max(temp, 1e-300) - 1.0),
                                      0.0))
                    scale_velocities(xs.v, nxt, float(lam))
                cur = nxt
                if coupled:
                    volume = cells.volume()
                    w = float(virial_trace(xs.vir, cur))
                    p = (2.0 * float(kinetic_sum(xs.v, cur, sysm.mass)) / ftm + w) / (3.0 * volume)
                    mu = float(barostat(t0 + t + 1, p, volume))
                    # positions, the list's reference positions and the box scale together; a pair beyond the
                    # list radius rl at the last build is now at least strain * rl closer (strain: |1 - the
                    # scale since that build|), so the list holds every pair within the cutoff while atoms
                    # moved less than (skin - strain * rl) / 2: rebuild when that margin falls below skin / 4
                    scale_state(xs.x, xs.v, cells.ref, cur, mu)
                    cells.rescale(mu)
                    scale_since_build *= mu
                    margin = cells.skin - abs(1.0 - scale_since_build) * cells.rl
                    if margin < 0.5 * cells.skin:
                        cells.build(xs.x, cur)
                        sysm.rebuilds += 1
                        scale_since_build, margin = 1.0, cells.skin
                    skin2 = (0.5 * margin) ** 2
                    jump2 = (0.5 * float(cells.box_np.min())) ** 2
                    limit2 = min(skin2, jump2)
                if record_every and (t + 1) % record_every == 0:
                    record(t0 + t + 1, cur)
            bar.close()
            sysm._used.clear()
            if cells is not None:
                cells.unwrap(xs.x, cur)
            out = {}
            for k in ("x", "v"):
                storage.copy_slot(xs[k], cur, self.io[k], 0)
                out[k] = self.io[k].to_numpy()[0].astype(np.float64)
            if shift is not None:
                out["x"] += shift
            if not (np.all(np.isfinite(out["x"])) and np.all(np.isfinite(out["v"]))):  # forces of the last step
                sysm._raise_diverged(xs, [(steps, cur, ["x", "v", "f"])], None)
        finally:
            if recorder is not None:
                recorder.close()
            if barostat is not None:  # the list's box is the barostat's: the next run starts from the model's
                final_box = cells.box_np.copy()
                final_tilt = cells.tilt_np.copy() if cells.tilted else np.zeros(3)
                self.cells = None
        result = {"positions": out["x"], "velocities": out["v"]}
        if barostat is not None:
            result["box"] = final_box
            result["tilt"] = final_tilt
        if rebuild_every:
            result["late_rebuilds"] = late
            if late:
                warnings.warn(f"{late} of the neighbour-list rebuilds every {rebuild_every} steps came after an atom "
                              f"had moved more than skin/2 = {cells.skin / 2:.3g}: pairs may have been missed; use a "
                              "smaller rebuild_every or rebuild_every=0", RuntimeWarning, stacklevel=3)
        if record_every:
            frames = recorder.frames()
            result["frames"] = frames
            result.update({k: getattr(frames, k) for k in ("step", "time", "potential", "kinetic", "total",
                                                           "temperature", "pressure", "pressure_tensor", "units")})
        return result
