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
- :func:`launch_kernel`: a kernel launched again on the same ndarrays skips Taichi's per-call
  argument checks and template-key derivation: it keeps the compiled kernel and the arrays'
  handles and builds the launch context from them (``Kernel.compiled_kernels``,
  ``make_launch_context``, ``Program.compile_kernel``/``launch_kernel``). Taichi's own call cost a
  28-argument kernel 192 us a launch; the tape launches the same kernels on the same arrays
  thousands of times. There is no public way to keep a launch's arguments.
- :func:`is_taichi_func` and :func:`taichi_func_source`: whether a function is a ``@ti.func``
  (Taichi marks it ``_is_taichi_function``) and the Python function it wraps (``decorated.func.func``), so that :mod:`diffsim.particles` can read the source
  of a user's force functions and refuse dynamic loops before Taichi's reverse mode crashes on
  them; Taichi has no public "the function under this decorator". A Taichi where it is not
  found makes that check skip (returns None), nothing else.
- :func:`compile_options`: Taichi compile-config fields (``cfg_optimization=False``) for the
  kernels compiled and launched inside a block only, through the running program's config
  object (``taichi.lang.impl.current_cfg()``); ``ti.init`` sets them for every kernel of the
  process, and no public API sets them per kernel.
"""

import contextlib
import warnings
import weakref

import numpy as np
import taichi as ti
from taichi.lang import impl as _impl
from taichi.lang import kernel_impl as _kernel_impl
from taichi.lang import misc as _misc
from taichi.lang._ndarray import Ndarray as _Ndarray
from taichi.lang.expr import Expr as _Expr
from taichi.types import primitive_types as _primitive_types
from taichi.types.ndarray_type import NdarrayType as _NdarrayType

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
            "taichi.lang.misc.is_arch_supported": getattr(_misc, "is_arch_supported", None),
            "taichi.lang.kernel_impl.Kernel.ensure_compiled": getattr(_kernel_impl.Kernel, "ensure_compiled", None),
            "taichi.lang.impl.current_cfg": getattr(_impl, "current_cfg", None)}
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


def is_taichi_func(f) -> bool:
    """Whether ``f`` is decorated with ``@ti.func`` (Taichi marks it ``_is_taichi_function``)."""
    return getattr(f, "_is_taichi_function", False) is True


def taichi_func_source(f):
    """The plain Python function under the ``@ti.func`` ``f``; None when ``f`` is not one (or this
    Taichi keeps it elsewhere)."""
    if not is_taichi_func(f):
        return None
    inner = getattr(getattr(f, "func", None), "func", None)
    return inner if callable(inner) and hasattr(inner, "__code__") else None


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


# ---------------------------------------------------------------------- kernel launches

_LAUNCHES_KEPT = 4096
"""Prepared launches kept at most (the oldest go first); each holds no array alive."""
_prepared: dict = {}


class _Prepared:
    """One compiled kernel with its ndarray arguments' handles; a launch builds a fresh context
    from them (Taichi's launcher rewrites a context's array entries when it launches, so a context
    is not launched twice) and sets the numbers."""

    __slots__ = ("prog", "kernel", "compiled", "arrays", "scalars", "positions", "numpy")

    def __init__(self, prog, kernel, compiled, arrays, scalars, positions, numpy):
        self.prog, self.kernel, self.compiled, self.arrays = prog, kernel, compiled, arrays
        self.scalars, self.positions, self.numpy = scalars, positions, numpy


def _taichi_kernel(kernel):
    """The ``taichi.lang.kernel_impl.Kernel`` behind a ``@ti.kernel`` function or its ``.grad``, or None."""
    if isinstance(kernel, _kernel_impl.Kernel):
        return kernel
    if getattr(kernel, "_is_wrapped_kernel", False) and not getattr(kernel, "_is_classkernel", True):
        return kernel._primal
    return None


_TEMPLATE, _REAL, _INT, _ARRAY, _NDARRAY = range(5)
_NUMBERS = (float, int, np.floating, np.integer)
_WHOLE = (int, np.integer)
_options_key = ()
"""The compile options :func:`compile_options` holds now, part of a kept launch's key: a kernel
launched under other options is another launch (Taichi compiles it under those)."""


def _plan(k):
    """Per argument of the kernel ``k``, what the fast path does with it (template value, real or
    signed whole number, ndarray or C-contiguous NumPy array, ndarray only), with the scalars'
    (slot, cast) and their positions in ``args``, and the positions of the arrays and of the
    template values: worked out once per kernel from its annotations; None when an argument is
    of another kind."""
    plan = getattr(k, "_diffsim_plan", False)
    if plan is False:
        codes, scalars, positions, slot = [], [], [], 0
        arrays, templates = [], []
        for i, arg in enumerate(k.arguments):
            need = arg.annotation
            if isinstance(need, _kernel_impl.template):
                codes.append(_TEMPLATE)
                templates.append(i)
                continue
            if id(need) in _primitive_types.real_type_ids:
                codes.append(_REAL)
                scalars.append((slot, float))
                positions.append(i)
            elif id(need) in _primitive_types.integer_type_ids and _kernel_impl.is_signed(_kernel_impl.cook_dtype(need)):
                codes.append(_INT)
                scalars.append((slot, int))
                positions.append(i)
            elif isinstance(need, _NdarrayType):
                # a NumPy array is passed by address and shape where the element is a number (a
                # vector or matrix element has Taichi strip the element axes: its own call does it)
                plain = need.dtype is None or id(need.dtype) in _primitive_types.type_ids
                codes.append(_ARRAY if plain else _NDARRAY)
                arrays.append(i)
            else:
                codes = None
                break
            slot += 1
        plan = None if codes is None else (tuple(codes), tuple(scalars), tuple(positions), tuple(arrays),
                                           tuple(templates))
        k._diffsim_plan = plan
    return plan


def _signature(k, args, options_key):
    """(cache key, ndarray args, NumPy args) for a launch the fast path serves, else None:
    every argument an ndarray (or a C-contiguous NumPy array where the kernel takes arrays of
    numbers), a whole or real number, or a hashable template value (what each argument must be
    comes from :func:`_plan`, once per kernel). The key holds the ndarrays' ids and the NumPy
    arrays' dtype and number of axes (what Taichi compiles for), not the NumPy arrays themselves."""
    plan = _plan(k)
    if plan is None or len(args) != len(plan[0]) or k.has_print:
        return None
    # the key: kernel, options, then the arrays in order, then the template values in order (the
    # order _launch's quick key has, so that a launch on ndarrays only is found by either)
    key, templates, arrays, externals, slot = [id(k), options_key], [], [], [], 0
    for code, value in zip(plan[0], args):
        if code is _ARRAY or code is _NDARRAY:
            if isinstance(value, _Ndarray):
                key.append(id(value))
                arrays.append((slot, value))
            elif code is _ARRAY and type(value) is np.ndarray and value.flags.c_contiguous:
                key.append((value.dtype.str, value.ndim))
                externals.append((slot, value))
            else:
                return None
        elif code is _TEMPLATE:
            if isinstance(value, (_Ndarray, np.ndarray)):
                return None
            try:
                templates.append((type(value), value, hash(value)))
            except TypeError:
                return None
            continue
        elif code is _REAL:
            if not isinstance(value, _NUMBERS) or isinstance(value, bool):
                return None
        elif not isinstance(value, _WHOLE):
            return None
        slot += 1
    return tuple(key + templates), arrays, externals


def _numbers_fit(plan, args) -> bool:
    """Whether every number argument is of a kind the kernel takes (as :func:`_signature` checks)."""
    for (_, cast), i in zip(plan[1], plan[2]):
        value = args[i]
        if cast is float:
            if not isinstance(value, _NUMBERS) or isinstance(value, bool):
                return False
        elif not isinstance(value, _WHOLE):
            return False
    return True


def _nothing_to_materialize(runtime) -> bool:
    """True when Taichi's ``runtime.materialize()`` before a launch would do nothing: no field
    declared, placed or left in an unfinished FieldsBuilder since the last one (it then only
    finalises the root and checks those fields; it costs ~5 us a launch otherwise)."""
    if (not runtime.materialized or runtime.global_vars or runtime.grad_vars or runtime.dual_vars
            or runtime.matrix_fields):
        return False
    root = _impl._root_fb
    if not getattr(root, "empty", False):
        return False
    builders = runtime.unfinalized_fields_builder
    return not builders or (len(builders) == 1 and root in builders)


def launch_kernel(kernel, *args):
    """``kernel(*args)`` for a ``@ti.kernel`` function or its ``.grad``, faster when the same
    kernel runs again on the same ndarrays (module doc): the first launch goes through Taichi's own
    call (which compiles), later ones skip its argument checks, key lookup and compiled-kernel
    lookup and set the arguments from kept handles (NumPy arrays by their address, as Taichi's
    call does). A kernel that prints, any other kind of argument, keyword arguments, a
    ``ti.ad.Tape`` or forward-mode scope, and other archs than the CPU take Taichi's own call."""
    return _launch(kernel, args, _options_key)


def launch_kernel_under(options: dict, kernel, *args):
    """``launch_kernel(kernel, *args)`` compiled and launched under the compile ``options`` (as
    inside ``compile_options(**options)``), without setting Taichi's config when the launch is
    kept already (setting and restoring it costs a few us a launch)."""
    key = _options_key_of(options)
    result = _launch(kernel, args, key, cold=False)
    if result is not _MISSED:
        return result
    with compile_options(**options):
        return launch_kernel(kernel, *args)


def _options_key_of(options: dict) -> tuple:
    """The key of the options now in force with ``options`` set over them: (name, repr(value))
    pairs, sorted (a value need not be hashable)."""
    return tuple(sorted({**dict(_options_key), **{name: repr(v) for name, v in options.items()}}.items()))


_MISSED = object()


def _launch(kernel, args, options_key, cold=True):
    """launch_kernel's work, under the options key given; with ``cold=False`` a launch not kept
    yet returns ``_MISSED`` instead of going through Taichi's call."""
    k = _taichi_kernel(kernel)
    runtime = _impl.get_runtime()
    if k is None or runtime.target_tape is not None or runtime.fwd_mode_manager is not None:
        return kernel(*args) if cold else _MISSED
    plan = _plan(k)
    entry = None
    if plan is not None and len(args) == len(plan[0]):
        # the quick key: a launch on ndarrays only (the tape's) is found without _signature's
        # pass over every argument; what it skips is checked on the entry found
        try:
            entry = _prepared.get((id(k), options_key, *[id(args[i]) for i in plan[3]],
                                   *[(type(args[i]), args[i], hash(args[i])) for i in plan[4]]))
        except TypeError:
            entry = None
    if (entry is not None and not entry.numpy and entry.prog is runtime.prog
            and all(ref() is args[i] for (_, ref, _, _), i in zip(entry.arrays, plan[3]))
            and _numbers_fit(plan, args)):
        externals = ()
    else:
        signature = _signature(k, args, options_key)
        if signature is None:
            return kernel(*args) if cold else _MISSED
        key, arrays, externals = signature
        entry = _prepared.get(key)
        if entry is not None and not (entry.prog is runtime.prog and all(
                ref() is a for (_, ref, _, _), (_, a) in zip(entry.arrays, arrays))):
            entry = None
    if entry is not None:
        if not _nothing_to_materialize(runtime):
            runtime.materialize()
        context = entry.kernel.make_launch_context()
        for slot, _, arr, grad in entry.arrays:
            if grad is None:
                context.set_arg_ndarray((slot,), arr)
            else:
                context.set_arg_ndarray_with_grad((slot,), arr, grad)
        for slot, value in externals:
            context.set_arg_external_array_with_shape((slot,), int(value.ctypes.data), value.nbytes, value.shape, 0)
        for (slot, cast), i in zip(entry.scalars, entry.positions):
            if cast is float:
                context.set_arg_float((slot,), float(args[i]))
            else:
                context.set_arg_int((slot,), int(args[i]))
        entry.prog.launch_kernel(entry.compiled, context)
        if k.return_type is None:
            return None
        _kernel_impl.runtime_ops.sync()  # as Taichi's own call does before reading what a kernel returns
        values = [k.construct_kernel_ret(context, rt, (i,)) for i, rt in enumerate(k.return_type)]
        return values[0] if len(values) == 1 else values
    if not cold:
        return _MISSED
    result = kernel(*args)  # compiles on the first call; Taichi's own checks and errors
    prog = runtime.prog
    if prog.config().arch != ti.cpu:
        return result
    t_kernel = k.compiled_kernels[k.ensure_compiled(*args)]
    # the compiled kernel as Taichi's call found it just now (owned by the program, which the
    # entry is tied to); under other compile options the key differs (``_options_key``)
    compiled = prog.compile_kernel(prog.config(), prog.get_device_caps(), t_kernel)
    if len(_prepared) >= _LAUNCHES_KEPT:
        del _prepared[next(iter(_prepared))]
    handles = [(slot, weakref.ref(a), a.arr, None if a.grad is None else a.grad.arr) for slot, a in arrays]
    _prepared[key] = _Prepared(prog, t_kernel, compiled, handles, plan[1], plan[2], bool(externals))
    return result


@contextlib.contextmanager
def compile_options(**options):
    """Set Taichi compile-config fields (e.g. ``cfg_optimization=False``) while the block
    compiles and launches kernels; the old values come back after it, also on an error.

    Taichi keys a compiled kernel, in memory and in its offline cache, by the whole config, so a
    kernel must be launched under the same options every time (else it compiles again under
    the others). A field the config lacks raises :class:`ValueError` naming it."""
    cfg = _impl.current_cfg()
    unknown = [name for name in options if not hasattr(cfg, name)]
    if unknown:
        raise ValueError(f"Taichi's compile config has no field {', '.join(unknown)}")
    global _options_key
    old = {name: getattr(cfg, name) for name in options}
    old_key = _options_key
    try:
        for name, value in options.items():
            setattr(cfg, name, value)
        _options_key = _options_key_of(options)
        yield
    finally:
        for name, value in old.items():
            setattr(cfg, name, value)
        _options_key = old_key
