"""Trained networks, empirical-NTK and closed-form regression against width, at a finite time t.

At each width, ``seeds`` networks are trained for ``t = steps`` steps of
gradient descent with step ``eta``. Each is compared with the closed-form
NTK dynamics at the same ``t`` started from its own initial outputs ``f0``,

    f_test(t) = f0_test + Theta_test,train Theta^-1 (I - (I - eta Theta / n)^t) (y - f0_train),

(the same discrete steps, so the step size adds nothing), and kernel
regression with its empirical NTK at init (``t -> infinity``, ``f0 = 0``)
with the closed-form NTK's. Both gaps are predicted to fall as
``width^(-1/2)`` (Jacot et al. 2018; Lee et al. 2019). The first is split
by the network's linearisation around its init: network against
linearisation (the kernel's change in training), linearisation against the
closed form (the init kernel's fluctuation, carried by the dynamics). The
linearisation trained by gradient descent is exactly the discrete recursion
with the network's NTK at init, computed in float64 by its formula
(``replication.kernels.one_hidden_layer_ntk``). A paired check at one
width trains the same networks with a smaller step for the same ``eta t``.

Every network is stopped at the ``times`` on its way to ``steps``, and the
ladder goes on beyond the table (wider networks trained; wider still, the
linear part alone): the regime section (``regime``) reads them.

Random streams: ``networks`` (the table's networks and the wider ones; the
smaller-step check retrains the first of each).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import optax

from replication.dynamics import gradient_descent_mse
from replication.experiments.regression import regime
from replication.experiments.regression.problem import Limit, Path, Problem, follow, one_network, rms, test_mse
from replication.report import (Claim, Figure, Findings, Section, fit_text, fmt, loglog_figure, markdown_table,
                                mean_sd, slopes_text)
from replication.stats import EXPONENT_BAND, fit_finite, local_slopes
from replication.sweep import Streams, progress

SECTION = "Trained networks, empirical-NTK and closed-form regression against width"
# What is measured for every network, each (n_widths, seeds): test MSEs, RMS gaps of test outputs,
# and the final / initial training loss.
MEASURED = ("net", "own_limit", "emp_reg", "gap_trained", "gap_emp", "gap_nonlinear", "gap_linear",
            "loss_ratio")


@dataclass(frozen=True)
class Config:
    problem: Problem = Problem()
    widths: tuple[int, ...] = (16, 64, 256, 1000, 4096, 16384)  # 3 decades; 1000 is the write-up's
    seeds: int = 8               # independent networks per width: the replicates behind each interval
    # The recorded training times (steps), for the regime section (replication.experiments.regression
    # .regime); they end at the problem's steps, where the table compares. Multiples of 10.
    times: tuple[int, ...] = (10, 20, 50, 100, 200, 500, 1000, 2000)
    # The ladder beyond the table, for the regime section: wider networks trained with fewer seeds,
    # and wider still, the linear part alone (no training: the empirical NTK in float64).
    wide_widths: tuple[int, ...] = (65536,)
    wide_seeds: int = 2
    # ... stopped at these times (a prefix of ``times``): the crossover widths and the first-order
    # cells it adds are at t <= 500 (None: all of ``times``).
    wide_times: tuple[int, ...] | None = (10, 20, 50, 100, 200, 500)
    linear_widths: tuple[int, ...] = (65536, 262144)
    linear_seeds: int = 8
    # One width again (small_step_width), with the step divided by this for as many times the steps (the same eta t).
    small_step_factor: int = 4
    small_step_width: int = 4096     # one of ``widths``
    # A paired check (the same network, two step sizes), so one seed shows whether the step
    # matters: the pair's difference is what is read, not the spread over seeds.
    small_step_seeds: int = 1
    expected_exponent: float = -0.5
    exponent_tolerance: float = EXPONENT_BAND
    regime: regime.Config = regime.Config()

    def __post_init__(self):
        if self.times[-1] != self.problem.steps:
            raise ValueError(f"times must end at the problem's steps ({self.problem.steps}); got {self.times}")
        if self.wide_times is not None and tuple(self.times[:len(self.wide_times)]) != tuple(self.wide_times):
            raise ValueError(f"wide_times must be a prefix of times; got {self.wide_times} and {self.times}")


@dataclass
class Result:
    widths: tuple[int, ...]
    measured: dict[str, np.ndarray]    # MEASURED -> (n_widths, seeds)
    diverged: int                      # runs whose loss became NaN or infinite
    closed_regression_mse: float       # test MSE of kernel regression with the closed-form NTK
    mean_predictor_gap: float          # RMS, the closed-form mean predictor at t = steps against t -> infinity
    eigenvalues: np.ndarray            # of the closed-form training NTK, ascending
    learning_rate: float
    smaller_step: dict                 # width, factor, seeds, gap (the table's step), gap_small
    data_keys: tuple[int, int]         # the seeds of the training and test inputs' keys
    trained: dict[int, list[Path]]     # width -> its trained networks along training (table and wide widths)
    linear: dict[int, list[Path]]      # width -> networks measured at init only (the linear part)


def measure(config: Config, streams: Streams) -> Result:
    p = config.problem
    limit = Limit(p, streams)
    # Kernel regression (t -> infinity) by a direct solve, as for the empirical kernels below.
    closed_regression = limit.predict(None, np.zeros((len(limit.x), 1)))
    m = {k: np.empty((len(config.widths), config.seeds)) for k in MEASURED}
    trained = {}
    ladder = ([(w, config.seeds) for w in config.widths]
              + [(w, config.wide_seeds) for w in config.wide_widths if w not in config.widths])
    with progress(sum(s for _, s in ladder) + len(config.linear_widths) * config.linear_seeds,
                  "regression") as bar:
        for w, seeds in ladder:
            trained[w] = []
            times = config.wide_times if w not in config.widths and config.wide_times else config.times
            for s in range(seeds):
                path = follow(limit, w, streams.network("networks", w, s), times)
                trained[w].append(_light(path))
                bar.update()
                if w not in config.widths:
                    continue
                i = config.widths.index(w)
                # Empirical-NTK regression: the mean predictor (f0 = 0) with the network's NTK at init.
                emp = limit.predict(None, np.zeros_like(path.f0), path.kernel0)
                own = limit.predict(p.steps, path.f0)
                m["net"][i, s], m["own_limit"][i, s] = test_mse(path.f_test, limit.y_test), test_mse(own, limit.y_test)
                m["emp_reg"][i, s], m["gap_emp"][i, s] = test_mse(emp, limit.y_test), rms(emp, closed_regression)
                m["gap_trained"][i, s] = path.trained[-1]
                m["gap_nonlinear"][i, s], m["gap_linear"][i, s] = path.nonlinear[-1], path.linear[-1]
                m["loss_ratio"][i, s] = path.loss_ratio
        linear = {}
        for w in config.linear_widths:
            linear[w] = []
            for s in range(config.linear_seeds):
                linear[w].append(_light(follow(limit, w, streams.network("networks", w, s), config.times,
                                               trained=False)))
                bar.update()
    small = {"width": config.small_step_width, "factor": config.small_step_factor,
             "seeds": min(config.small_step_seeds, config.seeds),
             "gap": float(np.mean(m["gap_trained"][config.widths.index(config.small_step_width),
                                                   :config.small_step_seeds])),
             "gap_small": smaller_step_gap(config, streams, limit)}
    return Result(
        widths=config.widths, measured=m, diverged=sum(x.diverged for v in trained.values() for x in v),
        closed_regression_mse=test_mse(closed_regression, limit.y_test),
        mean_predictor_gap=rms(limit.predict(p.steps, np.zeros((len(limit.x), 1))), closed_regression),
        eigenvalues=limit.eigenvalues, learning_rate=limit.learning_rate, smaller_step=small,
        data_keys=(streams.offset("train_inputs"), streams.offset("test_inputs")), trained=trained, linear=linear)


def _light(path: Path) -> Path:
    """The path without its per-network arrays (initial outputs, kernel), which the findings do not read."""
    return dataclasses.replace(path, f0=None, kernel0=None, f_test=None)


def smaller_step_gap(config: Config, streams: Streams, limit: Limit) -> float:
    """The table's gap at ``small_step_width``, the same networks, step / ``small_step_factor`` at the same eta t."""
    p, f, width = config.problem, config.small_step_factor, config.small_step_width
    slow = gradient_descent_mse(limit.kernel[:limit.n, :limit.n], limit.y_train, limit.learning_rate / f,
                                discrete=True)
    gaps = []
    for s in range(min(config.small_step_seeds, config.seeds)):
        r = one_network(p.network(width), streams.network("networks", width, s), limit.x_train, limit.y_train,
                        limit.x_test, optax.sgd(limit.learning_rate / f), p.steps * f, kernel=False)
        f0 = np.concatenate([r.f0_train, r.f0_test])
        gaps.append(rms(r.f_test, limit.predict(p.steps * f, f0, dynamics=slow)))
    return float(np.mean(gaps))


def findings(config: Config, result: Result) -> Findings:
    m = result.measured
    # A diverged run leaves NaN outputs: it is counted and shown, and a width
    # with one is left out of that fit.
    fits = {k: fit_finite(config.widths, m[k]) for k in ("gap_trained", "gap_emp", "gap_nonlinear", "gap_linear")}
    claims = [
        Claim.of_fit(fits["gap_trained"], id="regression_trained_vs_closed_form", section=SECTION,
                     statement="Trained network's test outputs -> closed-form NTK dynamics from its own init",
                     prediction="RMS gap ~ width^(-1/2)", expected=config.expected_exponent,
                     tolerance=config.exponent_tolerance),
        Claim.of_fit(fits["gap_emp"], id="regression_empirical_vs_closed_form", section=SECTION,
                     statement="Empirical-NTK kernel regression -> closed-form NTK regression (test outputs)",
                     prediction="RMS gap ~ width^(-1/2)", expected=config.expected_exponent,
                     tolerance=config.exponent_tolerance),
    ]
    body = _setup_and_table(config, result, fits) + _gap_split(config, result, fits, claims[0].verdict)
    figure = Figure("gaps", _gaps_figure(config, m, fits), "RMS difference of test outputs against width. "
                    "Markers: geometric mean over seeds; band: range; thin lines: fits; dashed: width^(-1/2).")
    regime_claims, regime_section, regime_series = regime.findings(config.regime, config, result)
    return Findings(claims + regime_claims, [Section(SECTION, body, [figure]), regime_section],
                    {"table": _series(config, result, fits), "regime": regime_series})


def _gaps_figure(config: Config, m: dict, fits: dict):
    w = config.widths
    return loglog_figure(
        {"gaps against width": {
            "trained network vs closed form from its init": (w, m["gap_trained"], fits["gap_trained"]),
            "trained network vs its linearisation": (w, m["gap_nonlinear"], None),
            "linearisation vs closed form from its init": (w, m["gap_linear"], None),
            "empirical-NTK vs closed-form regression": (w, m["gap_emp"], fits["gap_emp"])}},
        xlabel="width", ylabel="RMS difference of test outputs", reference_exponent=-0.5,
        reference_label="theory: width^(-1/2)")


def _setup_and_table(config: Config, result: Result, fits: dict) -> str:
    p, m, lam, steps = config.problem, result.measured, result.eigenvalues, config.problem.steps
    rows = [[w, mean_sd(m["net"][i]), mean_sd(m["own_limit"][i]), mean_sd(m["emp_reg"][i]),
             mean_sd(m["gap_trained"][i]), mean_sd(m["gap_emp"][i]), f"{m['loss_ratio'][i].max():.1e}"]
            for i, w in enumerate(config.widths)]
    return f"""
Data: {p.n_train} training and {p.n_test} test inputs uniform in [-2, 2]^2 (keys {result.data_keys[0]} and
{result.data_keys[1]}), y = sin(x_1) + cos(x_2). Network: one hidden ReLU layer, NTK parameterization,
W_std = {fmt(p.W_std)}, b_std = {fmt(p.b_std)}, one output. Training: full-batch gradient descent
(optax SGD) on mse, step {fmt(result.learning_rate)} = {fmt(p.step_fraction)} of the stability limit
2 n / lambda_max of the closed-form training NTK, {steps} steps; the closed-form comparison is
the same {steps} discrete steps of gradient descent with the closed-form NTK (float64), started from
the network's own initial outputs, so the step size adds nothing to the gap. The training NTK's condition number is {lam[-1] / lam[0]:.3g}: modes
with eigenvalue below n / (eta t) are still moving at t = {steps} (the last column shows how far the
loss fell), and the closed-form mean predictor at that time is {result.mean_predictor_gap:.4f} RMS from
the t -> infinity kernel regression. Why the comparison is made at a finite time is measured in the
next section.

**Kernel regression with the closed-form NTK (t -> infinity): test MSE {result.closed_regression_mse:.4f}.**
The test MSE columns are mean +- sd over {config.seeds} seeds. A single trained network is not the
kernel regression's mean predictor: its prediction also carries its random initial function,
propagated by the dynamics, so its test MSE exceeds the mean predictor's at every width; the column
"closed form from its init" is the infinite-width prediction for exactly that initial function, and
the trained network converges to it. Empirical-NTK regression is the mean predictor with one
network's NTK at init (width 1000 is the write-up's choice).

{markdown_table(["width", "test MSE, trained", "test MSE, closed form from its init",
                 "test MSE, empirical-NTK regression", "RMS gap trained vs closed form",
                 "RMS gap empirical vs closed-form regression", "worst final / initial loss"], rows)}

Fitted exponents (95% intervals over seeds): trained vs closed form {fit_text(fits['gap_trained'])};
empirical vs closed-form regression {fit_text(fits['gap_emp'])}. Diverged runs: {result.diverged}.
"""


def _gap_split(config: Config, result: Result, fits: dict, verdict: str) -> str:
    """Where the gap between trained networks and the closed form comes from, shown whether or not
    its claim holds."""
    m, lam, steps, small = result.measured, result.eigenvalues, config.problem.steps, result.smaller_step
    rows = [[w, mean_sd(m["gap_trained"][i]), mean_sd(m["gap_nonlinear"][i]), mean_sd(m["gap_linear"][i])]
            for i, w in enumerate(config.widths)]
    dominant = ("the network's departure from its own linearisation"
                if np.mean(m["gap_nonlinear"][-1]) > np.mean(m["gap_linear"][-1])
                else "the linearisation's distance from the closed form")
    speed = ("more slowly" if fits["gap_trained"] is not None
             and fits["gap_trained"].exponent > config.expected_exponent else "faster")
    verdict = {"holds": "The claim holds.",
               "inconclusive": "The claim is inconclusive: its interval reaches outside theory's band.",
               "fails": f"The claim fails: the gap falls {speed} than width^(-1/2)."}[verdict]
    local = {k: local_slopes(config.widths, m[k]) for k in ("gap_trained", "gap_nonlinear", "gap_linear")}
    slopes = {k: slopes_text(v) for k, v in local.items()}
    steepen = all(v and v[-1][2] < v[0][2] for k, v in local.items() if k != "gap_trained")
    reading = ("Both parts' local slopes steepen towards the wide end." if steepen else
               "The two parts' local slopes do not both steepen towards the wide end.")
    emp = fits["gap_emp"]
    not_slow = emp is not None and emp.exponent <= config.expected_exponent + config.exponent_tolerance
    regression = (f"{'it is not what is slow' if not_slow else 'it is slow too'}: the empirical-NTK "
                  f"regression (t -> infinity, no dynamics) approaches the closed form as "
                  f"width^({fit_text(emp, '+.2f')}) (second claim).")
    return f"""
**Where the gap between trained networks and the closed form comes from.** {verdict} Each network's
linearisation around its init (Lee et al. 2019), trained by the same steps, moves exactly as discrete
gradient descent with the network's own NTK at init (a test checks it), which is how it is computed
here, in float64. It splits the gap in two: the network against its linearisation (what training does beyond first order:
the kernel's change), and the linearisation against the closed form (the init kernel's fluctuation,
carried by the dynamics to time t). RMS over test outputs, mean +- sd over seeds:

{markdown_table(["width", "trained vs closed form", "trained vs its linearisation",
                 "linearisation vs closed form"], rows)}

Fitted exponents: trained vs linearisation {fit_text(fits['gap_nonlinear'], '+.2f')} (local slopes
{slopes['gap_nonlinear']}); linearisation vs closed form {fit_text(fits['gap_linear'], '+.2f')} (local
slopes {slopes['gap_linear']}); the sum, trained vs closed form: {slopes['gap_trained']}. At width
{config.widths[-1]} the larger part is {dominant}. Both parts are of order width^(-1/2)
asymptotically (Lee et al. 2019, Theorem 2.1), with constants that grow as the training kernel's
smallest eigenvalue shrinks. {reading} Why, measured: the next section follows every network through
training and beyond this ladder; the kernel's change in training is not yet first order at t = {steps}
at any of these widths, and the linear part is.

Two other causes, measured: (1) the step. The closed form takes the same discrete steps, and at width
{small['width']}, the same networks trained with a
step {small['factor']}x smaller for {small['factor']}x as many steps (the same time eta t; {small['seeds']} seed(s),
each paired with itself in the table) are {small['gap_small']:.4f} RMS from the closed form at that step, against
{small['gap']:.4f} with the table's step. (2) Kernel regression itself: {regression}
"""


def _series(config: Config, result: Result, fits: dict) -> dict:
    m = result.measured
    return {"width": list(config.widths), **{f"test_mse_{k}": m[k] for k in ("net", "own_limit", "emp_reg")},
            "gap_trained": m["gap_trained"], "gap_empirical": m["gap_emp"],
            "gap_trained_vs_linearisation": m["gap_nonlinear"],
            "gap_linearisation_vs_closed_form": m["gap_linear"],
            "fit_gap_trained_vs_linearisation": fits["gap_nonlinear"],
            "fit_gap_linearisation_vs_closed_form": fits["gap_linear"], "smaller_step": result.smaller_step,
            "fit_gap_trained": fits["gap_trained"], "fit_gap_empirical": fits["gap_emp"],
            "final_loss_ratio": m["loss_ratio"], "diverged": result.diverged,
            "closed_form_regression_test_mse": result.closed_regression_mse,
            "learning_rate": result.learning_rate, "steps": config.problem.steps}
