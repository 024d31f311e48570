"""The nngp experiment's measurements against what theory says they must give."""
import jax
import numpy as np
from scipy import stats

from replication.arch import MLP
from replication.data import sphere_inputs
from replication.experiments.nngp import kurtosis_of_one_output, monte_carlo_floor
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
    import dataclasses
    import json

    from replication.experiments import nngp
    from replication.report import write_report

    config = dataclasses.replace(
        nngp.PRESETS["quick"], widths=(16, 64), depths=(1,), activations=("erf",), seeds=2,
        mc_widths=(4, 16), mc_samples=64, mc_replicates=2, kurtosis_widths=(2, 8, 32),
        kurtosis_depths=(1, 2), kurtosis_max_width_deep=8, kurtosis_fit_min_width=2,
        kurtosis_samples=256)
    write_report(nngp.run(config), tmp_path)
    side = json.loads((tmp_path / "nngp.json").read_text())
    assert [c["id"] for c in side["claims"]] == [
        "nngp_init_rate_ntk_erf_depth1", "nngp_mc_floor",
        "nngp_kurtosis_rate_erf_depth1", "nngp_kurtosis_rate_erf_depth2"]
    assert side["series"]["kurtosis"]["erf/depth2"]["width"] == [2, 8]
    for name in ("init_convergence", "monte_carlo_floor", "kurtosis", "output_histograms"):
        assert (tmp_path / "figures" / f"nngp_{name}.png").exists()
