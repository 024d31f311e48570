"""Closed-form gradient descent with a fixed kernel (replication.dynamics) against what it solves."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg

from replication.arch import MLP
from replication.dynamics import gradient_descent_mse, stable_step
from replication.kernels import empirical_ntk
from replication.train import fit, linearized, mse


def _problem(n=12, m=5, k=2, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n + m, 4))
    kernel = a @ a.T + 0.05 * np.eye(n + m)          # positive definite on train and test points
    return (kernel[:n, :n], kernel[n:, :n], rng.normal(size=(n, k)), rng.normal(size=(n, k)),
            rng.normal(size=(m, k)))


def test_discrete_is_the_step_by_step_recursion():
    k_train, k_test, y, f0, f0_test = _problem()
    eta = stable_step(k_train, 0.4, outputs=y.shape[1])
    f, g = f0.copy(), f0_test.copy()
    for _ in range(37):
        residual = f - y
        f, g = f - eta / y.size * k_train @ residual, g - eta / y.size * k_test @ residual
    train, test = gradient_descent_mse(k_train, y, eta, discrete=True)(37, f0, f0_test, k_test)
    # float64 rounding over 37 steps of a well-conditioned recursion.
    np.testing.assert_allclose(train, f, rtol=0, atol=1e-12)
    np.testing.assert_allclose(test, g, rtol=0, atol=1e-12)


def test_flow_is_the_matrix_exponential():
    k_train, k_test, y, f0, f0_test = _problem()
    eta, t = stable_step(k_train, 0.3, outputs=y.shape[1]), 25.0
    decay = scipy.linalg.expm(-eta * t / y.size * k_train)
    expected_train = y - decay @ (y - f0)
    expected_test = f0_test + k_test @ np.linalg.solve(k_train, (np.eye(len(y)) - decay) @ (y - f0))
    train, test = gradient_descent_mse(k_train, y, eta)(t, f0, f0_test, k_test)
    np.testing.assert_allclose(train, expected_train, atol=1e-10)
    np.testing.assert_allclose(test, expected_test, atol=1e-10)


def test_flow_is_neural_tangents_gradient_descent_mse():
    """The eigenbasis flow against neural-tangents' own, at finite and infinite time."""
    from replication.dynamics import _Flow

    k_train, k_test, y, f0, f0_test = _problem()
    eta = stable_step(k_train, 0.3, outputs=y.shape[1])
    ours, theirs = gradient_descent_mse(k_train, y, eta), _Flow(k_train, y, eta, 0.0, (-1,))
    for t in (0.0, 7.0, 300.0, None):
        for a, b in zip(ours(t, f0, f0_test, k_test), theirs(t, f0, f0_test, k_test)):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)


@pytest.mark.parametrize("discrete", [True, False])
def test_infinite_time_is_kernel_regression(discrete):
    k_train, k_test, y, f0, f0_test = _problem()
    predict = gradient_descent_mse(k_train, y, stable_step(k_train, 0.5, 2), discrete=discrete)
    train, test = predict(None, f0, f0_test, k_test)
    np.testing.assert_allclose(train, y, atol=1e-9)
    np.testing.assert_allclose(test, f0_test + k_test @ np.linalg.solve(k_train, y - f0), atol=1e-9)


def test_the_stability_limit_is_a_fraction_of_one():
    k_train, _, y, _, _ = _problem()
    start = np.zeros_like(y)
    below = gradient_descent_mse(k_train, y, stable_step(k_train, 0.99, 2), discrete=True)
    above = gradient_descent_mse(k_train, y, stable_step(k_train, 1.01, 2), discrete=True)
    # The top mode's residual is multiplied by 1 - 2 fraction per step.
    assert below.loss(3000, start) < 1e-6 * below.loss(0, start)
    assert above.loss(3000, start) > 1e3 * above.loss(0, start)


def test_steps_to_is_the_first_step_below_the_target():
    k_train, _, y, _, _ = _problem()
    predict = gradient_descent_mse(k_train, y, stable_step(k_train, 0.5, 2), discrete=True)
    target = 1e-3 * predict.loss(0)
    t = predict.steps_to(target)
    assert predict.loss(t) <= target < predict.loss(t - 1)


def test_a_linearised_network_trained_by_optax_is_the_discrete_closed_form():
    """The linearised network is exactly a linear model with the empirical NTK at init as its
    kernel, so its outputs under full-batch gradient descent are the discrete closed form with
    that kernel: equal up to float32 rounding of the training (about 1e-6 relative per step)."""
    x = jax.random.normal(jax.random.PRNGKey(0), (10, 3))
    x_test = jax.random.normal(jax.random.PRNGKey(1), (4, 3))
    y = jnp.sin(x[:, :1])
    module = MLP(width=64, depth=2, activation="erf", W_std=1.5, b_std=0.1).flax()
    params = module.init(jax.random.PRNGKey(2), x)
    xs = jnp.concatenate([x, x_test])
    k = np.asarray(empirical_ntk(module.apply, params, xs), np.float64)
    eta, steps = stable_step(k[:10, :10], 0.45), 40
    f_lin = linearized(module.apply)
    run = fit(lambda p, p0, x, y: mse(f_lin(p, p0, x), y), params, optax.sgd(eta), steps,
              args=(params, x, y))
    f0 = np.asarray(module.apply(params, xs), np.float64)
    _, closed = gradient_descent_mse(k[:10, :10], y, eta, discrete=True)(steps, f0[:10], f0[10:], k[10:, :10])
    np.testing.assert_allclose(np.asarray(f_lin(run.params, params, x_test)), closed, rtol=0, atol=2e-4)
