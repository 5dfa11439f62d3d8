"""Slot storage the tape owns: time-indexed ndarrays and the few kernels that move slots.

Every state field is stored as one ndarray of shape (slots, *shape) whose first index is a
time slot. Kernels take ndarray arguments, so they compile once per (dtype, ndim), whatever
the sizes (Taichi recompiles a kernel for every new field shape, not for ndarrays).
"""

import math
import os

import numpy as np
import taichi as ti

from .compat import launch_kernel
from .errors import ConfigError
from .runtime import config

# Kernels exist for 1 or 2 axes per slot, i.e. ndarrays of ndim 2 or 3.
_ANY2 = ti.types.ndarray(ndim=2)
_ANY3 = ti.types.ndarray(ndim=3)
_ANYN = ti.types.ndarray()  # ndim 2 or 3, compiled per ndim


@ti.func
def _implausible(x, limit):
    """True for NaN, +-Inf and |x| > limit (limit = inf: the finiteness test alone)."""
    ax = ti.abs(ti.cast(x, ti.f64))
    return not (ax < ti.math.inf and ax <= limit)  # every comparison with NaN is false


def _slot_kernels(serial: bool) -> dict:
    """The slot kernels for ndarrays of ndim 2 and 3: {ndim: (copy, zero, first_bad, add, write,
    read)}. ``serial``: one thread, no wake-up of the thread pool, which costs a parallel loop
    ~60 us a launch on CPU (TAICHI.md, "launch cost of parallel loops"); used for the small
    arrays most slots are."""

    @ti.kernel
    def copy2(src: _ANY2, i: ti.i32, dst: _ANY2, j: ti.i32):
        ti.loop_config(serialize=serial)
        for k in range(src.shape[1]):
            dst[j, k] = src[i, k]

    @ti.kernel
    def copy3(src: _ANY3, i: ti.i32, dst: _ANY3, j: ti.i32):
        ti.loop_config(serialize=serial)
        for k, c in ti.ndrange(src.shape[1], src.shape[2]):
            dst[j, k, c] = src[i, k, c]

    @ti.kernel
    def zero2(a: _ANY2, s0: ti.i32, s1: ti.i32):
        ti.loop_config(serialize=serial)
        for s, k in ti.ndrange((s0, s1), a.shape[1]):
            a[s, k] = 0

    @ti.kernel
    def zero3(a: _ANY3, s0: ti.i32, s1: ti.i32):
        ti.loop_config(serialize=serial)
        for s, k, c in ti.ndrange((s0, s1), a.shape[1], a.shape[2]):
            a[s, k, c] = 0

    @ti.kernel
    def first_bad2(a: _ANY2, s0: ti.i32, s1: ti.i32, limit: ti.f64) -> ti.i32:
        first = s1
        ti.loop_config(serialize=serial)
        for s, k in ti.ndrange((s0, s1), a.shape[1]):
            if _implausible(a[s, k], limit):
                ti.atomic_min(first, s)
        return first

    @ti.kernel
    def first_bad3(a: _ANY3, s0: ti.i32, s1: ti.i32, limit: ti.f64) -> ti.i32:
        first = s1
        ti.loop_config(serialize=serial)
        for s, k, c in ti.ndrange((s0, s1), a.shape[1], a.shape[2]):
            if _implausible(a[s, k, c], limit):
                ti.atomic_min(first, s)
        return first

    @ti.kernel
    def add2(src: _ANY2, i: ti.i32, dst: _ANY2, j: ti.i32, count: ti.i32):
        ti.loop_config(serialize=serial)
        for s, k in ti.ndrange(count, src.shape[1]):
            dst[j + s, k] += src[i + s, k]

    @ti.kernel
    def add3(src: _ANY3, i: ti.i32, dst: _ANY3, j: ti.i32, count: ti.i32):
        ti.loop_config(serialize=serial)
        for s, k, c in ti.ndrange(count, src.shape[1], src.shape[2]):
            dst[j + s, k, c] += src[i + s, k, c]

    @ti.kernel
    def write2(values: ti.types.ndarray(ndim=1), dst: _ANY2, j: ti.i32):
        ti.loop_config(serialize=serial)
        for k in range(dst.shape[1]):
            dst[j, k] = values[k]

    @ti.kernel
    def write3(values: ti.types.ndarray(ndim=2), dst: _ANY3, j: ti.i32):
        ti.loop_config(serialize=serial)
        for k, c in ti.ndrange(dst.shape[1], dst.shape[2]):
            dst[j, k, c] = values[k, c]

    @ti.kernel
    def read2(src: _ANY2, i: ti.i32, out: ti.types.ndarray(ndim=1)):
        ti.loop_config(serialize=serial)
        for k in range(src.shape[1]):
            out[k] = src[i, k]

    @ti.kernel
    def read3(src: _ANY3, i: ti.i32, out: ti.types.ndarray(ndim=2)):
        ti.loop_config(serialize=serial)
        for k, c in ti.ndrange(src.shape[1], src.shape[2]):
            out[k, c] = src[i, k, c]

    return {2: (copy2, zero2, first_bad2, add2, write2, read2),
            3: (copy3, zero3, first_bad3, add3, write3, read3)}


def _by_slot_kernels(serial: bool) -> tuple:
    """CPU kernels over several whole slots, (zero, first_bad, add, carry, zero_pair,
    first_bad_pair; the last two on two arrays at once, one launch instead of two), for ndarrays
    of ndim 2 and 3: the parallel loop runs over the slots and each slot's entries in plain inner loops.
    Taichi's ``ndrange`` over (slot, atom, component) computes three indices per entry by
    division; on this CPU zeroing 20 slots of 1,000 x 3 float64 took ~480 us that way and ~130 us
    this way. On a GPU the flat ``ndrange`` loops above are the right shape (a thread per entry),
    so these are CPU-only. ``serial`` as in :func:`_slot_kernels`."""

    @ti.kernel
    def zero(a: _ANYN, s0: ti.i32, s1: ti.i32):
        ti.loop_config(serialize=serial)
        for s in range(s0, s1):
            _zero_slot(a, s)

    @ti.kernel
    def first_bad(a: _ANYN, s0: ti.i32, s1: ti.i32, limit: ti.f64) -> ti.i32:
        first = s1
        ti.loop_config(serialize=serial)
        for s in range(s0, s1):
            if _bad_slot(a, s, limit):
                ti.atomic_min(first, s)
        return first

    @ti.kernel
    def add(src: _ANYN, i: ti.i32, dst: _ANYN, j: ti.i32, count: ti.i32):
        ti.loop_config(serialize=serial)
        for s in range(count):
            if ti.static(len(src.shape) == 2):
                for k in range(src.shape[1]):
                    dst[j + s, k] += src[i + s, k]
            else:
                for k in range(src.shape[1]):
                    for c in range(src.shape[2]):
                        dst[j + s, k, c] += src[i + s, k, c]

    @ti.kernel
    def carry(a: _ANYN, length: ti.i32):
        ti.loop_config(serialize=serial)
        for s in range(length):  # slot 0's entries are read and cleared by the same iteration
            if ti.static(len(a.shape) == 2):
                for k in range(a.shape[1]):
                    if s == 0:
                        a[length, k] = a[0, k]
                    a[s, k] = 0
            else:
                for k in range(a.shape[1]):
                    for c in range(a.shape[2]):
                        if s == 0:
                            a[length, k, c] = a[0, k, c]
                        a[s, k, c] = 0

    @ti.kernel
    def zero_pair(a: _ANYN, b: _ANYN, s0: ti.i32, s1: ti.i32):
        ti.loop_config(serialize=serial)
        for s in range(s0, s1):
            _zero_slot(a, s)
            _zero_slot(b, s)

    @ti.kernel
    def first_bad_pair(a: _ANYN, limit_a: ti.f64, b: _ANYN, limit_b: ti.f64, s0: ti.i32, s1: ti.i32) -> ti.i32:
        first = s1
        ti.loop_config(serialize=serial)
        for s in range(s0, s1):
            if _bad_slot(a, s, limit_a) | _bad_slot(b, s, limit_b):
                ti.atomic_min(first, s)
        return first

    return zero, first_bad, add, carry, zero_pair, first_bad_pair


@ti.func
def _zero_slot(a: ti.template(), s):
    if ti.static(len(a.shape) == 2):
        for k in range(a.shape[1]):
            a[s, k] = 0
    else:
        for k in range(a.shape[1]):
            for c in range(a.shape[2]):
                a[s, k, c] = 0


@ti.func
def _bad_slot(a: ti.template(), s, limit):
    bad = 0
    if ti.static(len(a.shape) == 2):
        for k in range(a.shape[1]):
            bad |= _implausible(a[s, k], limit)
    else:
        for k in range(a.shape[1]):
            for c in range(a.shape[2]):
                bad |= _implausible(a[s, k, c], limit)
    return bad


@ti.kernel
def _clear_serial(a: ti.types.ndarray()):
    ti.loop_config(serialize=True)
    for index in ti.grouped(ti.ndrange(*a.shape)):  # ti.grouped(a) ignores serialize
        a[index] = 0


def _whole_copy(serial: bool):
    """out[...] = a[...] for two arrays of one shape, ndarrays or NumPy arrays (a kernel reads and
    writes NumPy arrays in place): faster than Taichi's own from_numpy/to_numpy here (a (2048, 16,
    2) array: 1.6-3.1 ms against 0.25-0.45 ms, under load)."""

    @ti.kernel
    def copy(a: ti.types.ndarray(), out: ti.types.ndarray()):
        # a loop over the first axis with plain loops inside: a flat ndrange over all axes computes
        # every index by division (a (2048, 16, 2) array: ~1.3 ms against ~0.25 ms)
        if ti.static(len(a.shape) > 3):
            ti.loop_config(serialize=serial)
            for index in ti.grouped(ti.ndrange(*a.shape)):
                out[index] = a[index]
        else:
            ti.loop_config(serialize=serial)
            for i in range(a.shape[0]):
                if ti.static(len(a.shape) == 1):
                    out[i] = a[i]
                elif ti.static(len(a.shape) == 2):
                    for j in range(a.shape[1]):
                        out[i, j] = a[i, j]
                else:
                    for j in range(a.shape[1]):
                        for k in range(a.shape[2]):
                            out[i, j, k] = a[i, j, k]

    return copy


_WHOLE_COPY = {False: _whole_copy(serial=False), True: _whole_copy(serial=True)}


_OPS = {False: _slot_kernels(serial=False), True: _slot_kernels(serial=True)}
_BY_SLOT = {False: _by_slot_kernels(serial=False), True: _by_slot_kernels(serial=True)}
SERIAL_BELOW = 1 << 15  # elements: below, one thread beats waking the pool (2 cores: ~60 us)


def _ops(a, elements: int):
    ndim = len(a.shape)
    if ndim not in (2, 3):
        raise ValueError(f"slot storage supports 1 or 2 axes per slot, got shape {a.shape}")
    return _OPS[elements < SERIAL_BELOW][ndim]


_FLAT_OP = {"copy": 0, "zero": 1, "first_bad": 2, "add": 3}
_BY_SLOT_OP = {"zero": 0, "first_bad": 1, "add": 2, "carry": 3, "zero_pair": 4, "first_bad_pair": 5}


def _slot_kernel(op: str, a, count: int):
    """The kernel doing ``op`` over ``count`` slots of ``a``: over whole slots on the CPU when at
    least two are touched (:func:`_by_slot_kernels`), else the flat loops (None for "carry",
    which has no flat kernel)."""
    if count > 1 and config().arch == "cpu" and len(a.shape) in (2, 3):
        return _BY_SLOT[count * _per_slot(a) < SERIAL_BELOW][_BY_SLOT_OP[op]]
    return None if op == "carry" else _ops(a, count * _per_slot(a))[_FLAT_OP[op]]


def _per_slot(a) -> int:
    return math.prod(a.shape[1:])


def copy_slot(src, i: int, dst, j: int) -> None:
    """dst[j] = src[i] (ndarrays or their .grad, same per-slot shape)."""
    launch_kernel(_slot_kernel("copy", src, 1), src, i, dst, j)


def zero_slots(a, s0: int, s1: int) -> None:
    """a[s0:s1] = 0."""
    if s1 > s0:
        launch_kernel(_slot_kernel("zero", a, s1 - s0), a, s0, s1)


def _pair_kernel(op: str, a, b, count: int):
    """The kernel doing ``op`` ("zero_pair", "first_bad_pair") on ``count`` slots of two arrays at
    once, or None where the flat per-array kernels serve (one slot, not the CPU, 1 or 2 axes)."""
    if count > 1 and config().arch == "cpu" and len(a.shape) in (2, 3) and len(b.shape) in (2, 3):
        return _BY_SLOT[count * (_per_slot(a) + _per_slot(b)) < SERIAL_BELOW][_BY_SLOT_OP[op]]
    return None


def zero_slots_of(arrays, s0: int, s1: int) -> None:
    """a[s0:s1] = 0 for every ndarray in ``arrays``: two arrays a launch on the CPU (a launch
    costs ~15-20 us; zeroing itself is exact, so the result equals :func:`zero_slots` on each)."""
    arrays = list(arrays)
    while arrays:
        a = arrays.pop(0)
        kernel = _pair_kernel("zero_pair", a, arrays[0], s1 - s0) if arrays else None
        if kernel is None:
            zero_slots(a, s0, s1)
        else:
            launch_kernel(kernel, a, arrays.pop(0), s0, s1)


def first_bad_slot_of(arrays, s0: int, s1: int) -> int | None:
    """The smallest slot in [s0, s1) where any of ``arrays``, pairs (ndarray, limit) as for
    :func:`first_bad_slot`, holds a NaN, an Inf or an entry beyond its limit; or None. Two arrays
    a launch on the CPU."""
    if s1 <= s0:
        return None
    arrays, first = list(arrays), None
    while arrays:
        a, la = arrays.pop(0)
        kernel = _pair_kernel("first_bad_pair", a, arrays[0][0], s1 - s0) if arrays else None
        if kernel is None:
            slot = first_bad_slot(a, s0, s1, la)
        else:
            b, lb = arrays.pop(0)
            slot = launch_kernel(kernel, a, float(la), b, float(lb), s0, s1)
            slot = None if slot >= s1 else int(slot)
        if slot is not None and (first is None or slot < first):
            first = slot
    return first


def carry_slot(a, length: int) -> None:
    """a[length] = a[0], then a[0:length] = 0, in one launch: hands a unit's first adjoint on as
    the last of the unit before it."""
    carry = _slot_kernel("carry", a, length)
    if carry is None:
        copy_slot(a, 0, a, length)
        zero_slots(a, 0, length)
    else:
        launch_kernel(carry, a, length)


def first_bad_slot(a, s0: int, s1: int, limit: float = math.inf) -> int | None:
    """Smallest slot in [s0, s1) holding a NaN, an Inf or an entry with |value| > ``limit``
    (a state's plausible magnitude; inf checks finiteness only), or None. One launch."""
    if s1 <= s0:
        return None
    first = launch_kernel(_slot_kernel("first_bad", a, s1 - s0), a, s0, s1, float(limit))
    return None if first >= s1 else int(first)


def add_slots(src, i: int, dst, j: int, count: int = 1) -> None:
    """dst[j + s] += src[i + s] for s < count (same per-slot shape): adds adjoint seeds into
    slots' gradients, one launch."""
    if count > 0:
        launch_kernel(_slot_kernel("add", src, count), src, i, dst, j, count)


def write_slot(values: np.ndarray, dst, j: int) -> None:
    """dst[j] = values, a NumPy array of the per-slot shape in the storage's precision
    (``config().numpy_real``): one launch, no intermediate ndarray."""
    launch_kernel(_ops(dst, _per_slot(dst))[4], np.ascontiguousarray(values, dtype=config().numpy_real), dst, j)


def read_slot(src, i: int) -> np.ndarray:
    """src[i] as a new float64 NumPy array: one launch, no intermediate ndarray."""
    out = np.empty(tuple(src.shape[1:]), dtype=config().numpy_real)
    launch_kernel(_ops(src, _per_slot(src))[5], src, i, out)
    return out.astype(np.float64, copy=False)


def clear(a) -> None:
    """a[...] = 0 for a whole real ndarray of any shape (e.g. a parameter's gradient): one serial
    launch when it is small, else Taichi's own parallel ``fill``."""
    if isinstance(a, ti.ScalarNdarray) and math.prod(a.shape) < SERIAL_BELOW:
        launch_kernel(_clear_serial, a)
    else:
        a.fill(0)


def to_numpy(a) -> np.ndarray:
    """A whole real ndarray as a float64 NumPy array, in one launch."""
    if not isinstance(a, ti.ScalarNdarray):
        return a.to_numpy().astype(np.float64, copy=False)
    out = np.empty(tuple(a.shape), dtype=config().numpy_real)
    launch_kernel(_WHOLE_COPY[math.prod(a.shape) < SERIAL_BELOW], a, out)
    return out.astype(np.float64, copy=False)


def from_numpy(values: np.ndarray, a) -> None:
    """a[...] = values, a NumPy array of a's shape in the storage's precision, in one launch."""
    if not isinstance(a, ti.ScalarNdarray):
        a.from_numpy(values)
        return
    values = np.ascontiguousarray(values, dtype=config().numpy_real)
    if values.shape != tuple(a.shape):
        raise ValueError(f"an array of shape {values.shape} cannot fill storage of shape {tuple(a.shape)}")
    launch_kernel(_WHOLE_COPY[values.size < SERIAL_BELOW], values, a)


def slots(shape: tuple, count: int, needs_grad: bool):
    """A real-valued ndarray of ``count`` slots of ``shape`` (1 or 2 axes), zero-filled."""
    arr = ti.ndarray(config().real, (count, *shape), needs_grad=needs_grad)
    zero_slots(arr, 0, count)
    if needs_grad:
        zero_slots(arr.grad, 0, count)
    return arr


INDEX_LIMIT = 2**31 - 1  # Taichi 1.7.4 counts an ndarray's elements in int32
MEMORY_SHARE = 0.8  # the largest share of the available host memory a rollout's storage may take


def available_memory() -> int | None:
    """Bytes of host memory the OS says are available (Linux MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_AVPHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def check_plan(plan, hint: str, available: int | None = None) -> int:
    """Refuse, before anything is allocated, a set of slot arrays that Taichi cannot index or
    that does not fit in memory (more than ``MEMORY_SHARE`` of what is available). ``plan``:
    (what, shape, with_grad) per array; returns the total bytes. Raises ConfigError naming the array or the total, the bytes and ``hint`` (what to do).

    An ndarray of 2^31 elements or more is allocated wrongly by Taichi 1.7.4 (int32 element
    counts: a 1.8e19-byte request, or 32 bytes and a segfault later), so it is refused here.
    The memory test applies on the CPU, where host memory is the limit; on a GPU Taichi's
    device memory pool reports its own out-of-memory error."""
    item = 8 if config().precision == "f64" else 4
    total, parts = 0, []
    for what, shape, with_grad in plan:
        count = math.prod(int(n) for n in shape)
        if count > INDEX_LIMIT:
            raise ConfigError(f"{what} would be one array of {count:,} elements (shape {tuple(shape)}), more than "
                              f"the {INDEX_LIMIT:,} that Taichi 1.7.4 can index; {hint}")
        size = count * item * (2 if with_grad else 1)
        total += size
        parts.append((size, what))
    if config().arch != "cpu":
        return total
    available = available_memory() if available is None else available
    if available is not None and total > MEMORY_SHARE * available:
        parts.sort(reverse=True)
        biggest = ", ".join(f"{what}: {size / 1e9:.3g} GB" for size, what in parts[:3])
        raise ConfigError(f"this rollout needs {total / 1e9:.3g} GB of storage ({biggest}) but only "
                          f"{available / 1e9:.3g} GB of memory is available (the tape takes at most "
                          f"{MEMORY_SHARE:.0%} of it, leaving the rest to the process); {hint}")
    return total


def nbytes(arr, with_grad: bool | None = None) -> int:
    """Bytes held by an ndarray (and its gradient, when it has one)."""
    n = int(np.prod(arr.shape)) * (8 if config().precision == "f64" else 4)
    has_grad = getattr(arr, "grad", None) is not None if with_grad is None else with_grad
    return n * (2 if has_grad else 1)
