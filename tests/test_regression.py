"""The regression experiment's closed forms, at small width."""
import jax
import jax.numpy as jnp
import numpy as np
import optax

from replication.arch import MLP
from replication.experiments import regression as R


def test_kernel_regression_is_neural_tangents_t_infinity_limit():
    x_train, y_train, x_test, _ = R.data(R.Config(n_train=12, n_test=7))
    spec = MLP(width=32, depth=1, activation="relu")
    kernel_fn, k, kt = R.closed_form_kernels(spec, x_train, x_test)
    f0_train, f0_test = np.ones((12, 1)) * 0.3, np.ones((7, 1)) * -0.2
    ours = R.kernel_regression(k, kt, y_train, f0_train, f0_test)
    theirs = R.closed_form_at(kernel_fn, x_train, y_train, x_test, None, f0_train, f0_test)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-8)


def test_empirical_ntk_regression_approaches_the_closed_form_with_width():
    """Kernel regression with one network's NTK at init against the closed-form NTK's: the gap
    is the kernel's O(width^-1/2) fluctuation propagated through the solve, so from width 64 to
    1024 it should shrink by about 4; demanded: 2, averaged over 4 seeds (their spread is
    large, log sd about 0.5)."""
    cfg = R.Config(n_train=16, n_test=16)
    x_train, y_train, x_test, _ = R.data(cfg)
    spec = MLP(width=64, depth=1, activation="relu", W_std=cfg.W_std, b_std=cfg.b_std)
    _, k, kt = R.closed_form_kernels(spec, x_train, x_test)
    closed = R.kernel_regression(k, kt, y_train)
    gaps = {}
    for width in (64, 1024):
        g = []
        for s in range(4):
            r = R.one_network(spec.replace(width=width), jax.random.PRNGKey(s), x_train, y_train, x_test,
                              optax.sgd(0.0), 1)
            emp = R.kernel_regression(r["k_train"], r["k_test_train"], y_train)
            g.append(np.sqrt(np.mean((emp - closed) ** 2)))
        gaps[width] = np.exp(np.mean(np.log(g)))
    assert gaps[1024] < gaps[64] / 2, gaps


def test_trained_linearisation_is_discrete_gradient_descent_with_the_init_kernel():
    """A linearised network trained by GD moves exactly as kernel GD with its own empirical NTK:
    train residual (I - eta K / n)^t r0, test outputs f0 - K_te,tr K^-1 (I - (I - eta K / n)^t) r0.
    Both sides are exact; the tolerance is float32 rounding over 40 steps."""
    cfg = R.Config(n_train=12, n_test=8)
    x_train, y_train, x_test, _ = R.data(cfg)
    spec = MLP(width=64, depth=1, activation="relu", W_std=cfg.W_std, b_std=cfg.b_std)
    _, k, _ = R.closed_form_kernels(spec, x_train, x_test)
    n, t = 12, 40
    eta = 0.5 * n / np.linalg.eigvalsh(k)[-1]
    r = R.one_network(spec, jax.random.PRNGKey(3), x_train, y_train, x_test, optax.sgd(eta), t,
                      linearise=True)
    K, Kt = r["k_train"], r["k_test_train"]
    decay = np.linalg.matrix_power(np.eye(n) - eta * K / n, t)
    expected = r["f0_test"] - Kt @ np.linalg.solve(K, (np.eye(n) - decay) @ (r["f0_train"] - np.asarray(y_train)))
    np.testing.assert_allclose(r["f_lin_test"], expected, atol=2e-4 * np.abs(expected).max())
