"""A replication study of infinite-width neural network theory.

The library part: ``replication.arch`` (one spec -> a Flax network and its
neural-tangents triple), ``replication.kernels`` (empirical and closed-form
NNGP / NTK), ``replication.train`` (optax training, ensembles),
``replication.dynamics`` (the infinite-width network's training in closed
form), ``replication.stats`` and ``replication.report``.

Importing the package applies ``replication.compat``, which lets
neural-tangents 0.6.5 (its last release) run on current JAX without
TensorFlow: import ``replication`` before ``neural_tangents``.
"""
__version__ = "0.2.0"

from replication import compat as _compat

_compat.install()
