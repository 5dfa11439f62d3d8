"""The hand-written adjoint of the tape's step kernel (md_close_drift_adjoint) leaves every
adjoint array as Taichi's autodiff of md_close_drift does, in every mode of the step."""

import itertools

import numpy as np
import pytest
import taichi as ti

from diffsim.md.integrators import close_drift, md_close_drift

N, SLOTS, NRDF = 37, 3, 50  # nrdf > N: the loop runs past the atoms for the rdf histogram


def _array(shape, rng):
    a = ti.ndarray(ti.f64, shape, needs_grad=True)
    a.from_numpy(rng.normal(size=shape))
    return a


@pytest.mark.parametrize("mode,close,track,tdisp,width,nrdf",
                         [c for c in itertools.product((0, 1), (0, 1), (0, 1), (0, 1), (1, 6), (0, NRDF))
                          if c[4] == 1 or c[2] == 1][::3],
                         ids=lambda v: str(v))
def test_hand_adjoint_equals_taichis_autodiff_of_the_step(mode, close, track, tdisp, width, nrdf):
    rng = np.random.default_rng(mode + 2 * close + 4 * track + 8 * tdisp + width + nrdf)
    arrays = {"x": (SLOTS, N, 3), "v": (SLOTS, N, 3), "f": (SLOTS, N, 3), "pe": (SLOTS, N), "vir": (SLOTS, N, width),
              "disp": (SLOTS, N, 3), "rdf": (SLOTS, NRDF)}
    arrs = {k: _array(s, rng) for k, s in arrays.items()}
    inv_m = ti.ndarray(ti.f64, N)
    inv_m.from_numpy(1.0 / rng.uniform(0.5, 3.0, N))
    cs = ti.ndarray(ti.f64, 5)
    cs.from_numpy(np.array([0.005, 1.3, 0.9, np.sqrt(1 - 0.81), 0.7]))
    ref = ti.ndarray(ti.f64, (N, 3))
    moved = ti.ndarray(ti.f64, 1, needs_grad=True)
    moved.grad.fill(0.0)
    seeds = {k: rng.normal(size=s) for k, s in arrays.items()}
    src, dst = 2, 0
    args = (*arrs.values(), inv_m, cs, mode, 11, 5, src, dst, track, tdisp, nrdf, close, ref, moved)
    out = []
    for grad in (md_close_drift.grad, close_drift.grad):
        for k, a in arrs.items():
            a.grad.from_numpy(seeds[k])
        grad(*args)
        out.append({k: a.grad.to_numpy() for k, a in arrs.items()})
    taichi, hand = out
    for k in arrays:
        np.testing.assert_allclose(hand[k], taichi[k], rtol=1e-13, atol=1e-14, err_msg=k)
    # the step moved adjoints: the comparison is not of untouched seeds
    assert not np.allclose(taichi["f"][src], seeds["f"][src])
    assert not np.allclose(taichi["x"][src], seeds["x"][src])
