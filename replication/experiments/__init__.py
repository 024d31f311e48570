"""The experiments: one package each, a report each.

An experiment package is the theory's docstring, its nested ``Config`` (a
``seed`` and one frozen config per study), its ``PRESETS``, the table of its
named random streams (``STREAMS``, see ``replication.sweep.Streams``), its
list of ``STUDIES`` and ``run(config) -> replication.report.Report``.

A study is one module with the same shape everywhere:

    Config                           frozen dataclass, its numbers named and commented
    measure(config, streams) -> R    runs the networks and closed forms: arrays only
    findings(config, R) -> Findings  claims, tables, figures, prose (replication.report)

so a test that needs two numbers calls ``measure`` and draws nothing.
Studies shared by two experiments live in ``replication.studies``.
"""
import importlib
import time

from replication.report import Findings, Report
from replication.sweep import Streams

EXPERIMENTS = {
    "nngp": "networks at initialisation are Gaussian processes",
    "ntk": "the neural tangent kernel converges, stays put in training, and fixes the dynamics",
    "regression": "the worked example: a two-layer ReLU network against its NTK regression",
    "lazy": "why the NTK regime cannot learn features: weights, features and kernel freeze as width grows",
    "mup": "muP learns features at every width, and its learning rate transfers",
    "digits": "real data: closed-form NNGP / NTK and trained networks on scikit-learn's 8x8 digits",
}
PRESETS = ("quick", "full")


def load(name: str):
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; allowed: {', '.join(EXPERIMENTS)}")
    return importlib.import_module(f"replication.experiments.{name}")


def run_studies(config, studies, streams: Streams) -> Findings:
    """Each study's ``findings(c, measure(c, streams))``, in order, added up, with each study's
    wall time in seconds (``Findings.seconds``).

    ``studies`` is a sequence of ``(name, module)``: ``getattr(config, name)``
    is the study's config.
    """
    out = Findings()
    for name, study in studies:
        c = getattr(config, name)
        start = time.perf_counter()
        out = out + study.findings(c, study.measure(c, streams))
        out.seconds[name] = round(time.perf_counter() - start, 1)
    return out


def report(experiment: str, module_doc: str, title: str, precision: str, findings: Findings) -> Report:
    """The experiment's report: its title, the theory (the module docstring past its first
    paragraph) as the summary, and its studies' findings."""
    return Report(experiment=experiment, title=title, summary=module_doc.split("\n\n", 1)[1],
                  claims=findings.claims, sections=findings.sections, series=findings.series,
                  checks=findings.checks, precision=precision, study_seconds=findings.seconds)
