"""The worked example every study of ``regression`` shares: its data, its network, its training.

Inputs uniform in ``[-2, 2]^2``, ``y = sin(x_1) + cos(x_2)``, training and
test inputs from independent keys; a two-layer ReLU network (one hidden
layer, one output) in NTK parameterization, trained by full-batch gradient
descent on ``mse`` with a step that is a fraction of the stability limit
``2 n / lambda_max`` of the closed-form training NTK.

Random streams: ``train_inputs`` and ``test_inputs``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from replication.compat import enable_x64

from replication.arch import MLP
from replication.data import sin_cos_2d
from replication.dynamics import gradient_descent_mse, stable_step
from replication.kernels import closed_form, empirical_ntk, one_hidden_layer_ntk
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
                steps: int, readout_scale: float = 1.0, kernel: bool = True) -> Network:
    """Initialise, measure the empirical NTK (unless ``kernel=False``: ``k_train`` and ``k_test_train``
    are then ``None``), train ``steps`` steps; ``readout_scale`` rescales the readout's init."""
    module = spec.flax()
    params = module.init(key, x_train)
    if readout_scale != 1.0:
        params = with_readout_kernel(params, params["params"]["readout"]["kernel"] * readout_scale)
    xs = jnp.concatenate([x_train, x_test])
    n = x_train.shape[0]
    k = np.asarray(empirical_ntk(module.apply, params, xs), np.float64) if kernel else None
    f0 = np.asarray(module.apply(params, xs), np.float64)
    run = fit(mse_loss(module.apply), params, optimizer, steps, args=(x_train, y_train))
    return Network(params0=params, k_train=None if k is None else k[:n, :n],
                   k_test_train=None if k is None else k[n:, :n], f0_train=f0[:n], f0_test=f0[n:],
                   f_test=np.asarray(module.apply(run.params, x_test), np.float64),
                   loss_ratio=float(run.losses[-1] / run.losses[0]), diverged=bool(run.diverged))


class Limit:
    """The problem's data and the infinite-width network's discrete gradient descent on them (float64).

    ``x`` stacks the training and test inputs; ``kernel`` is the closed-form NTK on ``x``;
    ``predict(t, f0)`` the limit's test outputs at step ``t`` (``None``: t -> infinity) from the
    initial outputs ``f0`` on ``x``, by the discrete recursion with the same step as the networks,
    so that the step size adds nothing to a network's gap from it.
    """

    def __init__(self, problem: Problem, streams: Streams):
        self.problem = problem
        self.x_train, self.y_train, self.x_test, self.y_test = problem.data(streams)
        self.x = np.concatenate([np.asarray(self.x_train), np.asarray(self.x_test)])
        self.y64 = np.asarray(self.y_train, np.float64)
        self.n = problem.n_train
        self.kernel = problem.closed_form(self.x)
        self.learning_rate = problem.learning_rate(self.kernel[:self.n, :self.n])
        self.eigenvalues = np.linalg.eigvalsh(self.kernel[:self.n, :self.n])
        # One optimizer object for every network: fit compiles once per width and segment length.
        self.optimizer = optax.sgd(self.learning_rate)
        self._limit = self.dynamics(self.kernel)
        self.eigenvectors = self._limit.V

    def modes(self, residual) -> np.ndarray:
        """A training residual ``(n_train, 1)`` by mode of the closed-form training NTK: ``(n_train,)``."""
        return self.eigenvectors.T @ np.asarray(residual, np.float64)[:, 0]

    def decay(self, times) -> np.ndarray:
        """``(1 - eta lambda_k / n)^t`` ``(n_times, n_train)``: each mode's factor at each of ``times``."""
        return np.stack([self._limit.decay(t) for t in times])

    def dynamics(self, kernel):
        """Discrete gradient descent with the fixed ``kernel`` (on ``x``, float64) and the problem's step."""
        return gradient_descent_mse(kernel[:self.n, :self.n], self.y_train, self.learning_rate, discrete=True)

    def predict(self, t, f0, kernel=None, dynamics=None) -> np.ndarray:
        """Test outputs at step ``t`` from ``f0`` ``(n_train + n_test, 1)`` with ``kernel`` (default: the
        closed form; ``dynamics`` its ``self.dynamics``, to reuse a decomposition)."""
        kernel = self.kernel if kernel is None else kernel
        dynamics = self._limit if dynamics is None else dynamics
        return dynamics(t, f0[:self.n], f0[self.n:], kernel[self.n:, :self.n])[1]


@dataclass
class Path:
    """One network along training, at the recorded ``times`` (steps), against the limit.

    Each gap is an RMS over the test outputs. ``linear``: the network's linearisation
    around its init (its own empirical NTK there, float64, the same discrete steps) against
    the limit from the same initial outputs; ``nonlinear``: the trained network against its
    linearisation; ``trained``: the trained network against the limit. ``kernel_change``:
    ``||Theta_N(t) - Theta_N(0)||_op`` on the training inputs. Without training (``trained=False``)
    only the linear part and the kernel's deviation at init are measured.
    """

    linear: np.ndarray                  # (n_times,)
    linear_infinity: float              # the linear part at t -> infinity (kernel regression from f0)
    kernel_deviation: float             # ||Theta_N(0) - Theta||_op on the training inputs
    nonlinear: np.ndarray | None = None
    trained: np.ndarray | None = None
    kernel_change: np.ndarray | None = None
    # The training residual y - f_train by mode of the closed-form training NTK (eigenvalues ascending),
    # at init and at each time: the network's ``(n_times + 1, n_train)``, the limit's from the same f0.
    residual_modes: np.ndarray | None = None
    limit_residual_modes: np.ndarray | None = None
    f_test: np.ndarray | None = None    # the trained network's test outputs at the last time
    f0: np.ndarray | None = None        # its initial outputs on x
    kernel0: np.ndarray | None = None   # its empirical NTK at init on x (float64)
    loss_ratio: float = float("nan")    # final / initial training loss
    diverged: bool = False


def follow(limit: Limit, width: int, key, times: tuple[int, ...], trained: bool = True,
           segments: tuple[int, ...] = (100, 10)) -> Path:
    """Initialise one network, measure its linear part at ``times`` without training, and (``trained``)
    train it by full-batch gradient descent (optax SGD), stopping at each of ``times`` (multiples of
    the shortest of ``segments``) to compare its test outputs and to recompute its kernel. The steps
    between two stops run as compiled calls of ``segments`` steps, the longest first: one program per
    segment length and width, and few calls. The linearisation trained by the same steps is exactly the discrete recursion with the
    network's NTK at init (a test checks it), so it is computed, not trained."""
    if any(t % min(segments) for t in times):
        raise ValueError(f"times {times} must be multiples of {min(segments)}")
    p = limit.problem
    spec = p.network(width)
    module, loss, apply = _compiled(spec)
    params = module.init(key, limit.x_train)
    k0 = one_hidden_layer_ntk(spec, params, limit.x)
    f0 = np.asarray(apply(params, jnp.asarray(limit.x, jnp.float32)), np.float64)
    own = limit.dynamics(k0)
    lin = np.array([limit.predict(t, f0, k0, own) for t in times])          # (n_times, n_test, 1)
    closed = np.array([limit.predict(t, f0) for t in times])
    n = limit.n
    path = Path(linear=np.sqrt(np.mean((lin - closed) ** 2, axis=(1, 2))),
                linear_infinity=rms(limit.predict(None, f0, k0, own), limit.predict(None, f0)),
                kernel_deviation=float(np.linalg.norm(k0[:n, :n] - limit.kernel[:n, :n], 2)), f0=f0, kernel0=k0)
    if not trained:
        return path
    out = {"nonlinear": [], "trained": [], "kernel_change": [], "residual_modes": [limit.modes(limit.y64 - f0[:n])]}
    done, diverged = 0, False
    for t, f_lin, f_closed in zip(times, lin, closed):
        while done < t:
            segment = next(k for k in sorted(segments, reverse=True) if done + k <= t)
            run = fit(loss, params, limit.optimizer, segment, args=(limit.x_train, limit.y_train))
            params, done, diverged = run.params, done + segment, diverged or bool(run.diverged)
        f_test = np.asarray(apply(params, limit.x_test), np.float64)
        k_t = one_hidden_layer_ntk(spec, params, limit.x_train)
        out["nonlinear"].append(rms(f_test, f_lin))
        out["trained"].append(rms(f_test, f_closed))
        out["kernel_change"].append(float(np.linalg.norm(k_t - k0[:n, :n], 2)))
        out["residual_modes"].append(limit.modes(limit.y64 - np.asarray(apply(params, limit.x_train), np.float64)))
    decay = limit.decay(np.array((0, *times)))
    modes = np.array(out.pop("residual_modes"))
    # The eigenvectors are an orthonormal basis: the loss ratio is that of the residuals' norms, squared.
    return dataclasses.replace(path, **{k: np.array(v) for k, v in out.items()}, f_test=f_test,
                               residual_modes=modes, limit_residual_modes=decay * modes[0],
                               loss_ratio=float(np.sum(modes[-1] ** 2) / np.sum(modes[0] ** 2)), diverged=diverged)


_COMPILED: dict = {}


def _compiled(spec: MLP):
    """``(module, loss, apply)`` of a spec, one set per spec: the same function objects for every
    network, segment and call, so that ``fit`` and the jitted forward pass compile once per width."""
    if spec not in _COMPILED:
        module = spec.flax()
        _COMPILED[spec] = (module, mse_loss(module.apply), jax.jit(module.apply))
    return _COMPILED[spec]
