"""The ntk experiment's training studies, at small widths: closed form against empirical."""
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from replication.arch import MLP
from replication.dynamics import stable_step
from replication.experiments import ntk
from replication.experiments.ntk import ensemble
from replication.experiments.ntk.fluctuations import ntk_gram_samples
from replication.experiments.ntk.stability import steps_to_converge
from replication.experiments.ntk.task import Task
from replication.kernels import closed_form, empirical_ntk
from replication.sweep import Streams


def test_ntk_gram_samples_are_the_empirical_ntk():
    x = jnp.array([[1.0, 1, 1, 1], [1, -1, 1, -1], [0.5, 2, 0, 1]])
    spec = MLP(width=16, depth=2, activation="relu", b_std=None)
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    got = ntk_gram_samples(spec, x, keys, chunk_size=3)
    module = spec.flax()
    for k, g in zip(keys, got):
        params = spec.init_in_one_draw(k, x)  # the networks over_initialisations draws
        np.testing.assert_allclose(g, empirical_ntk(module.apply, params, x), rtol=1e-5, atol=1e-6)


def test_first_step_change_is_the_derivative_of_the_ntk_along_the_step():
    """first_step_samples' D (a Hessian-vector product) against a central difference of
    Theta(x, x; theta - e f grad f) in float64, step e = 1e-4 (error O(e^2) relative). The
    networks' own float32 leaves D with a rounding error near 1e-4 relative (a sum of
    products of gradient entries that partly cancel); a wrong factor or sign would be O(1)."""
    from replication.compat import enable_x64
    from replication.experiments.ntk.first_step import first_step_samples

    with enable_x64():
        x = jnp.ones((1, 4), jnp.float64)
        spec = MLP(width=8, depth=3, activation="relu", b_std=None)
        keys = jax.random.split(jax.random.PRNGKey(3), 2)
        got = first_step_samples(spec, x, keys, chunk_size=2)
        module = spec.flax()
        for k, (theta, change) in zip(keys, got):
            params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), spec.init_in_one_draw(k, x))
            value, grad = jax.value_and_grad(lambda p: module.apply(p, x)[0, 0])(params)

            def ntk_at(e):
                moved = jax.tree_util.tree_map(lambda p, g: p - e * value * g, params, grad)
                g = jax.grad(lambda p: module.apply(p, x)[0, 0])(moved)
                return float(sum(jnp.vdot(a, a) for a in jax.tree_util.tree_leaves(g)))

            assert theta == pytest.approx(ntk_at(0.0), rel=1e-6)
            assert change == pytest.approx((ntk_at(1e-4) - ntk_at(-1e-4)) / 2e-4, rel=1e-3)


def test_relu_ntk_diagonal_mean_equals_the_closed_form_at_width_16():
    """E[Theta_N(x, x)] over initialisations against the closed form at width 16: the ReLU
    diagonal has no finite-width correction of the mean (measured in the ntk report), so the
    difference is Monte Carlo error, sd / sqrt(M); 4 standard errors."""
    x = jnp.ones((1, 4))
    spec = MLP(width=16, depth=2, activation="relu", b_std=None)
    M = 2000
    theta = ntk_gram_samples(spec, x, jax.random.split(jax.random.PRNGKey(1), M), chunk_size=500)[:, 0, 0]
    limit = float(closed_form(spec, x)[0, 0])
    assert abs(theta.mean() - limit) <= 4 * theta.std() / np.sqrt(M)


def test_step_size_and_steps():
    k = np.diag([4.0, 1.0])
    eta = stable_step(k, 0.5)
    assert eta == 2 * 1.0 / 4.0  # half the stability limit: n / lambda_max
    steps = steps_to_converge(k, eta, 1e3, 10)
    assert steps % 10 == 0 and (1 - eta * 1.0 / 2) ** steps <= 1e-3


def test_ensemble_of_trained_networks_matches_gradient_descent_mse_ensemble_small():
    """The ensemble claims at width 128 with 48 members, with bands for this size: the mean within
    3 Monte Carlo standard errors (squared bias <= 9 / M of the variance) and the variance within
    3 sqrt(2/(M-1)), a sample variance's three standard deviations, at every time."""
    M = 48
    config = replace(ensemble.Config(), width=128, members=M, times=(0, 10, 100),
                     task=Task(n_train=8, n_test=12), bias_tolerance=9 / M,
                     variance_tolerance=3 * np.sqrt(2 / (M - 1)))
    claims = ensemble.findings(config, ensemble.measure(config, Streams(0, ntk.STREAMS))).claims
    assert all(c.verdict == "holds" for c in claims), [(c.id, c.measured, c.ci) for c in claims]
