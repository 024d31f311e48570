"""The study's data sets: generated here or shipped inside a package, never downloaded."""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


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


class Digits(NamedTuple):
    """The 8x8 digits split once into training and test images, ready for regression.

    ``x_*``: ``(n, 8, 8, 1)`` float32 images, standardised with one mean and one
    standard deviation taken over every pixel of the training images;
    ``y_*``: ``(n, 10)`` centred one-hot targets (``1 - 1/10`` for the class,
    ``-1/10`` elsewhere; Lee et al. 2018); ``labels_*``: ``(n,)`` classes;
    ``index_*``: positions in ``sklearn.datasets.load_digits()``, so that the
    split can be checked and reproduced; ``pixel_mean``, ``pixel_std``: the
    training statistics used.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    labels_train: np.ndarray
    index_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labels_test: np.ndarray
    index_test: np.ndarray
    pixel_mean: float
    pixel_std: float

    @staticmethod
    def flat(x: np.ndarray) -> np.ndarray:
        """Images ``(n, 8, 8, 1)`` as vectors ``(n, 64)``, for fully connected networks."""
        return x.reshape(x.shape[0], -1)


DIGITS_CLASSES = 10


def centred_one_hot(labels, n_classes: int = DIGITS_CLASSES) -> np.ndarray:
    """``one_hot(labels) - 1 / n_classes``, shape ``(n, n_classes)``: each row sums to zero."""
    return np.eye(n_classes, dtype=np.float32)[np.asarray(labels)] - np.float32(1 / n_classes)


def digits(test_size: int = 450, seed: int = 0, n_train: int | None = None,
           n_test: int | None = None) -> Digits:
    """scikit-learn's 8x8 handwritten digits (1,797 images, shipped with the package).

    The split is stratified by class and fixed by ``seed``: ``test_size``
    images are held out (``sklearn.model_selection.train_test_split``), the
    rest are the training set. ``n_train`` / ``n_test`` take stratified
    subsets of those two sets (same seed), for a smaller run; the held-out
    images never enter the training set. Standardisation uses one scalar mean
    and standard deviation over all pixels of the training images actually
    used: per-pixel statistics would divide the border pixels, nearly always
    zero, by a near-zero deviation and blow up any test image that inks them.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    labels = bunch.target.astype(np.int64)
    index = np.arange(labels.shape[0])
    index_train, index_test = train_test_split(index, test_size=test_size, stratify=labels,
                                               random_state=seed)

    def subset(idx, n):
        if n is None or n == idx.shape[0]:
            return np.sort(idx)
        if not 0 < n < idx.shape[0]:
            raise ValueError(f"a subset of {n} images is not possible from {idx.shape[0]}")
        kept, _ = train_test_split(idx, train_size=n, stratify=labels[idx], random_state=seed)
        return np.sort(kept)

    index_train, index_test = subset(index_train, n_train), subset(index_test, n_test)
    images = bunch.images.astype(np.float64)[..., None]
    mean = float(images[index_train].mean())
    std = float(images[index_train].std())

    def prepare(idx):
        return ((images[idx] - mean) / std).astype(np.float32), centred_one_hot(labels[idx]), labels[idx], idx

    return Digits(*prepare(index_train), *prepare(index_test), mean, std)
