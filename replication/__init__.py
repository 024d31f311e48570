"""A replication study of infinite-width neural network theory.

The library part: ``replication.arch`` (one spec -> a Flax network and its
neural-tangents triple), ``replication.kernels`` (empirical and closed-form
NNGP / NTK), ``replication.stats`` and ``replication.report``.
"""
__version__ = "0.1.0"
