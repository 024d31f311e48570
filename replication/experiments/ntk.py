"""ntk: the neural tangent kernel of a network at initialisation converges to its closed form.

Theory (Jacot et al. 2018; Lee et al. 2019). As every hidden width `N` grows,
the empirical NTK `Theta_N(x, x') = <grad f(x), grad f(x')>` of a randomly
initialised network converges to a deterministic kernel `Theta` given in
closed form by a layer-by-layer recursion (neural-tangents' `kernel_fn`).
Each layer's contribution is an average over `N` units that are
independent given the layer below, so by the central limit theorem the
fluctuation of `Theta_N` around `Theta` is of order `N^(-1/2)`; the bias
of its mean is of order `1/N` and does not set the rate.

Measured here: for MLPs of depth 1 to 3 with ReLU and erf activations, in NTK
and standard parameterization, the relative Frobenius error
`||Theta_N - Theta||_F / ||Theta||_F` on inputs on the sphere, for
independent networks at each width of a ladder; a power law fitted to error
against width on log-log axes; the claim is that its exponent is `-1/2`.
Under standard parameterization the closed form itself depends on the width
(neural-tangents' convention, see `replication.parametrization`), so it is
evaluated at each network's own width.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import jax

from replication.arch import MLP
from replication.data import sphere_inputs
from replication.kernels import closed_form, empirical_ntk
from replication.report import Claim, Figure, Report, Section, fmt, loglog_figure, markdown_table
from replication.stats import fit_power_law, relative_frobenius_error
from replication.sweep import network_key, over_widths


@dataclass(frozen=True)
class Config:
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


PRESETS = {
    "quick": Config(),
    "full": Config(widths=tuple(2**k for k in range(4, 16)), seeds=16, n_inputs=64),
}
OPTIONS = {"widths": "widths", "seeds": "seeds", "depth": "depths",
           "activation": "activations", "parameterization": "parameterizations"}
SECTION = "NTK at initialisation against the closed form"


def init_ntk_error(spec: MLP, x: jax.Array, key: jax.Array, limit: jax.Array) -> float:
    """Relative Frobenius error of one freshly initialised network's NTK against `limit`."""
    module = spec.flax()
    # Eager init: its primitives are compiled once per shape and reused by
    # every configuration of the sweep, where a jitted init recompiles each.
    params = module.init(key, x)
    return relative_frobenius_error(empirical_ntk(module.apply, params, x), limit)


def run(config: Config) -> Report:
    x = sphere_inputs(jax.random.PRNGKey(config.seed), config.n_inputs, config.input_dim)
    widths = config.widths
    errors, fits = {}, {}
    for p, a, d in itertools.product(config.parameterizations, config.activations, config.depths):
        base = MLP(width=widths[0], depth=d, activation=a, W_std=config.W_std,
                   b_std=config.b_std, parameterization=p)
        limits = {}

        def measure(width, replicate):
            spec = base.replace(width=width)
            # The closed form depends on the width only under "standard".
            at = width if p == "standard" else None
            if at not in limits:
                limits[at] = closed_form(spec, x, get="ntk")
            return init_ntk_error(spec, x, network_key(config.seed, width, replicate), limits[at])

        errors[p, a, d] = over_widths(widths, config.seeds, measure, desc=f"ntk {p} {a} depth {d}")
        fits[p, a, d] = fit_power_law(widths, errors[p, a, d])

    claims = [
        Claim(id=f"ntk_init_rate_{p}_{a}_depth{d}",
              statement=f"NTK at init -> closed form ({a}, depth {d}, {p} param.)",
              prediction="error ~ width^(-1/2)", expected=config.expected_exponent,
              measured=f.exponent, ci=f.ci, tolerance=config.exponent_tolerance, section=SECTION)
        for (p, a, d), f in fits.items()
    ]
    rows = [[p, a, d, f"{f.exponent:+.3f} [{f.ci[0]:+.3f}, {f.ci[1]:+.3f}]", f.prefactor,
             float(errors[p, a, d][-1].mean()), "holds" if c.passed else "**fails**"]
            for ((p, a, d), f), c in zip(fits.items(), claims)]
    panels = {
        f"{p} parameterization": {f"{a}, depth {d}": (widths, errors[p, a, d], fits[p, a, d])
                                  for a in config.activations for d in config.depths}
        for p in config.parameterizations
    }
    figure = loglog_figure(panels, xlabel="width", ylabel="relative Frobenius error of the NTK",
                           reference_exponent=config.expected_exponent,
                           reference_label="theory: width^(-1/2)")
    per_width = [[w] + [float(errors[k][i].mean()) for k in errors] for i, w in enumerate(widths)]
    body = f"""
Inputs: {config.n_inputs} points on the sphere of radius sqrt({config.input_dim}) in
R^{config.input_dim}. Networks: MLPs with W_std = {fmt(config.W_std)}, b_std = {fmt(config.b_std)} in every
layer, one output. At each width, {config.seeds} independently initialised networks; for each,
the empirical NTK (neural-tangents, structured derivatives) is compared with neural-tangents'
closed form of the same spec. The fitted exponent is the slope of the mean log error against
log width; its 95% interval is a Student-t interval over the slopes of the {config.seeds}
independent replicates of the sweep.

{markdown_table(["parameterization", "activation", "depth", "fitted exponent [95% CI]",
                 "prefactor", f"mean error at width {widths[-1]}", "verdict"], rows)}
"""
    widths_table = markdown_table(
        ["width"] + [f"{p} {a} d{d}" for p, a, d in errors], per_width)
    return Report(
        experiment="ntk",
        title="The neural tangent kernel at initialisation converges to its closed form",
        summary=__doc__.split("\n\n", 1)[1],
        claims=claims,
        sections=[Section(SECTION, body, [Figure(
            "init_convergence", figure,
            "Relative error of one network's empirical NTK against the closed form, by width. "
            "Markers: geometric mean over seeds; band: range over seeds; thin lines: fitted power "
            "laws; dashed: theory's slope -1/2.")]),
                  Section("Mean error at each width", widths_table)],
        series={f"init_ntk_error/{p}/{a}/depth{d}": {
            "width": list(widths), "relative_error": errors[p, a, d].mean(axis=1),
            "relative_error_std": errors[p, a, d].std(axis=1, ddof=1),
            "relative_error_seeds": errors[p, a, d], "fit": fits[p, a, d]}
            for p, a, d in errors},
        precision="float32",
    )
