"""The ``diffsim`` command: ``info``, ``demo``, ``run SCENE``, ``bench``.

It sits on top of the engine (``diffsim``) and the ready-made problems (``scenes``); the engine
never imports it. Every scene gets the same runtime and output options; its own options come
from its ``Config`` dataclass (help text, unit and default written once, in the scene).

Exit status: 0 when the command did what was asked (a scene reached its goal); 1 when a scene
ran but missed its goal (a ``GOAL MISSED`` line on stderr says by how much); 2 for bad input
(an unknown scene, a bad option, any :class:`diffsim.DiffsimError`), printed as one line, no
traceback. Taichi's banner and driver warnings are hidden unless ``--verbose``.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import io
import json
import os
import pathlib
import re
import subprocess
import sys
import time
import traceback

__all__ = ["main"]

ARCHS = ("auto", "cpu", "cuda", "vulkan", "metal")
EXTRAS = {"torch": "torch", "ase": "md", "ray": "distributed"}  # optional package -> pyproject extra


def _quiet_taichi():
    """Hide Taichi's import banner and its C++ warnings (e.g. "libcuda.so lib not found" on a
    machine without NVIDIA drivers). Only effective before ``taichi`` is first imported."""
    os.environ.setdefault("ENABLE_TAICHI_HEADER_PRINT", "0")
    os.environ.setdefault("TI_LOG_LEVEL", "error")


def _runtime_args(parser):
    """The options every command that starts the runtime shares."""
    group = parser.add_argument_group("runtime")
    group.add_argument("--arch", choices=ARCHS, default=None,
                       help="where Taichi runs: auto takes a GPU when there is one, else the CPU (default: auto)")
    group.add_argument("--precision", choices=("f32", "f64"), default=None,
                       help="float type of states, parameters and gradients (default: f64)")
    group.add_argument("--threads", type=int, default=None,
                       help="CPU threads (default: all cores; 1 with --deterministic)")
    group.add_argument("--deterministic", action="store_true",
                       help="bitwise-repeatable results (forces one CPU thread)")
    group.add_argument("--verbose", "-v", action="store_true",
                       help="show Taichi's banner, driver warnings and kernel messages")


def _start_runtime(args):
    """Start the diffsim runtime with the options given on the command line, once.

    When the runtime is already running (the CLI called from Python after a system was built),
    the options given must agree with it; ``diffsim.init`` raises a ConfigError naming both
    otherwise. Options left out keep the running (or default) values."""
    import taichi as ti

    import diffsim

    given = {k: getattr(args, k) for k in ("arch", "precision", "threads") if getattr(args, k) is not None}
    if args.deterministic:
        given["deterministic"] = True
    if diffsim.is_initialized():
        running = diffsim.config()
        wanted = {"arch": running.requested_arch, "precision": running.precision, "threads": running.threads,
                  "deterministic": running.deterministic, "debug": running.debug}
        if "threads" in given and "deterministic" not in given:
            wanted["deterministic"] = False
        return diffsim.init(**{**wanted, **given})
    if args.verbose:
        return diffsim.init(**given)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # ti.init prints "[Taichi] Starting on arch=..."
        cfg = diffsim.init(**given, log_level=ti.ERROR)
    for line in printed.getvalue().splitlines():
        if not line.startswith("[Taichi]"):
            print(line)
    return cfg


# ------------------------------------------------------------------------------------ commands


def cmd_info(args) -> int:
    import diffsim

    _start_runtime(args)
    for key, value in diffsim.info().items():
        print(f"{key:>13}: {value}")
    return 0


def cmd_demo(args) -> int:
    import scenes

    unknown = sorted(set(args.only or ()) - set(scenes.available()))
    if unknown:
        print(f"diffsim demo: unknown scenes {unknown}; scenes are {scenes.available()}", file=sys.stderr)
        return 2
    _start_runtime(args)
    out = pathlib.Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    print(f"[diffsim demo] writing to {out}")
    summary, failed, missed = {}, [], []
    names = args.only or (None if args.all else scenes.HEADLINE)
    chosen = scenes.demos(names)
    for k, (name, module) in enumerate(chosen, 1):
        start = time.perf_counter()
        print(f"\n== {name} (scene {k} of {len(chosen)})", flush=True)
        try:
            if isinstance(module, Exception):
                raise module
            result = module.demo(out)
        except Exception as exc:  # noqa: BLE001 -- one broken scene must not hide the others' results
            traceback.print_exc()
            failed.append(name)
            result = {"error": f"{type(exc).__name__}: {exc}"}
        if result.get("success") is False:
            missed.append(name)
            print(f"GOAL MISSED: {result.get('message', name)}", file=sys.stderr)
        result["seconds"] = round(time.perf_counter() - start, 2)
        summary[name] = _relative_paths(result, out)
        print(json.dumps({name: summary[name]}, default=str))
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"\n[diffsim demo] {len(summary) - len(failed) - len(missed)} scenes reached their goal, "
          f"{len(missed)} missed it{' (' + ', '.join(missed) + ')' if missed else ''}, {len(failed)} failed"
          f"{' (' + ', '.join(failed) + ')' if failed else ''}; pictures and summary.json in {out}")
    return 1 if failed or missed else 0


def _relative_paths(result: dict, out: pathlib.Path) -> dict:
    """``result`` with every file path under ``out`` written relative to it (summary.json sits
    there, so its paths work wherever the folder is moved)."""
    def fix(value):
        if isinstance(value, (str, pathlib.Path)) and pathlib.Path(value).is_absolute():
            path = pathlib.Path(value)
            if path.is_relative_to(out):
                return str(path.relative_to(out))
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fix(v) for v in value]
        return value
    return fix(result)


def cmd_run(args) -> int:
    from scenes._goal import report

    module = args.module
    config = _config_from_args(module.Config, args)
    _start_runtime(args)
    out = pathlib.Path(args.out).resolve()
    result = module.run(config, out)
    print(json.dumps(_relative_paths(result.summary(), out), default=str))  # file names relative to --out
    return report(result)


def cmd_bench(args) -> int:
    root = pathlib.Path(args.dir)
    scripts = sorted(root.glob("*.py")) if root.is_dir() else []
    if args.only:
        scripts = [s for s in scripts if s.stem in args.only]
    if not scripts:
        print(f"diffsim bench: no benchmark scripts in {root.resolve()}: run from a checkout of the repository",
              file=sys.stderr)
        return 2
    code = 0
    for script in scripts:
        cmd = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
        print(f"== {' '.join(cmd)}", flush=True)
        code |= subprocess.call(cmd, env=dict(os.environ))
    return code


# ------------------------------------------------------------------------------------ scene options


def _add_scene_options(parser, config_type):
    """One ``--name`` per field of the scene's config dataclass, with its help, unit and default."""
    from scenes._config import options

    group = parser.add_argument_group("scene options")
    for spec in options(config_type):
        flag = "--" + spec.name.replace("_", "-")
        unit = f" [{spec.unit}]" if spec.unit else ""
        text = f"{spec.help}{unit} (default: {spec.default})".replace("%", "%%")
        kwargs = {"dest": spec.name, "default": spec.default, "help": text}
        if isinstance(spec.default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif isinstance(spec.default, tuple) and isinstance(spec.default[0], str):
            kwargs.update(nargs="+", metavar=spec.name.upper())
        elif isinstance(spec.default, tuple):
            kwargs.update(nargs=len(spec.default), type=type(spec.default[0]), metavar=spec.name.upper())
        elif spec.choices:
            kwargs["choices"] = spec.choices
        else:
            kwargs["type"] = type(spec.default)
        group.add_argument(flag, **kwargs)


def _config_from_args(config_type, args):
    from scenes._config import options

    values = {}
    for spec in options(config_type):
        value = getattr(args, spec.name)
        values[spec.name] = tuple(value) if isinstance(spec.default, tuple) else value
    return config_type(**values)


def _one_line(module) -> str:
    """The first sentence of a module's docstring, markup removed."""
    paragraph = " ".join((module.__doc__ or "").strip().split("\n\n")[0].split())
    sentence = paragraph.split(". ")[0].rstrip(".").replace("``", "")
    return sentence + "."


def _goal_line(module) -> str:
    """The sentence of a scene's docstring that states its goal ("Goal: ..."), markup removed."""
    doc = " ".join((module.__doc__ or "").split()).replace("``", "")
    found = re.search(r"\bGoals?\b[^:.]{0,60}:\s*(.*?)(?:\.\s|\.$|$)", doc)
    return f"Goal: {found.group(1)}." if found else ""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``diffsim`` (imports every scene to list its options)."""
    import scenes

    parser = argparse.ArgumentParser(prog="diffsim", description="Differentiable physics on Taichi.",
                                     allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    by_command = parser.by_command = {}  # (command, scene or None) -> its parser, for error messages
    p = by_command["info", None] = sub.add_parser("info", allow_abbrev=False, help="Taichi version, arch, precision, threads",
                       description="Start the runtime and print its settings.")
    _runtime_args(p)
    p.set_defaults(func=cmd_info)
    p = by_command["demo", None] = sub.add_parser("demo", allow_abbrev=False, help="run the headline scenes (--all: every scene) at small size, write pictures",
                       description="Run scene demos at small size; pictures and summary.json go into --out.")
    _runtime_args(p)
    p.add_argument("--out", default="diffsim-out", help="folder for pictures and summary.json (default: diffsim-out)")
    p.add_argument("--only", nargs="*", metavar="SCENE", help="scene names to run (default: the headline scenes "
                   f"{', '.join(scenes.HEADLINE)})")
    p.add_argument("--all", action="store_true", help="run every scene's demo")
    p.set_defaults(func=cmd_demo)
    run = by_command["run", None] = sub.add_parser("run", allow_abbrev=False, help="run one scene at its default size: diffsim run SCENE [options]",
                         description="Run one ready-made problem and say whether it reached its goal "
                                     "(exit status 1 when it did not). `diffsim run SCENE --help` lists its options.")
    scenes_sub = run.add_subparsers(dest="scene", required=True, metavar="SCENE", title="scenes")
    for name in scenes.available():
        try:
            module = scenes.load(name)
        except Exception as exc:  # noqa: BLE001 -- listed with the reason, never hidden
            scenes_sub.add_parser(name, help=f"(cannot be loaded: {type(exc).__name__}: {exc})")
            continue
        p = by_command["run", name] = scenes_sub.add_parser(name, help=_one_line(module), allow_abbrev=False,
                                  description=f"{_one_line(module)} {_goal_line(module)}".strip())
        _add_scene_options(p, module.Config)
        p.add_argument("--out", default="diffsim-out", help="folder for pictures (default: diffsim-out)")
        _runtime_args(p)
        p.set_defaults(func=cmd_run, module=module)
    p = by_command["bench", None] = sub.add_parser("bench", allow_abbrev=False, help="run benchmarks/*.py (one JSON line per figure)",
                       description="Run the benchmark scripts of a checkout, one JSON line per figure.")
    p.add_argument("--dir", default="benchmarks", help="folder of benchmark scripts (default: benchmarks)")
    p.add_argument("--quick", action="store_true", help="small sizes")
    p.add_argument("--only", nargs="*", metavar="NAME", help="script names without .py")
    p.set_defaults(func=cmd_bench)
    return parser


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _flags(parsers: dict, args) -> list:
    """The options (from its help text) of the command, or scene of ``run``, that ``args`` ran."""
    key = (args.command, getattr(args, "scene", None))
    return sorted(set(re.findall(r"--[a-z][a-z0-9-]*", parsers[key].format_help())))


def main(argv=None) -> int:
    """Run ``diffsim ARGV`` and return its exit status (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not ({"--verbose", "-v"} & set(argv)):
        _quiet_taichi()
    import scenes
    from diffsim.errors import DiffsimError

    if len(argv) >= 2 and argv[0] == "run" and not argv[1].startswith("-") and argv[1] not in scenes.available():
        print(f"diffsim run: unknown scene {argv[1]!r}{_did_you_mean(argv[1], scenes.available())}; "
              f"scenes are {', '.join(scenes.available())}", file=sys.stderr)
        return 2
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
    except SystemExit as exc:  # --help, or argparse's own usage error (status 2)
        return exc.code if isinstance(exc.code, int) else 2
    if extra:  # named here, with the options of the command or scene it was given to
        where = f"diffsim {args.command}" + (f" {args.scene}" if getattr(args, "scene", None) else "")
        flags = _flags(parser.by_command, args)
        print(f"{where}: unknown argument {extra[0]!r}{_did_you_mean(extra[0], flags)}; "
              f"see {where} --help", file=sys.stderr)
        return 2
    where = f"diffsim {args.command}" + (f" {args.scene}" if getattr(args, "scene", None) else "")
    try:
        return args.func(args)
    except DiffsimError as exc:  # bad input or a diverged run: one line, not a traceback
        print(f"{where}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # an optional dependency (torch, ase, ray) is not installed
        if exc.name not in EXTRAS:
            raise
        print(f"{where}: needs the Python package {exc.name!r}: pip install -e \".[{EXTRAS[exc.name]}]\" "
              f"(or pip install {exc.name})", file=sys.stderr)
        return 2
