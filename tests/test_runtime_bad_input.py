"""Bad input to diffsim.init and gradcheck: a ConfigError naming the argument (or the
environment variable) and what to do; an implicit start followed by a matching init is fine."""

import numpy as np
import pytest
from conftest import run_python

import diffsim
from diffsim.errors import ConfigError


@pytest.mark.parametrize("variable,value,argument", [("DIFFSIM_ARCH", "bogus", "arch"),
                                                     ("DIFFSIM_PRECISION", "f16", "precision")])
def test_environment_overrides_name_the_variable(monkeypatch, variable, value, argument):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=f"environment variable {variable}='{value}' is not one of .*unset it"
                                          f".*overrides diffsim.init's {argument}="):
        diffsim.init(arch="cpu", precision="f64", deterministic=True)


@pytest.mark.parametrize("threads", ["2", 1.5, 0, True])
def test_threads_must_be_a_whole_number(threads):
    with pytest.raises(ConfigError, match=r"threads=.* must be a whole number >= 1, or None for all cores; "
                                          r"e\.g\. threads=2"):
        diffsim.init(arch="cpu", precision="f64", threads=threads)


def test_flags_and_arguments_of_the_wrong_type():
    with pytest.raises(ConfigError, match="deterministic='yes' must be True or False"):
        diffsim.init(arch="cpu", deterministic="yes")
    with pytest.raises(ConfigError, match=r"arch=None is not one of"):
        diffsim.init(arch=None)
    with pytest.raises(ConfigError, match="deterministic=True needs one CPU thread.*pass threads=1"):
        diffsim.init(arch="cpu", threads=2, deterministic=True)


def test_init_after_an_implicit_start():
    """Building a system starts the default runtime; an init with settings it satisfies is then
    fine (it used to say "already called"), and one with other settings says what to do."""
    code = """
import numpy as np, diffsim
from diffsim.errors import ConfigError
from diffsim.mass_spring import MassSpringChain
diffsim.Rollout(MassSpringChain(n=4), 5).forward()
cfg = diffsim.config()
assert diffsim.init() is cfg and diffsim.init(arch=cfg.arch, precision="f64") is cfg
try:
    diffsim.init(arch=cfg.arch, precision="f32")
except ConfigError as e:
    print("MESSAGE", e)
"""
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    msg = next(x for x in out.stdout.splitlines() if x.startswith("MESSAGE"))
    assert "started implicitly" in msg and "precision='f32'" in msg
    assert "Call diffsim.init(...) with these settings first, before building any system" in msg


def test_gradcheck_step_and_tolerances_must_be_positive():
    def f(x):
        return float(x @ x), 2 * x

    x = np.array([1.0, -2.0])
    for kwargs, fragment in (({"step": 0}, r"step=0 must be a finite number > 0; e\.g\. step=1e-4"),
                             ({"step": -1e-4}, r"step=-0\.0001 must be a finite number > 0"),
                             ({"step": float("nan")}, r"step=nan"),
                             ({"rtol": -1.0}, r"rtol=-1\.0 must be a finite number >= 0"),
                             ({"entries": 2.5}, r"entries=2\.5 must be a whole number >= 0")):
        with pytest.raises(ConfigError, match="gradcheck: " + fragment):
            diffsim.gradcheck(f, x, **kwargs)
    with pytest.raises(ConfigError, match=r"gradcheck: x\[1\] is nan"):
        diffsim.gradcheck(f, np.array([1.0, np.nan]))
    assert diffsim.gradcheck(f, x).ok
