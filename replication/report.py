"""Reports: markdown with the claims table first, PNG figures, a JSON sidecar.

A report is written as a unit: every file is rendered into a staging folder
beside the target and then renamed into place, so an interrupted run leaves
the previous report and sidecar untouched and no half-written file behind.
"""
from __future__ import annotations

import importlib.metadata
import json
import math
import os
import re
import shutil
import signal
import subprocess
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

PACKAGES = ("jax", "jaxlib", "neural-tangents", "flax", "optax", "numpy")
RELATIONS = ("=", "<=", ">=")  # how a claim's verdict is decided: see Claim.rule
_REPO = Path(__file__).resolve().parent.parent


VERDICTS = ("holds", "inconclusive", "fails")


def _band(relation: str, expected: float, tolerance: float) -> tuple[float, float]:
    """``(low, high)`` of ``relation``'s band: ``expected +- tolerance``, or one side of it."""
    if relation == "=":
        return expected - tolerance, expected + tolerance
    if relation == "<=":
        return -math.inf, expected + tolerance
    return expected - tolerance, math.inf


def _band_text(relation: str, lo: float, hi: float) -> str:
    if relation == "=":
        return f"[{fmt(lo)}, {fmt(hi)}]"
    return f"<= {fmt(hi)}" if relation == "<=" else f">= {fmt(lo)}"


@dataclass
class Claim:
    """One statement of theory that the measurement could refute.

    ``expected`` is theory's value (an exponent, a limit, a bound) and
    ``relation`` with ``tolerance`` makes it a band: ``=`` is ``expected +-
    tolerance``, ``<=`` is everything up to ``expected + tolerance``, ``>=``
    everything from ``expected - tolerance``. ``reason`` says in one line where
    the tolerance comes from. ``measured`` is the point estimate and ``ci`` its
    interval (``interval_method`` says how it was made, from ``n_seeds``
    independent replicates; ``fit_range`` is the range of widths a fitted
    exponent used). The verdict comes from the interval, not the point:
    **holds** when the whole interval lies inside the band, **fails** when it
    lies wholly outside, **inconclusive** otherwise (and when there is no
    interval). ``measured=None`` (e.g. every run diverged) fails. ``section``
    names the report section that holds the evidence.
    """

    id: str
    statement: str
    prediction: str
    expected: float
    measured: float | None
    ci: tuple[float, float] | None
    tolerance: float
    section: str
    relation: str = "="
    reason: str = ""
    interval_method: str = ""
    n_seeds: int | None = None
    fit_range: tuple[float, float] | None = None

    def __post_init__(self):
        if self.relation not in RELATIONS:
            raise ValueError(f"relation must be one of {list(RELATIONS)}, got {self.relation!r}")

    @property
    def band(self) -> tuple[float, float]:
        """Theory's band for the measured value: ``(low, high)``, either end possibly infinite."""
        return _band(self.relation, self.expected, self.tolerance)

    @property
    def verdict(self) -> str:
        m = self.measured
        if m is None or not math.isfinite(m):
            return "fails"
        if self.ci is None or not all(math.isfinite(x) for x in self.ci):
            return "inconclusive"
        (lo, hi), (b_lo, b_hi) = self.ci, self.band
        if b_lo <= lo and hi <= b_hi:
            return "holds"
        if hi < b_lo or lo > b_hi:
            return "fails"
        return "inconclusive"

    @property
    def rule(self) -> str:
        """Theory's band with numbers, e.g. ``[-0.6, -0.4]`` or ``<= -0.4``."""
        return _band_text(self.relation, *self.band)

    @classmethod
    def of_fit(cls, fit, **fields) -> "Claim":
        """A claim on a fitted exponent: ``fit`` (a ``PowerLawFit``, or ``None`` when fewer than two
        widths could be fitted, which fails) gives ``measured``, ``ci`` and how they were made."""
        from replication.stats import EXPONENT_BAND, EXPONENT_REASON

        if fields.get("tolerance") == EXPONENT_BAND:
            fields.setdefault("reason", EXPONENT_REASON)
        if fit is None:
            return cls(measured=None, ci=None, **fields)
        return cls(measured=fit.exponent, ci=fit.ci, interval_method=fit.interval_method,
                   n_seeds=fit.n_seeds, fit_range=fit.fit_range, **fields)

    def as_dict(self) -> dict:
        return {"id": self.id, "statement": self.statement, "prediction": self.prediction,
                "expected": self.expected, "measured": self.measured,
                "ci": None if self.ci is None else list(self.ci),
                "tolerance": self.tolerance, "relation": self.relation, "reason": self.reason,
                "interval_method": self.interval_method, "n_seeds": self.n_seeds,
                "fit_range": None if self.fit_range is None else list(self.fit_range),
                "verdict": self.verdict, "section": self.section}


@dataclass
class Check:
    """Shown beside the claims, not counted as evidence for the theory.

    An identity that holds by construction, an equality of two computations
    from one random draw, or an engineering figure (a speed-up, devices
    agreeing): it guards the code, and it could not refute the theory.
    ``passed`` applies ``relation`` and ``tolerance`` to ``measured`` (as a
    claim's band, on the value alone); ``why`` says why it is a check.
    """

    id: str
    statement: str
    expected: float
    measured: float | None
    tolerance: float
    section: str
    why: str
    relation: str = "="

    def __post_init__(self):
        if self.relation not in RELATIONS:
            raise ValueError(f"relation must be one of {list(RELATIONS)}, got {self.relation!r}")

    @property
    def rule(self) -> str:
        return _band_text(self.relation, *_band(self.relation, self.expected, self.tolerance))

    @property
    def passed(self) -> bool:
        m = self.measured
        if m is None or not math.isfinite(m):
            return False
        lo, hi = _band(self.relation, self.expected, self.tolerance)
        return lo <= m <= hi

    def as_dict(self) -> dict:
        return {"id": self.id, "statement": self.statement, "expected": self.expected,
                "measured": self.measured, "tolerance": self.tolerance, "relation": self.relation,
                "passed": self.passed, "why": self.why, "section": self.section}


@dataclass
class Figure:
    """A matplotlib figure saved as ``figures/<experiment>_<name>.png``."""

    name: str
    figure: Any
    caption: str


@dataclass
class Section:
    title: str
    body: str = ""
    figures: list[Figure] = field(default_factory=list)


@dataclass
class Findings:
    """What a study contributes to its report: claims, sections and JSON series.

    A study's ``findings(config, result)`` returns one; they add up with ``+``
    in the order an experiment lists its studies.
    """

    claims: list[Claim] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    series: dict = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)   # wall time by study (``experiments.run_studies``)

    def __add__(self, other: "Findings") -> "Findings":
        return Findings(self.claims + other.claims, self.sections + other.sections,
                        {**self.series, **other.series}, self.checks + other.checks,
                        {**self.seconds, **other.seconds})


@dataclass
class Report:
    experiment: str
    title: str
    summary: str
    claims: list[Claim]
    sections: list[Section]
    series: dict = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    precision: str = "float32"
    # Filled by the runner (replication.cli), not the experiment:
    preset: str = ""
    config: dict = field(default_factory=dict)
    seconds: float | None = None
    study_seconds: dict = field(default_factory=dict)   # wall time by study
    command: str = ""
    code_version: str = ""  # taken when the run starts; the code may change while it runs
    inputs: list[str] = field(default_factory=list)  # see replication.provenance
    inputs_digest: str = ""


# ---------------------------------------------------------------------------
# Formatting helpers shared by every experiment.

def fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if x != 0 and (abs(x) >= 1e4 or abs(x) < 1e-3):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


def mean_sd(values, spec: str = ".4f", sd_spec: str | None = None, empty: str = "n/a") -> str:
    """``mean +- sd`` of the finite ``values`` (sample sd), one value alone, ``empty`` if none."""
    a = np.asarray(values, dtype=np.float64).ravel()
    a = a[np.isfinite(a)]
    if a.size == 0:
        return empty
    if a.size == 1:
        return format(float(a[0]), spec)
    return f"{format(float(a.mean()), spec)} +- {format(float(a.std(ddof=1)), sd_spec or spec)}"


def fit_text(fit, spec: str = "+.3f", none: str = "no fit") -> str:
    """``exponent [lo, hi]`` of a ``PowerLawFit``, or ``none``."""
    if fit is None:
        return none
    return f"{format(fit.exponent, spec)} [{format(fit.ci[0], spec)}, {format(fit.ci[1], spec)}]"


def slopes_text(slopes) -> str:
    """``replication.stats.local_slopes`` as ``a->b: +s.ss, ...``."""
    return ", ".join(f"{a}->{b}: {s:+.2f}" for a, b, s in slopes)


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v):
        return fmt(v) if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def anchor(title: str) -> str:
    """The anchor a code host gives a markdown heading."""
    a = re.sub(r"[^\w\- ]", "", title.strip().lower())
    return a.replace(" ", "-")


def loglog_figure(panels: dict[str, dict[str, tuple]], *, xlabel: str, ylabel: str,
                  reference_exponent: float | None = None, reference_label: str = ""):
    """Error-against-width panels on log-log axes.

    ``panels`` maps a panel title to ``{label: (widths, errors (n_widths, n_seeds), fit)}``;
    each curve shows the geometric mean over seeds, the seeds' range as a
    band, and the fitted power law as a thin line. A dashed line of slope
    ``reference_exponent`` shows theory's rate.
    """
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.2), squeeze=False)
    for ax, (title, curves) in zip(axes[0], panels.items()):
        for i, (label, (widths, errors, fit)) in enumerate(curves.items()):
            w = np.asarray(widths, dtype=float)
            e = np.asarray(errors, dtype=float).reshape(len(w), -1)
            color = f"C{i}"
            centre = np.exp(np.log(e).mean(axis=1))
            lab = label if fit is None else f"{label} (slope {fit.exponent:+.2f})"
            ax.plot(w, centre, "o", color=color, ms=4, label=lab)
            if e.shape[1] > 1:
                ax.fill_between(w, e.min(axis=1), e.max(axis=1), color=color, alpha=0.15, lw=0)
            if fit is not None:
                ax.plot(w, fit.prefactor * w ** fit.exponent, "-", color=color, lw=1)
        if reference_exponent is not None:
            # Above every curve: each curve's first point, carried to the
            # smallest width along theory's slope, sets the line's height.
            p = reference_exponent
            w_all = np.unique(np.concatenate([np.asarray(c[0], dtype=float) for c in curves.values()]))
            top = max(float(np.exp(np.log(np.asarray(e, dtype=float).reshape(len(ws), -1)[0]).mean()))
                      * (w_all[0] / ws[0]) ** p for ws, e, _ in curves.values())
            ax.plot(w_all, 1.5 * top * (w_all / w_all[0]) ** p, "k--", lw=1.2,
                    label=reference_label or f"theory: slope {p:+g}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# Metadata.

def code_version() -> str:
    """Short commit of the code, ``+modified`` if the library differs from it."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=_REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "replication", "requirements.lock",
                    "pyproject.toml")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+modified" if dirty else "")


def package_versions() -> dict[str, str]:
    """The Python and package versions that built a report (the stack)."""
    import platform

    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name.replace("-", "_")] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name.replace("-", "_")] = "not installed"
    return out


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray) or type(x).__module__.startswith("jax"):
        return _jsonable(np.asarray(x).tolist())
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if hasattr(x, "as_dict"):
        return _jsonable(x.as_dict())
    return x


# ---------------------------------------------------------------------------
# Rendering and writing.

def sidecar(report: Report) -> dict:
    """The JSON sidecar: experiment, preset, code and package versions, seconds (in all and by study),
    claims, series."""
    return _jsonable({
        "experiment": report.experiment, "preset": report.preset,
        "code_version": report.code_version or code_version(), "versions": package_versions(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "inputs": report.inputs, "inputs_digest": report.inputs_digest,
        "seconds": report.seconds, "study_seconds": report.study_seconds, "precision": report.precision,
        "command": report.command,
        "config": report.config,
        "claims": [c.as_dict() for c in report.claims],
        "checks": [c.as_dict() for c in report.checks],
        "series": report.series,
    })


def verdict_counts(claims) -> str:
    """``"12 hold, 3 inconclusive, 1 fails"`` (each verdict that occurs, in ``VERDICTS`` order)."""
    n = {v: sum(c.verdict == v for c in claims) for v in VERDICTS}
    words = {"holds": "hold" if n["holds"] != 1 else "holds", "inconclusive": "inconclusive",
             "fails": "fail" if n["fails"] != 1 else "fails"}
    return ", ".join(f"{n[v]} {words[v]}" for v in VERDICTS if n[v]) or "no claims"


VERDICT_RULE = ("A claim **holds** when its whole interval lies inside theory's band, **fails** when "
                "the interval lies wholly outside it, and is **inconclusive** otherwise: the "
                "measurement does not yet decide.")


def verdict_cell(claim: Claim) -> str:
    return {"holds": "holds", "inconclusive": "*inconclusive*", "fails": "**fails**"}[claim.verdict]


def measured_cell(claim: Claim) -> str:
    ci = "" if claim.ci is None else f" [{fmt(claim.ci[0])}, {fmt(claim.ci[1])}]"
    return f"{fmt(claim.measured)}{ci}"


def render_markdown(report: Report, meta: dict) -> str:
    rows = [[f"[{c.statement}](#{anchor(c.section)})", c.prediction, measured_cell(c), c.rule,
             verdict_cell(c)] for c in report.claims]
    out = [f"# {report.title}", "", report.summary.strip(), "", "## Claims", ""]
    if report.claims:
        out += [markdown_table(["claim", "theory predicts", "measured [95% interval]", "theory's band",
                                "verdict"], rows), "",
                f"{len(report.claims)} claims: {verdict_counts(report.claims)}. {VERDICT_RULE} "
                "Each claim's band, its reason, the interval's method and the widths fitted are in the "
                f"sidecar `{report.experiment}.json`.", ""]
        by_reason: dict[str, list[str]] = {}
        for c in report.claims:
            if c.reason:
                by_reason.setdefault(c.reason, []).append(f"`{c.id}`")
        if by_reason:
            out += ["Where the bands come from:", ""]
            out += [f"- {reason} ({', '.join(ids)})" for reason, ids in by_reason.items()] + [""]
    else:
        out += ["None: this report measures the software, not the theory. Its figures are checks.", ""]
    if report.checks:
        rows = [[f"[{c.statement}](#{anchor(c.section)})", fmt(c.measured), c.rule,
                 "passes" if c.passed else "**does not pass**", c.why] for c in report.checks]
        out += ["### Checks", "",
                "Shown, not counted as evidence: each holds by construction, compares two "
                "computations of one random draw, or measures the software rather than the theory.",
                "", markdown_table(["check", "measured", "passes if in", "", "why a check"], rows), ""]
    for s in report.sections:
        out += [f"## {s.title}", ""]
        if s.body:
            out += [s.body.strip(), ""]
        for f in s.figures:
            out += [f"![{f.caption}](figures/{report.experiment}_{f.name}.png)", "",
                    f"*{f.caption}*", ""]
    v = meta["versions"]
    command = report.command or f"python -m replication run {report.experiment}"
    out += ["## How this was run", "",
            f"- command: `{command}`",
            f"- preset: `{report.preset}`; precision: {report.precision}",
            f"- code version: `{meta['code_version']}`"
            + (f"; inputs digest `{report.inputs_digest[:12]}` over {len(report.inputs)} files "
               "(`python -m replication.provenance inputs " + report.experiment + "`)"
               if report.inputs_digest else ""),
            "- packages: " + ", ".join(f"{k} {val}" for k, val in v.items()),
            f"- XLA flags: `{meta.get('xla_flags') or 'none'}` (`replication.xla`)",
            (f"- wall time: {report.seconds:.1f} s" if report.seconds is not None else "- wall time: n/a")
            + _study_seconds(report.study_seconds),
            "", "Configuration (`--set STUDY.SETTING=VALUE` changes one):", "",
            markdown_table(["setting", "value"], [[k, f"`{val}`"] for k, val in _flat(report.config).items()]),
            ""]
    return "\n".join(out)


def _study_seconds(seconds: dict | None) -> str:
    """``"; by study: a 1.0 s, b 2.0 s"``, or nothing where the run did not time its studies."""
    return "; by study: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()) if seconds else ""


def _flat(config: dict, prefix: str = "") -> dict:
    """A nested configuration as ``{"study.setting": value}``."""
    out = {}
    for k, v in config.items():
        if isinstance(v, dict) and v and all(isinstance(x, str) for x in v):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@contextmanager
def _signals_held():
    """Hold SIGINT and SIGTERM until the block ends, then deliver the first one caught.

    Around the renames that put a report in place, so that an interrupt
    leaves either the previous report or the new one, never a mixture.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in held}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        if caught:
            signal.raise_signal(caught[0])


def write_report(report: Report, out_dir: str | os.PathLike) -> Path:
    """Write ``<out_dir>/<experiment>.md``, ``.json`` and ``figures/``; return the markdown path.

    Everything is rendered into a staging folder first; only complete files
    are renamed into place (figures, then the sidecar, then the markdown),
    with SIGINT and SIGTERM held while they are, so an interrupt leaves the
    previous report or the new one whole. Figures of this experiment that the
    new report no longer has are removed.
    """
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    stage = out / f".tmp-{report.experiment}-{os.getpid()}"
    stage.mkdir(exist_ok=True)
    try:
        meta = sidecar(report)
        names = []
        for s in report.sections:
            for f in s.figures:
                name = f"{report.experiment}_{f.name}.png"
                f.figure.savefig(stage / name, dpi=110)
                plt.close(f.figure)
                names.append(name)
        (stage / "report.json").write_text(json.dumps(meta, indent=1) + "\n")
        (stage / "report.md").write_text(render_markdown(report, meta))
        with _signals_held():
            for name in names:
                os.replace(stage / name, out / "figures" / name)
            for old in (out / "figures").glob(f"{report.experiment}_*.png"):
                if old.name not in names:
                    old.unlink()
            os.replace(stage / "report.json", out / f"{report.experiment}.json")
            os.replace(stage / "report.md", out / f"{report.experiment}.md")
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out / f"{report.experiment}.md"
