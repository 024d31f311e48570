"""The worked example every study of ``regression`` shares: its data, its network, its training.

Inputs uniform in ``[-2, 2]^2``, ``y = sin(x_1) + cos(x_2)``, training and
test inputs from independent keys; a two-layer ReLU network (one hidden
layer, one output) in NTK parameterization, trained by full-batch gradient
descent on ``mse`` with a step that is a fraction of the stability limit
``2 n / lambda_max`` of the closed-form training NTK.

Random streams: ``train_inputs`` and ``test_inputs``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp
import numpy as np
import optax
from replication.compat import enable_x64

from replication.arch import MLP
from replication.data import sin_cos_2d
from replication.dynamics import stable_step
from replication.kernels import closed_form, empirical_ntk
from replication.sweep import Streams
from replication.train import fit, mse_loss


@dataclass(frozen=True)
class Problem:
    n_train: int = 50
    n_test: int = 100
    W_std: float = 2**0.5       # He's scale: the ReLU layer keeps its input's variance
    b_std: float = 0.1
    # The step: this fraction of the stability limit 2 n / lambda_max of the
    # closed-form training NTK (1/2 removes the top mode in one step).
    step_fraction: float = 0.5
    steps: int = 2000           # the time t at which networks and closed forms are compared

    def data(self, streams: Streams):
        """``(x_train (n_train, 2), y_train (n_train, 1), x_test, y_test)``."""
        return sin_cos_2d(streams.key("train_inputs"), streams.key("test_inputs"), self.n_train, self.n_test)

    def network(self, width: int) -> MLP:
        return MLP(width, depth=1, activation="relu", W_std=self.W_std, b_std=self.b_std)

    def closed_form(self, x1, x2=None, get: str = "ntk") -> np.ndarray:
        """neural-tangents' infinite-width NTK (or NNGP) ``(n1, n2)`` in float64.

        In NTK parameterization it does not depend on the width of the spec
        it is computed from.
        """
        with enable_x64():
            x1 = jnp.asarray(x1, jnp.float64)
            x2 = None if x2 is None else jnp.asarray(x2, jnp.float64)
            return np.asarray(closed_form(self.network(1), x1, x2, get=get))

    def learning_rate(self, k_train) -> float:
        """``step_fraction * 2 n / lambda_max(k_train)``."""
        return stable_step(k_train, self.step_fraction)


def test_mse(prediction, y_test) -> float:
    return float(np.mean((np.asarray(prediction, np.float64) - np.asarray(y_test, np.float64)) ** 2))


def rms(a, b) -> float:
    """Root mean square of ``a - b`` over every entry."""
    return float(np.sqrt(np.mean((a - b) ** 2)))


def with_readout_kernel(params, kernel):
    """``params`` with the readout's weight matrix replaced by ``kernel``."""
    readout = dict(params["params"]["readout"])
    readout["kernel"] = kernel
    return {"params": {**params["params"], "readout": readout}}


@dataclass
class Network:
    """One network: its init, its empirical NTK and outputs there (float64), and where training took it.

    ``k_train`` is ``(n_train, n_train)``, ``k_test_train`` ``(n_test, n_train)``;
    outputs are ``(n, 1)``.
    """

    params0: Any
    k_train: np.ndarray
    k_test_train: np.ndarray
    f0_train: np.ndarray
    f0_test: np.ndarray
    f_test: np.ndarray
    loss_ratio: float      # final / initial training loss
    diverged: bool


def one_network(spec: MLP, key, x_train, y_train, x_test, optimizer: optax.GradientTransformation,
                steps: int, readout_scale: float = 1.0) -> Network:
    """Initialise, measure the empirical NTK, train ``steps`` steps; ``readout_scale`` rescales the
    readout's init."""
    module = spec.flax()
    params = module.init(key, x_train)
    if readout_scale != 1.0:
        params = with_readout_kernel(params, params["params"]["readout"]["kernel"] * readout_scale)
    xs = jnp.concatenate([x_train, x_test])
    k = np.asarray(empirical_ntk(module.apply, params, xs), np.float64)
    n = x_train.shape[0]
    f0 = np.asarray(module.apply(params, xs), np.float64)
    run = fit(mse_loss(module.apply), params, optimizer, steps, args=(x_train, y_train))
    return Network(params0=params, k_train=k[:n, :n], k_test_train=k[n:, :n], f0_train=f0[:n], f0_test=f0[n:],
                   f_test=np.asarray(module.apply(run.params, x_test), np.float64),
                   loss_ratio=float(run.losses[-1] / run.losses[0]), diverged=bool(run.diverged))
