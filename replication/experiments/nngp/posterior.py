"""Trained readouts sample the NNGP posterior.

A network whose hidden layers keep their random initialisation and whose
readout alone is trained, from its own random init, on targets with added
noise, to the minimum of a squared loss plus a pull towards that init, is an
exact sample of the Gaussian-process posterior under the network's empirical
NNGP (sample-then-optimize: Matthews et al. 2017; Lee et al. 2019). As width
grows, an ensemble of them samples the NNGP posterior
``mean = K_sX (K_XX + s^2 I)^-1 y``,
``var = diag(K_ss - K_sX (K_XX + s^2 I)^-1 K_Xs)``.

Random stream: ``posterior`` (the data, and the networks at each width).
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from replication.compat import enable_x64

from replication.arch import MLP, AffineLayer
from replication.data import noisy_sine_1d
from replication.kernels import closed_form, nngp_of_features, over_initialisations, readout_input
from replication.report import Claim, Figure, Findings, Section, markdown_table
from replication.stats import jackknife, squared_bias, variance_ratio
from replication.sweep import Streams, progress
from replication.train import fit, heavy_ball, mse

SECTION = "Trained readouts sample the NNGP posterior"


@dataclass(frozen=True)
class Config:
    widths: tuple[int, ...] = (32, 128, 512, 2048)
    depth: int = 2
    activation: str = "erf"
    W_std: float = 1.5
    b_std: float = 0.5
    n_train: int = 8             # training inputs uniform in [-pi, pi], targets sin(x) + noise
    n_test: int = 64             # test inputs on a grid of [-pi, pi]
    noise_std: float = 0.2       # the targets' noise, and the posterior's
    ensemble: int = 256          # M: networks (posterior samples) per width
    # Bands at the widest width, resolutions: the ensemble's mean within 0.1 posterior sd (RMS
    # over test points; squared bias <= 0.01 posterior variance, Monte Carlo error removed), its
    # variance within 10% of the posterior's. Theory's finite-width corrections are O(1/width).
    bias_tolerance: float = 0.01
    variance_tolerance: float = 0.1

    @property
    def noise_var(self) -> float:
        return self.noise_std**2

    def spec(self, width: int) -> MLP:
        return MLP(width, self.depth, self.activation, W_std=self.W_std, b_std=self.b_std)


@dataclass
class Result:
    x_train: jax.Array           # (n_train, 1)
    y_train: jax.Array           # (n_train, 1)
    x_test: jax.Array            # (n_test, 1)
    mean: np.ndarray             # (n_test,) closed-form posterior mean, float64
    variance: np.ndarray         # (n_test,) closed-form posterior variance, float64
    learning_rate: float         # the readout's heavy-ball step, momentum and step count
    momentum: float
    steps: int
    rms_z: list[float]           # per width: RMS over test points of the ensemble mean's z-score
    variance_ratio: list[float]  # per width: ensemble variance / posterior variance, mean over x
    max_distance: list[float]    # per width: largest distance of a network to its exact minimiser
    widest: np.ndarray           # (ensemble, n_test): the widest networks' test outputs


def nngp_posterior(spec: MLP, x_train, y_train, x_test, noise_var: float):
    """Closed-form NNGP posterior mean and variance on ``x_test`` (float64), and the
    top eigenvalue of the training kernel."""
    import neural_tangents as nt

    with enable_x64():
        x_tr, y_tr, x_te = (jnp.asarray(a, jnp.float64) for a in (x_train, y_train, x_test))
        k_tt = closed_form(spec, x_tr, get="nngp")
        predict = nt.predict.gp_inference(k_tt, y_tr, diag_reg=noise_var,
                                          diag_reg_absolute_scale=True)
        post = predict("nngp", closed_form(spec, x_te, x_tr, get="nngp"),
                       closed_form(spec, x_te, get="nngp"))
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
        # The exact minimiser, in function space, from this network's own kernel: a
        # check of this network's training, so it stays inside the jitted float32
        # ensemble rather than in a float64 closed form of the limit.
        K = nngp_of_features(spec, phi_m)
        f0 = readout.apply({"params": theta_0}, phi_m)[:, 0]
        residual = (y_train + eps_m)[:, 0] - f0[:n]
        exact = f0[n:] + K[n:, :n] @ jnp.linalg.solve(K[:n, :n] + noise_var * jnp.eye(n), residual)
        return f_test, jnp.max(jnp.abs(f_test - exact))

    return jax.jit(jax.vmap(train_one))(theta0, phi, eps)


def measure(config: Config, streams: Streams) -> Result:
    """The closed-form posterior, then ``ensemble`` trained networks per width against it."""
    x_train, y_train, x_test = noisy_sine_1d(streams.key("posterior"), config.n_train,
                                             config.n_test, config.noise_std)
    mean, var, lam_max = nngp_posterior(config.spec(config.widths[0]), x_train, y_train, x_test,
                                        config.noise_var)
    lr, momentum, steps = readout_heavy_ball(lam_max, config.noise_var, config.n_train)
    M = config.ensemble
    rms_z, ratio, distance = [], [], []
    with progress(len(config.widths), "nngp posterior") as bar:
        for width in config.widths:
            f_test, gap = map(np.asarray, posterior_samples(
                config.spec(width), x_train, y_train, x_test, config.noise_var,
                streams.network("posterior", width, 0), M, steps, lr, momentum))
            z = (f_test.mean(axis=0) - mean) / np.sqrt(f_test.var(axis=0, ddof=1) / M)
            rms_z.append(float(np.sqrt(np.mean(z**2))))
            ratio.append(float((f_test.var(axis=0, ddof=1) / var).mean()))
            distance.append(float(gap.max()))
            bar.update()
    return Result(x_train, y_train, x_test, mean, var, lr, momentum, steps, rms_z, ratio, distance,
                  widest=f_test)


def findings(config: Config, result: Result) -> Findings:
    """Two claims at the widest width: the ensemble's mean and variance are the posterior's,
    with delete-one jackknife intervals over its networks."""
    widest, M = config.widths[-1], config.ensemble
    method = f"delete-one jackknife over the {M} networks at width {widest}, Student-t"
    bias, bias_ci, _ = jackknife(lambda s: squared_bias(s, result.mean, result.variance), result.widest)
    ratio, ratio_ci, _ = jackknife(lambda s: variance_ratio(s, result.variance), result.widest)
    claims = [
        Claim(id="nngp_posterior_mean",
              statement=f"Trained readouts' mean = NNGP posterior mean (width {widest})",
              prediction="squared bias / posterior variance = 0", expected=0.0, measured=bias, ci=bias_ci,
              tolerance=config.bias_tolerance, relation="<=", section=SECTION,
              reason="the mean within 0.1 posterior sd: a resolution (finite-width bias is O(1/width))",
              interval_method=method, n_seeds=M, fit_range=(widest, widest)),
        Claim(id="nngp_posterior_variance",
              statement=f"Trained readouts' variance = NNGP posterior variance (width {widest})",
              prediction="variance ratio = 1", expected=1.0, measured=ratio, ci=ratio_ci,
              tolerance=config.variance_tolerance, section=SECTION,
              reason="10%: a resolution (finite-width corrections are O(1/width))",
              interval_method=method, n_seeds=M, fit_range=(widest, widest)),
    ]
    variance_tolerance = config.variance_tolerance
    section = Section(SECTION, _prose(config, result, variance_tolerance), [Figure(
        "posterior", _figure(config, result),
        "NNGP posterior (closed form) against networks whose readout alone was trained from its "
        "random init; grey: eight of the networks, each a posterior sample.")])
    series = {"posterior": {"width": list(config.widths), "rms_z": result.rms_z,
                            "variance_ratio": result.variance_ratio,
                            "max_distance_to_minimiser": result.max_distance,
                            "x_test": result.x_test[:, 0], "mean": result.mean,
                            "variance": result.variance}}
    return Findings(claims, [section], series)


def _figure(config: Config, result: Result):
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    xt, mean, wide = np.asarray(result.x_test[:, 0]), result.mean, result.widest
    sd = np.sqrt(result.variance)
    ax.fill_between(xt, mean - 2 * sd, mean + 2 * sd, color="C0", alpha=0.2,
                    label="NNGP posterior, mean +- 2 sd (closed form)")
    ax.plot(xt, mean, "C0-", lw=1.5)
    for f in wide[:8]:
        ax.plot(xt, f, color="gray", lw=0.5, alpha=0.7)
    ensemble_mean, ensemble_sd = wide.mean(axis=0), wide.std(axis=0, ddof=1)
    ax.plot(xt, ensemble_mean, "C3--", lw=1.2, label=f"{config.ensemble} networks, mean +- 2 sd")
    ax.plot(xt, ensemble_mean - 2 * ensemble_sd, "C3:", lw=1)
    ax.plot(xt, ensemble_mean + 2 * ensemble_sd, "C3:", lw=1)
    ax.plot(np.asarray(result.x_train[:, 0]), np.asarray(result.y_train[:, 0]), "ko", ms=4,
            label="training data")
    ax.set(xlabel="x", ylabel="f(x)",
           title=f"{config.activation}, depth {config.depth}, width {config.widths[-1]}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _prose(config: Config, result: Result, variance_tolerance: float) -> str:
    M, noise_var = config.ensemble, config.noise_var
    table = markdown_table(["width", "RMS z of the mean", "variance ratio (mean over x)",
                            "max distance to the exact minimiser"],
                           [list(row) for row in zip(config.widths, result.rms_z,
                                                     result.variance_ratio, result.max_distance)])
    return f"""
Data: {config.n_train} training inputs uniform in [-pi, pi], targets sin(x) plus noise of
standard deviation {config.noise_std}; {config.n_test} test inputs on a grid. Closed form:
neural-tangents' `gp_inference` with the NNGP of an {config.activation} MLP of depth
{config.depth} (W_std = {config.W_std}, b_std = {config.b_std}) and noise variance
{noise_var:g}, in float64. Networks: {M} per width, NTK parameterization. Each keeps its
initial hidden layers (a prior sample), draws noise `eps ~ N(0, {noise_var:g})` per training
point, and trains its readout alone with optax gradient descent with heavy-ball momentum
({result.steps} steps, learning rate {result.learning_rate:.3g}, momentum
{result.momentum:.3f}: Polyak's optimal values for the loss's curvature range) on
`mse(f(X), y + eps) + noise_var / (2n) |theta - theta_0|^2`. Its minimiser is an exact
posterior sample under the network's own empirical NNGP (the last column is each network's
largest distance to that minimiser, computed in closed form: the training converged).

Claims, at the widest width, each with a delete-one jackknife interval over the {M} networks:
the ensemble mean is the posterior mean, measured as the squared bias in units of the posterior
variance, averaged over test points, with the Monte Carlo error removed
(`((mean_ens - mean)^2 - var_ens / M) / var`, unbiased: 0 when the law is right, whatever M;
band <= {config.bias_tolerance:g}, the mean within 0.1 posterior sd); and the ensemble variance is
the posterior variance, averaged over test points (band 1 +- {variance_tolerance:g}). The table's
RMS z-score shows the same at every width: about 1 where the ensemble mean is off by Monte Carlo
error alone, growing with the finite-width bias.

{table}
"""
