"""Test error: NTK-parameterized networks, their closed-form limit, and muP.

The ladder study's networks, on held-out inputs of the single-index task.
The reference is the infinite-width NTK network: discrete gradient descent
with the closed-form NTK from zero outputs and the NTK networks' step,
stopped at the same training loss (step ``t_star``); its test mse is
``e_kernel``. The NTK networks' test outputs approach it as ``N^(-1/2)``,
each compared at its own stopping step, so their test error tends to
``e_kernel``: frozen features. muP networks move their features by ``O(1)``
and beat it.

Random streams: those of ``replication.fixed_loss.ladders``.
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np

from replication.experiments.lazy.ladder import trained
from replication.fixed_loss import Task, distance_to_limit
from replication.report import Claim, Figure, Findings, Section, fmt, markdown_table, mean_sd
from replication.stats import EXPONENT_BAND, fit_finite, t_interval
from replication.sweep import Streams

SECTION = "Frozen features cost test error: NTK networks, their kernel, and muP"


@dataclass(frozen=True)
class Config:
    task: Task = Task()
    widths: tuple[int, ...] = (16, 64, 256, 1024, 4096, 8192)
    seeds: int = 8                # independent networks per width (the ladder study's networks)
    exponent_tolerance: float = EXPONENT_BAND
    # "Not better than the kernel": the NTK networks' test error over the kernel's at the widest
    # width is at least 1 - this. A resolution: in the limit the ratio is 1, approached from
    # either side by O(width^-1/2) fluctuations; learned features (muP) gain far more than 5%.
    not_better_tolerance: float = 0.05


def measure(config: Config, streams: Streams) -> dict:
    """The networks' test errors and the closed form's.

    ``ntk_test_mse``, ``mup_test_mse``, ``ntk_gap`` (RMS distance of each NTK
    network's test outputs from the limit's at the network's stopping step),
    ``mup_steps``, ``mup_diverged``, ``mup_reached``: ``(n_widths, seeds)``.
    ``kernel_test_mse``: the limit's at ``t_star``; ``regression_test_mse``:
    at ``t = infinity``; ``target_variance``; ``settings`` of the ladders.
    """
    lad = trained(config.task, config.widths, config.seeds, streams)
    ntk, mup = lad.results["ntk"], lad.results["mup"]
    y = np.asarray(lad.data[3], np.float64)[:, 0]
    t_star = lad.settings["t_star"]
    return {"kernel_test_mse": float(np.mean((lad.limit_test_outputs(t_star) - y) ** 2)),
            "regression_test_mse": float(np.mean((lad.limit_test_outputs(None) - y) ** 2)),
            "target_variance": float(np.var(y)), "settings": lad.settings,
            "ntk_test_mse": ntk["test_mse"], "mup_test_mse": mup["test_mse"],
            "ntk_gap": distance_to_limit(ntk, lad.limit, lad.k_test_train),
            "mup_steps": mup["steps"], "mup_diverged": mup["diverged"], "mup_reached": mup["reached"]}


def ratio_to_kernel(test_mse, kernel_test_mse: float):
    """Mean of ``test_mse / kernel_test_mse`` over the finite seeds, its t-interval, and its standard error."""
    r = np.asarray(test_mse, np.float64) / kernel_test_mse
    r = r[np.isfinite(r)]
    mean, ci = t_interval(r)
    se = np.std(r, ddof=1) / np.sqrt(r.size) if r.size >= 2 else np.nan
    return mean, ci, se


def findings(config: Config, m: dict) -> Findings:
    """Claims: the gap to the limit falls as ``width^(-1/2)``; at the widest width the NTK networks are
    not better than the kernel (ratio at least 1 - band), and muP is (ratio below 1)."""
    widths = np.asarray(config.widths)
    gap_fit = fit_finite(widths, m["ntk_gap"])
    ntk_ratio, ntk_ci, ntk_se = ratio_to_kernel(m["ntk_test_mse"][-1], m["kernel_test_mse"])
    mup_ratio, mup_ci, _ = ratio_to_kernel(m["mup_test_mse"][-1], m["kernel_test_mse"])
    z = None if ntk_ratio is None or not np.isfinite(ntk_se) or ntk_se == 0 else float((ntk_ratio - 1) / ntk_se)
    n_seeds = int(np.sum(np.isfinite(np.asarray(m["ntk_test_mse"][-1], np.float64))))
    claims = [
        Claim.of_fit(gap_fit, id="lazy_quality_ntk_gap_rate", section=SECTION,
                     statement="NTK param: test outputs against closed-form NTK gradient descent at the same step",
                     prediction="RMS gap ~ width^(-1/2)", expected=-0.5, tolerance=config.exponent_tolerance),
        Claim(id="lazy_quality_ntk_not_better", section=SECTION,
              statement=f"NTK param at width {widths[-1]}: test error / closed-form NTK's",
              prediction="not better than the kernel (ratio -> 1 from either side)", expected=1.0,
              measured=ntk_ratio, ci=ntk_ci, tolerance=config.not_better_tolerance, relation=">=",
              reason="5%: a resolution; fluctuations of order width^(-1/2) move the ratio either way",
              interval_method=f"Student-t over {n_seeds} seeds", n_seeds=n_seeds),
        Claim(id="lazy_quality_mup_better", section=SECTION,
              statement=f"muP at width {widths[-1]}: test error / closed-form NTK's",
              prediction="below 1: learned features beat the kernel", expected=1.0,
              measured=mup_ratio, ci=mup_ci, tolerance=0.0, relation="<=",
              reason="a strict inequality: any gain over the kernel is feature learning's",
              interval_method=f"Student-t over {n_seeds} seeds", n_seeds=n_seeds),
    ]
    verdict = f"""
At width {widths[-1]} the NTK networks' test error is {fmt(ntk_ratio)} of the kernel's{_interval(ntk_ci)}
(z = {fmt(z)}), and muP's {fmt(mup_ratio)}{_interval(mup_ci)}. The NTK networks'
distance from the limit falls as width^({fmt(None if gap_fit is None else gap_fit.exponent)}): in the limit
they are the kernel predictor, whose features are those of initialisation.
"""
    figure = Figure("quality", _figure(widths, m, gap_fit),
                    "Left: test error against width, NTK parameterization and muP, trained to the same "
                    "training loss (line: mean, band: range over seeds), against the closed-form NTK network "
                    "stopped at that loss. Right: the NTK networks' distance from it.")
    series = {"quality": {"width": list(widths), "kernel_test_mse": m["kernel_test_mse"],
                          "regression_test_mse": m["regression_test_mse"], "t_star": m["settings"]["t_star"],
                          "ntk_test_mse": m["ntk_test_mse"], "mup_test_mse": m["mup_test_mse"],
                          "ntk_gap": m["ntk_gap"], "ntk_gap_fit": gap_fit, "mup_steps": m["mup_steps"],
                          "mup_diverged": m["mup_diverged"], "mup_reached": m["mup_reached"]}}
    return Findings(claims, [Section(SECTION, _prose(config, m) + verdict, [figure])], series)


def _interval(ci) -> str:
    return "" if ci is None else f" [{fmt(ci[0])}, {fmt(ci[1])}]"


def _table(config: Config, m: dict) -> str:
    def ms(a):
        return mean_sd(a, ".3g", ".2g")

    e_kernel = m["kernel_test_mse"]
    ntk, mup = m["ntk_test_mse"], m["mup_test_mse"]
    rows = [[w, ms(ntk[i]), ms(ntk[i] / e_kernel), ms(m["ntk_gap"][i]), ms(mup[i]), ms(mup[i] / e_kernel),
             ms(m["mup_steps"][i]), int(np.sum(m["mup_diverged"][i])),
             int(np.sum(~m["mup_reached"][i] & ~m["mup_diverged"][i]))]
            for i, w in enumerate(np.asarray(config.widths))]
    return markdown_table(["width", "NTK: test mse", "NTK / kernel", "NTK: gap to limit", "muP: test mse",
                           "muP / kernel", "muP: steps", "muP diverged", "muP not reached"], rows)


def _figure(widths: np.ndarray, m: dict, gap_fit):
    """Left: test mse of both parameterizations against the closed form's; right: the NTK networks' gap."""
    fig, axes = plt.subplots(1, 2, figsize=(10.4, 4.2))
    ax = axes[0]
    for key, label, color in (("ntk_test_mse", "NTK parameterization", "C0"), ("mup_test_mse", "muP", "C1")):
        e = m[key]
        ax.plot(widths, np.nanmean(e, axis=1), "o-", color=color, label=label)
        ax.fill_between(widths, np.nanmin(e, axis=1), np.nanmax(e, axis=1), color=color, alpha=0.15, lw=0)
    ax.axhline(m["kernel_test_mse"], color="k", ls="--", lw=1.2, label="closed-form NTK, same loss")
    ax.axhline(m["regression_test_mse"], color="k", ls=":", lw=1, label="closed-form NTK regression (t = inf)")
    ax.set(xlabel="width", ylabel="test mse", title="Test error, trained to the same loss")
    ax = axes[1]
    centre = np.exp(np.nanmean(np.log(m["ntk_gap"]), axis=1))
    ax.plot(widths, centre, "o", color="C0", label="NTK param vs its limit" +
            ("" if gap_fit is None else f" (slope {gap_fit.exponent:+.2f})"))
    if gap_fit is not None:
        ax.plot(widths, gap_fit.prefactor * widths.astype(float) ** gap_fit.exponent, "-", color="C0", lw=1)
    ax.plot(widths, 1.5 * centre[0] * (widths / widths[0]) ** -0.5, "k--", lw=1.2, label="width^(-1/2)")
    ax.set(yscale="log", xlabel="width", ylabel="RMS gap of test outputs",
           title="Distance to closed-form NTK gradient descent")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.grid(alpha=0.25, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _prose(config: Config, m: dict) -> str:
    task, settings = config.task, m["settings"]
    return f"""
**The task.** Inputs uniform on the sphere of radius sqrt(d) in R^{task.input_dim}, {task.n_train} for
training and {task.n_test} for testing (independent keys), and a target that depends on one direction u:
y = g(<u, x>), g(z) = (relu(z) - 1/sqrt(2 pi)) / sqrt(1/2 - 1/(2 pi)) (one ReLU unit, mean 0 and variance
1). With n = {task.n_train} = {task.n_train // task.input_dim} d points a rotation-invariant kernel can
fit the target's linear part but little of its nonlinear part, which lives in the direction u: a network
that turns its features towards u can.

**Learning rates.** NTK parameterization: {fmt(task.ntk_lr_fraction)} of the stability limit
2 n / lambda_max of the closed-form training NTK, eta = {fmt(settings['ntk_lr'])} at every width. muP
(Tensor Programs V, Table 8, base width {task.mup_base_width}, where it is SP): {fmt(task.mup_lr_fraction)}
of the stability limit of one network's empirical NTK at the base width, eta = {fmt(settings['mup_lr'])}, with
muP's per-layer factors at the other widths; muP's learning rate transfers across widths (the `mup`
report's transfer section). muP networks are centred like the NTK ones, stop at the same training loss
({fmt(settings['target'])}), and may take up to {task.mup_max_steps} steps.

**The reference.** The infinite-width NTK network is gradient descent with the closed-form NTK from zero
outputs, step eta (`replication.dynamics.gradient_descent_mse(..., discrete=True)`: the discrete-step form
of `nt.predict.gradient_descent_mse`). Stopped at the same training loss (step {settings['t_star']}) its test
mse is {fmt(m['kernel_test_mse'])}; kernel regression (t = infinity) has {fmt(m['regression_test_mse'])}; the
target's variance is {fmt(m['target_variance'])}. Each NTK network is compared with the limit at its own
stopping step.

Test mse (mean +- sd over {config.seeds} seeds) and its ratio to the closed form's {fmt(m['kernel_test_mse'])};
the RMS distance of the NTK networks' test outputs from the limit's; muP's steps, diverged runs and runs
that stopped at the cap before the target:

{_table(config, m)}
"""
