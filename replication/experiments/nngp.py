"""nngp: networks at initialisation are Gaussian processes.

Theory (Neal 1996; Lee et al. 2018; Matthews et al. 2018). As every hidden
width `N` grows, the output of a randomly initialised network, as a function
of its input, converges in distribution to a centred Gaussian process whose
covariance, the NNGP kernel `K`, is given in closed form layer by layer
(neural-tangents' `kernel_fn(x1, x2, "nngp")`). Three consequences are
measured here against real Flax networks:

1. One network's empirical NNGP (its readout's input features, scaled as the
   readout's init variance) is an average over `N` units, so its relative
   error against `K` falls as `N^(-1/2)`.
2. The output covariance over `M` independent initialisations estimates `K`
   up to the network's own `O(1/N)` bias and a Monte Carlo error that does
   not fall with width: its floor is `sqrt((|K|_F^2 + (tr K)^2) / M) / |K|_F`,
   about `sqrt(2/M)` for a near-constant kernel.
3. One output across initialisations is Gaussian in the limit: its excess
   kurtosis falls as `N^(-1)`.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from jax.experimental import enable_x64
from scipy import stats

from replication.arch import MLP, AffineLayer
from replication.convergence import KernelRateConfig, kernel_rate_study
from replication.data import noisy_sine_1d, sphere_inputs
from replication.kernels import (closed_form, monte_carlo_nngp, nngp_of_features, over_initialisations,
                                 readout_input)
from replication.report import Claim, Figure, Report, Section, loglog_figure, markdown_table
from replication.stats import fit_power_law, relative_frobenius_error
from replication.sweep import network_key, over_widths, progress
from replication.train import fit, heavy_ball, mse


@dataclass(frozen=True)
class Config(KernelRateConfig):
    # The NNGP is the same under "ntk" and "standard" (same effective weights).
    parameterizations: tuple[str, ...] = ("ntk",)
    # Monte Carlo: the ensemble's output covariance against width, at a fixed ensemble size.
    mc_widths: tuple[int, ...] = (4, 8, 16, 32, 64, 128, 256, 512)
    mc_depth: int = 2
    mc_activation: str = "relu"
    mc_samples: int = 1024
    mc_replicates: int = 4
    # Gaussianity: excess kurtosis of one output across initialisations.
    kurtosis_widths: tuple[int, ...] = (2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
    kurtosis_depths: tuple[int, ...] = (1, 2)
    kurtosis_max_width_deep: int = 256  # depth >= 2 costs N^2 per network
    kurtosis_samples: int = 8192
    kurtosis_groups: int = 4           # independent groups, for the interval of the exponent
    expected_kurtosis_exponent: float = -1.0
    # Depth 1 is exactly N^-1 (see kurtosis_of_one_output). Deeper networks add
    # an O(N^-2) term: width * kurtosis of a depth-2 ReLU network falls from 61
    # at width 2 to 34 at 16 and stays near 30 beyond, so the asymptotic rate is
    # fitted from width 16 on (the table and figure show every width).
    kurtosis_fit_min_width: int = 16
    kurtosis_exponent_tolerance: float = 0.1
    # Bayesian inference: networks whose readout alone is trained sample the NNGP posterior.
    bayes_widths: tuple[int, ...] = (32, 128, 512, 2048)
    bayes_depth: int = 2
    bayes_activation: str = "erf"
    bayes_W_std: float = 1.5
    bayes_b_std: float = 0.5
    bayes_n_train: int = 8
    bayes_n_test: int = 64
    bayes_noise_std: float = 0.2
    bayes_ensemble: int = 256


PRESETS = {
    "quick": Config(),
    "full": Config(widths=tuple(2**k for k in range(4, 16)), seeds=16, n_inputs=64,
                   mc_samples=8192, kurtosis_samples=65536, kurtosis_max_width_deep=1024,
                   bayes_widths=(32, 128, 512, 2048, 8192), bayes_ensemble=1024),
}
OPTIONS = {"widths": "widths", "seeds": "seeds", "depth": "depths", "activation": "activations"}
# float32 suffices where a finite network meets its limit: the smallest relative gap measured
# (order 1e-2 at the widest width) is orders of magnitude above float32's rounding (1e-7). The
# closed-form posterior, a solve against the training kernel, runs in float64 (enable_x64
# scoped to it), so that the reference the networks are compared with carries no solver error.
PRECISION = "float32 networks and kernels; the closed-form NNGP posterior (gp_inference) in float64"
SECTION_RATE = "NNGP at initialisation against the closed form"
SECTION_MC = "The ensemble's output covariance meets the Monte Carlo floor"
SECTION_GAUSS = "One output across initialisations becomes Gaussian"
SECTION_BAYES = "Trained readouts sample the NNGP posterior"


def monte_carlo_floor(K: np.ndarray, M: int) -> tuple[float, float]:
    """Relative RMS error of an ``M``-sample output covariance, and its own relative spread.

    For Gaussian outputs (Isserlis), the estimator's entries have covariance
    ``(K_ac K_bd + K_ad K_bc) / M``; the squared Frobenius error then has mean
    ``((tr K)^2 + |K|^2) / M`` and, as a Gaussian quadratic form, relative
    standard deviation ``2 sqrt(|K|^4 + tr K^4) / ((tr K)^2 + |K|^2)``.
    """
    fro2, tr = float(np.sum(K**2)), float(np.trace(K))
    floor = np.sqrt((tr**2 + fro2) / M / fro2)
    spread = 2 * np.sqrt(fro2**2 + np.trace(np.linalg.matrix_power(K, 4))) / (tr**2 + fro2)
    return float(floor), float(spread)


def kurtosis_of_one_output(spec: MLP, x0: jax.Array, keys: jax.Array):
    """Outputs ``f`` and conditional variances ``s^2`` of networks initialised from ``keys``.

    Given a network's features, its output at ``x0`` is Gaussian with variance
    ``s^2 = K_emp(x0, x0)`` (the readout's weights are Gaussian and independent
    of the features). The output's excess kurtosis is therefore exactly
    ``3 Var(s^2) / E[s^2]^2``, which this returns beside the outputs; it is
    the same quantity as the outputs' sample kurtosis with far less variance.
    For depth 1, ``s^2`` is an average of ``N`` i.i.d. terms and the kurtosis
    is exactly proportional to ``1/N``.
    """
    module = spec.flax()

    def output_and_variance(params):
        s2 = nngp_of_features(spec, readout_input(module, params, x0))[0, 0]
        return module.apply(params, x0)[0, 0], s2

    return over_initialisations(module, keys, x0, output_and_variance, chunk_size=1024)


def nngp_posterior(spec: MLP, x_train, y_train, x_test, noise_var: float):
    """Closed-form NNGP posterior mean and variance on ``x_test`` (float64), and the
    top eigenvalue of the training kernel."""
    import neural_tangents as nt

    with enable_x64():
        x_tr, y_tr, x_te = (jnp.asarray(a, jnp.float64) for a in (x_train, y_train, x_test))
        _, _, kernel_fn = spec.stax()
        k_tt = kernel_fn(x_tr, None, "nngp")
        predict = nt.predict.gp_inference(k_tt, y_tr, diag_reg=noise_var,
                                          diag_reg_absolute_scale=True)
        post = predict("nngp", kernel_fn(x_te, x_tr, "nngp"), kernel_fn(x_te, None, "nngp"))
        return (np.asarray(post.mean[:, 0]), np.asarray(jnp.diag(post.covariance)),
                float(jnp.linalg.eigvalsh(k_tt)[-1]))


def readout_heavy_ball(lam_max: float, noise_var: float, n: int) -> tuple[float, float, int]:
    """Step, momentum and step count that minimise the readout's loss to 1e-6.

    The loss is quadratic with curvatures in ``[mu, L] = [noise_var, 2 (lam_max +
    noise_var)] / n``, the factor 2 covering the empirical kernel's fluctuation
    above the closed form's top eigenvalue ``lam_max`` (``replication.train.heavy_ball``).
    """
    return heavy_ball(2 * (lam_max + noise_var) / n, noise_var / n)


def posterior_samples(spec: MLP, x_train, y_train, x_test, noise_var: float, key: jax.Array,
                      n_networks: int, steps: int, learning_rate: float, momentum: float = 0.0):
    """Sample-then-optimize: networks whose readout alone is trained, one posterior sample each.

    Each network draws its parameters ``theta_0`` from the prior (its init) and
    noise ``eps ~ N(0, noise_var)`` per training point, then trains only its
    readout ``theta = (w, b)``, by full-batch gradient descent with optax
    (heavy-ball ``momentum`` optional), on

        mse(f_theta(X), y + eps) + noise_var / (2 n) |theta - theta_0|^2.

    In NTK parameterization the readout's prior is N(0, I) and ``f`` is linear
    in it with kernel the network's empirical NNGP ``K_N``, so the minimiser is
    an exact sample of the Gaussian-process posterior with kernel ``K_N`` and
    noise ``noise_var`` (Matthews et al. 2017; Lee et al. 2019): as width
    grows, of the NNGP posterior. Returns the test outputs ``(n_networks, T)``
    and their distance to the exact minimisers (a convergence check).
    """
    if spec.parameterization != "ntk":
        raise ValueError("sample-then-optimize needs the identity prior of NTK parameterization")
    module = spec.flax()
    readout = AffineLayer(spec.out_dim, (), spec.W_std, spec.b_std, spec.parameterization)
    n = x_train.shape[0]
    x = jnp.concatenate([x_train, x_test])
    k_init, k_noise = jax.random.split(key)
    # 16 networks at a time: a chunk of depth-2 width-2048 networks holds 16 x 4.2M weights.
    phi, theta0 = over_initialisations(
        module, jax.random.split(k_init, n_networks), x,
        lambda p: (readout_input(module, p, x), p["params"]["readout"]), chunk_size=16)
    eps = noise_var**0.5 * jax.random.normal(k_noise, (n_networks, n, 1))

    def train_one(theta_0, phi_m, eps_m):
        def loss(theta):
            f = readout.apply({"params": theta}, phi_m[:n])
            shift = sum(jnp.sum((a - b) ** 2) for a, b in zip(jax.tree_util.tree_leaves(theta),
                                                              jax.tree_util.tree_leaves(theta_0)))
            return mse(f, y_train + eps_m) + noise_var / (2 * n) * shift

        theta = fit(loss, theta_0, optax.sgd(learning_rate, momentum=momentum or None), steps).params
        f_test = readout.apply({"params": theta}, phi_m[n:])[:, 0]
        # The exact minimiser, in function space, from this network's own kernel.
        K = nngp_of_features(spec, phi_m)
        f0 = readout.apply({"params": theta_0}, phi_m)[:, 0]
        residual = (y_train + eps_m)[:, 0] - f0[:n]
        exact = f0[n:] + K[n:, :n] @ jnp.linalg.solve(K[:n, :n] + noise_var * jnp.eye(n), residual)
        return f_test, jnp.max(jnp.abs(f_test - exact))

    return jax.jit(jax.vmap(train_one))(theta0, phi, eps)


def run(config: Config) -> Report:
    x = sphere_inputs(jax.random.PRNGKey(config.seed), config.n_inputs, config.input_dim)

    # 1. One network's NNGP against the closed form.
    claims, sections, series = kernel_rate_study("nngp", config, x, SECTION_RATE)

    # 2. The ensemble's output covariance, down to the Monte Carlo floor.
    mc_spec = MLP(config.mc_widths[0], config.mc_depth, config.mc_activation,
                  W_std=config.W_std, b_std=config.b_std)
    K = np.asarray(closed_form(mc_spec, x, get="nngp"))
    floor, spread = monte_carlo_floor(K, config.mc_samples)

    def mc_error(width, replicate):
        spec = mc_spec.replace(width=width)
        estimate = monte_carlo_nngp(spec.flax(), network_key(config.seed + 1, width, replicate), x,
                                    n_samples=config.mc_samples, chunk_size=256)
        return relative_frobenius_error(estimate, K)

    mc_errors = over_widths(config.mc_widths, config.mc_replicates, mc_error, desc="nngp monte carlo")
    rms = np.sqrt((mc_errors**2).mean(axis=1))
    # The RMS over R replicates has relative spread spread / (2 sqrt(R)); 3 of
    # those is the tolerance. The widest network's own O(1/N) bias adds in
    # quadrature and moves the ratio by under a tenth of that.
    mc_tolerance = 3 * spread / (2 * np.sqrt(config.mc_replicates))
    claims.append(Claim(
        id="nngp_mc_floor",
        statement=f"Output covariance of {config.mc_samples} networks reaches the Monte Carlo floor",
        prediction="RMS error / floor = 1", expected=1.0, measured=float(rms[-1] / floor), ci=None,
        tolerance=float(mc_tolerance), section=SECTION_MC))
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    w = np.asarray(config.mc_widths, dtype=float)
    ax.plot(w, rms, "o-", label=f"RMS over {config.mc_replicates} ensembles of {config.mc_samples}")
    ax.fill_between(w, mc_errors.min(axis=1), mc_errors.max(axis=1), alpha=0.2, lw=0)
    ax.axhline(floor, color="k", ls="--", label=f"Monte Carlo floor {floor:.3f}")
    ax.axhline(np.sqrt(2 / config.mc_samples), color="gray", ls=":",
               label=f"sqrt(2/M) = {np.sqrt(2 / config.mc_samples):.3f}")
    ax.set(xscale="log", yscale="log", xlabel="width",
           ylabel="relative Frobenius error of the output covariance",
           title=f"{config.mc_activation}, depth {config.mc_depth}, M = {config.mc_samples}")
    ax.set_xscale("log", base=2)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7)
    fig.tight_layout()
    mc_body = f"""
The output covariance `(1/M) sum_s f_s(x) f_s(x')` of M = {config.mc_samples} independently initialised
{config.mc_activation} networks of depth {config.mc_depth}, against the closed-form NNGP, repeated
{config.mc_replicates} times at each width. Two errors add in quadrature: the finite network's
own bias (order 1/width for depth >= 2; none at depth 1, whose first layer is exactly
Gaussian) and the Monte Carlo error of M samples, which no width removes. Its floor for these
inputs is {floor:.4f} (Isserlis: `sqrt(((tr K)^2 + |K|_F^2) / M) / |K|_F`; the rule of thumb
`sqrt(2/M)` = {np.sqrt(2 / config.mc_samples):.4f}). The claim compares the widest networks' RMS error with
the floor; its tolerance is three standard deviations of an RMS over {config.mc_replicates} replicates
(the squared error is a Gaussian quadratic form with relative spread {spread:.2f} per replicate).

{markdown_table(["width", "RMS error", "min", "max", "RMS / floor"],
                [[int(wi), float(r), float(e.min()), float(e.max()), float(r / floor)]
                 for wi, r, e in zip(config.mc_widths, rms, mc_errors)])}
"""
    sections.append(Section(SECTION_MC, mc_body, [Figure(
        "monte_carlo_floor", fig,
        "Relative error of the ensemble's output covariance against the closed-form NNGP, by "
        "width: it falls with the network's bias until it meets the Monte Carlo floor.")]))
    series["monte_carlo"] = {"width": list(config.mc_widths), "rms_error": rms,
                             "errors": mc_errors, "floor": floor, "samples": config.mc_samples}

    # 3. Gaussianity of one output: excess kurtosis against width.
    x0 = x[:1]
    kurt, direct, histograms = {}, {}, {}
    configs = [(a, d) for a in config.activations for d in config.kurtosis_depths]
    with progress(len(configs) * len(config.kurtosis_widths), "nngp kurtosis") as bar:
        for a, d in configs:
            ws = [w for w in config.kurtosis_widths if d == 1 or w <= config.kurtosis_max_width_deep]
            rows, rows_direct = [], []
            for width in ws:
                spec = MLP(width, d, a, W_std=config.W_std, b_std=config.b_std)
                keys = jax.random.split(network_key(config.seed + 2, width, d),
                                        config.kurtosis_samples)
                f, s2 = map(np.asarray, kurtosis_of_one_output(spec, x0, keys))
                groups = s2.reshape(config.kurtosis_groups, -1)
                rows.append(3 * groups.var(axis=1, ddof=1) / groups.mean(axis=1) ** 2)
                rows_direct.append(stats.kurtosis(f))
                if a == config.activations[0] and d == 1 and width in (ws[0], ws[-1]):
                    histograms[width] = f / np.sqrt(s2.mean())
                bar.update()
            kurt[a, d] = (ws, np.array(rows))
            direct[a, d] = np.array(rows_direct)
    def asymptotic_fit(ws, e):
        keep = [i for i, w in enumerate(ws) if w >= config.kurtosis_fit_min_width]
        return fit_power_law([ws[i] for i in keep], e[keep])

    kfits = {k: asymptotic_fit(ws, e) for k, (ws, e) in kurt.items()}
    for (a, d), f in kfits.items():
        claims.append(Claim(
            id=f"nngp_kurtosis_rate_{a}_depth{d}",
            statement=f"Excess kurtosis of one output falls as 1/width ({a}, depth {d})",
            prediction="kurtosis ~ width^(-1)", expected=config.expected_kurtosis_exponent,
            measured=f.exponent, ci=f.ci, tolerance=config.kurtosis_exponent_tolerance,
            section=SECTION_GAUSS))
    kfig = loglog_figure(
        {"excess kurtosis of f(x0)": {f"{a}, depth {d}": (ws, e, kfits[a, d])
                                      for (a, d), (ws, e) in kurt.items()}},
        xlabel="width", ylabel="excess kurtosis", reference_exponent=-1.0,
        reference_label="theory: width^(-1)")
    hfig, axes = plt.subplots(1, len(histograms), figsize=(5 * len(histograms), 3.6), squeeze=False)
    grid = np.linspace(-4, 4, 200)
    for ax, (width, z) in zip(axes[0], histograms.items()):
        ax.hist(z, bins=80, range=(-4, 4), density=True, alpha=0.6, label="networks")
        ax.plot(grid, stats.norm.pdf(grid), "k-", lw=1.2, label="NNGP: N(0, K(x0, x0))")
        ax.set(title=f"{config.activations[0]}, depth 1, width {width}",
               xlabel="f(x0) / sqrt(K(x0, x0))", yscale="log", ylim=(1e-4, 1))
        ax.legend(fontsize=7)
    hfig.tight_layout()
    se = np.sqrt(24 / config.kurtosis_samples)
    ktable = markdown_table(
        ["activation", "depth", "width", "excess kurtosis (conditional)", "width x kurtosis",
         "direct sample kurtosis"],
        [[a, d, w, float(e[i].mean()), float(w * e[i].mean()), f"{direct[a, d][i]:+.3f} ± {se:.3f}"]
         for (a, d), (ws, e) in kurt.items() for i, w in enumerate(ws)])
    kbody = f"""
{config.kurtosis_samples} networks per width, one input. The excess kurtosis is measured as
`3 Var(s^2) / E[s^2]^2`, where `s^2 = K_emp(x0, x0)` is each network's empirical NNGP at the
input: given its features a network's output is Gaussian with variance `s^2`, so this is the
output's kurtosis exactly, with much less variance than the sample kurtosis of the outputs
(shown beside it with its standard error `sqrt(24/M)`). If the kurtosis falls as 1/width,
`width x kurtosis` settles to a constant: exactly so at depth 1, from above at depth 2, whose
O(width^-2) term shows below width {config.kurtosis_fit_min_width}. The claims concern the
asymptotic rate and fit widths >= {config.kurtosis_fit_min_width} (the figure's lines extend the
fits to every width); the exponent's interval is a Student-t interval over
{config.kurtosis_groups} independent groups of networks. Depth >= 2 stops at width
{config.kurtosis_max_width_deep} (each network costs width^2 draws).

{markdown_table(["activation", "depth", "fitted exponent [95% CI]", "prefactor"],
                [[a, d, f"{f.exponent:+.3f} [{f.ci[0]:+.3f}, {f.ci[1]:+.3f}]", f.prefactor]
                 for (a, d), f in kfits.items()])}

{ktable}
"""
    sections.append(Section(SECTION_GAUSS, kbody, [
        Figure("kurtosis", kfig, "Excess kurtosis of one output across initialisations, by width."),
        Figure("output_histograms", hfig,
               "One output across initialisations at the narrowest and widest width, standardised "
               "by the ensemble's variance, against the NNGP's Gaussian (log scale shows the tails)."),
    ]))
    series["kurtosis"] = {f"{a}/depth{d}": {"width": ws, "excess_kurtosis": e.mean(axis=1),
                                            "groups": e, "direct": direct[a, d], "fit": kfits[a, d]}
                          for (a, d), (ws, e) in kurt.items()}
    # 4. Bayesian inference: trained readouts against the NNGP posterior.
    x_train, y_train, x_test = noisy_sine_1d(jax.random.PRNGKey(config.seed + 3), config.bayes_n_train,
                                             config.bayes_n_test, config.bayes_noise_std)
    noise_var = config.bayes_noise_std**2
    bspec = MLP(config.bayes_widths[0], config.bayes_depth, config.bayes_activation,
                W_std=config.bayes_W_std, b_std=config.bayes_b_std)
    mean, var, lam_max = nngp_posterior(bspec, x_train, y_train, x_test, noise_var)
    n = config.bayes_n_train
    lr, momentum, steps = readout_heavy_ball(lam_max, noise_var, n)
    M = config.bayes_ensemble
    rows, samples = [], {}
    with progress(len(config.bayes_widths), "nngp posterior") as bar:
        for width in config.bayes_widths:
            f_test, gap = map(np.asarray, posterior_samples(
                bspec.replace(width=width), x_train, y_train, x_test, noise_var,
                network_key(config.seed + 3, width, 0), M, steps, lr, momentum))
            z = (f_test.mean(axis=0) - mean) / np.sqrt(f_test.var(axis=0, ddof=1) / M)
            ratio = f_test.var(axis=0, ddof=1) / var
            rows.append([width, float(np.sqrt(np.mean(z**2))), float(ratio.mean()), float(gap.max())])
            samples[width] = f_test
            bar.update()
    rms_z, var_ratio = rows[-1][1], rows[-1][2]
    var_tolerance = 3 * np.sqrt(2 / (M - 1))
    claims += [
        Claim(id="nngp_posterior_mean",
              statement=f"Trained readouts' mean = NNGP posterior mean, within Monte Carlo error (width {config.bayes_widths[-1]})",
              prediction="RMS z-score ~ 1", expected=1.0, measured=rms_z, ci=None, tolerance=2.0,
              relation="<=", section=SECTION_BAYES),
        Claim(id="nngp_posterior_variance",
              statement=f"Trained readouts' variance = NNGP posterior variance (width {config.bayes_widths[-1]})",
              prediction="variance ratio = 1", expected=1.0, measured=var_ratio, ci=None,
              tolerance=float(var_tolerance), section=SECTION_BAYES),
    ]
    wide = samples[config.bayes_widths[-1]]
    bfig, ax = plt.subplots(figsize=(6.4, 4.2))
    xt = np.asarray(x_test[:, 0])
    sd = np.sqrt(var)
    ax.fill_between(xt, mean - 2 * sd, mean + 2 * sd, color="C0", alpha=0.2,
                    label="NNGP posterior, mean +- 2 sd (closed form)")
    ax.plot(xt, mean, "C0-", lw=1.5)
    for f in wide[:8]:
        ax.plot(xt, f, color="gray", lw=0.5, alpha=0.7)
    ens_sd = wide.std(axis=0, ddof=1)
    ax.plot(xt, wide.mean(axis=0), "C3--", lw=1.2, label=f"{M} networks, mean +- 2 sd")
    ax.plot(xt, wide.mean(axis=0) - 2 * ens_sd, "C3:", lw=1)
    ax.plot(xt, wide.mean(axis=0) + 2 * ens_sd, "C3:", lw=1)
    ax.plot(np.asarray(x_train[:, 0]), np.asarray(y_train[:, 0]), "ko", ms=4, label="training data")
    ax.set(xlabel="x", ylabel="f(x)",
           title=f"{config.bayes_activation}, depth {config.bayes_depth}, width {config.bayes_widths[-1]}")
    ax.legend(fontsize=7)
    bfig.tight_layout()
    bbody = f"""
Data: {n} training inputs uniform in [-pi, pi], targets sin(x) plus noise of standard deviation
{config.bayes_noise_std}; {config.bayes_n_test} test inputs on a grid. Closed form: neural-tangents'
`gp_inference` with the NNGP of an {config.bayes_activation} MLP of depth {config.bayes_depth}
(W_std = {config.bayes_W_std}, b_std = {config.bayes_b_std}) and noise variance {noise_var:g}, in float64.
Networks: {M} per width, NTK parameterization. Each keeps its initial hidden layers (a prior sample),
draws noise `eps ~ N(0, {noise_var:g})` per training point, and trains its readout alone with optax
gradient descent with heavy-ball momentum ({steps} steps, learning rate {lr:.3g}, momentum
{momentum:.3f}: Polyak's optimal values for the loss's curvature range) on
`mse(f(X), y + eps) + noise_var / (2n) |theta - theta_0|^2`. Its minimiser is an exact posterior
sample under the network's own empirical NNGP (the last column is each network's largest distance
to that minimiser, computed in closed form: the training converged).

Claims, at the widest width: the ensemble mean matches the posterior mean within Monte Carlo
error, i.e. the RMS over test points of `z = (mean_ens - mean) / sqrt(var_ens / M)` is about 1
(passes if <= 3: were all test points perfectly correlated, `z` would be a single standard normal,
beyond 3 with probability 0.27%); the ensemble variance matches the posterior variance, averaged
over test points, within 3 standard errors of a sample variance of {M} Gaussian draws
(`3 sqrt(2/(M-1))` = {var_tolerance:.3f}).

{markdown_table(["width", "RMS z of the mean", "variance ratio (mean over x)",
                 "max distance to the exact minimiser"], rows)}
"""
    sections.append(Section(SECTION_BAYES, bbody, [Figure(
        "posterior", bfig,
        "NNGP posterior (closed form) against networks whose readout alone was trained from its "
        "random init; grey: eight of the networks, each a posterior sample.")]))
    series["posterior"] = {"width": list(config.bayes_widths), "rms_z": [r[1] for r in rows],
                           "variance_ratio": [r[2] for r in rows],
                           "max_distance_to_minimiser": [r[3] for r in rows],
                           "x_test": x_test[:, 0], "mean": mean, "variance": var}
    return Report(
        experiment="nngp",
        title="Networks at initialisation are Gaussian processes",
        summary=__doc__.split("\n\n", 1)[1],
        claims=claims, sections=sections, series=series, precision=PRECISION,
    )
