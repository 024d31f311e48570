"""The XLA CPU workaround of ``replication.xla_cpu`` takes effect."""
import jax
import numpy as np

from replication.arch import MLP
from replication.xla_cpu import PASS, flags_with_pass_disabled


def test_jitted_scaled_matmul_plus_bias_is_right():
    # The shape that jaxlib 0.4.25's oneDNN rewrite gets wrong by O(1); float32
    # rounding of a 1024-term sum of O(1/32) products is about 1e-6.
    rng = np.random.default_rng(0)
    h = rng.standard_normal((16, 1024)).astype(np.float32)
    w = (rng.standard_normal((1024, 1024)) / 32).astype(np.float32)
    b = rng.standard_normal(1024).astype(np.float32)
    out = jax.jit(lambda h, w, b: h @ w * 0.04 + b)(h, w, b)
    expected = h.astype(np.float64) @ w * 0.04 + b
    np.testing.assert_allclose(out, expected, atol=1e-4)
    assert "onednn" not in jax.jit(lambda h, w, b: h @ w * 0.04 + b).lower(h, w, b).compile().as_text()


def test_jitted_network_equals_eager_network_at_width_1024():
    x = np.random.default_rng(1).standard_normal((16, 8)).astype(np.float32)
    module = MLP(width=1024, depth=2, activation="erf", W_std=1.5).flax()
    params = module.init(jax.random.PRNGKey(0), x)
    np.testing.assert_allclose(jax.jit(module.apply)(params, x), module.apply(params, x),
                               rtol=1e-4, atol=1e-5)


def test_flags_keep_what_the_user_set():
    assert flags_with_pass_disabled("") == f"--xla_disable_hlo_passes={PASS}"
    assert flags_with_pass_disabled("--xla_foo=1") == f"--xla_foo=1 --xla_disable_hlo_passes={PASS}"
    assert (flags_with_pass_disabled("--xla_disable_hlo_passes=a,b --x=1")
            == f"--xla_disable_hlo_passes=a,b,{PASS} --x=1")
    once = flags_with_pass_disabled("")
    assert flags_with_pass_disabled(once) == once
