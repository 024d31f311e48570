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
