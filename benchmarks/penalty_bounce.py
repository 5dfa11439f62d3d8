"""Penalty bounces at the default settings (dt 1e-3 s, stiffness 1e4 N/m, 1 kg balls of radius
0.1 m): how far the measured restitution is from e, how much it varies with the phase of first
touch within a step, and how smooth the third apex is in e. One JSON line per figure.

    python benchmarks/penalty_bounce.py

Restitution: balls dropped onto a plane of the same e (8 phases of first touch), measured by
sqrt(apex after / apex before) from the exact invariant of the semi-implicit Euler flight,
v^2 - g dt v + 2 g z, read once the ball is clear of the contact; and head-on without gravity.
Apex: 60 balls with e in 0.70..0.82 dropped from 1 m onto a plane of e = 0.75; the worst second
difference of the third apex over e against the mean first difference (the trend).
"""

import json

import numpy as np

import diffsim
from diffsim.rigid import ModelBuilder, RigidSystem, Sphere

G, DT, PHASES = 9.81, 1e-3, 8


def restitution_errors(e, v, gravity):
    """(measured e)/e - 1 per phase lane for a ball hitting a plane at v (m/s)."""
    b = ModelBuilder(3)
    for k in range(PHASES):
        if gravity:
            b.add_body(Sphere(0.1), mass=1.0, position=[k, 0, 0.1 + v * v / (2 * G) + 1e-3 * k / PHASES],
                       restitution=e, friction=0.0)
        else:
            b.add_body(Sphere(0.1), mass=1.0, position=[k, 0, 0.102 + v * DT * k / PHASES], velocity=[0, 0, -v],
                       restitution=e, friction=0.0)
    b.add_plane([0, 0, 1], 0.0, restitution=e, friction=0.0)
    system = RigidSystem(b.finalize(), dt=DT, gravity=[0, 0, -G if gravity else 0.0])
    out = system.simulate(int(((v / G) if gravity else (0.01 / v)) / DT) + 150)
    errors = []
    for k in range(PHASES):
        z, vz = out["x"][:, k, 2] - 0.1, out["v"][:, k, 2]
        up = (vz > 0) & (z > 2 * DT * np.maximum(vz, 1.0)) & (np.arange(len(z)) >= int(np.argmax(vz > 0)))
        i = int(np.argmax(up))
        if gravity:
            errors.append(np.sqrt((vz[i] ** 2 - G * DT * vz[i] + 2 * G * z[i]) / (2 * G * z[0])) / e - 1)
        else:
            errors.append(vz[i] / v / e - 1)
    return np.array(errors)


def third_apex(restitutions):
    b = ModelBuilder(3)
    for k, e in enumerate(restitutions):
        b.add_body(Sphere(0.1), mass=1.0, position=[0.5 * k, 0, 1.1], restitution=e, friction=0.0)
    b.add_plane([0, 0, 1], 0.0, restitution=0.75, friction=0.0)
    z = RigidSystem(b.finalize(), dt=DT).simulate(2600)["x"][:, :, 2] - 0.1
    apex = []
    for k in range(z.shape[1]):
        peaks = np.where(np.diff(np.sign(np.diff(z[:, k]))) < 0)[0] + 1
        apex.append(z[peaks[2], k])
    return np.array(apex)


def main():
    diffsim.init(arch="cpu", precision="f64")
    for gravity, speeds in ((False, (0.5, 2.0, 6.0)), (True, (2.0, 6.0))):
        worst, spread, mean = 0.0, 0.0, []
        for e in (0.2, 0.5, 0.8, 1.0):
            for v in speeds:
                err = restitution_errors(e, v, gravity)
                worst, spread = max(worst, np.abs(err).max()), max(spread, np.ptp(err))
                mean.append(err.mean())
        print(json.dumps({"figure": "penalty_restitution_error", "gravity": gravity, "e": [0.2, 0.5, 0.8, 1.0],
                          "impact_speed_m_s": list(speeds), "worst_relative": float(worst),
                          "worst_phase_spread": float(spread), "worst_mean": float(np.abs(mean).max())}))
    for e, v in ((0.2, 2.0), (0.125, 2.0)):
        err = restitution_errors(e, v, True)
        print(json.dumps({"figure": "penalty_restitution_error_slow_exit", "exit_speed_m_s": e * v,
                          "mean_relative": float(err.mean()), "phase_spread": float(np.ptp(err))}))
    apex = third_apex(np.linspace(0.70, 0.82, 60))
    d1, d2 = np.diff(apex), np.diff(apex, 2)
    print(json.dumps({"figure": "penalty_third_apex_roughness", "worst_second_difference_m": float(np.abs(d2).max()),
                      "mean_first_difference_m": float(d1.mean()), "ratio": float(np.abs(d2).max() / d1.mean()),
                      "monotone": bool(np.all(d1 > 0))}))


if __name__ == "__main__":
    main()
