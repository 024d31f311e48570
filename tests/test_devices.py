"""Many devices give the numbers of one, and memory is estimated before anything is built.

The multi-device checks run in a fresh process with two simulated CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=2``); a JAX process fixes
its device count when it starts.
"""
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from replication.arch import CNN, MLP
from replication.memory import MemoryBudgetError

_TWO_DEVICES = textwrap.dedent("""
    import jax, numpy as np, optax
    import replication
    from replication.arch import CNN, MLP
    from replication.kernels import closed_form
    from replication.train import fit_ensemble, mse_loss

    assert jax.local_device_count() == 2, jax.devices()
    # Closed-form kernels by nt.batch: blocks spread over both devices against one device.
    x = jax.random.normal(jax.random.PRNGKey(0), (24, 6))
    img = jax.random.normal(jax.random.PRNGKey(1), (12, 4, 4, 2))
    for spec, xs in ((MLP(8, 2, "relu"), x), (CNN(4, 1, "erf", readout="gap"), img)):
        one = closed_form(spec, xs, get="ntk", batch_size=3, devices=1)
        two = closed_form(spec, xs, get="ntk", batch_size=3, devices=2)
        np.testing.assert_array_equal(np.asarray(one), np.asarray(two))
    # An ensemble's members sharded over both devices against all on one.
    spec = MLP(32, 2, "relu")
    module = spec.flax()
    keys = jax.random.split(jax.random.PRNGKey(2), 8)
    stacked = jax.vmap(lambda k: module.init(k, x))(keys)
    y = np.sin(np.asarray(x[:, :1]))
    runs = [fit_ensemble(mse_loss(module.apply), stacked, optax.sgd(0.1), 30, args=(x, y),
                         devices=d) for d in (jax.local_devices()[:1], jax.local_devices())]
    assert len(runs[1].losses.sharding.device_set) == 2
    for a, b in zip(jax.tree_util.tree_leaves(runs[0]), jax.tree_util.tree_leaves(runs[1])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    print("ok")
""")


def test_two_devices_give_the_kernel_and_the_ensemble_of_one():
    """The kernels must be bit-identical (each block is the same program on the same inputs).
    The ensembles are the same per-member arithmetic, but XLA may tile a batch of 4 members
    differently from 8: float32 rounding, relative 1e-6 over 30 steps."""
    env = dict(os.environ, XLA_FLAGS=os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2")
    proc = subprocess.run([sys.executable, "-c", _TWO_DEVICES], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_batched_closed_form_equals_the_whole_kernel():
    """Blocks of 5 against the whole kernel, for an MLP and a pooled CNN. The ReLU NTK's
    arccos at x = x' is computed apart from the diagonal in a block, so entries there differ
    by float32 rounding amplified by arccos' slope near 1: sqrt(eps32) ~ 3.5e-4 relative."""
    from replication.kernels import closed_form

    x = jax.random.normal(jax.random.PRNGKey(0), (23, 6))
    img = jax.random.normal(jax.random.PRNGKey(1), (11, 4, 4, 2))
    for spec, xs in ((MLP(8, 2, "relu"), x), (CNN(4, 2, "relu", readout="gap"), img)):
        for get in ("nngp", "ntk"):
            whole = np.asarray(closed_form(spec, xs, get=get))
            batched = np.asarray(closed_form(spec, xs, get=get, batch_size=5))
            assert batched.shape == whole.shape
            np.testing.assert_allclose(batched, whole, rtol=0, atol=3.5e-4 * np.abs(whole).max())
            part = np.asarray(closed_form(spec, xs, xs[:7], get=get, batch_size=5))
            np.testing.assert_allclose(part, whole[:, :7], rtol=0, atol=3.5e-4 * np.abs(whole).max())


def test_a_kernel_over_the_budget_is_computed_in_blocks():
    """With a budget too small for the whole kernel but enough for blocks, the same numbers."""
    from replication import memory
    from replication.kernels import closed_form

    spec = MLP(8, 1, "erf")
    x = jax.random.normal(jax.random.PRNGKey(0), (40, 6))
    whole = memory.closed_form_bytes(spec, x.shape, 40, 40)
    block = memory.plan_closed_form(spec, x.shape, 40, 40, budget=whole // 4)
    assert block is not None and block < 40
    np.testing.assert_allclose(closed_form(spec, x, get="ntk", budget=whole // 4),
                               closed_form(spec, x, get="ntk"), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("ask, names", [
    (lambda: __import__("replication.kernels", fromlist=["x"]).closed_form(
        CNN(8, 2, "relu", readout="gap"), jax.ShapeDtypeStruct((100_000, 32, 32, 3), np.float32)),
     "closed-form kernel of 100000 x 100000 inputs of shape (32, 32, 3) needs at least"),
    (lambda: __import__("replication.memory", fromlist=["x"]).plan_empirical_ntk(
        10**12, [10**6] * 3, 10**6, 10**6, 256, "jacobian"),
     "empirical NTK (jacobian) of 1000000 x 1000000 inputs for 1,000,000,000,000 parameters"),
    (lambda: __import__("replication.memory", fromlist=["x"]).plan_ensemble(10**12, 64, 2),
     "an ensemble member of 1,000,000,000,000 parameters needs"),
])
def test_far_too_large_is_refused_in_one_line_before_anything_is_built(ask, names):
    with pytest.raises(MemoryBudgetError) as e:
        ask()
    message = str(e.value)
    assert names in message and "\n" not in message and "the budget is" in message


def test_an_ensemble_over_the_budget_trains_in_chunks_with_the_same_result():
    import optax

    from replication.train import fit_ensemble, mse_loss

    spec = MLP(16, 1, "relu")
    module = spec.flax()
    x = jax.random.normal(jax.random.PRNGKey(0), (8, 3))
    y = np.cos(np.asarray(x[:, :1]))
    stacked = jax.vmap(lambda k: module.init(k, x))(jax.random.split(jax.random.PRNGKey(1), 6))
    n_params = sum(a[0].size for a in jax.tree_util.tree_leaves(stacked))
    budget = 2 * 4 * n_params * 4  # two members' parameters, gradients, init and momentum
    args = (mse_loss(module.apply), stacked, optax.sgd(0.1, momentum=0.9), 20)
    whole, chunked = fit_ensemble(*args, args=(x, y)), fit_ensemble(*args, args=(x, y), budget=budget)
    np.testing.assert_allclose(chunked.losses, whole.losses, rtol=1e-6)
