"""The lazy experiment's task, closed form and scalings, at small widths."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import enable_x64

from replication.experiments import lazy
from replication.sweep import network_key

SMALL = dataclasses.replace(lazy.Config(), input_dim=8, n_train=32, n_test=64, n_kernel=16,
                            target_fraction=1e-2, seeds=3)


def test_task_is_deterministic_and_its_sets_come_from_independent_keys():
    a, b = lazy.task(SMALL), lazy.task(SMALL)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    x_train, y_train, x_test, y_test, u = a
    # The test set does not depend on how many training points were drawn: its own key.
    other = lazy.task(dataclasses.replace(SMALL, n_train=7))
    np.testing.assert_array_equal(other[2], x_test)
    np.testing.assert_array_equal(other[4], u)
    assert not np.any(np.all(np.isclose(x_train[:, None], x_test[None]), axis=-1))
    assert np.isclose(float(jnp.linalg.norm(u)), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(x_train, axis=1), np.sqrt(SMALL.input_dim), rtol=1e-5)
    z = np.asarray(x_test @ u)
    np.testing.assert_allclose(y_test[:, 0], (np.maximum(z, 0) - (2 * np.pi) ** -0.5) / np.sqrt(0.5 - 0.5 / np.pi),
                               rtol=1e-5, atol=1e-6)


def test_target_is_standardised():
    """g(<u, x>) for x on the sphere in R^64 (z close to N(0, 1)): mean 0 and variance 1 up to
    the Monte Carlo error of 20000 draws (sd 1 / sqrt(n) for the mean, sqrt(2 / n)-ish for the
    variance; 5 of those) plus the sphere's O(1/d) departure from the Gaussian (1/64)."""
    x_train, y, *_ = lazy.task(dataclasses.replace(SMALL, input_dim=64, n_train=20000))
    n = y.shape[0]
    assert abs(float(y.mean())) < 5 / np.sqrt(n) + 1 / 64
    assert abs(float(y.var()) - 1) < 5 * np.sqrt(3 / n) + 1 / 64


def test_limit_dynamics_is_discrete_kernel_gradient_descent():
    """LimitDynamics against kernel GD iterated step by step in float64 (exact up to rounding),
    its t -> infinity limit against neural-tangents' gradient_descent_mse(t=None), and steps_to
    against the loss it reports."""
    import neural_tangents as nt

    x_train, y_train, x_test, _, _ = lazy.task(SMALL)
    spec = lazy.spec_of("ntk", 16, SMALL)
    with enable_x64():
        k = np.asarray(spec.stax()[2](jnp.asarray(x_train, jnp.float64), None, "ntk"))
        kt = np.asarray(spec.stax()[2](jnp.asarray(x_test, jnp.float64), jnp.asarray(x_train, jnp.float64), "ntk"))
    eta = lazy.ntk_learning_rate(SMALL, k)
    limit = lazy.LimitDynamics.of(spec, x_train, y_train, x_test, eta)
    y = np.asarray(y_train, np.float64)
    f, g, n = np.zeros_like(y), np.zeros((x_test.shape[0], 1)), y.shape[0]
    for t in range(1, 31):
        r = f - y
        f, g = f - eta / n * k @ r, g - eta / n * kt @ r
        if t in (1, 7, 30):
            np.testing.assert_allclose(limit.test_outputs(t), g[:, 0], rtol=1e-9, atol=1e-11)
            assert limit.train_loss(t) == pytest.approx(0.5 * np.mean((f - y) ** 2), rel=1e-9)
    with enable_x64():
        _, test = nt.predict.gradient_descent_mse(jnp.asarray(k), jnp.asarray(y), learning_rate=eta)(
            None, jnp.zeros_like(jnp.asarray(y)), jnp.zeros((x_test.shape[0], 1)), jnp.asarray(kt))
    np.testing.assert_allclose(limit.regression(), np.asarray(test)[:, 0], rtol=1e-6, atol=1e-8)
    target = lazy.target_loss(SMALL, y_train)
    t = limit.steps_to(target)
    assert limit.train_loss(t) <= target < limit.train_loss(t - 1)


def test_scaled_model_starts_at_zero_and_its_gradient_scales_as_one_over_alpha():
    """Chizat et al.'s algebra, exactly: outputs alpha (f - f0) are 0 at init, and at any point
    the gradient of mse(alpha h, y) / alpha^2 is (1 / alpha) J^T (alpha h - y) / n. At init
    (h = 0) that is (1 / alpha) times the alpha = 1 gradient: float32 rounding only."""
    x_train, y_train, *_ = lazy.task(SMALL)
    module = lazy.spec_of("mup", 64, SMALL).flax()
    outputs, loss = lazy.scaled_model(module.apply)
    p0 = module.init(network_key(0, 64, 0), x_train)
    f0 = module.apply(p0, x_train)
    assert not np.any(np.asarray(outputs(p0, f0, x_train, 7.0)))
    g1 = jax.grad(loss)(p0, f0, x_train, y_train, 1.0)
    for alpha in (4.0, 64.0):
        ga = jax.grad(loss)(p0, f0, x_train, y_train, alpha)
        for a, b in zip(jax.tree_util.tree_leaves(ga), jax.tree_util.tree_leaves(g1)):
            np.testing.assert_allclose(a, b / alpha, rtol=1e-5, atol=1e-7 * float(np.abs(b).max()))


def _ntk_members(width: int, config=SMALL):
    x_train, y_train, x_test, y_test, _ = lazy.task(config)
    spec = lazy.spec_of("ntk", width, config)
    with enable_x64():
        k = np.asarray(spec.stax()[2](jnp.asarray(x_train, jnp.float64), None, "ntk"))
    eta = lazy.ntk_learning_rate(config, k)
    limit = lazy.LimitDynamics.of(spec, x_train, y_train, x_test, eta)
    target = lazy.target_loss(config, y_train)
    keys = jnp.stack([network_key(0, width, s) for s in range(config.seeds)])
    m = lazy.train_members(spec, keys, (x_train, y_train, x_test, y_test), optax.sgd(eta), target,
                           3 * limit.steps_to(target), kernel_inputs=x_test[:config.n_kernel])
    return m, limit


def test_ntk_parameterization_freezes_weights_features_and_kernel_as_width_grows():
    """Trained to the same loss, from width 64 to 1024 (x16): weights and features change by a
    factor 16^(-1/2) = 1/4. A slope over log 16 from 3 seeds' geometric means carries about 0.05
    of seed noise and the narrow end's O(N^-1/2) corrections: tolerance 0.15. The NTK's change
    is bounded by N^(-1/2) (Lee et al. 2019) and falls faster for ReLU: slope <= -0.5 + 0.15.
    Every run reaches the target without diverging."""
    slopes = {}
    runs = {w: _ntk_members(w)[0] for w in (64, 1024)}
    for m in runs.values():
        assert not np.any(m["diverged"]) and np.all(m["reached"])
    for key in ("weights", "features", "kernel"):
        g = {w: np.exp(np.mean(np.log(m[key]))) for w, m in runs.items()}
        slopes[key] = np.log(g[1024] / g[64]) / np.log(16)
    assert abs(slopes["weights"] + 0.5) < 0.15, slopes
    assert abs(slopes["features"] + 0.5) < 0.15, slopes
    assert slopes["kernel"] < -0.5 + 0.15, slopes


def test_trained_ntk_networks_approach_the_closed_form_dynamics():
    """Each network's test outputs against the limit's at the network's own stopping step: the
    gap is O(N^-1/2), so x16 in width shrinks it 4-fold; demanded 2-fold (3 seeds' geometric
    mean; the narrow end's corrections), and the gap at 1024 is small against the outputs."""
    gaps = {}
    for w in (64, 1024):
        m, limit = _ntk_members(w)
        gaps[w] = np.exp(np.mean([np.log(np.sqrt(np.mean((m["test_outputs"][s] - limit.test_outputs(m["steps"][s]))
                                                        ** 2))) for s in range(SMALL.seeds)]))
    assert gaps[1024] < gaps[64] / 2, gaps
    assert gaps[1024] < 0.2, gaps


def test_output_scaling_moves_features_as_one_over_alpha():
    """One muP network of width 64, trained to the same loss with output alpha (f - f0) and loss
    / alpha^2, alpha = 8 and 64: features move as alpha^-1 (first order in 1/alpha; the O(1/alpha^2)
    correction at alpha = 8 and seed noise, about 0.05 on a slope over log 8: tolerance 0.1)."""
    x_train, y_train, x_test, y_test, _ = lazy.task(SMALL)
    spec = lazy.spec_of("mup", 64, SMALL)
    eta = lazy.mup_learning_rate(SMALL, x_train)
    target = lazy.target_loss(SMALL, y_train)
    keys = jnp.stack([network_key(1, 64, s) for s in range(SMALL.seeds)])
    change = {}
    for alpha in (8.0, 64.0):
        m = lazy.train_members(spec, keys, (x_train, y_train, x_test, y_test), spec.optimizer("sgd", eta), target,
                               2000, alpha=alpha)
        assert not np.any(m["diverged"]) and np.all(m["reached"])
        change[alpha] = np.exp(np.mean(np.log(m["features"])))
    slope = np.log(change[64.0] / change[8.0]) / np.log(8)
    assert abs(slope + 1) < 0.1, (slope, change)
