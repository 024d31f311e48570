"""lazy: why the NTK regime cannot learn features.

Theory. Under the NTK parameterization every parameter of a network of
width `N` moves by `O(N^(-1/2))` in training (Jacot et al. 2018; Lee et al.
2019): the gradient of the output with respect to one hidden unit's weights
carries the readout's `1/sqrt(N)`, and the training time needed to reach a
given loss is `O(1)`. Relative to their size at initialisation the hidden
weights and the hidden features `phi(x)` therefore move as `N^(-1/2)`, and
the empirical NTK moves by at most `O(N^(-1/2))` (Lee et al. 2019,
Theorem 2.1); the kernel's sharper rate is `N^(-1)` for smooth activations
(Dyer and Gur-Ari 2020) and lies between the two for ReLU. In the limit the
features are those of initialisation and the trained network is kernel
regression with the NTK: it cannot adapt its features to the task. On a
target that depends on one direction of high-dimensional inputs, where
learned features pay, wide NTK-parameterized networks approach the
closed-form NTK predictor's test error, while muP networks of the same
widths, which move their features by `O(1)` at every width (Yang and Hu
2021), beat it. Laziness is a matter of scale, not of width: multiplying a
fixed network's centred output by `alpha` and its loss by `alpha^(-2)` leaves
the function-space dynamics unchanged to first order and moves the
parameters, and with them the features, by `O(alpha^(-1))` (Chizat, Oyallon
and Bach 2019).

Measured here: the three relative changes against width for NTK-parameterized
one-hidden-layer ReLU networks trained to a fixed loss; the test error of the
same networks against closed-form NTK gradient descent stopped at the same
step, and against muP networks of the same widths; and the feature change of
one network against `alpha`.
"""
from __future__ import annotations

from dataclasses import dataclass

from replication.experiments import report, run_studies
from replication.experiments.lazy import alpha, ladder, quality
from replication.fixed_loss import Task
from replication.report import Report
from replication.sweep import Streams


@dataclass(frozen=True)
class Config:
    seed: int = 0
    ladder: ladder.Config = ladder.Config()      # weights, features and kernel against width
    quality: quality.Config = quality.Config()   # the same networks' test error against the closed form
    alpha: alpha.Config = alpha.Config()         # one muP network's features against the output scale


_FULL_TASK = Task(n_test=2048)
_FULL_WIDTHS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
PRESETS = {"quick": Config(),
           "full": Config(ladder=ladder.Config(task=_FULL_TASK, widths=_FULL_WIDTHS, seeds=16),
                          quality=quality.Config(task=_FULL_TASK, widths=_FULL_WIDTHS, seeds=16),
                          alpha=alpha.Config(task=_FULL_TASK, width=1024, alphas=tuple(2.0**k for k in range(11)),
                                             seeds=16))}
# Offsets from the run's seed: the ladders' networks (and the muP base-width network that
# sets muP's step, at width 0), the output-scaling networks, the task's direction and inputs.
STREAMS = {"networks": 0, "alpha": 1, "direction": 100, "train_inputs": 101, "test_inputs": 102}
STUDIES = (("ladder", ladder), ("quality", quality), ("alpha", alpha))


def run(config: Config) -> Report:
    return report("lazy", __doc__, "Why the NTK regime cannot learn features",
                  "float32 networks, training and empirical NTKs; closed-form NTK and its "
                  "gradient-descent dynamics in float64",
                  run_studies(config, STUDIES, Streams(config.seed, STREAMS)))
