"""diffsim.init: once per process, arch fallback, env overrides, determinism; the CLI."""

import json

import pytest
from conftest import run_python

import diffsim
from diffsim.errors import ConfigError

GRAD_HEX = """
import numpy as np, diffsim
from diffsim.mass_spring import MassSpringChain
cfg = diffsim.init(deterministic=True)
ro = diffsim.Rollout(MassSpringChain(n=64, dt=0.002, segment=10), 200, diffsim.Binomial(4))
ro.set_controls(force=np.sin(np.arange(200))[:, None])
loss = ro.forward(); g = ro.backward()
print(json.dumps([cfg.arch, cfg.threads, float(loss).hex()] + [float(v).hex() for v in g.state0["q"]]
                 + [float(v).hex() for v in g.params["mass"]]))
"""


def test_second_init_same_settings_is_fine_conflicting_is_an_error():
    cfg = diffsim.config()
    assert diffsim.init(arch="cpu", precision="f64", deterministic=True) is cfg
    with pytest.raises(ConfigError, match="already started by diffsim.init"):
        diffsim.init(arch="cpu", precision="f32", deterministic=True)


def test_bad_arguments():
    with pytest.raises(ConfigError, match="arch"):
        diffsim.init(arch="gpu")
    with pytest.raises(ConfigError, match="precision"):
        diffsim.init(precision="f16")


def test_auto_falls_back_to_cpu_and_says_so():
    out = run_python("import diffsim; c = diffsim.init(); print('ARCH', c.arch)")
    assert out.returncode == 0, out.stderr
    assert "arch=auto -> running on cpu" in out.stdout and "ARCH cpu" in out.stdout


def test_environment_overrides_and_f32():
    code = ("import diffsim, numpy as np; from diffsim.mass_spring import MassSpringChain\n"
            "c = diffsim.init(arch='auto', precision='f64')\n"
            "ro = diffsim.Rollout(MassSpringChain(n=4), 50); l = ro.forward(); g = ro.backward()\n"
            "print('CFG', c.arch, c.precision, ro.x.q.dtype, l)")
    out = run_python(code, env={"DIFFSIM_ARCH": "cpu", "DIFFSIM_PRECISION": "f32"})
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("CFG"))
    arch, precision, dtype, loss = line.split()[1:]
    assert (arch, precision, dtype) == ("cpu", "f32", "f32")
    assert "running on" not in out.stdout  # an explicit arch is not announced
    out64 = run_python(code.replace("c = diffsim.init(arch='auto', precision='f64')", "c = diffsim.init('cpu')"))
    loss64 = float(next(x for x in out64.stdout.splitlines() if x.startswith("CFG")).split()[-1])
    assert float(loss) == pytest.approx(loss64, rel=1e-4)


def test_deterministic_is_bitwise_repeatable_across_processes():
    runs = [run_python("import json\n" + GRAD_HEX) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
    a, b = (json.loads(r.stdout.strip().splitlines()[-1]) for r in runs)
    assert a[:2] == ["cpu", 1]
    assert a == b


def test_cuda_request_without_a_gpu_is_a_clear_error():
    out = run_python("import diffsim; diffsim.init(arch='cuda')")
    if "Starting on arch=cuda" in out.stdout + out.stderr:
        pytest.skip("this machine has a CUDA GPU")
    assert out.returncode != 0
    assert "ConfigError" in out.stderr and "no cuda device" in out.stderr


def test_cli_info_and_unknown_scene():
    out = run_python("from diffsim_cli import main; main(['info', '--arch', 'cpu', '--threads', '1'])")
    assert out.returncode == 0, out.stderr
    assert "taichi: 1.7.4" in out.stdout and "arch: cpu" in out.stdout and "threads: 1" in out.stdout
    out = run_python("from diffsim_cli import main; raise SystemExit(main(['run', 'no_such_scene']))")
    assert out.returncode != 0 and "unknown scene 'no_such_scene'" in out.stderr


def test_demo_writes_its_pictures_and_summary(tmp_path):
    out = run_python(f"from diffsim_cli import main; raise SystemExit(main(['demo', '--arch', 'cpu', "
                     f"'--only', 'hanging_chain', '--out', {str(tmp_path)!r}]))")
    assert out.returncode == 0, out.stdout + out.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    chain = summary["hanging_chain"]
    assert chain["gradcheck_ok"] is True and chain["gradcheck_max_rel_error"] < 1e-6
    assert chain["plot"] == "hanging_chain.png"  # file names relative to --out, where summary.json lives
    assert (tmp_path / "hanging_chain.png").stat().st_size > 10_000
    assert "PASS" in (tmp_path / "hanging_chain_gradcheck.txt").read_text()


def test_demo_refuses_unknown_scene_names(tmp_path):
    out = run_python(f"from diffsim_cli import main; raise SystemExit(main(['demo', '--arch', 'cpu', "
                     f"'--only', 'no_such_scene', '--out', {str(tmp_path)!r}]))")
    assert out.returncode == 2 and "unknown scenes ['no_such_scene']" in out.stderr


def test_headline_scenes_exist_and_have_demos():
    import scenes

    names = [name for name, module in scenes.demos(scenes.HEADLINE)]
    assert sorted(names) == sorted(scenes.HEADLINE)
    assert all(not isinstance(m, Exception) for _, m in scenes.demos())


def test_the_offline_cache_keeps_every_kernel_of_a_session():
    """Taichi's default (100 MB, then the least recently used quarter dropped) evicts kernels that
    take minutes to compile again; diffsim.init raises it, and a user's option still wins."""
    import taichi as ti

    from diffsim.runtime import OFFLINE_CACHE_BYTES

    assert OFFLINE_CACHE_BYTES >= 1 << 30 and ti.cfg.offline_cache_max_size_of_files == OFFLINE_CACHE_BYTES
    out = run_python("import taichi as ti, diffsim; diffsim.init('cpu', offline_cache_max_size_of_files=12345); "
                     "print('MAX', ti.cfg.offline_cache_max_size_of_files)")
    assert "MAX 12345" in out.stdout, out.stderr
