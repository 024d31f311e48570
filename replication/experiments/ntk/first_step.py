"""The NTK's mean change in a first step of gradient descent, against depth/width.

At fixed depth the NTK of a network with ``n`` units per layer moves by
``O(1/n)`` relative to itself in a step of size ``O(1)``: the lazy regime.
Hanin and Nica (2019) prove that for ReLU networks whose depth ``d`` grows
with ``n``, the mean of the NTK's first SGD update is exponential in
``beta = d / n``: deep and wide networks move their kernel even where shallow
wide ones do not.

Measured here, for bias-free ReLU networks (NTK parameterization, ``W_std^2 =
2``) and one input ``x``: one step of gradient descent on ``f(x)^2 / 2`` (the
target 0; a nonzero target adds a term whose mean vanishes, because flipping
the readout's sign flips ``grad f . H grad f``), with the step ``lambda = 1 /
E[Theta(x, x)]`` that would carry ``f(x)`` to the target in one step if the
kernel stood still. To first order in ``lambda`` the NTK at ``x`` changes by
``lambda D`` with ``D = d/de Theta(x, x; theta - e f grad f)|_{e=0} = -2 f
grad f . H grad f`` (``H`` the Hessian of ``f``; a Hessian-vector product).
The statistic is the mean relative change per unit of depth/width,

    g = E[D] / (beta E[Theta]^2),

which the fixed-depth expansion, ``E[D] / E[Theta]^2 = c d / n + O(n^-2)``,
makes constant in ``beta`` to leading order, and Hanin and Nica's result
makes grow with it.

Random streams: ``first_step`` (the networks).
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from replication.arch import MLP, training_layout
from replication.kernels import over_initialisations
from replication.report import Claim, Figure, Findings, Section, markdown_table
from replication.stats import jackknife
from replication.sweep import Streams, progress

SECTION = "The NTK's first step: its mean change grows with depth/width"


@dataclass(frozen=True)
class Config:
    # Cells (depth, width = depth / beta): each beta at several depths, so that a function of
    # beta alone shows as cells that agree.
    betas: tuple[float, ...] = (1 / 16, 1 / 8, 1 / 4, 1 / 2)
    depths: tuple[int, ...] = (2, 4, 8, 16, 32)
    max_weights: int = 2**19       # skip (depth, width) with depth * width^2 above this
    min_width: int = 8
    samples: int = 768             # networks per cell
    groups: int = 16               # independent groups of networks: the jackknife's replicates
    input_dim: int = 8             # x = (1, ..., 1)

    def __post_init__(self):
        if self.samples % self.groups or self.samples // self.groups < 2:
            raise ValueError(f"samples ({self.samples}) must be a multiple of groups ({self.groups}), "
                             "at least 2 per group")
        if len(self.betas) < 2:
            raise ValueError(f"need at least two values of depth/width, got {self.betas}")

    def cells(self) -> list[tuple[int, int]]:
        """(depth, width) with width = depth / beta an integer, at least ``min_width``, and depth *
        width^2 <= ``max_weights``."""
        out = []
        for beta in self.betas:
            for d in self.depths:
                w = d / beta
                if w == int(w) and w >= self.min_width and d * w * w <= self.max_weights:
                    out.append((d, int(w)))
        return out


@dataclass
class Result:
    cells: list[tuple[int, int]]
    theta: dict[tuple[int, int], np.ndarray]    # (samples,) Theta(x, x)
    change: dict[tuple[int, int], np.ndarray]   # (samples,) D, the first-order change per unit step


def first_step_samples(spec: MLP, x: jax.Array, keys: jax.Array, chunk_size: int) -> np.ndarray:
    """``(len(keys), 2)``: ``Theta(x, x) = |grad f|^2`` and ``D = -2 f grad f . H grad f`` of networks
    initialised from ``keys``, at one input ``x`` ``(1, d)``."""
    module = spec.flax()

    def one(params):
        def f(p):
            return module.apply(p, x)[0, 0]

        value, grad = jax.value_and_grad(f)(params)
        step = jax.tree_util.tree_map(lambda g: (-value * g).astype(g.dtype), grad)
        _, h_step = jax.jvp(jax.grad(f), (params,), (step,))
        leaves, h_leaves = jax.tree_util.tree_leaves(grad), jax.tree_util.tree_leaves(h_step)
        theta = sum(jnp.vdot(g, g) for g in leaves)
        return jnp.stack([theta, 2 * sum(jnp.vdot(g, h) for g, h in zip(leaves, h_leaves))])

    # Traced feature-major: the gradient's backward products are W @ delta (replication.arch).
    with training_layout():
        return np.asarray(over_initialisations(module, keys, x, one, chunk_size=chunk_size), np.float64)


def measure(config: Config, streams: Streams) -> Result:
    """``samples`` networks per cell: Theta(x, x) and its first-order change D."""
    x = jnp.ones((1, config.input_dim))
    theta, change = {}, {}
    cells = config.cells()
    if not cells:
        raise ValueError(f"no (depth, width) cell: depths {config.depths}, depth/width {config.betas}, "
                         f"widths from {config.min_width} to depth * width^2 <= {config.max_weights}")
    with progress(len(cells), "ntk first step") as bar:
        for d, w in cells:
            spec = MLP(w, d, "relu", W_std=2**0.5, b_std=None)
            keys = jax.random.split(streams.network("first_step", w, d), config.samples)
            s = first_step_samples(spec, x, keys, chunk_size=128)
            theta[d, w], change[d, w] = s[:, 0], s[:, 1]
            bar.update()
    return Result(cells, theta, change)


def _g(beta: float):
    """The statistic on ``(groups, per group, 2)`` samples of (Theta, D): E[D] / (beta E[Theta]^2)."""
    def statistic(s):
        s = s.reshape(-1, 2)
        return float(np.mean(s[:, 1]) / (beta * np.mean(s[:, 0]) ** 2))
    return statistic


def analyse(config: Config, r: Result) -> dict:
    """Per cell and per beta (cells pooled with inverse-variance weights): g's jackknifed estimate;
    the ratio of the largest beta's g to the smallest's."""
    def grouped(c):
        return np.stack([r.theta[c], r.change[c]], axis=-1).reshape(config.groups, -1, 2)

    per_cell = {c: jackknife(_g(c[0] / c[1]), grouped(c)) for c in r.cells}
    betas = [b for b in config.betas if any(np.isclose(d / w, b) for d, w in r.cells)]
    at = {b: [c for c in r.cells if np.isclose(c[0] / c[1], b)] for b in betas}

    def pooled(b):
        # Inverse-variance weights from each cell's own jackknife, fixed before resampling: the
        # deepest cells' heavy tails would otherwise set the interval.
        wt = np.array([1 / per_cell[c][2] ** 2 for c in at[b]])
        wt = wt / wt.sum()
        return lambda s: float(wt @ [_g(b)(s[:, i]) for i in range(len(wt))])

    stacked = {b: np.stack([grouped(c) for c in at[b]], axis=1) for b in betas}  # (groups, cells, per, 2)
    per_beta = {b: jackknife(pooled(b), stacked[b]) for b in betas}
    ratio = None
    if len(betas) >= 2:
        lo, hi = betas[0], betas[-1]
        both = np.concatenate([stacked[lo], stacked[hi]], axis=1)
        n_lo = len(at[lo])
        ratio = jackknife(lambda s: pooled(hi)(s[:, n_lo:]) / pooled(lo)(s[:, :n_lo]), both)
    return {"per_cell": per_cell, "betas": betas, "at": at, "per_beta": per_beta, "ratio": ratio}


def findings(config: Config, r: Result) -> Findings:
    a = analyse(config, r)
    claims = []
    if a["ratio"] is not None:
        claims.append(_claim(config, r, a))
    series = {"first_step": {
        "cells": r.cells, "depth_over_width": [d / w for d, w in r.cells],
        "g": [a["per_cell"][c][0] for c in r.cells], "g_ci": [a["per_cell"][c][1] for c in r.cells],
        "mean_theta": [float(np.mean(r.theta[c])) for c in r.cells],
        "betas": a["betas"], "g_pooled": [a["per_beta"][b][0] for b in a["betas"]],
        "g_pooled_ci": [a["per_beta"][b][1] for b in a["betas"]], "samples": config.samples}}
    section = Section(SECTION, _prose(config, r, a), [Figure(
        "first_step", _figure(config, r, a),
        "Mean first-order change of the NTK at the trained input in one gradient step (step 1 / E[Theta]), "
        "relative to E[Theta] and per unit of depth/width, against depth/width; one marker per cell "
        "(depth, width), with 95% intervals. Constant under the fixed-depth expansion's leading order; "
        "growing under Hanin and Nica's.")])
    return Findings(claims, [section], series)


def _claim(config: Config, r: Result, a: dict) -> Claim:
    lo, hi = a["betas"][0], a["betas"][-1]
    estimate, ci, _ = a["ratio"]
    return Claim(
        id="ntk_first_step_change_grows", section=SECTION,
        statement="The NTK's mean relative change in a first gradient step, per unit of depth/width, grows "
                  f"with depth/width (ReLU, depth/width {lo:g} to {hi:g})",
        prediction=f"g(depth/width = {hi:g}) / g({lo:g}) > 1", expected=1.0, relation=">=", tolerance=0.0,
        measured=estimate, ci=ci,
        reason="Hanin and Nica: exponential in depth/width; the fixed-depth expansion's leading order: "
               "constant, a ratio of 1",
        interval_method=f"delete-one-group jackknife over {config.groups} groups of "
                        f"{config.samples // config.groups} networks per cell, Student-t",
        n_seeds=config.groups, fit_range=(min(w for _, w in r.cells), max(w for _, w in r.cells)))


def _figure(config: Config, r: Result, a: dict):
    fig, ax = plt.subplots(figsize=(5.8, 4.2))
    depths = sorted({d for d, _ in r.cells})
    for i, depth in enumerate(depths):
        cells = [c for c in r.cells if c[0] == depth]
        beta = np.array([d / w for d, w in cells])
        g = np.array([-a["per_cell"][c][0] for c in cells])
        err = np.array([[g_ + a["per_cell"][c][1][0], -a["per_cell"][c][1][1] - g_]
                        for g_, c in zip(g, cells)]).T
        ax.errorbar(beta * (1 + 0.03 * (i - len(depths) / 2)), g, yerr=np.abs(err), fmt="o", ms=4,
                    capsize=2, color=f"C{i}", label=f"depth {depth}")
    ax.set(xscale="log", yscale="log", xlabel="depth / width",
           ylabel="-E[D] / (depth/width * E[Theta]^2)")
    ax.set_xscale("log", base=2)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _prose(config: Config, r: Result, a: dict) -> str:
    def interval(j):
        est, ci, _ = j
        return f"{est:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]"

    rows = [[d, w, f"{d / w:g}", interval(a["per_cell"][d, w])] for d, w in r.cells]
    pooled = [[f"{b:g}", len(a["at"][b]), interval(a["per_beta"][b])] for b in a["betas"]]
    lo, hi = a["betas"][0], a["betas"][-1]
    spread = max((max(abs(a["per_cell"][c][0]) for c in a["at"][b])
                  / min(abs(a["per_cell"][c][0]) for c in a["at"][b]) - 1 for b in a["betas"] if b < hi),
                 default=0.0)
    return f"""
One input `x = (1, ..., 1)` in {config.input_dim} dimensions, bias-free ReLU networks (NTK
parameterization, W_std^2 = 2), {config.samples} networks per cell. One gradient step on `f(x)^2 / 2`
of size `1 / E[Theta(x, x)]`; to first order the NTK at `x` changes by `D / E[Theta]`, where `D` is
the directional derivative of `Theta(x, x)` along the step (a Hessian-vector product, exact, no
finite difference). `g = E[D] / (depth/width * E[Theta]^2)`: the mean relative change per unit of
depth/width. {_sign(a)}

| depth | width | depth/width | g [95%] |
|---|---|---|---|
{chr(10).join("| " + " | ".join(map(str, row)) + " |" for row in rows)}

Pooled over the cells of each depth/width (weights: each cell's inverse squared standard error):

{markdown_table(["depth/width", "cells", "g [95%]"], pooled)}

Below depth/width {hi:g}, the cells at one depth/width differ by {spread:.0%} at most (corrections of
order 1/width), less than g moves between depth/width {lo:g} and {hi:g}: the change is mostly a
function of depth/width, as both readings say to leading order. It
does not stay constant in depth/width: the claim is the ratio of g at depth/width {hi:g} to g at
{lo:g}, above 1 when the change grows faster than depth/width (Hanin and Nica), 1 if it were the
fixed-depth expansion's leading term `c depth/width` alone. The deepest cells at depth/width
{hi:g} carry heavy tails (a few networks with a large gradient), hence their wide intervals.
"""


def _sign(a: dict) -> str:
    """What the pooled g's sign says, in words."""
    signs = {np.sign(a["per_beta"][b][0]) for b in a["betas"]}
    if signs == {-1.0}:
        return ("The mean change is negative at every depth/width: the step lowers the kernel at the "
                "input it trains on.")
    if signs == {1.0}:
        return ("The mean change is positive at every depth/width: the step raises the kernel at the "
                "input it trains on.")
    return "The mean change's sign differs between depth/widths."
