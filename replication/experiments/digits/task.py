"""What every study of the experiment shares: the images, the architectures and their closed forms.

Random streams: ``split`` (the stratified split and subsets of the digits),
``baselines`` (scikit-learn's logistic regression) and ``networks`` (the
trained networks' initialisations, one key per width and seed).
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from replication.compat import enable_x64

from replication.arch import CNN, MLP
from replication.data import Digits, digits
from replication.dynamics import gradient_descent_mse
from replication.kernels import blocked
from replication.sweep import Streams

ARCHITECTURES = ("mlp-1", "mlp-2", "mlp-3", "cnn-flatten", "cnn-gap")
# Accuracy claims: two classifiers on the same test images, compared image by image.
ACCURACY_REASON = ("a resolution of one point of accuracy: theory says the difference tends to 0 and "
                   "gives no finite-width size for it")
PAIRED_METHOD = ("paired image by image over the {n} test images (each image's difference averaged over "
                 "{runs} networks; for one network, McNemar's interval), Student-t")


@dataclass(frozen=True)
class Task:
    """The data set, the architectures' common hyperparameters and how their kernels are computed."""

    test_size: int = 450               # images held out of the 1,797 (25%)
    n_train: int | None = 200          # a stratified subset of the training split; None: all of it
    n_test: int | None = 200           # a stratified subset of the test split; None: all of it
    activation: str = "relu"
    W_std: float = 2**0.5
    b_std: float = 0.1
    cnn_depth: int = 1                 # convolutions of the CNN, 3x3, stride 1, SAME padding
    cnn_kernel_size: int = 3
    kernel_batch: int = 50             # block size (inputs per side) of the closed-form kernels
    diag_reg: float = 0.0              # kernel regression's regulariser, relative to the mean trace

    def data(self, streams: Streams) -> Digits:
        """The split (and subsets) of the digits drawn by the ``split`` stream."""
        return digits(self.test_size, streams.offset("split"), self.n_train, self.n_test)

    def spec(self, name: str, width: int) -> MLP | CNN:
        """``mlp-<depth>`` or ``cnn-<readout>`` at ``width`` (channels for the CNN), 10 outputs."""
        if name not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {name!r}; allowed: {', '.join(ARCHITECTURES)}")
        common = dict(activation=self.activation, W_std=self.W_std, b_std=self.b_std, out_dim=10)
        if name.startswith("mlp-"):
            return MLP(width, depth=int(name[4:]), **common)
        return CNN(width, depth=self.cnn_depth, kernel_size=self.cnn_kernel_size, readout=name[4:],
                   **common)


def inputs_of(spec, x: np.ndarray) -> np.ndarray:
    """Images ``(n, 8, 8, 1)`` for a CNN, vectors ``(n, 64)`` for an MLP."""
    return x if isinstance(spec, CNN) else Digits.flat(x)


def accuracy(outputs, labels) -> float:
    """The fraction of images whose largest output is their class."""
    return float(np.mean(np.asarray(outputs).argmax(-1) == np.asarray(labels)))


def mean_squared_error(outputs, targets) -> float:
    """``mean((outputs - targets)^2)`` over every entry, in float64."""
    return float(np.mean((np.asarray(outputs, np.float64) - np.asarray(targets, np.float64)) ** 2))


def accuracy_panels(networks: dict):
    """``(fig, axes)``: one panel per architecture of ``networks`` (``trained.sweep``'s arrays), one
    shared accuracy axis, each with the trained networks' test accuracy and their own NTK
    predictions' against width (mean and sd over seeds). Callers add to the panels and then call
    ``finish_panels``."""
    fig, axes = plt.subplots(1, len(networks), figsize=(2.9 * len(networks), 3.3), sharey=True, squeeze=False)
    for ax, (name, m) in zip(axes[0], networks.items()):
        w = np.asarray(m["width"], float)
        ax.errorbar(w, np.nanmean(m["acc_net"], axis=1), yerr=np.nanstd(m["acc_net"], axis=1), fmt="o-",
                    color="C0", ms=4, capsize=2, label="trained")
        ax.errorbar(w, np.nanmean(m["acc_ntk"], axis=1), yerr=np.nanstd(m["acc_ntk"], axis=1), fmt="s--",
                    color="C1", ms=3, lw=1, capsize=2, label="its NTK prediction, same step")
        ax.set_xscale("log", base=2)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("channels" if name.startswith("cnn") else "width")
        ax.grid(True, alpha=0.25)
    axes[0, 0].set_ylabel("test accuracy")
    return fig, axes


def finish_panels(fig, axes, legend_size: int = 7):
    """The legend in the last panel, the layout tightened; returns ``fig``."""
    axes[0, -1].legend(fontsize=legend_size, loc="lower right")
    fig.tight_layout()
    return fig


def rms(a) -> float:
    """Root mean square over every entry."""
    return float(np.sqrt(np.mean(np.square(a))))


# ---------------------------------------------------------------------------
# Closed forms, computed in batches.

def closed_form_kernels(spec, x_train, x_test, batch_size: int) -> dict:
    """Closed-form NNGP and NTK in float64: ``{"nngp"|"ntk": (train-train (n, n), test-train (m, n))}``.

    Computed by ``replication.kernels.blocked`` in ``batch_size x batch_size``
    blocks, so memory holds one block of the kernel's intermediate
    covariances (per device); a CNN goes through ``CNN.stax_on_patches``.
    """
    with enable_x64():
        if isinstance(spec, CNN):
            kernel_fn = spec.stax_on_patches()[2]
            xtr, xte = (spec.patches(jnp.asarray(x, jnp.float64)) for x in (x_train, x_test))
        else:
            kernel_fn = spec.stax()[2]
            xtr, xte = (jnp.asarray(x, jnp.float64) for x in (x_train, x_test))
        both = ("nngp", "ntk")
        k_tt = blocked(kernel_fn, xtr, None, both, batch_size=batch_size)
        k_te = blocked(kernel_fn, xte, xtr, both, batch_size=batch_size)
        return {g: (k_tt[i], k_te[i]) for i, g in enumerate(both)}


@functools.lru_cache(maxsize=len(ARCHITECTURES))
def closed_form(task: Task, name: str, streams: Streams) -> tuple[dict, dict]:
    """``(kernels, summary)`` of one architecture on the task's data; computed once per run.

    ``kernels`` is ``closed_form_kernels``'s. ``summary`` holds the seconds
    they took and, for the NNGP and the NTK, kernel regression at ``t ->
    infinity`` from zero outputs (the mean predictor): test accuracy and mse,
    and the training kernel's largest eigenvalue and condition number.
    Kept per run, so that the trained networks reuse the kernels the kernel
    study computed.
    """
    data = task.data(streams)
    spec = task.spec(name, 1)
    start = time.perf_counter()
    kernels = closed_form_kernels(spec, inputs_of(spec, data.x_train), inputs_of(spec, data.x_test),
                                  task.kernel_batch)
    summary = {"kernel_seconds": time.perf_counter() - start}
    for g in ("nngp", "ntk"):
        k_tt, k_te = kernels[g]
        lam = np.linalg.eigvalsh(k_tt)
        pred = gradient_descent_mse(k_tt, data.y_train, 1.0, diag_reg=task.diag_reg)(k_test_train=k_te)[1]
        summary[g] = {"accuracy": accuracy(pred, data.labels_test), "mse": mean_squared_error(pred, data.y_test),
                      "lambda_max": float(lam[-1]), "condition": float(lam[-1] / lam[0])}
    return kernels, summary
