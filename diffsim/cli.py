"""The ``diffsim`` command: ``info``, ``demo``, ``run SCENE``, ``bench``."""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time
import traceback


def _runtime_args(parser):
    parser.add_argument("--arch", default="auto", choices=["auto", "cpu", "cuda", "vulkan", "metal"])
    parser.add_argument("--precision", default="f64", choices=["f32", "f64"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--deterministic", action="store_true")


def _init(args):
    import diffsim

    return diffsim.init(arch=args.arch, precision=args.precision, threads=args.threads,
                        deterministic=args.deterministic)


def cmd_info(args) -> int:
    import diffsim

    _init(args)
    for key, value in diffsim.info().items():
        print(f"{key:>13}: {value}")
    return 0


def cmd_demo(args) -> int:
    import scenes

    _init(args)
    out = pathlib.Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    print(f"[diffsim demo] writing to {out}")
    summary, failed, missed = {}, [], []
    names = args.only or (None if args.all else scenes.HEADLINE)
    unknown = sorted(set(args.only or ()) - set(scenes.available()))
    if unknown:
        print(f"unknown scenes {unknown}; scenes are {scenes.available()}", file=sys.stderr)
        return 2
    for name, module in scenes.demos(names):
        start = time.perf_counter()
        print(f"\n== {name}")
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
        summary[name] = result
        print(json.dumps({name: result}, default=str))
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"\n[diffsim demo] {len(summary) - len(failed) - len(missed)} scenes reached their goal, "
          f"{len(missed)} missed it{' (' + ', '.join(missed) + ')' if missed else ''}, {len(failed)} failed"
          f"{' (' + ', '.join(failed) + ')' if failed else ''}; pictures and summary.json in {out}")
    return 1 if failed or missed else 0


def cmd_run(args) -> int:
    import scenes

    from .errors import DiffsimError

    try:
        module = scenes.load(args.scene)
    except ValueError as exc:
        print(f"diffsim run: {exc}", file=sys.stderr)
        return 2
    if args.arch != "auto" or args.precision != "f64" or args.threads or args.deterministic:
        _init(args)
    try:
        result = module.main(args.rest)
    except DiffsimError as exc:  # bad options or a diverged run: one line, not a traceback
        print(f"diffsim run {args.scene}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return int(result or 0)  # each scene's main returns 1 (and says why on stderr) when it misses its goal


def cmd_bench(args) -> int:
    root = pathlib.Path(args.dir)
    scripts = sorted(root.glob("*.py")) if root.is_dir() else []
    if args.only:
        scripts = [s for s in scripts if s.stem in args.only]
    if not scripts:
        print(f"no benchmark scripts in {root.resolve()}: run from a checkout of the repository", file=sys.stderr)
        return 2
    code = 0
    for script in scripts:
        cmd = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
        print(f"== {' '.join(cmd)}", flush=True)
        code |= subprocess.call(cmd, env=dict(os.environ))
    return code


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="diffsim", description="Differentiable physics on Taichi.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="Taichi version, arch, precision, threads")
    _runtime_args(p)
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("demo", help="run the headline scenes (--all: every scene) at small size, write pictures")
    _runtime_args(p)
    p.add_argument("--out", default="diffsim-out", help="folder for pictures and summary.json")
    p.add_argument("--only", nargs="*", help="scene names to run (default: the headline scenes)")
    p.add_argument("--all", action="store_true", help="run every scene's demo")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("run", help="run one scene: diffsim run SCENE [scene options]")
    _runtime_args(p)
    p.add_argument("scene")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("bench", help="run benchmarks/*.py (one JSON line per figure)")
    p.add_argument("--dir", default="benchmarks")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", nargs="*")
    p.set_defaults(func=cmd_bench)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
