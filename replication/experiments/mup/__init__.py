"""mup: the maximal update parametrization learns features at every width, and its learning rate transfers.

Theory (Yang and Hu 2021, Tensor Programs IV; Yang et al. 2022, Tensor
Programs V). A parameterization fixes, per layer, the init variance, a
forward multiplier and the learning rate as powers of the width. Under the
NTK parameterization a step of training moves every hidden pre-activation by
`O(width^(-1/2))`: in the limit the features are frozen (the kernel regime).
Under the standard parameterization (SP) with a learning rate held fixed the
output moves by `O(width)` per step, so the stable learning rate shrinks with
the width. The maximal update parametrization (muP) is the one in which
every layer's features move by `O(1)` per step: the network learns features
at every width, and its hyperparameters, the learning rate first, are stable
across widths.

Measured here, with muP as in Tensor Programs V, Table 8 (the `mup`
package's formulation; the table is in `replication.parametrization` and in
this report): a coordinate check in the `mup` package's sense, for SP, NTK
and muP; learning-rate transfer on scikit-learn's digits for SP and muP, with
SGD (momentum) and Adam, and the output multiplier's transfer under muP; the three
parameterizations' common NNGP at initialisation, against neural-tangents;
trained networks' distance from the NTK limit; and the infinite-width muP
network itself, computed by quadrature over its units' initial law
(`replication.mean_field`), against trained networks and against the NTK
limit.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from replication.experiments import report, run_studies
from replication.experiments.mup import coordinates, initialisation, limit, scalings, trained, transfer
from replication.report import Report
from replication.sweep import Streams

# Offsets from the run's seed. ``networks`` are the coordinate check's and the trained
# ladders' networks (replicate 0 at width 0: the base-width networks that set their steps);
# ``direction``, ``train_inputs`` and ``test_inputs`` the trained ladders' task.
STREAMS = {
    "coordinate_inputs": 0,
    "networks": 0,
    "init_inputs": 2,
    "transfer_networks": 30,
    "transfer_batches": 31,
    "init_networks": 40,
    "limit_inputs": 3,
    "limit_draws": 4,
    "limit_networks": 50,
    "direction": 100,
    "train_inputs": 101,
    "test_inputs": 102,
}


@dataclass(frozen=True)
class Config:
    seed: int = 0
    scalings: scalings.Config = field(default_factory=scalings.Config)
    coordinates: coordinates.Config = field(default_factory=coordinates.Config)
    transfer: transfer.Config = field(default_factory=transfer.Config)
    initialisation: initialisation.Config = field(default_factory=initialisation.Config)
    trained: trained.Config = field(default_factory=trained.Config)
    limit: limit.Config = field(default_factory=limit.Config)


PRESETS = {
    "quick": Config(),
    "full": Config(
        coordinates=coordinates.Config(widths=tuple(2**k for k in range(5, 14)), seeds=16, trajectory_seeds=16),
        transfer=transfer.Config(widths=(128, 256, 512, 1024, 2048, 4096, 8192), depth=2, seeds=8,
                                 sgd_log2_lr_halves=(-16, 1), adam_log2_lr_halves=(-28, -7)),
        initialisation=initialisation.Config(seeds=16),
        trained=trained.Config(widths=(64, 256, 1024, 4096, 16384), seeds=8),
        limit=limit.Config(widths=(256, 1024, 4096, 16384, 65536), draws=8, sample_sizes=(16, 32, 64, 128, 256),
                           plane_nodes=(16, 24))),
}
STUDIES = (("scalings", scalings), ("coordinates", coordinates), ("transfer", transfer),
           ("initialisation", initialisation), ("trained", trained), ("limit", limit))


def run(config: Config) -> Report:
    return report("mup", __doc__, "muP learns features at every width, and its learning rate transfers",
                  "float32 networks and neural-tangents' NNGP; the closed-form NTK gradient descent the "
                  "trained networks are compared with in float64",
                  run_studies(config, STUDIES, Streams(config.seed, STREAMS)))
