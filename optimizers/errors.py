"""Errors raised by the optimisers.

Plain ``Exception`` subclasses with no dependencies, so that other packages (``diffsim``) can
raise, catch or subclass them without importing any optimiser machinery.
"""


class NonFiniteError(Exception):
    """A loss, gradient or parameter became NaN or infinite during an optimisation.

    The message names the iteration and, for gradients and parameters, the first offending
    entry, e.g. ``"iteration 17: gradient of parameter 'eps[2]' is NaN"``.

    Attributes (``None`` where not applicable):
        iteration: iteration at which the non-finite value appeared (0 is the initial point).
        quantity:  ``"loss"``, ``"gradient"`` or ``"parameter"``.
        index:     flat index of the first non-finite entry of ``quantity``.
        name:      name of that entry, when the caller supplied ``param_names``.
    """

    def __init__(self, message, *, iteration=None, quantity=None, index=None, name=None):
        super().__init__(message)
        self.iteration = iteration
        self.quantity = quantity
        self.index = index
        self.name = name

    def __reduce__(self):  # keep the attributes across pickling (e.g. multiprocessing)
        return (_rebuild, (type(self), str(self), self.iteration, self.quantity, self.index,
                           self.name))


def _rebuild(cls, message, iteration, quantity, index, name):
    return cls(message, iteration=iteration, quantity=quantity, index=index, name=name)


class CheckpointError(Exception):
    """A checkpoint file cannot be used to resume the requested optimisation."""


class ConfigError(ValueError):
    """A bad argument to an optimiser: a non-positive learning rate, an unknown method, a
    schedule that yields a negative rate. The message names the argument and the fix."""
