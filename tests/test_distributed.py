"""Two local CPU processes, joined by jax.distributed, train an ensemble as one process does."""
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_the_ensemble_of_one(tmp_path):
    """Each process trains 4 of the 8 members and gets all 8. The same per-member arithmetic, but
    XLA may tile a batch of 4 members differently from 8: float32 rounding, relative 1e-6."""
    one = subprocess.run([sys.executable, "-c", _ENSEMBLE, str(tmp_path / "one.npz"), "1"],
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    port = _free_port()
    procs = [subprocess.Popen(
        [sys.executable, "-c", _ENSEMBLE, str(tmp_path / f"p{i}.npz"), "2"],
        env=dict(os.environ, REPLICATION_COORDINATOR=f"127.0.0.1:{port}", REPLICATION_NUM_PROCESSES="2",
                 REPLICATION_PROCESS_ID=str(i)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-3000:] for o in outs]
    reference = np.load(tmp_path / "one.npz")
    for i in range(2):
        got = np.load(tmp_path / f"p{i}.npz")
        np.testing.assert_array_equal(got["diverged"], reference["diverged"])
        for k in ("losses", "readout"):
            np.testing.assert_allclose(got[k], reference[k], rtol=1e-6, atol=1e-7)
