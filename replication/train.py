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

import math
from functools import lru_cache, partial
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from replication import distributed
from replication.arch import training_layout


def mse(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """``1/2 mean((predictions - targets)^2)`` over every entry."""
    return 0.5 * jnp.mean((predictions - targets) ** 2)


@lru_cache(maxsize=None)
def mse_loss(apply_fn: Callable) -> Callable:
    """``loss(params, x, y) = mse(apply_fn(params, x), y)``: one function object per ``apply_fn``.

    Passing the same object to every ``fit`` of a sweep lets it reuse its
    compiled program across seeds.
    """
    return lambda params, x, y: mse(apply_fn(params, x), y)


class Trajectory(NamedTuple):
    """The result of ``fit``: final parameters, per-step losses, records, divergence."""

    params: Any
    losses: jax.Array        # (steps,): the loss before each update
    records: Any             # record(params) at steps 0, every, 2 * every, ..., stacked
    diverged: jax.Array      # True if any loss was NaN or infinite


def fit(loss_fn: Callable[..., jax.Array], params: Any,
        optimizer: optax.GradientTransformation, steps: int, *,
        record: Callable[..., Any] | None = None, record_every: int | None = None,
        args: tuple = ()) -> Trajectory:
    """``steps`` full-batch optax updates of ``loss_fn(params, *args)``, compiled as one scan.

    ``record(params, *args)`` (e.g. the outputs on test inputs, or the
    weights) is taken before the first update and after every
    ``record_every`` updates, so ``records`` has ``steps // record_every + 1``
    entries. ``args`` (data, a linearisation point) enter the compiled
    program as arguments; arrays that ``loss_fn`` closes over instead become
    constants compiled into it, which is slow for large ones. Pure:
    ``jax.vmap`` over ``params`` trains an ensemble (``fit_ensemble``).

    The compiled program is cached on the identity of ``loss_fn``,
    ``optimizer`` and ``record`` (and on shapes): a sweep over seeds that
    passes the same function objects compiles once per shape. A learning rate
    that varies across calls can enter as a traced hyperparameter
    (``optax.inject_hyperparams``) or as an ``args`` entry, so that it does
    not force a recompile.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    every = record_every or max(steps, 1)
    if steps % every:
        raise ValueError(f"record_every={every} must divide steps={steps}")
    with training_layout():
        return _fit(params, tuple(args), loss_fn=loss_fn, optimizer=optimizer, steps=steps, every=every,
                    record=record or _no_record)


def _no_record(params, *args):
    return ()


@partial(jax.jit, static_argnames=("loss_fn", "optimizer", "steps", "every", "record"))
def _fit(params, args, *, loss_fn, optimizer, steps, every, record) -> Trajectory:
    def step(carry, _):
        p, state = carry
        loss, grads = jax.value_and_grad(loss_fn)(p, *args)
        updates, state = optimizer.update(grads, state, p)
        return (optax.apply_updates(p, updates), state), loss

    def segment(carry, _):
        carry, losses = jax.lax.scan(step, carry, None, length=every)
        return carry, (losses, record(carry[0], *args))

    first = record(params, *args)
    (p, _), (losses, records) = jax.lax.scan(segment, (params, optimizer.init(params)), None,
                                             length=steps // every)
    records = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), first, records)
    losses = losses.reshape(-1)
    return Trajectory(p, losses, records, ~jnp.all(jnp.isfinite(losses)))


def fit_ensemble(loss_fn: Callable[..., jax.Array], stacked_params: Any,
                 optimizer: optax.GradientTransformation, steps: int, *, args: tuple = (),
                 devices=None, budget: int | None = None, **kwargs) -> Trajectory:
    """``fit`` for a stack of parameter sets (leading axis: members), vmapped in one program.

    ``args`` are shared by every member. Every field of the returned
    ``Trajectory`` gains the members' leading axis, so one member's
    divergence is recorded without touching the others.

    The members are sharded over ``devices`` (default: every device of every
    process of the run, ``replication.distributed``) with ``jax.sharding``:
    each device trains its share, with no communication, and every process
    gets the whole result, equal to a one-device run. Before anything
    is built the ensemble's memory is estimated (``replication.memory``):
    members that would not fit in ``budget`` at once are trained in chunks,
    and an ensemble whose single member does not fit is refused with
    ``MemoryBudgetError``.
    """
    from replication import memory

    leaves = jax.tree_util.tree_leaves(stacked_params)
    members = leaves[0].shape[0]
    one = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), stacked_params)
    n_params = sum(math.prod(a.shape) for a in jax.tree_util.tree_leaves(one))
    state = jax.eval_shape(optimizer.init, one)
    copies = -(-sum(math.prod(a.shape) for a in jax.tree_util.tree_leaves(state)) // max(n_params, 1))
    # Every device of every process (replication.distributed); one process: its own devices.
    devices = list(jax.devices() if devices is None else devices)
    chunk = memory.plan_ensemble(n_params, members, copies, budget)
    chunk = max(len(devices), chunk - chunk % len(devices)) if chunk >= len(devices) else chunk
    program = _ensemble_program(loss_fn, optimizer, steps, **kwargs)
    runs = []
    for start in range(0, members, chunk):
        part = jax.tree_util.tree_map(lambda a: a[start:start + chunk], stacked_params)
        with training_layout():
            runs.append(program(_shard(part, devices), tuple(args)))
    runs = [distributed.gather(r) for r in runs]
    if len(runs) == 1:
        return runs[0]
    return jax.tree_util.tree_map(lambda *a: jnp.concatenate(a), *runs)


@lru_cache(maxsize=None)
def _ensemble_program(loss_fn, optimizer, steps, **kwargs):
    return jax.jit(jax.vmap(lambda p, a: fit(loss_fn, p, optimizer, steps, args=a, **kwargs),
                            in_axes=(0, None)))


def _shard(stacked, devices):
    """Place the members' axis across ``devices`` (padding is not needed: a ragged count stays on one)."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    members = jax.tree_util.tree_leaves(stacked)[0].shape[0]
    if len(devices) == 1 or members % len(devices):
        if distributed.several():
            raise ValueError(f"{members} members do not split over {len(devices)} devices of "
                             f"{jax.process_count()} processes")
        return jax.device_put(stacked, devices[0])
    sharding = NamedSharding(Mesh(np.array(devices), ("members",)), PartitionSpec("members"))
    if distributed.several():
        return distributed.global_array(stacked, sharding)
    return jax.device_put(stacked, sharding)


def heavy_ball(curvature_max: float, curvature_min: float, reduction: float = 1e-6,
               margin: float = 3.0) -> tuple[float, float, int]:
    """Polyak's heavy ball for a quadratic with Hessian eigenvalues in ``[curvature_min, curvature_max]``.

    Returns the optimal step ``4 / (sqrt(L) + sqrt(mu))^2``, momentum
    ``((sqrt(L) - sqrt(mu)) / (sqrt(L) + sqrt(mu)))^2`` and a step count:
    ``margin`` times the steps its contraction ``(sqrt(kappa) - 1) / (sqrt(kappa) + 1)``
    needs to shrink the error by ``reduction``, leaving room for its transient.
    For ``mse`` and a kernel ``K`` on ``n`` points the curvatures are ``eig(K) / n``.
    """
    L, mu = curvature_max, curvature_min
    lr = 4 / (np.sqrt(L) + np.sqrt(mu)) ** 2
    momentum = ((np.sqrt(L) - np.sqrt(mu)) / (np.sqrt(L) + np.sqrt(mu))) ** 2
    rho = (np.sqrt(L / mu) - 1) / (np.sqrt(L / mu) + 1)
    return float(lr), float(momentum), int(np.ceil(margin * np.log(reduction) / np.log(rho)))


@lru_cache(maxsize=None)
def linearized(apply_fn: Callable) -> Callable:
    """The first-order Taylor model of ``apply_fn`` around a point (Lee et al. 2019).

    Returns ``f_lin(params, params0, x) = f(params0, x) + J(params0, x) (params - params0)``,
    computed with one forward-mode product, as neural-tangents' ``nt.linearize``;
    here the expansion point ``params0`` is an argument, so it can be passed
    to ``fit(..., args=...)`` rather than compiled in as a constant. One
    function object per ``apply_fn``, so ``fit`` compiles once per shape.
    """
    def f_lin(params, params0, x):
        delta = jax.tree_util.tree_map(jnp.subtract, params, params0)
        f0, df = jax.jvp(lambda p: apply_fn(p, x), (params0,), (delta,))
        return f0 + df

    return f_lin


@lru_cache(maxsize=None)
def linearized_loss(f_lin: Callable) -> Callable:
    """``loss(params, params0, x, y) = mse(f_lin(params, params0, x), y)`` for ``f_lin = linearized(f)``.

    Trained by ``fit(..., args=(params0, x, y))``. One function object per
    ``f_lin``, so ``fit`` compiles once per shape.
    """
    return lambda params, params0, x, y: mse(f_lin(params, params0, x), y)


@lru_cache(maxsize=None)
def centred(apply_fn: Callable) -> Callable:
    """The network minus its initial function: ``f_c(params, params0, x) = f(params, x) - f(params0, x)``.

    ``params0`` (the initialisation) is held fixed, so ``f_c`` is zero at
    ``params = params0`` and its Jacobian in ``params`` is ``f``'s at every
    point: the same empirical NTK, at initialisation and along training.
    Trained by gradient descent on mse it therefore follows the NTK dynamics
    started from zero outputs, whose infinite-width limit is the closed-form
    mean predictor (Lee et al. 2019; the centred model of Chizat et al.
    2019). A zero-initialised readout also starts at zero, but its NTK at
    initialisation loses every hidden layer's term (their gradients pass
    through the zero readout), so it is not the same kernel.

    On the training inputs ``f(params0, x)`` is a constant, so
    ``mse(f_c(params, params0, x), y) = mse(f(params, x), y + f(params0, x))``:
    the centred network is ``f`` trained on shifted targets, which a sweep
    can use to train it with ``f``'s compiled program at no extra cost per
    step. One function object per ``apply_fn``.
    """
    def f_c(params, params0, x):
        return apply_fn(params, x) - apply_fn(params0, x)

    return f_c


class Stopped(NamedTuple):
    """The result of ``fit_to_loss``: the parameters where training stopped, and why."""

    params: Any
    steps: jax.Array         # updates taken
    loss: jax.Array          # the loss of ``params``
    diverged: jax.Array      # True if the loss became NaN or infinite


def fit_to_loss(loss_fn: Callable[..., jax.Array], params: Any,
                optimizer: optax.GradientTransformation, target, max_steps: int, *,
                args: tuple = ()) -> Stopped:
    """Full-batch optax updates of ``loss_fn(params, *args)`` until the loss is ``<= target``.

    Training stops at the first parameters whose loss is at most ``target``,
    after ``max_steps`` updates, or when the loss becomes NaN or infinite
    (``diverged``); ``loss > target`` on return means the target was not
    reached. One ``lax.while_loop``: under ``jax.vmap`` (``fit_to_loss_ensemble``)
    it runs until the last member stops, each member frozen from its own stop.
    ``target`` is traced, so changing it does not recompile; the program is
    cached on ``loss_fn``, ``optimizer``, ``max_steps`` and shapes, as ``fit``.
    """
    if max_steps < 0:
        raise ValueError(f"max_steps must be >= 0, got {max_steps}")
    with training_layout():
        return _fit_to_loss(params, tuple(args), jnp.asarray(target, jnp.float32), loss_fn=loss_fn,
                            optimizer=optimizer, max_steps=int(max_steps))


@partial(jax.jit, static_argnames=("loss_fn", "optimizer", "max_steps"))
def _fit_to_loss(params, args, target, *, loss_fn, optimizer, max_steps) -> Stopped:
    value_and_grad = jax.value_and_grad(loss_fn)

    def going(carry):
        _, _, t, loss, _ = carry
        return (t < max_steps) & (loss > target) & jnp.isfinite(loss)

    def step(carry):
        p, state, t, _, grads = carry
        updates, state = optimizer.update(grads, state, p)
        p = optax.apply_updates(p, updates)
        loss, grads = value_and_grad(p, *args)
        return p, state, t + 1, loss, grads

    loss, grads = value_and_grad(params, *args)
    p, _, t, loss, _ = jax.lax.while_loop(
        going, step, (params, optimizer.init(params), jnp.zeros((), jnp.int32), loss, grads))
    return Stopped(p, t, loss, ~jnp.isfinite(loss))


def fit_to_loss_ensemble(loss_fn: Callable[..., jax.Array], stacked_params: Any,
                         optimizer: optax.GradientTransformation, target, max_steps: int, *,
                         member_args: tuple = (), args: tuple = ()) -> Stopped:
    """``fit_to_loss`` for a stack of parameter sets, in one vmapped program.

    The loss is ``loss_fn(params, *member_args, *args)``: ``member_args`` are
    stacked like the parameters (one entry per member, e.g. each member's
    initial outputs), ``args`` are shared. Every field of the result gains
    the members' leading axis.
    """
    if max_steps < 0:
        raise ValueError(f"max_steps must be >= 0, got {max_steps}")
    with training_layout():
        return _fit_to_loss_ensemble(stacked_params, tuple(member_args), tuple(args),
                                     jnp.asarray(target, jnp.float32), loss_fn=loss_fn, optimizer=optimizer,
                                     max_steps=int(max_steps))


@partial(jax.jit, static_argnames=("loss_fn", "optimizer", "max_steps"))
def _fit_to_loss_ensemble(stacked, member_args, args, target, *, loss_fn, optimizer, max_steps) -> Stopped:
    def one(p, m):
        return _fit_to_loss(p, (*m, *args), target, loss_fn=loss_fn, optimizer=optimizer, max_steps=max_steps)

    return jax.vmap(one)(stacked, member_args)
