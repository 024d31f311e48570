"""The lazy experiment's task, closed form and scalings, at small widths."""
import dataclasses

import jax
import jax.numpy as jnp
import neural_tangents as nt
import numpy as np
import optax
import pytest
from replication.compat import enable_x64

from replication import fixed_loss
from replication.data import single_index
from replication.dynamics import gradient_descent_mse, stable_step
from replication.experiments import lazy
from replication.experiments.lazy import ladder, quality
from replication.sweep import Streams

SMALL = fixed_loss.Task(input_dim=8, n_train=32, n_test=64, n_kernel=16, target_fraction=1e-2)
SEEDS = 3
STREAMS = Streams(0, lazy.STREAMS)


def _direction(task):
    """The task's direction u, drawn from the same streams as ``single_index_data``."""
    return single_index(STREAMS.key("direction"), STREAMS.key("train_inputs"), STREAMS.key("test_inputs"),
                        task.n_train, task.n_test, task.input_dim)


def test_task_is_deterministic_and_its_sets_come_from_independent_keys():
    a, b = fixed_loss.single_index_data(SMALL, STREAMS), fixed_loss.single_index_data(SMALL, STREAMS)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    x_train, y_train, x_test, y_test = a
    *drawn, u = _direction(SMALL)
    for got, want in zip(a, drawn):
        np.testing.assert_array_equal(got, want)
    # The test set does not depend on how many training points were drawn: its own key.
    fewer = dataclasses.replace(SMALL, n_train=7)
    np.testing.assert_array_equal(fixed_loss.single_index_data(fewer, STREAMS)[2], x_test)
    np.testing.assert_array_equal(_direction(fewer)[4], u)
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
    x_train, y, *_ = fixed_loss.single_index_data(dataclasses.replace(SMALL, input_dim=64, n_train=20000), STREAMS)
    n = y.shape[0]
    assert abs(float(y.mean())) < 5 / np.sqrt(n) + 1 / 64
    assert abs(float(y.var()) - 1) < 5 * np.sqrt(3 / n) + 1 / 64


def test_limit_is_discrete_kernel_gradient_descent():
    """The closed-form limit (replication.dynamics, discrete) against kernel GD iterated step by step
    in float64 (exact up to rounding), its t -> infinity limit against neural-tangents'
    gradient_descent_mse(t=None), and steps_to against the loss it reports."""
    data = fixed_loss.single_index_data(SMALL, STREAMS)
    x_train, y_train, x_test, _ = data
    k, kt = fixed_loss.closed_form_ntk(SMALL, data)
    eta = stable_step(k, SMALL.ntk_lr_fraction)
    limit = gradient_descent_mse(k, y_train, eta, discrete=True)
    y = np.asarray(y_train, np.float64)
    f, g, n = np.zeros_like(y), np.zeros((x_test.shape[0], 1)), y.shape[0]
    for t in range(1, 31):
        r = f - y
        f, g = f - eta / n * k @ r, g - eta / n * kt @ r
        if t in (1, 7, 30):
            np.testing.assert_allclose(fixed_loss.limit_test_outputs(limit, kt, t), g[:, 0], rtol=1e-9, atol=1e-11)
            assert limit.loss(t) == pytest.approx(0.5 * np.mean((f - y) ** 2), rel=1e-9)
    with enable_x64():
        _, test = nt.predict.gradient_descent_mse(jnp.asarray(k), jnp.asarray(y), learning_rate=eta)(
            None, jnp.zeros_like(jnp.asarray(y)), jnp.zeros((x_test.shape[0], 1)), jnp.asarray(kt))
    np.testing.assert_allclose(fixed_loss.limit_test_outputs(limit, kt, None), np.asarray(test)[:, 0],
                               rtol=1e-6, atol=1e-8)
    target = fixed_loss.target_loss(SMALL, y_train)
    t = limit.steps_to(target)
    assert limit.loss(t) <= target < limit.loss(t - 1)


def test_scaled_model_starts_at_zero_and_its_gradient_scales_as_one_over_alpha():
    """Chizat et al.'s algebra, exactly: outputs alpha (f - f0) are 0 at init, and at any point
    the gradient of mse(alpha h, y) / alpha^2 is (1 / alpha) J^T (alpha h - y) / n. At init
    (h = 0) that is (1 / alpha) times the alpha = 1 gradient: float32 rounding only."""
    x_train, y_train, *_ = fixed_loss.single_index_data(SMALL, STREAMS)
    module = fixed_loss.spec_of(SMALL, "mup", 64).flax()
    outputs, loss = fixed_loss.scaled_model(module.apply)
    p0 = module.init(STREAMS.network("networks", 64, 0), x_train)
    f0 = module.apply(p0, x_train)
    assert not np.any(np.asarray(outputs(p0, f0, x_train, 7.0)))
    g1 = jax.grad(loss)(p0, f0, x_train, y_train, 1.0)
    for alpha in (4.0, 64.0):
        ga = jax.grad(loss)(p0, f0, x_train, y_train, alpha)
        for a, b in zip(jax.tree_util.tree_leaves(ga), jax.tree_util.tree_leaves(g1)):
            np.testing.assert_allclose(a, b / alpha, rtol=1e-5, atol=1e-7 * float(np.abs(b).max()))


def _ntk_members(width: int, task=SMALL):
    data = fixed_loss.single_index_data(task, STREAMS)
    k, kt = fixed_loss.closed_form_ntk(task, data)
    eta = stable_step(k, task.ntk_lr_fraction)
    limit = gradient_descent_mse(k, data[1], eta, discrete=True)
    target = fixed_loss.target_loss(task, data[1])
    keys = jnp.stack([STREAMS.network("networks", width, s) for s in range(SEEDS)])
    m = fixed_loss.train_members(fixed_loss.spec_of(task, "ntk", width), keys, data, optax.sgd(eta), target,
                                 3 * limit.steps_to(target), kernel_inputs=data[2][:task.n_kernel])
    return m, limit, kt


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
        m, limit, kt = _ntk_members(w)
        gap = fixed_loss.distance_to_limit({k: m[k][None] for k in ("steps", "diverged", "test_outputs")},
                                           limit, kt)
        gaps[w] = np.exp(np.mean(np.log(gap)))
    assert gaps[1024] < gaps[64] / 2, gaps
    assert gaps[1024] < 0.2, gaps


def test_output_scaling_moves_features_as_one_over_alpha():
    """One muP network of width 64, trained to the same loss with output alpha (f - f0) and loss
    / alpha^2, alpha = 8 and 64: features move as alpha^-1 (first order in 1/alpha; the O(1/alpha^2)
    correction at alpha = 8 and seed noise, about 0.05 on a slope over log 8: tolerance 0.1)."""
    data = fixed_loss.single_index_data(SMALL, STREAMS)
    spec = fixed_loss.spec_of(SMALL, "mup", 64)
    eta = fixed_loss.mup_learning_rate(SMALL, STREAMS, data[0])
    target = fixed_loss.target_loss(SMALL, data[1])
    keys = jnp.stack([STREAMS.network("alpha", 64, s) for s in range(SEEDS)])
    change = {}
    for alpha in (8.0, 64.0):
        m = fixed_loss.train_members(spec, keys, data, spec.optimizer("sgd", eta), target, 2000, alpha=alpha)
        assert not np.any(m["diverged"]) and np.all(m["reached"])
        change[alpha] = np.exp(np.mean(np.log(m["features"])))
    slope = np.log(change[64.0] / change[8.0]) / np.log(8)
    assert abs(slope + 1) < 0.1, (slope, change)


def test_ladder_and_quality_studies_read_the_same_trained_networks():
    """One run trains the ladders once: the quality study's test errors are the ladder study's
    networks' (the same arrays, not a second training), and its gap has one entry per network."""
    task = dataclasses.replace(SMALL, mup_max_steps=200)
    ladder_config = ladder.Config(task=task, widths=(16, 32), seeds=2)
    streams = Streams(0, lazy.STREAMS)
    lad = ladder.measure(ladder_config, streams)
    m = quality.measure(quality.Config(task=task, widths=(16, 32), seeds=2), streams)
    assert m["ntk_test_mse"] is lad.results["ntk"]["test_mse"]
    assert m["ntk_gap"].shape == (2, 2) and np.all(np.isfinite(m["ntk_gap"]))
