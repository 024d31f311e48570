"""Lazy training by output scaling (Chizat, Oyallon and Bach 2019).

For a model ``h(w)`` with ``h(w_0) = 0``, gradient descent on
``L(alpha h(w)) / alpha^2`` moves ``alpha h`` by the same amount per step
whatever ``alpha`` (the gradient is ``J^T (alpha h - y) / alpha`` and the
output moves by ``alpha J dw``): the function-space dynamics are the unscaled
model's to first order, while the parameters, and with them the features,
move by ``O(1 / alpha)``. Here ``h`` is one centred muP network of a fixed
width (``replication.fixed_loss.scaled_model``), trained to the fixed loss
with muP's step, at every ``alpha``; its features' relative change should
fall as ``alpha^(-1)``.

Random streams: ``alpha`` (the networks, the same ones at every ``alpha``),
and ``direction``, ``train_inputs``, ``test_inputs`` and ``networks`` (the
task and muP's step, as in ``replication.fixed_loss.ladders``).
"""
from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from replication.fixed_loss import (Task, mup_learning_rate, single_index_data, spec_of, target_loss,
                                    train_members)
from replication.report import Claim, Figure, Findings, Section, fmt, loglog_figure, markdown_table, mean_sd
from replication.stats import EXPONENT_BAND, fit_finite
from replication.sweep import Streams, progress

SECTION = "Lazy training by output scaling"
MEASURES = ("weights", "features", "test_mse", "steps", "diverged", "reached")


@dataclass(frozen=True)
class Config:
    task: Task = Task()
    width: int = 256              # the one muP network's width
    alphas: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)
    seeds: int = 8                # independent networks, each trained at every alpha
    exponent_tolerance: float = EXPONENT_BAND


def measure(config: Config, streams: Streams) -> dict:
    """``train_members``'s measures stacked over ``alphas``, shape ``(n_alphas, seeds, ...)``, and
    ``mup_lr``, the step of muP's base optimizer."""
    task = config.task
    data = single_index_data(task, streams)
    target = target_loss(task, data[1])
    mup_lr = mup_learning_rate(task, streams, data[0])
    spec = spec_of(task, "mup", config.width)
    optimizer = spec.optimizer("sgd", mup_lr)
    keys = jnp.stack([streams.network("alpha", config.width, s) for s in range(config.seeds)])
    runs = []
    with progress(len(config.alphas), "lazy output scaling") as bar:
        for a in np.asarray(config.alphas, np.float64):
            runs.append(train_members(spec, keys, data, optimizer, target, task.mup_max_steps, alpha=float(a)))
            bar.update()
    return {**{k: np.stack([r[k] for r in runs]) for k in runs[0]}, "mup_lr": mup_lr}


def findings(config: Config, m: dict) -> Findings:
    """One claim: the features' relative change ~ ``alpha^(-1)``; the table, the figure and the series."""
    alphas = np.asarray(config.alphas, np.float64)
    fits = {k: fit_finite(alphas, m[k]) for k in ("weights", "features")}
    claims = [Claim.of_fit(
        fits["features"], id="lazy_alpha_features_rate", section=SECTION,
        statement=f"Output scaled by alpha, loss by alpha^-2 (muP, width {config.width}): "
                  "relative change of the hidden features",
        prediction="~ alpha^(-1) (Chizat, Oyallon and Bach 2019)", expected=-1.0,
        tolerance=config.exponent_tolerance)]
    figure = loglog_figure(
        {f"muP, width {config.width}": {
            "hidden weights": (alphas, m["weights"], fits["weights"]),
            "hidden features (held-out)": (alphas, m["features"], fits["features"])}},
        xlabel="alpha", ylabel="relative change, trained vs init", reference_exponent=-1.0,
        reference_label="alpha^(-1)")
    series = {"alpha": {"alpha": alphas, "width": config.width, **{k: m[k] for k in MEASURES},
                        "fits": {k: v for k, v in fits.items() if v is not None}}}
    return Findings(claims, [Section(SECTION, _prose(config, m, fits), [Figure(
        "alpha", figure, "Relative change in training against the output scale alpha (geometric mean over "
        "seeds, band: range). Dashed: alpha^(-1).")])], series)


def _prose(config: Config, m: dict, fits: dict) -> str:
    alphas = np.asarray(config.alphas, np.float64)

    def ms(a):
        return mean_sd(a, ".3g", ".2g")

    rows = [[fmt(a), ms(m["weights"][i]), ms(m["features"][i]), ms(m["test_mse"][i]), ms(m["steps"][i]),
             int(np.sum(m["diverged"][i])), int(np.sum(~m["reached"][i]))] for i, a in enumerate(alphas)]
    f, w = fits["features"], fits["weights"]
    return f"""
Chizat, Oyallon and Bach (2019): for a model h(w) with h(w_0) = 0, gradient descent on
L(alpha h(w)) / alpha^2 moves alpha h by the same amount per step whatever alpha (the gradient is
J^T (alpha h - y) / alpha and the output moves by alpha J dw), so the function-space dynamics are those
of the unscaled model to first order, while the parameters move by O(1 / alpha): large alpha is lazy
training at any width. Here h is the muP network of width {config.width} of the section above,
centred (h(x; w) = f(x; w) - f(x; w_0)), with the same step eta = {fmt(m['mup_lr'])} (its base optimizer
with muP's per-layer factors) and trained to the same loss, for alpha = {", ".join(fmt(a) for a in alphas)},
{config.seeds} seeds. Mean +- sd over seeds:

{markdown_table(["alpha", "weights", "features", "test mse", "steps", "diverged", "not reached"], rows)}

The features' change falls as alpha^({fmt(None if f is None else f.exponent)})
{'' if f is None else f'[{fmt(f.ci[0])}, {fmt(f.ci[1])}]'}; the weights' as
alpha^({fmt(None if w is None else w.exponent)}). As the features freeze, the
test error rises from muP's towards the kernel regime's: the same network, the same data, the same step,
and only the output's scale decides whether it learns features.
"""
