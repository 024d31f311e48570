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
standard parameterization; the mean of many networks' NTKs against it (no
bias at depth 1; O(1/N) deeper); Jacot et al.'s Figure 1; how far the kernel, the
weights and the outputs move in training to convergence, against width; an
ensemble of trained networks against `gradient_descent_mse_ensemble`; and
the kernel's fluctuations at finite depth and width against their exact law,
and its mean change in a first gradient step against depth/width (Hanin and
Nica 2019).
Under standard parameterization the closed-form NTK itself depends on the
width (neural-tangents' convention, see `replication.parametrization`), so it
is evaluated at each network's own width.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from replication.experiments import report, run_studies
from replication.experiments.ntk import ensemble, first_step, fluctuations, jacot, stability
from replication.report import Report
from replication.studies import kernel_bias, kernel_rate
from replication.sweep import Streams


@dataclass(frozen=True)
class Config:
    seed: int = 0
    kernel_rate: kernel_rate.Config = kernel_rate.Config(kind="ntk")  # the NTK at init against its limit
    kernel_bias: kernel_bias.Config = kernel_bias.Config(kind="ntk")  # the mean of many against it
    jacot: jacot.Config = jacot.Config()                   # Jacot et al. 2018, Figure 1
    stability: stability.Config = stability.Config()       # training to convergence, against width
    ensemble: ensemble.Config = ensemble.Config()          # trained ensemble against its closed form
    fluctuations: fluctuations.Config = fluctuations.Config()  # depth and width (Hanin and Nica 2019)
    first_step: first_step.Config = first_step.Config()     # the kernel's first step, against depth/width


_QUICK = Config()
PRESETS = {
    "quick": _QUICK,
    "full": replace(
        _QUICK,
        kernel_rate=replace(_QUICK.kernel_rate, widths=tuple(2**k for k in range(4, 16)), seeds=16,
                            n_inputs=64),
        kernel_bias=replace(_QUICK.kernel_bias, inits=8192, n_inputs=64),
        stability=replace(_QUICK.stability, widths=tuple(4**k for k in range(2, 9)), max_width_deep=4096,
                          seeds=8),
        ensemble=replace(_QUICK.ensemble, members=256),
        fluctuations=replace(_QUICK.fluctuations, widths=(8, 16, 32, 64, 128, 256, 512, 1024), samples=8192,
                             max_weights=2**22, law_draws=2**19),
        first_step=replace(_QUICK.first_step, samples=4096),
        jacot=replace(_QUICK.jacot, seeds=10, widths=(500, 1000, 2000, 5000, 10000))),
}
# Offsets from the run's seed. The kernel-rate networks and the inputs at init share the
# seed itself.
STREAMS = {"inputs": 0, "kernel_rate": 0, "train_inputs": 1, "test_inputs": 2, "jacot": 10,
           "stability": 20, "ensemble": 30, "fluctuations": 40, "law": 41, "first_step": 42, "kernel_bias": 50}
STUDIES = (("kernel_rate", kernel_rate), ("kernel_bias", kernel_bias), ("jacot", jacot), ("stability", stability),
           ("ensemble", ensemble), ("fluctuations", fluctuations), ("first_step", first_step))
# float32 suffices where a finite network meets its limit: the smallest relative gap measured
# (order 1e-2 at the widest width) is orders of magnitude above float32's rounding (1e-7). The
# ensemble's closed-form dynamics (gradient_descent_mse_ensemble, an eigendecomposition of the
# training kernel) run in float64.
PRECISION = ("float32 networks and kernels; closed-form ensemble dynamics "
             "(gradient_descent_mse_ensemble) and their eigendecomposition in float64")
TITLE = "The neural tangent kernel converges, stays put in training, and fixes the dynamics"


def run(config: Config) -> Report:
    findings = run_studies(config, STUDIES, Streams(config.seed, STREAMS))
    return report("ntk", __doc__, TITLE, PRECISION, findings)
