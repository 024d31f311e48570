"""Several processes (hosts) as one JAX program: ``jax.distributed``.

A run spread over processes starts each with the same command and three
environment variables, read by ``initialize()`` (which the command line calls
first): ``REPLICATION_COORDINATOR`` (``host:port`` of process 0),
``REPLICATION_NUM_PROCESSES`` and ``REPLICATION_PROCESS_ID``. On a cluster
whose scheduler JAX recognises (Slurm, Open MPI, cloud TPU pods), setting
``REPLICATION_DISTRIBUTED=1`` lets JAX find them itself. Without either, a run
is one process and nothing here does anything.

Every process computes the same inputs (the same keys give the same
networks), each trains its devices' share of an ensemble's members
(``replication.train.fit_ensemble``), and ``gather`` hands every process the
whole result, so what follows is the one-process code, on every process,
with the numbers of one process. CPU processes exchange data through gloo.
Closed-form kernels computed in blocks (``replication.kernels.blocked``)
share their row blocks among the processes the same way.
"""
from __future__ import annotations

import os

import jax
import numpy as np

ENV = ("REPLICATION_COORDINATOR", "REPLICATION_NUM_PROCESSES", "REPLICATION_PROCESS_ID")


def initialize() -> int:
    """Join the run's processes if the environment says so; return the number of processes."""
    if jax.distributed.is_initialized():
        return jax.process_count()
    given = [os.environ.get(k) for k in ENV]
    if all(given):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=given[0], num_processes=int(given[1]),
                                   process_id=int(given[2]))
    elif os.environ.get("REPLICATION_DISTRIBUTED") == "1":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize()
    return jax.process_count()


def several() -> bool:
    return jax.process_count() > 1


def gather(tree):
    """Every process gets the whole of each global array in ``tree`` (sharded over processes)."""
    if not several():
        return tree
    from jax.experimental import multihost_utils

    return jax.tree_util.tree_map(
        lambda a: jax.numpy.asarray(multihost_utils.process_allgather(a, tiled=True)), tree)


def allgather_host(local: np.ndarray) -> np.ndarray:
    """``(processes, *local.shape)``: every process's ``local`` (one shape and dtype on all), on every process."""
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(local, tiled=False))


def global_array(stacked, sharding):
    """A global array of ``stacked`` (the same on every process) laid out by ``sharding``:
    each process supplies its own devices' slices."""
    return jax.tree_util.tree_map(
        lambda a: jax.make_array_from_callback(a.shape, sharding, lambda idx: np.asarray(a[idx])), stacked)
