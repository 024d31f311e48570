"""nngp: networks at initialisation are Gaussian processes.

Theory (Neal 1996; Lee et al. 2018; Matthews et al. 2018). As every hidden
width `N` grows, the output of a randomly initialised network, as a function
of its input, converges in distribution to a centred Gaussian process whose
covariance, the NNGP kernel `K`, is given in closed form layer by layer
(neural-tangents' `kernel_fn(x1, x2, "nngp")`). Three consequences are
measured here against real Flax networks:

1. One network's empirical NNGP (its readout's input features, scaled as the
   readout's init variance) is an average over `N` units, so its relative
   error against `K` falls as `N^(-1/2)`; the mean over many networks is `K`
   exactly at depth 1, and off by `O(1/N)` deeper.
2. The output covariance over `M` independent initialisations estimates `K`
   up to the network's own `O(1/N)` bias and a Monte Carlo error that does
   not fall with width: its floor is `sqrt((|K|_F^2 + (tr K)^2) / M) / |K|_F`,
   about `sqrt(2/M)` for a near-constant kernel.
3. One output across initialisations is Gaussian in the limit: its excess
   kurtosis falls as `N^(-1)`.
"""
from __future__ import annotations

from dataclasses import dataclass

from replication.experiments import report, run_studies
from replication.experiments.nngp import kurtosis, monte_carlo, posterior
from replication.experiments.nngp.sphere import Sphere, bias_sweep, rate_sweep
from replication.report import Report
from replication.studies import kernel_bias, kernel_rate
from replication.sweep import Streams

TITLE = "Networks at initialisation are Gaussian processes"
# float32 suffices where a finite network meets its limit: the smallest relative gap measured
# (order 1e-2 at the widest width) is orders of magnitude above float32's rounding (1e-7). The
# closed-form posterior, a solve against the training kernel, runs in float64 (enable_x64
# scoped to it), so that the reference the networks are compared with carries no solver error.
PRECISION = "float32 networks and kernels; the closed-form NNGP posterior (gp_inference) in float64"
# Offsets from the run's seed. The rate sweep's networks and its inputs share offset 0 (a
# network key and a plain key of one seed differ); the other studies' inputs are the sweep's.
STREAMS = {"inputs": 0, "kernel_rate": 0, "monte_carlo": 1, "kurtosis": 2, "posterior": 3, "kernel_bias": 4}


@dataclass(frozen=True)
class Config:
    seed: int = 0
    kernel_rate: kernel_rate.Config = rate_sweep(Sphere())  # 1. one network's NNGP, by width
    kernel_bias: kernel_bias.Config = bias_sweep(Sphere(), inits=16384, chunk=1024)  # 1b. the mean of many
    monte_carlo: monte_carlo.Config = monte_carlo.Config()  # 2. an ensemble's output covariance
    kurtosis: kurtosis.Config = kurtosis.Config()           # 3. Gaussianity of one output
    posterior: posterior.Config = posterior.Config()        # 4. trained readouts, the posterior


# The full preset's sphere: 64 inputs for the rate sweep and the studies that share its inputs.
_FULL_SPHERE = Sphere(n_inputs=64)
PRESETS = {
    "quick": Config(),
    "full": Config(
        kernel_rate=rate_sweep(_FULL_SPHERE, widths=tuple(2**k for k in range(4, 16)), seeds=16),
        kernel_bias=bias_sweep(_FULL_SPHERE, inits=65536, chunk=1024),
        monte_carlo=monte_carlo.Config(sphere=_FULL_SPHERE, samples=8192),
        kurtosis=kurtosis.Config(sphere=_FULL_SPHERE, samples=65536, max_width_deep=1024),
        posterior=posterior.Config(widths=(32, 128, 512, 2048, 8192), ensemble=1024)),
}
STUDIES = (("kernel_rate", kernel_rate), ("kernel_bias", kernel_bias), ("monte_carlo", monte_carlo),
           ("kurtosis", kurtosis), ("posterior", posterior))


def run(config: Config) -> Report:
    streams = Streams(config.seed, STREAMS)
    return report("nngp", __doc__, TITLE, PRECISION, run_studies(config, STUDIES, streams))
