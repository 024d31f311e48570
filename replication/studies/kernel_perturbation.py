"""The O(1/N) bias of a deep network's empirical NNGP, predicted by perturbation theory.

Given layer ``l``'s empirical pre-activation kernel ``K^_l``, the ``N`` units
of the next layer are i.i.d., so the next kernel ``K^_{l+1} = (W^2 / N)
sum_i phi(h_i) phi(h_i)^T + b^2`` has conditional mean ``F(K^_l)`` (the
closed form's layer map) and conditional covariance ``W^4 C(K^_l) / N`` with
``C(K) = Cov_{h ~ N(0, K)}(phi(h_a) phi(h_b), phi(h_c) phi(h_d))``. Write
``K^_l = K_l + eps_l`` with ``E eps_l = delta_l / N`` and ``Cov eps_l =
Sigma_l / N``. Expanding ``F`` to second order,

    delta_{l+1} = J_l delta_l + (1/2) H_l[Sigma_l],
    Sigma_{l+1} = J_l Sigma_l J_l^T + W^4 C(K_l),

with ``J_l`` and ``H_l`` the first and second derivatives of ``F`` at the
limit ``K_l``, starting from ``delta_1 = 0``, ``Sigma_1 = 0`` (the first
layer's kernel is fixed by the inputs). At depth 1 the bias is zero; deeper,
``E[K^] = K + delta / N + O(N^-2)``. ``F``'s entry ``(a, b)`` depends only on
``K_aa``, ``K_ab``, ``K_bb``, so the recursion closes on each pair of inputs:
it runs on 2 x 2 kernels, the derivatives by central differences of the
closed-form maps (ReLU's arc-cosine, erf's arcsine), ``C`` by Monte Carlo
over draws of the bivariate Gaussian (common to all pairs; its error is
estimated from independent batches).
"""
from __future__ import annotations

import numpy as np
from scipy.special import erf

ACTIVATIONS = ("relu", "erf")


def _maps(activation: str, w2: float, b2: float):
    """The layer map on a pair ``(K_aa, K_ab, K_bb)`` -> ``F_ab``, on one input ``K_aa`` -> ``F_aa``, and ``phi``."""
    if activation == "relu":
        def pair(kaa, kab, kbb):
            n = np.sqrt(kaa * kbb)
            rho = np.clip(kab / n, -1.0, 1.0)
            theta = np.arccos(rho)
            return w2 * n / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * rho) + b2

        def single(k):
            return w2 * k / 2 + b2

        return pair, single, lambda h: np.maximum(h, 0.0)
    if activation == "erf":
        def pair(kaa, kab, kbb):
            return w2 * 2 / np.pi * np.arcsin(2 * kab / np.sqrt((1 + 2 * kaa) * (1 + 2 * kbb))) + b2

        def single(k):
            return w2 * 2 / np.pi * np.arcsin(2 * k / (1 + 2 * k)) + b2

        return pair, single, erf
    raise ValueError(f"no perturbative bias for activation {activation!r}; allowed: {', '.join(ACTIVATIONS)}")


def _map_derivatives(pair, single, k: np.ndarray, rel_step: float = 1e-4):
    """At ``k`` ``(P, 3)`` = (K_aa, K_ab, K_bb): the map ``(P, 3)``, its Jacobian ``(P, 3, 3)`` and
    Hessians ``(P, 3, 3, 3)`` (output, input, input), by central differences."""
    def full(v):
        return np.stack([single(v[..., 0]), pair(v[..., 0], v[..., 1], v[..., 2]), single(v[..., 2])], axis=-1)

    step = rel_step * np.maximum(np.abs(k), 1e-3)
    eye = np.eye(3)
    jac = np.empty(k.shape + (3,))
    hess = np.empty(k.shape + (3, 3))
    for i in range(3):
        ei = step[:, i, None] * eye[i]
        jac[:, :, i] = (full(k + ei) - full(k - ei)) / (2 * step[:, i, None])
        for j in range(3):
            ej = step[:, j, None] * eye[j]
            hess[:, :, i, j] = (full(k + ei + ej) - full(k + ei - ej) - full(k - ei + ej) + full(k - ei - ej)) \
                / (4 * step[:, i, None] * step[:, j, None])
    return full(k), jac, hess


def _fresh_covariance(phi, k: np.ndarray, z: np.ndarray, w2: float, chunk: int = 16) -> np.ndarray:
    """``W^4 Cov(phi_a^2, phi_a phi_b, phi_b^2)`` under ``N(0, K)`` for each pair, ``(P, 3, 3)``,
    from the standard normal draws ``z`` ``(M, 2)``."""
    out = np.empty((k.shape[0], 3, 3))
    for s in range(0, k.shape[0], chunk):
        kaa, kab, kbb = (k[s:s + chunk, i, None] for i in range(3))
        sa = np.sqrt(kaa)
        u = sa * z[None, :, 0]
        v = kab / sa * z[None, :, 0] + np.sqrt(np.clip(kbb - kab**2 / kaa, 0.0, None)) * z[None, :, 1]
        pu, pv = phi(u), phi(v)
        prods = np.stack([pu * pu, pu * pv, pv * pv], axis=1)           # (chunk, 3, M)
        centred = prods - prods.mean(axis=2, keepdims=True)
        out[s:s + chunk] = w2**2 * np.einsum("pim,pjm->pij", centred, centred) / z.shape[0]
    return out


def nngp_bias(x: np.ndarray, depth: int, activation: str, W_std: float, b_std: float,
              rng: np.random.Generator, draws: int = 2**18, batches: int = 4) -> dict:
    """``delta`` in ``E[K^] = K + delta / N + O(N^-2)`` for the NNGP of ``depth`` hidden layers
    of width ``N`` on inputs ``x`` ``(n, d)`` (NTK parameterization: first layer ``W^2 x x^T / d +
    b^2``). Returns the limit ``K``, ``delta`` (mean over ``batches`` independent Monte Carlo
    batches of ``draws / batches``), each batch's ``delta`` (``batches``), and the fluctuation's
    second moments to leading order, ``var`` = ``N Var(K^_ab)`` and ``cov`` = ``N Cov(K^_aa,
    K^_bb)`` (``n x n``, means over the batches, whose own values are ``var_batches`` and
    ``cov_batches``; on the diagonal both are ``N Var(K^_aa)``)."""
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    w2, b2 = W_std**2, b_std**2
    pair, single, phi = _maps(activation, w2, b2)
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    a, b = np.triu_indices(n, k=1) if n > 1 else (np.array([0]), np.array([0]))
    k1 = w2 * x @ x.T / x.shape[1] + b2
    per_batch, var, cov = [], [], []
    for _ in range(batches):
        z = rng.standard_normal((draws // batches, 2))
        k = np.stack([k1[a, a], k1[a, b], k1[b, b]], axis=1)
        delta, sigma = np.zeros_like(k), np.zeros(k.shape + (3,))
        for _ in range(depth):
            nxt, jac, hess = _map_derivatives(pair, single, k)
            delta = np.einsum("pij,pj->pi", jac, delta) + 0.5 * np.einsum("pijk,pjk->pi", hess, sigma)
            sigma = np.einsum("pij,pjk,plk->pil", jac, sigma, jac) + _fresh_covariance(phi, k, z, w2)
            k = nxt
        per_batch.append(_symmetric(n, a, b, delta[:, 0], delta[:, 1], delta[:, 2]))
        var.append(_symmetric(n, a, b, sigma[:, 0, 0], sigma[:, 1, 1], sigma[:, 2, 2]))
        cov.append(_symmetric(n, a, b, sigma[:, 0, 0], sigma[:, 0, 2], sigma[:, 2, 2]))
    return {"limit": _symmetric(n, a, b, k[:, 0], k[:, 1], k[:, 2]), "delta": np.mean(per_batch, axis=0),
            "batches": np.array(per_batch), "var": np.mean(var, axis=0), "cov": np.mean(cov, axis=0),
            "var_batches": np.array(var), "cov_batches": np.array(cov)}


def _symmetric(n: int, a, b, at_a, off, at_b) -> np.ndarray:
    """The ``n x n`` symmetric matrix with ``(a, b)`` and ``(b, a)`` = ``off``, ``(a, a)`` = ``at_a``,
    ``(b, b)`` = ``at_b``, from per-pair values."""
    m = np.empty((n, n))
    m[a, b] = m[b, a] = off
    m[a, a], m[b, b] = at_a, at_b
    return m


def along(delta: np.ndarray, limit: np.ndarray) -> float:
    """``<delta, K> / |K|_F^2``: the bias coefficient along the limit (kernel_bias's statistic)."""
    return float(np.sum(delta * limit) / np.sum(limit * limit))
