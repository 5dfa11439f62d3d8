"""The tape's slot kernels against NumPy: every path (small arrays on one thread, large ones in
parallel, the CPU's loops over whole slots and the flat loops of one slot) and both slot ranks."""

import numpy as np
import pytest
import taichi as ti

from diffsim import storage
from diffsim.runtime import config


def _array(rng, shape):
    a = ti.ndarray(config().real, shape)
    values = rng.standard_normal(shape)
    a.from_numpy(values)
    return a, values


# per-slot shapes below and above storage.SERIAL_BELOW elements over 3 slots, ranks 1 and 2
SHAPES = [(7,), (5, 3), (20_000,), (12_000, 3)]


@pytest.mark.parametrize("shape", SHAPES)
def test_zero_add_and_carry_slots_equal_numpy(shape):
    rng = np.random.default_rng(len(shape) * 100 + shape[0])
    slots = 6
    a, ref = _array(rng, (slots, *shape))
    storage.zero_slots(a, 1, 4)
    ref[1:4] = 0
    storage.zero_slots(a, 5, 6)  # one slot
    ref[5] = 0
    np.testing.assert_array_equal(a.to_numpy(), ref)

    src, src_ref = _array(rng, (slots, *shape))
    storage.add_slots(src, 2, a, 0, 3)
    ref[0:3] += src_ref[2:5]
    storage.add_slots(src, 0, a, 5, 1)
    ref[5] += src_ref[0]
    np.testing.assert_array_equal(a.to_numpy(), ref)

    for length in (4, 1):  # several slots, and the one-slot fallback
        storage.carry_slot(a, length)
        first = ref[0].copy()
        ref[:length] = 0
        ref[length] = first
        np.testing.assert_array_equal(a.to_numpy(), ref)


@pytest.mark.parametrize("shape", SHAPES)
def test_first_bad_slot_finds_the_earliest_nan_inf_or_implausible_entry(shape):
    rng = np.random.default_rng(7)
    a, values = _array(rng, (8, *shape))
    assert storage.first_bad_slot(a, 0, 8) is None
    assert storage.first_bad_slot(a, 0, 8, limit=1e-9) == 0
    index = tuple(n - 1 for n in shape)
    for slot, bad in ((6, np.inf), (3, np.nan), (5, -1e30)):
        values[(slot, *index)] = bad
    a.from_numpy(values)
    assert storage.first_bad_slot(a, 0, 8) == 3
    assert storage.first_bad_slot(a, 4, 8) == 6  # -1e30 is finite
    assert storage.first_bad_slot(a, 4, 8, limit=1e6) == 5
    assert storage.first_bad_slot(a, 4, 5) is None
    assert storage.first_bad_slot(a, 6, 7) == 6  # one slot


@pytest.mark.parametrize("shape", [(9,), (7, 2), (500, 1, 5), (20_000, 3), (2048, 16, 2), (3, 2, 4, 2)])
def test_from_numpy_and_to_numpy_round_trip(shape):
    rng = np.random.default_rng(3)
    values = rng.standard_normal(shape)
    a = ti.ndarray(config().real, shape)
    storage.from_numpy(values, a)
    np.testing.assert_array_equal(a.to_numpy(), values)
    np.testing.assert_array_equal(storage.to_numpy(a), values)
    with pytest.raises(ValueError, match="cannot fill"):
        storage.from_numpy(values[:-1], a)


@pytest.mark.parametrize("shapes", [[(7,), (5, 3)], [(5, 3), (5, 3), (4,)], [(20_000,), (12_000, 3)], [(3,)]])
def test_zero_and_first_bad_of_several_arrays_equal_one_array_at_a_time(shapes):
    """zero_slots_of and first_bad_slot_of (two arrays a launch, mixed ranks, an odd one out)
    equal zero_slots / first_bad_slot on each array."""
    rng = np.random.default_rng(11)
    arrays, refs = zip(*(_array(rng, (8, *s)) for s in shapes))
    storage.zero_slots_of(arrays, 2, 5)
    storage.zero_slots_of(arrays, 7, 8)  # one slot: per array
    for a, ref in zip(arrays, refs):
        ref[2:5] = 0
        ref[7] = 0
        np.testing.assert_array_equal(a.to_numpy(), ref)
    limits = [(a, np.inf) for a in arrays]
    assert storage.first_bad_slot_of(limits, 0, 8) is None
    assert storage.first_bad_slot_of(limits, 3, 3) is None
    assert storage.first_bad_slot_of([(a, 1e-9) for a in arrays], 0, 8) == 0  # slot 0 is not zeroed
    for k, (slot, bad) in enumerate(((6, np.inf), (4, np.nan), (1, -1e30))):
        a, ref = arrays[k % len(arrays)], refs[k % len(arrays)]
        ref[(slot, *(n - 1 for n in ref.shape[1:]))] = bad
        a.from_numpy(ref)
    expected = min(s for s in (storage.first_bad_slot(a, 0, 8) for a in arrays) if s is not None)
    assert storage.first_bad_slot_of(limits, 0, 8) == expected == 4  # the NaN; -1e30 is finite
    big = [(a, 1e6 if i == len(arrays) - 1 else np.inf) for i, a in enumerate(arrays)]
    expected = min(s for s in (storage.first_bad_slot(a, 0, 8, lim) for a, lim in big) if s is not None)
    assert storage.first_bad_slot_of(big, 0, 8) == expected == (4 if len(arrays) == 2 else 1)  # -1e30 > 1e6
    assert storage.first_bad_slot_of(limits, 5, 8) == 6 or len(arrays) == 1
