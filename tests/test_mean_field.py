"""The muP limit's computation (``replication.mean_field``): the finite network exactly, a closed form,
and the quadrature's convergence."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from replication import mean_field
from replication.arch import ACTIVATIONS, MLP
from replication.compat import enable_x64
from replication.train import fit, mse

ERF = ACTIVATIONS["erf"].fn


def _data(n=12, n_test=7, d=2, seed=0):
    rng = np.random.default_rng(seed)
    x, x_test = rng.normal(size=(n, d)), rng.normal(size=(n_test, d))
    return x, np.tanh(2 * x[:, 0]), x_test


def test_particles_are_the_flax_network():
    """A muP Flax network with a zero readout, trained by its own optax SGD, is the particle system of
    its hidden units with weights 1 / N: equal to float64 rounding after 30 steps."""
    x, y, x_test = _data()
    spec = MLP(48, 1, "erf", W_std=1.0, b_std=1.0, parameterization="mup", base_width=16, zero_readout=True)
    eta, steps = 0.3, 30
    with enable_x64():
        module = spec.flax(jnp.float64)
        params0 = module.init(jax.random.PRNGKey(3), jnp.asarray(x))
        c0 = module.apply(params0, jnp.asarray(x))      # the readout bias: a constant, shifted away
        shifted = jnp.asarray(y)[:, None] + c0
        trained = fit(lambda p, a, b: mse(module.apply(p, a), b), params0, spec.optimizer("sgd", eta), steps,
                      args=(jnp.asarray(x), shifted)).params
        network = np.asarray(module.apply(trained, jnp.asarray(x_test)) - c0[0])[:, 0]
    particles = mean_field.of_network(params0)
    limit = mean_field.descent(particles, x, y, x_test, activation=ERF, base_width=16, learning_rate=eta,
                               steps=steps, record_every=steps)
    assert np.abs(network).max() > 0.1
    np.testing.assert_allclose(limit.test[-1], network, rtol=0, atol=1e-11)


def test_linear_activation_has_a_closed_form():
    """With phi(z) = z the quadrature rule (2 nodes per coordinate integrate the second moments
    exactly) equals the second-moment recursion, to float64 rounding."""
    x, y, x_test = _data(d=3)
    kw = dict(base_width=8.0, learning_rate=0.05, steps=200)
    exact = mean_field.linear_limit(x, y, x_test, W_std=1.3, b_std=0.7, **kw)
    for nodes in (2, 5):
        particles = mean_field.quadrature(3, 1.3, 0.7, nodes)
        got = mean_field.descent(particles, x, y, x_test, activation=lambda z: z, record_every=200, **kw)
        np.testing.assert_allclose(got.test[-1], exact, rtol=0, atol=1e-10)
    assert np.abs(exact).max() > 0.1


def test_quadrature_converges_faster_than_monte_carlo():
    """erf, d = 1: each doubling of the rule's nodes brings it at least 2.5x closer to the 128-node
    rule, and the 64-node rule is at least 10x closer than as many Monte Carlo particles, whose error
    falls only as particles^(-1/2)."""
    x, y, x_test = _data(n=16, d=1)
    kw = dict(activation=ERF, base_width=32.0, learning_rate=0.09, steps=600, record_every=600)
    rules = {q: mean_field.quadrature(1, 1.0, 1.0, q) for q in (16, 32, 64, 128)}
    out = {q: mean_field.descent(p, x, y, x_test, **kw).test[-1] for q, p in rules.items()}
    err = [np.sqrt(np.mean((out[q] - out[128]) ** 2)) for q in (16, 32, 64)]
    assert err[1] < err[0] / 2.5 and err[2] < err[1] / 2.5, err
    rng = np.random.default_rng(1)
    q = len(rules[64].weights)
    mc = mean_field.Particles(np.full(q, 1 / q), rng.normal(size=(q, 1)), rng.normal(size=q))
    mc_err = np.sqrt(np.mean((mean_field.descent(mc, x, y, x_test, **kw).test[-1] - out[128]) ** 2))
    assert err[2] < mc_err / 10, (err, mc_err)


def test_descent_rejects_a_ragged_schedule():
    particles = mean_field.quadrature(1, 1.0, 1.0, 3)
    with pytest.raises(ValueError, match="multiple of record_every"):
        mean_field.descent(particles, np.zeros((2, 1)), np.zeros(2), np.zeros((1, 1)), activation=ERF,
                           base_width=1, learning_rate=0.1, steps=10, record_every=3)


def test_limit_study_end_to_end():
    """The mup experiment's limit study on a small config: every claim has a value and an interval,
    and the networks' distance from the limit shrinks from width 64 to 1024 (by 4x in theory; the
    8-network geometric mean's spread is well under that)."""
    from replication.experiments.mup import STREAMS, limit
    from replication.sweep import Streams

    c = limit.Config(line=limit.Task(input_dim=1, n_train=12, n_test=32, steps=200, record_every=100),
                     nodes=(8, 16), widths=(64, 1024), seeds=8,
                     plane=limit.Task(input_dim=2, n_train=16, n_test=32, steps=100, record_every=100),
                     plane_nodes=(5, 7), sample_sizes=(8, 16), draws=3)
    result = limit.measure(c, Streams(0, STREAMS))
    f = limit.findings(c, result)
    assert [x.id for x in f.claims] == ["mup_limit_convergence", "mup_networks_reach_limit", "mup_limit_beats_ntk"]
    assert all(np.isfinite(x.measured) and x.ci is not None for x in f.claims)
    d = f.series["limit"]["line"]["distance"][..., -1]
    assert np.exp(np.log(d[1]).mean()) < np.exp(np.log(d[0]).mean()) / 2
