"""Progress for long work: diffsim.progress, MDSystem.simulate(progress=...), and the tape's
forward/backward sweeps behind every System.simulate (rigid, articulated, your own systems)."""

import numpy as np
import pytest

import diffsim
from diffsim import Binomial, Rollout, StoreAll
from diffsim.mass_spring import MassSpringChain
from diffsim.md import ForceField, LennardJones, MDSystem, Model, fcc_lattice
from diffsim.progress import progress_bar


def test_bar_only_where_asked_or_watched(capsys):
    silent = progress_bar(50_000, "x")  # pytest's stderr is no terminal: no bar by default
    silent.update(10)
    silent.close()
    assert capsys.readouterr().err == ""
    bar = progress_bar(3, "demo", progress=True)
    bar.update(3)
    bar.close()
    assert "demo" in capsys.readouterr().err


def test_simulate_shows_progress_when_asked(capsys):
    pos, box = fcc_lattice((2, 2, 2), density=0.8442)
    model = Model(pos, box=box)
    system = MDSystem(model, ForceField([LennardJones(cutoff=1.5)], model.types, box), dt=0.005)
    quiet = system.simulate(40)
    assert "simulate" not in capsys.readouterr().err
    shown = system.simulate(40, progress=True)
    err = capsys.readouterr().err
    assert "simulate" in err and "40/40" in err
    np.testing.assert_array_equal(quiet["positions"], shown["positions"])  # the bar changes nothing


def test_an_imported_ipykernel_is_not_a_notebook(monkeypatch, capsys):
    """A test run that executes notebooks imports ipykernel; bars must still stay off there."""
    import sys
    import types

    import optimizers as opt

    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    bar = progress_bar(50_000, "x")
    bar.update(1)
    bar.close()
    opt.minimize(lambda x: (float(x @ x), 2 * x), np.ones(2), "adam", 3)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("fused", [True, False])
def test_tape_sweeps_show_progress_when_asked(capsys, fused):
    """A bar counts every step of the forward sweep and of the adjoint sweep, under a schedule
    that recomputes; the numbers are the same with and without it."""
    system = MassSpringChain(n=3, segment=10, fused=fused)
    controls = {"force": np.linspace(-1.0, 1.0, 60)[:, None]}
    quiet = system.simulate(60, controls=controls)
    assert capsys.readouterr().err == ""  # pytest's stderr is no terminal
    shown = system.simulate(60, controls=controls, progress=True)
    assert "forward" in capsys.readouterr().err.replace("\r", "\n").splitlines()[-1]
    np.testing.assert_array_equal(quiet["q"], shown["q"])
    assert quiet["q"].shape == (61, 3) and quiet["loss"] == shown["loss"]

    grads = []
    for progress in (False, True):
        ro = Rollout(system, 60, Binomial(2))
        ro.set_controls(**controls)
        ro.forward(progress=progress)
        grads.append(ro.backward(progress=progress).controls["force"])
    err = capsys.readouterr().err.replace("\r", "\n")
    assert "forward" in err and "backward" in err and "60/60" in err
    np.testing.assert_array_equal(*grads)
    ro = Rollout(system, 60, StoreAll())
    ro.forward(controls=controls)
    np.testing.assert_allclose(ro.backward().controls["force"], grads[0], rtol=1e-12)
    assert isinstance(diffsim.System.simulate.__doc__, str)
