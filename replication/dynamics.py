"""Closed-form gradient descent on the squared loss with a fixed kernel: the infinite-width dynamics.

With the loss of ``replication.train``, ``mse(f, y) = 1/2 mean((f - y)^2)`` over
the ``n k`` entries of ``n`` training points with ``k`` outputs, a network
whose tangent kernel ``Theta`` stays fixed moves its outputs, one gradient
step of size ``eta`` at a time, as

    f_train(t + 1) = f_train(t) - (eta / (n k)) Theta_train,train (f_train(t) - y)
    f_test(t + 1)  = f_test(t)  - (eta / (n k)) Theta_test,train  (f_train(t) - y).

In the eigenbasis ``Theta_train,train = V diag(lambda) V^T`` the training
residual's component along mode ``i`` is multiplied by ``1 - eta lambda_i / (n k)``
per step, so

    f_train(t) = y - V D(t) V^T (y - f_train(0))
    f_test(t)  = f_test(0) + Theta_test,train V diag((1 - D_i(t)) / lambda_i) V^T (y - f_train(0))

with ``D_i(t) = (1 - eta lambda_i / (n k))^t`` for discrete gradient descent
and ``exp(-eta lambda_i t / (n k))`` for gradient flow (``t`` counted in steps).
``t = None`` is ``t -> infinity``, kernel regression
``f_test(0) + Theta_test,train Theta_train,train^-1 (y - f_train(0))``, the same
for both, and for any optimizer that stays in the span of the gradients.

**The step size**, everywhere in the study, is a fraction of the stability
limit: ``eta = fraction * 2 n k / lambda_max`` (``stable_step``). Discrete
gradient descent on this quadratic converges for ``fraction < 1``; at
``fraction = 1/2`` the top mode is removed in one step.

``gradient_descent_mse(..., discrete=False)`` is gradient flow, neural-tangents'
``nt.predict.gradient_descent_mse`` (a test checks the two agree); ``discrete=True``
is the step-by-step recursion above, which neural-tangents does not offer, so
that a network trained by the same discrete steps is compared with its own
limit, not with the flow. Both decompose the training kernel once, with numpy,
and a call costs matrix products: a sweep calls them once per network. (Called
through neural-tangents, each call took about a second on the digits' 1347
training images.) ``diag_reg`` and ``trace_axes=()`` are neural-tangents'.
Everything is float64 and returns numpy arrays.
"""
from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
import numpy as np
from replication.compat import enable_x64


def stable_step(k_train, fraction: float, outputs: int = 1) -> float:
    """``fraction * 2 n k / lambda_max(k_train)``: ``fraction`` of the largest stable step.

    ``k_train`` is ``(n, n)``, one kernel shared by the ``k = outputs`` outputs.
    """
    k_train = np.asarray(k_train)
    return float(fraction * 2 * k_train.shape[0] * outputs / np.linalg.eigvalsh(k_train)[-1])


def gradient_descent_mse(k_train, y_train, learning_rate: float, *, discrete: bool = False,
                         diag_reg: float = 0.0, trace_axes=(-1,)) -> "Predictor":
    """The closed-form outputs of gradient descent on ``mse`` with the fixed kernel ``k_train``.

    Shaped like ``nt.predict.gradient_descent_mse``: returns
    ``predict(t=None, f0_train=0, f0_test=None, k_test_train=None)``, the
    training outputs at step ``t`` (``None``: ``t -> infinity``), or
    ``(train, test)`` outputs when ``k_test_train`` ``(m, n)`` is given;
    started from the initial outputs ``f0`` (zero by default: the mean
    predictor). ``y_train`` is ``(n, k)``. The training kernel is decomposed
    once, so the networks of a sweep, each from its own initial outputs,
    share it. ``diag_reg`` (relative to the mean of the kernel's diagonal)
    and ``trace_axes=()`` (a finite network's full ``(n, n, k, k)`` kernel)
    are passed to neural-tangents and exist for the flow only.
    """
    if not diag_reg and tuple(trace_axes) == (-1,):
        return _Eigen(k_train, y_train, learning_rate, flow=not discrete)
    if discrete:
        raise ValueError("discrete=True takes a per-output (n, n) kernel without diag_reg")
    return _Flow(k_train, y_train, learning_rate, diag_reg, tuple(trace_axes))


class Predictor:
    """``predict(t, f0_train, f0_test, k_test_train)``; ``loss(t, f0_train)``; ``steps_to(target)``."""

    y: np.ndarray

    def __call__(self, t=None, f0_train=0.0, f0_test=None, k_test_train=None):
        raise NotImplementedError

    def loss(self, t, f0_train=0.0) -> float:
        """``mse`` of the training outputs at step ``t``."""
        return float(0.5 * np.mean((self(t, f0_train) - self.y) ** 2))

    def steps_to(self, target: float, f0_train=0.0, limit: int = 10**7) -> int:
        """The first step at which the training loss is ``<= target`` (the loss falls monotonically)."""
        lo, hi = 0, 1
        while self.loss(hi, f0_train) > target:
            lo, hi = hi, 2 * hi
            if hi > limit:
                raise ValueError(f"the closed form does not reach loss {target} within {limit} steps")
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if self.loss(mid, f0_train) <= target else (mid, hi)
        return hi


class _Eigen(Predictor):
    """The discrete recursion or the flow, by numpy's eigendecomposition of the training kernel (float64)."""

    def __init__(self, k_train, y_train, learning_rate: float, flow: bool = False):
        k = np.asarray(k_train, np.float64)
        self.y = np.asarray(y_train, np.float64)
        if self.y.ndim != 2:
            raise ValueError(f"y_train must be (n, k); got shape {self.y.shape}")
        self.k = k
        self.lam, self.V = np.linalg.eigh(k)
        self.rate = float(learning_rate) * self.lam / self.y.size
        self.flow = flow

    def decay(self, t) -> np.ndarray:
        """Per mode, the factor ``D_i(t)`` by which the training residual has shrunk at step ``t``."""
        if t is None:
            return np.zeros_like(self.lam)
        t = np.asarray(t, np.float64)
        return np.exp(-self.rate * t) if self.flow else (1 - self.rate) ** t

    def _residual0(self, f0_train) -> np.ndarray:
        """The initial training residual ``y - f0``, by mode: ``V^T (y - f0)``."""
        return self.V.T @ (self.y - np.asarray(f0_train, np.float64))

    def loss(self, t, f0_train=0.0) -> float:
        # V is orthogonal: the residual's norm is its norm by mode.
        return float(0.5 * np.mean((self.decay(t)[:, None] * self._residual0(f0_train)) ** 2))

    def __call__(self, t=None, f0_train=0.0, f0_test=None, k_test_train=None):
        if t is None:
            return self._regression(f0_train, f0_test, k_test_train)
        r0 = self._residual0(f0_train)
        d = self.decay(t)[:, None]
        train = self.y - self.V @ (d * r0)
        if k_test_train is None:
            return train
        kt = np.asarray(k_test_train, np.float64)
        f0 = 0.0 if f0_test is None else np.asarray(f0_test, np.float64)
        return train, f0 + kt @ (self.V @ ((1 - d) / self.lam[:, None] * r0))


    def _regression(self, f0_train, f0_test, k_test_train):
        """``t -> infinity`` by a direct (LU) solve, which reads the whole kernel: a finite
        network's float32 kernel is symmetric only up to rounding, and an eigendecomposition,
        which reads one triangle, would answer a slightly different question."""
        residual = self.y - np.asarray(f0_train, np.float64)
        if k_test_train is None:
            return self.y.copy()
        f0 = 0.0 if f0_test is None else np.asarray(f0_test, np.float64)
        return self.y.copy(), f0 + np.asarray(k_test_train, np.float64) @ np.linalg.solve(self.k, residual)


class _Flow(Predictor):
    """``nt.predict.gradient_descent_mse`` in float64 (gradient flow, ``t`` in steps), for ``diag_reg``
    or ``trace_axes=()``."""

    def __init__(self, k_train, y_train, learning_rate: float, diag_reg: float, trace_axes):
        import neural_tangents as nt

        self.y = np.asarray(y_train, np.float64)
        with enable_x64():
            k, y = (jnp.asarray(a, jnp.float64) for a in (k_train, y_train))
            self._predict: Callable = nt.predict.gradient_descent_mse(
                k, y, learning_rate=learning_rate, diag_reg=diag_reg,
                diag_reg_absolute_scale=False, trace_axes=trace_axes)

    def __call__(self, t=None, f0_train=0.0, f0_test=None, k_test_train=None):
        with enable_x64():
            f0_tr = jnp.asarray(f0_train, jnp.float64)
            if k_test_train is None:
                return np.asarray(self._predict(t, f0_tr))
            kt = jnp.asarray(k_test_train, jnp.float64)
            f0_te = (jnp.zeros((kt.shape[0], self.y.shape[1])) if f0_test is None
                     else jnp.asarray(f0_test, jnp.float64))
            train, test = self._predict(t, f0_tr, f0_te, kt)
            return np.asarray(train), np.asarray(test)
