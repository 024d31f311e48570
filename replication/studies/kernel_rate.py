"""One network's kernel against the closed form, across widths: the sweep, its fits, its claims.

The ``nngp`` and ``ntk`` experiments make the same first claim about two
kernels: the relative Frobenius error between one randomly initialised
network's empirical kernel and neural-tangents' closed form falls as
``width^(-1/2)``. Each layer's contribution to either kernel is an average
over ``width`` units that are independent given the layer below, so the
central limit theorem sets the rate; the bias of the mean is ``O(1/width)``.

Random streams: ``inputs`` (the points on the sphere) and ``kernel_rate``
(the networks).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import jax
import numpy as np

from replication.arch import MLP
from replication.data import sphere_inputs
from replication.kernels import closed_form, empirical_nngp, empirical_ntk
from replication.report import (Claim, Figure, Findings, Section, fit_text, fmt, loglog_figure, markdown_table,
                                verdict_cell)
from replication.stats import EXPONENT_BAND, fit_power_law, jackknife, relative_frobenius_error
from replication.studies import kernel_perturbation
from replication.sweep import Streams, progress

NAMES = {"nngp": "NNGP", "ntk": "NTK"}
METHODS = {
    "ntk": "the empirical NTK (neural-tangents, structured derivatives)",
    "nngp": ("the empirical NNGP `sigma_w^2 <phi(x), phi(x')> + sigma_b^2` of its readout's "
             "input features `phi`"),
}


@dataclass(frozen=True)
class Config:
    kind: str = "ntk"            # which kernel: "ntk" or "nngp"
    widths: tuple[int, ...] = tuple(2**k for k in range(4, 13))  # 16 .. 4096: 2.4 decades
    depths: tuple[int, ...] = (1, 2, 3)
    activations: tuple[str, ...] = ("relu", "erf")
    parameterizations: tuple[str, ...] = ("ntk", "standard")
    seeds: int = 8               # independent networks per width: the replicates behind each interval
    n_inputs: int = 16           # points on the sphere of radius sqrt(input_dim)
    input_dim: int = 8
    W_std: float = 2**0.5
    b_std: float = 0.1
    expected_exponent: float = -0.5
    exponent_tolerance: float = EXPONENT_BAND
    # The NNGP's prefactor: sqrt(N E[error^2]) against perturbation theory's leading variance,
    # pooled over the widths from here up, where its O(1/N) corrections are below 1%; a 10%
    # resolution.
    prefactor_min_width: int = 256
    prefactor_tolerance: float = 0.1
    prediction_draws: int = 2**18   # Monte Carlo draws of the perturbation's fresh covariance

    @property
    def section(self) -> str:
        return f"{NAMES[self.kind]} at initialisation against the closed form"


def inputs(config, streams: Streams) -> jax.Array:
    """The sweep's inputs ``(n_inputs, input_dim)`` from the stream ``inputs``; ``config`` is this
    study's or any other with those two settings (the experiment's other studies at
    initialisation look at the same points)."""
    return sphere_inputs(streams.key("inputs"), config.n_inputs, config.input_dim)


@dataclass
class Result:
    errors: dict[tuple, np.ndarray]    # (parameterization, activation, depth) -> (n_widths, seeds)
    # NNGP only, (activation, depth) -> sqrt(sum_ab N Var(K^_ab)) / |K|_F, the error's predicted
    # prefactor to leading order (``kernel_perturbation``); empty for the NTK.
    prefactors: dict[tuple, float]


def measure(config: Config, streams: Streams) -> Result:
    """Errors ``(n_widths, seeds)`` for every (parameterization, activation, depth), and for the
    NNGP the error's predicted prefactor.

    Every configuration of one depth, width and replicate is a network drawn
    from the same key; parameterization and activation change only how its
    standard normals are scaled and what the forward pass does. So the
    normals are drawn once (``MLP.init_from_unit``) and shared: drawing them is
    most of the cost at the wide end (a width-8192 depth-3 network has 134M
    weights), and the results are those of drawing each network afresh.
    """
    x = inputs(config, streams)
    configs = list(itertools.product(config.parameterizations, config.activations))
    errors = {(p, a, d): np.empty((len(config.widths), config.seeds))
              for (p, a), d in itertools.product(configs, config.depths)}
    limits = {}
    with progress(len(config.depths) * len(config.widths) * config.seeds, f"{config.kind} kernels") as bar:
        for d in config.depths:
            for i, width in enumerate(config.widths):
                unit_spec = MLP(width=width, depth=d, activation=config.activations[0],
                                W_std=config.W_std, b_std=config.b_std).unit_spec
                for r in range(config.seeds):
                    # Eager init: its primitives are compiled once per shape and
                    # reused across the sweep, where a jitted init recompiles each.
                    unit = unit_spec.flax().init(streams.network("kernel_rate", width, r), x)
                    for p, a in configs:
                        spec = MLP(width=width, depth=d, activation=a, W_std=config.W_std,
                                   b_std=config.b_std, parameterization=p)
                        # Only the standard-parameterization NTK depends on the width.
                        at = width if (config.kind == "ntk" and p == "standard") else None
                        if (p, a, d, at) not in limits:
                            limits[p, a, d, at] = closed_form(spec, x, get=config.kind)
                        errors[p, a, d][i, r] = _one_network_error(
                            config.kind, spec, x, spec.init_from_unit(unit), limits[p, a, d, at])
                    bar.update()
    prefactors = {}
    if config.kind == "nngp":
        # E |K^ - K|_F^2 = sum_ab Var(K^_ab) + |E K^ - K|_F^2 = (sum_ab var_ab) / N + O(N^-2).
        rng = streams.numpy("kernel_rate")
        for a, d in itertools.product(config.activations, config.depths):
            pert = kernel_perturbation.nngp_bias(np.asarray(x), d, a, config.W_std, config.b_std, rng,
                                                 draws=config.prediction_draws)
            prefactors[a, d] = float(np.sqrt(np.sum(pert["var"]) / np.sum(pert["limit"] ** 2)))
    return Result(errors, prefactors)


def _one_network_error(kind: str, spec: MLP, x: jax.Array, params, limit) -> float:
    module = spec.flax()
    empirical = (empirical_ntk(module.apply, params, x) if kind == "ntk"
                 else empirical_nngp(module, params, x))
    return relative_frobenius_error(empirical, limit)


def findings(config: Config, result: Result) -> Findings:
    """One claim per configuration: the fitted exponent is ``expected_exponent`` within the band;
    for the NNGP, one on the prefactor against its prediction.

    A section with the table of fits and the log-log figure, and one listing
    the mean error at every width.
    """
    errors = result.errors
    kind, widths, name = config.kind, config.widths, NAMES[config.kind]
    fits = {k: fit_power_law(widths, e) for k, e in errors.items()}
    claims = [
        Claim.of_fit(f, id=f"{kind}_init_rate_{p}_{a}_depth{d}",
                     statement=f"{name} at init -> closed form ({a}, depth {d}, {p} param.)",
                     prediction="error ~ width^(-1/2)", expected=config.expected_exponent,
                     tolerance=config.exponent_tolerance, section=config.section)
        for (p, a, d), f in fits.items()
    ]
    intro = f"""
Inputs: {config.n_inputs} points on the sphere of radius sqrt({config.input_dim}) in
R^{config.input_dim}. Networks: MLPs with W_std = {fmt(config.W_std)}, b_std = {fmt(config.b_std)} in every
layer, one output. At each width, {config.seeds} independently initialised networks; for each,
{METHODS[kind]} is compared with neural-tangents' closed form of the same spec. The fitted
exponent is the slope of the mean log error against log width; its 95% interval is a Student-t
interval over the slopes of the {config.seeds} independent replicates of the sweep.
"""
    rows = [[p, a, d, fit_text(f), f.prefactor, float(errors[p, a, d][-1].mean()),
             verdict_cell(c)]
            for ((p, a, d), f), c in zip(fits.items(), claims)]
    parameterizations = list(dict.fromkeys(k[0] for k in errors))
    panels = {f"{p} parameterization": {f"{a}, depth {d}": (widths, e, fits[q, a, d])
                                        for (q, a, d), e in errors.items() if q == p}
              for p in parameterizations}
    figure = loglog_figure(panels, xlabel="width", ylabel=f"relative Frobenius error of the {name}",
                           reference_exponent=config.expected_exponent,
                           reference_label="theory: width^(-1/2)")
    body = "\n\n".join([intro.strip(), markdown_table(
        ["parameterization", "activation", "depth", "fitted exponent [95% CI]", "prefactor",
         f"mean error at width {widths[-1]}", "verdict"], rows)])
    if result.prefactors:
        claim, text = _prefactor(config, result)
        claims.append(claim)
        body += "\n\n" + text
    per_width = markdown_table(
        ["width"] + [f"{p} {a} d{d}" for p, a, d in errors],
        [[w] + [float(e[i].mean()) for e in errors.values()] for i, w in enumerate(widths)])
    sections = [
        Section(config.section, body, [Figure(
            "init_convergence", figure,
            f"Relative error of one network's empirical {name} against the closed form, by "
            "width. Markers: geometric mean over seeds; band: range over seeds; thin lines: "
            "fitted power laws; dashed: theory's slope -1/2.")]),
        Section(f"Mean {name} error at each width", per_width),
    ]
    series = {f"init_{kind}_error/{p}/{a}/depth{d}": {
        "width": list(widths), "relative_error": e.mean(axis=1),
        "relative_error_std": e.std(axis=1, ddof=1), "relative_error_seeds": e,
        "fit": fits[p, a, d]} for (p, a, d), e in errors.items()}
    return Findings(claims, sections, series)


def _prefactor(config: Config, result: Result) -> tuple[Claim, str]:
    """sqrt(N E[error^2]) over the widths from ``prefactor_min_width``, over its prediction: per
    configuration and their mean, jackknifed over the seeds (each seed's networks independent)."""
    widths = np.asarray(config.widths)
    wide = widths >= config.prefactor_min_width
    if not wide.any():          # a ladder that stops short: its widest width alone
        wide = widths == widths[-1]
    keys = [(p, a, d) for p, a, d in result.errors if (a, d) in result.prefactors]
    # (seeds, configurations, wide widths): N error^2
    scaled = np.stack([(widths[wide, None] * result.errors[k][wide] ** 2).T for k in keys], axis=1)
    predicted = np.array([result.prefactors[a, d] for _, a, d in keys])

    def ratios(s):
        return np.sqrt(s.mean(axis=(0, 2))) / predicted

    estimate, ci, _ = jackknife(lambda s: float(ratios(s).mean()), scaled)
    claim = Claim(
        id=f"{config.kind}_init_rate_prefactor", section=config.section,
        statement=f"{NAMES[config.kind]} at init: the error's prefactor sqrt(N E[error^2]) equals perturbation "
                  "theory's leading variance, sqrt(sum_ab N Var(K^_ab)) / |K|_F",
        prediction="measured / predicted prefactor = 1 (mean over configurations)", expected=1.0,
        measured=estimate, ci=ci, tolerance=config.prefactor_tolerance,
        reason="a 10% resolution; the O(1/N) corrections are below 1% from width "
               f"{config.prefactor_min_width}",
        interval_method=f"delete-one-seed jackknife over {config.seeds} seeds, each a network at every "
                        f"width, pooled over widths {int(widths[wide][0])}-{int(widths[-1])}, Student-t",
        n_seeds=config.seeds, fit_range=(int(widths[wide][0]), int(widths[-1])))
    each = ratios(scaled)
    rows = [[p, a, d, f"{result.prefactors[a, d]:.3f}", f"{r * result.prefactors[a, d]:.3f}", f"{r:.3f}"]
            for (p, a, d), r in zip(keys, each)]
    text = f"""The prefactor, not only the exponent. The error's square is
`|K^ - K|_F^2 / |K|_F^2`, whose mean is `sum_ab Var(K^_ab) / |K|_F^2` plus the squared bias, O(N^-2).
Perturbation theory (the bias section's recursion, which carries the fluctuation's covariance
`Sigma / N` layer by layer) gives `N Var(K^_ab)` to leading order, so `sqrt(N E[error^2])` has a
predicted value at each depth, computed once from the inputs with no network. Measured over widths
{int(widths[wide][0])}-{int(widths[-1])} and the {config.seeds} seeds:

{markdown_table(["parameterization", "activation", "depth", "predicted sqrt(N E[error^2])", "measured",
                 "measured / predicted"], rows)}
"""
    return claim, text
