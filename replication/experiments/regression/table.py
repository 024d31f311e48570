"""Trained networks, empirical-NTK and closed-form regression against width, at a finite time t.

At each width, ``seeds`` networks are trained for ``t = steps`` steps of
gradient descent with step ``eta``. Each is compared with the closed-form
NTK dynamics at the same ``t`` started from its own initial outputs ``f0``,

    f_test(t) = f0_test + Theta_test,train Theta^-1 (I - exp(-eta Theta t / n)) (y - f0_train),

and kernel regression with its empirical NTK at init (``t -> infinity``,
``f0 = 0``) with the closed-form NTK's. Both gaps are predicted to fall as
``width^(-1/2)`` (Jacot et al. 2018; Lee et al. 2019). The first is split
by the network's linearisation around its init, trained beside it with the
same optimizer: network against linearisation (the kernel's change in
training), linearisation against the closed form (the init kernel's
fluctuation, carried by the dynamics). A paired check at the widest width
trains the same networks with a smaller step for the same ``eta t``.

Random streams: ``networks`` (the table's networks; the smaller-step check
retrains the first of each).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import optax

from replication.dynamics import gradient_descent_mse
from replication.experiments.regression.problem import Problem, one_network, rms, test_mse
from replication.report import (Claim, Figure, Findings, Section, fit_text, fmt, loglog_figure, markdown_table,
                                mean_sd, slopes_text)
from replication.stats import EXPONENT_BAND, fit_finite, local_slopes
from replication.sweep import Streams, progress
from replication.train import fit, linearized, linearized_loss

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
    # The widest width again, with the step divided by this for as many times the steps (the same eta t).
    small_step_factor: int = 4
    # A paired check (the same network, two step sizes), so one seed shows whether the step
    # matters: the pair's difference is what is read, not the spread over seeds.
    small_step_seeds: int = 1
    expected_exponent: float = -0.5
    exponent_tolerance: float = EXPONENT_BAND


@dataclass
class Result:
    widths: tuple[int, ...]
    measured: dict[str, np.ndarray]    # MEASURED -> (n_widths, seeds)
    diverged: int                      # runs whose loss became NaN or infinite
    closed_regression_mse: float       # test MSE of kernel regression with the closed-form NTK
    mean_predictor_gap: float          # RMS, the closed-form mean predictor at t = steps against t -> infinity
    eigenvalues: np.ndarray            # of the closed-form training NTK, ascending
    learning_rate: float
    step_discrepancy: float            # max over the limit's modes of |(1 - a)^t - exp(-a t)|, a = eta lambda / n
    smaller_step: dict                 # width, factor, seeds, gap (the table's step), gap_small
    data_keys: tuple[int, int]         # the seeds of the training and test inputs' keys


def linearisation_test_outputs(spec, params0, x_train, y_train, x_test, optimizer, steps: int) -> np.ndarray:
    """Test outputs of ``f_lin(p) = f(p0) + J(p0) (p - p0)`` (Lee et al. 2019) trained like the network."""
    f_lin = linearized(spec.flax().apply)
    run = fit(linearized_loss(f_lin), params0, optimizer, steps, args=(params0, x_train, y_train))
    return np.asarray(f_lin(run.params, params0, x_test), np.float64)


def measure(config: Config, streams: Streams) -> Result:
    p = config.problem
    x_train, y_train, x_test, y_test = p.data(streams)
    k_train, k_test_train = p.closed_form(x_train), p.closed_form(x_test, x_train)
    lr = p.learning_rate(k_train)
    optimizer = optax.sgd(lr)
    limit = gradient_descent_mse(k_train, y_train, lr)
    # Kernel regression (t -> infinity) by a direct solve, as for the empirical kernels below.
    _, closed_regression = gradient_descent_mse(k_train, y_train, lr, discrete=True)(
        None, k_test_train=k_test_train)
    m = {k: np.empty((len(config.widths), config.seeds)) for k in MEASURED}
    diverged = 0
    with progress(len(config.widths) * config.seeds, "regression") as bar:
        for i, width in enumerate(config.widths):
            spec = p.network(width)
            for s in range(config.seeds):
                r = one_network(spec, streams.network("networks", width, s), x_train, y_train, x_test,
                                optimizer, p.steps)
                f_lin_test = linearisation_test_outputs(spec, r.params0, x_train, y_train, x_test,
                                                        optimizer, p.steps)
                # The infinite-width network from the same initial outputs, at the same step.
                _, own = limit(p.steps, r.f0_train, r.f0_test, k_test_train)
                # A float32 kernel can be left indefinite by rounding (width 16: lambda_min ~ -2e-6),
                # which neural-tangents' Cholesky solve refuses; the discrete recursion's t = infinity
                # is the same kernel regression, by a direct (LU) solve.
                _, emp = gradient_descent_mse(r.k_train, y_train, lr, discrete=True)(
                    None, k_test_train=r.k_test_train)
                m["net"][i, s], m["own_limit"][i, s] = test_mse(r.f_test, y_test), test_mse(own, y_test)
                m["emp_reg"][i, s] = test_mse(emp, y_test)
                m["gap_trained"][i, s], m["gap_emp"][i, s] = rms(r.f_test, own), rms(emp, closed_regression)
                m["gap_nonlinear"][i, s], m["gap_linear"][i, s] = rms(r.f_test, f_lin_test), rms(f_lin_test, own)
                m["loss_ratio"][i, s] = r.loss_ratio
                diverged += r.diverged
                bar.update()
    lam = np.linalg.eigvalsh(k_train)
    a_modes = lr * lam / p.n_train
    small = {"width": config.widths[-1], "factor": config.small_step_factor,
             "seeds": min(config.small_step_seeds, config.seeds),
             "gap": float(np.mean(m["gap_trained"][-1, :config.small_step_seeds])),
             "gap_small": smaller_step_gap(config, streams, (x_train, y_train, x_test), k_train, k_test_train, lr)}
    _, mean_predictor = limit(p.steps, 0.0, None, k_test_train)
    return Result(
        widths=config.widths, measured=m, diverged=diverged,
        closed_regression_mse=test_mse(closed_regression, y_test),
        mean_predictor_gap=rms(mean_predictor, closed_regression), eigenvalues=lam, learning_rate=lr,
        step_discrepancy=float(np.max(np.abs((1 - a_modes) ** p.steps - np.exp(-a_modes * p.steps)))),
        smaller_step=small, data_keys=(streams.offset("train_inputs"), streams.offset("test_inputs")))


def smaller_step_gap(config: Config, streams: Streams, dataset, k_train, k_test_train, lr: float) -> float:
    """The table's gap at the widest width, the same networks, step / ``small_step_factor`` at the same eta t."""
    x_train, y_train, x_test = dataset
    p, f, width = config.problem, config.small_step_factor, config.widths[-1]
    limit = gradient_descent_mse(k_train, y_train, lr / f)
    gaps = []
    for s in range(min(config.small_step_seeds, config.seeds)):
        r = one_network(p.network(width), streams.network("networks", width, s), x_train, y_train, x_test,
                        optax.sgd(lr / f), p.steps * f)
        _, own = limit(p.steps * f, r.f0_train, r.f0_test, k_test_train)
        gaps.append(rms(r.f_test, own))
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
    return Findings(claims, [Section(SECTION, body, [figure])], {"table": _series(config, result, fits)})


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
neural-tangents' `gradient_descent_mse` with the same step at t = {steps}, started from the network's
own initial outputs (float64). The training NTK's condition number is {lam[-1] / lam[0]:.3g}: modes
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
    reading = ("Both local slopes steepen towards the wide end, which fits that reading; a wider ladder "
               "would test it." if steepen else "The two parts' local slopes do not both steepen towards "
               "the wide end, so these numbers do not single that reading out.")
    emp = fits["gap_emp"]
    not_slow = emp is not None and emp.exponent <= config.expected_exponent + config.exponent_tolerance
    regression = (f"{'it is not what is slow' if not_slow else 'it is slow too'}: the empirical-NTK "
                  f"regression (t -> infinity, no dynamics) approaches the closed form as "
                  f"width^({fit_text(emp, '+.2f')}) (second claim).")
    return f"""
**Where the gap between trained networks and the closed form comes from.** {verdict} Each network's
linearisation around its init (Lee et al. 2019) was trained beside it with the same optimizer, which
splits the gap in two: the network against its linearisation (what training does beyond first order:
the kernel's change), and the linearisation against the closed form (the init kernel's fluctuation,
carried by the dynamics to time t). RMS over test outputs, mean +- sd over seeds:

{markdown_table(["width", "trained vs closed form", "trained vs its linearisation",
                 "linearisation vs closed form"], rows)}

Fitted exponents: trained vs linearisation {fit_text(fits['gap_nonlinear'], '+.2f')} (local slopes
{slopes['gap_nonlinear']}); linearisation vs closed form {fit_text(fits['gap_linear'], '+.2f')} (local
slopes {slopes['gap_linear']}); the sum, trained vs closed form: {slopes['gap_trained']}. At width
{config.widths[-1]} the larger part is {dominant}. Both parts are of order width^(-1/2)
asymptotically (Lee et al. 2019, Theorem 2.1), with constants that grow as the training kernel's
smallest eigenvalue shrinks. A reading consistent with these numbers, but not established here: with
this kernel's condition number of {lam[-1] / lam[0]:.3g}, many modes are still moving at t = {steps}, a
perturbation of the kernel (at init, or during training) shifts them in proportion to eta t rather
than being damped, and the ladder of widths ends before the asymptotic regime. {reading}

Two other causes, measured: (1) the step. Gradient descent against the gradient flow the closed form solves differs by
at most {result.step_discrepancy:.1e} per mode of the limit's kernel at t = {steps} (|(1 - a)^t - exp(-a t)|,
a = eta lambda / n), times the residual; and at width {small['width']}, the same networks trained with a
step {small['factor']}x smaller for {small['factor']}x as many steps (the same time eta t; {small['seeds']} seed(s),
each paired with itself in the table) are {small['gap_small']:.4f} RMS from the closed form, against
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
