"""Where the studies at initialisation look: the rate sweep's inputs and weight scales.

The Monte Carlo and kurtosis studies evaluate their networks on the inputs of
the kernel-rate sweep (``replication.studies.kernel_rate``), drawn from the
stream ``inputs``, with the same weight and bias scales in every layer.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax

from replication.studies import kernel_bias, kernel_rate
from replication.sweep import Streams


@dataclass(frozen=True)
class Sphere:
    n_inputs: int = 16      # points on the sphere of radius sqrt(input_dim)
    input_dim: int = 8
    W_std: float = 2**0.5   # weight scale of every layer
    b_std: float = 0.1      # bias scale of every layer


def inputs(sphere: Sphere, streams: Streams) -> jax.Array:
    """The rate sweep's inputs ``(n_inputs, input_dim)``: ``kernel_rate.inputs`` of the same settings."""
    return kernel_rate.inputs(sphere, streams)


def rate_sweep(sphere: Sphere, **settings) -> kernel_rate.Config:
    """The NNGP's kernel-rate sweep on ``sphere``. The NNGP is the same under "ntk" and
    "standard" parameterization (the same effective weights), so one suffices."""
    return kernel_rate.Config(kind="nngp", parameterizations=("ntk",), n_inputs=sphere.n_inputs,
                              input_dim=sphere.input_dim, W_std=sphere.W_std, b_std=sphere.b_std,
                              **settings)


def bias_sweep(sphere: Sphere, **settings) -> kernel_bias.Config:
    """The NNGP's bias study on ``sphere``'s inputs and weight scales."""
    return kernel_bias.Config(kind="nngp", n_inputs=sphere.n_inputs, input_dim=sphere.input_dim,
                              W_std=sphere.W_std, b_std=sphere.b_std, **settings)
