"""Comparisons and boolean algebra on Taichi expressions, as plain operations.

Taichi 1.7.4 compiles a comparison written as Python syntax inside Taichi scope (``a < b``) as
``True and (a < b)``, a short-circuit: a local boolean, an ``if`` that stores the comparison into
it, and a load (``ASTTransformer.build_Compare``). Taichi's control-flow optimisation removes the
pattern again, but the gradient kernels that compile with it off (``LeanAdjoint``) keep every one,
and their reverse mode turns each local stored inside a loop into an adstack. ``and``/``or``
(Python's) short-circuit the same way. These helpers are plain Python called at compile time
(:func:`diffsim.compat.compile_time`): on Taichi expressions they emit the bare comparison
(``cmp_lt``) or bitwise ``&``/``|`` on booleans, exactly the values the Python syntax gives.
Measured: the impulse model's box-pair contact kernel (3D) held 65 such ``if``s and 97 adstacks.
Use them in differentiated kernels' straight-line code; on Python numbers they give Python bools.
"""

from ..compat import compile_time


@compile_time
def lt(a, b):
    """a < b."""
    return a < b


@compile_time
def le(a, b):
    """a <= b."""
    return a <= b


@compile_time
def gt(a, b):
    """a > b."""
    return a > b


@compile_time
def ge(a, b):
    """a >= b."""
    return a >= b


@compile_time
def eq(a, b):
    """a == b."""
    return a == b


@compile_time
def both(a, b):
    """a and b, for booleans (the results of the comparisons here), without short circuit."""
    return a & b


@compile_time
def either(a, b):
    """a or b, for booleans, without short circuit."""
    return a | b


__all__ = ["both", "either", "eq", "ge", "gt", "le", "lt"]
