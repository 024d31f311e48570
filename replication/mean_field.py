"""The infinite-width muP network with one hidden layer, computed: mean-field particles on a quadrature.

A one-hidden-layer network under muP (``replication.parametrization``, base
width ``B``, width ``N``) with a zero-initialised readout computes

    f(x) = (B / N) sum_i v_i phi(<w_i, x> + b_i) + c,

and SGD with base learning rate ``eta`` on ``mse`` moves each hidden unit
``theta_i = (w_i, b_i, v_i)`` by

    v_i <- v_i - eta E_x[r(x) phi(<w_i, x> + b_i)]
    (w_i, b_i) <- (w_i, b_i) - eta v_i E_x[r(x) phi'(<w_i, x> + b_i) (x, 1)]
    c <- c - eta E_x[r(x)],

with ``r = f - y`` the residual and ``E_x`` the mean over the training inputs
(Table 8's factors cancel the multipliers: each unit's update is of order 1 at
every width). The units interact only through the shared residual. They are
particles, and the network is the mean over ``N`` of them, weighted ``1 / N``.
At initialisation ``v_i = 0``; ``(w_i, b_i)`` are draws from
``N(0, W_std^2 / d) x ... x N(0, b_std^2)``. The infinite-width network (Tensor
Programs IV's muP limit, the mean-field limit of Mei, Montanari and Nguyen
2018 and Chizat and Bach 2018) replaces that Monte Carlo mean by the
expectation over the initial law. Every particle's trajectory is a smooth
function of its initial ``(w, b)`` when ``phi`` is smooth, so a tensor
Gauss-Hermite rule over the ``d + 1`` initial coordinates computes the
expectation with an error that falls faster than any power of the number of
nodes, where a network's Monte Carlo error falls as ``N^(-1/2)``.

``quadrature`` builds the rule; ``of_network`` reads a Flax network's hidden
units as particles of weight ``1 / N`` (the finite network, exactly);
``descent`` runs the same discrete SGD on any particle set, in float64. With
``phi(z) = z`` the particles' second moments follow a closed-form recursion
(``linear_limit``), which a rule with two or more nodes per coordinate
reproduces exactly: the tests' known answer.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from replication.compat import enable_x64


class Particles(NamedTuple):
    """Hidden units as weighted particles: ``weights`` ``(Q,)`` summing to 1, initial ``w`` ``(Q, d)``
    and ``b`` ``(Q,)``. The readout weights start at 0."""

    weights: np.ndarray
    w: np.ndarray
    b: np.ndarray


class Descent(NamedTuple):
    """``test`` ``(records, n_test)``: test outputs after ``record_every``, ``2 record_every``, ...
    steps; ``train_loss`` ``(steps,)``: the training loss before each step."""

    test: np.ndarray
    train_loss: np.ndarray


def quadrature(input_dim: int, W_std: float, b_std: float, nodes: int, prune: float = 1e-15) -> Particles:
    """The tensor Gauss-Hermite rule with ``nodes`` points per coordinate for ``w ~ N(0, W_std^2 / d
    I_d)``, ``b ~ N(0, b_std^2)``.

    Nodes whose weight is below ``prune`` are dropped (their total weight, at most
    ``prune`` times the number of nodes, bounds the change in any expectation of a bounded
    function) and the rest renormalised.
    """
    if nodes < 1 or input_dim < 1:
        raise ValueError(f"nodes and input_dim must be >= 1, got {nodes}, {input_dim}")
    x, q = np.polynomial.hermite_e.hermegauss(nodes)
    q = q / q.sum()
    k = input_dim + 1
    idx = np.indices((nodes,) * k).reshape(k, -1).T
    weights = np.prod(q[idx], axis=1)
    keep = weights >= prune
    points = x[idx[keep]] * np.array([W_std / math.sqrt(input_dim)] * input_dim + [b_std])
    weights = weights[keep]
    return Particles(weights / weights.sum(), points[:, :-1], points[:, -1])


def of_network(params) -> Particles:
    """A one-hidden-layer Flax network's hidden units (``dense_0``: kernel ``(d, N)``, bias ``(N,)``),
    each of weight ``1 / N``."""
    layer = params["params"]["dense_0"]
    w = np.asarray(layer["kernel"], np.float64).T
    return Particles(np.full(w.shape[0], 1.0 / w.shape[0]), w, np.asarray(layer["bias"], np.float64))


def descent(particles: Particles, x_train, y_train, x_test, *, activation: Callable, base_width: float,
            learning_rate: float, steps: int, record_every: int) -> Descent:
    """``steps`` steps of muP's SGD (module docstring) on the particles, float64, from ``v = 0``, ``c = 0``.

    ``activation``: a function of a JAX array (differentiated by JAX). ``base_width``: ``B``, so
    that the readout is ``B sum_i weight_i v_i phi_i + c``. Records the test outputs every
    ``record_every`` steps.
    """
    if steps % record_every:
        raise ValueError(f"steps ({steps}) must be a multiple of record_every ({record_every})")
    with enable_x64():
        f64 = lambda a: jnp.asarray(np.asarray(a, np.float64))
        omega = f64(particles.weights) * base_width
        x_tr, y_tr, x_te = f64(x_train), f64(y_train).reshape(-1), f64(x_test)
        run = _program(activation, steps // record_every, record_every)
        test, losses = run(omega, f64(particles.w), f64(particles.b), x_tr, y_tr, x_te, float(learning_rate))
        return Descent(np.asarray(test), np.asarray(losses).reshape(-1))


def _outputs(activation, omega, w, b, v, c, x):
    return activation(x @ w.T + b) @ (omega * v) + c


@lru_cache(maxsize=None)
def _program(activation: Callable, records: int, every: int):
    """The compiled descent for one activation and schedule (JAX traces it once per shape)."""
    def loss(state, omega, x, y):
        w, b, v, c = state
        return 0.5 * jnp.mean((_outputs(activation, omega, w, b, v, c, x) - y) ** 2)

    grad = jax.value_and_grad(loss)

    def step(state, omega, x, y, eta):
        value, g = grad(state, omega, x, y)
        # d loss / d theta_i carries the particle's weight omega_i; muP's factors remove it.
        (gw, gb, gv, gc) = g
        return (state[0] - eta * gw / omega[:, None], state[1] - eta * gb / omega,
                state[2] - eta * gv / omega, state[3] - eta * gc), value

    @jax.jit
    def run(omega, w, b, x_tr, y_tr, x_te, eta):
        def segment(state, _):
            state, values = jax.lax.scan(lambda s, _: step(s, omega, x_tr, y_tr, eta), state, None,
                                         length=every)
            return state, (_outputs(activation, omega, *state, x_te), values)

        state = (w, b, jnp.zeros_like(b), jnp.zeros((), b.dtype))
        _, (test, values) = jax.lax.scan(segment, state, None, length=records)
        return test, values

    return run


def linear_limit(x_train, y_train, x_test, *, W_std: float, b_std: float, base_width: float,
                 learning_rate: float, steps: int) -> np.ndarray:
    """The infinite-width network with ``phi(z) = z`` after ``steps`` steps: test outputs ``(n_test,)``.

    With ``z = (v, w, b)`` and ``g = E_x[r(x) (x, 1)]`` one step is the linear map
    ``z <- A z``, ``A = [[1, -eta g^T], [-eta g, I]]``, the same for every particle, so the
    second moments ``S = E[z z^T]`` follow ``S <- A S A^T`` and the outputs are
    ``B S_{v,(w,b)} . (x, 1) + c``: a closed form that involves no quadrature.
    """
    x_tr = np.c_[np.asarray(x_train, np.float64), np.ones(len(x_train))]
    x_te = np.c_[np.asarray(x_test, np.float64), np.ones(len(x_test))]
    y = np.asarray(y_train, np.float64).reshape(-1)
    k = x_tr.shape[1]
    S = np.zeros((k + 1, k + 1))
    S[1:, 1:] = np.diag([W_std**2 / (k - 1)] * (k - 1) + [b_std**2])
    c = 0.0
    for _ in range(steps):
        r = base_width * x_tr @ S[0, 1:] + c - y
        g = x_tr.T @ r / len(y)
        A = np.eye(k + 1)
        A[0, 1:] = -learning_rate * g
        A[1:, 0] = -learning_rate * g
        S = A @ S @ A.T
        c -= learning_rate * r.mean()
    return base_width * x_te @ S[0, 1:] + c
