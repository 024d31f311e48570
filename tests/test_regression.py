"""The regression experiment's closed forms, at small width."""
import jax
import numpy as np
import optax
import pytest

from replication.dynamics import gradient_descent_mse, stable_step
from replication.experiments import regression as R
from replication.experiments.regression import table
from replication.experiments.regression.problem import Problem, one_network
from replication.sweep import Streams
from replication.train import fit, linearized, linearized_loss

STREAMS = Streams(0, R.STREAMS)


def test_t_infinity_closed_form_is_kernel_regression_from_the_initial_outputs():
    """Both closed forms the experiment uses at t = None (the flow, for the closed-form NTK; the
    discrete recursion, for a network's own kernel) are f0_test + K_te,tr K^-1 (y - f0_train)."""
    problem = Problem(n_train=12, n_test=7)
    x_train, y_train, x_test, _ = problem.data(STREAMS)
    k, kt = problem.closed_form(x_train), problem.closed_form(x_test, x_train)
    f0_train, f0_test = np.ones((12, 1)) * 0.3, np.ones((7, 1)) * -0.2
    expected = f0_test + kt @ np.linalg.solve(k, np.asarray(y_train, np.float64) - f0_train)
    for discrete in (False, True):
        _, ours = gradient_descent_mse(k, y_train, 1.0, discrete=discrete)(None, f0_train, f0_test, kt)
        np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-8)


def test_empirical_ntk_regression_approaches_the_closed_form_with_width():
    """Kernel regression with one network's NTK at init against the closed-form NTK's: the gap
    is the kernel's O(width^-1/2) fluctuation propagated through the solve, so from width 64 to
    1024 it should shrink by about 4; demanded: 2, averaged over 4 seeds (their spread is
    large, log sd about 0.5)."""
    config = table.Config(problem=Problem(n_train=16, n_test=16, steps=10), widths=(64, 1024), seeds=4,
                          times=(10,), wide_widths=(), wide_times=None, linear_widths=(), small_step_width=1024)
    gaps = table.measure(config, STREAMS).measured["gap_emp"]
    geometric = np.exp(np.mean(np.log(gaps), axis=1))
    assert geometric[1] < geometric[0] / 2, geometric


def test_trained_linearisation_is_discrete_gradient_descent_with_the_init_kernel():
    """A linearised network trained by GD moves exactly as kernel GD with its own empirical NTK:
    train residual (I - eta K / n)^t r0, test outputs f0 - K_te,tr K^-1 (I - (I - eta K / n)^t) r0.
    Both sides are exact; the tolerance is float32 rounding over 40 steps."""
    problem = Problem(n_train=12, n_test=8)
    x_train, y_train, x_test, _ = problem.data(STREAMS)
    spec = problem.network(64)
    n, t = 12, 40
    eta = stable_step(problem.closed_form(x_train), 0.25)   # 0.5 n / lambda_max
    optimizer = optax.sgd(eta)
    r = one_network(spec, jax.random.PRNGKey(3), x_train, y_train, x_test, optimizer, t)
    f_lin = linearized(spec.flax().apply)
    run = fit(linearized_loss(f_lin), r.params0, optimizer, t, args=(r.params0, x_train, y_train))
    f_lin_test = np.asarray(f_lin(run.params, r.params0, x_test), np.float64)
    K, Kt = r.k_train, r.k_test_train
    decay = np.linalg.matrix_power(np.eye(n) - eta * K / n, t)
    expected = r.f0_test - Kt @ np.linalg.solve(K, (np.eye(n) - decay) @ (r.f0_train - np.asarray(y_train)))
    np.testing.assert_allclose(f_lin_test, expected, atol=2e-4 * np.abs(expected).max())


def _planted_cells(exponent_nl, exponent_eps, seeds=3):
    """A ladder whose nonlinear part is planted as c * epsilon (one curve, no width term) and whose
    epsilon is planted as t^2 / width (so epsilon = 1 at width t^2)."""
    from replication.experiments.regression.regime import Cells

    widths, times = np.array([2.0**k for k in range(4, 18, 2)]), np.array([4.0, 16.0, 64.0])
    rng = np.random.default_rng(0)
    eps = (times[None, None] ** 2 / widths[:, None, None]) ** exponent_eps * np.ones((1, seeds, 1))
    eps = eps * np.exp(0.01 * rng.standard_normal(eps.shape))
    nl = 0.1 * eps ** exponent_nl
    linear = widths[:, None, None] ** -0.5 * np.ones_like(eps)
    return Cells(widths, times, nonlinear=nl, linear=linear, trained=nl + linear, kernel_change=eps, epsilon=eps,
                 epsilon0=eps, seeds=np.full(len(widths), seeds))


def test_regime_recovers_a_planted_crossover_and_collapse():
    """epsilon = t^2 / width crosses 1 at width t^2 (kappa = 2); a nonlinear part that is a function of
    epsilon alone has no width term; a total gap of width^(-1/2) where epsilon is small gives -1/2."""
    from replication.experiments.regression import regime

    c = _planted_cells(1.0, 1.0)
    widths, (kappa, _) = regime.crossover(c)
    np.testing.assert_allclose(widths, c.times ** 2, rtol=0.05)
    assert abs(kappa - 2) < 0.02, kappa
    alpha, gamma = regime.collapse(c)
    assert abs(alpha - 1) < 0.02 and abs(gamma) < 0.02, (alpha, gamma)
    beta, used = regime.asymptotic_exponent(_planted_cells(2.0, 1.0), 0.01)
    assert len(used) >= 3 and abs(beta + 0.5) < 0.05, (beta, used)


def test_circle_modes_are_eigenvectors_of_the_closed_form_ntk():
    """On equispaced angles the closed-form NTK is circulant: cos(k theta + k) is an eigenvector, with
    the eigenvalue of frequency k of the kernel's first row's discrete Fourier transform (float64)."""
    from replication.experiments.regression import spectral

    theta, x = spectral.circle(32)
    k = Problem().closed_form(x)
    v = spectral.modes(theta, (1, 2, 4))
    spectrum = np.fft.rfft(k[0]).real
    for vk, f in zip(v, (1, 2, 4)):
        np.testing.assert_allclose(k @ vk, spectrum[f] * vk, atol=1e-10 * spectrum[0])


def test_spectral_study_end_to_end_at_small_size():
    """Two narrow networks, two modes: the rates are finite and the fast mode is learnt first."""
    from replication.experiments.regression import spectral

    config = spectral.Config(n=16, frequencies=(1, 2), widths=(256,), seeds=2, step_fraction=0.2)
    result = spectral.measure(config, Streams(0, {**R.STREAMS}))
    r = spectral.rates(config, result, first_order=False)
    assert np.all(np.isfinite(r)) and np.all(r[..., 0] > r[..., 1]), r
    assert spectral.findings(config, result).claims[0].id == "spectral_bias_mode_rates_k1"


def test_control_refuses_a_time_before_every_mode_has_decayed():
    from replication.experiments.regression import control

    config = control.Config(widths=(64, 128), seeds=2, times=(10,))
    with pytest.raises(ValueError, match="train longer"):
        control.measure(config, STREAMS)
