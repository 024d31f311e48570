"""A replication study of infinite-width neural network theory.

The library part: ``replication.arch`` (one spec -> a Flax network and its
neural-tangents triple), ``replication.kernels`` (empirical and closed-form
NNGP / NTK), ``replication.train`` (optax training, ensembles),
``replication.stats`` and ``replication.report``.

Importing the package turns off one XLA CPU compiler pass before JAX starts
its backend (``replication.xla_cpu``): with jaxlib 0.4.25, the pass that
hands ``x @ W * c + b`` to oneDNN returns wrong numbers for some shapes,
which is exactly the form of every layer here.
"""
__version__ = "0.1.0"

import os

from replication import xla_cpu as _xla_cpu

# TensorFlow is imported by neural-tangents but unused; keep its start-up quiet.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_xla_cpu.configure()
