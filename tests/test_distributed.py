"""Two local CPU processes, joined by jax.distributed, train an ensemble and compute a kernel in
blocks as one process does."""
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np

_ENSEMBLE = textwrap.dedent("""
    import sys, numpy as np
    from replication import distributed
    distributed.initialize()
    import jax, optax
    from replication.arch import MLP
    from replication.train import fit_ensemble, mse_loss

    x = jax.random.normal(jax.random.PRNGKey(0), (24, 6))
    module = MLP(32, 2, "relu").flax()
    stacked = jax.vmap(lambda k: module.init(k, x))(jax.random.split(jax.random.PRNGKey(2), 8))
    run = fit_ensemble(mse_loss(module.apply), stacked, optax.sgd(0.1), 30, args=(x, np.sin(np.asarray(x[:, :1]))))
    assert run.losses.shape == (8, 30) and jax.process_count() == int(sys.argv[2])
    np.savez(sys.argv[1], losses=np.asarray(run.losses), diverged=np.asarray(run.diverged),
             readout=np.asarray(run.params["params"]["readout"]["kernel"]))
""")


_KERNELS = textwrap.dedent("""
    import sys, numpy as np
    from replication import distributed
    distributed.initialize()
    import jax
    from replication.arch import CNN, MLP
    from replication.compat import enable_x64
    from replication.kernels import blocked, closed_form

    assert jax.process_count() == int(sys.argv[2])
    x = jax.random.normal(jax.random.PRNGKey(0), (23, 6))
    img = jax.random.normal(jax.random.PRNGKey(1), (11, 4, 4, 2))
    out = {"mlp": np.asarray(closed_form(MLP(8, 2, "relu"), x, get="ntk", batch_size=4)),
           "cnn_part": np.asarray(closed_form(CNN(4, 2, "relu", readout="gap"), img, img[:7], get="nngp",
                                              batch_size=3))}
    with enable_x64():                 # as digits computes its kernels: both at once, in float64
        both = blocked(MLP(8, 1, "erf").stax()[2], jax.numpy.asarray(x, jax.numpy.float64), None,
                       ("nngp", "ntk"), batch_size=5)
    out["erf_nngp"], out["erf_ntk"] = both
    np.savez(sys.argv[1], **out)
""")


def _run_as(script: str, tmp_path, processes: int) -> list[dict]:
    """``script`` as one process and as ``processes`` joined ones: every process's saved arrays."""
    if processes == 1:
        done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "one.npz"), "1"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return [dict(np.load(tmp_path / "one.npz"))]
    port = _free_port()
    procs = [subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / f"p{i}.npz"), str(processes)],
        env=dict(os.environ, REPLICATION_COORDINATOR=f"127.0.0.1:{port}",
                 REPLICATION_NUM_PROCESSES=str(processes), REPLICATION_PROCESS_ID=str(i)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(processes)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-3000:] for o in outs]
    return [dict(np.load(tmp_path / f"p{i}.npz")) for i in range(processes)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_the_ensemble_of_one(tmp_path):
    """Each process trains 4 of the 8 members and gets all 8. The same per-member arithmetic, but
    XLA may tile a batch of 4 members differently from 8: float32 rounding, relative 1e-6."""
    reference, = _run_as(_ENSEMBLE, tmp_path, 1)
    for got in _run_as(_ENSEMBLE, tmp_path, 2):
        np.testing.assert_array_equal(got["diverged"], reference["diverged"])
        for k in ("losses", "readout"):
            np.testing.assert_allclose(got[k], reference[k], rtol=1e-6, atol=1e-7)


def test_two_processes_compute_the_blocked_kernel_of_one(tmp_path):
    """Row blocks shared between two processes, every process gets the whole kernel: bit for bit
    the one process's (every block is one compiled program on the same inputs)."""
    reference, = _run_as(_KERNELS, tmp_path, 1)
    assert reference["mlp"].shape == (23, 23) and reference["cnn_part"].shape == (11, 7)
    for got in _run_as(_KERNELS, tmp_path, 2):
        for k in reference:
            np.testing.assert_array_equal(got[k], reference[k])
