"""Fault injection for tests of the executors: a recipe whose worker kills itself mid-evaluation.

``Recipe("diffsim.distributed.testing:crash_once", {"recipe": (target, config), "case": 5,
"at_call": 3, "marker": "/tmp/x"})`` builds the wrapped recipe; the shard that holds ``case``
sends SIGKILL to its own process during its ``at_call``-th evaluation (counted from 1, the
warm-up included), once: it first creates the file ``marker``, and a worker restarted from the
recipe sees it and carries on. The loss and gradient are the wrapped recipe's.
"""

import os
import signal

from .recipe import as_recipe
from .worker import shard_objective


class _CrashOnce:
    def __init__(self, inner, marker, at_call):
        self.inner, self.marker, self.at_call, self.calls = inner, marker, at_call, 0

    def __call__(self, x):
        self.calls += 1
        loss, grad = self.inner(x)
        if self.calls == self.at_call and not os.path.exists(self.marker):
            with open(self.marker, "w") as f:
                f.write(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return loss, grad


class CrashOnce:
    def __init__(self, config):
        self.inner = as_recipe(tuple(config["recipe"])).build()
        self.case, self.marker, self.at_call = config["case"], config["marker"], int(config.get("at_call", 1))

    def x0(self):
        return self.inner.x0()

    def shard(self, cases):
        objective = shard_objective(self.inner, cases)
        if self.case in cases:
            return _CrashOnce(objective, self.marker, self.at_call)
        return objective


def crash_once(config: dict) -> CrashOnce:
    """Recipe builder (see module doc)."""
    return CrashOnce(config)
