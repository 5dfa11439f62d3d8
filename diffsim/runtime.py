"""Taichi runtime: one ``diffsim.init`` per process, with arch and precision chosen once.

``init(arch="auto")`` tries CUDA, then Vulkan, then the CPU, and never asks Taichi for
``ti.gpu`` (its OpenGL probe segfaults on machines without a display).
``DIFFSIM_ARCH`` and ``DIFFSIM_PRECISION`` override the arguments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import taichi as ti

from .compat import arch_built_in
from .errors import ConfigError

ARCHS = ("auto", "cpu", "cuda", "vulkan", "metal")
PRECISIONS = ("f32", "f64")


@dataclass(frozen=True)
class RuntimeConfig:
    """What ``init`` settled on. ``arch`` is the arch Taichi really runs on."""

    arch: str
    precision: str
    threads: int | None
    deterministic: bool
    debug: bool
    requested_arch: str

    @property
    def real(self):
        """Taichi float type of states and parameters (``ti.f32`` or ``ti.f64``)."""
        return ti.f64 if self.precision == "f64" else ti.f32

    @property
    def numpy_real(self):
        import numpy as np

        return np.float64 if self.precision == "f64" else np.float32


_config: RuntimeConfig | None = None
_implicit = False  # True when config() started the default runtime (no explicit init yet)


def _ti_arch(name: str):
    return {"cpu": ti.cpu, "cuda": ti.cuda, "vulkan": ti.vulkan, "metal": ti.metal}[name]


def _arch_name(arch) -> str:
    name = getattr(arch, "name", str(arch))
    return "cpu" if name in ("x64", "arm64") else name


def _probe(name: str) -> bool:
    """True when Taichi can start ``name`` here. CUDA and Vulkan are probed without ti.gpu."""
    return arch_built_in(name) if name in ("cuda", "vulkan") else name == "cpu"


OFFLINE_CACHE_BYTES = 1 << 30  # what Taichi's offline cache may hold before it drops old kernels


def init(arch: str = "auto", precision: str = "f64", threads: int | None = None,
         deterministic: bool = False, debug: bool = False, **taichi_options) -> RuntimeConfig:
    """Start Taichi once for this process and return the settled :class:`RuntimeConfig`.

    arch: "auto" (CUDA, then Vulkan, then CPU), "cpu", "cuda", "vulkan" or "metal".
    precision: "f32" or "f64", the float type of states, parameters and gradients.
    threads: CPU threads (None: Taichi's default, all cores).
    deterministic: bitwise-repeatable results; forces one CPU thread, since atomic adds in
        reverse-mode kernels are summed in a different order by two threads.
    debug: Taichi's debug mode (bounds checks; with ``Tape(validation=True)`` the
        global-data-access-rule check). About 2x slower.
    taichi_options: handed to ``ti.init``. ``cfg_optimization=False`` is the one worth knowing:
        Taichi then skips its control-flow optimisation, which is most of a cold compile, for
        every kernel (the gradient kernels of robots with contact and of the rigid penalty model
        already compile without it: :class:`diffsim.tape.LeanAdjoint`); forward kernels then run
        10-20 % slower: for a short session on an empty offline cache, not for a long fit.

    A second call with settings the running runtime satisfies (the same ones, or ``arch``
    naming the arch it runs on) returns the running config, also when the runtime was started
    implicitly by building a system first; with different settings it raises
    :class:`ConfigError` (re-initialising Taichi invalidates every field and ndarray, and
    touching one afterwards segfaults).
    """
    global _config
    arch = _setting("arch", arch, "DIFFSIM_ARCH", ARCHS)
    precision = _setting("precision", precision, "DIFFSIM_PRECISION", PRECISIONS)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, (int, np.integer))
                                or threads < 1):
        raise ConfigError(f"threads={threads!r} ({type(threads).__name__}) must be a whole number >= 1, or None "
                          "for all cores; e.g. threads=2")
    threads = None if threads is None else int(threads)
    for name, flag in (("deterministic", deterministic), ("debug", debug)):
        if not isinstance(flag, (bool, np.bool_)):
            raise ConfigError(f"{name}={flag!r} must be True or False")
    deterministic, debug = bool(deterministic), bool(debug)
    if deterministic:
        if threads not in (None, 1):
            raise ConfigError(f"deterministic=True needs one CPU thread, got threads={threads}; pass threads=1 "
                              "or threads=None, or deterministic=False")
        threads = 1
    if _config is not None:
        running = _config
        if not (arch in (running.arch, running.requested_arch) and precision == running.precision
                and threads == running.threads and deterministic == running.deterministic
                and debug == running.debug):
            how = ("was started implicitly, with the defaults, when the first system or array was built"
                   if _implicit else "was already started by diffsim.init")
            raise ConfigError(
                f"the diffsim runtime {how}: arch={running.requested_arch!r} (running on {running.arch}), "
                f"precision={running.precision!r}, threads={running.threads}, "
                f"deterministic={running.deterministic}, debug={running.debug}; this call asks for "
                f"arch={arch!r}, precision={precision!r}, threads={threads}, deterministic={deterministic}, "
                f"debug={debug}, and restarting Taichi would invalidate every field and array already made. "
                + ("Call diffsim.init(...) with these settings first, before building any system, model or "
                   "array, or start a new Python process." if _implicit else
                   "Make one diffsim.init(...) call with the settings you want, or start a new Python process."))
        return _config

    if arch == "auto":
        candidates = [a for a in ("cuda", "vulkan") if _probe(a)] + ["cpu"]
    else:
        candidates = [arch]
    # Taichi's offline cache keeps 100 MB by default and then drops the least recently used quarter:
    # the kernels of a few scenes and their gradients fill that, and every dropped kernel is a cold
    # compile of up to minutes again (all of this project's tests compile 70-100 MB). Keep 1 GiB.
    options = {"default_fp": ti.f64 if precision == "f64" else ti.f32, "debug": debug,
               "offline_cache": True, "offline_cache_max_size_of_files": OFFLINE_CACHE_BYTES, "log_level": ti.WARN}
    if threads is not None:
        options["cpu_max_num_threads"] = threads
    options.update(taichi_options)
    # Never a list containing opengl/gles: their probe segfaults here.
    ti.init(arch=_ti_arch(candidates[0]), **options)
    got = _arch_name(ti.cfg.arch)
    if arch not in ("auto", got):
        raise ConfigError(f"arch={arch!r} was asked for but Taichi started on {got!r}: "
                          f"no {arch} device or driver on this machine")
    _config = RuntimeConfig(arch=got, precision=precision, threads=threads,
                            deterministic=deterministic, debug=debug, requested_arch=arch)
    if arch == "auto":
        print(f"[diffsim] arch=auto -> running on {got}")
    return _config


def config() -> RuntimeConfig:
    """The running config, starting the default runtime (auto, f64) if none was started."""
    global _implicit
    if _config is None:
        init()
        _implicit = True
    return _config


def _setting(name: str, value, variable: str, choices: tuple) -> str:
    """``value`` of argument ``name``, or the environment variable ``variable`` that overrides it;
    a ConfigError naming whichever was wrong."""
    env = os.environ.get(variable)
    if env is not None:
        if env not in choices:
            raise ConfigError(f"environment variable {variable}={env!r} is not one of {choices}: set it to one of "
                              f"them or unset it (it overrides diffsim.init's {name}=)")
        return env
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{name}={value!r} is not one of {choices}")
    return value


def is_initialized() -> bool:
    """True once the runtime was started (by :func:`init` or implicitly by building a system)."""
    return _config is not None


def real():
    """Taichi float type of the running precision."""
    return config().real


def info() -> dict:
    """Taichi version, arch, precision and threads of the running runtime."""
    cfg = config()
    return {"taichi": ".".join(map(str, ti.__version__)), "arch": cfg.arch, "precision": cfg.precision,
            "threads": cfg.threads if cfg.threads is not None else os.cpu_count(),
            "deterministic": cfg.deterministic, "debug": cfg.debug}
