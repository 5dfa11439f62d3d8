"""Force matching: fit potential parameters to reference energies and forces.

For configurations c with n_c atoms, reference energies E_c and forces F_ic,

    L = w_F / (3 sum_c n_c) sum_c sum_i |F_ic(p) - F_ic|^2 + w_E / C sum_c ((E_c(p) + n_c e0 - E_c) / n_c)^2

(energies in the model's energy unit, forces in energy/length). ``e0`` is an optional fitted
energy per atom that absorbs a different zero of energy (EMT's reference is the crystal, a
pair potential's is separated atoms). All configurations are stacked into one array and
evaluated by one set of launches; their neighbour lists (no skin: positions never move) are
built once. The gradient comes from reverse mode through the force kernels (a Hessian-vector
product), exact to round-off.
"""

import numpy as np
import taichi as ti

from ..errors import ConfigError, DiffsimError
from ..runtime import config
from .forcefield import ForceField
from .model import atom_types, parse_cell
from .terms import Potential

_A1 = ti.types.ndarray(ndim=1)
_A2 = ti.types.ndarray(ndim=2)
_A3 = ti.types.ndarray(ndim=3)


@ti.kernel
def _config_energy(pe: _A2, cfg: _A1, ec: _A1):
    for i in range(pe.shape[1]):
        ec[cfg[i]] += pe[0, i]


@ti.kernel
def _force_loss(f: _A3, fref: _A2, sf: _A1, loss: _A1):
    for i in range(f.shape[1]):
        loss[0] += sf[i] * ((f[0, i, 0] - fref[i, 0]) ** 2 + (f[0, i, 1] - fref[i, 1]) ** 2
                            + (f[0, i, 2] - fref[i, 2]) ** 2)


@ti.kernel
def _energy_loss(ec: _A1, eref: _A1, nat: _A1, e0: _A1, se: _A1, loss: _A1):
    for c in range(ec.shape[0]):
        loss[0] += se[c] * (ec[c] + nat[c] * e0[0] - eref[c]) ** 2


@ti.kernel
def _zero_all(f: _A3, fg: _A3, pe: _A2, peg: _A2, ec: _A1, ecg: _A1):
    for i in range(f.shape[1]):
        for k in ti.static(range(3)):
            f[0, i, k] = 0.0
            fg[0, i, k] = 0.0
        pe[0, i] = 0.0
        peg[0, i] = 0.0
    for c in range(ec.shape[0]):
        ec[c] = 0.0
        ecg[c] = 0.0


def _check_finite(c, positions, box, energy, forces):
    """ConfigError naming the first NaN or Inf in configuration ``c``'s reference data."""
    for name, value in (("positions", positions), ("box", box), ("energy", energy), ("forces", forces)):
        a = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(a)):
            i = tuple(int(k) for k in np.argwhere(~np.isfinite(a))[0])
            where = str(list(i)) if i else ""
            raise ConfigError(f"configuration {c}: reference {name}{where} is {a[i]}: reference data must be "
                              "finite; fix or drop this configuration")


def _is_ase(cfg) -> bool:
    return hasattr(cfg, "get_positions") and hasattr(cfg, "get_forces")  # ASE Atoms with a calculator


def _element_order(potentials, configs):
    """One chemical symbol per atom type for all ASE configurations together: a potential's own
    elements (an EAM file's) when they cover every element present, else the order of first
    appearance over the configurations in turn (None without ASE configurations)."""
    present = list(dict.fromkeys(s for cfg in configs if _is_ase(cfg) for s in cfg.get_chemical_symbols()))
    if not present:
        return None
    potentials = [potentials] if isinstance(potentials, Potential) else list(potentials)
    order = next((list(p.elements) for p in potentials
                  if getattr(p, "elements", None) and all(s in p.elements for s in present)), present)
    for p in potentials:  # an element an EAM file does not model would run on another's tables
        if hasattr(p, "check_symbols"):
            p.check_symbols(order)
    return order


def _config_arrays(c, cfg, symbols=None):
    """(positions, types, box, tilt, energy, forces) from a dict, a Model with energy/forces, or
    ASE Atoms. A tilted ASE cell is rotated into LAMMPS's orientation (:func:`~diffsim.md.ase_io.from_ase`),
    its reference forces with it; ``symbols``: the element of each type for ASE Atoms. ``c``: the
    configuration's index, for the messages."""
    if _is_ase(cfg):
        from .ase_io import from_ase, lammps_cell

        m = from_ase(cfg, symbols=symbols)
        forces = np.asarray(cfg.get_forces(), dtype=np.float64)
        _check_finite(c, m.positions, m.box, cfg.get_potential_energy(), forces)
        if m.triclinic:
            forces = forces @ lammps_cell(np.asarray(cfg.get_cell()))[1]
        return m.positions, m.types, m.box, m.tilt, float(cfg.get_potential_energy()), forces
    if isinstance(cfg, dict):
        missing = [k for k in ("positions", "energy", "forces") if k not in cfg]
        if missing:
            raise ConfigError(f"a configuration dict needs keys positions, energy, forces (and box, types); "
                              f"missing {missing}")
        try:
            pos = np.asarray(cfg["positions"], dtype=np.float64)
            box = np.zeros(3) if cfg.get("box") is None else np.asarray(cfg["box"], dtype=np.float64)
            energy = float(cfg["energy"])
            forces = np.asarray(cfg["forces"], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"a configuration's positions (n, 3), box (3,) or (3, 3) cell, energy (a number) and "
                              f"forces (n, 3) must be real numbers: {exc}") from None
        _check_finite(c, pos, box, energy, forces)
        box, tilt = parse_cell(box, cfg.get("tilt"))
        types = np.zeros(len(pos), np.int32) if cfg.get("types") is None else cfg["types"]
        return pos, types, box, tilt, energy, forces
    raise ConfigError(f"a configuration must be a dict (positions, box, types, energy, forces) or ASE Atoms "
                      f"with a calculator, got {type(cfg).__name__}")


class ForceMatching:
    """``x -> (loss, grad)`` for fitting ``potentials`` to reference configurations (see module doc).

    configs: list of dicts {positions (n, 3), box (3,) or a lower-triangular (3, 3) cell (or box
        with tilt (xy, xz, yz)), types (n,), energy, forces (n, 3)} or ASE Atoms with results (a
        tilted cell is rotated into LAMMPS's orientation, forces alike; their elements are typed alike
        in every configuration: as an EAM potential's ``elements`` when it lists them all, else in
        the order they first appear over the configurations). Every periodic cell must
        be at least twice the largest cutoff across (its perpendicular widths when tilted).
    params: names of the fitted parameters (default: all of the potentials'); ``energy_offset``
        adds ``e0`` (energy per atom). ``log``: fit log(p) for these names (keeps them positive).
    energy_weight, force_weight: w_E, w_F.

    ``x0()``, ``unpack(x)``, ``names``, ``__call__(x)``, ``evaluate(x, batch)`` (a subset of
    configuration indices), ``minibatch(batch_size, seed)`` (an objective for
    ``optimizers.minimize`` that draws a new batch each call), ``predict(x)`` (energies, forces).
    """

    def __init__(self, potentials, configs, params=None, energy_weight=1.0, force_weight=1.0,
                 energy_offset=False, log=()):
        configs = list(configs)
        if not configs:
            raise ConfigError("force matching needs at least one configuration")
        symbols = _element_order(potentials, configs)
        arrays = [_config_arrays(c, cfg, symbols) for c, cfg in enumerate(configs)]
        pos, types, boxes, tilts, cfg, eref, fref = [], [], [], [], [], [], []
        for c, (p, t, b, tilt, e, f) in enumerate(arrays):
            if p.ndim != 2 or p.shape[1] != 3 or f.shape != p.shape or np.shape(t) != (len(p),):
                raise ConfigError(f"configuration {c}: positions {p.shape}, forces {f.shape} and types "
                                  f"{np.shape(t)} must be (n, 3), (n, 3), (n,)")
            pos.append(p)
            types.append(atom_types(t, len(p), name=f"configuration {c}: types"))
            boxes.append(np.broadcast_to(b, (3,)))
            tilts.append(tilt)
            cfg.append(np.full(len(p), c))
            eref.append(e)
            fref.append(f)
        self.nconf = len(configs)
        self.natoms = np.array([len(p) for p in pos], dtype=np.float64)
        self.cfg_np = np.concatenate(cfg).astype(np.int32)
        self.positions_np = np.concatenate(pos)
        self.eref_np = np.array(eref)
        self.fref_np = np.concatenate(fref)
        self.ff = ForceField(potentials, np.concatenate(types), np.array(boxes), skin=0.0, cfg=self.cfg_np,
                             tilt=np.array(tilts))
        n = self.ff.n
        real, npr = config().real, config().numpy_real

        def arr(shape, values=None, grad=False):
            a = ti.ndarray(real, shape, needs_grad=grad)
            a.from_numpy(np.zeros(shape, npr) if values is None else np.asarray(values, dtype=npr).reshape(shape))
            return a

        self.x = arr((1, n, 3), self.positions_np, grad=True)
        self.f = arr((1, n, 3), grad=True)
        self.pe = arr((1, n), grad=True)
        self.vir = arr((1, n, 1), grad=True)  # the scalar virial (not fitted)
        self.ec = arr((self.nconf,), grad=True)
        self.loss = arr((1,), grad=True)
        self.fref = arr((n, 3), self.fref_np)
        self.eref = arr((self.nconf,), self.eref_np)
        self.nat = arr((self.nconf,), self.natoms)
        self.sf = arr((n,))
        self.se = arr((self.nconf,))
        self.e0 = arr((1,), grad=True)
        self.e0.grad.fill(0)
        self.ff.build(self.x, 0)
        self.wE, self.wF = float(energy_weight), float(force_weight)
        self.table = dict(self.ff.parameters())
        if energy_offset:
            self.table["e0"] = self.e0
        names = list(self.table) if params is None else list(params)
        for nm in names:
            if nm not in self.table:
                raise ConfigError(f"unknown parameter {nm!r}; the potentials have {list(self.table)}")
        self.params = names
        self.log = set(log)
        for nm in self.log:
            if nm not in names:
                raise ConfigError(f"log transform for {nm!r}, which is not fitted ({names})")
        self.sizes = [int(np.prod(self.table[nm].shape)) for nm in names]
        self.size = sum(self.sizes)
        self.nfev = 0
        self._kern = self.ff.force_launches(self.x, 0, self.f, 0, self.pe, self.vir, 0, 1)

    # ------------------------------------------------------------------ packing

    @property
    def names(self):
        """A label per entry of the parameter vector, e.g. ``epsilon[0,0]``."""
        out = []
        for nm, sz in zip(self.params, self.sizes):
            out += [f"{nm}[{k}]" for k in range(sz)]
        return out

    def x0(self):
        """The current parameter values as one float64 vector."""
        parts = []
        for nm in self.params:
            v = self.table[nm].to_numpy().astype(np.float64).ravel()
            if nm in self.log:
                if np.any(v <= 0):
                    raise ConfigError(f"{nm} = {v} must be > 0 for a log transform")
                v = np.log(v)
            parts.append(v)
        return np.concatenate(parts)

    def unpack(self, x):
        """{parameter: array} from the flat vector ``x`` (shape (size,)); a ConfigError for another shape."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.size,):
            raise ConfigError(f"parameter vector must have shape ({self.size},), got {x.shape}")
        if not np.all(np.isfinite(x)):
            k = int(np.argmax(~np.isfinite(x)))
            raise ConfigError(f"parameter vector entry {k} ({self.names[k]}) is {x[k]}: parameters must be finite "
                              "(an optimiser step that produced it was too large; lower the learning rate)")
        out, off = {}, 0
        for nm, sz in zip(self.params, self.sizes):
            v = x[off:off + sz]
            out[nm] = np.exp(v) if nm in self.log else v.copy()
            off += sz
        return out

    def set(self, x):
        """Write the flat vector ``x`` into the force field's parameter tables."""
        for nm, v in self.unpack(x).items():
            arr = self.table[nm]
            arr.from_numpy(v.reshape(arr.shape).astype(config().numpy_real))

    # ------------------------------------------------------------------ evaluation

    def _weights(self, batch):
        batch = np.arange(self.nconf) if batch is None else np.unique(np.asarray(batch, dtype=int))
        if batch.size == 0 or batch.min() < 0 or batch.max() >= self.nconf:
            raise ConfigError(f"batch must hold configuration indices in [0, {self.nconf})")
        mask = np.zeros(self.nconf)
        mask[batch] = 1.0
        atoms = float(self.natoms[batch].sum())
        sf = (mask[self.cfg_np] * self.wF / (3.0 * atoms))
        se = mask * self.wE / batch.size / self.natoms ** 2
        npr = config().numpy_real
        self.sf.from_numpy(sf.astype(npr))
        self.se.from_numpy(se.astype(npr))

    def _forward(self):
        _zero_all(self.f, self.f.grad, self.pe, self.pe.grad, self.ec, self.ec.grad)
        self.loss.from_numpy(np.zeros(1, config().numpy_real))
        for lc in self._kern:
            lc.forward()
        _config_energy(self.pe, self.ff.nlist.cfg, self.ec)
        _force_loss(self.f, self.fref, self.sf, self.loss)
        _energy_loss(self.ec, self.eref, self.nat, self.e0, self.se, self.loss)
        return float(self.loss.to_numpy()[0])

    def evaluate(self, x, batch=None):
        """(loss, grad) over the configurations in ``batch`` (all by default)."""
        self.set(x)
        self._weights(batch)
        loss = self._forward()
        for arr in self.table.values():
            arr.grad.fill(0)
        self.loss.grad.from_numpy(np.ones(1, config().numpy_real))
        _energy_loss.grad(self.ec, self.eref, self.nat, self.e0, self.se, self.loss)
        _force_loss.grad(self.f, self.fref, self.sf, self.loss)
        _config_energy.grad(self.pe, self.ff.nlist.cfg, self.ec)
        for lc in reversed(self._kern):
            lc.adjoint()
        g = np.concatenate([self.table[nm].grad.to_numpy().astype(np.float64).ravel() for nm in self.params])
        xs = np.asarray(x, dtype=np.float64)
        off = 0
        for nm, sz in zip(self.params, self.sizes):
            if nm in self.log:
                g[off:off + sz] *= np.exp(xs[off:off + sz])
            off += sz
        self.nfev += 1
        if not (np.isfinite(loss) and np.all(np.isfinite(g))):
            raise DiffsimError(f"force matching loss {loss} or its gradient is not finite at {self.unpack(x)}: "
                               "a parameter may have left its physical range (use log= or bounds)")
        return loss, g

    def __call__(self, x):
        return self.evaluate(x)

    def predict(self, x=None):
        """Energies (nconf,) and forces (sum n_c, 3) of the potentials at ``x`` (current values if None)."""
        if x is not None:
            self.set(x)
        self._weights(None)
        self._forward()
        e0 = float(self.e0.to_numpy()[0]) if "e0" in self.table else 0.0
        return (self.ec.to_numpy().astype(np.float64) + self.natoms * e0,
                self.f.to_numpy()[0].astype(np.float64))

    def minibatch(self, batch_size, seed=None):
        """An objective for ``optimizers.minimize`` evaluating a fresh random mini-batch per call."""
        from optimizers import MiniBatchObjective

        fm = self

        class _Batches(MiniBatchObjective):
            names = fm.names

            def __call__(self, x):
                self.last_batch = self.next_batch()
                return fm.evaluate(x, self.last_batch)

        return _Batches(lambda x, c: fm.evaluate(x, [c]), list(range(self.nconf)), batch_size, seed)
