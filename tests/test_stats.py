"""Relative errors and power-law fits."""
import numpy as np
import pytest

from replication.stats import fit_power_law, relative_frobenius_error


def test_relative_frobenius_error():
    ref = np.eye(3)
    assert relative_frobenius_error(ref, ref) == 0.0
    assert relative_frobenius_error(1.1 * ref, ref) == pytest.approx(0.1)


def test_fit_recovers_a_known_power_law_and_its_interval_covers_it():
    """Synthetic errors 3 * w^-0.5 times log-normal noise of sd 0.3 per seed.

    The t-interval over per-seed slopes is exact for i.i.d. Gaussian slopes;
    over 200 synthetic sweeps a 95% interval must cover the truth in
    95% +- 3 binomial standard errors (4.6%) of them.
    """
    rng = np.random.default_rng(0)
    widths = np.array([64, 256, 1024, 4096])
    covered, estimates = 0, []
    for _ in range(200):
        errors = 3 * widths[:, None] ** -0.5 * np.exp(0.3 * rng.standard_normal((4, 6)))
        fit = fit_power_law(widths, errors)
        covered += fit.ci[0] <= -0.5 <= fit.ci[1]
        estimates.append(fit.exponent)
    assert abs(covered / 200 - 0.95) <= 3 * np.sqrt(0.95 * 0.05 / 200)
    # Unbiased: the mean of 200 estimates lies within 4 standard errors of -0.5.
    assert abs(np.mean(estimates) + 0.5) <= 4 * np.std(estimates) / np.sqrt(200)


def test_fit_exact_data_and_single_seed():
    widths = [10, 100, 1000]
    fit = fit_power_law(widths, [2 * w**-1.0 for w in widths])
    assert fit.exponent == pytest.approx(-1.0)
    assert fit.prefactor == pytest.approx(2.0)
    assert fit.n_seeds == 1


def test_fit_refuses_bad_errors():
    with pytest.raises(ValueError, match="positive and finite"):
        fit_power_law([1, 2], [0.1, float("nan")])
    with pytest.raises(ValueError, match="need errors of shape"):
        fit_power_law([1], [0.1])


def test_fits_and_intervals_leave_out_what_diverged():
    import numpy as np

    from replication.stats import fit_finite, local_slopes, t_interval

    widths = [16, 64, 256, 1024]
    values = np.array([[1.0, 1.1], [0.5, np.nan], [0.25, 0.26], [0.125, 0.13]])
    fit = fit_finite(widths, values)
    assert fit is not None and fit.n_seeds == 2 and -0.55 < fit.exponent < -0.45
    assert fit_finite(widths[:2], values[:2]) is None          # one usable width: no fit
    assert [(a, b) for a, b, _ in local_slopes(widths, values)] == [(16, 256), (256, 1024)]
    mean, (lo, hi) = t_interval([1.0, 2.0, 3.0, np.nan])
    assert mean == 2.0 and lo < 2.0 < hi and t_interval([np.nan]) == (None, None)


def test_named_streams_are_fixed_offsets_from_the_seed():
    import jax
    import numpy as np
    import pytest

    from replication.sweep import Streams, network_key

    s = Streams(5, {"data": 0, "networks": 10})
    assert np.array_equal(jax.random.key_data(s.network("networks", 64, 2)),
                          jax.random.key_data(network_key(15, 64, 2)))
    assert np.array_equal(s.key("data"), jax.random.PRNGKey(5))
    with pytest.raises(KeyError, match="no random stream 'nope'"):
        s.key("nope")


def test_squared_bias_is_unbiased_and_its_jackknife_interval_covers_it():
    """Draws from the right law: the squared bias averages to 0 over 400 ensembles of M = 32 (its
    sd per ensemble is about sqrt(2)/M over a few correlated points; 5 standard errors); a shift
    of 0.3 sd gives 0.09. The jackknife's 95% interval is centred on the estimate (a U-statistic
    needs no bias correction) and covers the truth in about 95% of 200 ensembles (binomial sd
    1.5%: between 88% and 99%)."""
    from replication.stats import jackknife, squared_bias, variance_ratio

    rng = np.random.default_rng(0)
    mean, var = np.array([0.0, 1.0, -2.0]), np.array([1.0, 4.0, 0.25])
    draws = mean + np.sqrt(var) * rng.standard_normal((400, 32, 3))
    b = np.array([squared_bias(d, mean, var) for d in draws])
    assert abs(b.mean()) <= 5 * b.std(ddof=1) / np.sqrt(b.size)
    shifted = np.array([squared_bias(d + 0.3 * np.sqrt(var), mean, var) for d in draws])
    assert abs(shifted.mean() - 0.09) <= 5 * shifted.std(ddof=1) / np.sqrt(shifted.size)
    assert abs(np.mean([variance_ratio(d, var) for d in draws]) - 1) <= 0.02
    results = [jackknife(lambda s: squared_bias(s, mean, var), d) for d in draws[:200]]
    assert all(np.isclose(est, squared_bias(d, mean, var)) and np.isclose(hi - est, est - lo)
               for d, (est, (lo, hi), _) in zip(draws, results))
    assert 0.88 <= np.mean([lo <= 0 <= hi for _, (lo, hi), _ in results]) <= 0.99


def test_paired_accuracy_difference_is_mcnemars_interval_for_one_run():
    """One run: (b - c) / n with variance ((b + c) / n - ((b - c) / n)^2) / (n - 1), b and c the
    discordant images; runs are averaged per image before the interval; shapes must match."""
    from scipy import stats

    from replication.stats import paired_accuracy_difference

    n, b, c = 100, 10, 4
    a = np.zeros(n)
    r = np.zeros(n)
    a[:b] = 1                       # only a right
    r[b:b + c] = 1                  # only r right
    a[50:80] = r[50:80] = 1         # both right
    diff, (lo, hi), counts = paired_accuracy_difference(a, r)
    half = stats.t.ppf(0.975, n - 1) * np.sqrt(((b + c) / n - ((b - c) / n) ** 2) / (n - 1))
    assert diff == pytest.approx((b - c) / n) and counts == (b, c)
    assert (lo, hi) == pytest.approx(((b - c) / n - half, (b - c) / n + half))
    # Two runs that disagree image by image average to a smaller per-image difference.
    two, _, counts2 = paired_accuracy_difference(np.stack([a, r]), np.stack([r, r]))
    assert two == pytest.approx((b - c) / n / 2) and counts2 == (b, c)
    with pytest.raises(ValueError, match="shape"):
        paired_accuracy_difference(a, r[:-1])
