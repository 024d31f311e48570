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
from replication.stats import jackknife, squared_bias
from replication.sweep import Streams
from replication.train import fit_ensemble, mse

SECTION = "An ensemble of trained networks follows the closed-form dynamics"


@dataclass(frozen=True)
class Config:
    task: Task = Task()
    width: int = 512
    depth: int = 2
    activation: str = "relu"
    members: int = 48              # M independently initialised networks (the full preset: 256)
    # Learning rate, as a fraction of the stability limit 2 n / lambda_max of the limit's training
    # NTK: small, so that gradient descent stays near the gradient flow the closed form solves.
    step_fraction: float = 0.05
    times: tuple[int, ...] = (0, 10, 30, 100, 300, 1000)  # steps at which the ensemble is compared
    # Bands, resolutions: at every time the ensemble's mean within 0.1 closed-form sd (squared
    # bias <= 0.01 of the variance, RMS over test points, Monte Carlo error removed), its variance
    # within 10%. Theory's finite-width corrections are O(1/width).
    bias_tolerance: float = 0.01
    variance_tolerance: float = 0.1


@dataclass
class Dynamics:
    """Test outputs ``(len(times), n_test)`` of the ensemble and of the closed forms."""

    learning_rate: float
    closed_form_mean: np.ndarray   # gradient_descent_mse_ensemble's mean
    closed_form_var: np.ndarray    # and the diagonal of its covariance
    discrete: np.ndarray           # the limit's linear model under gradient descent, from f = 0
    flow: np.ndarray               # the same under gradient flow
    diverged: int                  # members whose loss became non-finite
    outputs: np.ndarray            # (members, len(times), n_test): every member's test outputs

    @property
    def sample_mean(self) -> np.ndarray:
        return self.outputs.mean(axis=0)

    @property
    def sample_var(self) -> np.ndarray:
        return self.outputs.var(axis=0, ddof=1)


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
    return Dynamics(lr, mean, var,
                    np.stack([discrete(t, k_test_train=k_test_train)[1][:, 0] for t in config.times]),
                    np.stack([flow(t, k_test_train=k_test_train)[1][:, 0] for t in config.times]),
                    int(np.sum(np.asarray(run.diverged))), outputs)


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
    """The mean's squared bias and the variance ratio at the worst time, with jackknife
    intervals over the members; the figure, the table and the series."""
    M = config.members
    se = np.sqrt(r.closed_form_var / M)
    z_rms = np.sqrt(np.mean(((r.sample_mean - r.closed_form_mean) / se) ** 2, axis=1))
    var_ratio = r.sample_var.mean(axis=1) / r.closed_form_var.mean(axis=1)
    discretisation = np.sqrt(np.mean(((r.discrete - r.flow) / se) ** 2, axis=1))
    var_tol = config.variance_tolerance
    times = range(len(config.times))
    bias = [squared_bias(r.outputs[:, j], r.closed_form_mean[j], r.closed_form_var[j]) for j in times]
    worst_bias, worst_var = int(np.argmax(bias)), int(np.argmax(np.abs(var_ratio - 1)))
    method = f"delete-one jackknife over the {M} members, Student-t, at the worst time"
    b, b_ci, _ = jackknife(lambda s: squared_bias(s, r.closed_form_mean[worst_bias], r.closed_form_var[worst_bias]),
                           r.outputs[:, worst_bias])
    v, v_ci, _ = jackknife(lambda s: float(s.var(axis=0, ddof=1).mean() / r.closed_form_var[worst_var].mean()),
                           r.outputs[:, worst_var])
    claims = [
        Claim(id="ntk_ensemble_mean", section=SECTION,
              statement=f"Mean of {M} trained networks = gradient_descent_mse_ensemble, every time plotted "
                        f"(worst: t = {config.times[worst_bias]})",
              prediction="squared bias / closed-form variance = 0", expected=0.0, measured=b, ci=b_ci,
              tolerance=config.bias_tolerance, relation="<=",
              reason="the mean within 0.1 closed-form sd: a resolution (finite-width bias is O(1/width))",
              interval_method=method, n_seeds=M),
        Claim(id="ntk_ensemble_variance", section=SECTION,
              statement=f"Variance over {M} trained networks = the closed form's, every time plotted "
                        f"(worst: t = {config.times[worst_var]})",
              prediction="variance ratio = 1", expected=1.0, measured=v, ci=v_ci, tolerance=var_tol,
              reason="10%: a resolution (finite-width corrections are O(1/width))",
              interval_method=method, n_seeds=M),
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
    lims = [float(min(r.closed_form_mean.min(), r.sample_mean.min())),
            float(max(r.closed_form_mean.max(), r.sample_mean.max()))]
    axes[0].plot(lims, lims, "k-", lw=0.8, label="equal")
    for j, t in enumerate(config.times):
        axes[0].errorbar(r.closed_form_mean[j], r.sample_mean[j], yerr=se[j], fmt="o", color=f"C{j}", ms=3,
                         lw=0.8, label=f"t = {t}")
    axes[0].set(xlabel="closed-form mean", ylabel="ensemble mean (+- MC s.e.)",
                title="each test input's mean: ensemble against closed form")
    axes[0].legend(fontsize=7)
    t_axis = np.maximum(np.asarray(config.times, dtype=float), 0.5)
    axes[1].plot(t_axis, z_rms, "o-", label="RMS z of the mean")
    axes[1].plot(t_axis, discretisation, "s:", label="GD vs gradient flow (in s.e.)")
    axes[1].axhline(1.0, color="k", ls="--", lw=1, label="Monte Carlo error alone")
    axes[1].set(xscale="log", xlabel="step (t = 0 plotted at 0.5)", ylabel="RMS z-score",
                title="ensemble mean against the closed form")
    axes[1].legend(fontsize=7)
    axes[2].plot(t_axis, var_ratio, "o-")
    axes[2].axhspan(1 - var_tol, 1 + var_tol, color="gray", alpha=0.2,
                    label=f"theory's band, 1 +- {fmt(var_tol)}")
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
from it, in the same units (computed from the limit's kernel), small at this step size.

The claims take the worst time: for the mean, the squared bias in units of the closed-form variance,
averaged over test inputs with the Monte Carlo error removed (`((mean_ens - mean)^2 - var_ens / M) /
var`, unbiased: 0 when the law is right, whatever M; band <= {fmt(config.bias_tolerance)}, the mean
within 0.1 sd); for the variance, the ensemble's variance averaged over test inputs over the closed
form's (band 1 +- {fmt(config.variance_tolerance)}).
Both intervals are delete-one jackknifes over the {config.members} members.

{markdown_table(["step t", "RMS z of the mean", "variance ratio", "GD vs flow (s.e.)",
                 "closed-form sd"], rows)}
"""
