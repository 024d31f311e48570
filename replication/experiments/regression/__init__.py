"""regression: the worked example of NTK theory, a two-layer ReLU network on a 2-D function.

Inputs uniform in `[-2, 2]^2`, `y = sin(x_1) + cos(x_2)`, 50 training and 100
test points drawn with independent keys; a two-layer ReLU network (one
hidden layer) in NTK parameterization, trained by full-batch gradient
descent with optax. Theory (Jacot et al. 2018; Lee et al. 2019): as the
width grows, the trained network's outputs approach those of kernel
regression with the closed-form NTK, started from the network's own
initial outputs, with a gap of order `width^(-1/2)` (the empirical NTK's
fluctuation at init); kernel regression with one network's empirical NTK
approaches the closed-form regression at the same rate.

Measured here: a table against width of the test MSE of closed-form NTK
regression, of empirical-NTK regression and of trained networks; the two
gaps with fitted exponents; where the asymptotic regime begins, measured by
following the networks through training and the linear part to width 2^18
(2^20 in the full preset), with the crossover width against training time
and the dynamics mode by mode; spectral bias on the circle, each Fourier
mode learnt at its eigenvalue's rate; a well-conditioned control, where
width^(-1/2) is reached within the quick preset's widths; and an errata section measuring two mistakes
that are easy to make in this example: drawing training and test inputs
from one random key, and scaling the readout by `1/sqrt(width)` both at
init and in the forward pass.
"""
from __future__ import annotations

from dataclasses import dataclass

from replication.experiments import report, run_studies
from replication.experiments.regression import control, convergence, errata, spectral, table
from replication.report import Report
from replication.sweep import Streams

STREAMS = {
    "train_inputs": 0,       # jax.random.PRNGKey(seed): the training inputs
    "test_inputs": 1,        # the test inputs
    "networks": 0,           # the table's networks (network keys, a generator apart from the inputs')
    "errata_readout": 50,    # networks whose readout is scaled once and twice
    "errata_training": 60,   # the same, trained at the write-up's width
    "convergence": 70,       # networks trained to convergence
    "spectral": 80,          # the spectral-bias networks on the circle
    "control": 90,           # the well-conditioned control's networks
    "control_inputs": 91,    # its training and test inputs
}
STUDIES = (("table", table), ("spectral", spectral), ("control", control), ("convergence", convergence),
           ("errata", errata))


@dataclass(frozen=True)
class Config:
    seed: int = 0
    table: table.Config = table.Config()
    spectral: spectral.Config = spectral.Config()
    control: control.Config = control.Config()
    convergence: convergence.Config = convergence.Config()
    errata: errata.Config = errata.Config()


_FULL_WIDTHS = (16, 64, 256, 1000, 4096, 16384, 65536)
PRESETS = {"quick": Config(),
           "full": Config(table=table.Config(widths=_FULL_WIDTHS, seeds=16, wide_widths=(262144,), wide_times=None,
                                             linear_widths=(262144, 1048576), small_step_width=16384),
                          convergence=convergence.Config(widths=(256, 4096, 16384)),
                          spectral=spectral.Config(widths=(8192, 32768, 131072), seeds=8),
                          control=control.Config(widths=(256, 1024, 4096, 16384, 65536, 262144), seeds=16),
                          errata=errata.Config(widths=_FULL_WIDTHS, draws=32))}


def run(config: Config) -> Report:
    return report("regression", __doc__,
                  "The worked example: a two-layer ReLU network against its NTK regression",
                  "float32 networks; kernel regression and closed-form dynamics in float64",
                  run_studies(config, STUDIES, Streams(config.seed, STREAMS)))
