"""Parameterizations: how each layer's parameters are initialised and scaled.

Every affine layer (dense or convolutional) stores a weight ``w`` and a bias
``beta`` and computes, for an input ``x`` with ``fan_in`` entries per output
unit (``fan_in = in_channels * prod(kernel_size)`` for a convolution),

    z = m_W * (x @ w) + m_b * beta,    w ~ N(0, s_W^2),   beta ~ N(0, s_b^2).

A parameterization fixes the forward multipliers ``m`` and the init standard
deviations ``s`` (the "abc" form of Yang and Hu 2021 without the learning rate
part, which belongs to the optimizer). Both below follow neural-tangents'
``stax.Dense`` / ``stax.Conv`` exactly, so that a Flax network and its stax
triple are the same function of the same parameters:

=============  =========================  ===========  ===========  ======
name           m_W                        s_W          m_b          s_b
=============  =========================  ===========  ===========  ======
``ntk``        W_std / sqrt(fan_in)       1            b_std        1
``standard``   1                          W_std /      1            b_std
                                          sqrt(fan_in)
=============  =========================  ===========  ===========  ======

Both give the same function distribution at init, hence the same NNGP. They
differ in the gradient: the NTK is the Gram matrix of gradients with respect
to the stored parameters, so under ``standard`` a weight of fan-in N
contributes N times its NTK-parameterization share. neural-tangents' closed
form for ``standard`` therefore depends on the widths (it grows linearly with
the last hidden width), and a comparison builds the stax side at the Flax
network's own width (``replication.arch`` always does).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

PARAMETERIZATIONS = ("ntk", "standard")


@dataclass(frozen=True)
class AffineScaling:
    """Forward multipliers and init standard deviations of one affine layer."""

    weight_multiplier: float
    weight_init_std: float
    bias_multiplier: float
    bias_init_std: float

    @property
    def weight_variance(self) -> float:
        """Variance of an effective weight ``m_W * w`` at init."""
        return (self.weight_multiplier * self.weight_init_std) ** 2

    @property
    def bias_variance(self) -> float:
        """Variance of an effective bias ``m_b * beta`` at init."""
        return (self.bias_multiplier * self.bias_init_std) ** 2


def check_parameterization(name: str) -> str:
    if name not in PARAMETERIZATIONS:
        raise ValueError(
            f"unknown parameterization {name!r}; allowed: {', '.join(PARAMETERIZATIONS)}"
        )
    return name


def affine_scaling(
    parameterization: str, W_std: float, b_std: float | None, fan_in: int
) -> AffineScaling:
    """Scaling of an affine layer with ``fan_in`` inputs per unit (table above).

    ``b_std=None`` means the layer has no bias; its bias entries are then zero.
    """
    check_parameterization(parameterization)
    b = 0.0 if b_std is None else float(b_std)
    if parameterization == "ntk":
        return AffineScaling(W_std / math.sqrt(fan_in), 1.0, b, 1.0)
    return AffineScaling(1.0, W_std / math.sqrt(fan_in), 1.0, b)
