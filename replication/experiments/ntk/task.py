"""The regression task that the training studies share: the data, and how its networks are drawn.

Inputs: ``n_train`` training and ``n_test`` test points on the sphere of
radius ``sqrt(input_dim)``, from independent streams (``train_inputs``,
``test_inputs``). Target: ``y = sin(x_1) + cos(x_2) / 2``. Networks: MLPs in
NTK parameterization with weight scale ``W_std`` per activation and bias scale
``b_std``.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from replication.arch import MLP
from replication.data import sphere_inputs
from replication.sweep import Streams


@dataclass(frozen=True)
class Task:
    n_train: int = 16
    n_test: int = 32
    input_dim: int = 8
    # (activation, W_std) pairs: He's sqrt(2) for ReLU.
    W_std: tuple[tuple[str, float], ...] = (("relu", 2**0.5), ("erf", 1.5))
    b_std: float = 0.1

    def network(self, width: int, depth: int, activation: str) -> MLP:
        """The spec of an MLP of this task: ``depth`` hidden layers of ``width`` units, one output."""
        return MLP(width, depth, activation, W_std=dict(self.W_std)[activation], b_std=self.b_std)


def target(x: jax.Array) -> jax.Array:
    """``y = sin(x_1) + cos(x_2) / 2``, shape ``(n, 1)``."""
    return (jnp.sin(x[:, :1]) + 0.5 * jnp.cos(x[:, 1:2])).astype(jnp.float32)


def training_data(task: Task, streams: Streams) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(x_train (n_train, input_dim), y_train (n_train, 1), x_test (n_test, input_dim))``."""
    x_train = sphere_inputs(streams.key("train_inputs"), task.n_train, task.input_dim)
    x_test = sphere_inputs(streams.key("test_inputs"), task.n_test, task.input_dim)
    return x_train, target(x_train), x_test
