"""Jacot et al. 2018, Figure 1: ``Theta(x0, x(gamma))`` on the unit circle, against width.

Depth-4 ReLU networks in their count of affine layers (three hidden layers
and the readout; NTK parameterization), at initialisation and after a few
steps of full-batch gradient descent on four points of the circle, beside
the infinite-width limit. From width 500 to 10000 the curves' spread around
the limit and their change in training fall as ``width^(-1/2)``.

Random stream: ``jacot`` (the networks).
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from replication.arch import MLP
from replication.dynamics import stable_step
from replication.kernels import closed_form, empirical_ntk_row
from replication.report import Claim, Figure, Findings, Section, fmt, markdown_table
from replication.stats import EXPONENT_BAND, fit_power_law
from replication.sweep import Streams, progress
from replication.train import fit, mse_loss

SECTION = "Jacot et al. 2018, Figure 1"


@dataclass(frozen=True)
class Config:
    # Jacot et al.'s two widths (the figure's panels) and two between, for the exponents' fits
    # (the full preset adds 5000).
    widths: tuple[int, ...] = (500, 1000, 2000, 10000)
    depth: int = 3                 # hidden layers: depth 4 in their count of affine layers
    seeds: int = 8                 # initialisations per width (their figure shows 10)
    W_std: float = 1.0             # weights N(0, 1) scaled by 1/sqrt(fan-in)
    b_std: float = 0.1             # their bias scale beta
    angles: int = 49               # points gamma in [-pi, pi]
    train_angles: tuple[float, ...] = (-2.5, -1.2, 0.7, 2.0)
    train_targets: tuple[float, ...] = (0.6, -0.4, 0.5, -0.7)
    # Learning rate, as a fraction of the stability limit 2 n / lambda_max of the limit's training NTK.
    step_fraction: float = 0.75
    steps: int = 16
    exponent_tolerance: float = EXPONENT_BAND


@dataclass
class Curves:
    """``Theta(x0, x(gamma))`` of the limit and of every network, before and after training."""

    gamma: np.ndarray                 # (angles,)
    limit: np.ndarray                 # (angles,) the closed form
    theta: dict[int, np.ndarray]      # width -> (seeds, 2, angles): at init, after training
    loss_ratio: dict[int, np.ndarray]  # width -> (seeds,) final / initial training loss
    learning_rate: float


def circle(angles) -> jax.Array:
    """Points ``(cos g, sin g)`` on the unit circle, shape ``(len(angles), 2)``."""
    g = jnp.asarray(angles, dtype=jnp.float32)
    return jnp.stack([jnp.cos(g), jnp.sin(g)], axis=1)


def measure(config: Config, streams: Streams) -> Curves:
    """Each network's row of its NTK at ``x0 = (1, 0)``, exactly (forward mode along its gradient)."""
    spec = MLP(config.widths[0], config.depth, "relu", W_std=config.W_std, b_std=config.b_std)
    gamma = np.linspace(-np.pi, np.pi, config.angles)
    x0, xg = circle([0.0]), circle(gamma)
    x_train = circle(config.train_angles)
    y_train = jnp.asarray(config.train_targets, dtype=jnp.float32)[:, None]
    limit = np.asarray(closed_form(spec, x0, xg))[0]
    lr = stable_step(closed_form(spec, x_train), config.step_fraction)
    theta, losses = {}, {}
    with progress(len(config.widths) * config.seeds, "ntk jacot figure") as bar:
        optimizer = optax.sgd(lr)
        for width in config.widths:
            module = spec.replace(width=width).flax()
            at = np.empty((config.seeds, 2, len(gamma)))
            final = np.empty(config.seeds)
            for i in range(config.seeds):
                params = module.init(streams.network("jacot", width, i), x0)
                at[i, 0] = np.asarray(empirical_ntk_row(module.apply, params, x0, xg))
                run = fit(mse_loss(module.apply), params, optimizer, config.steps, args=(x_train, y_train))
                del params
                at[i, 1] = np.asarray(empirical_ntk_row(module.apply, run.params, x0, xg))
                final[i] = float(run.losses[-1]) / float(run.losses[0])
                bar.update()
            theta[width], losses[width] = at, final
    return Curves(gamma, limit, theta, losses, lr)


def spread(curves: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per curve (last axis: angles), the relative RMS distance from ``reference``."""
    return np.sqrt(np.mean((curves - reference) ** 2, axis=-1)) / np.sqrt(np.mean(reference**2))


def change(theta: np.ndarray) -> np.ndarray:
    """Per network, the relative RMS distance between its curves after and before training."""
    return (np.sqrt(np.mean((theta[:, 1] - theta[:, 0]) ** 2, axis=-1))
            / np.sqrt(np.mean(theta[:, 0] ** 2, axis=-1)))


def findings(config: Config, curves: Curves) -> Findings:
    """Two exponents fitted over every width: the spread at init and the change in training; the
    figure (the narrowest and widest width, Jacot et al.'s), the table and the curves."""
    init_spread = {w: spread(a[:, 0], curves.limit) for w, a in curves.theta.items()}
    moved = {w: change(a) for w, a in curves.theta.items()}
    w_lo, w_hi = config.widths[0], config.widths[-1]
    fits = {name: fit_power_law(config.widths, np.stack([d[w] for w in config.widths]))
            for name, d in (("init", init_spread), ("moved", moved))}
    claims = [
        Claim.of_fit(fits["init"], id="ntk_jacot_init_spread", section=SECTION,
                     statement=f"Spread of Theta(x0, x(gamma)) around the limit, width {w_lo} -> {w_hi}",
                     prediction="spread ~ width^(-1/2)", expected=-0.5, tolerance=config.exponent_tolerance),
        Claim.of_fit(fits["moved"], id="ntk_jacot_training_move", section=SECTION,
                     statement=f"Change of Theta(x0, x(gamma)) in training, width {w_lo} -> {w_hi}",
                     prediction="change <~ width^(-1/2) (Jacot et al.: constant in the limit)",
                     expected=-0.5, tolerance=config.exponent_tolerance, relation="<="),
    ]
    series = {f"jacot/width{w}": {"gamma": curves.gamma, "limit": curves.limit, "theta_init": a[:, 0],
                                   "theta_trained": a[:, 1], "spread_init": init_spread[w],
                                   "change": moved[w], "loss_ratio": curves.loss_ratio[w]}
              for w, a in curves.theta.items()}
    series["jacot/fits"] = fits
    rows = [[w, float(np.mean(init_spread[w])), float(np.mean(spread(curves.theta[w][:, 1], curves.limit))),
             float(np.mean(moved[w])), float(np.max(curves.loss_ratio[w]))] for w in config.widths]
    section = Section(SECTION, _prose(config, curves, rows), [Figure(
        "jacot_figure1", _figure(config, curves),
        "Theta(x0, x(gamma)) of depth-4 ReLU networks: thin solid lines at initialisation, dashed "
        "after training, thick black the infinite-width limit (after Jacot et al. 2018, Figure 1).")])
    return Findings(claims, [section], series)


def _figure(config: Config, curves: Curves):
    """One panel per width: every network's curve at init and after training, and the limit."""
    gamma, limit = curves.gamma, curves.limit
    shown = sorted({config.widths[0], config.widths[-1]})
    fig, axes = plt.subplots(1, len(shown), figsize=(5.4 * len(shown), 4.0), sharey=True, squeeze=False)
    for ax, width in zip(axes[0], shown):
        a = curves.theta[width]
        for i in range(a.shape[0]):
            ax.plot(gamma, a[i, 0], color="C0", lw=0.7, alpha=0.8, label="t = 0" if i == 0 else None)
            ax.plot(gamma, a[i, 1], color="C1", lw=0.7, ls="--", alpha=0.8,
                    label=f"t = {config.steps} steps" if i == 0 else None)
        ax.plot(gamma, limit, "k", lw=2, label="infinite width")
        ax.scatter(config.train_angles, np.interp(config.train_angles, gamma, limit),
                   marker="x", color="k", zorder=3, label="training inputs")
        ax.set(xlabel="gamma", title=f"width {width}, {a.shape[0]} initialisations")
        ax.grid(alpha=0.25)
    axes[0, 0].set_ylabel("Theta(x0, x(gamma))")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def _prose(config: Config, curves: Curves, rows: list) -> str:
    return f"""
Jacot et al. (2018) plot the NTK of depth-4 ReLU networks (four affine layers: {config.depth}
hidden layers and the readout; NTK parameterization, weights N(0, 1) scaled by 1/sqrt(fan-in), bias
scale beta = {fmt(config.b_std)}) between x0 = (1, 0) and x(gamma) = (cos gamma, sin gamma), for 10
initialisations at widths 500 and 10000, at initialisation and after training, beside the limit. Here:
the same networks (Flax, {config.seeds} initialisations per width, widths
{", ".join(map(str, config.widths))}), trained by full-batch gradient descent (optax SGD,
{config.steps} steps of size {fmt(curves.learning_rate)}, {fmt(config.step_fraction)} of the stability
limit 2 n / lambda_max of the limit's training kernel) on {len(config.train_angles)} points of the circle
(angles {", ".join(fmt(a) for a in config.train_angles)}, targets
{", ".join(fmt(t) for t in config.train_targets)}).
The limit is neural-tangents' closed form; one network's Theta(x0, x(gamma)) is computed exactly, as
the forward-mode derivative of its outputs along its gradient at x0. Spread: relative RMS distance, over
the {config.angles} angles, of one network's curve from the limit; change: relative RMS distance between
one network's curves before and after training. The exponents are fitted over all {len(config.widths)} widths,
with a Student-t interval over the {config.seeds} initialisations' own slopes; the figure shows
Jacot et al.'s two widths.

{markdown_table(["width", "spread at init", "spread after training", "change in training",
                 "worst final / initial loss"], rows)}
"""
