"""The nngp experiment's measurements against what theory says they must give."""
import jax
import numpy as np
import pytest
from scipy import special, stats

from replication.arch import MLP
from replication.data import sphere_inputs
from replication.experiments.nngp.kurtosis import kurtosis_of_one_output
from replication.experiments.nngp.monte_carlo import monte_carlo_floor
from replication.kernels import closed_form


def test_output_kurtosis_of_a_one_layer_relu_network_is_exact():
    """Depth 1, NTK parameterization: s^2 = (W^2/N) sum_i relu(h_i)^2 + b^2 with h_i ~ N(0, q).

    E relu(h)^2 = q/2 and Var relu(h)^2 = 3q^2/2 - q^2/4 = 5q^2/4, so the output's
    excess kurtosis is 3 (W^4/N)(5q^2/4) / (W^2 q/2 + b^2)^2. The estimate from
    20000 networks is compared with it using the spread of 10 independent
    groups (Student-t, two-sided 0.999: 4.78 standard errors).
    """
    N, W, b = 8, 2**0.5, 0.1
    x0 = sphere_inputs(jax.random.PRNGKey(0), 1, 5)
    q = W**2 + b**2  # |x0|^2 / dim = 1
    exact = 3 * (W**4 / N) * (5 * q**2 / 4) / (W**2 * q / 2 + b**2) ** 2
    f, s2 = kurtosis_of_one_output(MLP(N, 1, "relu", W_std=W, b_std=b), x0,
                                   jax.random.split(jax.random.PRNGKey(1), 20000))
    groups = np.asarray(s2).reshape(10, -1)
    k = 3 * groups.var(axis=1, ddof=1) / groups.mean(axis=1) ** 2
    assert abs(k.mean() - exact) <= stats.t.ppf(0.9995, 9) * k.std(ddof=1) / np.sqrt(10)
    # The outputs themselves are centred with the variance s^2 says.
    f = np.asarray(f)
    assert abs(f.mean()) <= 5 * f.std() / np.sqrt(f.size)
    assert abs(f.var() / np.asarray(s2).mean() - 1) <= 5 * np.sqrt((stats.kurtosis(f) + 2) / f.size)


def test_monte_carlo_floor_formula_matches_gaussian_sampling():
    """Isserlis' floor and spread against 400 direct M-sample covariances of N(0, K).

    The mean of 400 squared errors has relative standard error spread/sqrt(400),
    and the sample spread of a chi-square-like variable over 400 draws is
    within about 20% of the true one; 4 standard errors and 30% bound them.
    """
    K = np.asarray(closed_form(MLP(64, 2, "relu"), sphere_inputs(jax.random.PRNGKey(0), 6, 5),
                               get="nngp"), dtype=np.float64)
    M, R = 64, 400
    floor, spread = monte_carlo_floor(K, M)
    rng = np.random.default_rng(0)
    L = np.linalg.cholesky(K + 1e-12 * np.eye(len(K)))
    sq = []
    for _ in range(R):
        f = rng.standard_normal((M, len(K))) @ L.T
        sq.append(np.sum((f.T @ f / M - K) ** 2) / np.sum(K**2))
    sq = np.array(sq)
    assert abs(sq.mean() / floor**2 - 1) <= 4 * spread / np.sqrt(R)
    assert abs(sq.std(ddof=1) / sq.mean() / spread - 1) <= 0.3


def test_nngp_runs_end_to_end_on_a_tiny_config(tmp_path):
    """Every part of the experiment on a tiny config; depth 2 stops at a narrower width."""
    import json
    from dataclasses import replace

    from replication.experiments import nngp
    from replication.report import write_report

    quick = nngp.PRESETS["quick"]
    config = replace(
        quick,
        kernel_rate=replace(quick.kernel_rate, widths=(16, 64), depths=(1,), activations=("erf",), seeds=2,
                            prediction_draws=4096),
        kernel_bias=replace(quick.kernel_bias, widths=(4, 8), depths=(1, 2), activations=("erf",), inits=64,
                            chunk=32, prediction_draws=4096),
        monte_carlo=replace(quick.monte_carlo, widths=(4, 16), samples=64, replicates=2, prediction_draws=4096),
        kurtosis=replace(quick.kurtosis, activations=("erf",), widths=(2, 8, 32), depths=(1, 2),
                         max_width_deep=8, fit_min_width=2, samples=256),
        posterior=replace(quick.posterior, widths=(16,), ensemble=8, n_test=5))
    write_report(nngp.run(config), tmp_path)
    side = json.loads((tmp_path / "nngp.json").read_text())
    assert [c["id"] for c in side["claims"]] == [
        "nngp_init_rate_ntk_erf_depth1", "nngp_init_rate_prefactor", "nngp_init_unbiased_erf_depth1", "nngp_init_bias_predicted_erf_depth2",
        "nngp_mc_error_predicted",
        "nngp_kurtosis_rate_erf_depth1", "nngp_kurtosis_rate_erf_depth2",
        "nngp_posterior_mean", "nngp_posterior_variance"]
    assert side["series"]["kurtosis"]["erf/depth2"]["width"] == [2, 8]
    for name in ("init_convergence", "monte_carlo_floor", "kurtosis", "output_histograms",
                 "posterior"):
        assert (tmp_path / "figures" / f"nngp_{name}.png").exists()


def test_nngp_posterior_is_the_gaussian_process_posterior():
    """mean = K_sX (K_XX + s^2 I)^-1 y, var = diag(K_ss - K_sX (K_XX + s^2 I)^-1 K_Xs), in float64."""
    from replication.compat import enable_x64

    from replication.data import noisy_sine_1d
    from replication.experiments.nngp.posterior import nngp_posterior

    spec = MLP(16, 2, "erf", W_std=1.5, b_std=0.5)
    x, y, xs = noisy_sine_1d(jax.random.PRNGKey(0), 6, 7, 0.2)
    mean, var, lam = nngp_posterior(spec, x, y, xs, 0.04)
    with enable_x64():
        kernel_fn = spec.stax()[2]
        x, y, xs = (np.asarray(a, np.float64) for a in (x, y, xs))
        K = np.asarray(kernel_fn(x, None, "nngp")) + 0.04 * np.eye(6)
        Ks = np.asarray(kernel_fn(xs, x, "nngp"))
        Kss = np.asarray(kernel_fn(xs, None, "nngp"))
    np.testing.assert_allclose(mean, Ks @ np.linalg.solve(K, y)[:, 0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(var, np.diag(Kss - Ks @ np.linalg.solve(K, Ks.T)), rtol=1e-9,
                               atol=1e-12)
    assert lam == pytest.approx(np.linalg.eigvalsh(K - 0.04 * np.eye(6))[-1], rel=1e-9)


def test_trained_readouts_are_exact_posterior_samples():
    """Sample-then-optimize at width 64: each trained network equals the closed-form
    posterior sample of its own empirical NNGP, to float32 rounding (1e-4 of the
    outputs' unit scale), and the networks differ from one another."""
    from replication.data import noisy_sine_1d
    from replication.experiments.nngp.posterior import nngp_posterior, posterior_samples, readout_heavy_ball

    spec = MLP(64, 2, "erf", W_std=1.5, b_std=0.5)
    x, y, xs = noisy_sine_1d(jax.random.PRNGKey(0), 6, 7, 0.2)
    lr, momentum, steps = readout_heavy_ball(nngp_posterior(spec, x, y, xs, 0.04)[2], 0.04, 6)
    f, gap = posterior_samples(spec, x, y, xs, 0.04, jax.random.PRNGKey(1), 4, steps, lr, momentum)
    assert float(np.max(gap)) <= 1e-4
    assert float(np.std(np.asarray(f), axis=0).min()) > 1e-3


def test_exact_relu_kurtosis_against_brute_force_monte_carlo():
    """The layer recursion (kurtosis.relu_kurtosis) against plain numpy networks at width 2 and 3,
    depths 1-3, with and without biases: 400000 networks each, outputs' conditional variances
    s^2 drawn layer by layer. The estimate's standard error comes from 20 groups (Student-t,
    two-sided 0.999); the bias-free closed form 3((1 + 5/N)^depth - 1) is checked exactly."""
    from replication.experiments.nngp.kurtosis import conditional_kurtosis, relu_kurtosis

    for N in (2, 3, 8):
        for depth in (1, 2, 3):
            assert np.isclose(relu_kurtosis(N, depth, 1.3, 0.0), 3 * ((1 + 5 / N) ** depth - 1))
    rng = np.random.default_rng(0)
    d, M, G = 3, 400_000, 20
    x = np.array([1.0, -0.5, 2.0])
    for N, depth, W, b in ((2, 2, 2**0.5, 0.0), (3, 3, 1.2, 0.4), (2, 1, 1.0, 0.7)):
        h = (W / np.sqrt(d)) * rng.standard_normal((M, N, d)) @ x + b * rng.standard_normal((M, N))
        for _ in range(depth - 1):
            phi = np.maximum(h, 0)
            h = np.einsum("mij,mj->mi", (W / np.sqrt(N)) * rng.standard_normal((M, N, N)), phi) \
                + b * rng.standard_normal((M, N))
        s2 = W**2 / N * np.sum(np.maximum(h, 0) ** 2, axis=1) + b**2
        k = np.array([conditional_kurtosis(g) for g in s2.reshape(G, -1)])
        exact = relu_kurtosis(N, depth, W, b, float(x @ x) / d)
        assert abs(k.mean() - exact) <= stats.t.ppf(0.9995, G - 1) * k.std(ddof=1) / np.sqrt(G), \
            (N, depth, k.mean(), exact)


def _brute_force_kernels(x, W, b, N, M, phi, rng):
    """``(M, n, n)`` empirical NNGPs of ``M`` plain numpy networks of depth 2 and width ``N``."""
    k = np.empty((M, len(x), len(x)))
    for s in range(0, M, 5_000):
        h1 = np.einsum("mnd,id->min", W / np.sqrt(x.shape[1]) * rng.standard_normal((5_000, N, x.shape[1])), x) \
            + b * rng.standard_normal((5_000, 1, N))
        h2 = np.einsum("mkn,min->mik", W / np.sqrt(N) * rng.standard_normal((5_000, N, N)), phi(h1)) \
            + b * rng.standard_normal((5_000, 1, N))
        f = phi(h2)
        k[s:s + 5_000] = W**2 / N * np.einsum("mik,mjk->mij", f, f) + b**2
    return k


def test_perturbative_nngp_bias_against_brute_force_networks():
    """kernel_perturbation's delta (E[K^] = K + delta / N + O(N^-2)) against 100000 plain numpy
    networks of depth 2 at width 64, two inputs: N times the mean bias of each entry within 5
    standard errors of delta (the O(N^-2) remainder moves N times the bias by O(1/N), here small
    beside the standard errors, 0.02-0.08). ReLU's diagonal has no bias at any depth; depth 1 has
    none at all.

    The fluctuation's second moments, N Var(K^_ab) = var + O(1/N) and N Cov(K^_aa, K^_bb) = cov +
    O(1/N), against 100000 networks at widths 16 and 64 each: their Richardson extrapolation
    (4 m_64 - m_16) / 3 removes the O(1/N) term, leaving O(N^-2), and must lie within 5 standard
    errors (the networks' from 20 batches of each width, the prediction's from its 4 Monte Carlo
    batches) of the prediction. At width 16 alone the ReLU moments are 14-16% above it (N times the
    excess is constant from width 8 to 64 in 10^5-10^6 networks, a clean O(1/N) remainder), so the
    test sees the remainder removed, not hidden in a tolerance."""
    from replication.studies import kernel_perturbation as kp

    x = np.array([[1.0, 0.3, -0.5], [0.2, 1.1, 0.4]])
    W, b, M = 2**0.5, 0.1, 100_000
    for activation, phi in (("relu", lambda h: np.maximum(h, 0)), ("erf", special.erf)):
        p = kp.nngp_bias(x, 2, activation, W, b, np.random.default_rng(0))
        assert np.allclose(kp.nngp_bias(x, 1, activation, W, b, np.random.default_rng(0))["delta"], 0)
        moments = {}
        for N in (16, 64):
            k = _brute_force_kernels(x, W, b, N, M, phi, np.random.default_rng(N))
            if N == 64:
                bias = N * (k.mean(axis=0) - p["limit"])
                se = N * k.std(axis=0, ddof=1) / np.sqrt(M)
                assert np.all(np.abs(bias - p["delta"]) <= 5 * se), (activation, bias, p["delta"], se)
            c = k - k.mean(axis=0)
            per_batch = np.array([[N * np.mean(part[:, 0, 1] ** 2), N * np.mean(part[:, 0, 0] ** 2),
                                   N * np.mean(part[:, 0, 0] * part[:, 1, 1])] for part in np.split(c, 20)])
            moments[N] = per_batch.mean(axis=0), per_batch.std(axis=0, ddof=1) / np.sqrt(20)
        extrapolated = (4 * moments[64][0] - moments[16][0]) / 3
        per_batch = np.stack([p["var_batches"][:, 0, 1], p["var_batches"][:, 0, 0], p["cov_batches"][:, 0, 1]], 1)
        predicted = per_batch.mean(axis=0)
        # Both errors: the networks' and the prediction's own Monte Carlo over its 4 batches.
        se = np.sqrt((16 * moments[64][1] ** 2 + moments[16][1] ** 2) / 9
                     + per_batch.var(axis=0, ddof=1) / len(per_batch))
        assert np.all(np.abs(extrapolated - predicted) <= 5 * se), (activation, extrapolated, predicted, se)
        if activation == "relu":
            assert np.allclose(np.diag(p["delta"]), 0, atol=1e-6)
