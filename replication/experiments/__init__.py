"""One module per experiment; each has ``DESCRIPTION``, ``Config``, ``PRESETS``,
``OPTIONS`` (which command-line options it takes, mapped to ``Config``
fields) and ``run(config) -> replication.report.Report``."""
import importlib

EXPERIMENTS = {
    "nngp": "networks at initialisation are Gaussian processes",
    "ntk": "the neural tangent kernel converges, stays put in training, and fixes the dynamics",
    "regression": "the worked example: a two-layer ReLU network against its NTK regression",
    "lazy": "why the NTK regime cannot learn features: weights, features and kernel freeze as width grows",
    "mup": "muP learns features at every width, and its learning rate transfers",
    "digits": "real data: closed-form NNGP / NTK and trained networks on scikit-learn's 8x8 digits",
}
PRESETS = ("quick", "full")


def load(name: str):
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; allowed: {', '.join(EXPERIMENTS)}")
    return importlib.import_module(f"replication.experiments.{name}")
