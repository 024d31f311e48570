"""A well-conditioned control: the same network and gradient descent, data whose training NTK is well conditioned.

The worked example's training NTK has a condition number in the tens of
thousands, and the regime section measures what that does: at the
table's time, the kernel's change in training is not first order at any
width of the ladder. Here the network, its parameterization, the step rule
and the comparison are the worked example's; only the data change: 16
training and 100 test inputs uniform on the sphere of radius sqrt(d) in
d = 16 dimensions (nearly orthogonal, so the closed-form training NTK is
well conditioned), with the worked example's target on the first two
coordinates, y = sin(x_1) + cos(x_2). The networks are compared with the
closed form at a time where every mode of the limit has decayed,
``eta lambda_min t / n >= 5``: Jacot et al.'s and Lee et al.'s width^(-1/2)
should be visible within the quick preset's widths.

Random streams: ``control_inputs`` (training and test inputs, two keys
split from it), ``control`` (the networks).
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np

from replication.data import sin_cos_target, sphere_inputs
from replication.experiments.regression.problem import Limit, Problem, follow
from replication.report import Claim, Figure, Findings, Section, fit_text, fmt, loglog_figure, markdown_table, mean_sd
from replication.stats import EXPONENT_BAND, fit_finite, local_slopes
from replication.sweep import Streams, progress

SECTION = "A well-conditioned control"


@dataclass(frozen=True)
class Sphere(Problem):
    """The worked example's network and step rule on inputs uniform on the sphere of radius sqrt(dim)."""

    n_train: int = 16
    dim: int = 16
    steps: int = 200

    def data(self, streams: Streams):
        k_train, k_test = jax.random.split(streams.key("control_inputs"))
        x_train, x_test = sphere_inputs(k_train, self.n_train, self.dim), sphere_inputs(k_test, self.n_test, self.dim)
        return x_train, sin_cos_target(x_train), x_test, sin_cos_target(x_test)


@dataclass(frozen=True)
class Config:
    problem: Sphere = Sphere()
    widths: tuple[int, ...] = (256, 1024, 4096, 16384, 65536)
    seeds: int = 8
    times: tuple[int, ...] = (10, 50, 200)     # the last is where the claim compares
    # The time compared must have every mode of the limit decayed: eta lambda_min t / n at least this.
    min_decay: float = 5.0
    expected_exponent: float = -0.5
    exponent_tolerance: float = EXPONENT_BAND


@dataclass
class Result:
    gaps: dict[str, np.ndarray]      # trained, nonlinear, linear, epsilon -> (n_widths, seeds, n_times)
    eigenvalues: np.ndarray
    learning_rate: float


def measure(config: Config, streams: Streams) -> Result:
    limit = Limit(config.problem, streams)
    t = config.times[-1]
    decay = limit.learning_rate * limit.eigenvalues[0] * t / limit.n
    if decay < config.min_decay:   # refused before any network is trained
        raise ValueError(f"control: eta lambda_min t / n = {decay:.2g} at t = {t}, below {config.min_decay}; "
                         f"train longer")
    shape = (len(config.widths), config.seeds, len(config.times))
    gaps = {k: np.empty(shape) for k in ("trained", "nonlinear", "linear", "epsilon")}
    scale = limit.learning_rate * np.asarray(config.times, np.float64) / limit.n
    with progress(shape[0] * shape[1], "control") as bar:
        for i, w in enumerate(config.widths):
            for s in range(config.seeds):
                path = follow(limit, w, streams.network("control", w, s), config.times)
                gaps["trained"][i, s], gaps["nonlinear"][i, s], gaps["linear"][i, s] = (
                    path.trained, path.nonlinear, path.linear)
                gaps["epsilon"][i, s] = path.kernel_change * scale
                bar.update()
    return Result(gaps, limit.eigenvalues, limit.learning_rate)


def findings(config: Config, result: Result) -> Findings:
    p, lam, t = config.problem, result.eigenvalues, config.times[-1]
    decay = result.learning_rate * lam[0] * t / p.n_train
    g = result.gaps
    fits = {k: fit_finite(config.widths, g[k][:, :, -1]) for k in ("trained", "nonlinear", "linear")}
    claim = Claim.of_fit(fits["trained"], id="control_gap_rate", section=SECTION,
                         statement=f"Well-conditioned data (condition number {lam[-1] / lam[0]:.3g}), t = {t} "
                                   f"(eta lambda_min t / n = {decay:.3g}): trained network's test outputs -> "
                                   f"closed-form NTK dynamics from its own init",
                         prediction="RMS gap ~ width^(-1/2)", expected=config.expected_exponent,
                         tolerance=config.exponent_tolerance)
    eps = np.exp(np.mean(np.log(g["epsilon"]), axis=1))
    rows = [[w] + [mean_sd(g[k][i, :, -1], ".2e", ".1e") for k in ("trained", "nonlinear", "linear")]
            + [", ".join(f"{e:.2g}" for e in eps[i])] for i, w in enumerate(config.widths)]
    slopes = {k: ", ".join(f"{s:+.2f}" for _, _, s in local_slopes(config.widths, g[k][:, :, -1]))
              for k in ("trained", "nonlinear", "linear")}
    body = f"""
The worked example's network (one hidden ReLU layer, NTK parameterization, W_std = {fmt(p.W_std)}, b_std =
{fmt(p.b_std)}), its step ({fmt(p.step_fraction)} of the stability limit) and its comparison, on {p.n_train}
training and {p.n_test} test inputs uniform on the sphere of radius sqrt({p.dim}) in {p.dim} dimensions,
y = sin(x_1) + cos(x_2). The closed-form training NTK's eigenvalues run from {lam[0]:.3g} to {lam[-1]:.3g}
(condition number {lam[-1] / lam[0]:.3g}, against the worked example's tens of thousands); at t = {t},
eta lambda_min t / n = {decay:.3g}: every mode of the limit has decayed. {config.seeds} networks per width.
RMS gaps of test outputs at t = {t}, mean +- sd over networks, and the epsilon of the kernel's change in
training (eta t ||Theta_N(t) - Theta_N(0)||_op / n, geometric mean over networks) at t =
{", ".join(map(str, config.times))}:

{markdown_table(["width", "trained vs closed form", "trained vs its linearisation", "linearisation vs closed form",
                 "epsilon"], rows)}

Fitted exponents (95% intervals over seeds): trained vs closed form {fit_text(fits['trained'])} (local slopes
{slopes['trained']}); nonlinear part {fit_text(fits['nonlinear'])} (local slopes {slopes['nonlinear']}); linear
part {fit_text(fits['linear'])} (local slopes {slopes['linear']}).
"""
    figure = Figure("control", loglog_figure(
        {f"well-conditioned control, t = {t}": {
            "trained network vs closed form from its init": (config.widths, g["trained"][:, :, -1], fits["trained"]),
            "trained network vs its linearisation": (config.widths, g["nonlinear"][:, :, -1], fits["nonlinear"]),
            "linearisation vs closed form from its init": (config.widths, g["linear"][:, :, -1], fits["linear"])}},
        xlabel="width", ylabel="RMS difference of test outputs", reference_exponent=-0.5,
        reference_label="theory: width^(-1/2)"),
        "The control's gaps against width at the time compared. Markers: geometric mean over networks; band: "
        "range; thin lines: fits; dashed: width^(-1/2).")
    series = {"control": {"widths": list(config.widths), "times": list(config.times), **g,
                          "eigenvalues": lam, "learning_rate": result.learning_rate,
                          "fit_trained": fits["trained"], "fit_nonlinear": fits["nonlinear"],
                          "fit_linear": fits["linear"]}}
    return Findings([claim], [Section(SECTION, body, [figure])], series)
