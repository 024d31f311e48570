"""An ensemble of trained networks against neural-tangents' closed-form ensemble dynamics.

Over initialisations, an infinitely wide network trained by gradient descent
on the squared loss is a Gaussian process at every step ``t``; its mean and
covariance on the test inputs are neural-tangents'
``nt.predict.gradient_descent_mse_ensemble``. ``members`` networks trained
at once (one vmapped optax program) are compared with it: their sample
mean in units of the Monte Carlo standard error ``sqrt(var_t / M)``, their
sample variance as a ratio. The closed form solves gradient flow; the
diagnostic "GD vs flow" is the distance between the linear model's
test outputs under discrete gradient descent and under gradient flow
(``replication.dynamics.gradient_descent_mse``), in the same units.

Random streams: ``train_inputs`` and ``test_inputs`` (the task's data),
``ensemble`` (the members).
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from replication.compat import enable_x64

from replication.dynamics import gradient_descent_mse, stable_step
from replication.experiments.ntk.task import Task, training_data
from replication.kernels import closed_form, over_initialisations
from replication.report import Claim, Figure, Findings, Section, fmt, markdown_table
from replication.sweep import Streams
from replication.train import fit_ensemble, mse

SECTION = "An ensemble of trained networks follows the closed-form dynamics"


@dataclass(frozen=True)
class Config:
    task: Task = Task()
    width: int = 512
    depth: int = 2
    activation: str = "relu"
    members: int = 64              # M independently initialised networks
    # Learning rate, as a fraction of the stability limit 2 n / lambda_max of the limit's training
    # NTK: small, so that gradient descent stays near the gradient flow the closed form solves.
    step_fraction: float = 0.05
    times: tuple[int, ...] = (0, 10, 30, 100, 300, 1000)  # steps at which the ensemble is compared
    # Tolerances in standard deviations of the estimates: the RMS z-score of the mean, and the
    # variance ratio's sqrt(2 / (M - 1)) (a sample variance's relative sd).
    sigmas: float = 3.0


@dataclass
class Dynamics:
    """Test outputs ``(len(times), n_test)`` of the ensemble and of the closed forms."""

    learning_rate: float
    closed_form_mean: np.ndarray   # gradient_descent_mse_ensemble's mean
    closed_form_var: np.ndarray    # and the diagonal of its covariance
    sample_mean: np.ndarray        # over the members
    sample_var: np.ndarray         # over the members (ddof=1)
    discrete: np.ndarray           # the limit's linear model under gradient descent, from f = 0
    flow: np.ndarray               # the same under gradient flow
    x_test_first: np.ndarray       # (n_test,) first coordinate of the test inputs, for the plot
    diverged: int                  # members whose loss became non-finite


def measure(config: Config, streams: Streams) -> Dynamics:
    """Train the members, record their test outputs at ``times``, and evaluate the closed forms there."""
    x_train, y_train, x_test = training_data(config.task, streams)
    spec = config.task.network(config.width, config.depth, config.activation)
    module = spec.flax()
    k_train = np.asarray(closed_form(spec, x_train), dtype=np.float64)
    lr = stable_step(k_train, config.step_fraction)
    every = int(np.gcd.reduce(config.times))
    keys = jax.random.split(streams.network("ensemble", config.width, 0), config.members)
    params = over_initialisations(module, keys, x_train, lambda p: p, chunk_size=config.members)
    run = fit_ensemble(lambda p, x, y, xt: mse(module.apply(p, x), y), params, optax.sgd(lr),
                       max(config.times), record=lambda p, x, y, xt: module.apply(p, xt)[:, 0],
                       record_every=every, args=(x_train, y_train, x_test))
    outputs = np.asarray(run.records, dtype=np.float64)[:, [t // every for t in config.times]]
    mean, var, k_test_train = _closed_form_ensemble(spec, x_train, y_train, x_test, lr, config.times)
    # The linear model's test outputs from zero, under gradient descent and gradient flow.
    discrete, flow = (gradient_descent_mse(k_train, y_train, lr, discrete=d) for d in (True, False))
    return Dynamics(lr, mean, var, outputs.mean(axis=0), outputs.var(axis=0, ddof=1),
                    np.stack([discrete(t, k_test_train=k_test_train)[1][:, 0] for t in config.times]),
                    np.stack([flow(t, k_test_train=k_test_train)[1][:, 0] for t in config.times]),
                    np.asarray(x_test[:, 0]), int(np.sum(np.asarray(run.diverged))))


def _closed_form_ensemble(spec, x_train, y_train, x_test, lr: float, times):
    """``gradient_descent_mse_ensemble``'s test mean and variance ``(len(times), n_test)`` in float64,
    and the limit's ``Theta(x_test, x_train)``."""
    import neural_tangents as nt

    with enable_x64():
        x_train, y_train, x_test = (jnp.asarray(a, jnp.float64) for a in (x_train, y_train, x_test))
        predict = nt.predict.gradient_descent_mse_ensemble(spec.stax()[2], x_train, y_train, learning_rate=lr)
        pred = [predict(float(t), x_test, "ntk", compute_cov=True) for t in times]
        mean = np.stack([np.asarray(p.mean[:, 0]) for p in pred])
        var = np.stack([np.asarray(jnp.diag(p.covariance)) for p in pred])
        return mean, var, np.asarray(closed_form(spec, x_test, x_train))


def findings(config: Config, r: Dynamics) -> Findings:
    """The mean within ``sigmas`` RMS z-scores and the variance ratio within ``sigmas sqrt(2/(M-1))``
    of 1, at every time; the figure, the table and the series."""
    M = config.members
    se = np.sqrt(r.closed_form_var / M)
    z_rms = np.sqrt(np.mean(((r.sample_mean - r.closed_form_mean) / se) ** 2, axis=1))
    var_ratio = r.sample_var.mean(axis=1) / r.closed_form_var.mean(axis=1)
    discretisation = np.sqrt(np.mean(((r.discrete - r.flow) / se) ** 2, axis=1))
    var_tol = config.sigmas * np.sqrt(2 / (M - 1))
    worst_var = int(np.argmax(np.abs(var_ratio - 1)))
    claims = [
        Claim(id="ntk_ensemble_mean", section=SECTION,
              statement=f"Mean of {M} trained networks = gradient_descent_mse_ensemble, every time plotted",
              prediction="RMS z-score ~ 1", expected=0.0, measured=float(z_rms.max()), ci=None,
              tolerance=config.sigmas, relation="<="),
        Claim(id="ntk_ensemble_variance", section=SECTION,
              statement=f"Variance over {M} trained networks = the closed form's, every time plotted",
              prediction="variance ratio = 1", expected=1.0, measured=float(var_ratio[worst_var]),
              ci=None, tolerance=float(var_tol)),
    ]
    rows = [[t, z_rms[j], var_ratio[j], discretisation[j], float(np.sqrt(np.mean(r.closed_form_var[j])))]
            for j, t in enumerate(config.times)]
    series = {"ensemble": {"t": list(config.times), "closed_form_mean": r.closed_form_mean,
                           "closed_form_var": r.closed_form_var, "sample_mean": r.sample_mean,
                           "sample_var": r.sample_var, "rms_z": z_rms, "variance_ratio": var_ratio,
                           "discretisation_in_se": discretisation, "learning_rate": r.learning_rate,
                           "members": M, "diverged": r.diverged}}
    figure = _figure(config, r, se, z_rms, var_ratio, discretisation, var_tol)
    section = Section(SECTION, _prose(config, r, rows), [Figure(
        "ensemble_dynamics", figure,
        "An ensemble of trained networks against neural-tangents' closed-form ensemble dynamics.")])
    return Findings(claims, [section], series)


def _figure(config: Config, r: Dynamics, se, z_rms, var_ratio, discretisation, var_tol):
    """The means against the test input's first coordinate; the RMS z-score and the variance ratio
    against time."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.0))
    order = np.argsort(r.x_test_first)
    x1 = r.x_test_first[order]
    for j, t in enumerate(config.times):
        c = f"C{j}"
        axes[0].plot(x1, r.closed_form_mean[j, order], "-", color=c, lw=1, label=f"t = {t}")
        axes[0].errorbar(x1, r.sample_mean[j, order], yerr=se[j, order], fmt="o", color=c, ms=3, lw=0.8)
    axes[0].set(xlabel="x_1 of the test input", ylabel="mean test output",
                title="ensemble mean (points, +- MC s.e.) vs closed form (lines)")
    axes[0].legend(fontsize=7)
    t_axis = np.maximum(np.asarray(config.times, dtype=float), 0.5)
    axes[1].plot(t_axis, z_rms, "o-", label="RMS z of the mean")
    axes[1].plot(t_axis, discretisation, "s:", label="GD vs gradient flow (in s.e.)")
    axes[1].axhline(config.sigmas, color="k", ls="--", lw=1, label="tolerance")
    axes[1].set(xscale="log", xlabel="step (t = 0 plotted at 0.5)", ylabel="RMS z-score",
                title="ensemble mean against the closed form")
    axes[1].legend(fontsize=7)
    axes[2].plot(t_axis, var_ratio, "o-")
    axes[2].axhspan(1 - var_tol, 1 + var_tol, color="gray", alpha=0.2,
                    label=f"1 +- {fmt(config.sigmas)} sqrt(2/(M-1))")
    axes[2].set(xscale="log", xlabel="step", ylabel="sample / closed-form variance",
                title="ensemble variance against the closed form")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    return fig


def _prose(config: Config, r: Dynamics, rows: list) -> str:
    return f"""
{config.members} networks ({config.activation}, depth {config.depth}, width {config.width}, NTK
parameterization), independently initialised, are trained at once (one vmapped optax program) by
full-batch gradient descent on the data of the previous section, with step {fmt(r.learning_rate)}
({fmt(config.step_fraction)} of the stability limit 2 n / lambda_max of the limit's training NTK). Over
initialisations, an infinitely wide network trained this way is a Gaussian process at every time t,
whose mean and covariance on the test inputs neural-tangents gives in closed form
(`gradient_descent_mse_ensemble(kernel_fn, x_train, y_train, learning_rate)`, t in steps; at t = 0 the
NNGP prior). The ensemble's mean is compared with it in units of the Monte Carlo standard error
sqrt(var_t / M), per test input; the RMS of those z-scores is about 1 when they agree. The closed form
solves gradient flow; the column "GD vs flow" is how far gradient descent's own linear dynamics are
from it, in the same units (computed from the limit's kernel), small at this step size. The variance
ratio's tolerance is {fmt(config.sigmas)} sqrt(2/(M - 1)), {fmt(config.sigmas)} standard deviations of a
sample variance.

{markdown_table(["step t", "RMS z of the mean", "variance ratio", "GD vs flow (s.e.)",
                 "closed-form sd"], rows)}
"""
