"""The exact law of a bias-free ReLU network's NTK diagonal (replication.experiments.ntk.relu_diagonal)
against closed forms, its own sampler, and networks."""
import jax
import numpy as np
import pytest
from scipy import stats

from replication.arch import MLP
from replication.experiments.ntk import relu_diagonal
from replication.experiments.ntk.fluctuations import ntk_gram_samples
from replication.kernels import closed_form


def test_depth_one_is_a_scaled_chi_square_of_twice_the_active_units():
    """At depth 1, Theta = (sigma^4 |x|^2 / (n_0 n_1)) chi^2(2k), k ~ Binomial(n_1, 1/2): the
    readout's, the forward and the backward terms add up to one chi-square. Every order, exactly."""
    s, x_sq, n0, n1 = 1.3, 5.0, 3, 7
    k = np.arange(n1 + 1)
    pmf = stats.binom.pmf(k, n1, 0.5)
    scale = s**4 * x_sq / (n0 * n1)
    for r in (1, 2, 3, 4):
        chi2 = np.prod([2 * k + 2 * i for i in range(r)], axis=0)
        assert np.isclose(relu_diagonal.moment([n1], n0, x_sq, r, W_std=s), scale**r * pmf @ chi2, rtol=1e-12)


@pytest.mark.parametrize("width,depth", [(4, 1), (8, 3), (16, 5)])
def test_the_mean_is_the_closed_form(width, depth):
    """ReLU's NTK diagonal has no finite-width correction to its mean (up to a dead layer's 2^-width)."""
    x = np.ones((1, 6), np.float32)
    spec = MLP(width, depth, "relu", W_std=2**0.5, b_std=None)
    limit = float(closed_form(spec, x)[0, 0])
    assert np.isclose(relu_diagonal.moment([width] * depth, 6, 6.0, 1), limit, rtol=1e-5)


def test_the_sampler_has_the_exact_moments():
    """Draws of the representation against the recursion, layers of unequal widths: the first two
    moments within 5 Monte Carlo standard errors, which the exact second and fourth moments give."""
    rng = np.random.default_rng(0)
    widths, n0, x_sq, S = [3, 7, 2, 5], 4, 2.5, 400_000
    m = [relu_diagonal.moment(widths, n0, x_sq, r) for r in (1, 2, 3, 4)]
    theta = relu_diagonal.sample(widths, n0, x_sq, rng, S)
    assert abs(theta.mean() - m[0]) <= 5 * np.sqrt((m[1] - m[0] ** 2) / S)
    assert abs(np.mean(theta**2) - m[1]) <= 5 * np.sqrt((m[3] - m[1] ** 2) / S)


@pytest.mark.parametrize("width,depth", [(3, 2), (4, 3)])
def test_networks_follow_the_exact_law(width, depth):
    """20000 Flax networks at tiny width: E[Theta] and E[Theta^2] within 5 standard errors (exact,
    from the recursion's moments up to the fourth), and the whole law by a two-sample
    Kolmogorov-Smirnov test against 200000 draws (p > 0.001)."""
    S, d = 20_000, 4
    x = np.full((1, d), 0.5, np.float32)   # |x|^2 = 1
    spec = MLP(width, depth, "relu", W_std=2**0.5, b_std=None)
    theta = ntk_gram_samples(spec, x, jax.random.split(jax.random.PRNGKey(7), S), chunk_size=5000)
    theta = theta[:, 0, 0].astype(np.float64)
    m = [relu_diagonal.moment([width] * depth, d, 1.0, r) for r in (1, 2, 3, 4)]
    assert abs(theta.mean() - m[0]) <= 5 * np.sqrt((m[1] - m[0] ** 2) / S)
    assert abs(np.mean(theta**2) - m[1]) <= 5 * np.sqrt((m[3] - m[1] ** 2) / S)
    law = relu_diagonal.sample([width] * depth, d, 1.0, np.random.default_rng(1), 200_000)
    assert stats.ks_2samp(theta, law).pvalue > 1e-3


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="at least one layer"):
        relu_diagonal.moment([], 4, 1.0, 1)
    with pytest.raises(ValueError, match="order"):
        relu_diagonal.moment([4], 4, 1.0, 5)
    with pytest.raises(ValueError, match="positive widths"):
        relu_diagonal.sample([4, 0], 4, 1.0, np.random.default_rng(0), 10)
