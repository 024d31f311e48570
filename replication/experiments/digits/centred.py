"""Centred networks, ``f(x; theta) - f(x; theta_0)``, against the closed-form NTK mean predictor.

A network's output at initialisation is a draw from the NNGP, and gradient
descent carries the part of it that the training images do not pin down into
the test outputs. The centred network (``replication.train.centred``) starts
at zero outputs with the uncentred network's NTK, so its infinite-width limit
is the NTK mean predictor at the same step (Lee et al. 2019). It is trained
in the trained networks' pass (``trained.sweep``), from the same inits: since
``f(x_train; theta_0)`` is a constant, its loss is the uncentred network's on
targets ``y + f(x_train; theta_0)``.
"""
from __future__ import annotations

import numpy as np

from replication.experiments.digits.task import (ACCURACY_REASON, PAIRED_METHOD, accuracy, accuracy_panels,
                                                 finish_panels, rms)
from replication.report import Claim, Figure, Section, markdown_table, mean_sd
from replication.stats import paired_accuracy_difference
from replication.train import fit

SECTION = "Centred networks against the NTK mean predictor"
MEASURED = ("acc_centred", "rmse_centred", "agree_centred", "diverged_centred", "correct_centred")


def one_network(p, loss, forward, params, f0_train, f0_test) -> dict:
    """The centred network from ``params``, trained, against the NTK mean predictor at the same step.

    ``p`` is the sweep's ``trained.Problem``; ``loss`` and ``forward`` the
    uncentred network's ``mse_loss`` and jitted apply; ``f0_*`` its outputs
    at ``params``. Test accuracy, RMS difference of the test outputs from the
    mean predictor's, the fraction of test images given its class, divergence.
    """
    # f - f0 on mse is f on targets y + f0 (train.centred): the same loss and
    # optimizer objects, so the same compiled program as the network's.
    run = fit(loss, params, p.optimizer, p.steps, args=(p.x_train, p.y_train + f0_train))
    if run.diverged:
        return {"diverged_centred": True}
    f_c = np.asarray(forward(run.params, p.x_test) - f0_test, np.float64)
    return {"diverged_centred": False, "acc_centred": accuracy(f_c, p.labels_test),
            "correct_centred": f_c.argmax(-1) == p.labels_test,
            "rmse_centred": rms(f_c - p.mean_prediction),
            "agree_centred": float(np.mean(f_c.argmax(-1) == p.mean_prediction.argmax(-1)))}


def claim(config, result, name: str) -> Claim:
    """The widest centred networks' test accuracy minus the NTK mean predictor's at the same step,
    paired by test image."""
    m = result.networks[name]
    correct = m["correct_centred"][-1, :m["centred_seeds"]]
    gap = ci = None
    if np.all(np.isfinite(correct)):
        mean_correct = m["mean_prediction"].argmax(-1) == result.labels_test
        gap, ci, _ = paired_accuracy_difference(correct, np.broadcast_to(mean_correct, correct.shape))
    return Claim(
        id=f"digits_centred_accuracy_{name}", section=SECTION,
        statement=(f"{name}: widest centred networks' test accuracy -> the closed-form NTK mean "
                   f"predictor's at the same step (width {m['width'][-1]})"),
        prediction="accuracy gap -> 0", expected=0.0, measured=gap, ci=ci,
        tolerance=config.accuracy_band, reason=ACCURACY_REASON,
        interval_method=PAIRED_METHOD.format(n=result.n_test, runs=m["centred_seeds"]), n_seeds=m["centred_seeds"],
        fit_range=(m["width"][-1], m["width"][-1]))


def section(config, result) -> Section:
    centred = {name: m for name, m in result.networks.items() if "acc_centred" in m}
    rows = []
    for name, m in centred.items():
        cs = m["centred_seeds"]
        rows += [[name, w, *(mean_sd(a, empty="diverged") for a in (
                      m["acc_net"][i], m["acc_centred"][i, :cs], m["rmse_centred"][i, :cs],
                      m["agree_centred"][i, :cs])), int(np.nansum(m["diverged_centred"][i, :cs]))]
                 for i, w in enumerate(m["width"])]
    limits = [[name, f"{m['acc_mean_step']:.4f}", f"{result.closed[name]['ntk']['accuracy']:.4f}",
               f"{result.closed[name]['ntk']['condition']:.3g}"] for name, m in centred.items()]
    seeds = {m["centred_seeds"] for m in centred.values()}
    seeds_text = (f"the first {seeds.pop()} of the {config.seeds} seeds" if len(seeds) == 1 and
                  config.centred_seeds not in (None, config.seeds) else f"all {config.seeds} seeds")
    return Section(SECTION, _body(config, seeds_text, rows, limits), [
        Figure("centred", _figure(config, result, centred), "Test accuracy against width, per "
               "architecture: uncentred networks (circles, mean and sd over seeds) and their own NTK "
               "predictions at the same step (squares); centred networks f(x; theta) - f(x; theta_0) "
               "(triangles) and the closed-form NTK mean predictor at the same step (dashed), which "
               "theory says they approach; dotted: NTK regression at t -> infinity, the table's NTK column.")])


def _body(config, seeds_text: str, rows: list, limits: list) -> str:
    return f"""
A network's output at initialisation, f(x; theta_0), is a draw from the NNGP (order 1 per output,
against targets 0.9 and -0.1), and gradient descent on mse carries the part of it that the training
images do not pin down into the test outputs. The closed-form NTK regression of the table starts
from zero outputs. A **centred network** removes the difference: its output is
f(x; theta) - f(x; theta_0), theta_0 the initial parameters, held fixed (`replication.train.centred`;
the centred model of Chizat et al. 2019). It is zero at initialisation and has the uncentred
network's Jacobian, so the same empirical NTK, at every theta (a test checks both). Trained by
gradient descent on mse it follows the NTK dynamics from zero outputs, whose infinite-width limit
is the closed-form mean predictor at the same step (Lee et al. 2019). Zero-initialising the readout
would also start from zero outputs, but its NTK at initialisation loses every hidden layer's term
(their gradients pass through the zero readout weights): another kernel, so it was not used.

Since f(x; theta_0) on the training images is a constant, the centred network's loss is the
uncentred network's on targets y + f(x_train; theta_0): each centred network is trained with the
uncentred one's compiled program, from the same init, optimizer, step size and number of steps
({config.steps}), at every width, with {seeds_text} (mean +- sd over them; the uncentred column over
all {config.seeds}). "RMS gap" and "same class" compare its test outputs with the closed-form NTK mean
predictor at step {config.steps}, which is the same for every seed.

{markdown_table(["architecture", "width", "test accuracy, uncentred", "test accuracy, centred",
                 "RMS gap, centred vs NTK mean predictor", "same class as NTK mean predictor",
                 "centred diverged"], rows)}

The NTK mean predictor, from zero outputs, at the networks' training time and at t -> infinity
(the table's NTK column), with the training kernel's condition number:

{markdown_table(["architecture", f"NTK mean predictor, step {config.steps}", "NTK, t -> infinity",
                 "NTK condition"], limits)}

Gradient descent for {config.steps} steps at half the stable step shrinks the training residual's
component along a kernel mode of eigenvalue lambda by exp(-{config.steps} lambda / lambda_max) at
most: a mode with lambda / lambda_max below about 1 / {config.steps} is barely trained, and a kernel
whose condition number is far above {config.steps} leaves much of the residual in such modes. Where the
two columns differ, that is training time, not width: the centred networks are measured against
the first column, the prediction for their own training time, as theory states it.
"""


def _figure(config, result, centred: dict):
    """The trained networks' accuracy panels (``accuracy_panels``) with the centred networks, the
    NTK mean predictor at their step and at t -> infinity added."""
    fig, axes = accuracy_panels(centred)
    for ax, (name, m) in zip(axes[0], centred.items()):
        w = np.asarray(m["width"], float)
        cs = m["centred_seeds"]
        ax.errorbar(w, np.nanmean(m["acc_centred"][:, :cs], axis=1),
                    yerr=np.nanstd(m["acc_centred"][:, :cs], axis=1), fmt="^-", color="C3", ms=4, capsize=2,
                    label="centred, trained")
        ax.axhline(m["acc_mean_step"], color="C3", ls="--", lw=1,
                   label=f"NTK mean predictor, step {config.steps}")
        ax.axhline(result.closed[name]["ntk"]["accuracy"], color="k", ls=":", lw=1, label="NTK, t -> infinity")
    return finish_panels(fig, axes, legend_size=6)
