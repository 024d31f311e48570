"""Networks trained to a fixed loss on a single-index task, and their infinite-width limit.

The task (``single_index_data``): inputs on the sphere of radius ``sqrt(d)``
in ``R^d`` and a target ``y = g(<u, x>)`` that depends on one direction
``u`` (``replication.data.single_index``), where a network that turns its
features towards ``u`` beats any rotation-invariant kernel.

The networks: one hidden layer, trained by full-batch gradient descent on
``mse`` from centred outputs ``f(x; w) - f(x; w_0)`` (zero at
initialisation) until the training loss is ``target_fraction`` of its
initial value ``1/2 mean(y^2)``: the same loss at every width, so that what
moved in training is compared at equal progress. NTK-parameterized networks
take the step ``ntk_lr_fraction * 2 n / lambda_max`` of the closed-form
training NTK (``replication.dynamics.stable_step``), the same at every width;
muP networks (``mup_base_width``, where muP is SP) take ``mup_lr_fraction``
of the stability limit of one network's empirical NTK at the base width,
carried to the other widths by muP's per-layer factors.

The limit: the infinite-width NTK network is discrete gradient descent with
the closed-form NTK from zero outputs and the NTK networks' step
(``replication.dynamics.gradient_descent_mse(..., discrete=True)``), so a
network trained by the same discrete steps is compared with its own limit.

``scaled_model`` is the centred model with output ``alpha (f - f0)`` and loss
``mse / alpha^2`` of Chizat, Oyallon and Bach (2019); ``alpha = 1`` is the
centred network every ladder trains.

Random streams: ``direction``, ``train_inputs``, ``test_inputs`` (the task)
and ``networks`` (the ladders' networks, and at width 0, replicate 0 the
muP base-width network that sets muP's step).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from replication.compat import enable_x64

from replication.arch import MLP
from replication.data import single_index
from replication.dynamics import Predictor, gradient_descent_mse, stable_step
from replication.kernels import closed_form, empirical_ntk, readout_input
from replication.stats import relative_frobenius_error
from replication.sweep import Streams, progress
from replication.train import fit_to_loss_ensemble, mse


@dataclass(frozen=True)
class Task:
    """The single-index task, the one-hidden-layer networks and how they are trained."""

    # The task: y = g(<u, x>), x on the sphere in R^input_dim.
    input_dim: int = 16
    n_train: int = 128
    n_test: int = 512
    n_kernel: int = 64            # test inputs on which the empirical NTK's change is measured
    # The networks: one hidden layer.
    activation: str = "relu"
    W_std: float = 2**0.5
    b_std: float = 0.1
    # Every network is trained until its training loss is target_fraction of the
    # initial loss (1/2 mean y^2: outputs are centred).
    target_fraction: float = 3e-3
    # NTK parameterization: this fraction of the stability limit 2 n / lambda_max
    # of the closed-form training NTK; at most step_margin times the steps the
    # limit needs.
    ntk_lr_fraction: float = 0.5
    step_margin: float = 5.0
    # muP: SP at the base width, where the step is this fraction of the stability
    # limit 2 n / lambda_max of one network's empirical NTK.
    mup_base_width: int = 32
    mup_lr_fraction: float = 0.5
    mup_max_steps: int = 4000


class Ladders(NamedTuple):
    """NTK-parameterized and muP networks at every width, trained to one loss, and their limit.

    ``results[p][measure]``: ``train_members``'s measures stacked over widths,
    shape ``(n_widths, seeds, ...)``, for ``p`` in ``("ntk", "mup")``.
    ``limit``: the closed-form NTK network's discrete gradient descent from
    zero outputs; ``k_test_train`` ``(n_test, n_train)`` its closed-form NTK
    between test and training inputs. ``data``: ``(x_train, y_train, x_test,
    y_test)``. ``settings``: ``target`` (the training loss every network
    stops at), ``ntk_lr``, ``mup_lr``, ``t_star`` (the limit's steps to the
    target) and ``ntk_steps`` (the NTK networks' step cap).
    """

    results: dict
    limit: Predictor
    k_test_train: np.ndarray
    data: tuple
    settings: dict

    def limit_test_outputs(self, t=None) -> np.ndarray:
        """The limit's test outputs ``(n_test,)`` after ``t`` steps (``None``: kernel regression)."""
        return limit_test_outputs(self.limit, self.k_test_train, t)


def single_index_data(task: Task, streams: Streams):
    """``(x_train, y_train, x_test, y_test)``: direction, training and test inputs from their own streams."""
    return _single_index(task, streams)[:4]


def _single_index(task: Task, streams: Streams):
    """``single_index_data`` and the unit direction ``u`` its target depends on."""
    return single_index(streams.key("direction"), streams.key("train_inputs"), streams.key("test_inputs"),
                        task.n_train, task.n_test, task.input_dim)


def spec_of(task: Task, parameterization: str, width: int) -> MLP:
    """The one-hidden-layer network of ``task`` in ``parameterization`` (``ntk``, ``mup``, ``standard``)."""
    return MLP(width, 1, task.activation, W_std=task.W_std, b_std=task.b_std,
               parameterization=parameterization,
               base_width=task.mup_base_width if parameterization == "mup" else None)


def target_loss(task: Task, y_train) -> float:
    """``target_fraction * 1/2 mean(y^2)``: the loss of the zero predictor, scaled."""
    return float(task.target_fraction * 0.5 * np.mean(np.asarray(y_train, np.float64) ** 2))


def mup_learning_rate(task: Task, streams: Streams, x_train) -> float:
    """``mup_lr_fraction`` of ``2 n / lambda_max`` of one network's empirical NTK at the base width."""
    module = spec_of(task, "standard", task.mup_base_width).flax()
    k = np.asarray(empirical_ntk(module.apply, module.init(streams.network("networks", 0, 0), x_train), x_train))
    return stable_step(k, task.mup_lr_fraction)


def closed_form_ntk(task: Task, data) -> tuple[np.ndarray, np.ndarray]:
    """``(k_train, k_test_train)``: the NTK network's closed-form NTK, ``(n_train, n_train)`` and
    ``(n_test, n_train)``, in float64."""
    x_train, _, x_test, _ = data
    spec = spec_of(task, "ntk", 1)   # the NTK parameterization's closed form does not depend on width
    with enable_x64():
        xtr, xte = jnp.asarray(x_train, jnp.float64), jnp.asarray(x_test, jnp.float64)
        return np.asarray(closed_form(spec, xtr)), np.asarray(closed_form(spec, xte, xtr))


def limit_test_outputs(limit: Predictor, k_test_train, t=None) -> np.ndarray:
    """``limit``'s test outputs ``(n_test,)`` after ``t`` steps from zero outputs (``None``: kernel regression)."""
    return limit(t, 0.0, None, k_test_train)[1][:, 0]


@lru_cache(maxsize=None)
def scaled_model(apply_fn):
    """``(outputs, loss)`` of the centred, scaled model of Chizat, Oyallon and Bach (2019).

    ``outputs(params, f0, x, alpha) = alpha * (f(params, x) - f0)`` with ``f0 = f(params_0, x)``
    (zero at initialisation), and ``loss(params, f0, x, y, alpha) = mse(outputs, y) / alpha^2``:
    gradient descent on it moves the outputs as the unscaled model's to first order, whatever
    ``alpha``, and the parameters by ``O(1 / alpha)``. ``alpha = 1`` is the centred network.
    One pair of function objects per ``apply_fn``, so a ladder compiles once per shape.
    """
    def outputs(params, f0, x, alpha):
        return alpha * (apply_fn(params, x) - f0)

    def loss(params, f0, x, y, alpha):
        return mse(outputs(params, f0, x, alpha), y) / alpha**2

    return outputs, loss


@lru_cache(maxsize=None)
def _member_measures(module):
    """Per member: relative change of the hidden weights and features, the first layer's alignment
    with a direction ``u`` after and before training (``|W^T u|^2 / |W|_F^2``), test outputs,
    training loss."""
    outputs, _ = scaled_model(module.apply)

    def measure(p, p0, x_train, y_train, x_test, alpha, u):
        w, w0 = p["params"]["dense_0"]["kernel"], p0["params"]["dense_0"]["kernel"]
        phi, phi0 = readout_input(module, p, x_test), readout_input(module, p0, x_test)
        f0_train = module.apply(p0, x_train)
        return {"weights": jnp.linalg.norm(w - w0) / jnp.linalg.norm(w0),
                "alignment": jnp.sum((u @ w) ** 2) / jnp.sum(w**2),
                "alignment0": jnp.sum((u @ w0) ** 2) / jnp.sum(w0**2),
                "features": jnp.linalg.norm(phi - phi0) / jnp.linalg.norm(phi0),
                "test_outputs": outputs(p, module.apply(p0, x_test), x_test, alpha)[:, 0],
                "train_mse": mse(outputs(p, f0_train, x_train, alpha), y_train)}

    return jax.jit(jax.vmap(measure, in_axes=(0, 0, None, None, None, None, None)))


def train_members(spec: MLP, keys, data, optimizer, target: float, max_steps: int, alpha: float = 1.0,
                  kernel_inputs=None, direction=None) -> dict:
    """Initialise one network per key, train each to ``target``, measure what moved.

    Returns arrays over members: ``weights`` and ``features`` (relative
    changes ``|w - w0| / |w0|``, ``|phi - phi0| / |phi0|`` on the test
    inputs), ``kernel`` (the empirical NTK's relative change on
    ``kernel_inputs``, if given), ``alignment`` and ``alignment0`` (the first
    layer's ``|W^T u|^2 / |W|_F^2`` after and before training, if a unit
    ``direction`` ``u`` is given), ``test_outputs`` ``(members, n_test)``,
    ``test_mse``, ``train_mse``, ``steps``, ``diverged`` and ``reached``.
    A diverged member's changes and losses are NaN.
    """
    x_train, y_train, x_test, y_test = data
    module = spec.flax()
    _, loss = scaled_model(module.apply)
    p0 = jax.vmap(module.init, (0, None))(keys, x_train)
    f0 = jax.vmap(module.apply, (0, None))(p0, x_train)
    # The loss is mse / alpha^2, so mse <= target is loss <= target / alpha^2.
    run = fit_to_loss_ensemble(loss, p0, optimizer, target / alpha**2, max_steps, member_args=(f0,),
                               args=(x_train, y_train, jnp.float32(alpha)))
    u = jnp.zeros(x_train.shape[1]) if direction is None else jnp.asarray(direction, jnp.float32)
    m = {k: np.asarray(v, np.float64) for k, v in
         _member_measures(module)(run.params, p0, x_train, y_train, x_test, jnp.float32(alpha), u).items()}
    if direction is None:
        del m["alignment"], m["alignment0"]
    m["test_mse"] = np.mean((m["test_outputs"] - np.asarray(y_test, np.float64)[None, :, 0]) ** 2, axis=1)
    m["steps"] = np.asarray(run.steps)
    m["diverged"] = np.asarray(run.diverged)
    m["reached"] = m["train_mse"] <= target * (1 + 1e-3)   # float32 rounding of the rescaled loss
    if kernel_inputs is not None:
        m["kernel"] = np.array([relative_frobenius_error(
            empirical_ntk(module.apply, _member(run.params, s), kernel_inputs),
            empirical_ntk(module.apply, _member(p0, s), kernel_inputs)) for s in range(keys.shape[0])])
    for k in ("weights", "features", "alignment", "kernel", "test_mse", "train_mse"):
        if k in m:
            m[k] = np.where(m["diverged"], np.nan, m[k])
    return m


def _member(tree, i: int):
    return jax.tree_util.tree_map(lambda a: a[i], tree)


def ladders(task: Task, widths, seeds: int, streams: Streams, kernel: bool = True) -> Ladders:
    """The task, its closed-form limit, and NTK-parameterized and muP networks at every width.

    At each width, ``seeds`` networks from stream ``networks`` (the same keys
    for both parameterizations), all trained to ``target_loss``. ``kernel=False``
    skips the empirical NTK's change (the costliest measure).
    """
    *data, u = _single_index(task, streams)
    data = tuple(data)
    x_train, y_train, x_test, _ = data
    target = target_loss(task, y_train)
    k_train, k_test_train = closed_form_ntk(task, data)
    ntk_lr = stable_step(k_train, task.ntk_lr_fraction)
    limit = gradient_descent_mse(k_train, y_train, ntk_lr, discrete=True)
    mup_lr = mup_learning_rate(task, streams, x_train)
    t_star = limit.steps_to(target)
    ntk_steps = int(np.ceil(task.step_margin * t_star))
    ntk_opt = optax.sgd(ntk_lr)
    out = {"ntk": [], "mup": []}
    with progress(2 * len(widths), "fixed-loss width ladders") as bar:
        for w in widths:
            keys = jnp.stack([streams.network("networks", w, s) for s in range(seeds)])
            out["ntk"].append(train_members(spec_of(task, "ntk", w), keys, data, ntk_opt, target, ntk_steps,
                                            kernel_inputs=x_test[:task.n_kernel] if kernel else None,
                                            direction=u))
            bar.update()
            spec = spec_of(task, "mup", w)
            out["mup"].append(train_members(spec, keys, data, spec.optimizer("sgd", mup_lr), target,
                                            task.mup_max_steps, direction=u))
            bar.update()
    results = {p: {k: np.stack([r[k] for r in rows]) for k in rows[0]} for p, rows in out.items()}
    settings = {"target": target, "ntk_lr": ntk_lr, "mup_lr": mup_lr, "t_star": t_star,
                "ntk_steps": ntk_steps}
    return Ladders(results, limit, k_test_train, data, settings)


def distance_to_limit(results: dict, limit: Predictor, k_test_train, step: int | None = None) -> np.ndarray:
    """RMS distance of trained networks' test outputs from the limit's, shape ``(n_widths, seeds)``.

    ``results`` is one parameterization's ``Ladders.results[p]``. The limit is
    taken at each network's own stopping step, or at ``step`` for all; NaN
    for a diverged run.
    """
    out = np.full(results["steps"].shape, np.nan)
    for i, s in np.ndindex(out.shape):
        if not results["diverged"][i, s]:
            t = results["steps"][i, s] if step is None else step
            out[i, s] = np.sqrt(np.mean((results["test_outputs"][i, s] - limit_test_outputs(limit, k_test_train, t))
                                        ** 2))
    return out
