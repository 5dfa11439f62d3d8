"""Constant-pressure sampling of the LJ fluid against its NVT equation of state: the longer,
tighter version of tests/md/test_md_npt.py. One JSON line per figure.

    python benchmarks/md_npt.py                       # 256 atoms, T = 1.5, rho = 0.8 (about 5 min)
    python benchmarks/md_npt.py --nvt-steps 4000 --npt-steps 20000   # quicker, looser

Figures:
- ``lj_nvt_eos``: mean pressure (epsilon/sigma^3) at densities 0.76, 0.80, 0.84 with block errors,
  and kappa_T = 1 / (rho dP/drho) from the central difference (sigma^3/epsilon);
- ``lj_npt_crescale``: stochastic cell rescaling (diffsim.md.simulate_npt) at P0 = P(0.80): mean
  density (expected 0.80) and <dV^2> / (k_B T <V> kappa_T) (expected 1), each with its block error
  (20 blocks, after a tenth of the run is dropped);
- ``lj_npt_berendsen``: the same two figures for the Berendsen barostat (equilibrate_npt, every 20
  steps): the right density, volume fluctuations several times too small.
"""

import argparse
import json
import time

import numpy as np

T, RHO, DENSITIES = 1.5, 0.8, (0.76, 0.8, 0.84)


def _system(density, seed):
    from diffsim.md import ForceField, Langevin, LennardJones, MDSystem, Model, fcc_lattice, maxwell_boltzmann

    pos, box = fcc_lattice((4, 4, 4), density)
    model = Model(pos, box=box, velocities=maxwell_boltzmann(np.ones(len(pos)), T, seed=seed))
    ff = ForceField([LennardJones(cutoff=1.6, shift="force")], model.types, box, skin=0.2)
    return MDSystem(model, ff, dt=0.005, integrator=Langevin(T, 2.0, seed=seed))


def _blocks(values, stat, nblocks=20):
    """stat of ``values`` and its standard error from ``nblocks`` blocks."""
    b = np.array([stat(v) for v in np.array_split(values, nblocks)])
    return float(stat(values)), float(b.std(ddof=1) / np.sqrt(nblocks))


def _fluctuations(volume, density, kappa):
    keep = slice(len(volume) // 10, None)
    v, rho = volume[keep], density[keep]
    ratio = _blocks(v, lambda a: a.var() / (T * a.mean() * kappa))
    mean_rho = _blocks(rho, np.mean)
    return {"mean_density": round(mean_rho[0], 5), "mean_density_err": round(mean_rho[1], 5),
            "var_ratio": round(ratio[0], 3), "var_ratio_err": round(ratio[1], 3), "samples": len(v)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nvt-steps", type=int, default=10000)
    ap.add_argument("--npt-steps", type=int, default=60000)
    ap.add_argument("--berendsen-steps", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    import diffsim

    diffsim.init(arch="cpu", precision="f64", threads=args.threads)
    from diffsim.md import BerendsenBarostat, Langevin, MDSystem, StochasticCellRescaling, equilibrate_npt, simulate_npt

    t0 = time.perf_counter()
    liquid = _system(RHO, seed=2)
    eq = liquid.simulate(1000)
    eos, err = {}, {}
    for rho in DENSITIES:
        nvt = _system(rho, seed=3)
        start = nvt.simulate(500, positions=eq["positions"] * (RHO / rho) ** (1 / 3), velocities=eq["velocities"])
        run = nvt.simulate(args.nvt_steps, positions=start["positions"], velocities=start["velocities"],
                           record_every=10, first_step=500)
        eos[rho], err[rho] = _blocks(run["pressure"][1:], np.mean)
    slope = (eos[0.84] - eos[0.76]) / 0.08
    kappa = 1.0 / (RHO * slope)
    kappa_err = kappa * np.hypot(err[0.84], err[0.76]) / (eos[0.84] - eos[0.76])
    common = {"atoms": 256, "temperature": T, "cutoff": 1.6, "dt": 0.005}
    print(json.dumps({"figure": "lj_nvt_eos", **common, "steps": args.nvt_steps,
                      "pressure": {str(r): round(eos[r], 4) for r in DENSITIES},
                      "pressure_err": {str(r): round(err[r], 4) for r in DENSITIES},
                      "kappa_T": round(kappa, 5), "kappa_T_err": round(kappa_err, 5),
                      "seconds": round(time.perf_counter() - t0, 1)}), flush=True)

    t0 = time.perf_counter()
    npt = MDSystem(liquid.model.copy(positions=eq["positions"], velocities=eq["velocities"]), liquid.ff, dt=0.005,
                   integrator=Langevin(T, 2.0, seed=4))
    baro = StochasticCellRescaling(eos[RHO], tau=0.25, compressibility=kappa, every=5, seed=5)
    out = simulate_npt(npt, args.npt_steps, baro)
    print(json.dumps({"figure": "lj_npt_crescale", **common, "steps": args.npt_steps, "pressure": round(eos[RHO], 4),
                      "tau": baro.tau, "every": baro.every, "expected_density": RHO,
                      **_fluctuations(out["volume"], out["density"], kappa),
                      "seconds": round(time.perf_counter() - t0, 1)}), flush=True)

    t0 = time.perf_counter()
    bb = BerendsenBarostat(eos[RHO], tau=0.5, compressibility=kappa, every=20)
    out = equilibrate_npt(npt, args.berendsen_steps, bb)
    print(json.dumps({"figure": "lj_npt_berendsen", **common, "steps": args.berendsen_steps,
                      "pressure": round(eos[RHO], 4), "tau": bb.tau, "every": bb.every, "expected_density": RHO,
                      **_fluctuations(out["volume"], out["density"], kappa),
                      "seconds": round(time.perf_counter() - t0, 1)}), flush=True)


if __name__ == "__main__":
    main()
