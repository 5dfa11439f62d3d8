"""Progress for long forward work: diffsim.progress and MDSystem.simulate(progress=...)."""

import numpy as np

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
