"""Progress bars for long forward work (``MDSystem.simulate``, ...): ``tqdm.auto``, so a text bar
on stderr in a terminal and a widget in Jupyter, shown only where someone is watching.

``progress=None`` (the default of the callers) shows a bar for work of at least
``min_total`` units when stderr is a terminal or the code runs in a Jupyter kernel, as
``optimizers.minimize`` does; ``True``/``False`` force it on or off.
"""

import sys


def interactive() -> bool:
    """True in a terminal (stderr is a TTY) or inside a running Jupyter kernel (an IPython shell
    from ipykernel; ``optimizers.minimize`` decides alike without importing the engine)."""
    if getattr(sys.stderr, "isatty", lambda: False)():
        return True
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)() if ipython is not None else None
    return shell is not None and type(shell).__module__.startswith("ipykernel")


class _Silent:
    """The bar's interface, doing nothing."""

    def update(self, n=1):
        """Ignore ``n`` units of progress."""

    def close(self):
        """Nothing to close."""


def progress_bar(total: int, desc: str, progress=None, min_total: int = 10_000, unit: str = "step"):
    """A bar of ``total`` units labelled ``desc`` (``update(n)``, ``close()``), or one that does
    nothing: ``progress`` None shows it for ``total >= min_total`` units when :func:`interactive`,
    True always, False never."""
    if progress is None:
        progress = total >= min_total and interactive()
    if not progress:
        return _Silent()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
