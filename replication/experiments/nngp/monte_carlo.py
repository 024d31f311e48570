"""The ensemble's output covariance meets the Monte Carlo floor.

The output covariance ``(1/M) sum_s f_s(x) f_s(x')`` of ``M`` independently
initialised networks estimates the NNGP ``K`` up to the network's own
``O(1/N)`` bias and a Monte Carlo error that no width removes. For Gaussian
outputs (Isserlis) that error's floor is
``sqrt(((tr K)^2 + |K|_F^2) / M) / |K|_F``, about ``sqrt(2/M)`` for a
near-constant kernel.

Random streams: ``inputs`` (the rate sweep's points) and ``monte_carlo`` (the
networks).
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np

from replication.arch import MLP
from replication.experiments.nngp.sphere import Sphere, inputs
from replication.kernels import closed_form, monte_carlo_nngp
from replication.report import Claim, Figure, Findings, Section, markdown_table
from replication.stats import relative_frobenius_error, t_interval
from replication.sweep import Streams, over_widths

SECTION = "The ensemble's output covariance meets the Monte Carlo floor"


@dataclass(frozen=True)
class Config:
    sphere: Sphere = Sphere()    # the rate sweep's inputs and weight scales
    widths: tuple[int, ...] = (4, 8, 16, 32, 64, 128, 256, 512)
    depth: int = 2
    activation: str = "relu"
    samples: int = 256           # M: networks per ensemble
    replicates: int = 32         # independent ensembles per width: the interval's replicates
    # The widest width's RMS error over the floor is 1 within 10%: a resolution. Its own
    # O(1/N) bias adds in quadrature, sqrt(1 + bias^2 / floor^2), far below that at N = 512.
    tolerance: float = 0.1


@dataclass
class Result:
    errors: np.ndarray   # (n_widths, replicates): relative Frobenius error of each ensemble's covariance
    floor: float         # the Monte Carlo floor of an M-sample covariance
    spread: float        # relative standard deviation of one ensemble's squared error

    @property
    def rms(self) -> np.ndarray:
        """RMS error over the replicates, per width."""
        return np.sqrt((self.errors**2).mean(axis=1))


def monte_carlo_floor(K: np.ndarray, M: int) -> tuple[float, float]:
    """Relative RMS error of an ``M``-sample output covariance, and its own relative spread.

    For Gaussian outputs (Isserlis), the estimator's entries have covariance
    ``(K_ac K_bd + K_ad K_bc) / M``; the squared Frobenius error then has mean
    ``((tr K)^2 + |K|^2) / M`` and, as a Gaussian quadratic form, relative
    standard deviation ``2 sqrt(|K|^4 + tr K^4) / ((tr K)^2 + |K|^2)``.
    """
    fro2, tr = float(np.sum(K**2)), float(np.trace(K))
    floor = np.sqrt((tr**2 + fro2) / M / fro2)
    spread = 2 * np.sqrt(fro2**2 + np.trace(np.linalg.matrix_power(K, 4))) / (tr**2 + fro2)
    return float(floor), float(spread)


def measure(config: Config, streams: Streams) -> Result:
    """At each width, ``replicates`` ensembles of ``samples`` networks against the closed-form NNGP."""
    x = inputs(config.sphere, streams)
    spec = MLP(config.widths[0], config.depth, config.activation,
               W_std=config.sphere.W_std, b_std=config.sphere.b_std)
    K = np.asarray(closed_form(spec, x, get="nngp"))
    floor, spread = monte_carlo_floor(K, config.samples)

    def error(width, replicate):
        estimate = monte_carlo_nngp(spec.replace(width=width).flax(),
                                    streams.network("monte_carlo", width, replicate), x,
                                    n_samples=config.samples, chunk_size=256)
        return relative_frobenius_error(estimate, K)

    errors = over_widths(config.widths, config.replicates, error, desc="nngp monte carlo")
    return Result(errors, floor, spread)


def findings(config: Config, result: Result) -> Findings:
    """One claim: the widest networks' RMS error over the floor is 1 (``tolerance`` band), its
    interval from the replicates."""
    squared, ci = t_interval(result.errors[-1] ** 2)
    claim = Claim(
        id="nngp_mc_floor",
        statement=f"Output covariance of {config.samples} networks reaches the Monte Carlo floor",
        prediction="RMS error / floor = 1", expected=1.0, measured=float(np.sqrt(squared) / result.floor),
        ci=None if ci is None else tuple(float(np.sqrt(max(c, 0.0)) / result.floor) for c in ci),
        tolerance=config.tolerance, section=SECTION,
        reason="a 10% resolution; the widest width's own O(1/N) bias adds in quadrature",
        interval_method=f"Student-t on the mean squared error over {config.replicates} independent "
                        "ensembles at the widest width, square-rooted",
        n_seeds=config.replicates, fit_range=(config.widths[-1], config.widths[-1]))
    section = Section(SECTION, _prose(config, result), [Figure(
        "monte_carlo_floor", _figure(config, result),
        "Relative error of the ensemble's output covariance against the closed-form NNGP, by "
        "width: it falls with the network's bias until it meets the Monte Carlo floor.")])
    series = {"monte_carlo": {"width": list(config.widths), "rms_error": result.rms,
                              "errors": result.errors, "floor": result.floor,
                              "samples": config.samples}}
    return Findings([claim], [section], series)


def _figure(config: Config, result: Result):
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    w = np.asarray(config.widths, dtype=float)
    rule_of_thumb = np.sqrt(2 / config.samples)
    ax.plot(w, result.rms, "o-", label=f"RMS over {config.replicates} ensembles of {config.samples}")
    ax.fill_between(w, result.errors.min(axis=1), result.errors.max(axis=1), alpha=0.2, lw=0)
    ax.axhline(result.floor, color="k", ls="--", label=f"Monte Carlo floor {result.floor:.3f}")
    ax.axhline(rule_of_thumb, color="gray", ls=":", label=f"sqrt(2/M) = {rule_of_thumb:.3f}")
    ax.set(xscale="log", yscale="log", xlabel="width",
           ylabel="relative Frobenius error of the output covariance",
           title=f"{config.activation}, depth {config.depth}, M = {config.samples}")
    ax.set_xscale("log", base=2)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _prose(config: Config, result: Result) -> str:
    floor = result.floor
    table = markdown_table(["width", "RMS error", "min", "max", "RMS / floor"],
                           [[int(w), float(r), float(e.min()), float(e.max()), float(r / floor)]
                            for w, r, e in zip(config.widths, result.rms, result.errors)])
    return f"""
The output covariance `(1/M) sum_s f_s(x) f_s(x')` of M = {config.samples} independently initialised
{config.activation} networks of depth {config.depth}, against the closed-form NNGP, repeated
{config.replicates} times at each width. Two errors add in quadrature: the finite network's
own bias (order 1/width for depth >= 2; none at depth 1, whose first layer is exactly
Gaussian) and the Monte Carlo error of M samples, which no width removes. Its floor for these
inputs is {floor:.4f} (Isserlis: `sqrt(((tr K)^2 + |K|_F^2) / M) / |K|_F`; the rule of thumb
`sqrt(2/M)` = {np.sqrt(2 / config.samples):.4f}). The claim compares the widest networks' RMS error with
the floor, to {config.tolerance:.0%}; its interval is a Student-t interval on the mean squared error
over the {config.replicates} replicates (a Gaussian quadratic form with relative spread
{result.spread:.2f} per replicate, so the interval's half-width is near
{1.96 * result.spread / (2 * np.sqrt(config.replicates)):.3f} of the ratio).

{table}
"""
