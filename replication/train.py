"""Training with optax: one pure step, scanned; ensembles of seeds trained at once with vmap.

The loss convention matches neural-tangents' closed-form dynamics:

    mse(f, y) = 1/2 * mean over all entries of (f - y)^2.

Gradient flow on it with learning rate ``eta`` moves a network's outputs as
``df/dt = -(eta / y.size) Theta (f - y)``, which is what
``nt.predict.gradient_descent_mse(k, y, learning_rate=eta)`` solves, with
``t`` counted in steps; full-batch gradient descent with a small step follows
it to first order in ``eta``.

A run whose loss becomes NaN or infinite is not an error: it is recorded as
diverged (``Trajectory.diverged``) and a sweep goes on.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax


def mse(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """``1/2 mean((predictions - targets)^2)`` over every entry."""
    return 0.5 * jnp.mean((predictions - targets) ** 2)


class Trajectory(NamedTuple):
    """The result of ``fit``: final parameters, per-step losses, records, divergence."""

    params: Any
    losses: jax.Array        # (steps,): the loss before each update
    records: Any             # record(params) at steps 0, every, 2 * every, ..., stacked
    diverged: jax.Array      # True if any loss was NaN or infinite


def fit(loss_fn: Callable[[Any], jax.Array], params: Any,
        optimizer: optax.GradientTransformation, steps: int, *,
        record: Callable[[Any], Any] | None = None, record_every: int | None = None) -> Trajectory:
    """``steps`` full-batch optax updates of ``loss_fn(params)``, compiled as one scan.

    ``record(params)`` (e.g. the outputs on test inputs, or the weights) is
    taken before the first update and after every ``record_every`` updates,
    so ``records`` has ``steps // record_every + 1`` entries. Pure: ``jax.vmap``
    over ``params`` trains an ensemble (``fit_ensemble``).
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    every = record_every or max(steps, 1)
    if steps % every:
        raise ValueError(f"record_every={every} must divide steps={steps}")
    record = record or (lambda p: ())

    def step(carry, _):
        p, state = carry
        loss, grads = jax.value_and_grad(loss_fn)(p)
        updates, state = optimizer.update(grads, state, p)
        return (optax.apply_updates(p, updates), state), loss

    def segment(carry, _):
        carry, losses = jax.lax.scan(step, carry, None, length=every)
        return carry, (losses, record(carry[0]))

    @jax.jit
    def run(p):
        first = record(p)
        (p, _), (losses, records) = jax.lax.scan(segment, (p, optimizer.init(p)), None,
                                                 length=steps // every)
        records = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), first, records)
        losses = losses.reshape(-1)
        return Trajectory(p, losses, records, ~jnp.all(jnp.isfinite(losses)))

    return run(params)


def fit_ensemble(loss_fn: Callable[[Any], jax.Array], stacked_params: Any,
                 optimizer: optax.GradientTransformation, steps: int, **kwargs) -> Trajectory:
    """``fit`` for a stack of parameter sets (leading axis: members), in one vmapped program.

    Every field of the returned ``Trajectory`` gains the members' leading axis,
    so one member's divergence is recorded without touching the others.
    """
    return jax.vmap(lambda p: fit(loss_fn, p, optimizer, steps, **kwargs))(stacked_params)
