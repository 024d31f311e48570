"""ntk: the neural tangent kernel converges, stays put in training, and fixes the dynamics.

Theory (Jacot et al. 2018; Lee et al. 2019). As every hidden width `N` grows,
the empirical NTK `Theta_N(x, x') = <grad f(x), grad f(x')>` of a randomly
initialised network converges to a deterministic kernel `Theta` given in
closed form by a layer-by-layer recursion (neural-tangents' `kernel_fn`).
Each layer's contribution is an average over `N` units that are
independent given the layer below, so by the central limit theorem the
fluctuation of `Theta_N` around `Theta` is of order `N^(-1/2)`. In training
by gradient descent on the squared loss the kernel stays at its initial
value up to a vanishing change, so a wide network evolves as its
linearisation, and an ensemble of them as the closed-form Gaussian process
of kernel regression with `Theta`.

Measured here: the relative Frobenius error of one network's NTK at init
against the closed form, for MLPs of depth 1 to 3, ReLU and erf, NTK and
standard parameterization; Jacot et al.'s Figure 1; how far the kernel, the
weights and the outputs move in training to convergence, against width; an
ensemble of trained networks against `gradient_descent_mse_ensemble`; and
the kernel's fluctuations against depth and width (Hanin and Nica 2019).
Under standard parameterization the closed-form NTK itself depends on the
width (neural-tangents' convention, see `replication.parametrization`), so it
is evaluated at each network's own width.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import jax

from replication.convergence import KernelRateConfig, kernel_rate_study
from replication.data import sphere_inputs
from replication.experiments.ntk_training import (ensemble_study, fluctuation_study, jacot_figure,
                                                  stability_study)
from replication.report import Report


@dataclass(frozen=True)
class Config(KernelRateConfig):
    # Jacot et al. 2018, Figure 1: depth 4 in their count of affine layers.
    jacot_widths: tuple[int, ...] = (500, 10000)
    jacot_depth: int = 3
    jacot_inits: int = 10
    jacot_W_std: float = 1.0
    jacot_b_std: float = 0.1
    jacot_angles: int = 49
    jacot_train_angles: tuple[float, ...] = (-2.5, -1.2, 0.7, 2.0)
    jacot_train_targets: tuple[float, ...] = (0.6, -0.4, 0.5, -0.7)
    jacot_lr_fraction: float = 1.5
    jacot_steps: int = 16
    # Training to convergence: the kernel's and the weights' change, the linearisation's gap.
    train_widths: tuple[int, ...] = (16, 64, 256, 1024, 4096, 16384)  # 3 decades
    train_depths: tuple[int, ...] = (1, 2)
    train_max_width_deep: int = 1024  # depth >= 2 costs N^2 per step, twice (network, linearisation)
    train_activations: tuple[str, ...] = ("relu", "erf")
    train_W_std: dict = field(default_factory=lambda: {"relu": 2**0.5, "erf": 1.5})
    smooth_activations: tuple[str, ...] = ("erf",)
    train_seeds: int = 4
    n_train: int = 16
    n_test: int = 32
    train_lr_fraction: float = 1.0
    train_reduction: float = 1e3
    record_every: int = 10
    # An ensemble against gradient_descent_mse_ensemble.
    ens_width: int = 512
    ens_depth: int = 2
    ens_activation: str = "relu"
    ens_members: int = 64
    ens_lr_fraction: float = 0.1
    ens_times: tuple[int, ...] = (0, 10, 30, 100, 300, 1000)
    # Depth / width fluctuations of the NTK diagonal.
    fluct_depths: tuple[int, ...] = (1, 2, 4, 8)
    fluct_widths: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
    fluct_max_weights: int = 2**19     # skip (depth, width) with depth * width^2 above this
    fluct_inits: int = 1000
    fluct_fit_min_depth: int = 2
    fluct_rate_depth: int = 2
    fluct_bootstrap: int = 200

    def __hash__(self):  # train_W_std is a dict
        return id(self)


PRESETS = {
    "quick": Config(),
    "full": Config(widths=tuple(2**k for k in range(4, 16)), seeds=16, n_inputs=64,
                   train_widths=tuple(4**k for k in range(2, 9)), train_max_width_deep=4096,
                   train_seeds=8, ens_members=256, fluct_inits=8000, fluct_max_weights=2**22),
}
OPTIONS = {"widths": "widths", "seeds": "seeds", "depth": "depths",
           "activation": "activations", "parameterization": "parameterizations"}
# float32 suffices where a finite network meets its limit: the smallest relative gap measured
# (order 1e-2 at the widest width) is orders of magnitude above float32's rounding (1e-7). The
# ensemble's closed-form dynamics
# (gradient_descent_mse_ensemble, an eigendecomposition of the training kernel) run in float64.
PRECISION = ("float32 networks and kernels; closed-form ensemble dynamics "
             "(gradient_descent_mse_ensemble) and their eigendecomposition in float64")
SECTION = "NTK at initialisation against the closed form"


def run(config: Config) -> Report:
    x = sphere_inputs(jax.random.PRNGKey(config.seed), config.n_inputs, config.input_dim)
    claims, sections, series = kernel_rate_study("ntk", config, x, SECTION)
    for study in (jacot_figure, stability_study, ensemble_study, fluctuation_study):
        c, s, d = study(config)
        claims, sections, series = claims + c, sections + s, {**series, **d}
    return Report(
        experiment="ntk",
        title="The neural tangent kernel converges, stays put in training, and fixes the dynamics",
        summary=__doc__.split("\n\n", 1)[1],
        claims=claims, sections=sections, series=series, precision=PRECISION,
    )
