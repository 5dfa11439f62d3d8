"""A scene's options, written once: a config dataclass whose fields carry their help text and unit.

Each scene declares ``Config`` with :func:`option` fields; ``build(config)``, ``run(config, out)``,
its ``demo`` and ``diffsim run SCENE --help`` all read it, so a default is written in one place::

    @dataclass(frozen=True)
    class Config:
        steps: int = option(1500, "time steps of the shot", "steps")
        dt: float = option(1e-3, "time step", "s")

:func:`resolve` merges a config with keyword overrides and names an unknown option.
"""

from __future__ import annotations

import dataclasses
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
