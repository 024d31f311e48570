"""Training: the loss convention, ensembles, records, divergence."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
from replication.compat import enable_x64

from replication.arch import MLP
from replication.data import sphere_inputs
from replication.train import fit, fit_ensemble, mse


def test_gradient_descent_follows_neural_tangents_closed_form_dynamics():
    """A linear model f = X w / sqrt(d) has NTK X X^T / d; GD on `mse` must follow
    `nt.predict.gradient_descent_mse` with the same learning rate, t in steps.

    Per eigenmode the residual shrinks by (1 - a)^T under GD and exp(-a T) under
    gradient flow, a = eta lambda / y.size; they differ by at most T a^2 / 2
    relative (a <= a_max = 0.002, T = 500: 1e-3), in float64.
    """
    import neural_tangents as nt

    with enable_x64():
        d, n, n_test, T = 20, 12, 5, 500
        X = jax.random.normal(jax.random.PRNGKey(0), (n + n_test, d), dtype=jnp.float64)
        y = jnp.sin(X[:n, :1])
        f = lambda w, x: x @ w / np.sqrt(d)  # noqa: E731
        K = X @ X.T / d
        a_max = 0.002
        eta = a_max * y.size / float(jnp.linalg.eigvalsh(K[:n, :n])[-1])
        w0 = jax.random.normal(jax.random.PRNGKey(1), (d, 1), dtype=jnp.float64)
        run = fit(lambda w: mse(f(w, X[:n]), y), w0, optax.sgd(eta), T)
        predict = nt.predict.gradient_descent_mse(K[:n, :n], y, learning_rate=eta)
        train_t, test_t = predict(T, f(w0, X[:n]), f(w0, X[n:]), K[n:, :n])
        bound = T * a_max**2 / 2 * float(jnp.linalg.norm(f(w0, X[:n]) - y))
        assert float(jnp.linalg.norm(f(run.params, X[:n]) - train_t)) <= bound
        assert float(jnp.linalg.norm(f(run.params, X[n:]) - test_t)) <= bound * float(
            jnp.linalg.norm(K[n:, :n]) / jnp.linalg.eigvalsh(K[:n, :n])[0])
        assert not bool(run.diverged)


def _small_problem():
    spec = MLP(32, 2, "erf")
    x = sphere_inputs(jax.random.PRNGKey(0), 10, 3)
    y = jnp.cos(x[:, :1])
    module = spec.flax()
    return module, x, y, lambda p: mse(module.apply(p, x), y)


def test_ensemble_equals_members_trained_one_by_one():
    module, x, y, loss = _small_problem()
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    stacked = jax.vmap(module.init, (0, None))(keys, x)
    together = fit_ensemble(loss, stacked, optax.adam(1e-2), 40)
    for i in range(3):
        alone = fit(loss, jax.tree_util.tree_map(lambda a: a[i], stacked), optax.adam(1e-2), 40)
        # The same float32 arithmetic, batched: agreement to rounding.
        np.testing.assert_allclose(together.losses[i], alone.losses, rtol=1e-4, atol=1e-7)
    assert together.losses.shape == (3, 40) and together.diverged.shape == (3,)


def test_records_and_loss_decrease():
    module, x, y, loss = _small_problem()
    params = module.init(jax.random.PRNGKey(2), x)
    run = fit(loss, params, optax.sgd(0.5), 50, record=lambda p: module.apply(p, x),
              record_every=10)
    assert run.records.shape == (6, 10, 1)
    # The same function, compiled feature-major inside fit: its sums run in another order. Worst-case
    # float32 rounding of O(1) sums over a fan-in of 32 is 32 eps ~ 4e-6 per layer, three layers.
    atol = 3 * 32 * np.finfo(np.float32).eps
    np.testing.assert_allclose(run.records[0], module.apply(params, x), rtol=0, atol=atol)
    np.testing.assert_allclose(run.records[-1], module.apply(run.params, x), rtol=0, atol=atol)
    assert run.losses[-1] < run.losses[0] and not bool(run.diverged)


def test_divergence_is_recorded_not_raised():
    module, x, y, loss = _small_problem()
    run = fit(loss, module.init(jax.random.PRNGKey(3), x), optax.sgd(1e4), 30)
    assert bool(run.diverged)
    assert not np.all(np.isfinite(np.asarray(run.losses)))


def test_linearized_model_trained_by_gd_follows_the_discrete_linear_dynamics():
    """A network's linearisation trained by GD is a linear model with kernel the empirical NTK at
    init, so its outputs obey f_t - y = (I - eta Theta / n)^t (f_0 - y) exactly (float64)."""
    from replication.kernels import empirical_ntk
    from replication.train import linearized

    with enable_x64():
        x = sphere_inputs(jax.random.PRNGKey(0), 6, 3).astype(jnp.float64)
        y = jnp.sin(x[:, :1])
        module = MLP(width=24, depth=2, activation="erf", W_std=1.5).flax(jnp.float64)
        p0 = module.init(jax.random.PRNGKey(1), x)
        f_lin = linearized(module.apply)
        np.testing.assert_allclose(f_lin(p0, p0, x), module.apply(p0, x), rtol=1e-12)
        theta = np.asarray(empirical_ntk(module.apply, p0, x))
        eta, T = 0.5 * x.shape[0] / np.linalg.eigvalsh(theta)[-1], 40
        run = fit(lambda p, p0, x, y: mse(f_lin(p, p0, x), y), p0, optax.sgd(eta), T, args=(p0, x, y))
        step = np.eye(x.shape[0]) - eta * theta / x.shape[0]
        expected = np.asarray(y) + np.linalg.matrix_power(step, T) @ np.asarray(module.apply(p0, x) - y)
        np.testing.assert_allclose(f_lin(run.params, p0, x), expected, rtol=1e-8, atol=1e-10)


def test_heavy_ball_converges_at_polyaks_rate():
    """On a quadratic with curvatures in [mu, L], heavy ball with Polyak's settings reaches the
    requested reduction within the step count it returns (margin 3 covers the transient)."""
    from replication.train import heavy_ball

    curvatures = np.geomspace(1e-3, 1.0, 20)
    lr, momentum, steps = heavy_ball(curvatures[-1], curvatures[0], reduction=1e-6)
    w0 = jnp.ones(20)
    run = fit(lambda w: 0.5 * jnp.sum(curvatures * w**2), w0, optax.sgd(lr, momentum=momentum), steps)
    assert float(jnp.linalg.norm(run.params)) <= 1e-6 * float(jnp.linalg.norm(w0))


def test_fit_compiles_once_per_shape_for_the_same_loss_and_optimizer():
    """A sweep over seeds reuses one compiled program; a new shape compiles a new one."""
    spec = MLP(16, 1, "relu")
    x = sphere_inputs(jax.random.PRNGKey(0), 6, 3)
    y = jnp.cos(x[:, :1])
    traces = []

    def loss(p, x, y):
        traces.append(1)  # runs only while tracing
        return mse(spec.flax().apply(p, x), y)

    opt = optax.sgd(0.1)
    for seed in range(3):
        fit(loss, spec.flax().init(jax.random.PRNGKey(seed), x), opt, 5, args=(x, y))
    assert len(traces) == 1
    wide = spec.replace(width=32).flax()
    fit(lambda p, x, y: mse(wide.apply(p, x), y), wide.init(jax.random.PRNGKey(0), x), opt, 5, args=(x, y))
    fit(loss, spec.flax().init(jax.random.PRNGKey(0), x[:4]), opt, 5, args=(x[:4], y[:4]))
    assert len(traces) == 2


def test_fit_to_loss_stops_at_the_first_step_below_the_target():
    """A linear model on one point: the residual shrinks by exactly (1 - eta) per step (mse's
    1/2 mean and f = w with x = 1), so the loss after t steps is r0^2 (1 - eta)^(2t) / 2 and the
    stopping step is known in closed form; float32 rounding can only matter at an exact tie,
    which these numbers avoid."""
    from replication.train import fit_to_loss, fit_to_loss_ensemble

    loss = lambda w, y: mse(w, y)  # noqa: E731
    eta, target = 0.1, 1e-3
    y = jnp.ones((1, 1))
    stopped = fit_to_loss(loss, jnp.zeros((1, 1)), optax.sgd(eta), target, 1000, args=(y,))
    expected = int(np.ceil(np.log(2 * target) / (2 * np.log(1 - eta))))
    assert int(stopped.steps) == expected
    assert float(stopped.loss) <= target < float(loss(jnp.full((1, 1), 1 - (1 - eta) ** (expected - 1)), y))
    capped = fit_to_loss(loss, jnp.zeros((1, 1)), optax.sgd(eta), target, 5, args=(y,))
    assert int(capped.steps) == 5 and float(capped.loss) > target and not bool(capped.diverged)
    # An ensemble: each member stops at its own step, one diverges (step 2.5: residual x -1.5 per
    # step, to overflow) and is recorded, not raised.
    members = fit_to_loss_ensemble(lambda w, y0, y: mse(w, y0 * y), jnp.zeros((3, 1, 1)), optax.sgd(eta),
                                   target, 10**4, member_args=(jnp.array([1.0, 4.0, 1.0]),), args=(y,))
    assert [int(s) for s in members.steps[:2]] == [expected,
                                                   int(np.ceil(np.log(2 * target / 16) / (2 * np.log(1 - eta))))]
    unstable = fit_to_loss(loss, jnp.zeros((1, 1)), optax.sgd(2.5), target, 10**4, args=(y,))
    assert bool(unstable.diverged) and int(unstable.steps) < 10**4
