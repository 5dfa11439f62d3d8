"""A scene's options, written once: a config dataclass whose fields carry their help text and unit.

Each scene declares ``Config`` with :func:`option` fields under :func:`scene_config`;
``build(config)``, ``run(config, out)``, its ``demo`` and ``diffsim run SCENE --help`` all read
it, so a default is written in one place::

    @scene_config
    class Config:
        steps: int = option(1500, "time steps of the shot", "steps")
        dt: float = option(1e-3, "time step", "s")

:func:`resolve` merges a config with keyword overrides and names an unknown option.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from dataclasses import dataclass, field

from diffsim.errors import ConfigError


def option(default, help: str, unit: str = "", choices=None):
    """A config field: ``default`` value, one-line ``help``, ``unit`` as printed ("m", "s", "N m";
    empty for a count or a name) and, for a string option, its allowed ``choices``."""
    return field(default=default, metadata={"help": help, "unit": unit, "choices": choices})


@dataclass(frozen=True)
class OptionSpec:
    """One config field as the command line shows it: ``name`` (the field), ``default``,
    ``help``, ``unit`` and ``choices`` (None: any value of the default's type)."""

    name: str
    default: object
    help: str
    unit: str
    choices: tuple | None


def options(config_type) -> list:
    """The :class:`OptionSpec` of every field of the config dataclass ``config_type``, in order."""
    return [OptionSpec(f.name, f.default, f.metadata.get("help", ""), f.metadata.get("unit", ""),
                       f.metadata.get("choices")) for f in dataclasses.fields(config_type)]


def _check_number(f, value):
    """A number option must be finite (NaN or infinity reach a scene as a model no check names
    rightly: a NaN stiffness surfaced as a body's NaN position), NaN allowed where it is the
    default (it means "the scene chooses"), and a time step (``dt``) positive."""
    values = value if isinstance(value, tuple) else (value,)
    sentinel = isinstance(f.default, float) and f.default != f.default  # NaN meaning "choose for me"
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        unit = f" ({f.metadata.get('unit')})" if f.metadata.get("unit") else ""
        if (v != v and not sentinel) or v in (float("inf"), float("-inf")):
            raise ConfigError(f"option {f.name} ({f.metadata.get('help', '')}) must be a finite number{unit}, got {v}")
        if f.name == "dt" and v <= 0:
            raise ConfigError(f"option dt (time step) must be a positive number{unit}, got {v}")


def scene_config(cls):
    """A frozen dataclass of :func:`option` fields whose constructor names an unknown option (a
    :class:`ConfigError` with the nearest option and the list, not a bare TypeError) and whose
    docstring lists every option with its unit and default (``help(Config)``)."""
    cls = dataclass(frozen=True)(cls)
    init, known = cls.__init__, [f.name for f in dataclasses.fields(cls)]

    @functools.wraps(init)
    def checked_init(self, *args, **kwargs):
        unknown = [k for k in kwargs if k not in known]
        if unknown:
            close = difflib.get_close_matches(unknown[0], known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{cls.__module__}.{cls.__qualname__}: unknown option {unknown[0]!r}{hint}; "
                              f"the options are {known}")
        init(self, *args, **kwargs)
        for f in dataclasses.fields(cls):
            _check_number(f, getattr(self, f.name))

    cls.__init__ = checked_init
    lines = [f"- ``{o.name}`` = {o.default!r}: {o.help}" + (f" [{o.unit}]" if o.unit else "") for o in options(cls)]
    cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n\n    Options (default: meaning [unit]):\n\n" + "\n".join(
        "    " + line for line in lines) + "\n"
    return cls


def resolve(config_type, config=None, **overrides):
    """``config`` (default: ``config_type()``) with ``overrides`` replaced; a :class:`ConfigError`
    naming an option the scene does not have, or a config of another scene."""
    if config is None:
        config = config_type()
    elif not isinstance(config, config_type):
        raise ConfigError(f"expected a {config_type.__module__}.{config_type.__qualname__}, got "
                          f"{type(config).__name__}; build it with {config_type.__qualname__}(...)")
    known = {f.name for f in dataclasses.fields(config_type)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"{config_type.__module__}: unknown option(s) {unknown}; the options are {sorted(known)}")
    return dataclasses.replace(config, **overrides)
