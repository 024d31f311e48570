"""The NTK's fluctuations at finite depth and width, against their exact law (Hanin and Nica 2019).

For ReLU networks at He initialisation (weights ``N(0, 2 / fan-in)``, no
biases) Hanin and Nica prove that the NTK diagonal's relative second moment
``E[Theta(x,x)^2] / E[Theta(x,x)]^2`` is ``exp(5 depth / width)`` up to
constant factors: the kernel is deterministic only when depth / width -> 0.
``replication.experiments.ntk.relu_diagonal`` derives more: the exact law of
``Theta(x, x)`` at every depth and width, its moments by a transfer-matrix
recursion over layers and draws by a product of independent per-layer
variables.

Measured: ``samples`` networks per (depth, width), depth / width up to
``max_depth_over_width``, their NTK at three inputs of equal norm (the
diagonal's law depends on the norm only; the other two give the off-diagonal
entries at cosines ``cosines``, for which no exact law is derived). Where
``samples`` networks resolve the second moment (its Monte Carlo error,
known exactly from the fourth moment, at most ``resolution`` in log), the
measured ``E[Theta^2] / E[Theta]^2`` is compared with the exact value; where
they do not (heavy tails: at depth / width 2 the second moment's own
relative variance is ``10^8`` and more), the networks' ``Theta`` is compared
with the exact law itself, by the probability that a network's ``Theta``
exceeds an independent draw of the law (1/2 when the laws agree). Every
interval is a delete-one-group jackknife over ``groups`` groups of networks.

Random streams: ``fluctuations`` (the networks), ``law`` (the exact law's draws).
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from replication.arch import MLP, training_layout
from replication.experiments.ntk import relu_diagonal
from replication.kernels import closed_form, over_initialisations
from replication.report import Claim, Figure, Findings, Section, markdown_table
from replication.stats import jackknife
from replication.sweep import Streams, progress

SECTION = "Fluctuations at finite depth and width"
HANIN_NICA_RATE = 5.0  # E[Theta^2] / E[Theta]^2 ~ exp(5 depth / width), up to constant factors


@dataclass(frozen=True)
class Config:
    depths: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    widths: tuple[int, ...] = (8, 16, 32, 64, 128, 256)
    max_depth_over_width: float = 2.0
    max_weights: int = 2**19       # skip (depth, width) with depth * width^2 above this
    samples: int = 1024            # networks per (depth, width)
    groups: int = 16               # independent groups of networks: the jackknife's replicates
    input_dim: int = 8             # x = (1, ..., 1): |x|^2 = input_dim
    cosines: tuple[float, ...] = (0.5, 0.0)  # the other inputs' cosines with x
    # A cell's relative variance is compared where the Monte Carlo standard error of its log,
    # exact from the first four moments, is at most this; the other cells test the law.
    resolution: float = 0.1
    law_draws: int = 2**17         # draws of the exact law per cell (its CDF's error: 0.3 / sqrt(draws))
    rate_depth: int = 2            # the depth shown against width
    # The weighted mean of log(measured / exact) relative variance over the resolved cells: a 5%
    # resolution, finer than the gap between the exact value and exp(5 depth/width) - 1 (prose).
    moment_tolerance: float = 0.05
    # P(network > law) = 1/2: a resolution of 0.02, a rescaling of Theta by about 0.07 of the
    # spread of log Theta (for a log-normal law: 2 sqrt(pi) 0.02).
    law_tolerance: float = 0.02

    def __post_init__(self):
        if self.samples % self.groups or self.samples // self.groups < 2:
            raise ValueError(f"samples ({self.samples}) must be a multiple of groups ({self.groups}), "
                             "at least 2 per group")

    def cells(self) -> list[tuple[int, int]]:
        """(depth, width) with depth / width <= ``max_depth_over_width`` and depth * width^2 <= ``max_weights``."""
        return [(d, w) for w in self.widths for d in self.depths
                if d <= self.max_depth_over_width * w and d * w * w <= self.max_weights]


@dataclass
class Result:
    cells: list[tuple[int, int]]
    gram: dict[tuple[int, int], np.ndarray]      # (samples, n_inputs, n_inputs) float64
    limit: dict[tuple[int, int], np.ndarray]     # the closed form, (n_inputs, n_inputs)
    exact: dict[tuple[int, int], np.ndarray]     # E[Theta(x, x)^r], r = 1..4
    pit: dict[tuple[int, int], np.ndarray]       # (samples,) P(law < Theta_network), mid-rank
    law_quantiles: dict[tuple[int, int], np.ndarray]  # the law's quantiles at QUANTILES


QUANTILES = np.linspace(0.01, 0.99, 99)


def inputs(config: Config) -> jax.Array:
    """``x = (1, ..., 1)`` and, at each cosine, a point of the same norm: ``(1 + len(cosines), d)``."""
    d = config.input_dim
    if d % 2:
        raise ValueError(f"input_dim must be even (the orthogonal direction alternates signs), got {d}")
    x = np.ones(d)
    u = np.tile([1.0, -1.0], d // 2)  # orthogonal to x, the same norm
    return jnp.asarray(np.stack([x] + [c * x + np.sqrt(1 - c * c) * u for c in config.cosines]), jnp.float32)


def ntk_gram_samples(spec: MLP, x: jax.Array, keys: jax.Array, chunk_size: int) -> np.ndarray:
    """``Theta(x_i, x_j) = <grad f(x_i), grad f(x_j)>`` of networks initialised from ``keys``,
    shape ``(len(keys), n, n)``."""
    module = spec.flax()

    def gram(params):
        jac = jax.jacrev(lambda p: module.apply(p, x)[:, 0])(params)
        leaves = [a.reshape(x.shape[0], -1) for a in jax.tree_util.tree_leaves(jac)]
        return sum(g @ g.T for g in leaves)

    # Traced feature-major: the gradient's backward products are W @ delta (replication.arch).
    with training_layout():
        return np.asarray(over_initialisations(module, keys, x, gram, chunk_size=chunk_size))


def _mid_rank(sorted_draws: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``P(draw < value) + P(draw = value) / 2`` under the draws' empirical law (ties: dead networks)."""
    lo = np.searchsorted(sorted_draws, values, side="left")
    hi = np.searchsorted(sorted_draws, values, side="right")
    return (lo + hi) / (2 * len(sorted_draws))


def measure(config: Config, streams: Streams) -> Result:
    """``samples`` networks per cell at the inputs; the exact moments and ``law_draws`` of the law."""
    x = inputs(config)
    x_sq = float(config.input_dim)
    cells = config.cells()
    gram, limit, exact, pit, quantiles = {}, {}, {}, {}, {}
    rng = streams.numpy("law")
    with progress(len(cells), "ntk fluctuations") as bar:
        for d, w in cells:
            spec = MLP(w, d, "relu", W_std=2**0.5, b_std=None)
            keys = jax.random.split(streams.network("fluctuations", w, d), config.samples)
            gram[d, w] = ntk_gram_samples(spec, x, keys, chunk_size=128).astype(np.float64)
            limit[d, w] = np.asarray(closed_form(spec, x), np.float64)
            exact[d, w] = np.array([relu_diagonal.moment([w] * d, config.input_dim, x_sq, r) for r in (1, 2, 3, 4)])
            law = np.sort(relu_diagonal.sample([w] * d, config.input_dim, x_sq, rng, config.law_draws))
            pit[d, w] = _mid_rank(law, gram[d, w][:, 0, 0])
            quantiles[d, w] = np.quantile(law, QUANTILES)
            bar.update()
    return Result(cells, gram, limit, exact, pit, quantiles)


def relative_variance(theta: np.ndarray) -> float:
    """``E[Theta^2] / E[Theta]^2 - 1 = (sd / mean)^2`` over the samples."""
    return float(np.mean(theta**2) / np.mean(theta) ** 2 - 1)


def exact_relative_variance(m: np.ndarray) -> float:
    """``m[1] / m[0]^2 - 1`` of the exact moments ``m = (E[Theta], E[Theta^2], ...)``."""
    return float(m[1] / m[0] ** 2 - 1)


def predicted_se(m: np.ndarray, samples: int) -> float:
    """The standard error of ``log relative_variance`` from ``samples`` draws, by the delta method:
    ``E[Theta^2] / E[Theta]^2`` moves with ``Theta^2 / m2 - 2 Theta / m1``, whose variance the exact
    moments ``m`` give."""
    var = m[3] / m[1] ** 2 - 4 * m[2] / (m[0] * m[1]) + 4 * m[1] / m[0] ** 2 - 1
    ratio = m[1] / m[0] ** 2
    return float(ratio / (ratio - 1) * np.sqrt(max(var, 0.0) / samples))


def _grouped(config: Config, values: np.ndarray) -> np.ndarray:
    """``(samples, ...)`` -> ``(groups, samples / groups, ...)``."""
    return values.reshape(config.groups, -1, *values.shape[1:])


def analyse(config: Config, r: Result) -> dict:
    """Per cell the measured and exact relative variances and which cells resolve them; how far
    exp(5 depth/width) - 1 is from the exact value there; both claims' jackknifed statistics."""
    se = {c: predicted_se(r.exact[c], config.samples) for c in r.cells}
    resolved = [c for c in r.cells if se[c] <= config.resolution]
    unresolved = [c for c in r.cells if c not in resolved]
    diag = {c: _grouped(config, r.gram[c][:, 0, 0]) for c in r.cells}   # (groups, per group)
    per_cell = {c: jackknife(lambda g: relative_variance(g.ravel()), diag[c]) for c in r.cells}
    out = {"se": se, "resolved": resolved, "unresolved": unresolved, "per_cell": per_cell,
           "exact": {c: exact_relative_variance(r.exact[c]) for c in r.cells}, "moment": None, "law": None}
    if resolved:
        # Weighted by the exact inverse variance: the narrow cells' heavier tails would set the interval.
        wt = np.array([1 / se[c] ** 2 for c in resolved])
        wt = wt / wt.sum()
        stacked = np.stack([diag[c] for c in resolved], axis=1)            # (groups, cells, per group)
        target = np.log([out["exact"][c] for c in resolved])
        out["moment"] = jackknife(lambda g: float(wt @ (np.log(
            [relative_variance(g[:, i].ravel()) for i in range(len(resolved))]) - target)), stacked)
        out["pooled_se"] = float(1 / np.sqrt(sum(1 / se[c] ** 2 for c in resolved)))
        out["leading_over_exact"] = [float(np.expm1(HANIN_NICA_RATE * d / w) / out["exact"][d, w])
                                     for d, w in resolved]
    if unresolved:
        pits = np.stack([_grouped(config, r.pit[c]) for c in unresolved], axis=1)
        out["law"] = jackknife(lambda g: float(g.mean()), pits)
        out["per_cell_law"] = {c: jackknife(lambda g: float(g.mean()), _grouped(config, r.pit[c]))
                               for c in unresolved}
    return out


def findings(config: Config, r: Result) -> Findings:
    """Two claims: the exact relative variance where the networks resolve it, the exact law where
    they do not; figure, prose, series."""
    a = analyse(config, r)
    claims = []
    method = (f"delete-one-group jackknife over {config.groups} groups of "
              f"{config.samples // config.groups} networks, Student-t")

    def span(cells):
        return f"{len(cells)} cells, depth/width {min(d / w for d, w in cells):.3g}-{max(d / w for d, w in cells):.3g}"

    if a["moment"] is not None:
        estimate, ci, _ = a["moment"]
        ws = [w for _, w in a["resolved"]]
        over = a["leading_over_exact"]
        claims.append(Claim(
            id="ntk_fluctuation_exact_variance", section=SECTION,
            statement="The relative variance Var[Theta(x,x)] / E[Theta(x,x)]^2 of ReLU networks equals its "
                      f"exact finite depth-and-width value ({span(a['resolved'])})",
            prediction="weighted mean over cells of log(measured / exact) = 0", expected=0.0,
            measured=estimate, ci=ci, tolerance=config.moment_tolerance,
            reason=f"a 5% resolution; exp(5 depth/width) - 1, Hanin and Nica's order, is {min(over):.2f}-"
                   f"{max(over):.2f} times the exact value at these cells",
            interval_method=method, n_seeds=config.groups, fit_range=(min(ws), max(ws))))
    if a["law"] is not None:
        estimate, ci, _ = a["law"]
        ws = [w for _, w in a["unresolved"]]
        claims.append(Claim(
            id="ntk_fluctuation_exact_law", section=SECTION,
            statement="Theta(x,x) of ReLU networks follows its exact finite depth-and-width law where its "
                      f"variance is too heavy-tailed to estimate ({span(a['unresolved'])})",
            prediction="P(a network's Theta > an independent draw of the law) = 1/2", expected=0.5,
            measured=estimate, ci=ci, tolerance=config.law_tolerance,
            reason="a resolution: for a log-normal law, 0.02 is a rescaling of Theta by 0.07 of the "
                   "spread of log Theta",
            interval_method=method, n_seeds=config.groups, fit_range=(min(ws), max(ws))))
    off = {c: [relative_variance(r.gram[c][:, 0, j]) for j in range(1, 1 + len(config.cosines))]
           for c in r.cells}
    series = {"fluctuations": {
        "cells": r.cells, "depth_over_width": [d / w for d, w in r.cells],
        "exact_moments": [r.exact[c] for c in r.cells],
        "exact_relative_variance": [a["exact"][c] for c in r.cells],
        "measured_relative_variance": [a["per_cell"][c][0] for c in r.cells],
        "measured_ci": [a["per_cell"][c][1] for c in r.cells],
        "predicted_se_of_log": [a["se"][c] for c in r.cells],
        "resolved": [c in a["resolved"] for c in r.cells],
        "p_network_above_law": [float(np.mean(r.pit[c])) for c in r.cells],
        "mean_over_limit": [float(np.mean(r.gram[c][:, 0, 0]) / r.limit[c][0, 0]) for c in r.cells],
        "cosines": config.cosines, "off_diagonal_relative_variance": [off[c] for c in r.cells]}}
    section = Section(SECTION, _prose(config, r, a, off), [Figure(
        "depth_width_fluctuations", _figure(config, r, a, off),
        "The NTK diagonal of ReLU networks against its exact finite depth-and-width law. (a) The "
        "relative variance against depth/width: exact (lines, one per width) and the networks' (filled "
        "where they resolve it, with 95% intervals; open where its heavy tail does not). (b) Quantiles of "
        "the networks' Theta against the exact law's, at the cells of largest depth/width. (c) Off the "
        "diagonal, measured only. (d) The relative standard deviation at one depth against width.")])
    return Findings(claims, [section], series)


def exact_curve(width: int, depth_over_width_max: float, input_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The exact relative variance at ``width`` for depths up to ``depth_over_width_max * width``."""
    depths = np.unique(np.geomspace(1, max(1, depth_over_width_max * width), 40).astype(int))
    return depths / width, np.array([exact_relative_variance(np.array(
        [relu_diagonal.moment([width] * d, input_dim, float(input_dim), k) for k in (1, 2)])) for d in depths])


def _figure(config: Config, r: Result, a: dict, off: dict):
    fig, axes = plt.subplots(2, 2, figsize=(11, 8.4))
    ax = axes[0, 0]
    for i, w in enumerate(config.widths):
        cells = [c for c in r.cells if c[1] == w]
        if not cells:
            continue
        b, e = exact_curve(w, max(d for d, _ in cells) / w, config.input_dim)
        ax.plot(b, e, "-", color=f"C{i}", lw=1, label=f"width {w}")
        for c in cells:
            est, ci, _ = a["per_cell"][c]
            if c in a["resolved"]:
                ax.errorbar(c[0] / w, est, yerr=[[est - ci[0]], [ci[1] - est]], fmt="o", color=f"C{i}", ms=4)
            else:
                ax.plot(c[0] / w, est, "o", color=f"C{i}", ms=4, mfc="none")
    beta = np.array([d / w for d, w in r.cells])
    bb = np.geomspace(beta.min() / 1.3, beta.max() * 1.3, 50)
    ax.plot(bb, np.expm1(HANIN_NICA_RATE * bb), "k--", lw=1, label="exp(5 depth/width) - 1 (Hanin & Nica's order)")
    ax.set(xscale="log", yscale="log", xlabel="depth / width", ylabel="Var[Theta] / E[Theta]^2",
           title="(a) exact (lines) and networks (points)")
    ax.legend(fontsize=7)

    ax = axes[0, 1]
    top = sorted(a["unresolved"] or r.cells, key=lambda c: -c[0] / c[1])[:4]
    for i, c in enumerate(top):
        mean = r.exact[c][0]
        q_net = np.quantile(r.gram[c][:, 0, 0], QUANTILES)
        ok = (q_net > 0) & (r.law_quantiles[c] > 0)
        ax.plot(r.law_quantiles[c][ok] / mean, q_net[ok] / mean, ".", color=f"C{i}", ms=4,
                label=f"depth {c[0]}, width {c[1]}")
    ax.set(xscale="log", yscale="log")
    lo, hi = ax.get_xlim()
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    ax.set(xlabel="exact law's quantile of Theta / E[Theta]", ylabel="networks' quantile",
           title="(b) quantiles 1%-99%, largest depth/width")
    ax.legend(fontsize=7)

    ax = axes[1, 0]
    ax.plot(beta, [a["per_cell"][c][0] for c in r.cells], "ko", ms=3, label="diagonal (networks)")
    for j, cos in enumerate(config.cosines):
        ax.plot(beta, [off[c][j] for c in r.cells], "o", color=f"C{j + 1}", ms=3, mfc="none",
                label=f"off the diagonal, cosine {cos:g}")
    ax.set(xscale="log", yscale="log", xlabel="depth / width", ylabel="Var[Theta] / E[Theta]^2",
           title="(c) several inputs (networks)")
    ax.legend(fontsize=7)

    ax = axes[1, 1]
    cells = [c for c in r.cells if c[0] == config.rate_depth]
    if cells:
        widths = np.array([w for _, w in cells])
        mid, lo, hi = [], [], []
        for c in cells:
            est, ci, _ = a["per_cell"][c]
            mid.append(np.sqrt(est))
            lo.append(np.sqrt(max(ci[0], 0.0)))
            hi.append(np.sqrt(ci[1]))
        ax.errorbar(widths, mid, yerr=[np.subtract(mid, lo), np.subtract(hi, mid)], fmt="o", ms=4,
                    label="networks, 95%")
        exact_sd = np.sqrt([a["exact"][c] for c in cells])
        ax.plot(widths, exact_sd, "k-", lw=1, label="exact")
        ax.plot(widths, exact_sd[-1] * (widths / widths[-1]) ** -0.5, "k:", lw=1, label="width^(-1/2)")
        ax.set(xscale="log", yscale="log", xlabel="width", ylabel="sd / mean of Theta(x,x)",
               title=f"(d) depth {config.rate_depth}")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _large_depth_rates(input_dim: int) -> list[list]:
    """``log(E[Theta^2] / E[Theta]^2) / (depth / width)`` exactly, at large depth and width."""
    rows = []
    for beta in (0.5, 1.0, 2.0, 4.0):
        row = [beta]
        for w in (64, 256, 1024):
            m = [relu_diagonal.moment([w] * int(beta * w), input_dim, float(input_dim), k) for k in (1, 2)]
            row.append(float(np.log(m[1] / m[0] ** 2) / beta))
        rows.append(row)
    return rows


def _prose(config: Config, r: Result, a: dict, off: dict) -> str:
    def interval(j):
        est, ci, _ = j
        return f"{est:.3g} [{ci[0]:.3g}, {ci[1]:.3g}]"

    rows = []
    for c in r.cells:
        d, w = c
        law = a.get("per_cell_law", {}).get(c)
        rows.append([d, w, d / w, a["exact"][c], interval(a["per_cell"][c]), a["se"][c],
                     float(np.expm1(HANIN_NICA_RATE * d / w) / a["exact"][c]),
                     "variance" if c in a["resolved"] else "law", "" if law is None else interval(law),
                     float(np.mean(r.gram[c][:, 0, 0]) / r.limit[c][0, 0]),
                     ", ".join(f"{v:.3g}" for v in off[c])])
    resolved = a["resolved"]
    over = a.get("leading_over_exact", [])
    off_above = sum(all(v > a["per_cell"][c][0] for v in off[c]) for c in resolved)
    jk_se = "" if a["moment"] is None else (
        f" Its jackknife standard error, {a['moment'][2]:.4f}, matches the {a['pooled_se']:.4f} that the "
        "exact fourth moments predict.")
    return f"""
Hanin and Nica (2019) prove that for ReLU networks (He init, no biases) the NTK diagonal's relative
second moment E[Theta^2]/E[Theta]^2 is exp(5 depth/width) up to constant factors, so the kernel is
deterministic only when depth/width -> 0. More holds, and is derived in
`replication.experiments.ntk.relu_diagonal`: Theta(x, x) is a polynomial in independent per-layer
variables (each layer's number of active units, a chi-square with that many degrees of freedom for the
forward pass and one with one fewer for the backward pass, which Euler's identity z . df/dz = f
separates from the forward direction), so its moments follow exactly from a recursion over layers and
its law can be drawn directly. Its mean is the closed form at every width. Its relative variance
Var[Theta]/E[Theta]^2 is not a function of depth/width alone: at depth 1 it is exactly 3/width, deeper
c depth/width + O(width^-2) with c rising to about 3.7, and at fixed depth/width the logarithm of the
relative second moment approaches 5 depth/width from below as both grow. Exact,
log(E[Theta^2]/E[Theta]^2) / (depth/width):

{markdown_table(["depth/width", "width 64", "width 256", "width 1024"], _large_depth_rates(config.input_dim))}

Measured: {config.samples} networks per (depth, width) (NTK parameterization, W_std = sqrt(2), no
biases, |x|^2 = d = {config.input_dim}), their NTK at three inputs of equal norm (Theta exactly, by
automatic differentiation). The Monte Carlo standard error of the log relative variance from
{config.samples} networks follows from the exact first four moments; it exceeds {config.resolution}
(up to {max(a['se'].values()):.3g}) at {len(a['unresolved'])} of {len(r.cells)} cells, where the variance
is carried by networks rarer than 1 in {config.samples}. So:

- where it is at most {config.resolution} ({len(resolved)} cells), the measured relative variance against
  the exact one: the claim is the weighted mean of log(measured / exact) (weights: the exact inverse
  variances).{jk_se} Hanin and Nica's exp(5 depth/width) - 1 is {min(over, default=1):.2f} to
  {max(over, default=1):.2f} times the exact value at these cells;
- elsewhere (depth/width up to {max(d / w for d, w in r.cells):g}), the law itself: the probability that a
  network's Theta exceeds an independent draw of the exact law ({config.law_draws} draws per cell), which
  is 1/2 when the laws agree, whatever their tails; panel (b) shows the quantiles. The networks'
  sample variances there (open points in panel (a)) fall below the exact ones, as sample variances
  of so heavy a tail mostly do.

Off the diagonal (cosines {", ".join(f"{c:g}" for c in config.cosines)} with x; panel (c)) no exact law is
derived here: the measured relative variance grows with depth/width as on the diagonal, and is above
the diagonal's at {off_above} of the {len(resolved)} cells where the diagonal's is resolved (an
off-diagonal entry has a smaller mean).

{markdown_table(["depth", "width", "depth/width", "exact Var/E^2", "networks [95%]", "MC s.e. of its log",
                 "(exp(5 d/w) - 1) / exact", "tested by", "P(network > law) [95%]", "mean / closed form",
                 "off-diagonal Var/E^2"], rows)}
"""
