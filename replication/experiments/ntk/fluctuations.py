"""The NTK's fluctuations grow with depth / width (Hanin and Nica 2019).

For ReLU networks at He initialisation (weights ``N(0, 2 / fan-in)``, no
biases) the NTK diagonal's relative second moment is exponential in the
ratio of depth to width,

    E[Theta(x,x)^2] / E[Theta(x,x)]^2 ~ exp(C depth / width),

so ``log`` of it is ``a depth^p width^q`` with ``p = +1``, ``q = -1``. At a
fixed depth the relative standard deviation falls as ``width^(-1/2)``.
``Theta(x, x) = |grad_theta f(x)|^2`` is computed exactly for ``samples``
networks per (depth, width); the intervals are bootstrap intervals over
those networks.

Random streams: ``fluctuations`` (the networks), ``bootstrap`` (the resampling).
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from replication.arch import MLP, training_layout
from replication.kernels import closed_form, over_initialisations
from replication.report import Claim, Figure, Findings, Section, markdown_table
from replication.stats import EXPONENT_BAND, fit_finite
from replication.sweep import Streams, progress

SECTION = "Fluctuations grow with depth / width"
HANIN_NICA_C = 5.0  # their constant C, up to O(1) factors


@dataclass(frozen=True)
class Config:
    depths: tuple[int, ...] = (1, 2, 4, 8)
    widths: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
    max_weights: int = 2**19       # skip (depth, width) with depth * width^2 above this
    samples: int = 1000            # networks per (depth, width): Monte Carlo samples of Theta(x, x)
    input_dim: int = 8             # x = (1, ..., 1): |x|^2 / d = 1
    fit_min_depth: int = 2         # depth 1 has no hidden-to-hidden layer and sits lower
    rate_depth: int = 2            # the depth at which the relative sd is fitted against width
    bootstrap: int = 200           # resamples of the networks, for the intervals
    exponent_tolerance: float = EXPONENT_BAND


@dataclass
class Diagonals:
    """Samples of ``Theta(x, x)`` and their limits per (depth, width), and the bootstrap's fits."""

    cells: list[tuple[int, int]]                 # (depth, width), depth * width^2 <= max_weights
    theta: dict[tuple[int, int], np.ndarray]     # (samples,) float64
    limit: dict[tuple[int, int], float]          # the closed form
    boot_fit: np.ndarray                         # (bootstrap, 3) (log a, p, q) of resampled networks
    boot_sd: np.ndarray                          # (bootstrap, len(rate widths)) resampled sd / limit


def ntk_diagonal_samples(spec: MLP, x: jax.Array, keys: jax.Array, chunk_size: int) -> np.ndarray:
    """``Theta(x, x) = |grad_theta f(x)|^2`` of networks initialised from ``keys``, shape ``(len(keys),)``."""
    module = spec.flax()

    def diagonal(params):
        g = jax.grad(lambda p: module.apply(p, x)[0, 0])(params)
        return sum(jnp.sum(a**2) for a in jax.tree_util.tree_leaves(g))

    # Traced feature-major: the gradient's backward products are W @ delta (replication.arch).
    with training_layout():
        return np.asarray(over_initialisations(module, keys, x, diagonal, chunk_size=chunk_size))


def log_moment_ratio(theta: np.ndarray) -> float:
    """``log(E[Theta^2] / E[Theta]^2)`` over the samples."""
    return float(np.log(np.mean(theta**2) / np.mean(theta) ** 2))


def design(cells: list[tuple[int, int]]) -> np.ndarray:
    """Rows ``(1, log depth, log width)`` of the cells, shape ``(len(cells), 3)``."""
    return np.stack([np.ones(len(cells)), np.log([d for d, _ in cells]), np.log([w for _, w in cells])],
                    axis=1)


def depth_width_fit(cells: list[tuple[int, int]], thetas: list[np.ndarray]) -> np.ndarray:
    """``(log a, p, q)``: least squares of ``log log_moment_ratio = log a + p log depth + q log width``."""
    r = np.array([np.log(log_moment_ratio(th)) for th in thetas])
    return np.linalg.lstsq(design(cells), r, rcond=None)[0]


def measure(config: Config, streams: Streams) -> Diagonals:
    """``samples`` networks per (depth, width) at the input ``x = (1, ..., 1)``, then the bootstrap."""
    x = jnp.ones((1, config.input_dim), jnp.float32)
    cells = [(d, w) for d in config.depths for w in config.widths if d * w * w <= config.max_weights]
    theta, limit = {}, {}
    with progress(len(cells), "ntk fluctuations") as bar:
        for d, w in cells:
            spec = MLP(w, d, "relu", W_std=2**0.5, b_std=None)
            keys = jax.random.split(streams.network("fluctuations", w, d), config.samples)
            theta[d, w] = ntk_diagonal_samples(spec, x, keys, chunk_size=200).astype(np.float64)
            limit[d, w] = float(closed_form(spec, x)[0, 0])
            bar.update()
    rng = streams.numpy("bootstrap")

    def resample(th):
        return th[rng.integers(0, len(th), len(th))]

    fit_cells = _fit_cells(config, cells)
    boot_fit = np.stack([depth_width_fit(fit_cells, [resample(theta[c]) for c in fit_cells])
                         for _ in range(config.bootstrap)])
    rate = _rate_cells(config, cells)
    boot_sd = np.stack([[np.std(resample(theta[c])) / limit[c] for c in rate]
                        for _ in range(config.bootstrap)])
    return Diagonals(cells, theta, limit, boot_fit, boot_sd)


def _fit_cells(config: Config, cells):
    """The cells of the two-variable fit: depth at least ``fit_min_depth``."""
    return [(d, w) for d, w in cells if d >= config.fit_min_depth]


def _rate_cells(config: Config, cells):
    """The cells at ``rate_depth``, by width."""
    return [(config.rate_depth, w) for w in config.widths if (config.rate_depth, w) in cells]


def findings(config: Config, r: Diagonals) -> Findings:
    """The two-variable fit's exponents ``p = +1`` and ``q = -1`` (measured ``None`` where the cells
    do not determine them), the relative sd's ``width^(-1/2)`` at ``rate_depth``; figure, prose, series."""
    fit_cells = _fit_cells(config, r.cells)
    coef = depth_width_fit(fit_cells, [r.theta[c] for c in fit_cells])
    # Two depths and two widths at least, or p and q are not both determined.
    resolved = len(fit_cells) >= 3 and np.linalg.matrix_rank(design(fit_cells)) == 3
    ci = {k: tuple(np.percentile(r.boot_fit[:, i], [2.5, 97.5])) for i, k in ((1, "depth"), (2, "width"))}
    beta = np.array([d / w for d, w in r.cells])
    lmr = np.array([log_moment_ratio(r.theta[c]) for c in r.cells])
    slope_c = float(np.sum(lmr * beta) / np.sum(beta**2))  # log ratio = c beta through the origin
    rate = _rate(config, r)
    claims = [
        Claim(id="ntk_fluctuation_depth_exponent", section=SECTION,
              statement="log(E[Theta^2] / E[Theta]^2) of the NTK diagonal: exponent of depth",
              prediction="a function of depth/width: exponent +1 (Hanin & Nica 2019)", expected=1.0,
              measured=float(coef[1]) if resolved else None, ci=ci["depth"],
              tolerance=config.exponent_tolerance),
        Claim(id="ntk_fluctuation_width_exponent", section=SECTION,
              statement="log(E[Theta^2] / E[Theta]^2) of the NTK diagonal: exponent of width",
              prediction="a function of depth/width: exponent -1 (Hanin & Nica 2019)", expected=-1.0,
              measured=float(coef[2]) if resolved else None, ci=ci["width"],
              tolerance=config.exponent_tolerance),
        Claim(id="ntk_fluctuation_sd_rate", section=SECTION,
              statement=f"Relative standard deviation of the NTK diagonal at depth {config.rate_depth}",
              prediction="sd / mean ~ width^(-1/2)", expected=-0.5,
              measured=None if rate["sd_fit"] is None else rate["sd_fit"].exponent, ci=rate["sd_ci"],
              tolerance=config.exponent_tolerance),
    ]
    series = {"fluctuations": {"cells": r.cells, "log_moment_ratio": lmr, "depth_over_width": beta,
                               "fit_log_a_p_q": coef, "ci_p": ci["depth"], "ci_q": ci["width"],
                               "C_through_origin": slope_c, "rate_depth": config.rate_depth,
                               **{k: rate[k] for k in ("rate_widths", "relative_sd", "relative_bias",
                                                       "bias_se", "sd_fit")}}}
    section = Section(SECTION, _prose(config, r, slope_c, rate), [Figure(
        "depth_width_fluctuations", _figure(config, r, beta, slope_c, rate),
        "Left: the NTK diagonal's relative second moment against depth/width, every (depth, width). "
        "Right: at fixed depth, its relative standard deviation and the mean's bias against width.")])
    return Findings(claims, [section], series)


def _rate(config: Config, r: Diagonals) -> dict:
    """At ``rate_depth``: the relative sd, the mean's relative bias and its Monte Carlo error, by width."""
    cells = _rate_cells(config, r.cells)
    widths = [w for _, w in cells]
    rel_sd = np.array([np.std(r.theta[c]) / r.limit[c] for c in cells])
    sd_fit = fit_finite(widths, rel_sd)
    sd_slopes = [np.polyfit(np.log(widths), np.log(s), 1)[0] for s in r.boot_sd] if sd_fit else None
    return {"rate_widths": widths, "relative_sd": rel_sd,
            "relative_bias": np.array([np.mean(r.theta[c]) / r.limit[c] - 1 for c in cells]),
            "bias_se": np.array([np.std(r.theta[c]) / np.sqrt(len(r.theta[c])) / r.limit[c] for c in cells]),
            "sd_fit": sd_fit, "sd_ci": tuple(np.percentile(sd_slopes, [2.5, 97.5])) if sd_fit else None}


def _figure(config: Config, r: Diagonals, beta, slope_c: float, rate: dict):
    """Left: every cell's log moment ratio against depth/width; right: the rate depth against width."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, d in enumerate(config.depths):
        pts = [(d / w, log_moment_ratio(r.theta[d, w])) for w in config.widths if (d, w) in r.theta]
        if pts:
            b, l = zip(*pts)
            axes[0].plot(b, l, "o", color=f"C{i}", label=f"depth {d}")
    # Log-log axes: depth/width spans decades, and a proportionality is a line of slope 1.
    bb = np.geomspace(beta.min() / 1.3, beta.max() * 1.3, 50)
    axes[0].plot(bb, slope_c * bb, "k-", lw=1, label=f"fit: {slope_c:.2f} depth/width")
    axes[0].plot(bb, HANIN_NICA_C * bb, "k--", lw=1,
                 label=f"{HANIN_NICA_C:g} depth/width (Hanin & Nica's exponent)")
    axes[0].set(xlabel="depth / width", ylabel="log(E[Theta(x,x)^2] / E[Theta(x,x)]^2)",
                title=f"ReLU, {config.samples} initialisations per point", xscale="log", yscale="log")
    axes[0].legend(fontsize=7)
    widths, sd_fit = rate["rate_widths"], rate["sd_fit"]
    axes[1].set(xlabel="width", title=f"depth {config.rate_depth}: fluctuation and bias")
    if widths:  # rate_depth is among the depths measured
        slope = "no fit" if sd_fit is None else f"slope {sd_fit.exponent:+.2f}"
        axes[1].plot(widths, rate["relative_sd"], "o-", label=f"sd / limit ({slope})")
        axes[1].errorbar(widths, np.abs(rate["relative_bias"]), yerr=rate["bias_se"], fmt="s", color="C1",
                         ms=4, label="|mean - limit| / limit, +- MC s.e.")
        axes[1].plot(widths, rate["bias_se"], ":", color="C1", lw=1, label="MC s.e. of the mean")
        axes[1].set(xscale="log", yscale="log")
        axes[1].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # no crowded 2x10^1 labels
        axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def _prose(config: Config, r: Diagonals, slope_c: float, rate: dict) -> str:
    rows = [[d, w, d / w, log_moment_ratio(r.theta[d, w]), float(np.std(r.theta[d, w]) / r.limit[d, w]),
             float(np.mean(r.theta[d, w]) / r.limit[d, w] - 1)] for d, w in r.cells]
    return f"""
Hanin and Nica (2019) show that for ReLU networks (He init, weights N(0, 2 / fan-in), no biases) the
NTK diagonal's relative second moment is exponential in the ratio of depth to width:
E[Theta(x,x)^2] / E[Theta(x,x)]^2 ~ exp(C depth/width), with C = {HANIN_NICA_C:g} in their estimate up to O(1)
factors. So at fixed width the fluctuations grow with depth, and the kernel is deterministic only
when depth/width -> 0. Measured: {config.samples} networks per (depth, width) (NTK
parameterization, W_std = sqrt(2), no biases, input |x|^2 = d), Theta(x, x) = |grad f(x)|^2 exactly;
log(E[Theta^2]/E[Theta]^2) fitted as a * depth^p * width^q over depths >= {config.fit_min_depth}
(depth 1 has no hidden-to-hidden layer and sits lower, see the table) with a bootstrap interval over
initialisations. The claims are p = +1 and q = -1: the points collapse onto one curve of depth/width.
The fitted constant through the origin is C = {slope_c:.2f}, below Hanin and Nica's {HANIN_NICA_C:g}; their
estimate holds up to multiplicative constants, which this measurement does not separate from C.

At depth {config.rate_depth}, the relative standard deviation falls as width^(-1/2) (third claim). The
mean's bias, the other finite-width term, is expected at O(1/width); on the diagonal of a ReLU network
it is measured at {", ".join(f"{b:+.4f}" for b in rate["relative_bias"])} (widths
{", ".join(map(str, rate["rate_widths"]))}) with Monte Carlo standard errors
{", ".join(f"{s:.4f}" for s in rate["bias_se"])}: indistinguishable from zero at this sample size, so
no exponent can be fitted to it. ReLU's NTK diagonal is known to have no finite-width correction to
its mean at all (its forward and backward norms are exactly preserved in expectation at He init),
which is consistent with this.

{markdown_table(["depth", "width", "depth/width", "log E[T^2]/E[T]^2", "sd / limit",
                 "mean / limit - 1"], rows)}
"""
