"""One spec, two worlds: the Flax network and the stax network are the same network."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from replication.arch import CNN, MLP, training_layout
from specs import SPECS, inputs_for, spec_id

WIDTH = 32


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_flax_apply_equals_stax_apply(spec):
    spec = spec.replace(width=WIDTH)
    x = inputs_for(spec, jax.random.PRNGKey(0), 6)
    init_fn, apply_fn, _ = spec.stax()
    _, stax_params = init_fn(jax.random.PRNGKey(1), x.shape)
    params = spec.params_from_stax(stax_params)
    flax_out = spec.flax().apply(params, x)
    stax_out = apply_fn(stax_params, x)
    assert flax_out.shape == stax_out.shape == (6, spec.out_dim)
    # Same arithmetic in another order: float32 rounding, ~1e-7 per operation.
    np.testing.assert_allclose(flax_out, stax_out, rtol=1e-5, atol=1e-5 * float(jnp.abs(stax_out).max()))
    # And the parameter trees map onto each other both ways.
    flax_params = spec.flax().init(jax.random.PRNGKey(2), x)
    assert jax.tree_util.tree_structure(flax_params) == jax.tree_util.tree_structure(params)
    back = spec.params_to_stax(flax_params)
    np.testing.assert_allclose(apply_fn(back, x), spec.flax().apply(flax_params, x), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_flax_init_has_stax_distribution(spec):
    """Every parameter tensor is drawn from the same law on both sides.

    For each leaf, pooled over 16 initialisations of each side, a two-sample
    Kolmogorov-Smirnov test and a two-sided F test of the variances. Both
    sides draw N(0, s^2) whatever s, so each p-value is uniform; with fixed
    keys and p > 1e-6 the family of ~200 leaves fails by chance with
    probability < 2e-4, while a wrong variance (e.g. fan-in vs fan-out, or a
    factor W_std) gives p < 1e-10 at these sample sizes.
    """
    spec = spec.replace(width=WIDTH)
    x = inputs_for(spec, jax.random.PRNGKey(0), 2)
    init_fn, _, _ = spec.stax()
    keys = jax.random.split(jax.random.PRNGKey(3), 16)
    flax_draws = jax.vmap(lambda k: spec.flax().init(k, x))(keys)
    stax_draws = jax.vmap(lambda k: spec.params_from_stax(init_fn(k, x.shape)[1]))(keys)
    pairs = zip(jax.tree_util.tree_leaves_with_path(flax_draws),
                jax.tree_util.tree_leaves(stax_draws), strict=True)
    for (path, a), b in pairs:
        assert a.shape == b.shape, path
        a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
        name = jax.tree_util.keystr(path)
        assert stats.ks_2samp(a, b).pvalue > 1e-6, name
        ratio = a.var(ddof=1) / b.var(ddof=1)
        f_cdf = stats.f.cdf(ratio, a.size - 1, b.size - 1)
        assert 2 * min(f_cdf, 1 - f_cdf) > 1e-6, (name, ratio)


def test_standard_and_ntk_parameterizations_define_the_same_function_distribution():
    """Same W_std, b_std: the effective weights have the same variance, hence one NNGP."""
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 5))
    kernels = [MLP(64, 2, "relu", parameterization=p).stax()[2](x, None, "nngp")
               for p in ("ntk", "standard")]
    np.testing.assert_allclose(kernels[0], kernels[1], rtol=1e-6)


@pytest.mark.parametrize("bad, message", [
    (dict(width=0), "width must be a positive integer"),
    (dict(width=2.5), "width must be a positive integer"),
    (dict(depth=-1), "depth must be a non-negative integer"),
    (dict(activation="tanh"), "unknown activation 'tanh'; allowed: relu, erf, gelu"),
    (dict(parameterization="mu-p"), "unknown parameterization 'mu-p'"),
    (dict(parameterization="mup"), "parameterization 'mup' needs base_width"),
    (dict(parameterization="mup", base_width=0), "base_width must be a positive integer"),
    (dict(base_width=4), "base_width applies to parameterization 'mup' only"),
    (dict(W_std=0.0), "W_std must be a positive finite number"),
    (dict(b_std=float("nan")), "b_std must be None or a finite number"),
])
def test_bad_spec_is_refused_with_a_message(bad, message):
    args = dict(width=8) | bad
    with pytest.raises(ValueError, match=message):
        MLP(**args)


def test_cnn_readouts():
    with pytest.raises(ValueError, match="unknown readout 'max'"):
        CNN(8, readout="max")
    x = jnp.ones((3, 4, 4, 2))
    for readout, fan_in in (("flatten", 4 * 4 * 8), ("gap", 8)):
        spec = CNN(8, 1, readout=readout)
        params = spec.flax().init(jax.random.PRNGKey(0), x)
        assert params["params"]["readout"]["kernel"].shape == (fan_in, 1)


@pytest.mark.parametrize("spec", SPECS + [
    MLP(width=1, depth=2, activation="erf", W_std=1.3, b_std=0.2, parameterization="mup", base_width=4),
    MLP(width=1, depth=2, activation="relu", parameterization="standard", zero_readout=True),
], ids=spec_id)
def test_init_from_unit_draws_equals_init_bit_for_bit(spec):
    """A sweep draws one architecture's random numbers once and rescales them per
    parameterization, activation and W_std: the result must be init's, exactly."""
    spec = spec.replace(width=16)
    x = inputs_for(spec, jax.random.PRNGKey(0), 3)
    key = jax.random.PRNGKey(7)
    unit = spec.unit_spec.flax().init(key, x)
    direct = spec.flax().init(key, x)
    rescaled = spec.init_from_unit(unit)
    assert jax.tree_util.tree_structure(rescaled) == jax.tree_util.tree_structure(direct)
    for a, b in zip(jax.tree_util.tree_leaves(rescaled), jax.tree_util.tree_leaves(direct)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("spec", [
    MLP(width=1, depth=2, activation="relu", W_std=1.3, b_std=0.2),
    MLP(width=1, depth=2, activation="erf", parameterization="mup", base_width=4, zero_readout=True),
    MLP(width=1, depth=1, activation="relu", b_std=None, parameterization="standard"),
    CNN(width=1, depth=1, activation="relu", readout="flatten"),
], ids=spec_id)
def test_init_in_one_draw_has_the_law_of_init(spec):
    """One RNG call for the whole network: init's tree, shapes and dtypes, and every leaf its own
    standard deviation times independent standard normals."""
    spec = spec.replace(width=256 if isinstance(spec, MLP) else 32)
    x = inputs_for(spec, jax.random.PRNGKey(0), 3)
    key = jax.random.PRNGKey(7)
    params = spec.init_in_one_draw(key, x)
    direct = spec.flax().init(key, x)
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(direct)
    stds = spec.init_from_unit(jax.tree_util.tree_map(np.ones_like, direct))  # each leaf: its std
    normals = []
    for a, b, std in zip(*map(jax.tree_util.tree_leaves, (params, direct, stds))):
        assert a.shape == b.shape and a.dtype == b.dtype
        std = float(np.ravel(std)[0])
        if std == 0.0:  # muP's zero-initialised readout
            assert not np.any(a)
        else:
            normals.append(np.asarray(a, np.float64).ravel() / std)
    z = np.concatenate(normals)
    # Sample mean and variance of n standard normals: standard errors 1/sqrt(n), sqrt(2/n); 5 of them.
    assert abs(z.mean()) < 5 / np.sqrt(z.size) and abs(z.var() - 1) < 5 * np.sqrt(2 / z.size)
    # Distinct leaves are distinct slices of the draw, not repeats of one another.
    assert len({round(float(n[0]), 6) for n in normals}) == len(normals)
    again = spec.init_in_one_draw(key, x)
    other = spec.init_in_one_draw(jax.random.PRNGKey(8), x)
    for a, b, c in zip(*map(jax.tree_util.tree_leaves, (params, again, other))):
        np.testing.assert_array_equal(a, b)
        assert a.size == 0 or not np.any(a) or not np.array_equal(a, c)


@pytest.mark.parametrize("spec", [
    MLP(width=1, depth=2, activation="relu"),
    MLP(width=1, depth=1, activation="erf", b_std=None, parameterization="standard"),
    MLP(width=1, depth=2, activation="gelu", parameterization="mup", base_width=8, out_dim=3),
    CNN(width=1, depth=1, activation="relu", readout="gap"),
], ids=spec_id)
def test_training_layout_is_the_same_function(spec):
    """Feature-major activations change where XLA puts numbers in memory, not the network:
    the same init, outputs, readout inputs, gradients and forward-mode derivatives."""
    spec = spec.replace(width=24)
    x = inputs_for(spec, jax.random.PRNGKey(0), 5)
    module = spec.flax()
    params = module.init(jax.random.PRNGKey(1), x)

    def measured():
        out = module.apply(params, x)
        phi = module.apply(params, x, readout_input=True)
        grads = jax.grad(lambda p: jnp.sum(jnp.sin(module.apply(p, x))))(params)
        _, tangent = jax.jvp(lambda p: module.apply(p, x), (params,), (grads,))
        return module.init(jax.random.PRNGKey(1), x), out, phi, grads, tangent

    with training_layout():
        feature_major = jax.jit(measured)()
        traced = str(jax.make_jaxpr(module.apply)(params, x))
    batch_major = jax.jit(measured)()
    # MLPs really are traced feature-major ((width, n) activations); CNNs are left as they are.
    assert ("f32[24,5]" in traced) == isinstance(spec, MLP)
    assert jax.tree_util.tree_structure(feature_major) == jax.tree_util.tree_structure(batch_major)
    for a, b in zip(jax.tree_util.tree_leaves(feature_major), jax.tree_util.tree_leaves(batch_major)):
        assert a.shape == b.shape
        # The same sums in another order: float32 rounding, ~1e-7 relative per operation.
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * float(jnp.abs(b).max()))
