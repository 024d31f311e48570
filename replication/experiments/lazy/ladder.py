"""The width ladder: what NTK-parameterized networks move in training, against width.

One-hidden-layer networks trained to one fixed loss (``replication.fixed_loss``)
at every width. Relative to initialisation, in Frobenius norm: the hidden
weight matrix ``W`` (``d x N``), the hidden features ``phi(x)`` on held-out
inputs, and the empirical NTK on held-out inputs. Under NTK parameterization
the first two move as ``N^(-1/2)`` and the kernel by at most that (Lee et al.
2019, Theorem 2.1); muP networks of the same widths, trained to the same
loss, are the contrast.

Random streams: those of ``replication.fixed_loss.ladders``.
"""
from __future__ import annotations

from dataclasses import dataclass

from replication.fixed_loss import Ladders, Task, ladders
from replication.report import Claim, Figure, Findings, Section, fit_text, fmt, loglog_figure, markdown_table, mean_sd
from replication.stats import EXPONENT_BAND, fit_finite
from replication.sweep import Streams, measured_once

SECTION = "Under NTK parameterization the weights, the features and the kernel freeze"
MEASURES = ("weights", "features", "kernel")


@dataclass(frozen=True)
class Config:
    task: Task = Task()
    widths: tuple[int, ...] = (16, 64, 256, 1024, 4096, 8192)
    seeds: int = 8                # independent networks per width (the same keys for NTK param and muP)
    exponent_tolerance: float = EXPONENT_BAND


@measured_once
def trained(task: Task, widths: tuple[int, ...], seeds: int, streams: Streams) -> Ladders:
    """``replication.fixed_loss.ladders`` with the empirical NTK's change, kept for the run.

    The quality study reads the same networks: within one run (one
    ``streams``) they are trained once.
    """
    return ladders(task, widths, seeds, streams, kernel=True)


def measure(config: Config, streams: Streams) -> Ladders:
    return trained(config.task, config.widths, config.seeds, streams)


def findings(config: Config, lad: Ladders) -> Findings:
    """Three exponent claims (weights, features: ``-1/2``; kernel: at most ``-1/2``), the
    table of changes and fits, and the log-log figure of both parameterizations."""
    ntk = lad.results["ntk"]
    fits = {k: fit_finite(config.widths, ntk[k]) for k in MEASURES}
    figure = Figure("ladder", _figure(config, lad, fits),
                    "Relative change in training against width (geometric mean over seeds, band: the seeds' "
                    "range; thin lines: the fits). Left NTK parameterization, right muP.")
    series = {"ladder": {"width": list(config.widths), **lad.settings,
                         **{f"ntk/{k}": ntk[k] for k in (*MEASURES, "steps", "diverged", "reached")},
                         **{f"mup/{k}": lad.results["mup"][k] for k in ("weights", "features")},
                         "fits": {k: v for k, v in fits.items() if v is not None}}}
    return Findings(_claims(config, fits), [Section(SECTION, _prose(config, lad, fits), [figure])], series)


def _claims(config: Config, fits: dict) -> list[Claim]:
    claims = [Claim.of_fit(fits[key], id=f"lazy_ntk_{key}_rate", section=SECTION,
                           statement=f"NTK param, trained to a fixed loss: relative change of the {what}",
                           prediction="~ width^(-1/2)", expected=-0.5, tolerance=config.exponent_tolerance)
              for key, what in (("weights", "hidden weights"),
                                ("features", "hidden features phi(x) on held-out inputs"))]
    claims.append(Claim.of_fit(
        fits["kernel"], id="lazy_ntk_kernel_rate", section=SECTION,
        statement="NTK param, trained to a fixed loss: relative change of the empirical NTK on held-out inputs",
        prediction="<~ width^(-1/2) (Lee et al. 2019, Thm 2.1)", expected=-0.5,
        tolerance=config.exponent_tolerance, relation="<="))
    return claims


def _figure(config: Config, lad: Ladders, fits: dict):
    ntk, mup, widths = lad.results["ntk"], lad.results["mup"], config.widths
    return loglog_figure(
        {"NTK parameterization": {
            "hidden weights": (widths, ntk["weights"], fits["weights"]),
            "hidden features (held-out)": (widths, ntk["features"], fits["features"]),
            "empirical NTK (held-out)": (widths, ntk["kernel"], fits["kernel"])},
         "muP, same task and loss": {
            "hidden weights": (widths, mup["weights"], None),
            "hidden features (held-out)": (widths, mup["features"], None)}},
        xlabel="width", ylabel="relative change, trained vs init", reference_exponent=-0.5,
        reference_label="width^(-1/2)")


def _tables(config: Config, lad: Ladders, fits: dict) -> tuple[str, str]:
    """The changes at every width (mean +- sd over seeds, with the runs' health) and the fits."""
    ntk, mup = lad.results["ntk"], lad.results["mup"]

    def ms(a):
        return mean_sd(a, ".3g", ".2g")

    rows = [[w, ms(ntk["weights"][i]), ms(ntk["features"][i]), ms(ntk["kernel"][i]), ms(mup["features"][i]),
             ms(ntk["steps"][i]), int(ntk["diverged"][i].sum()), int((~ntk["reached"][i]).sum())]
            for i, w in enumerate(config.widths)]
    fit_rows = [[k, fit_text(fits[k]), fmt(fits[k].prefactor)] for k in MEASURES if fits[k] is not None]
    return (markdown_table(["width", "weights", "features", "NTK", "muP features", "steps", "diverged",
                            "not reached"], rows),
            markdown_table(["change of", "exponent", "prefactor"], fit_rows))


def _prose(config: Config, lad: Ladders, fits: dict) -> str:
    task, settings = config.task, lad.settings
    table, fit_table = _tables(config, lad, fits)
    return f"""
One-hidden-layer {task.activation} networks (W_std = {fmt(task.W_std)}, b_std = {fmt(task.b_std)}) in NTK
parameterization at widths {", ".join(map(str, config.widths))}, {config.seeds} seeds each, trained by full-batch
gradient descent (optax SGD) on `mse` over the {task.n_train} training inputs of the task below, from
centred outputs (f(x; w) - f(x; w_0), so every network starts at output 0 and the limit's dynamics start
from zero), until the training loss is {fmt(task.target_fraction)} of its initial value
({fmt(settings['target'])}): the same loss at every width. The step is {fmt(task.ntk_lr_fraction)} of the
stability limit 2 n / lambda_max of the closed-form training NTK, eta = {fmt(settings['ntk_lr'])}, the same at
every width; the infinite-width network reaches the target after {settings['t_star']} steps, and no network
was allowed more than {settings['ntk_steps']}.

Measured after training, relative to initialisation (Frobenius norms): the hidden layer's weight matrix
(d x N), the hidden features phi(x) = relu(h(x)) that the readout sees, on {task.n_test} held-out inputs,
and one network's empirical NTK (structured derivatives) on {task.n_kernel} held-out inputs. Mean +- sd
over seeds; the last columns count runs that diverged and runs that stopped at the step cap before
the target loss (none expected):

{table}

Fitted exponents (95% interval over seeds) and prefactors, change ~ prefactor x width^exponent:

{fit_table}

**Why the kernel's claim is an upper bound.** Each hidden unit's features move by O(N^(-1/2)), in a
direction proportional to its own readout weight, whose sign is independent of the unit's features at
initialisation. The NTK is an average over the N units, so these first-order moves add up as a random
walk: O(N^(-1/2)) x N^(-1/2) = O(N^(-1)) for a smooth activation (Dyer and Gur-Ari 2020). For ReLU the
units whose pre-activation crosses 0 on some input (a fraction O(N^(-1/2))) change their derivative by
O(1), which gives about N^(-3/4); the `ntk` report measures the same. Lee et al.'s theorem bounds the
change by O(N^(-1/2)), and that bound is the claim; the weights and the features have no such
cancellation (each unit's change is counted in norm), and move as N^(-1/2) exactly. The muP column
shows the contrast: trained to the same loss on the same task, muP's features move by an amount that
does not vanish with width.
"""
