"""Molecular dynamics on the tape: :class:`MDSystem`.

State per time slot: positions ``x`` (n, 3), velocities ``v`` (n, 3), forces ``f`` (n, 3)
(forces are state, so each step evaluates them once, at the new positions); optionally
per-atom potential energy ``pe`` (n,) and scalar virial ``vir`` (n, 1) (``observe=("energy",)``),
or with ``observe=("pressure",)`` the per-atom virial tensor ``vir`` (n, 6) (xx, yy, zz, xy, xz, yz),
displacement since t = 0 ``disp`` (n, 3) (``"msd"``), and the accumulated smoothed RDF
``rdf`` (nbins + 1,) (``rdf=RDF(...)``). Parameters: those of the force field's potentials
(``epsilon``, ``sigma``, ``D``, ``alpha``, ``r0``, ...). Positions are never wrapped.

Neighbour lists on the tape
---------------------------
The Verlet list is rebuilt outside differentiation, deterministically from the states of the
rollout, so that a recomputed step sees exactly the list the original step saw:

- at the start of every segment (``segment`` steps, the tape's unit of recomputation) the
  list is built from x at the segment start, so no list state crosses a segment boundary and
  every checkpoint schedule runs identical launches (Binomial gradients equal StoreAll's bitwise);
- within a segment, after each drift to x_{t+1}, a forward-only check rebuilds the list from
  x_{t+1} when an atom moved more than skin/2 since the last build (so no pair within the
  cutoff is ever missed), and records which state each step's list was built from; a NaN or
  an atom that jumped farther than :meth:`MDSystem.jump_limit` raises SimulationDiverged at
  that step instead (an exploded state is never binned into cells);
- in the adjoint sweep, a launch placed after each step's force evaluation (it runs before
  that step's adjoint) rebuilds the list from the recorded state, which the tape still holds
  in its working slots, whenever the list in memory is another one.
The forward pass costs one build per segment plus the skin-triggered ones, the backward pass
about the same number again.

Pair forces on the tape (CPU): the forward sweep gathers them over the full twin of the half list
(each atom sums its own force, energy and virial and adds them once; the twin is mirrored from
the half list at each build), and the adjoint sweep runs a hand-written adjoint gathered over
the same twin (:class:`~diffsim.md.potentials.GatheredPair`, :mod:`diffsim.md.pair_adjoint`):
the Newton kernel's values and its autodiff's adjoints to rounding, without a float atomic add
per pair and component in either sweep. With one pair potential (and no RDF) a segment's steps
run fused with their forces, a few steps per launch each way, the list checks and restores
between launches (:mod:`diffsim.md.pair_step`), with the same values bit for bit; such a system
keeps the full twins of its lists for the adjoint sweep (``_remember``), not the half lists.

Runs without gradients (:meth:`MDSystem.simulate`) are the job of :mod:`diffsim.md.runner`:
in a periodic box a faster path, a full list with periodic images (:mod:`diffsim.md.cells`) and
gather force kernels; with a lone pair potential each step is one launch (:mod:`diffsim.md.step`).
"""


import warnings

import numpy as np
import taichi as ti

from ..errors import ConfigError, SimulationDiverged
from ..runtime import config
from ..tape import System, adjoint_only, forward_only, launch
from .cells import copy_positions, max_displacement_sq, serial_loops
from .forcefield import ForceField, zero_forces
from .integrators import (
    Langevin,
    VelocityVerlet,
    close_drift,
    md_kick,
)
from .model import Model
from .neighbors import copy_list
from .observables import Cost, kinetic_tensor
from .pair_step import SegmentSteps
from .potentials import PairPotential

OBSERVE = ("energy", "pressure", "msd")


def _count(name, value) -> int:
    """``value`` as a number of steps (an int >= 0), else a ConfigError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer >= 0, got {value!r} ({type(value).__name__}); "
                          f"pass an int, e.g. {name}={int(value) if _integral(value) else 100}")
    if value < 0:
        raise ConfigError(f"{name} must be an integer >= 0, got {value}")
    return int(value)


def _integral(value) -> bool:
    try:
        return float(value).is_integer()
    except (TypeError, ValueError, OverflowError):
        return False


def _warn_masses_unlike_the_tables(model, potential):
    """A UserWarning when a metal-units model gives a type another mass than the potential's
    file (an EAM's element masses, amu): ``Model(..., units="metal")`` without ``masses=`` makes
    every atom 1 amu, and copper so light runs its dynamics 8x too fast, silently. Other masses on
    purpose (isotopes, mass scaling) only warn."""
    file_masses = getattr(potential, "masses", None)
    if model.units != "metal" or file_masses is None:
        return
    file_masses = np.asarray(file_masses, dtype=np.float64)
    for t in range(min(model.ntypes, file_masses.size)):
        m = model.masses[model.types == t]
        if m.size and file_masses[t] > 0 and np.any(np.abs(m / file_masses[t] - 1.0) > 1e-3):
            name = potential.elements[t] if getattr(potential, "elements", None) else f"element {t}"
            warnings.warn(f"atoms of type {t} ({name}) have masses {np.unique(m)[:3].tolist()} amu but the potential's "
                          f"file gives {file_masses[t]} amu (Model(..., units='metal') without masses= makes them 1 "
                          f"amu): pass masses=eam.masses[types] unless the masses are meant", UserWarning, stacklevel=3)
            return


class MDSystem(System):
    """Atoms of ``model`` moving under ``forcefield`` with ``integrator``, as a tape System.

    model: :class:`~diffsim.md.model.Model` (positions, velocities, masses, types, box, units).
    forcefield: :class:`~diffsim.md.forcefield.ForceField` for the same atoms (or a list of
        potentials, then ``skin`` applies).
    integrator: :class:`VelocityVerlet` (default) or :class:`Langevin`.
    dt: time step (tau in reduced units, fs in metal units).
    segment: steps per tape segment (neighbour list forced rebuild interval, checkpoint unit).
    observe: extra state fields on the tape: "energy" (pe (n,) and the scalar virial vir (n, 1) per
        atom: :meth:`thermo`'s energies and pressure, energy costs), "pressure" (the same with the
        virial tensor vir (n, 6): also the pressure tensor, :class:`PressureMatch`; 12 atomic adds
        per pair instead of 2, and 5 more numbers per atom on the tape), "msd" (disp). Forward-only
        runs (:meth:`simulate`) record energies and the pressure tensor without either.
    rdf: an :class:`~diffsim.md.observables.RDF` to accumulate during the rollout.
    costs: list of :class:`diffsim.costs.Cost` (the md costs of :mod:`~diffsim.md.observables`,
        whose required fields are observed, and the ready and Python costs of :mod:`diffsim.costs`).
    """

    def __init__(self, model: Model, forcefield, integrator=None, dt=0.005, segment=20, observe=(), rdf=None,
                 costs=(), skin=0.3):
        if not isinstance(model, Model):
            raise ConfigError(f"model must be a diffsim.md.Model, got {type(model).__name__}")
        if not isinstance(forcefield, ForceField):
            forcefield = ForceField(forcefield, model.types, model.box, skin=skin,
                                    tilt=model.tilt if model.triclinic else None)
        if forcefield.n != model.n:
            raise ConfigError(f"force field is for {forcefield.n} atoms, the model has {model.n}")
        if not np.array_equal(forcefield.types_np, model.types):
            raise ConfigError("force field atom types differ from the model's")
        if not np.allclose(forcefield.boxes_np[0], model.box):
            raise ConfigError(f"force field box {forcefield.boxes_np[0]} differs from the model's {model.box}")
        if not np.allclose(forcefield.tilts_np[0], model.tilt):
            raise ConfigError(f"force field tilts {forcefield.tilts_np[0]} differ from the model's {model.tilt} "
                              "(build it with ForceField(..., tilt=model.tilt))")
        for p in forcefield.potentials:  # a type must be the element the potential's tables give it
            if hasattr(p, "check_symbols") and model.symbols:
                p.check_symbols(model.symbols[:model.ntypes])
            _warn_masses_unlike_the_tables(model, p)
        real = isinstance(dt, (int, float, np.integer, np.floating)) and not isinstance(dt, bool)
        if not (real and dt > 0 and np.isfinite(dt)):
            raise ConfigError(f"dt must be a positive finite time step (tau or fs), got {dt!r}")
        if _count("segment", segment) < 1:
            raise ConfigError(f"segment must be >= 1 step, got {segment}")
        self.integrator = VelocityVerlet() if integrator is None else integrator
        if not isinstance(self.integrator, (VelocityVerlet, Langevin)):
            raise ConfigError(f"integrator must be VelocityVerlet() or Langevin(...), got {self.integrator!r} "
                              "(Berendsen is for MDSystem.simulate(thermostat=...) only)")
        self.model, self.ff, self.dt, self.segment = model, forcefield, float(dt), int(segment)
        self.n = model.n
        self.units = model.units_info
        self.costs = list(costs)
        for c in self.costs:
            if not isinstance(c, Cost):
                raise ConfigError(f"{c!r} is not a cost (diffsim.costs.Cost: diffsim.md's PotentialEnergy, "
                                  "RDFMatch, ..., or the ready and Python costs of diffsim.costs)")
        observe = set(observe) | {r for c in self.costs for r in c.requires}
        if rdf is not None:
            observe.add("rdf")
        if "rdf" in observe and rdf is None:
            raise ConfigError("an RDF cost needs MDSystem(rdf=RDF(r, width, every))")
        bad = observe - set(OBSERVE) - {"rdf"}
        if bad:
            raise ConfigError(f"unknown observables {sorted(bad)}; choose from {OBSERVE}")
        self.observe = observe
        self.rdf = rdf
        if rdf is not None:
            rdf.bind(self.ff, self.n, model.volume)
        self.track = int("energy" in observe or "pressure" in observe)
        self.virial_width = 6 if "pressure" in observe else 1  # the tensor, or its trace
        self.tdisp = int("msd" in observe)
        self.nrdf = rdf.nbins + 1 if rdf is not None else 0
        n = self.n
        self.state_shapes = {"x": (n, 3), "v": (n, 3), "f": (n, 3)}
        if self.track:
            self.state_shapes.update(pe=(n,), vir=(n, self.virial_width))
        if self.tdisp:
            self.state_shapes["disp"] = (n, 3)
        if rdf is not None:
            self.state_shapes["rdf"] = (self.nrdf,)
        real = config().real
        self.mass = ti.ndarray(real, n)
        self.mass.from_numpy(model.masses.astype(config().numpy_real))
        self.inv_m = ti.ndarray(real, n)
        self.inv_m.from_numpy((1.0 / model.masses).astype(config().numpy_real))
        self.cs = ti.ndarray(real, 5)
        self._write_consts()
        self._dummy1 = ti.ndarray(real, (1, 1), needs_grad=True)
        self._dummy2 = ti.ndarray(real, (1, 1, 1), needs_grad=True)
        self._dummy3 = ti.ndarray(real, (1, 1, 3), needs_grad=True)
        self._dummy4 = ti.ndarray(real, (1, 1), needs_grad=True)
        self._moved = ti.ndarray(real, 1, needs_grad=True)  # md_close_drift's displacement test (grad kept 0)
        self._moved.fill(0.0)
        self._moved.grad.fill(0.0)
        if self.ff.has_pairs and config().arch not in ("cuda", "vulkan", "metal"):
            # the tape's forward gathers pair forces over the list's full twin (mirrored by a serial
            # loop: a CPU's job; on a GPU the Newton kernel's atomics are cheap and stay)
            self.ff.nlist.keep_full = True
        self._nl_key = None
        self._used = {}
        self.rebuilds = 0

    # ------------------------------------------------------------------ configuration

    def _write_consts(self):
        self.cs.from_numpy(np.array(self.integrator.consts(self.dt, self.units), dtype=config().numpy_real))

    def set_integrator(self, integrator):
        """Swap the integrator (e.g. a new Langevin seed or temperature)."""
        if not isinstance(integrator, (VelocityVerlet, Langevin)):
            raise ConfigError(f"integrator must be VelocityVerlet() or Langevin(...), got {integrator!r}")
        self.integrator = integrator
        self._write_consts()

    def parameters(self):
        return self.ff.parameters()

    def initial_state(self):
        st = {name: np.zeros(shape) for name, shape in self.state_shapes.items()}
        st["x"] = self.model.positions.copy()
        st["v"] = self.model.velocities.copy()
        return st

    def plausible_magnitudes(self):
        """With L the system's size (the largest box edge, initial extent or cutoff, in length
        units): positions beyond 1000 L, speeds beyond L per step and forces that would move the
        lightest atom by L in one step (m L / dt^2) mean the run has diverged, however finite."""
        pos = self.model.positions
        size = max(float(np.max(self.model.box)), float(np.ptp(pos, axis=0).max()) if len(pos) else 0.0,
                   float(getattr(self.ff, "cutoff", 0.0)), 1e-6)
        m_min = float(np.min(self.model.masses))
        return {"x": 1e3 * size, "v": size / self.dt, "f": m_min * size / (self.dt ** 2 * self.units.ftm)}

    def divergence_hint(self):
        return (f"reduce dt (now {self.dt} {self.units.time}) or check that no two atoms start closer than "
                f"the repulsive core (a bad initial configuration or too large a fitted sigma)")

    # ------------------------------------------------------------------ launches

    def _fields(self, x):
        pe = x.pe if self.track else self._dummy1
        vir = x.vir if self.track else self._dummy2
        disp = x.disp if self.tdisp else self._dummy3
        rdf = x.rdf if self.nrdf else self._dummy4
        return pe, vir, disp, rdf

    def _build(self, x, slot, key, remember=True):
        if remember and self._current(x, slot, key):
            return
        if remember and self._reuse(x, slot, key):
            return
        self.ff.build(x.x, slot)
        self._nl_key = key
        self.rebuilds += 1
        if remember and self.ff.has_pairs:
            self._remember(x, slot, key)

    def _current(self, x, slot, key) -> bool:
        """Whether the current list is the one for step ``key`` and was built from these very
        positions x[slot] (checked exactly), in this sweep: a segment that starts where the last
        one's final drift called for a rebuild would otherwise build the same list again at its
        start (at N = 1,000 and 1,000 steps about 16 of 174 builds)."""
        if key != self._nl_key or not self.ff.has_pairs:
            return False
        nl = self.ff.nlist
        # a list restored as its full twin only (restore_kept) is not current for kernels that read
        # the half list (a later run on the separate kernels); the fused forward sweep builds anyway
        return nl.half_current and float(max_displacement_sq(x.x, slot, nl.ref)) == 0.0

    def _reuse(self, x, slot, key) -> bool:
        """In the adjoint sweep (a recomputation), make the list for step ``key`` the one kept from
        an earlier build, if that build was from these very positions x[slot] (checked exactly):
        a copy and a test instead of a sort and a search (the same list, bit for bit). Not across
        forward sweeps (each builds its own lists, as a fit with new parameters would)."""
        if not self.__dict__.get("_in_adjoint") or not self.ff.has_pairs:
            return False
        cache = self.__dict__.get("_lists", {})
        name = (id(x.x), key)
        entry = cache.get(name)
        nl = self.ff.nlist
        if entry is None:
            return False
        if self._fuses():  # the full twin kept (see _remember): test, copy and reference in one launch
            if not nl.restore_kept(entry, x.x, slot, check=True):
                return False
        else:
            if entry[0].shape != nl.nbr.shape or float(max_displacement_sq(x.x, slot, entry[2])) != 0.0:
                return False
            nl.restore(entry[0], entry[1])
            copy_positions(x.x, slot, nl.ref, serial_loops(x.x.shape[1]))
        cache[name] = cache.pop(name)  # the latest used goes last: evicted last
        self._nl_key = key
        return True

    def _kept_shape(self):
        """Shape of the rows a kept list holds: with fused steps (:meth:`_fuses`), which read only
        the full twin, that twin (a restore then needs no mirror), else the half list."""
        nl = self.ff.nlist
        return nl.kept_shape() if self._fuses() else tuple(nl.nbr.shape)

    def _entry_bytes(self) -> int:
        """Bytes of one kept list: its rows (:meth:`_kept_shape`), their lengths and the positions
        it came from."""
        rows, width = self._kept_shape()
        return 4 * (rows * width + rows) + np.dtype(config().numpy_real).itemsize * 3 * rows

    def _remember(self, x, slot, key):
        """Keep a copy of the list just built from the tape's states ``x`` (slot ``slot``) for step
        ``key``, and of the positions it came from, so the adjoint sweep restores it (one copy
        launch) instead of rebuilding it (a cell sort and a search), and a recomputation from the
        same positions reuses it: within :attr:`list_cache_bytes`; forward-only runs keep none."""
        runner = self.__dict__.get("_runner")
        if runner is not None and x is runner.slots:
            return
        nl = self.ff.nlist
        cache = self.__dict__.setdefault("_lists", {})  # insertion (or last use) order: oldest first
        name = (id(x.x), key)
        entry = cache.pop(name, None)
        shape = self._kept_shape()
        size = self._entry_bytes()
        if size > self.list_cache_bytes:
            return
        while cache and len(cache) * size + size > self.list_cache_bytes:
            old = cache.pop(next(iter(cache)))  # the oldest list goes (reused for this one if it fits)
            if entry is None or tuple(entry[0].shape) != shape:
                entry = old
        if entry is None or tuple(entry[0].shape) != shape:
            entry = (ti.ndarray(ti.i32, shape), ti.ndarray(ti.i32, nl.n), ti.ndarray(config().real, (nl.n, 3)))
        cache[name] = entry
        if self._fuses():
            nl.keep(x.x, slot, entry)
        else:
            copy_list(nl.nbr, nl.nnb, entry[0], entry[1])
            copy_positions(x.x, slot, entry[2], serial_loops(x.x.shape[1]))

    #: bytes of neighbour lists kept from the forward sweep for the adjoint sweep, the latest used
    #: ones (see ``_remember``; 0: none, every list is rebuilt in the adjoint sweep). A StoreAll
    #: rollout needs all its lists (one per segment and per skin-triggered rebuild: at N = 1,000 and
    #: 1,000 steps about 200 of 0.5 MB); a Binomial one restores its current segment's, and its
    #: recomputations reuse those kept from the same positions (``_reuse``: at N = 1,000, T = 1,000
    #: and 32 snapshots about 380 builds instead of 590 at the default; set it per system where
    #: memory is short).
    list_cache_bytes = 64 * 2 ** 20

    def jump_limit(self) -> float:
        """Largest distance (length) an atom may have moved since the last neighbour-list build
        before the run counts as diverged: skin/2 (beyond it the list is rebuilt) plus one step of
        the list radius (cutoff + skin), or of half the smallest periodic box edge if shorter. No
        resolved step moves an atom that far (at dt = 0.005 tau it takes a speed of ~500 sigma/tau);
        an exploding system does, and binning its positions must not be tried."""
        nl = self.ff.nlist
        box = nl.boxes_np[0]
        step = min([nl.rl] + [0.5 * float(e) for e in box if e > 0])
        return step + 0.5 * nl.skin

    def _check(self, x, slot, t, prev, moved=None):
        """Forward only, after the drift of step t wrote x_{t+1} to ``slot`` (state t is complete in
        slot ``prev``): SimulationDiverged if x_{t+1} is not finite or an atom jumped beyond
        :meth:`jump_limit` (checked before any rebuild bins the positions), else rebuild the list
        when an atom moved more than skin/2."""
        nl = self.ff.nlist
        if moved is None:
            d2 = float(max_displacement_sq(x.x, slot, nl.ref))  # inf if any coordinate is NaN or Inf
        else:  # the step kernel's own measure (md_close_drift)
            d2 = float(moved[0])
            moved[0] = 0.0
        # without pair potentials there is no list (nor reference positions): finiteness only
        if not d2 < (self.jump_limit() ** 2 if self.ff.has_pairs else np.inf):
            runner = self.__dict__.get("_runner")
            fields = ["x", "v", "f"] if runner is not None and x is runner.slots else list(self.state_shapes)
            self._raise_diverged(x, [(t, prev, fields), (t + 1, slot, ["x"])], nl.ref)
        if self.ff.has_pairs and 2.0 * np.sqrt(d2) > nl.skin:
            self._build(x, slot, t + 1)
        self._used[t] = self._nl_key

    def _ensure(self, x, s0, t0, key):
        self._in_adjoint = True  # until the next forward sweep (recomputations may reuse kept lists)
        r = self._used[key] if key != "init" else t0
        if self._nl_key != r:
            cache = self.__dict__.get("_lists", {})
            name = (id(x.x), r)
            entry = cache.get(name)
            restored = False
            if entry is not None:  # the list the forward sweep built from this state
                if self._fuses():
                    restored = self.ff.nlist.restore_kept(entry, x.x, s0, check=False)
                else:
                    self.ff.nlist.restore(entry[0], entry[1])
                    restored = True
            if restored:
                cache[name] = cache.pop(name)  # the latest used goes last: evicted last
                self._nl_key = r
            else:
                self._build(x, s0 + r - t0, r, remember=False)

    def _forces(self, x, s):
        pe, vir, _, _ = self._fields(x)
        out = [launch(zero_forces, x.f, s, pe, vir, s, self.track)]
        out += self.ff.force_launches(x.x, s, x.f, s, pe, vir, s, self.track, rows=False, gathered=True)
        return out

    def _one_step(self, x, src, dst, t, s0, t0):
        pe, vir, disp, rdf = self._fields(x)
        seed = int(getattr(self.integrator, "seed", 0)) & 0x7FFFFFFF
        # one launch per step: the previous step's closing half-kick (except at the segment start,
        # whose state is complete) with this step's drift; the segment's last kick is its own launch
        out = [launch(close_drift, x.x, x.v, x.f, pe, vir, disp, rdf, self.inv_m, self.cs, self.integrator.mode,
                      seed, t, src, dst, self.track, self.tdisp, self.nrdf, int(t > t0), self.ff.nlist.ref,
                      self._moved),
               forward_only(lambda: self._check(x, dst, t, src, self._moved))]
        out += self.ff.force_launches(x.x, dst, x.f, dst, pe, vir, dst, self.track, rows=False, gathered=True)
        if self.rdf is not None and (t + 1) % self.rdf.every == 0:
            out += self.rdf.launches(self.ff, x.x, dst, rdf, dst)
        out.append(adjoint_only(lambda: self._ensure(x, s0, t0, t)))
        return out

    def _forward_sweep(self):
        self._in_adjoint = False  # no list kept from another sweep is reused (see _reuse)
        self._nl_key = None  # nor the current one (see _current): the sweep's first build is its own

    def _fuses(self) -> bool:
        """Whether a step runs as one launch with its pair forces (:mod:`diffsim.md.pair_step`): one
        pair potential gathered over the full list (the CPU tape), no RDF accumulated."""
        pots = self.ff.potentials
        return (self.ff.has_pairs and self.ff.nlist.keep_full and len(pots) == 1
                and isinstance(pots[0], PairPotential) and not self.nrdf)

    def advance(self, x, u, slot0, t0, t1):
        """Launches that run steps t0..t1-1 from slot slot0 (neighbour list rebuilt first; see :class:`diffsim.System`)."""
        # the parameter rows of the pair kernels once per segment, not per step (their adjoint, which
        # sums the rows into the parameters' gradients, then runs once after the segment's steps)
        out = [forward_only(lambda: self._build(x, slot0, t0))] + self.ff.row_launches()
        if t0 == 0:  # a forward sweep starts (or the adjoint sweep recomputes from the start)
            out.insert(0, forward_only(self._forward_sweep))
        if t0 == 0:  # forces (and energies) of the initial state are computed on the tape
            out += self._forces(x, slot0)
            out.append(adjoint_only(lambda: self._ensure(x, slot0, t0, "init")))
        if self._fuses():  # the segment's steps, checks and list restores in few launches
            out.append(launch(SegmentSteps(self, x, slot0, t0, t1)))
            return out
        for t in range(t0, t1):
            s = slot0 + t - t0
            out += self._one_step(x, s, s + 1, t, slot0, t0)
        out.insert(len(out) - 1, launch(md_kick, x.v, x.f, self.inv_m, self.cs, slot0 + t1 - t0))
        return out

    def running_cost(self, x, u, slot0, t0, t1, loss):
        out = []
        for c in self.costs:
            out += c.running(self, x, u, slot0, t0, t1, loss)
        return out

    def terminal_cost(self, x, slot, loss):
        out = []
        for c in self.costs:
            out += c.terminal(self, x, slot, loss)
        return out

    # ------------------------------------------------------------------ forward-only runs

    def simulate(self, steps, positions=None, velocities=None, thermostat=None, record_every=0, fast=True,
                 rebuild_every=0, trajectory=None, keep_frames=True, first_step=0, progress=None):
        """Run ``steps`` steps forward only (no tape, two slots), e.g. to equilibrate or to sample.

        thermostat: None or :class:`Berendsen` (rescales velocities after every step).
        record_every: take a frame every k steps, step 0 included (0: never). Returns a dict with
        the final ``positions`` (unwrapped, length) and ``velocities`` (length/time) as NumPy
        arrays and, when recording, ``frames``: a :class:`~diffsim.md.trajectory.Frames` (step,
        time, positions and velocities (T, n, 3), potential, kinetic and total energy,
        temperature, pressure and the pressure tensor (T, 6) in LAMMPS's convention and order xx,
        yy, zz, xy, xz, yz, with their ``units``), and the same thermodynamics as flat arrays
        ``step``, ``time``, ``potential``, ``kinetic``, ``total``, ``temperature``, ``pressure``,
        ``pressure_tensor``, and ``units`` (the unit of each, by name: energies in epsilon or
        eV, temperature in epsilon/k_B or K, pressure in epsilon/sigma^3 or eV/Angstrom^3).
        No ``observe=`` is needed. Updates nothing in the model.
        trajectory: a path ending in .xyz/.extxyz (extended XYZ) or .traj (ASE trajectory): each
        frame is written as it is taken, through ASE (see :mod:`diffsim.md.trajectory`).
        keep_frames: False keeps only the thermodynamics in memory (long runs streamed to a file).
        first_step: the number of the first step (an int >= 0): Langevin noise is keyed by (seed,
        step, atom), so a run continued from where another ended passes that run's step count here;
        from the same first step two calls draw the same noise. Frames are numbered from it.
        fast: in a periodic box (the neighbour list's "cells" method), gather forces over a full
        list (:mod:`diffsim.md.cells`; in a triclinic cell
        :class:`~diffsim.md.tricells.TriclinicFullList`), computing energies only on recorded steps; the same
        dynamics as the tape's kernels up to summation order (positions within 1e-12 after 300 steps).
        With fast=False (or open boundaries, or a many-body potential such as EAM) the tape's own kernels run.
        rebuild_every: 0 (default) rebuilds the neighbour list whenever an atom has moved more than
        skin/2, checked every step, so no pair is ever missed. N > 0 rebuilds every N steps
        unchecked, as LAMMPS's ``neigh_modify every N check no`` (bench/in.lj uses 20; fast path
        only); the result's ``late_rebuilds`` counts rebuilds that found an atom already moved
        more than skin/2 (pairs may have been missed in that interval; a warning says so).

        progress: a progress bar (:mod:`diffsim.progress`: text on stderr, a widget in Jupyter);
        default None shows it for runs of 10,000 steps or more in a terminal or notebook.
        steps, record_every, rebuild_every: ints >= 0 (anything else is a ConfigError).
        Every step is checked: a NaN or Inf, or an atom that jumped farther since the last list
        build than a resolved step can (:meth:`jump_limit`), raises :class:`SimulationDiverged`
        at the first such step (on the fast path the check is half a box), never binning the
        exploded positions. Atoms may start any number of boxes out: the fast path takes whole
        boxes off in float64 and adds them back to the result.
        """
        return self.forward_runner.run(steps, positions, velocities, thermostat, record_every, fast, rebuild_every,
                                       trajectory, keep_frames, first_step, progress)

    @property
    def forward_runner(self):
        """The :class:`~diffsim.md.runner.ForwardRunner` of :meth:`simulate` (made on first use)."""
        if self.__dict__.get("_runner") is None:
            from .runner import ForwardRunner

            self._runner = ForwardRunner(self)
        return self._runner


    def _raise_diverged(self, x, checks, ref):
        """Raise SimulationDiverged at the first non-finite entry among ``checks`` [(step, slot,
        fields)] (in order) of the state slots ``x``, else at the atom of the last check's slot that
        jumped farthest from ``ref`` (the positions of the last neighbour-list build)."""
        for step, slot, fields in checks:
            for k in fields:
                a = x[k].to_numpy()[slot]
                bad = np.argwhere(~np.isfinite(a))
                if len(bad):
                    i = tuple(int(q) for q in bad[0])
                    raise SimulationDiverged(step, k, i, float(a[i]), self.divergence_hint())
        step, slot, _ = checks[-1]
        pos = x.x.to_numpy()[slot]
        jump = np.linalg.norm(pos - ref.to_numpy(), axis=1)
        i = int(np.argmax(jump))
        raise SimulationDiverged(step, "x", (i, 0), float(pos[i, 0]),
                                 f"atom {i} jumped {jump[i]:.3g} {self.units.length} since the last neighbour-list "
                                 f"build (more than the {self.jump_limit():.3g} a resolved step can reach); "
                                 + self.divergence_hint())

    def thermo(self, rollout) -> dict:
        """Per-step thermodynamics of a StoreAll rollout, arrays over steps 0..T: ``potential``,
        ``kinetic``, ``total`` (energy), ``temperature`` (epsilon/k_B or K), ``pressure``
        (energy/length^3) and, with ``observe=("pressure",)``, ``pressure_tensor`` (T + 1, 6)
        (LAMMPS's convention, kinetic plus virial, order xx, yy, zz, xy, xz, yz), and ``units`` (the
        unit of each). Needs the per-atom energies and virials on the tape: build the system with
        ``observe=("energy",)`` or ``("pressure",)``."""
        if not self.track:
            raise ConfigError("thermo() needs the per-atom energies and virials on the tape: build the system with "
                              "MDSystem(..., observe=('energy',)) or ('pressure',) for the pressure tensor (or use "
                              "simulate(record_every=k), which needs neither)")
        v = rollout.trajectory("v")
        kt = kinetic_tensor(self.model.masses, v, self.units)
        ke = 0.5 * kt[:, :3].sum(1)
        pe = rollout.trajectory("pe").sum(1)
        w = rollout.trajectory("vir").sum(1)
        dof = max(3 * self.n - 3, 1)
        out = {"potential": pe, "kinetic": ke, "total": pe + ke, "temperature": 2 * ke / (dof * self.units.kB),
               "pressure": (2 * ke + w[:, :3].sum(1)) / (3 * self.model.volume), "units": self.units.describe()}
        if self.virial_width == 6:
            out["pressure_tensor"] = (kt + w) / self.model.volume
        return out
