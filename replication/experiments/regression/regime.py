"""Where the asymptotic regime begins: the table's gap against width and training time, part by part.

The table's networks (and wider ones) are stopped at several times ``t`` on
their way to the table's ``steps``; at each, the gap between a network's test
outputs and the closed-form dynamics from its own initial outputs is split,
as in the table, into

- the **linear part**: the network's linearisation (discrete gradient
  descent with its own NTK at init, float64) against the closed form. It is
  computed without training, so its ladder goes furthest.
- the **nonlinear part**: the trained network against its linearisation,
  what the kernel's change during training does.

Perturbation theory in the kernel says when each part is in its asymptotic
regime. Gradient descent multiplies the residual by ``(I - eta K / n)`` per
step; a perturbation ``Delta`` of ``K`` moves the outputs at step ``t`` by at
most ``||Delta||_op eta t / n`` times the initial residual to first order, so
the dimensionless size of the perturbation over the time window is

    epsilon = ||Delta||_op eta t / n,

and the first-order (asymptotic) regime is ``epsilon << 1``. For the
nonlinear part ``Delta`` is the kernel's change in training,
``Theta_N(t) - Theta_N(0)``, measured for every network at every ``t``; for
the linear part it is the kernel's deviation at init, ``Theta_N(0) - Theta``.

The crossover width, where ``epsilon = 1``: if the kernel's change is
``||Delta(t)|| ~ c t^a N^(-b)``, then ``N_x(t) ~ t^((1 + a) / b)``. Both
readings of the lazy limit give ``(1 + a) / b = 2``: a fixed deviation of
order ``N^(-1/2)`` (a = 0, b = 1/2, the issue's epsilon with the init
kernel), and a kernel that drifts at the rate ``O(1/N)`` of wide networks in
training (a = 1, b = 1; Dyer & Gur-Ari 2019). So the crossover width should
grow as ``t^2``.

Mode by mode: in the closed-form training NTK's eigenbasis
``(lambda_k, v_k)``, the closed form multiplies the residual's ``k``-th
component by ``(1 - eta lambda_k / n)`` per step. A wide network's residual
is projected on the same ``v_k``, and its decay per mode compared with the
closed form's, for the modes that have decayed measurably.

No networks of its own: everything is measured by the table study
(``replication.experiments.regression.table``), which calls ``findings`` here.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from replication.report import Claim, Figure, Section, fmt, markdown_table, mean_sd
from replication.stats import EXPONENT_BAND, fit_power_law, jackknife, local_slopes, t_interval

SECTION = "Where the asymptotic regime begins"


@dataclass(frozen=True)
class Config:
    # The asymptotic (first-order) regime: cells (width, t) whose epsilon of the kernel's change in
    # training (geometric mean over seeds) is at most this. A first-order expansion's relative error
    # is O(epsilon), so 0.1 keeps it at the 10% of the exponent band.
    small_epsilon: float = 0.1
    # The linear part's exponent is fitted from the write-up's width (1000) up: below it the init
    # kernel's deviation is a sizeable fraction of its top eigenvalue (the table shows it).
    linear_fit_from: int = 1000
    expected_exponent: float = -0.5
    exponent_tolerance: float = EXPONENT_BAND
    crossover_exponent: float = 2.0
    # Band on the crossover's exponent: a resolution. kappa = (1 + a) / b moves by about 0.5 when the
    # kernel change's exponents in t or width move by 0.2, which is their spread over this ladder.
    crossover_tolerance: float = 0.5
    # The width coefficient of the nonlinear part at fixed epsilon: 0 if epsilon collapses the cells
    # onto one curve. Band: the exponent band of the study.
    collapse_tolerance: float = EXPONENT_BAND
    # Modes whose closed-form factor (1 - eta lambda_k / n)^t is in this range at the time compared
    # are resolved (decayed measurably, and above the residual's float32 floor).
    mode_window: tuple[float, float] = (0.05, 0.7)
    # ... and claimed where their eigenvalue is at least this many times the kernel's change in training
    # (first-order perturbation of the mode's rate: relative error <= 1 / margin).
    mode_margin: float = 10.0
    mode_tolerance: float = 0.1


@dataclass
class Cells:
    """The trained ladder as arrays ``(n_widths, max_seeds, n_times)``, NaN where a width has fewer seeds."""

    widths: np.ndarray
    times: np.ndarray
    nonlinear: np.ndarray
    linear: np.ndarray
    trained: np.ndarray
    kernel_change: np.ndarray    # ||Theta_N(t) - Theta_N(0)||_op on the training inputs
    epsilon: np.ndarray          # of the kernel's change in training
    epsilon0: np.ndarray         # of the kernel's deviation at init
    seeds: np.ndarray            # per width
    # (eta / n) * integral over s <= t of ||Theta_N(s) - Theta_N(0)||_op ||r(s)|| / ||r(0)||, by the
    # trapezoid over the stops (r: the training residual)
    epsilon_integrated: np.ndarray | None = None


def cells(trained: dict, times, learning_rate: float, n: int) -> Cells:
    widths = np.array(sorted(trained))
    s = max(len(v) for v in trained.values())
    shape = (len(widths), s, len(times))
    out = {k: np.full(shape, np.nan) for k in ("nonlinear", "linear", "trained", "kernel_change", "epsilon",
                                               "epsilon0", "epsilon_integrated")}
    scale = learning_rate * np.asarray(times, np.float64) / n
    for i, w in enumerate(widths):
        for j, path in enumerate(trained[w]):
            # A path stopped at a prefix of the times (the widest widths) leaves NaN after it.
            k = len(path.nonlinear)
            out["nonlinear"][i, j, :k], out["linear"][i, j, :k] = path.nonlinear, path.linear[:k]
            out["trained"][i, j, :k], out["kernel_change"][i, j, :k] = path.trained, path.kernel_change
            out["epsilon"][i, j, :k] = path.kernel_change * scale[:k]
            out["epsilon0"][i, j, :k] = path.kernel_deviation * scale[:k]
            r = np.linalg.norm(path.residual_modes, axis=1)            # at 0 and at each stop
            f = np.r_[0.0, path.kernel_change] * r / r[0]
            stops = np.r_[0.0, np.asarray(times[:k], np.float64)]
            out["epsilon_integrated"][i, j, :k] = (np.cumsum(np.diff(stops) * (f[1:] + f[:-1]) / 2)
                                                   * learning_rate / n)
    return Cells(widths, np.asarray(times), seeds=np.array([len(trained[w]) for w in widths]), **out)


def seed_geometric_mean(a, keep=None, axis=1):
    """Geometric mean over seeds (``axis``), over the seed indices ``keep`` only, NaN ignored."""
    a = a if keep is None else np.take(a, keep, axis=axis)
    # A cell no seed reached (a width trained to fewer times) is NaN, without a warning.
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.exp(np.nanmean(np.log(a), axis=axis))


def asymptotic_exponent(c: Cells, small: float, keep=None, inside=None):
    """The total gap's exponent in width, one slope shared by every time, each time its own prefactor,
    over the cells whose epsilon (every seed's geometric mean) is at most ``small``, or over the cells
    ``inside`` ``(n_widths, n_times)``; with the cells used. ``keep``: the seed indices averaged."""
    gap = seed_geometric_mean(c.trained, keep)
    if inside is None:
        inside = seed_geometric_mean(c.epsilon) <= small
    inside = inside & np.isfinite(gap)
    rows, cols, y = [], [], []
    used = [j for j in range(len(c.times)) if inside[:, j].sum() >= 2]
    for k, j in enumerate(used):
        for i in np.flatnonzero(inside[:, j]):
            x = np.zeros(len(used) + 1)
            x[0], x[1 + k] = np.log(c.widths[i]), 1.0
            rows.append(x)
            y.append(np.log(gap[i, j]))
            cols.append((int(c.widths[i]), int(c.times[j])))
    if len(used) == 0:
        return np.nan, []
    beta = np.linalg.lstsq(np.array(rows), np.array(y), rcond=None)[0][0]
    return float(beta), cols


def asymptotic_fit(c: Cells, small: float):
    """``asymptotic_exponent`` with its interval: ``(exponent, interval, cells used, per-seed exponents)``.

    Each seed index is an independent replicate of the ladder: its own shared slope over the same cells
    (those of its widths), and a Student-t interval over the seeds' slopes, as for every width fit.
    """
    _, used = asymptotic_exponent(c, small)
    inside = seed_geometric_mean(c.epsilon) <= small
    per_seed = np.array([asymptotic_exponent(c, small, [s], inside)[0] for s in range(c.trained.shape[1])])
    beta, ci = t_interval(per_seed[np.isfinite(per_seed)])
    return beta, ci, used, per_seed


def collapse(c: Cells, keep=None, epsilon=None):
    """``log nonlinear = a + alpha log epsilon + gamma log width`` over every cell: ``(alpha, gamma)``.
    ``gamma = 0`` if epsilon (default ``c.epsilon``) alone orders the cells."""
    eps, gap = seed_geometric_mean(c.epsilon if epsilon is None else epsilon, keep), seed_geometric_mean(c.nonlinear, keep)
    ok = np.isfinite(eps) & np.isfinite(gap) & (gap > 0)
    w = np.broadcast_to(c.widths[:, None], eps.shape)
    x = np.c_[np.ones(ok.sum()), np.log(eps[ok]), np.log(w[ok])]
    coef = np.linalg.lstsq(x, np.log(gap[ok]), rcond=None)[0]
    return float(coef[1]), float(coef[2])


def crossover(c: Cells, keep=None):
    """Per time, the width where epsilon (geometric mean over seeds) crosses 1, interpolated on log axes
    between neighbouring widths (``nan`` where the ladder does not cross it); and the line
    ``(kappa, log c)`` of log crossover width against log t over the times that cross (NaN with fewer
    than two)."""
    eps = seed_geometric_mean(c.epsilon, keep)
    out = np.full(len(c.times), np.nan)
    lw = np.log(c.widths)
    for j in range(len(c.times)):
        le = np.log(eps[:, j])
        for i in range(len(lw) - 1):
            if le[i] >= 0 > le[i + 1]:
                out[j] = np.exp(lw[i] + (0 - le[i]) * (lw[i + 1] - lw[i]) / (le[i + 1] - le[i]))
                break
    ok = np.isfinite(out)
    line = np.polyfit(np.log(c.times[ok]), np.log(out[ok]), 1) if ok.sum() >= 2 else np.full(2, np.nan)
    return out, line


def _jackknife_over_seeds(stat, c: Cells):
    """Delete-one jackknife over seed indices (each seed index is one replicate of the whole ladder)."""
    return jackknife(stat, np.arange(c.nonlinear.shape[1]))


def mode_rates(trained: dict, width: int, times, window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """At ``width``, per network and mode: the network's residual decay ``log(r_k(t) / r_k(0))`` over the
    closed form's ``t log(1 - eta lambda_k / n)``, at the time ``t`` where the closed-form factor is
    inside ``window`` (the latest such time), NaN where none is. ``(ratios (seeds, modes),
    factor (modes,), t (modes,))``."""
    paths = trained[width]
    limit = paths[0].limit_residual_modes / paths[0].limit_residual_modes[0]   # (n_times + 1, modes)
    t_all = np.array((0, *times))
    ratios = np.full((len(paths), limit.shape[1]), np.nan)
    chosen, factor = np.full(limit.shape[1], np.nan), np.full(limit.shape[1], np.nan)
    for k in range(limit.shape[1]):
        inside = np.flatnonzero((limit[:, k] >= window[0]) & (limit[:, k] <= window[1]))
        if not len(inside):
            continue
        j = inside[-1]
        chosen[k], factor[k] = t_all[j], limit[j, k]
        for s, p in enumerate(paths):
            r = p.residual_modes[j, k] / p.residual_modes[0, k]
            ratios[s, k] = np.log(r) / np.log(factor[k]) if r > 0 else np.nan
    return ratios, factor, chosen


def gap_by_mode(trained: dict, width: int, times, eigenvalues, learning_rate: float, n: int):
    """At ``width``, per time: the share of the training-output gap's square (network against the closed
    form, both from the network's f0) in the modes with ``eta lambda_k t / n <= 1``, mean over networks;
    and those modes' share of all modes. ``(gap_share (n_times,), mode_share (n_times,))``."""
    a = learning_rate * np.asarray(eigenvalues) / n
    gap, modes = [], []
    for j, t in enumerate(times, start=1):
        slow = a * t <= 1
        shares = [np.sum(g[slow] ** 2) / np.sum(g ** 2) for g in
                  (p.limit_residual_modes[j] - p.residual_modes[j] for p in trained[width])]
        gap.append(float(np.mean(shares)))
        modes.append(float(slow.mean()))
    return np.array(gap), np.array(modes)


def findings(config: Config, table_config, result) -> tuple[list[Claim], Section, dict]:
    n, lr, times = table_config.problem.n_train, result.learning_rate, table_config.times
    c = cells(result.trained, times, lr, n)
    # The linear part's ladder: the table's widths (all their seeds) and the linear-only widths beyond.
    lin_widths = sorted(set(result.trained) | set(result.linear))
    lin = {w: np.array([p.linear for p in (result.linear.get(w) or result.trained[w])]) for w in lin_widths}
    lin_inf = {w: np.array([p.linear_infinity for p in (result.linear.get(w) or result.trained[w])])
               for w in lin_widths}
    fit_w = [w for w in lin_widths if w >= config.linear_fit_from]
    s_min = min(len(lin[w]) for w in fit_w)
    lin_fit = fit_power_law(fit_w, np.array([lin[w][:s_min, -1] for w in fit_w]))

    beta_j, beta_ci, used, per_seed = asymptotic_fit(c, config.small_epsilon)
    alpha, _ = collapse(c)
    alpha_int, gamma_int = collapse(c, epsilon=c.epsilon_integrated)
    gamma_j, gamma_ci, _ = _jackknife_over_seeds(lambda keep: collapse(c, keep)[1], c)
    n_x, line = crossover(c)
    kappa_j, kappa_ci, _ = _jackknife_over_seeds(lambda keep: crossover(c, keep)[1][0], c)
    # Mode by mode: the widest width whose networks were trained to the last time.
    widest = int(max(w for w, paths in result.trained.items() if len(paths[0].nonlinear) == len(times)))
    row = list(c.widths).index(widest)
    ratios, factor, t_mode = mode_rates(result.trained, widest, times, config.mode_window)
    # A mode is in the first-order regime while the kernel's change is small next to its eigenvalue:
    # lambda_k >= mode_margin ||Theta_N(t) - Theta_N(0)||_op at the time it is compared.
    change = dict(zip(times, seed_geometric_mean(c.kernel_change)[row]))
    margin = np.array([result.eigenvalues[k] / change[t_mode[k]] if np.isfinite(t_mode[k]) and t_mode[k] > 0
                       else np.nan for k in range(len(factor))])
    measurable = np.isfinite(factor) & np.all(np.isfinite(ratios), axis=0)
    resolved = np.flatnonzero(measurable & (margin >= config.mode_margin))
    mode_mean = ratios[:, resolved].mean(axis=1)     # per network: mean over the resolved modes
    mode_centre, mode_ci = t_interval(mode_mean)
    gap_share, mode_share = gap_by_mode(result.trained, widest, times, result.eigenvalues, lr, n)
    n_seeds = int(c.seeds.max())
    jk = f"delete-one jackknife over {n_seeds} seeds (each a replicate of the whole ladder)"
    claims = [
        Claim.of_fit(lin_fit, id="regression_linear_gap_rate", section=SECTION,
                     statement=f"Linear part (linearisation vs closed form) at t = {times[-1]}, widths "
                               f"{fit_w[0]}-{fit_w[-1]}", prediction="RMS gap ~ width^(-1/2)",
                     expected=config.expected_exponent, tolerance=config.exponent_tolerance),
        Claim(id="regression_gap_rate_asymptotic", section=SECTION,
              statement=f"Trained vs closed form, over the cells with epsilon <= {fmt(config.small_epsilon)} "
                        f"({len(used)} cells of widths {min(w for w, _ in used) if used else '-'}-"
                        f"{max(w for w, _ in used) if used else '-'}), one exponent shared by every t",
              prediction="RMS gap ~ width^(-1/2) where the kernel's change is first order",
              expected=config.expected_exponent, measured=beta_j if used else None,
              ci=beta_ci if used else None, tolerance=config.exponent_tolerance,
              reason="+-0.1: the exponent band of every width fit",
              interval_method=f"Student-t over {len(per_seed)} seeds' own shared slopes", n_seeds=n_seeds),
        Claim(id="regression_crossover_collapse", section=SECTION,
              statement="Nonlinear part at equal epsilon: its remaining dependence on width, gamma in "
                        "log gap = a + alpha log epsilon + gamma log width, over every cell",
              prediction="gamma = 0: epsilon alone decides the nonlinear part", expected=0.0,
              measured=gamma_j, ci=gamma_ci, tolerance=config.collapse_tolerance,
              reason="+-0.1: the exponent band", interval_method=jk, n_seeds=n_seeds),
        Claim(id="regression_crossover_width", section=SECTION,
              statement="The width where epsilon = 1 against t: exponent kappa of N_x ~ t^kappa",
              prediction="kappa = (1 + a) / b = 2", expected=config.crossover_exponent, measured=kappa_j,
              ci=kappa_ci, tolerance=config.crossover_tolerance,
              reason="a resolution: kappa moves by 0.5 when the kernel change's exponents move by 0.2",
              interval_method=jk, n_seeds=n_seeds),
        Claim(id="regression_mode_decay", section=SECTION,
              statement=f"Width {widest}: the training residual's decay along each resolved mode of the "
                        f"closed-form NTK ({len(resolved)} modes), log(r_k(t) / r_k(0)) over "
                        f"t log(1 - eta lambda_k / n), mean over the modes",
              prediction="1: each mode decays at its closed-form rate", expected=1.0, measured=mode_centre,
              ci=mode_ci, tolerance=config.mode_tolerance,
              reason=f"first order in the kernel's change, at most 1/{fmt(config.mode_margin)} of each "
                     f"claimed mode's eigenvalue",
              interval_method=f"Student-t over {len(mode_mean)} networks", n_seeds=len(mode_mean)),
    ]
    body = _body(config, c, lin, lin_inf, lin_widths, lin_fit, beta_j, used, alpha, gamma_j, n_x, line, kappa_j,
                 ratios, factor, t_mode, measurable, margin, widest, result, gap_share, mode_share,
                 (alpha_int, gamma_int))
    figures = [Figure("regime_epsilon", _figure(c, lin, lin_widths),
                      "Left: the nonlinear part against epsilon of the kernel's change in training, every "
                      "width and time (geometric mean over seeds; colour: width). Right: the linear part "
                      "against width at each time, to the widest width, without training.")]
    series = {"widths": c.widths, "times": c.times, "nonlinear": c.nonlinear, "linear": c.linear,
              "trained": c.trained, "epsilon": c.epsilon, "epsilon_init": c.epsilon0,
              "linear_ladder": {str(w): lin[w] for w in lin_widths},
              "linear_infinity": {str(w): lin_inf[w] for w in lin_widths},
              "crossover_width": n_x, "kappa": kappa_j, "collapse_alpha": alpha, "collapse_gamma": gamma_j,
              "asymptotic_exponent": beta_j, "epsilon_integrated": c.epsilon_integrated,
              "collapse_integrated": {"alpha": alpha_int, "gamma": gamma_int}, "asymptotic_cells": used,
              "mode_ratios": ratios,
              "mode_factor": factor, "mode_time": t_mode, "mode_width": widest,
              "gap_share_slow_modes": gap_share, "slow_mode_share": mode_share}
    return claims, Section(SECTION, body, figures), series


def _body(config, c, lin, lin_inf, lin_widths, lin_fit, beta, used, alpha, gamma, n_x, line, kappa, ratios, factor,
          t_mode, measurable, margin, widest, result, gap_share, mode_share, integrated) -> str:
    t = c.times
    alpha_int, gamma_int = integrated
    eps, nl, ln, tot = (seed_geometric_mean(a) for a in (c.epsilon, c.nonlinear, c.linear, c.trained))
    eps0 = seed_geometric_mean(c.epsilon0)
    pick = [j for j in range(len(t)) if t[j] in (20, 200, t[-1])] or list(range(len(t)))
    rows = []
    for i, w in enumerate(c.widths):
        rows.append([int(w), int(c.seeds[i])] + [f"{tot[i, j]:.2e} ({nl[i, j]:.1e} / {ln[i, j]:.1e}; eps {eps[i, j]:.2g})"
                                                 if np.isfinite(tot[i, j]) else "(not trained to this time)"
                                                 for j in pick])
    lin_rows = []
    for w in lin_widths:
        g = np.exp(np.mean(np.log(lin[w]), axis=0))
        lin_rows.append([w, len(lin[w])] + [f"{g[j]:.2e}" for j in pick] + [f"{np.exp(np.mean(np.log(lin_inf[w]))):.2e}"])
    slopes = {int(t[j]): local_slopes(lin_widths, [np.exp(np.mean(np.log(lin[w][:, j]))) for w in lin_widths])
              for j in pick}
    slope_text = "; ".join(f"t = {tt}: " + ", ".join(f"{s:+.2f}" for _, _, s in v) for tt, v in slopes.items())
    cross = ", ".join(f"t = {int(tt)}: {x:.3g}" for tt, x in zip(t, n_x) if np.isfinite(x))
    mode_rows = [[k + 1, f"{result.eigenvalues[k]:.3g}", int(t_mode[k]), f"{factor[k]:.3f}", f"{margin[k]:.3g}",
                  "yes" if margin[k] >= config.mode_margin else "no", mean_sd(ratios[:, k], ".3f", ".2g")]
                 for k in np.flatnonzero(measurable & (margin >= 1))]
    below = np.flatnonzero(measurable & (margin < 1))
    below_text = (f"{len(below)} slower modes, whose eigenvalue is below the kernel's change, are not shown: their "
                  f"ratios run from {np.nanmin(np.nanmean(ratios[:, below], axis=0)):.2f} to "
                  f"{np.nanmax(np.nanmean(ratios[:, below], axis=0)):.2f} (the series keeps them). "
                  if len(below) else "")
    # Per time, the nonlinear part against epsilon across widths: first order says slope 1.
    per_t = []
    for j in range(len(t)):
        ok = np.isfinite(eps[:, j]) & np.isfinite(nl[:, j]) & (c.widths >= config.linear_fit_from)
        if ok.sum() >= 2:
            per_t.append(f"t = {int(t[j])}: {np.polyfit(np.log(eps[ok, j]), np.log(nl[ok, j]), 1)[0]:.2f}")
    ratio_t = ", ".join(f"{x:.3g}" for x in (nl[-1] / eps[-1])[np.isfinite(eps[-1])])
    eps0_range = f"{np.nanmin(eps0):.2g}-{np.nanmax(eps0):.2g}"
    reached = np.isfinite(eps[:, -1])
    wide_last = np.flatnonzero(np.isfinite(eps[-1]))
    wide_text = (f" (trained to t = {int(t[wide_last[-1]])})" if len(wide_last) and wide_last[-1] < len(t) - 1 else "")
    last = int(c.widths[reached][-1])
    late = (f"above 1 at every width trained to that time (to {last})" if np.all(eps[reached, -1] > 1)
            else "below 1 from width " + str(int(c.widths[reached][np.argmax(eps[reached, -1] <= 1)])))
    inside_band = abs(lin_fit.ci[0] - config.expected_exponent) <= config.exponent_tolerance and \
        abs(lin_fit.ci[1] - config.expected_exponent) <= config.exponent_tolerance
    lin_heading = (f" falls as width^(-1/2) from width {config.linear_fit_from}." if inside_band
                   else ", against width.")
    return f"""
The table's networks, and {int(c.seeds[-1])} at width {int(c.widths[-1])}{wide_text}, stopped at t = {", ".join(map(str, t))}:
RMS gap of test outputs, trained vs closed form (nonlinear part / linear part; epsilon of the kernel's
change in training, eta t ||Theta_N(t) - Theta_N(0)||_op / n), geometric means over seeds:

{markdown_table(["width", "seeds"] + [f"t = {int(t[j])}" for j in pick], rows)}

**The linear part{lin_heading}** Computed from each network's NTK at init in float64, without training,
to width {lin_widths[-1]}:

{markdown_table(["width", "seeds"] + [f"t = {int(t[j])}" for j in pick] + ["t -> infinity"], lin_rows)}

Local slopes of the linear part against width: {slope_text}. Fitted from width {config.linear_fit_from}:
{lin_fit.exponent:+.3f} [{lin_fit.ci[0]:+.3f}, {lin_fit.ci[1]:+.3f}] at t = {int(t[-1])}. The init kernel's
epsilon is {eps0_range} over the trained ladder, far above 1 at late times, and the linear part is
nonetheless at its asymptotic rate there. Its epsilon is a first-order bound (a perturbation Delta moves
each step's outputs by at most eta ||Delta||_op / n times the residual), and on this problem the bound
is far from tight: that epsilon does not decide the linear part's regime.

**The nonlinear part is what is slow.** Its epsilon, built on the kernel's measured change in training,
orders the cells: over every cell, log(nonlinear) = a + {alpha:.2f} log(epsilon) + ({gamma:+.2f}) log(width)
(the collapse claim asks whether the width term vanishes). At each time separately, across the widths
from {config.linear_fit_from}, the nonlinear part is first order in epsilon, slope about 1 on log axes:
{"; ".join(per_t)}. Across times it is not: at width {int(c.widths[-1])}, nonlinear part / epsilon is
{ratio_t} at t = {", ".join(str(int(x)) for x in t[np.isfinite(eps[-1])])}: epsilon orders the cells at each time, not across
times. The kernel's change acts on the residual, which shrinks as training proceeds, while epsilon is
built on the initial one; integrating the change against the residual instead, (eta / n) times the
integral over s <= t of ||Theta_N(s) - Theta_N(0)||_op ||r(s)|| / ||r(0)|| (by the trapezoid over the
stops), gives log(nonlinear) = a + {alpha_int:.2f} log(epsilon) + ({gamma_int:+.2f}) log(width): the width term
stays, so the shrinking residual does not account for it, at the resolution of these stops. Where epsilon <= {fmt(config.small_epsilon)}
({len(used)} cells: {", ".join(f"{w} at t = {tt}" for w, tt in used)}), the total gap falls as
width^({beta:+.2f}) with one exponent shared by every t. The width at which epsilon = 1 grows with t:
{cross or "no time crosses epsilon = 1 inside the ladder"}; fitted, N_x ~ t^({kappa:.2f}), against the
derived t^2. At the table's t = {int(t[-1])}, epsilon is {late}; the fitted line puts epsilon = 1 at
t = {int(t[-1])} near width {np.exp(np.polyval(line, np.log(t[-1]))):.3g}. That is why the table's claim at that time
does not see width^(-1/2): its ladder ends before the regime where the kernel's change is first order.

**Mode by mode**, width {widest}: the training residual's component along each eigenvector of the
closed-form training NTK, over its start, against the closed form's (1 - eta lambda_k / n)^t from the
same start, at the latest recorded time where the closed form has decayed into
[{config.mode_window[0]}, {config.mode_window[1]}] (modes ascending by eigenvalue; the rest had decayed
below it by t = {int(t[0])}, or not yet measurably by t = {int(t[-1])}):

{markdown_table(["mode (ascending)", "lambda_k", "t", "closed-form factor",
                 "lambda_k / kernel change", "first order", "measured log-decay / closed form's (mean +- sd)"],
                mode_rows)}

{below_text}Only the modes whose eigenvalue is far above the kernel's change in training decay at the
closed form's rate; the others leave it, in both directions.

Where the gap lives: the share of the squared gap of training outputs (network against the closed form
from its f0) in the modes with eta lambda_k t / n <= 1, which have not yet decayed, beside those modes'
share of the {len(result.eigenvalues)} modes, width {widest}, mean over networks:

{markdown_table(["t", "modes with eta lambda_k t / n <= 1", "their share of the squared gap"],
                [[int(tt), f"{ms:.0%}", f"{gs:.0%}"] for tt, gs, ms in zip(t, gap_share, mode_share)])}
"""


def _figure(c: Cells, lin: dict, lin_widths: list):
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    eps, nl = seed_geometric_mean(c.epsilon), seed_geometric_mean(c.nonlinear)
    ln = np.array([np.exp(np.mean(np.log(lin[w]), axis=0)) for w in lin_widths])
    lw = np.asarray(lin_widths, np.float64)
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(c.widths)))
    for i, w in enumerate(c.widths):
        a.loglog(eps[i], nl[i], "o-", color=colours[i], ms=4, lw=1, label=f"width {int(w)}")
    a.axvline(1.0, color="k", lw=0.8, ls=":")
    a.set(xlabel="epsilon = eta t ||Theta_N(t) - Theta_N(0)||_op / n", ylabel="RMS nonlinear part (test)",
          title="kernel's change in training")
    a.legend(fontsize=7)
    for j, t in enumerate(c.times):
        b.loglog(lw, ln[:, j], "o-", ms=3, lw=1, color=plt.cm.plasma(j / len(c.times)), label=f"t = {int(t)}")
    b.loglog(lw, ln[-1, -1] * (lw / lw[-1]) ** -0.5, "k--", lw=0.8, label="width^(-1/2)")
    b.set(xlabel="width", ylabel="RMS linear part (test)", title="init kernel's deviation, carried to t")
    b.legend(fontsize=7)
    for ax in (a, b):
        ax.grid(True, which="both", alpha=0.25)
    fig.tight_layout()
    return fig
