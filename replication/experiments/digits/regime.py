"""Where the kernel regime begins on the digits: the gap along training against the kernel's change.

Every trained network (``trained``) is stopped at a few early steps on its
way to the table's ``steps``. At each stop ``t`` and at the end it gives the
RMS gap of its test outputs to the closed form at step ``t`` from its own
initial outputs, and its empirical NTK's change since init,
``||Theta_N(t) - Theta_N(0)||_op``, on a fixed draw of training images.

The gap's asymptotic rate, ``width^(-1/2)``, is first-order perturbation
theory in the kernel. Gradient descent multiplies the training residual by
``(I - eta Theta / (n k))`` per step (``mse`` is a mean over the ``n k``
outputs), so a change ``Delta`` of the kernel moves the outputs at step
``t`` by at most ``||Delta||_op eta t / (n k)`` times the initial residual to
first order, and the dimensionless size of the change over the window is

    epsilon = ||Theta_N(t) - Theta_N(0)||_op eta t / (n k),

the regression experiment's ``epsilon``
(``replication.experiments.regression.regime``) with ``k`` outputs. On ``p``
training images ``||.||_op / p`` estimates the norm of the kernel's integral
operator, as ``||.||_op / n`` does on all of them, so ``n`` becomes ``p``.
At the step ``fraction x 2 n k / lambda_max``, ``eta / (n k) = 2 fraction /
lambda_max``: epsilon is ``2 fraction t`` times the kernel's change in units
of the closed form's largest eigenvalue. The kernel is the mean over the
outputs (``replication.kernels.empirical_ntk``): it leaves out the
off-diagonal output blocks, so its epsilon is a lower bound on the full
``(n k, n k)`` kernel's.

The rate is claimed where the change is first order, over the cells
``(width, t)`` with ``epsilon <= small_epsilon`` (as in the regression
experiment), one exponent shared by every ``t``; the crossover width, where
``epsilon = 1``, is measured at each ``t`` and fitted against ``t``, and the
whole ladder at ``steps`` is placed against it.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from replication.experiments.regression.regime import (Cells, asymptotic_fit, crossover,
                                                       seed_geometric_mean)
from replication.report import Claim, Figure, Section, fmt, markdown_table
from replication.stats import jackknife

SECTION = "Where the kernel regime begins"


def cells(m: dict, times, learning_rate: float, points: int, outputs: int) -> Cells:
    """One architecture's networks (``trained.sweep``'s arrays: the ladder, then its early widths, NaN after
    the step they were trained to) as ``Cells`` ``(widths, seeds, times)``."""
    early = m["early"]

    def both(key):
        return np.concatenate([np.asarray(m[key], np.float64), np.asarray(early[key], np.float64)])

    scale = learning_rate * np.asarray(times, np.float64) / (points * outputs)
    change = both("kernel_change_along")
    nan = np.full_like(change, np.nan)   # the gap is not split along training
    widths = np.array([*m["width"], *early["width"]])
    return Cells(widths, np.asarray(times), nonlinear=nan, linear=nan, trained=both("gap_along"),
                 kernel_change=change, epsilon=change * scale,
                 epsilon0=both("kernel_deviation")[..., None] * scale, seeds=np.full(len(widths), change.shape[1]))


def findings(config, result) -> tuple[list[Claim], Section, dict]:
    """Per architecture: the rate claim over the first-order cells, the crossover width against t."""
    times, points = config.times, min(config.kernel_points, result.n_train)
    claims, texts, series, panels = [], [], {}, {}
    for name, m in result.networks.items():
        c = cells(m, times, m["learning_rate"], points, result.outputs)
        beta, ci, used, per_seed = asymptotic_fit(c, config.small_epsilon)
        n_x, line = crossover(c)
        seeds = c.trained.shape[1]
        kappa, kappa_ci, _ = jackknife(lambda keep: crossover(c, keep)[1][0], np.arange(seeds))
        # Where epsilon = 1 at the table's step, on the fitted line N_x ~ t^kappa.
        n_x_end = float(np.exp(line[1] + line[0] * np.log(times[-1])))
        widths_used = sorted({w for w, _ in used})
        claims.append(Claim(
            id=f"digits_gap_rate_{name}", section=SECTION,
            statement=(f"{name}: trained network's test outputs -> closed-form NTK from its own init, same step, "
                       f"over the cells where the kernel's change is first order (epsilon <= "
                       f"{fmt(config.small_epsilon)}: {len(used)} cells, widths "
                       f"{widths_used[0] if used else '-'}-{widths_used[-1] if used else '-'}, t = "
                       f"{', '.join(str(t) for t in sorted({t for _, t in used})) or '-'}), one exponent shared by every t"),
            prediction="RMS gap ~ width^(-1/2) where the kernel's change is first order",
            expected=config.expected_exponent, measured=beta if used else None, ci=ci if used else None,
            tolerance=config.exponent_tolerance, reason="+-0.1: the exponent band of every width fit",
            interval_method=f"Student-t over {int(np.isfinite(per_seed).sum())} seeds' own shared slopes",
            n_seeds=seeds,
            fit_range=(widths_used[0], widths_used[-1]) if used else None))
        texts.append(_architecture_text(config, name, m, c, used, n_x, kappa, kappa_ci, n_x_end))
        panels[name] = (c, used)
        series[name] = {"times": list(times), "epsilon": c.epsilon, "epsilon_init": c.epsilon0,
                        "asymptotic_cells": used, "asymptotic_exponent": beta,
                        "asymptotic_exponent_per_seed": per_seed, "crossover_width": n_x,
                        "crossover_epsilon_exponent": _crossing_slopes(c),
                        "crossover_exponent": kappa, "crossover_exponent_ci": kappa_ci,
                        "crossover_width_at_steps": n_x_end}
    section = Section(SECTION, _intro(config, points) + "\n".join(texts), [
        Figure("regime", _figure(config, panels), "RMS gap between trained networks' test outputs and the "
               "closed form from their own init at the same step, against width, one line per step t "
               "(geometric mean over seeds). Filled markers: the cells the rate claims fit, where the kernel's "
               f"change is first order (epsilon <= {fmt(config.small_epsilon)}) at two widths or more; dashed: "
               "width^(-1/2).")])
    return claims, section, series


def _intro(config, points: int) -> str:
    return f"""
Each network is stopped at steps {', '.join(str(t) for t in config.stops)} on its way to step {config.steps}; at
each stop and at the end its test outputs are compared with the closed form at that step (gradient
descent's own discrete recursion, from the network's initial outputs), and its empirical NTK on the
first {points} training images of the split (which keeps the data set's order; every class is among
them) with its NTK at init. The kernel's change over the window, in units of the dynamics, is

    epsilon = ||Theta_N(t) - Theta_N(0)||_op eta t / (n k)

(`||.||_op / {points}` on those images standing for `||.||_op / n`; at this step size
`eta / (n k) = {fmt(2 * config.lr_fraction)} / lambda_max`, so epsilon is {fmt(2 * config.lr_fraction)} t times the kernel's change in
units of the closed form's largest eigenvalue). The kernel is the mean over the outputs, which
leaves out the off-diagonal output blocks: its epsilon is a lower bound on the full kernel's, and
how much lower is measured below for each architecture on one network. The width^(-1/2) rate is first-order
perturbation theory in the kernel, so it is claimed over the cells (width, t) whose epsilon
(geometric mean over seeds) is at most {fmt(config.small_epsilon)}: a first-order expansion's relative error is
O(epsilon). One exponent is shared by every t that has two such widths or more, each t with its own
prefactor; the interval is Student-t over the seeds' own slopes. At t = 1 the gap is, to first
order, the init kernel's deviation applied once, (eta / (n k)) (Theta_N(0) - Theta) r_0 (a test
checks this), plus the step's own curvature, which the kernel's change measures: a cell at t = 1
tests the init kernel's fluctuation as the dynamics carry it, later cells add the kernel's change
in training. The
crossover width N_x(t), where epsilon = 1, is interpolated on log axes at each t the ladder crosses it, and
N_x ~ t^kappa fitted; the regression experiment derives kappa = 2 for a kernel whose change grows
linearly in t at the rate O(1/N), or stays at a fixed O(N^-1/2).
"""


def _architecture_text(config, name, m, c: Cells, used, n_x, kappa, kappa_ci, n_x_end) -> str:
    eps, gap = seed_geometric_mean(c.epsilon), seed_geometric_mean(c.trained)
    inside = _used_cells(c, used)
    eps0 = seed_geometric_mean(c.epsilon0)
    relative = [f"{np.nanmean(r):.3f}" for r in m["kernel_relative_change"]]
    relative += ["not trained to it"] * (len(c.widths) - len(relative))

    def cell(i, j):
        if not np.isfinite(gap[i, j]):
            return "-"
        bold = "**" if inside[i, j] else ""
        return f"{bold}{eps[i, j]:.2g} / {gap[i, j]:.3f}{bold}"

    rows = [[w, *(cell(i, j) for j in range(len(c.times))), relative[i]] for i, w in enumerate(c.widths)]
    slopes = _crossing_slopes(c)
    crossing = ", ".join(f"t = {t}: {x:.3g} (epsilon ~ width^{b:+.2f} there)"
                         for t, x, b in zip(c.times, n_x, slopes) if np.isfinite(x)) or "none on the ladder"
    kappa_text = ("not fitted (fewer than two steps cross epsilon = 1 on the ladder)" if not np.isfinite(kappa)
                  else f"kappa = {kappa:.2f} [{kappa_ci[0]:.2f}, {kappa_ci[1]:.2f}] (delete-one jackknife over seeds)")
    end = ("" if not np.isfinite(n_x_end) else
           f" Extrapolated on that line (fitted up to step {config.stops[-1]}), epsilon = 1 at step {c.times[-1]} falls near "
           f"width **{n_x_end:.2g}**; the ladder trained to "
           f"it ends at {m['width'][-1]}, where epsilon is {eps[len(m['width']) - 1, -1]:.3g} and the kernel has moved by "
           f"{100 * np.nanmean(m['kernel_relative_change'][-1]):.1f}% (Frobenius) in training.")
    return f"""
**{name}**: epsilon / RMS gap of test outputs at each step (geometric means over {c.trained.shape[1]} seeds; bold: the
first-order cells the claim fits), and the kernel's relative change ||Theta_N(t) - Theta_N(0)||_F / ||Theta_N(0)||_F at
step {c.times[-1]}.

{markdown_table(["width", *(f"t = {t}" for t in c.times), f"kernel change at t = {c.times[-1]}"], rows)}

{_init_text(eps0, inside)} {_blocks_text(m["output_blocks"], eps, inside)}

Crossover width (epsilon = 1), with epsilon's local exponent in width between the two widths that
bracket it: {crossing}. Fitted N_x ~ t^kappa: {kappa_text}.{end} The derivation of kappa = 2 assumes
epsilon ~ width^(-1/2) (a fixed deviation) or width^(-1) (a drift); where epsilon barely falls with
width at a crossing, kappa is not that asymptotic exponent.
"""


def _used_cells(c: Cells, used) -> np.ndarray:
    """``(n_widths, n_times)``: True at the cells ``(width, t)`` the claim's fit used."""
    out = np.zeros((len(c.widths), len(c.times)), bool)
    for w, t in used:
        out[list(c.widths).index(w), list(c.times).index(t)] = True
    return out


def _init_text(eps0: np.ndarray, inside: np.ndarray) -> str:
    """The init deviation's epsilon over the cells the claim used."""
    if not inside.any():
        return "No cell is in the first-order regime on this ladder."
    return (f"Over the cells the claim fits, the init kernel's deviation ||Theta_N(0) - Theta||_op gives an epsilon "
            f"(same units) of {np.nanmin(eps0[inside]):.2g}-{np.nanmax(eps0[inside]):.2g}.")


def _blocks_text(b: dict, eps: np.ndarray, inside: np.ndarray) -> str:
    """How much the full kernel's epsilon exceeds the traced one's, and what that makes of the cells used."""
    text = (f"With the off-diagonal output blocks (the full kernel, on the first {b['points']} images, the ladder's "
            f"widest network of seed 0), the operator norm of the change by step {b['step']} is "
            f"{b['change']:.2f} times the traced kernel's, and of the init deviation {b['init_deviation']:.2f} times")
    if not inside.any():
        return text + "."
    return (text + f": scaled so, the fitted cells' epsilon is at most {b['change'] * np.nanmax(eps[inside]):.2g} "
            f"(criterion {np.nanmax(eps[inside]):.2g} on the traced kernel).")


def _crossing_slopes(c: Cells) -> np.ndarray:
    """Per time, the exponent of epsilon (geometric mean over seeds) in width between the two neighbouring
    widths that bracket its crossing of 1, as ``crossover`` finds it; NaN where it does not cross."""
    le, lw = np.log(seed_geometric_mean(c.epsilon)), np.log(c.widths)
    out = np.full(len(c.times), np.nan)
    for j in range(len(c.times)):
        for i in range(len(lw) - 1):
            if le[i, j] >= 0 > le[i + 1, j]:
                out[j] = (le[i + 1, j] - le[i, j]) / (lw[i + 1] - lw[i])
                break
    return out


def _figure(config, panels: dict):
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.3), sharey=True, squeeze=False)
    for ax, (name, (c, cells_used)) in zip(axes[0], panels.items()):
        gap, used = seed_geometric_mean(c.trained), _used_cells(c, cells_used)
        for j, t in enumerate(c.times):
            color = plt.cm.viridis(j / max(len(c.times) - 1, 1))
            ax.plot(c.widths, gap[:, j], "-", color=color, lw=1, label=f"t = {t}")
            inside = used[:, j]
            ax.plot(c.widths[inside], gap[inside, j], "o", color=color, ms=5)
            ax.plot(c.widths[~inside], gap[~inside, j], "o", mfc="none", color=color, ms=4)
        w = np.asarray(c.widths, float)
        ref = np.nanmax(gap[0]) * (w / w[0]) ** config.expected_exponent
        ax.plot(w, ref, "k--", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("channels" if name.startswith("cnn") else "width")
        ax.grid(True, alpha=0.25)
    axes[0, 0].set_ylabel("RMS gap of test outputs")
    axes[0, -1].legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    return fig
