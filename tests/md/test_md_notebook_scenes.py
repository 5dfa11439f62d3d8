"""The force-field notebook runs at small size; the two MD scenes' demos run and report sensibly."""

import json
import pathlib

import pytest
from conftest import execute_notebook

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_scene_demos(tmp_path):
    from scenes import forcefield_fit, lj_fluid

    out = lj_fluid.demo(tmp_path)
    json.dumps(out)
    assert (tmp_path / "lj_fluid.png").stat().st_size > 1000
    assert out["atoms"] == 108 and out["energy_drift_per_atom"] < 0.02
    assert 1.0 < out["rdf_peak_r"] < 1.25 and out["dU_deps"] < 0
    fit = forcefield_fit.demo(tmp_path)
    json.dumps(fit)
    fm = fit["force_matching"]
    for k in ("D", "alpha", "r0"):
        assert fm["fitted"][k] == pytest.approx(fm["true"][k], rel=1e-3)
    rdf = fit["rdf_fit"]
    assert abs(rdf["sigma_fitted"] - 1.0) < abs(rdf["sigma_initial"] - 1.0) / 10
    assert rdf["final_loss"] < 0.01 * rdf["initial_loss"]
    assert lj_fluid.DEMO_ORDER != forcefield_fit.DEMO_ORDER


def test_force_field_notebook_runs_small():
    pytest.importorskip("ase")
    _nb, text = execute_notebook("force_field_fitting.ipynb")
    assert "PASS" in text and "fitted" in text
