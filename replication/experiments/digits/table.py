"""The best finite network against NNGP and NTK regression, in the style of Lee et al. 2018, Table 1.

It reads what the kernel study and the trained networks measured (each
measured once per run), so its configuration is theirs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from replication.experiments.digits import kernels, trained
from replication.report import Findings, Section, markdown_table
from replication.sweep import Streams

SECTION = "Best finite network, NNGP and NTK (Lee et al. 2018, Table 1)"


@dataclass(frozen=True)
class Config:
    kernels: kernels.Config = kernels.Config()
    trained: trained.Config = trained.Config()


@dataclass
class Result:
    kernels: kernels.Result
    trained: trained.Result


def measure(config: Config, streams: Streams) -> Result:
    return Result(kernels.measure(config.kernels, streams), trained.measure(config.trained, streams))


def findings(config: Config, result: Result) -> Findings:
    return Findings(sections=[Section(SECTION, _body(config, _rows(config, result)))])


def _best(m: dict, key: str, seeds: int) -> str:
    """The width whose first ``seeds`` networks have the highest mean test accuracy."""
    mean = np.nanmean(m[key][:, :seeds], axis=1)
    if not np.any(np.isfinite(mean)):
        return "diverged"
    i = int(np.nanargmax(mean))
    return f"{mean[i]:.4f} (width {m['width'][i]}, mean of {seeds})"


def _rows(config: Config, result: Result) -> list[list]:
    closed = {**result.trained.closed, **result.kernels.closed}
    rows = []
    for name in dict.fromkeys((*config.kernels.architectures, *config.trained.architectures)):
        m = result.trained.networks.get(name)
        if m is None:
            centred = uncentred = "not trained in this preset"
            at_step = ""
        else:
            uncentred = _best(m, "acc_net", config.trained.seeds)
            centred = _best(m, "acc_centred", m["centred_seeds"]) if "acc_centred" in m else "not centred"
            at_step = f"{m['acc_mean_step']:.4f}" if "acc_mean_step" in m else ""
        rows.append([name, centred, uncentred, closed[name]["nngp"]["accuracy"], closed[name]["ntk"]["accuracy"],
                     at_step])
    return rows + [[f"{k} (baseline)", "", "", "", f"{v['accuracy']:.4f}", ""]
                   for k, v in result.kernels.baselines.items()]


def _body(config: Config, rows: list[list]) -> str:
    steps = config.trained.steps
    return f"""
Test accuracy. Best finite network: the width whose networks, trained for {steps} steps of
gradient descent, have the highest mean test accuracy, centred (f(x; theta) - f(x; theta_0), from
zero outputs as the kernels' predictions are; previous section) and uncentred (f(x; theta), which
keeps its random initial function). NNGP and NTK: closed-form kernel regression, the mean
predictors, at t -> infinity; last column: the NTK mean predictor at the networks' training time,
the limit that the centred networks approach with width (the claims on centred networks). Unlike Lee et al.
2018 no hyperparameter was tuned for the networks or kernels (W_std, b_std, depth and training
time are fixed above).

The uncentred column is not a fair comparison with the kernels: the initial outputs' standard
deviation (about the square root of the NNGP's diagonal, of order 1) is large against the targets'
0.9 and -0.1, and the part of it that the training images do not pin down stays in the test
outputs; the uncentred networks approach their own NTK predictions, from the same initial outputs
(the claims on widest networks' accuracy), not the mean predictor. The centred column compares like with like; what
is left between it and the NTK column is finite width and, where the last two columns differ,
training time.

{markdown_table(["architecture", "best centred network", "best uncentred network", "NNGP", "NTK",
                 f"NTK, step {steps}"], rows)}
"""
