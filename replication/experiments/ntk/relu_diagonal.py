"""The exact law of a bias-free ReLU network's NTK diagonal at finite depth and width.

The network: hidden layers ``l = 1..L`` of widths ``n_l``, input dimension
``n_0``, ``z_l = (sigma / sqrt(n_{l-1})) W_l a_{l-1}``, ``a_l = relu(z_l)``,
``a_0 = x``, output ``f = (sigma / sqrt(n_L)) w . a_L``, every weight
``N(0, 1)`` (NTK parameterization; ``sigma^2 = 2`` is He's scale), no biases.
Its NTK diagonal is ``Theta = |grad f(x)|^2``. Each layer's gradient is rank
one, so with ``A_l = |a_l|^2`` and ``B_l = |d f / d z_l|^2``

    Theta = sum_l (sigma^2 / n_{l-1}) A_{l-1} B_l + (sigma^2 / n_L) A_L.

Forward. Given ``a_{l-1}``, layer ``l``'s pre-activations are i.i.d.
``N(0, sigma^2 A_{l-1} / n_{l-1})`` whatever the direction of ``a_{l-1}``, so
``A_l = (sigma^2 / n_{l-1}) A_{l-1} X_l`` with ``k_l ~ Binomial(n_l, 1/2)``
active units and ``X_l | k_l ~ chi^2(k_l)``, independent across layers.

Backward. Split ``W_{l+1}`` into its action on ``a_l``'s direction ``u`` (which
the forward pass uses) and on the orthogonal complement (which it does not,
an independent Gaussian matrix). ``d f / d z_l = (sigma / sqrt(n_l)) D_l
W_{l+1}^T delta_{l+1}`` with ``D_l`` the active units; ``D_l u = u``. The
component along ``u`` is ``u . W_{l+1}^T delta_{l+1} = f sqrt(n_l) / (sigma
sqrt(A_l))``, since ``z . d f / d z = f`` for a positively homogeneous
network (Euler). The orthogonal part, restricted to the ``k_l`` active units
and orthogonal to ``u`` there, has squared norm ``B_{l+1} Y_l`` with ``Y_l |
k_l ~ chi^2(k_l - 1)``, independent of everything else. So

    B_l = f^2 / A_l + (sigma^2 / n_l) B_{l+1} Y_l,    B_{L+1} = 1,
    f^2 = (sigma^2 / n_L) A_L Z,    Z ~ chi^2(1).

``Theta`` is thus a polynomial in independent per-layer variables ``(k_l,
X_l, Y_l)`` and ``Z``: every term picks, layer by layer, ``X`` below the
layer whose gradient it is, ``Y`` on the way back down from the output, the
indicator ``1[k_j >= 1]`` at the layer ``j`` whose ``f^2 / A_j`` it carries,
and ``X`` above. Its moments are a sum over such paths (tuples of paths for
``E[Theta^r]``), which factorises over layers: a transfer-matrix recursion
with four states per path, exact given the per-layer moments
``E[X^a Y^b 1[k >= 1]^c]`` (chi-square moments averaged over the binomial).

What it gives. ``E[Theta]`` equals the infinite-width closed form at every
width (up to the ``2^-n`` chance of a dead layer). ``E[Theta^2] /
E[Theta]^2`` at fixed depth approaches ``1 + c_L depth / width`` with
``c_1 = 3`` rising to about 3.7 with depth; at fixed ``beta = depth /
width`` it grows as ``exp(5 beta)`` to leading exponential order, the
``(1 + 5 / n)`` per layer of ``E[A_l^2] / E[A_l]^2`` (Hanin and Nica 2019
prove ``exp(5 beta)`` up to constant factors). ``sample`` draws ``Theta``
from the same representation, ``O(depth)`` per draw.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from scipy import stats

# A path's state at a layer: below the gradient's layer (X), on the way down (Y), the layer
# whose f^2 / A_j the term carries (its indicator), above it (X).
_BELOW, _DOWN, _PIVOT, _ABOVE = range(4)
_VARIABLE = np.array([0, 1, 2, 0])  # X, Y, indicator
_ALLOWED = np.zeros((4, 4), bool)
for _s, _t in ((_BELOW, _BELOW), (_BELOW, _DOWN), (_BELOW, _PIVOT), (_DOWN, _DOWN), (_DOWN, _PIVOT),
               (_PIVOT, _ABOVE), (_ABOVE, _ABOVE)):
    _ALLOWED[_s, _t] = True
_STARTS_GRADIENT = np.zeros((4, 4), bool)  # the step into the gradient's layer: sigma^2 / n_{l-1}
_STARTS_GRADIENT[_BELOW, _DOWN] = _STARTS_GRADIENT[_BELOW, _PIVOT] = True
_CHI2_1_MOMENTS = (1.0, 1.0, 3.0, 15.0, 105.0)


def _check(widths: Sequence[int], input_dim: int, x_sq: float) -> list[int]:
    ws = [int(w) for w in widths]
    if not ws or min(ws) < 1 or input_dim < 1 or not x_sq > 0:
        raise ValueError(f"need at least one layer, positive widths, input_dim and |x|^2; got "
                         f"widths={list(widths)}, input_dim={input_dim}, x_sq={x_sq}")
    return ws


def _layer_moments(n: int, order: int) -> np.ndarray:
    """``E[prod_i V_i]`` over a layer of ``n`` units for each tuple of ``order`` states, shape ``(4,) * order``."""
    k = np.arange(n + 1, dtype=np.float64)
    pmf = stats.binom.pmf(np.arange(n + 1), n, 0.5)
    table = np.empty((4,) * order)
    for states in itertools.product(range(4), repeat=order):
        v = _VARIABLE[list(states)]
        w = np.ones(n + 1)
        for i in range(int(np.sum(v == 0))):      # chi^2(k) moments: k (k + 2) ...
            w = w * (k + 2 * i)
        for i in range(int(np.sum(v == 1))):      # chi^2(k - 1) moments, 0 at k = 0
            w = w * np.where(k >= 1, k - 1 + 2 * i, 0.0)
        if np.any(v == 2):
            w = w * (k >= 1)
        table[states] = pmf @ w
    return table


def moment(widths: Sequence[int], input_dim: int, x_sq: float, order: int, W_std: float = 2**0.5) -> float:
    """``E[Theta(x, x)^order]`` exactly (module docstring), ``order`` 1 to 4; ``x_sq = |x|^2``."""
    ws = _check(widths, input_dim, x_sq)
    if order not in (1, 2, 3, 4):
        raise ValueError(f"order must be 1, 2, 3 or 4, got {order!r}")
    s2, ns = W_std**2, [int(input_dim)] + ws
    v = np.zeros((4,) * order)
    v[(_BELOW,) * order] = x_sq**order   # a virtual layer 0 below every gradient
    tables: dict[int, np.ndarray] = {}
    for m in range(1, len(ns)):
        scale = np.array([s2 / ns[m - 1], s2 / ns[m], 1.0, s2 / ns[m - 1]])
        step = _ALLOWED * scale[None, :] * np.where(_STARTS_GRADIENT, s2 / ns[m - 1], 1.0)
        for axis in range(order):
            v = np.moveaxis(np.tensordot(v, step, axes=([axis], [0])), -1, axis)
        if ns[m] not in tables:
            tables[ns[m]] = _layer_moments(ns[m], order)
        v = v * tables[ns[m]]
    # At the output: the readout's own gradient (below every hidden gradient), 1 (down to the
    # output), or f^2's sigma^2 / n_L and one factor Z.
    top = np.array([s2 / ns[-1], 1.0, s2 / ns[-1], s2 / ns[-1]])
    carries_z = np.array([0, 0, 1, 1])
    total = 0.0
    for states in itertools.product(range(4), repeat=order):
        s = list(states)
        total += v[states] * np.prod(top[s]) * _CHI2_1_MOMENTS[int(carries_z[s].sum())]
    return float(total)


def sample(widths: Sequence[int], input_dim: int, x_sq: float, rng: np.random.Generator, size: int,
           W_std: float = 2**0.5) -> np.ndarray:
    """``size`` independent draws of ``Theta(x, x)`` from the representation in the module docstring."""
    ws = _check(widths, input_dim, x_sq)
    s2, ns = W_std**2, [int(input_dim)] + ws
    k = [rng.binomial(n, 0.5, size) for n in ws]
    x = [np.where(kk > 0, rng.chisquare(np.maximum(kk, 1)), 0.0) for kk in k]
    y = [np.where(kk > 1, rng.chisquare(np.maximum(kk - 1, 1)), 0.0) for kk in k]
    z = rng.chisquare(1, size)
    depth = len(ws)
    # ratio[l] = A_L / A_l: f^2 / A_l = (sigma^2 / n_L) ratio[l] Z, defined when layer l is alive.
    a = [np.full(size, float(x_sq))]
    for m in range(1, depth + 1):
        a.append(a[-1] * s2 / ns[m - 1] * x[m - 1])
    ratio = [np.ones(size)] * (depth + 1)
    for m in range(depth - 1, -1, -1):
        ratio[m] = ratio[m + 1] * s2 / ns[m] * x[m]      # A_{m+1} / A_m, times A_L / A_{m+1}
    b = np.ones(size)                                    # B_{L+1}
    theta = s2 / ns[depth] * a[depth]
    for l in range(depth, 0, -1):
        b = (k[l - 1] > 0) * s2 / ns[depth] * ratio[l] * z + s2 / ns[l] * b * y[l - 1]
        theta = theta + s2 / ns[l - 1] * a[l - 1] * b
    return theta
