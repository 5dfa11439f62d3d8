"""Refit the coefficients of diffsim.contact.discrete_damping_ratio (reproducible, ~10 s).

The stepped contact law (diffsim.contact.stepped_contact_normal_force, NumPy twin) drives a
body of mass m = k_n dt^2 / (omega dt)^2 into a plane at 2 m/s without gravity, stepped with
semi-implicit Euler exactly as the rigid simulator does, at PHASES phases of first touch within a
step. For each (omega dt, zeta) on a grid, bisection finds the multiplier a such that the damping
ratio a * zeta gives the phase-averaged restitution exp(-2 zeta h(zeta)) of the continuous law;
a least-squares fit of a - 1 = sum_{p=1..3, q=0..2} C_pq (omega dt)^p zeta^q gives the table
_DISCRETE_DAMPING. Prints one JSON line with the coefficients, one with the fit's worst residual,
and one with the worst phase spread and calibrated error of the restitution over the grid.

    python benchmarks/fit_discrete_damping.py
"""

import json

import numpy as np

from diffsim.contact import (
    discrete_damping_ratio_np,
    restitution_from_damping_ratio_np,
    stepped_contact_normal_force_np,
)

K_N, DT, DELTA, SPEED, PHASES = 1.0e4, 1.0e-3, 1.0e-5, 2.0, 8
OMEGA_DT = np.linspace(0.02, 0.4, 12)
ZETA = np.linspace(0.1, 1.0, 10)


def stepped_restitution(zeta_dt, omega_dt):
    """Exit over entry speed per (case, phase) of the stepped contact; zeta_dt, omega_dt: (cases,)."""
    zeta_dt = np.asarray(zeta_dt, dtype=np.float64)[:, None]
    mass = (K_N * DT**2 / np.asarray(omega_dt, dtype=np.float64) ** 2)[:, None]
    c_n = 2.0 * zeta_dt * np.sqrt(K_N * mass)
    depth = -2e-3 - SPEED * DT * np.arange(PHASES)[None, :] / PHASES + 0.0 * zeta_dt
    v_n = np.full_like(depth, -SPEED)
    for _ in range(int(3.0 * np.pi / np.min(omega_dt)) + 10):
        f = stepped_contact_normal_force_np(depth, v_n, K_N, c_n, 0.0, DELTA, DT)
        v_n = v_n + DT * f / mass
        depth = depth - DT * v_n
    return v_n / SPEED


def main():
    x, z = (a.ravel() for a in np.meshgrid(OMEGA_DT, ZETA, indexing="ij"))
    target = restitution_from_damping_ratio_np(z)
    lo, hi = np.full_like(z, 0.5), np.full_like(z, 1.5)
    for _ in range(40):  # more damping, less restitution: bisection on the multiplier
        mid = 0.5 * (lo + hi)
        low_e = stepped_restitution(mid * z, x).mean(axis=1) < target
        hi, lo = np.where(low_e, mid, hi), np.where(low_e, lo, mid)
    a = 0.5 * (lo + hi)
    basis = np.stack([x ** (p + 1) * z**q for p in range(3) for q in range(3)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, a - 1.0, rcond=None)
    table = coef.reshape(3, 3)
    print(json.dumps({"figure": "discrete_damping_coefficients", "rows_powers_of_omega_dt": [1, 2, 3],
                      "columns_powers_of_zeta": [0, 1, 2], "value": table.tolist()}))
    print(json.dumps({"figure": "discrete_damping_fit_worst_residual", "value": float(np.abs(basis @ coef - a + 1).max()),
                      "unit": "fraction of zeta"}))
    e = stepped_restitution(discrete_damping_ratio_np(z, x), x)
    print(json.dumps({"figure": "stepped_restitution_with_stored_table",
                      "worst_phase_spread": float((np.ptp(e, axis=1) / target).max()),
                      "worst_mean_error": float(np.abs(e.mean(axis=1) / target - 1).max()),
                      "note": "relative to e; uses the table stored in diffsim.contact"}))


if __name__ == "__main__":
    main()
