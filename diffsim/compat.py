"""The Taichi internals diffsim relies on where no public API serves, in one place.

Written for and tested on Taichi 1.7.4 (``TESTED_TAICHI``). Importing this module checks the
running Taichi: another version gives a :class:`TaichiVersionWarning` (the internals below were
found and may still work; ``tests/test_compat.py`` fails on it, so a CI run says so loudly), and
a Taichi that lacks one of them raises :class:`TaichiVersionError` at import, naming the missing
piece, rather than a cryptic error in the middle of a kernel compile.

What is used, and why nothing public serves:

- :func:`subscript` and :func:`assign`: element access to an ndarray argument from plain Python
  helpers that run while a kernel compiles (``diffsim.articulated.kernels``). Inside a kernel,
  ``a[i, j] = x`` is what Taichi's AST transformer turns into exactly these two calls; the
  helpers are plain Python on purpose (``@ti.func`` accessors, re-parsed at every call, made
  loading a cached robot kernel several times slower), and Taichi has no public function for
  "the element a[i, j]" or "store into it".
- :func:`compile_time`: marks a plain-Python helper as meant to be called inside Taichi scope,
  which silences Taichi's "Calling non-taichi function" SyntaxWarning for it (and only for it).
- :func:`arch_built_in`: whether the installed Taichi was built with an arch's backend, asked
  without starting it (``ti.init(arch=ti.gpu)`` would probe OpenGL, which segfaults on machines
  without a display). The running configuration itself is public: ``ti.cfg``.
"""

import warnings

import taichi as ti
from taichi.lang import impl as _impl
from taichi.lang import misc as _misc
from taichi.lang.expr import Expr as _Expr

from .errors import DiffsimError

TESTED_TAICHI = (1, 7, 4)
"""The Taichi version these internals were written for and tested on."""


class TaichiVersionError(DiffsimError, ImportError):
    """The installed Taichi lacks an internal diffsim needs (see :mod:`diffsim.compat`)."""


class TaichiVersionWarning(UserWarning):
    """The installed Taichi is not the version diffsim was tested on."""


def taichi_version() -> tuple:
    """The running Taichi's version, e.g. (1, 7, 4)."""
    return tuple(int(v) for v in ti.__version__)


def _missing_internals() -> list:
    need = {"taichi.lang.impl.subscript": getattr(_impl, "subscript", None),
            "taichi.lang.expr.Expr._assign": getattr(_Expr, "_assign", None),
            "taichi.lang.misc.is_arch_supported": getattr(_misc, "is_arch_supported", None)}
    return [name for name, obj in need.items() if not callable(obj)]


def check_taichi() -> tuple:
    """Check the running Taichi (done once at import): returns its version; warns
    (:class:`TaichiVersionWarning`) when it is not ``TESTED_TAICHI``; raises
    :class:`TaichiVersionError` when an internal this module wraps is gone."""
    version = taichi_version()
    missing = _missing_internals()
    wanted = ".".join(map(str, TESTED_TAICHI))
    got = ".".join(map(str, version))
    if missing:
        raise TaichiVersionError(f"Taichi {got} lacks {', '.join(missing)}, which diffsim.compat wraps; diffsim "
                                 f"is tested on taichi=={wanted}: pip install taichi=={wanted}")
    if version != TESTED_TAICHI:
        warnings.warn(f"diffsim is tested on taichi=={wanted}, this is taichi {got}: the Taichi internals in "
                      f"diffsim.compat were found but may behave differently (run tests/test_compat.py, or "
                      f"pip install taichi=={wanted})", TaichiVersionWarning, stacklevel=2)
    return version


def subscript(array, *indices):
    """The element ``array[indices]`` of an ndarray or field, from Python code running while a
    kernel compiles (a Taichi expression usable as a value or as the target of :func:`assign`)."""
    return _impl.subscript(None, array, *indices)


def assign(target, value):
    """``target = value`` for an element from :func:`subscript` (a store in the kernel)."""
    target._assign(value)


def compile_time(f):
    """Mark ``f``, a plain-Python helper that builds Taichi expressions (e.g. scalar algebra on
    tuples), as meant to run inside Taichi scope at compile time; returns ``f``."""
    f._is_taichi_function = False
    return f


def arch_built_in(name: str) -> bool:
    """Whether this Taichi build has the backend ``name`` ("cpu", "cuda", "vulkan", "metal"),
    asked without initialising it. False also when the check itself fails."""
    arch = {"cpu": ti.cpu, "cuda": ti.cuda, "vulkan": ti.vulkan, "metal": ti.metal}.get(name)
    if arch is None:
        return False
    try:
        return bool(_misc.is_arch_supported(arch))
    except Exception:  # noqa: BLE001 -- a broken driver is "not available", never a crash
        return False


check_taichi()
