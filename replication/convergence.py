"""One network's kernel against the closed form, across widths: the sweep, its fits, its claims.

The ``nngp`` and ``ntk`` experiments make the same first claim about two
kernels: the relative Frobenius error between one randomly initialised
network's empirical kernel and neural-tangents' closed form falls as
``width^(-1/2)``. Each layer's contribution to either kernel is an average
over ``width`` units that are independent given the layer below, so the
central limit theorem sets the rate; the bias of the mean is ``O(1/width)``.
This module runs that sweep once for both.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import jax
import numpy as np

from replication.arch import MLP
from replication.kernels import closed_form, empirical_nngp, empirical_ntk
from replication.report import Claim, Figure, Section, fmt, loglog_figure, markdown_table
from replication.stats import PowerLawFit, fit_power_law, relative_frobenius_error
from replication.sweep import network_key, progress

KINDS = {"nngp": "NNGP", "ntk": "NTK"}


@dataclass(frozen=True)
class KernelRateConfig:
    """The sweep's settings; an experiment's ``Config`` extends it with its own."""

    widths: tuple[int, ...] = tuple(2**k for k in range(4, 14))  # 16 .. 8192: 2.7 decades
    depths: tuple[int, ...] = (1, 2, 3)
    activations: tuple[str, ...] = ("relu", "erf")
    parameterizations: tuple[str, ...] = ("ntk", "standard")
    seeds: int = 4               # independent networks per width
    seed: int = 0
    n_inputs: int = 16
    input_dim: int = 8
    W_std: float = 2**0.5
    b_std: float = 0.1
    expected_exponent: float = -0.5
    # Fluctuations are Theta(N^-1/2); at the ladder's narrow end the O(1/N)
    # bias and higher-order terms bend the curve, which a 0.1 band absorbs.
    exponent_tolerance: float = 0.1


def one_network_error(kind: str, spec: MLP, x: jax.Array, params, limit) -> float:
    """Relative Frobenius error of the ``kind`` kernel of the network ``spec`` with ``params``."""
    module = spec.flax()
    if kind == "ntk":
        empirical = empirical_ntk(module.apply, params, x)
    else:
        empirical = empirical_nngp(module, params, x)
    return relative_frobenius_error(empirical, limit)


def kernel_error_sweep(kind: str, x: jax.Array, widths, n_seeds: int, seed: int, *,
                       parameterizations, activations, depths, W_std: float,
                       b_std: float | None) -> dict[tuple, np.ndarray]:
    """Errors ``(n_widths, n_seeds)`` for every (parameterization, activation, depth).

    Every configuration of one depth, width and replicate is a network drawn
    from the same key; parameterization and activation change only how its
    standard normals are scaled and what the forward pass does. So the
    normals are drawn once (``MLP.init_from_unit``) and shared: drawing them is
    most of the cost at the wide end (a width-8192 depth-3 network has 134M
    weights), and the results are those of drawing each network afresh.
    """
    configs = list(itertools.product(parameterizations, activations))
    errors = {(p, a, d): np.empty((len(widths), n_seeds)) for (p, a), d in
              itertools.product(configs, depths)}
    limits = {}
    with progress(len(depths) * len(widths) * n_seeds, f"{kind} kernels") as bar:
        for d in depths:
            for i, width in enumerate(widths):
                unit_spec = MLP(width=width, depth=d, activation=activations[0], W_std=W_std,
                                b_std=b_std).unit_spec
                for r in range(n_seeds):
                    # Eager init: its primitives are compiled once per shape and
                    # reused across the sweep, where a jitted init recompiles each.
                    unit = unit_spec.flax().init(network_key(seed, width, r), x)
                    for p, a in configs:
                        spec = MLP(width=width, depth=d, activation=a, W_std=W_std, b_std=b_std,
                                   parameterization=p)
                        # Only the standard-parameterization NTK depends on the width.
                        at = width if (kind == "ntk" and p == "standard") else None
                        if (p, a, d, at) not in limits:
                            limits[p, a, d, at] = closed_form(spec, x, get=kind)
                        errors[p, a, d][i, r] = one_network_error(
                            kind, spec, x, spec.init_from_unit(unit), limits[p, a, d, at])
                    bar.update()
    return errors


_METHOD = {
    "ntk": "the empirical NTK (neural-tangents, structured derivatives)",
    "nngp": ("the empirical NNGP `sigma_w^2 <phi(x), phi(x')> + sigma_b^2` of its readout's "
             "input features `phi`"),
}


def kernel_rate_study(kind: str, config: KernelRateConfig, x: jax.Array, section: str):
    """The sweep and its findings; returns ``(claims, sections, series)`` for the report."""
    errors = kernel_error_sweep(
        kind, x, config.widths, config.seeds, config.seed,
        parameterizations=config.parameterizations, activations=config.activations,
        depths=config.depths, W_std=config.W_std, b_std=config.b_std)
    intro = f"""
Inputs: {config.n_inputs} points on the sphere of radius sqrt({config.input_dim}) in
R^{config.input_dim}. Networks: MLPs with W_std = {fmt(config.W_std)}, b_std = {fmt(config.b_std)} in every
layer, one output. At each width, {config.seeds} independently initialised networks; for each,
{_METHOD[kind]} is compared with neural-tangents' closed form of the same spec. The fitted
exponent is the slope of the mean log error against log width; its 95% interval is a Student-t
interval over the slopes of the {config.seeds} independent replicates of the sweep.
"""
    return rate_findings(kind, config.widths, errors, expected=config.expected_exponent,
                         tolerance=config.exponent_tolerance, section=section, intro=intro)


def rate_findings(kind: str, widths, errors: dict[tuple, np.ndarray], *, expected: float,
                  tolerance: float, section: str, intro: str):
    """Claims, report sections and JSON series for the sweep's errors.

    One claim per configuration: the fitted exponent is ``expected`` within
    ``tolerance``. The section holds ``intro``, the table of fits and the
    log-log figure; a second section lists the mean error at every width.
    """
    name = KINDS[kind]
    fits: dict[tuple, PowerLawFit] = {k: fit_power_law(widths, e) for k, e in errors.items()}
    claims = [
        Claim(id=f"{kind}_init_rate_{p}_{a}_depth{d}",
              statement=f"{name} at init -> closed form ({a}, depth {d}, {p} param.)",
              prediction="error ~ width^(-1/2)", expected=expected, measured=f.exponent,
              ci=f.ci, tolerance=tolerance, section=section)
        for (p, a, d), f in fits.items()
    ]
    rows = [[p, a, d, f"{f.exponent:+.3f} [{f.ci[0]:+.3f}, {f.ci[1]:+.3f}]", f.prefactor,
             float(errors[p, a, d][-1].mean()), "holds" if c.passed else "**fails**"]
            for ((p, a, d), f), c in zip(fits.items(), claims)]
    parameterizations = list(dict.fromkeys(k[0] for k in errors))
    panels = {f"{p} parameterization": {f"{a}, depth {d}": (widths, e, fits[q, a, d])
                                        for (q, a, d), e in errors.items() if q == p}
              for p in parameterizations}
    figure = loglog_figure(panels, xlabel="width",
                           ylabel=f"relative Frobenius error of the {name}",
                           reference_exponent=expected, reference_label="theory: width^(-1/2)")
    body = "\n\n".join([intro.strip(), markdown_table(
        ["parameterization", "activation", "depth", "fitted exponent [95% CI]", "prefactor",
         f"mean error at width {widths[-1]}", "verdict"], rows)])
    per_width = markdown_table(
        ["width"] + [f"{p} {a} d{d}" for p, a, d in errors],
        [[w] + [float(e[i].mean()) for e in errors.values()] for i, w in enumerate(widths)])
    sections = [
        Section(section, body, [Figure(
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
    return claims, sections, series
