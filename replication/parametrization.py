"""Parameterizations: how each layer's parameters are initialised, scaled and trained.

Every affine layer (dense or convolutional) stores a weight ``w`` and a bias
``beta`` and computes, for an input ``x`` with ``fan_in`` entries per output
unit (``fan_in = in_channels * prod(kernel_size)`` for a convolution),

    z = m_W * (x @ w) + m_b * beta,    w ~ N(0, s_W^2),   beta ~ N(0, s_b^2),

and an optimizer with base learning rate ``eta`` updates ``w`` with ``c_W eta``
and ``beta`` with ``c_b eta``. A parameterization fixes the forward
multipliers ``m``, the init standard deviations ``s`` and the learning-rate
factors ``c``: the "abc" form of Yang and Hu 2021 (multiplier ``a``, init
``b``, learning rate ``c``).

``ntk`` and ``standard`` follow neural-tangents' ``stax.Dense`` /
``stax.Conv`` exactly, so that a Flax network and its stax triple are the same
function of the same parameters; their learning-rate factors are all 1:

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

``mup``, the maximal update parametrization (Yang and Hu 2021, Tensor Programs
IV; Yang et al. 2022, Tensor Programs V), follows **Tensor Programs V, Table 8**
(the formulation the ``mup`` package implements), written relative to a base
width so that at ``width == base_width`` it is ``standard`` exactly. With the
width ratio ``r = width / base_width`` (for every layer, the ratio of its
fan-in or fan-out that grows with width to its value at the base width),
each layer's init variance ``s_W^2``, weight multiplier ``m_W`` and
learning-rate factor ``c_W`` for SGD and for Adam are the rows of
``MUP_TABLE`` (below; the ``mup`` experiment's report prints it).

In it ``base_fan_in = fan_in / r`` is the readout's fan-in at the base width: the
readout's init variance is held constant in width and its multiplier is
``1 / r`` (Table 8), where Table 3 of the same paper instead puts a
``1 / fan_in^2`` init variance and ``1 / fan_in`` SGD learning rate on the
readout with multiplier 1. The two are the same training dynamics (the abc
symmetry ``m -> m theta``, ``s -> s / theta``, SGD ``c -> c / theta^2``, Adam
``c -> c / theta`` with ``theta = 1 / r`` maps one readout row onto the
other), but a mix of the two is not. Biases have fan-in 1 and fan-out
``width`` (hidden) or ``out_dim`` (readout), so they fall in Table 8's "input
weights & all biases" column with ``c_SGD = fan-out ratio``. The derivation
is from the formulas, for Flax's ``(fan_in, fan_out)`` kernels; nothing here
depends on how a kernel is laid out. Under ``mup`` the readout's output at
init is ``O(r^(-1/2))``: the network's NNGP is ``standard``'s divided by ``r``,
and ``zero_readout`` (available under every parameterization) makes it 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

PARAMETERIZATIONS = ("ntk", "standard", "mup")
CLOSED_FORM_PARAMETERIZATIONS = ("ntk", "standard")   # those neural-tangents has a kernel for
ROLES = ("input", "hidden", "readout")   # an affine layer's place: which of its fans grow with width
OPTIMIZERS = ("sgd", "adam")

# Tensor Programs V, Table 8, relative to a base width (the module docstring):
# per layer, s_W^2, m_W and c_W for SGD and Adam, with r = width / base_width.
# ``affine_scaling`` and ``learning_rate_factors`` implement it; every bias's m_b is 1.
MUP_TABLE = (
    ("layer", "s_W^2", "m_W", "c_W SGD", "c_W Adam"),
    (
        ("input weights", "W_std^2 / fan_in", "1", "r", "1"),
        ("hidden weights", "W_std^2 / fan_in", "1", "1", "1 / r"),
        ("readout weights", "W_std^2 / base_fan_in", "1 / r", "r", "1"),
        ("hidden biases", "b_std^2", "1", "r", "1"),
        ("readout bias", "b_std^2", "1", "1", "1"),
    ),
)


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


def affine_scaling(parameterization: str, W_std: float, b_std: float | None, fan_in: int,
                   role: str = "hidden", width_ratio: float = 1.0) -> AffineScaling:
    """Scaling of an affine layer with ``fan_in`` inputs per unit (the table above, ``MUP_TABLE``).

    ``role`` and ``width_ratio`` (``width / base_width``) matter under
    ``mup`` only. ``b_std=None`` means the layer has no bias; its bias entries
    are then zero.
    """
    check_parameterization(parameterization)
    _check_role(role)
    b = 0.0 if b_std is None else float(b_std)
    if parameterization == "ntk":
        return AffineScaling(W_std / math.sqrt(fan_in), 1.0, b, 1.0)
    if parameterization == "mup" and role == "readout":
        base_fan_in = fan_in / width_ratio
        return AffineScaling(1.0 / width_ratio, W_std / math.sqrt(base_fan_in), 1.0, b)
    return AffineScaling(1.0, W_std / math.sqrt(fan_in), 1.0, b)


def learning_rate_factors(parameterization: str, role: str, width_ratio: float = 1.0,
                          optimizer: str = "sgd") -> tuple[float, float]:
    """``(c_W, c_b)``: the factors on the base learning rate for a layer's weight and bias.

    1 under ``ntk`` and ``standard``; Table 8 of Tensor Programs V under
    ``mup`` (``MUP_TABLE``), for ``optimizer`` ``"sgd"`` (with or without
    momentum) or ``"adam"``.
    """
    check_parameterization(parameterization)
    _check_role(role)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; allowed: {', '.join(OPTIMIZERS)}")
    if parameterization != "mup":
        return 1.0, 1.0
    r = float(width_ratio)
    bias = r if (optimizer == "sgd" and role != "readout") else 1.0
    if optimizer == "sgd":
        return {"input": r, "hidden": 1.0, "readout": r}[role], bias
    return {"input": 1.0, "hidden": 1.0 / r, "readout": 1.0}[role], bias


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown layer role {role!r}; allowed: {', '.join(ROLES)}")
