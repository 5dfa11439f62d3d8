"""Neighbour search outside differentiation: cell list + Verlet half list with a skin.

Every kernel here is forward-only and writes integer indices (TAICHI.md rule 2: indices
computed from differentiated positions inside a differentiated kernel give wrong gradients).
The differentiated force kernels only *read* ``nbr``/``nnb``.

The list is a half list (each pair once, at either of its atoms) of all pairs closer than
``cutoff + skin`` at build time, stored padded: ``nbr[i, :nnb[i]]``. It stays valid (holds
every pair closer than ``cutoff``) until some atom has moved more than ``skin / 2`` from its
position at the build (:meth:`NeighborList.needs_rebuild`). Capacity is never exceeded
silently: the build counts every pair and, when an atom has more than ``capacity``, either
grows the arrays and rebuilds (``grow=True``) or raises :class:`ConfigError`.

Two builders:
- cells: one periodic configuration whose box holds >= 3 cells of edge ``cutoff + skin`` per
  axis; O(n), through the column search of :mod:`diffsim.md.cells` (without wrapping x);
- brute force: open boundaries, small boxes, or several configurations stacked in one array
  (force matching); O(sum n_c^2), pairs only within one configuration.
"""

import numpy as np
import taichi as ti

from ..compat import launch_kernel
from ..errors import ConfigError
from ..runtime import config
from .cells import FullNeighborList, copy_positions, max_displacement_sq, mirror_rows, pad_row, serial_loops
from .space import cell_rows, check_cutoff, displacement, min_image_np
from .tricells import TriclinicCells, bins_per_axis

_A1 = ti.types.ndarray(ndim=1)
_A2 = ti.types.ndarray(ndim=2)
_A3 = ti.types.ndarray(ndim=3)


@ti.kernel
def _brute_build(x: _A3, s: ti.i32, cfg: _A1, cstart: _A1, cend: _A1, boxes: _A2, tilted: ti.template(), rl2: ti.f64,
                 nbr: _A2, nnb: _A1) -> ti.i32:
    most = 0
    for i in range(x.shape[1]):
        c = cfg[i]
        cnt = 0
        for j in range(i + 1, cend[c]):
            _d0, _d1, _d2, r2 = displacement(x, s, i, j, boxes, c, tilted)
            if r2 < rl2:
                if cnt < nbr.shape[1]:
                    nbr[i, cnt] = j
                cnt += 1
        nnb[i] = cnt
        ti.atomic_max(most, cnt)
    return most


@ti.kernel
def _mirror(nbr: _A2, nnb: _A1, full: _A2, nfull: _A1) -> ti.i32:
    """The full list of a half list: each pair (i, j) of row i also as (j, i) in row j. Serial,
    so every row's order (and the sums over it) is the same at any thread count; all of it on
    the calling thread (a loop handed to the thread pool costs more than these loops' work)."""
    most = 0
    ti.loop_config(serialize=True)
    for _ in range(1):
        most = mirror_rows(nbr, nnb, full, nfull)
    return most


@ti.kernel
def copy_list(nbr: _A2, nnb: _A1, nbr_out: _A2, nnb_out: _A1):
    """Copy a half list (rows ``nbr`` (n, capacity) of ``nnb`` (n,) entries) into ``nbr_out``,
    ``nnb_out`` (whose capacity may be larger)."""
    for i in range(nnb.shape[0]):
        m = nnb[i]
        nnb_out[i] = m
        for k in range(m):
            nbr_out[i, k] = nbr[i, k]


@ti.kernel
def _keep_full(x: _A3, s: ti.i32, full: _A2, nfull: _A1, kept_full: _A2, kept_nfull: _A1, kept_x: _A2):
    """kept = a full list (rows ``full`` of ``nfull`` entries) and the positions x[s] it came from,
    serially on the calling thread (at 10^3 atoms one launch of microseconds of work, where a
    loop handed to the thread pool costs ~0.1 ms)."""
    ti.loop_config(serialize=True)
    for _ in range(1):
        for i in range(nfull.shape[0]):
            m = nfull[i]
            kept_nfull[i] = m
            for k in range(m):
                kept_full[i, k] = full[i, k]
            for c in ti.static(range(3)):
                kept_x[i, c] = x[s, i, c]


@ti.kernel
def _restore_full(x: _A3, s: ti.i32, check: ti.i32, kept_full: _A2, kept_nfull: _A1, kept_x: _A2, full: _A2,
                  nfull: _A1, ref: _A2) -> ti.i32:
    """The inverse of :func:`_keep_full` into (``full``, ``nfull``), rows padded as
    :func:`~diffsim.md.cells.mirror_rows` pads them; with ``check`` only if x[s] equals the kept
    positions exactly (returns 0 and copies nothing otherwise), and then ref = x[s] too. Serial,
    on the calling thread."""
    same = 1
    ti.loop_config(serialize=True)
    for _ in range(1):
        if check != 0:
            for i in range(kept_nfull.shape[0]):
                for c in ti.static(range(3)):
                    if not x[s, i, c] == kept_x[i, c]:  # NaN compares false: never the same
                        same = 0
        if same != 0:
            for i in range(kept_nfull.shape[0]):
                m = kept_nfull[i]
                nfull[i] = m
                for k in range(m):
                    full[i, k] = kept_full[i, k]
                pad_row(full, i, m)
                if check != 0:
                    for c in ti.static(range(3)):
                        ref[i, c] = x[s, i, c]
    return same


def check_positions(x, slot, n):
    """ConfigError unless ``x`` is a (slots, n, 3) ndarray and ``slot`` one of its slots (a kernel
    reading past the array would crash the interpreter)."""
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) != 3 or shape[1:] != (n, 3):
        raise ConfigError(f"positions must be a (slots, {n}, 3) ti.ndarray, got shape {shape}")
    if isinstance(slot, bool) or not isinstance(slot, (int, np.integer)) or not 0 <= slot < shape[0]:
        raise ConfigError(f"slot={slot!r} must be an integer in [0, {shape[0]}) for positions of shape {shape}")


class NeighborList:
    """Verlet half list of pairs within ``cutoff + skin`` (lengths in the model's unit).

    n: atoms; boxes: (nconf, 3) box edges per configuration (0 = open axis), or (3,);
    tilts: optional (nconf, 3) or (3,) triclinic tilts (xy, xz, yz) (length; LAMMPS's cell, see
    :mod:`diffsim.md.space`), default zero. A tilted cell must be periodic on every axis; its
    "cells" method bins fractional coordinates (:mod:`diffsim.md.tricells`);
    cfg: (n,) configuration of each atom (default all 0; atoms of one configuration must be
    contiguous); capacity: neighbours per atom to allocate (default: estimated from the
    density); grow: enlarge and rebuild on overflow (else raise ConfigError).
    ``method``: "auto", "cells" or "brute".

    After :meth:`build`: ``nbr`` (n, capacity) int32 and ``nnb`` (n,) int32 ndarrays,
    ``builds`` counts builds, ``last_build_seconds`` is not tracked (use the benchmark).
    """

    def __init__(self, n, cutoff, skin=0.3, boxes=None, cfg=None, capacity=None, grow=True, method="auto",
                 tilts=None):
        if cutoff <= 0 or skin < 0:
            raise ConfigError(f"neighbour list needs cutoff > 0 and skin >= 0, got cutoff={cutoff}, skin={skin}")
        self.n, self.cutoff, self.skin = int(n), float(cutoff), float(skin)
        if cfg is None and tilts is None and np.shape(boxes) == (3, 3):  # a cell (Model.cell), as ForceField reads it
            from .model import parse_cell

            boxes, tilts = parse_cell(boxes, None)
        boxes = np.zeros((1, 3)) if boxes is None else np.asarray(boxes, dtype=np.float64)
        if boxes.ndim == 1:
            boxes = boxes[None]
        if boxes.ndim != 2 or boxes.shape[1] != 3:
            raise ConfigError(f"boxes must have shape (nconf, 3), got {boxes.shape}")
        cfg = np.zeros(self.n, dtype=np.int32) if cfg is None else np.asarray(cfg, dtype=np.int32)
        if cfg.shape != (self.n,):
            raise ConfigError(f"cfg must have shape ({self.n},), got {cfg.shape}")
        if self.n > 1 and np.any(np.diff(cfg) < 0) or cfg.min() < 0 or cfg.max() >= len(boxes):
            raise ConfigError("atoms of one configuration must be contiguous, configurations numbered "
                              f"0..{len(boxes) - 1} in order")
        tilts = np.zeros_like(boxes) if tilts is None else np.asarray(tilts, dtype=np.float64)
        if tilts.ndim == 1:
            tilts = tilts[None]
        if tilts.shape != boxes.shape or not np.all(np.isfinite(tilts)):
            raise ConfigError(f"tilts must be finite with the shape of boxes {boxes.shape}, got {tilts.shape}")
        self.triclinic = bool(np.any(tilts != 0))
        for c, box in enumerate(boxes):
            if np.any(tilts[c] != 0) and not np.all(box > 0):
                raise ConfigError(f"configuration {c}: a tilted (triclinic) cell must be periodic on every axis, got "
                                  f"lengths {box.tolist()} with tilts {tilts[c].tolist()}")
            small = (box > 0) & (box < 2 * self.cutoff)
            if np.any(tilts[c] != 0):
                # the fold is exact within min(l)/2 only (orthorhombic: per component, at any
                # distance), and a pair the list misses beyond it may come within the cutoff
                # before the next build: the whole list radius must fit
                check_cutoff(self.cutoff, box, tilts[c], f"configuration {c}", skin=self.skin)
            if np.any(small):
                raise ConfigError(
                    f"configuration {c}: box edge {box[small].min():.6g} is smaller than twice the cutoff "
                    f"{self.cutoff:.6g}: the minimum image would miss interactions; use a larger box "
                    f"(replicate the cell) or a shorter cutoff")
        self.boxes_np, self.tilts_np, self.cfg_np = boxes, tilts, cfg
        self.rl = self.cutoff + self.skin
        real = config().real
        rows = cell_rows(boxes, tilts)  # (nconf, 6): lx, ly, lz, xy, xz, yz
        self.boxes = ti.ndarray(real, rows.shape)
        self.boxes.from_numpy(rows.astype(config().numpy_real))
        self.cfg = ti.ndarray(ti.i32, self.n)
        self.cfg.from_numpy(cfg)
        starts = np.searchsorted(cfg, np.arange(len(boxes)), side="left").astype(np.int32)
        ends = np.searchsorted(cfg, np.arange(len(boxes)), side="right").astype(np.int32)
        self.cstart = ti.ndarray(ti.i32, len(boxes))
        self.cstart.from_numpy(starts)
        self.cend = ti.ndarray(ti.i32, len(boxes))
        self.cend.from_numpy(ends)
        self.ref = ti.ndarray(real, (self.n, 3))
        nc = np.floor(boxes[0] / self.rl).astype(int) if len(boxes) == 1 else np.zeros(3, int)
        if self.triclinic and len(boxes) == 1:
            nc = bins_per_axis(boxes[0], tilts[0], self.rl)  # fractional bins (diffsim.md.tricells)
        cells_ok = len(boxes) == 1 and np.all(boxes[0] > 0) and np.all(nc >= 3)
        if method == "auto":
            method = "cells" if cells_ok else "brute"
        if method == "cells" and not cells_ok and self.triclinic:
            raise ConfigError(f"the triclinic cell list needs one cell with >= 3 bins of {self.rl:.4g} across each "
                              f"perpendicular width (bins {nc.tolist()}); use method='brute'")
        if method == "cells" and not cells_ok:
            raise ConfigError(f"cell list needs one periodic box with >= 3 cells of {self.rl:.4g} per axis "
                              f"(box {boxes[0]}); use method='brute'")
        if method not in ("cells", "brute"):
            raise ConfigError(f"method must be 'auto', 'cells' or 'brute', got {method!r}")
        self.method = method
        self._tri = None
        if method == "cells" and self.triclinic:
            self._tri = TriclinicCells(self.n, boxes[0], tilts[0], self.rl)
        elif method == "cells":
            self._columns = FullNeighborList(self.n, self.cutoff, self.skin, boxes[0], method="half")
        self.grow = grow
        if capacity is None:
            vol = np.prod(np.where(boxes > 0, boxes, 1.0), axis=1)
            counts = np.bincount(cfg, minlength=len(boxes))
            dens = float(np.max(counts / vol)) if np.all(boxes > 0) else 1.0
            est = 1.3 * dens * 4.0 / 3.0 * np.pi * self.rl ** 3 + 16
            capacity = int(min(max(est, 8), max(int(counts.max()) - 1, 1)))
        if capacity < 1:
            raise ConfigError(f"capacity must be >= 1, got {capacity}")
        self._alloc(int(capacity))
        self.builds = 0
        self.grown = 0
        self.max_count = 0
        self.keep_full = False
        self.half_current = True  # False after restore_kept: nbr, nnb are not the current list's
        self._full = None
        self._full_of = -1
        self._full_made = False

    def full_list(self):
        """(nbr, nnb) of the full list (each pair at both atoms, rows in a fixed order) of the last
        build, mirrored from the half list once per build (set ``keep_full`` to use it)."""
        if self._full_of != self.builds:
            if self._full is None:  # the half list's capacity is sized for a full sphere of neighbours
                self._full = (ti.ndarray(ti.i32, (self.n, self.capacity)), ti.ndarray(ti.i32, self.n))
            most = int(_mirror(self.nbr, self.nnb, *self._full))
            if most > self._full[0].shape[1]:
                self._full = (ti.ndarray(ti.i32, (self.n, int(most * 1.25) + 8)), self._full[1])
                _mirror(self.nbr, self.nnb, *self._full)
            self._full_of = self.builds
        return self._full

    def restore(self, nbr, nnb):
        """Make the list the half list (``nbr``, ``nnb``) kept from an earlier build of the same
        capacity (:func:`copy_list`); its full twin is mirrored again at the next :meth:`full_list`."""
        copy_list(nbr, nnb, self.nbr, self.nnb)
        self._full_of = -1
        self.half_current = True

    def kept_shape(self):
        """(n, width) of the full twin (:meth:`full_list`, made if needed): the rows :meth:`keep` copies."""
        return tuple(self.full_list()[0].shape)

    def keep(self, x, slot, kept):
        """Copy the full twin of the last build (:meth:`full_list`) and the positions ``x[slot]``
        it came from into ``kept`` = (rows (n, width) int32 with width :meth:`kept_shape`'s,
        row lengths (n,) int32, positions (n, 3)), in one launch."""
        full, nfull = self.full_list()
        launch_kernel(_keep_full, x, slot, full, nfull, *kept)

    def restore_kept(self, kept, x, slot, check) -> bool:
        """Make the full twin the one :meth:`keep` copied into ``kept``, in one launch; with
        ``check`` only if ``x[slot]`` equals the kept positions exactly, and these then become
        the reference positions (:meth:`max_displacement`). Returns whether it was restored
        (False also where ``kept`` is wider than the full twin now). The half list (``nbr``,
        ``nnb``) is then out of date (``half_current`` False) until the next :meth:`build` or
        :meth:`restore`: for kernels that read only the full list (the tape's fused steps)."""
        full = self._full
        if full is None or kept[0].shape[1] > full[0].shape[1]:
            return False
        if not int(launch_kernel(_restore_full, x, slot, int(bool(check)), *kept, *full, self.ref)):
            return False
        self._full_of = self.builds
        self.half_current = False
        return True

    def _alloc(self, capacity):
        self.capacity = capacity
        self.nbr = ti.ndarray(ti.i32, (self.n, capacity))
        self.nnb = ti.ndarray(ti.i32, self.n)

    def _build_once(self, x, slot) -> int:
        rl2 = self.rl * self.rl
        if self.keep_full and self.method == "cells" and self._tri is None and config().arch not in ("cuda", "vulkan", "metal"):
            # the half list, its full twin and the reference positions in one launch (a dozen
            # launches otherwise: most of a build's time at 10^3 atoms)
            if self._full is None:
                self._full = (ti.ndarray(ti.i32, (self.n, self.capacity)), ti.ndarray(ti.i32, self.n))
            most, most_full = self._columns.tape_lists(x, slot, self.ref, self.nbr, self.nnb, *self._full)
            self._full_made = most <= self.capacity and most_full <= self._full[0].shape[1]
            return most
        if self.method == "brute":
            return int(_brute_build(x, slot, self.cfg, self.cstart, self.cend, self.boxes, self.triclinic, rl2, self.nbr, self.nnb))
        if self._tri is not None:
            return self._tri.half_list(x, slot, self.boxes, rl2, self.nbr, self.nnb)
        return self._columns.half_list(x, slot, self.nbr, self.nnb)

    def build(self, x, slot: int = 0):
        """Build from positions ``x[slot]`` (x: ndarray (slots, n, 3)); remembers them as reference."""
        check_positions(x, slot, self.n)
        self._full_made = False
        self.half_current = True
        most = self._build_once(x, slot)
        if most > self.capacity:
            if not self.grow:
                raise ConfigError(
                    f"neighbour list overflow: an atom has {most} neighbours within {self.rl:.4g} but capacity "
                    f"is {self.capacity}; pass capacity >= {most} or grow=True (is the system collapsing?)")
            self._alloc(int(most * 1.25) + 8)
            self.grown += 1
            most = self._build_once(x, slot)
        self.max_count = most
        made = self._full_made
        if not made:  # else the one-launch build has copied them
            copy_positions(x, slot, self.ref, serial_loops(x.shape[1]))
        self.builds += 1
        if made:  # its full twin too
            self._full_of = self.builds

    def max_displacement(self, x, slot: int) -> float:
        """Largest distance an atom moved since the last build (length)."""
        check_positions(x, slot, self.n)
        return float(np.sqrt(max_displacement_sq(x, slot, self.ref)))

    def needs_rebuild(self, x, slot: int) -> bool:
        """True when some atom of ``x[slot]`` moved more than skin/2 since the last build."""
        return 2.0 * self.max_displacement(x, slot) > self.skin

    def pairs(self) -> np.ndarray:
        """The listed pairs (m, 2) int, i < j, sorted (for tests and inspection)."""
        lists = (self.nbr, self.nnb) if self.half_current else self.full_list()  # (see restore_kept)
        nbr, nnb = (a.to_numpy() for a in lists)
        out = {(min(i, int(j)), max(i, int(j))) for i in range(self.n) for j in nbr[i, :nnb[i]]}
        return np.array(sorted(out), dtype=np.int64).reshape(-1, 2)


def brute_force_pairs(positions, box, cutoff, cfg=None, tilt=None) -> np.ndarray:
    """All pairs (i < j, same configuration) with minimum-image distance < cutoff (NumPy reference);
    ``box``: (3,) edges (0: open), a lower-triangular (3, 3) cell (``Model.cell``; without ``cfg``,
    as :class:`~diffsim.md.forcefield.ForceField` reads it), or (nconf, 3) with ``cfg``; ``tilt``:
    optional triclinic tilts (xy, xz, yz), (3,) or (nconf, 3)."""
    x = np.asarray(positions, dtype=np.float64)
    n = len(x)
    if cfg is None and np.shape(box) == (3, 3):  # one configuration's cell, not three boxes
        from .model import parse_cell

        box, tilt = parse_cell(box, tilt)
    cfg = np.zeros(n, int) if cfg is None else np.asarray(cfg)
    boxes = np.atleast_2d(np.asarray(box, dtype=np.float64))
    tilts = np.zeros_like(boxes) if tilt is None else np.broadcast_to(np.asarray(tilt, dtype=np.float64), boxes.shape)
    out = []
    for i in range(n - 1):
        d = min_image_np(x[i] - x[i + 1:], boxes[cfg[i]], tilts[cfg[i]])
        r2 = np.sum(d * d, axis=1)
        js = np.nonzero((r2 < cutoff * cutoff) & (cfg[i + 1:] == cfg[i]))[0] + i + 1
        out.extend((i, int(j)) for j in js)
    return np.array(out, dtype=np.int64).reshape(-1, 2)
