"""XLA's CPU backend computes every layer's form, ``x @ W * c + b``, right.

jaxlib 0.4.25's oneDNN rewrite of this pattern returned wrong numbers for some shapes (a jitted
(16, 1024) x (1024, 1024) product was off by up to 3), and the study disabled that compiler pass.
The current jaxlib computes it right without any flag; these tests would catch a return.
"""
import jax
import numpy as np
import pytest

from replication.arch import MLP


@pytest.mark.parametrize("n, width", [(16, 1024), (16, 2048), (64, 1024), (4, 4096), (128, 512)])
def test_jitted_scaled_matmul_plus_bias_is_right(n, width):
    # Float32 rounding of a width-term sum of O(1/sqrt(width)) products is about
    # sqrt(width) eps ~ 1e-5 at most here; the old miscompilation was O(1).
    rng = np.random.default_rng(n + width)
    h = rng.standard_normal((n, width)).astype(np.float32)
    w = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
    b = rng.standard_normal(width).astype(np.float32)
    out = jax.jit(lambda h, w, b: h @ w * 0.04 + b)(h, w, b)
    expected = h.astype(np.float64) @ w * 0.04 + b
    np.testing.assert_allclose(out, expected, atol=1e-4)


def test_jitted_network_equals_eager_network_at_width_1024():
    x = np.random.default_rng(1).standard_normal((16, 8)).astype(np.float32)
    module = MLP(width=1024, depth=2, activation="erf", W_std=1.5).flax()
    params = module.init(jax.random.PRNGKey(0), x)
    np.testing.assert_allclose(jax.jit(module.apply)(params, x), module.apply(params, x),
                               rtol=1e-4, atol=1e-5)
