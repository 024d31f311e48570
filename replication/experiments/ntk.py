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

from dataclasses import dataclass

import jax

from replication.convergence import KernelRateConfig, kernel_rate_study
from replication.data import sphere_inputs
from replication.report import Report


@dataclass(frozen=True)
class Config(KernelRateConfig):
    """The sweep's settings (`replication.convergence.KernelRateConfig`) are all this part needs."""


PRESETS = {
    "quick": Config(),
    "full": Config(widths=tuple(2**k for k in range(4, 16)), seeds=16, n_inputs=64),
}
OPTIONS = {"widths": "widths", "seeds": "seeds", "depth": "depths",
           "activation": "activations", "parameterization": "parameterizations"}
SECTION = "NTK at initialisation against the closed form"


def run(config: Config) -> Report:
    x = sphere_inputs(jax.random.PRNGKey(config.seed), config.n_inputs, config.input_dim)
    claims, sections, series = kernel_rate_study("ntk", config, x, SECTION)
    return Report(
        experiment="ntk",
        title="The neural tangent kernel at initialisation converges to its closed form",
        summary=__doc__.split("\n\n", 1)[1],
        claims=claims, sections=sections, series=series, precision="float32",
    )
