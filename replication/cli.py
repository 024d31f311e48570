"""Command line: ``python -m replication {list,run}``.

    python -m replication list
    python -m replication bench [--preset quick|full] [--out DIR]
    python -m replication landing [--out DIR]
    python -m replication run EXPERIMENT [--preset quick|full] [--widths 64,256,...]
        [--seeds N] [--depth D] [--activation A] [--parameterization P] [--lr LR] [--out DIR]

Every value is checked before any computation or any file is written: a bad one gets one line on stderr naming it and what is allowed,
and exit status 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import signal
import sys
import time
from pathlib import Path

from replication.arch import ACTIVATIONS
from replication.experiments import EXPERIMENTS, PRESETS, load
from replication.host_memory import keep_freed_memory
from replication.parametrization import CLOSED_FORM_PARAMETERIZATIONS



class UsageError(Exception):
    """A bad command-line value; its message is the one line the user sees."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _positive_int(text: str, what: str = "value") -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 or str(value) != text.strip().lstrip("+"):
        raise argparse.ArgumentTypeError(f"{what} {text!r} is not a positive integer")
    return value


def _widths(text: str) -> tuple[int, ...]:
    parts = text.split(",")
    return tuple(_positive_int(p.strip(), "width") for p in parts)


def _learning_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(
            f"learning rate {text!r} is not a positive finite number")
    return value


def _choice(kind: str, value: str, allowed) -> str:
    if value not in allowed:
        raise UsageError(f"unknown {kind} {value!r}; allowed: {', '.join(allowed)}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m replication",
                     description="A replication study of infinite-width neural network theory.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="list the experiments")
    run = sub.add_parser("run", help="run one experiment and write its report")
    run.add_argument("experiment")
    run.add_argument("--preset", default="quick", help="quick (default) or full")
    run.add_argument("--widths", type=_widths, help="comma-separated positive integers")
    run.add_argument("--seeds", type=lambda t: _positive_int(t, "seed count"))
    run.add_argument("--depth", type=lambda t: _positive_int(t, "depth"))
    run.add_argument("--activation", help=", ".join(ACTIVATIONS))
    run.add_argument("--parameterization", help=", ".join(CLOSED_FORM_PARAMETERIZATIONS))
    run.add_argument("--lr", type=_learning_rate, help="learning rate, a positive number")
    run.add_argument("--out", default="reports", help="output folder (default: reports)")
    bench = sub.add_parser("bench", help="measure performance, write reports/performance.md")
    bench.add_argument("--preset", default="quick", help="quick (default) or full")
    bench.add_argument("--out", default="reports", help="output folder (default: reports)")
    landing = sub.add_parser("landing", help="write reports/README.md, every claim's verdict")
    landing.add_argument("--out", default="reports", help="reports folder (default: reports)")
    return parser


def make_config(module, preset: str, overrides: dict):
    """The preset's config with the command line's overrides applied.

    A scalar given for a tuple-valued field (``--depth 2`` for ``depths``)
    becomes a one-element tuple.
    """
    config = module.PRESETS[preset]
    changes = {}
    for option, value in overrides.items():
        name = module.OPTIONS[option]
        current = getattr(config, name)
        if isinstance(current, tuple) and not isinstance(value, tuple):
            value = (value,)
        changes[name] = value
    return dataclasses.replace(config, **changes)


def _run_module(module, preset, out, overrides, command) -> Path:
    """Run an experiment module (or the benchmark) and write its report; return the markdown's path."""
    from replication import provenance
    from replication.report import code_version, write_report

    config = make_config(module, preset, overrides)
    # Taken before the run: the code may change while it runs.
    version = code_version()
    name = module.__name__.rpartition(".")[2]
    if module.__name__.startswith("replication.experiments."):
        inputs, digest = provenance.inputs(name), provenance.digest(name)
    else:
        inputs, digest = [], ""
    start = time.perf_counter()
    report = module.run(config)
    report.code_version = version
    report.inputs = inputs
    # Only a run of the preset as it stands is what `make` may call up to date.
    report.inputs_digest = "" if overrides else digest
    report.preset = preset
    report.config = dataclasses.asdict(config)
    report.seconds = time.perf_counter() - start
    report.command = command + "".join(
        f" --{k} {','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in overrides.items())
    return write_report(report, out)


def _check_run_args(args) -> dict:
    _choice("experiment", args.experiment, EXPERIMENTS)
    _choice("preset", args.preset, PRESETS)
    if args.activation is not None:
        _choice("activation", args.activation, ACTIVATIONS)
    if args.parameterization is not None:
        _choice("parameterization", args.parameterization, CLOSED_FORM_PARAMETERIZATIONS)
    given = {k: getattr(args, k) for k in
             ("widths", "seeds", "depth", "activation", "parameterization", "lr")
             if getattr(args, k) is not None}
    module = load(args.experiment)
    for option in given:
        if option not in module.OPTIONS:
            takes = ", ".join(f"--{o}" for o in module.OPTIONS) or "no options"
            raise UsageError(f"option --{option} does not apply to experiment "
                             f"{args.experiment!r}; it takes {takes}")
    return given


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "list":
            for name, description in EXPERIMENTS.items():
                print(f"{name:12s} {description}")
            return 0
        if args.command == "landing":
            from replication import landing

            print(landing.write(args.out))
            return 0
        if args.command == "bench":
            _choice("preset", args.preset, PRESETS)
            from replication import bench as module

            overrides, command = {}, f"python -m replication bench --preset {args.preset}"
        else:
            overrides = _check_run_args(args)
            module = load(args.experiment)
            command = f"python -m replication run {args.experiment} --preset {args.preset}"
    except UsageError as e:
        print(f"replication: error: {e}", file=sys.stderr)
        return 2
    # Wide networks' buffers are reused rather than faulted in afresh on every call.
    keep_freed_memory()
    # SIGTERM unwinds like Ctrl-C, so the report writer's staging folder is
    # removed and the previous report stays in place.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        path = _run_module(module, args.preset, args.out, overrides, command)
    except MemoryError as e:  # replication.memory's refusals, and any allocation that failed
        print(f"replication: error: out of memory: {str(e).splitlines()[0] if str(e) else type(e).__name__}; "
              "the previous report is left in place", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("replication: interrupted; the previous report is left in place (or, if the "
              "signal came as it was being put in place, the new one, whole)", file=sys.stderr)
        return 130
    print(path)
    return 0
