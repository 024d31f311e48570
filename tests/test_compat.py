"""neural-tangents on this JAX (replication.compat): what the study uses computes what it did on
the JAX neural-tangents was written for, and structured derivatives still work.

The stored values (tests/data/pinned_closed_forms.npz) were computed with jax/jaxlib 0.4.25 and
numpy 1.26 in float64 (tests/data/make_pinned_closed_forms.py). Float64 rounding differs between
XLA versions at 1e-16 relative; the ReLU kernel's arccos near correlation 1 turns that into
sqrt(eps) ~ 1.5e-8, hence the tolerance 3e-8 (measured: about 1e-15, one diagonal entry 4e-9).
"""
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neural_tangents as nt
from replication import compat
from replication.arch import MLP
from replication.compat import enable_x64
from replication.kernels import empirical_ntk
from specs import CNN_SPECS, MLP_SPECS, spec_id

PINNED = np.load(Path(__file__).with_name("data") / "pinned_closed_forms.npz")
RTOL = 3e-8


def _close(now, key):
    np.testing.assert_allclose(np.asarray(now), PINNED[key], rtol=RTOL, atol=RTOL * np.abs(PINNED[key]).max())


@pytest.mark.parametrize("spec", MLP_SPECS + CNN_SPECS, ids=spec_id)
def test_every_closed_form_kernel_is_the_pinned_one(spec):
    with enable_x64():
        x = jnp.asarray(PINNED["input/mlp" if spec in MLP_SPECS else "input/cnn"])
        k = spec.stax()[2](x, None, ("nngp", "ntk"))
        _close(k.nngp, f"kernel/{spec_id(spec)}/nngp")
        _close(k.ntk, f"kernel/{spec_id(spec)}/ntk")
        if spec in CNN_SPECS:
            k = spec.stax_on_patches()[2](spec.patches(x), None, ("nngp", "ntk"))
            _close(k.nngp, f"patches/{spec_id(spec)}/nngp")
            _close(k.ntk, f"patches/{spec_id(spec)}/ntk")


def test_the_predictors_are_the_pinned_ones():
    with enable_x64():
        x, xt, y = (jnp.asarray(PINNED[f"input/{k}"]) for k in ("mlp", "mlp_test", "y"))
        kernel_fn = MLP_SPECS[0].stax()[2]
        predict = nt.predict.gradient_descent_mse(kernel_fn(x, None, "ntk"), y, learning_rate=0.5)
        ensemble = nt.predict.gradient_descent_mse_ensemble(kernel_fn, x, y, learning_rate=0.5)
        for t in (0.0, 10.0, None):
            train, test = predict(t, jnp.asarray(PINNED["input/f0"]), jnp.asarray(PINNED["input/f0_test"]),
                                  kernel_fn(xt, x, "ntk"))
            _close(train, f"gradient_descent_mse/{t}/train")
            _close(test, f"gradient_descent_mse/{t}/test")
            p = ensemble(t, xt, "ntk", compute_cov=True)
            _close(p.mean, f"ensemble/{t}/mean")
            _close(p.covariance, f"ensemble/{t}/cov")
        gp = nt.predict.gp_inference(kernel_fn(x, None, "nngp"), y, diag_reg=0.04, diag_reg_absolute_scale=True)
        post = gp("nngp", kernel_fn(xt, x, "nngp"), kernel_fn(xt, None, "nngp"))
        _close(post.mean, "gp_inference/mean")
        _close(post.covariance, "gp_inference/cov")


def test_structured_derivatives_run_without_falling_back():
    """The fast NTK works on this JAX (tests/test_kernels.py checks it equals Jacobian contraction
    for every architecture): no fallback was taken anywhere in this process."""
    from replication import kernels

    x = jax.random.normal(jax.random.PRNGKey(0), (4, 3))
    module = MLP(width=16, depth=2, activation="relu").flax()
    empirical_ntk(module.apply, module.init(jax.random.PRNGKey(1), x), x)
    assert kernels.STRUCTURED_FAILED == []


def test_a_broken_structured_ntk_falls_back_once_to_the_same_kernel(monkeypatch):
    from replication import kernels

    x = jax.random.normal(jax.random.PRNGKey(0), (4, 3))
    module = MLP(width=16, depth=2, activation="erf").flax()
    params = module.init(jax.random.PRNGKey(1), x)
    expected = empirical_ntk(module.apply, params, x, implementation="jacobian")
    real = kernels._program

    def broken(apply_fn, implementation):
        if implementation == "structured":
            def fail(*args):
                raise NotImplementedError("a transpose rule JAX removed")
            return fail
        return real(apply_fn, implementation)

    monkeypatch.setattr(kernels, "_program", broken)
    monkeypatch.setattr(kernels, "STRUCTURED_FAILED", [])
    with pytest.warns(RuntimeWarning, match="NTK-vector products"):
        first = empirical_ntk(module.apply, params, x)
    second = empirical_ntk(module.apply, params, x)   # no second warning: it is said once
    np.testing.assert_allclose(first, expected, rtol=1e-5, atol=1e-6)   # float32 rounding
    np.testing.assert_allclose(second, first, rtol=0, atol=0)


def test_the_layer_fills_in_only_what_is_missing():
    """Applying it again changes nothing, and on a JAX that has every name it patches nothing."""
    before = list(compat.APPLIED)
    compat.apply()
    assert compat.APPLIED == before
    if jax.__version_info__ < (0, 4, 26):
        assert before == []
    else:
        assert any(p.startswith("2 ") for p in before) and any(p.startswith("8 ") for p in before)


def test_inputs_at_fault_raise_and_leave_structured_derivatives_on(monkeypatch):
    from replication import kernels

    monkeypatch.setattr(kernels, "STRUCTURED_FAILED", [])
    module = MLP(width=16, depth=1, activation="erf").flax()
    params = module.init(jax.random.PRNGKey(1), jnp.ones((2, 3)))
    with pytest.raises(Exception):
        empirical_ntk(module.apply, params, jnp.ones((2, 5)))   # inputs of the wrong dimension
    assert kernels.STRUCTURED_FAILED == []
