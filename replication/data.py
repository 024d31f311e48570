"""The study's data sets: generated here or shipped inside a package, never downloaded."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def sphere_inputs(key: jax.Array, n: int, dim: int) -> jax.Array:
    """``n`` points uniform on the sphere of radius ``sqrt(dim)`` in ``R^dim``, shape ``(n, dim)``.

    The radius makes ``|x|^2 / dim = 1``, so the first layer's pre-activation
    variance is ``W_std^2 + b_std^2`` whatever the dimension.
    """
    x = jax.random.normal(key, (n, dim))
    return x / jnp.linalg.norm(x, axis=1, keepdims=True) * dim**0.5


def noisy_sine_1d(key: jax.Array, n_train: int, n_test: int, noise_std: float):
    """1-D regression: ``y = sin(x) + noise_std * eps`` at ``n_train`` points uniform in [-pi, pi].

    Returns ``x_train (n_train, 1)``, ``y_train (n_train, 1)`` and ``x_test``, a
    grid of ``n_test`` points on [-pi, pi]. Inputs and noise use independent keys.
    """
    k_x, k_noise = jax.random.split(key)
    x_train = jnp.sort(jax.random.uniform(k_x, (n_train, 1), minval=-jnp.pi, maxval=jnp.pi), axis=0)
    y_train = jnp.sin(x_train) + noise_std * jax.random.normal(k_noise, (n_train, 1))
    x_test = jnp.linspace(-jnp.pi, jnp.pi, n_test)[:, None]
    return x_train, y_train, x_test


def sin_cos_2d(key_train: jax.Array, key_test: jax.Array, n_train: int = 50, n_test: int = 100):
    """Inputs uniform in ``[-2, 2]^2``, ``y = sin(x_1) + cos(x_2)``; shapes ``(n, 2)`` and ``(n, 1)``.

    Training and test inputs are drawn from the two keys given; pass
    independent keys (drawing both from one key is what the ``regression``
    experiment's errata section measures).
    """
    def draw(key, n):
        x = jax.random.uniform(key, (n, 2), minval=-2.0, maxval=2.0)
        return x, sin_cos_target(x)

    return (*draw(key_train, n_train), *draw(key_test, n_test))


def sin_cos_target(x) -> jax.Array:
    """``y = sin(x_1) + cos(x_2)`` for inputs ``(n, 2)``, shape ``(n, 1)``."""
    x = jnp.asarray(x)
    return jnp.sin(x[:, :1]) + jnp.cos(x[:, 1:2])


def single_index(key_direction: jax.Array, key_train: jax.Array, key_test: jax.Array,
                 n_train: int, n_test: int, dim: int):
    """A target that depends on one direction of high-dimensional inputs: ``y = g(<u, x>)``.

    ``x`` uniform on the sphere of radius ``sqrt(dim)`` (``sphere_inputs``),
    ``u`` a uniformly random unit vector, so ``z = <u, x>`` has mean 0 and
    variance 1 (nearly standard normal for large ``dim``), and
    ``g(z) = (relu(z) - 1 / sqrt(2 pi)) / sqrt(1/2 - 1 / (2 pi))``: one ReLU
    unit, centred and scaled to mean 0 and variance 1 for ``z ~ N(0, 1)``.
    The direction and the two input sets come from the three keys given.
    Returns ``x_train (n_train, dim)``, ``y_train (n_train, 1)``,
    ``x_test``, ``y_test`` and ``u (dim,)``.
    """
    u = jax.random.normal(key_direction, (dim,))
    u = u / jnp.linalg.norm(u)
    x_train, x_test = sphere_inputs(key_train, n_train, dim), sphere_inputs(key_test, n_test, dim)
    return x_train, single_index_target(x_train, u), x_test, single_index_target(x_test, u), u


def single_index_target(x, u) -> jax.Array:
    """``g(<u, x>)`` of ``single_index``, shape ``(n, 1)``."""
    z = jnp.asarray(x) @ u
    g = (jax.nn.relu(z) - (2 * jnp.pi) ** -0.5) / jnp.sqrt(0.5 - 0.5 / jnp.pi)
    return g[:, None]
