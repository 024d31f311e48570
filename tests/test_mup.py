"""muP (Tensor Programs V, Table 8, relative to a base width): the scaling table, checked.

Every expected value below is written from the table's formulas (init
variance, forward multiplier, per-layer learning rate for SGD and Adam as
functions of fan-in, fan-out and r = width / base_width), not from the code
under test.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from replication.arch import CNN, MLP
from replication.parametrization import affine_scaling, learning_rate_factors

R = 8.0  # width / base_width in these tests


@pytest.mark.parametrize("role, fan_in, s2, m", [
    ("input", 5, 2.0 / 5, 1.0),                  # W_std^2 / fan_in, multiplier 1
    ("hidden", 512, 2.0 / 512, 1.0),             # W_std^2 / fan_in, multiplier 1
    ("readout", 512, 2.0 / (512 / R), 1 / R),    # W_std^2 / base_fan_in, multiplier 1 / r
])
def test_mup_init_variance_and_multiplier_follow_table_8(role, fan_in, s2, m):
    s = affine_scaling("mup", 2**0.5, 0.1, fan_in, role, R)
    assert s.weight_init_std**2 == pytest.approx(s2, rel=1e-12)
    assert s.weight_multiplier == pytest.approx(m, rel=1e-12)
    assert (s.bias_multiplier, s.bias_init_std) == (1.0, 0.1)


@pytest.mark.parametrize("optimizer, expected", [
    # (input, hidden, readout) weights; biases: r (hidden, SGD) or 1
    ("sgd", {"input": (R, R), "hidden": (1.0, R), "readout": (R, 1.0)}),
    ("adam", {"input": (1.0, 1.0), "hidden": (1 / R, 1.0), "readout": (1.0, 1.0)}),
])
def test_mup_learning_rate_factors_follow_table_8(optimizer, expected):
    for role, factors in expected.items():
        assert learning_rate_factors("mup", role, R, optimizer) == pytest.approx(factors, rel=1e-12)
        for other in ("ntk", "standard"):
            assert learning_rate_factors(other, role, R, optimizer) == (1.0, 1.0)


def test_mup_is_standard_at_the_base_width():
    """Same key, same parameters, same outputs, same optimizer steps."""
    x = jax.random.normal(jax.random.PRNGKey(0), (6, 5))
    y = jnp.sin(x[:, :1])
    sp, mup = MLP(64, 3, "relu", parameterization="standard"), MLP(64, 3, "relu", parameterization="mup",
                                                                   base_width=64)
    for name in ("sgd", "adam"):
        out = []
        for spec in (sp, mup):
            module = spec.flax()
            params = module.init(jax.random.PRNGKey(1), x)
            opt = spec.optimizer(name, 0.05)
            state = opt.init(params)
            for _ in range(3):
                grads = jax.grad(lambda p: jnp.mean((module.apply(p, x) - y) ** 2))(params)
                updates, state = opt.update(grads, state, params)
                params = optax.apply_updates(params, updates)
            out.append(module.apply(params, x))
        np.testing.assert_array_equal(out[0], out[1])


def test_mup_init_draws_have_the_tables_variances():
    """Sample variance of each layer's stored weights against Table 8; a variance estimated from
    n draws has relative sd sqrt(2 / n): 5 of those is the tolerance."""
    spec = MLP(512, 2, "relu", parameterization="mup", base_width=64)
    params = spec.flax().init(jax.random.PRNGKey(2), jnp.ones((1, 7)))["params"]
    expected = {"dense_0": 2.0 / 7, "dense_1": 2.0 / 512, "readout": 2.0 / 64}
    for name, var in expected.items():
        w = np.asarray(params[name]["kernel"], np.float64)
        assert abs(w.var() / var - 1) < 5 * np.sqrt(2 / w.size), name


def test_mup_output_at_init_is_standards_readout_divided_by_sqrt_r():
    """Hidden layers are drawn as under SP; the readout's effective weight is w_sp * sqrt(r) / r."""
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 4))
    base, width = 32, 512
    kw = dict(width=width, depth=2, activation="erf", b_std=None)
    f_sp = MLP(**kw, parameterization="standard").flax()
    f_mup = MLP(**kw, parameterization="mup", base_width=base).flax()
    key = jax.random.PRNGKey(3)
    out_sp = f_sp.apply(f_sp.init(key, x), x)
    out_mup = f_mup.apply(f_mup.init(key, x), x)
    np.testing.assert_allclose(out_mup, out_sp / np.sqrt(width / base), rtol=2e-5, atol=1e-7)


def test_optimizer_scales_each_layers_update_by_its_factor():
    """One SGD step: update = -lr * factor * grad, leaf by leaf (exact up to float32 rounding)."""
    spec = CNN(16, 2, "relu", parameterization="mup", base_width=4)
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 6, 6, 2))
    module = spec.flax()
    params = module.init(jax.random.PRNGKey(1), x)
    grads = jax.grad(lambda p: jnp.sum(module.apply(p, x) ** 2))(params)
    updates, _ = spec.optimizer("sgd", 0.1).update(grads, spec.optimizer("sgd", 0.1).init(params), params)
    factors = spec.learning_rate_factors("sgd")
    assert factors["conv_0"]["kernel"] == 4.0 and factors["conv_1"]["kernel"] == 1.0
    assert factors["readout"]["kernel"] == 4.0 and factors["readout"]["bias"] == 1.0
    for layer, leaves in grads["params"].items():
        for kind, g in leaves.items():
            np.testing.assert_allclose(updates["params"][layer][kind], -0.1 * factors[layer][kind] * g,
                                       rtol=1e-6, atol=1e-12)


def test_zero_readout():
    spec = MLP(32, 1, "relu", parameterization="mup", base_width=8, zero_readout=True)
    params = spec.flax().init(jax.random.PRNGKey(0), jnp.ones((2, 3)))
    assert not np.any(params["params"]["readout"]["kernel"])
    assert spec.readout_scaling(32).weight_variance == 0.0
    with pytest.raises(ValueError, match="no neural-tangents closed form"):
        spec.stax()


def test_small_coordinate_check():
    """After 3 SGD steps, the hidden pre-activations' change from width 64 to 1024: constant under
    muP, falling as width^(-1/2) under NTK parameterization. Slopes over log(16) of the geometric
    mean over seeds. A network's change fluctuates by O(width^-1/2); measured, the slope from 3
    seeds has a standard deviation of 0.06 to 0.10 (8 groups of 3 seeds, two JAX versions' random
    streams), so 12 seeds bring it to at most 0.05, and the tolerance 0.15 is three of those."""
    from replication.experiments import mup
    from replication.experiments.mup import coordinates
    from replication.experiments.mup.networks import Networks
    from replication.sweep import Streams

    c = coordinates.Config(networks=Networks(input_dim=8), widths=(64, 1024), base_width=64, depth=2,
                           batch=16, steps=3, seeds=12, trajectory_seeds=12)
    records = coordinates.measure(c, Streams(0, mup.STREAMS)).records
    for p, expected in (("mup", 0.0), ("ntk", -0.5)):
        for layer in ("dense_0", "dense_1"):
            change = np.exp(np.log(records[p][layer][:, :, 3, 1]).mean(axis=1))
            slope = np.log(change[1] / change[0]) / np.log(16)
            assert abs(slope - expected) < 0.15, (p, layer, slope)


def test_first_order_change_is_the_step_divided_by_the_learning_rate():
    """The first-order check's mean |delta h_l| against one real SGD step of a small learning rate
    along the same update (the residual of zero outputs), (h_l(after) - h_l(before)) / eta, in
    float64: equal up to float32 rounding and O(eta) terms, for SP, NTK and muP. And from width 64
    to 1024, SP's readout change grows about 16x (abc exponent 1) and muP's stays about constant
    (exponent 0): bounds a factor 2 either side, which two seeds' fluctuations (of relative order
    width^(-1/2) at width 64) stay well within."""
    from replication.compat import enable_x64
    from replication.experiments import mup
    from replication.experiments.mup import coordinates
    from replication.experiments.mup.networks import Networks
    from replication.sweep import Streams

    c = coordinates.Config(networks=Networks(input_dim=8), widths=(64, 1024), base_width=64, depth=2,
                           batch=16, seeds=2)
    streams = Streams(0, mup.STREAMS)
    x, y = coordinates.fixed_batch(c, streams)
    first = {p: coordinates.checks(c, streams, x, y, p, 0.1)[1] for p in ("standard", "ntk", "mup")}
    with enable_x64():
        x64, y64 = (jnp.asarray(a, jnp.float64) for a in (x, y))
        for p in ("standard", "ntk", "mup"):
            spec = c.networks.spec(p, 64, c.depth, c.base_width)
            module = spec.flax()
            p0 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64),
                                        module.init(streams.network("networks", 64, 0), x))
            eta = 1e-6
            opt = spec.optimizer("sgd", eta)
            grads = jax.grad(lambda q: -jnp.mean(y64 * module.apply(q, x64)))(p0)  # from zero outputs
            updates, _ = opt.update(grads, opt.init(p0), p0)
            before = coordinates.layer_outputs(module, p0, x64)
            after = coordinates.layer_outputs(module, optax.apply_updates(p0, updates), x64)
            for layer, h in before.items():
                step = float(jnp.mean(jnp.abs(after[layer] - h))) / eta
                assert step == pytest.approx(first[p][layer][0, 0], rel=1e-3), (p, layer)
    growth = {p: np.exp(np.log(first[p]["readout"]).mean(axis=1)) for p in ("standard", "mup")}
    assert 8 < growth["standard"][1] / growth["standard"][0] < 32
    assert 0.5 < growth["mup"][1] / growth["mup"][0] < 2


def test_the_table_printed_is_the_one_implemented():
    """``MUP_TABLE``'s learning-rate columns, read at r = 8, are ``learning_rate_factors``."""
    from replication.parametrization import MUP_TABLE

    header, rows = MUP_TABLE
    value = {"1": 1.0, "r": R, "1 / r": 1 / R}
    for row in rows:
        role, kind = row[0].split()
        index = 0 if kind.startswith("weight") else 1
        for column, optimizer in ((3, "sgd"), (4, "adam")):
            factor = learning_rate_factors("mup", role, R, optimizer)[index]
            assert factor == value[row[column]], (row, optimizer)


# ---- Hyperparameter transfer on digits (``mup/transfer.py``) ----

def test_optimum_is_the_vertex_of_a_log_parabola():
    """A curve exp(a (g - g0)^2) has a parabola for its log: the vertex through the least point
    and its neighbours is g0 exactly, wherever g0 falls between grid points; at the edge, the edge
    point and ``inside`` False."""
    from replication.experiments.mup.transfer import optimum

    grid = np.arange(-10, 1) / 2.0
    for g0 in (-3.3, -2.0, -1.76):
        value, inside = optimum(grid, 0.01 * np.exp(0.7 * (grid - g0) ** 2))
        assert inside and value == pytest.approx(g0, abs=1e-12)
    value, inside = optimum(grid, np.exp(grid))   # least at the grid's low end: not bracketed
    assert not inside and value == grid[0]
    curve = 0.01 * np.exp((grid + 2.6) ** 2)
    curve[grid > -2.6] = np.inf                   # the neighbour above diverged: the grid point
    assert optimum(grid, curve) == (-3.0, True)


def test_bootstrap_slope_recovers_a_planted_shift():
    """Curves with optimum log2 lr = c - width_exponent log2 width and seed noise: the slope's
    bootstrap interval contains the planted exponent and has width of order noise / (span sqrt(seeds))."""
    from replication.experiments.mup import transfer

    c = transfer.Config(widths=(128, 256, 512, 1024), seeds=16, bootstrap=500)
    grid = np.arange(-12, 1) / 2.0
    rng = np.random.default_rng(1)
    for planted in (-1.0, 0.0):
        centre = -2.0 + planted * np.log2(np.asarray(c.widths) / 128)
        shift = rng.normal(0, 0.2, (len(c.widths), c.seeds))
        losses = 0.01 * np.exp(0.5 * (grid - (centre[:, None, None] + shift[..., None])) ** 2)
        fitted = transfer.fit_sweep(c, grid, losses, rng)
        assert fitted.inside.all()
        lo, hi = fitted.slope_ci
        assert lo < planted < hi and hi - lo < 0.25, (planted, fitted.slope_ci)


def test_learning_rate_as_a_factor_on_the_update_is_the_optimizer_at_that_rate():
    """The transfer program runs each optimizer at rate 1 and multiplies its update by the grid's
    rate; for SGD with momentum and for Adam (muP's per-layer factors included) that is optax's
    own optimizer at that rate: the same minibatch losses to float32 rounding."""
    from replication.experiments.mup import transfer
    from replication.train import mse

    spec = MLP(256, 1, "relu", W_std=2**0.5, b_std=0.1, out_dim=3, parameterization="mup", base_width=64)
    module = spec.flax()
    x = jax.random.normal(jax.random.PRNGKey(1), (40, 5))
    y = jnp.tanh(x[:, :3])
    order = jnp.asarray(np.random.default_rng(0).integers(0, 40, (12, 8)), jnp.int32)
    params = module.init(jax.random.PRNGKey(2), x[:1])
    for name, lr, options in (("sgd", 0.05, {"momentum": 0.9}), ("adam", 0.01, {})):
        run = transfer._program(module, spec.optimizer(name, 1.0, **options), tail_steps=12)
        train, _ = run(params, jnp.asarray([lr, 2 * lr]), jnp.asarray([1.0, 1.0]), order, x, y, x, y)
        opt = spec.optimizer(name, lr, **options)
        p, state, losses = params, opt.init(params), []
        for idx in order:
            loss, g = jax.value_and_grad(lambda q: mse(module.apply(q, x[idx]), y[idx]))(p)
            u, state = opt.update(g, state, p)
            p = optax.apply_updates(p, u)
            losses.append(loss)
        assert np.isfinite(train).all()
        assert float(train[0]) == pytest.approx(float(np.mean(losses)), rel=1e-5), name
        assert float(train[1]) != pytest.approx(float(train[0]), rel=1e-3)


def test_small_transfer_study():
    """Two widths, a few steps: muP's network at the base width trains as SP's; a rate far past the edge is
    recorded as diverged (inf); every claim is made, with an interval where its optima are bracketed;
    a ladder that does not start at the base width, or stops out of order, are refused."""
    import dataclasses

    from replication.experiments import mup
    from replication.experiments.mup import transfer
    from replication.sweep import Streams

    c = transfer.Config(widths=(128, 256), steps=30, seeds=2, sgd_log2_lr_halves=(-6, 12),
                        adam_log2_lr_halves=(-16, -12), log2_alpha_halves=(-2, 2), bootstrap=50,
                        share_stops=(10, 2000))
    result = transfer.measure(c, Streams(0, mup.STREAMS))
    for o in transfer.OPTIMIZERS:
        assert result.train[o, "standard"].shape == (2, 2, result.log2_lrs[o].size)
        assert np.isfinite(result.train[o, "mup"][1]).any()
    assert np.isinf(result.train["sgd", "standard"][:, :, -1]).all()     # 2^6: diverged
    assert result.alpha_train.shape == (2, 2, 5)
    for k in ("dense_0", "readout", "all"):   # Adam's per-layer shares, trained separately: muP is SP there
        assert result.shares["standard", k].shape == (2, 1)
        assert result.shares["mup", k][0] == result.shares["standard", k][0]
    found = transfer.findings(c, result)
    by_id = {cl.id: cl for cl in found.claims}
    for o in transfer.OPTIMIZERS:
        for p, name in (("standard", "sp"), ("mup", "mup")):
            claim = by_id[f"mup_transfer_slope_{name}_{o}"]
            inside = transfer.optima(result.log2_lrs[o], result.train[o, p])[1].all()
            # An interval exactly when every optimum is bracketed; unbracketed is inconclusive, not failed.
            assert (claim.ci is not None) == inside and np.isfinite(claim.measured)
            assert claim.ci is None or claim.ci[0] <= claim.measured <= claim.ci[1]
            assert inside or claim.verdict == "inconclusive"
        assert by_id[f"mup_transfer_wider_is_better_{o}"].ci is not None
    with pytest.raises(ValueError, match="base width"):
        transfer.measure(dataclasses.replace(c, widths=(256, 512)), Streams(0, mup.STREAMS))
    with pytest.raises(ValueError, match="share_stops"):
        transfer.measure(dataclasses.replace(c, share_stops=(20, 10)), Streams(0, mup.STREAMS))
    ids = set(by_id)
    assert {f"mup_transfer_slope_{p}_{o}" for p in ("sp", "mup") for o in ("sgd", "adam")} <= ids
    assert {"mup_transfer_wider_is_better_sgd", "mup_transfer_wider_is_better_adam",
            "mup_transfer_slope_mup_output_multiplier"} <= ids
