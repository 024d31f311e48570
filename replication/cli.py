"""Command line: ``python -m replication {list,run}``.

    python -m replication list
    python -m replication bench [--preset quick|full] [--out DIR]
    python -m replication landing [--out DIR]
    python -m replication run EXPERIMENT [--preset quick|full] [--widths 64,256,...]
        [--seeds N] [--depth D] [--activation A] [--parameterization P] [--lr LR]
        [--set STUDY.SETTING=VALUE ...] [--out DIR]

An experiment's configuration is nested, one frozen config per study
(``replication.config``). ``--set`` changes one setting by its path; each
shorthand flag means one thing in every experiment: it sets the setting of
its name (``FLAGS``) in every study that has one, and is refused where no
study has one.

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

import jax

from replication import config as configuration
from replication.arch import ACTIVATIONS
from replication.experiments import EXPERIMENTS, PRESETS, load
from replication.host_memory import keep_freed_memory
from replication.parametrization import CLOSED_FORM_PARAMETERIZATIONS

# Shorthand flag -> the name of the study settings it sets, in every study that has one.
FLAGS = {"widths": "widths", "seeds": "seeds", "depth": "depths", "activation": "activations",
         "parameterization": "parameterizations", "lr": "learning_rate"}


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
    run.add_argument("--set", action="append", default=[], metavar="STUDY.SETTING=VALUE",
                     help="change one setting of the experiment's configuration (repeatable)")
    run.add_argument("--out", default="reports", help="output folder (default: reports)")
    bench = sub.add_parser("bench", help="measure performance, write reports/performance.md")
    bench.add_argument("--preset", default="quick", help="quick (default) or full")
    bench.add_argument("--out", default="reports", help="output folder (default: reports)")
    landing = sub.add_parser("landing", help="write reports/README.md, every claim's verdict")
    landing.add_argument("--out", default="reports", help="reports folder (default: reports)")
    return parser


def make_config(module, preset: str, overrides: dict, assignments=()):
    """The preset's config with the command line's shorthand flags, then ``--set`` assignments, applied.

    A shorthand flag sets every study setting of its name (``FLAGS``); a
    scalar given for a tuple-valued setting (``--depth 2`` for ``depths``)
    becomes a one-element tuple.
    """
    config = module.PRESETS[preset]
    for option, value in overrides.items():
        config, found = configuration.with_everywhere(config, FLAGS[option], value)
        if not found:
            raise UsageError(f"option --{option} does not apply to experiment "
                             f"{module.__name__.rpartition('.')[2]!r}: no study has a setting "
                             f"{FLAGS[option]!r}")
    for assignment in assignments:
        try:
            config = configuration.override(config, assignment)
        except configuration.ConfigError as e:
            raise UsageError(str(e)) from None
    return config


def _run_module(module, config, preset, out, overrides, command) -> Path:
    """Run an experiment module (or the benchmark) and write its report; return the markdown's path."""
    from replication import provenance
    from replication.report import code_version, write_report

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
        f" --{k} {','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in overrides.items()
        if k != "set") + "".join(f" --set {a}" for a in overrides.get("set", ()))
    if jax.process_index() > 0:   # a run over several processes: process 0 writes the report
        return Path(out) / f"{report.experiment}.md"
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
            config = module.PRESETS[args.preset]
        else:
            overrides = _check_run_args(args)
            module = load(args.experiment)
            config = make_config(module, args.preset, overrides, args.set)
            if args.set:
                overrides["set"] = tuple(args.set)
            command = f"python -m replication run {args.experiment} --preset {args.preset}"
    except UsageError as e:
        print(f"replication: error: {e}", file=sys.stderr)
        return 2
    # A run spread over processes joins them before any computation (replication.distributed).
    from replication import distributed

    distributed.initialize()
    # Wide networks' buffers are reused rather than faulted in afresh on every call.
    keep_freed_memory()
    # SIGTERM unwinds like Ctrl-C, so the report writer's staging folder is
    # removed and the previous report stays in place.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        path = _run_module(module, config, args.preset, args.out, overrides, command)
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
