"""Errata: two mistakes that are easy to make in the worked example, measured.

1. Training and test inputs drawn from one random key. JAX's generator is
   counter-based: one key at shapes ``(50, 2)`` and ``(100, 2)`` gives
   unrelated points. A sequential generator (numpy's) seeded identically
   for both sets makes the first ``n_train`` test points the training
   points, and kernel regression, which interpolates them, reports an
   optimistic test error.
2. The readout scaled by ``1/sqrt(width)`` both at init and in the forward
   pass. The hidden layer's gradient carries the readout weights and
   shrinks by ``1/sqrt(width)``, so the empirical NTK converges to the
   readout's part alone, the NNGP: ``|Theta - K_NNGP| ~ width^(-1/2)``.

Random streams: ``errata_readout`` (the networks whose kernels are
measured) and ``errata_training`` (the networks trained at ``width``). The
data sets of mistake 1 are fixed, whatever the run's seed (``draw_keys``,
``numpy_seed``).
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

from replication.data import sin_cos_2d, sin_cos_target
from replication.dynamics import gradient_descent_mse
from replication.experiments.regression.problem import Problem, one_network, test_mse, with_readout_kernel
from replication.kernels import empirical_ntk
from replication.report import Claim, Figure, Findings, Section, fit_text, loglog_figure, markdown_table, mean_sd
from replication.stats import EXPONENT_BAND, fit_finite, relative_frobenius_error
from replication.sweep import Streams, progress

SECTION = "Errata: one key for both data sets, and a readout scaled twice"
DRAWS = ("independent keys", "one key (JAX)", "one seed (numpy)")
KERNELS = ("once (NTK parameterization)", "twice", "twice, against the NNGP")


@dataclass(frozen=True)
class Config:
    problem: Problem = Problem()
    draws: int = 8               # data sets drawn for the one-key comparison
    # Draw d takes its training inputs from jax.random.PRNGKey(draw_keys[0] + d), its test inputs
    # from PRNGKey(draw_keys[1] + d), and numpy's both sets from default_rng(numpy_seed + d):
    # fixed data sets, not offset by the run's seed.
    draw_keys: tuple[int, int] = (1000, 2000)
    numpy_seed: int = 0
    widths: tuple[int, ...] = (16, 64, 256, 1000, 4096, 16384)  # the readout-scaled kernels' ladder
    seeds: int = 8               # independent networks per width: the replicates behind the interval
    width: int = 1000            # the write-up's, at which the two readouts are trained
    trained_seeds: int = 4       # trained networks with each readout
    expected_exponent: float = -0.5
    exponent_tolerance: float = EXPONENT_BAND


@dataclass
class Result:
    test_mse_by_draw: dict[str, list[float]]    # DRAWS -> one closed-form NTK regression per draw
    shared_points_numpy: list[int]               # test points equal to a training point, per draw
    median_nearest_one_key: float                # last draw: test point to nearest training point
    median_nearest_independent: float
    ntk_error: dict[str, np.ndarray]             # KERNELS -> (n_widths, seeds) relative Frobenius errors
    nngp_ntk_distance: float                     # the plateau of the readout scaled twice
    trained_test_mse: dict[str, list[float]]     # "once", "twice" -> per network
    learning_rate: float


def regression_test_mse(problem: Problem, x_train, y_train, x_test, y_test) -> float:
    """Test MSE of kernel regression (``t -> infinity``) with the closed-form NTK."""
    k, kt = problem.closed_form(x_train), problem.closed_form(x_test, x_train)
    _, prediction = gradient_descent_mse(k, y_train, learning_rate=1.0, discrete=True)(None, k_test_train=kt)
    return test_mse(prediction, y_test)


def measure_one_key(config: Config) -> dict:
    """The three ways of drawing the test inputs, ``draws`` times: test MSEs, shared points, distances."""
    p, rows, same = config.problem, {k: [] for k in DRAWS}, []
    for d in range(config.draws):
        k_tr, k_te = (jax.random.PRNGKey(base + d) for base in config.draw_keys)
        xtr, ytr, xte, yte = sin_cos_2d(k_tr, k_te, p.n_train, p.n_test)
        rows["independent keys"].append(regression_test_mse(p, xtr, ytr, xte, yte))
        _, _, xte1, yte1 = sin_cos_2d(k_tr, k_tr, p.n_train, p.n_test)
        rows["one key (JAX)"].append(regression_test_mse(p, xtr, ytr, xte1, yte1))
        a = np.random.default_rng(config.numpy_seed + d).uniform(-2, 2, (p.n_train, 2))
        b = np.random.default_rng(config.numpy_seed + d).uniform(-2, 2, (p.n_test, 2))
        rows["one seed (numpy)"].append(regression_test_mse(p, a, sin_cos_target(a), b, sin_cos_target(b)))
        same.append(int(np.sum(np.min(np.abs(b[:, None] - a[None]).max(-1), axis=1) == 0)))

    def median_nearest(a, b):  # each test point's distance to its nearest training point
        return float(np.median(np.min(np.linalg.norm(np.asarray(a)[:, None] - np.asarray(b)[None], axis=-1), axis=1)))

    return {"test_mse_by_draw": rows, "shared_points_numpy": same,
            "median_nearest_one_key": median_nearest(xte1, xtr),
            "median_nearest_independent": median_nearest(xte, xtr)}


def measure_readout_kernels(config: Config, streams: Streams, x_train, x_test) -> dict:
    """Empirical NTKs with the readout scaled once and twice against the closed-form NTK and NNGP."""
    p, widths = config.problem, config.widths
    err = {k: np.empty((len(widths), config.seeds)) for k in KERNELS}
    xs = jnp.concatenate([x_train, x_test])
    ntk_limit, nngp_limit = p.closed_form(xs), p.closed_form(xs, get="nngp")
    with progress(len(widths) * config.seeds, "regression errata") as bar:
        for i, w in enumerate(widths):
            module = p.network(w).flax()
            for s in range(config.seeds):
                params = module.init(streams.network("errata_readout", w, s), x_train)
                k_once = np.asarray(empirical_ntk(module.apply, params, xs))
                twice = with_readout_kernel(params, params["params"]["readout"]["kernel"] / np.sqrt(w))
                k_twice = np.asarray(empirical_ntk(module.apply, twice, xs))
                err["once (NTK parameterization)"][i, s] = relative_frobenius_error(k_once, ntk_limit)
                err["twice"][i, s] = relative_frobenius_error(k_twice, ntk_limit)
                err["twice, against the NNGP"][i, s] = relative_frobenius_error(k_twice, nngp_limit)
                bar.update()
    return {"ntk_error": err, "nngp_ntk_distance": relative_frobenius_error(nngp_limit, ntk_limit)}


def measure_trained(config: Config, streams: Streams, dataset, learning_rate: float) -> dict[str, list[float]]:
    """Test MSE of networks trained at ``width`` with the readout scaled once and twice, with the
    step of the correct network."""
    x_train, y_train, x_test, y_test = dataset
    p, w0, optimizer = config.problem, config.width, optax.sgd(learning_rate)
    trained = {"once": [], "twice": []}
    for s in range(config.trained_seeds):
        for name, scale in (("once", 1.0), ("twice", 1 / np.sqrt(w0))):
            r = one_network(p.network(w0), streams.network("errata_training", w0, s), x_train, y_train,
                            x_test, optimizer, p.steps, readout_scale=scale)
            trained[name].append(test_mse(r.f_test, y_test))
    return trained


def measure(config: Config, streams: Streams) -> Result:
    p = config.problem
    dataset = p.data(streams)
    x_train, _, x_test, _ = dataset
    lr = p.learning_rate(p.closed_form(x_train))
    return Result(**measure_one_key(config), **measure_readout_kernels(config, streams, x_train, x_test),
                  trained_test_mse=measure_trained(config, streams, dataset, lr), learning_rate=lr)


def findings(config: Config, result: Result) -> Findings:
    nngp_fit = fit_finite(config.widths, result.ntk_error["twice, against the NNGP"])
    claim = Claim.of_fit(
        nngp_fit, id="regression_errata_double_readout_scaling", section=SECTION,
        statement="Readout scaled twice: the empirical NTK converges to the NNGP, not the NTK",
        prediction="|Theta - K_NNGP| ~ width^(-1/2)", expected=config.expected_exponent,
        tolerance=config.exponent_tolerance)
    fig = loglog_figure({"empirical NTK against a closed form": {
        k: (config.widths, v, fit_finite(config.widths, v) if k != "twice" else None)
        for k, v in result.ntk_error.items()}},
        xlabel="width", ylabel="relative Frobenius error", reference_exponent=-0.5,
        reference_label="width^(-1/2)")
    fig.axes[0].axhline(result.nngp_ntk_distance, color="gray", ls=":", lw=1)
    figure = Figure("errata_readout", fig, "The empirical NTK of the network whose readout is scaled once "
                    "(NTK parameterization) and twice, against the closed-form NTK and NNGP.")
    r = result
    series = {"test_mse_by_draw": r.test_mse_by_draw, "shared_points_numpy": r.shared_points_numpy,
              "median_nearest_distance_one_key_jax": r.median_nearest_one_key,
              "median_nearest_distance_independent": r.median_nearest_independent,
              "width": list(config.widths), **{f"ntk_error/{k}": v for k, v in r.ntk_error.items()},
              "nngp_fit": nngp_fit, "nngp_ntk_distance": r.nngp_ntk_distance,
              "trained_test_mse_once": r.trained_test_mse["once"],
              "trained_test_mse_twice": r.trained_test_mse["twice"]}
    return Findings([claim], [Section(SECTION, _prose(config, result, nngp_fit), [figure])], {"errata": series})


def _prose(config: Config, result: Result, nngp_fit) -> str:
    p, trained = config.problem, result.trained_test_mse
    rows = [[k, mean_sd(v), f"{np.min(v):.4f}"] for k, v in result.test_mse_by_draw.items()]
    same = result.shared_points_numpy
    return f"""
**One key for training and test inputs.** Over {config.draws} draws of the data set, the test MSE of
closed-form NTK regression with test inputs drawn from an independent key, from the training key
itself (JAX), and with numpy's sequential generator seeded identically for both sets:

{markdown_table(["how the test inputs are drawn", "test MSE (mean +- sd)", "lowest"], rows)}

JAX's generator is counter-based: one key drawn at shapes ({p.n_train}, 2) and ({p.n_test}, 2) gives
unrelated numbers (the median distance from a test point to its nearest training point is
{result.median_nearest_one_key:.3f} with one key and {result.median_nearest_independent:.3f} with
independent keys): with JAX the mistake puts no training point into the test set, and its test MSE
is one more draw of the same distribution, though the two sets are no longer independent by
construction. With a sequential generator the first {p.n_train} of the {p.n_test} test points are the
training points themselves (measured: {min(same)} to {max(same)} shared points per draw); kernel
regression interpolates them, and the reported test error is about halved: an optimistic bias, not a
property of the method.

**The readout scaled twice.** In NTK parameterization the readout weights are N(0, 1) and the
forward pass multiplies by W_std / sqrt(width). Initialising them with standard deviation
1 / sqrt(width) as well makes the readout's effective scale 1/width. The gradient with respect to
the readout (the features, times W_std / sqrt(width)) is unchanged, but the gradient with respect
to the hidden layer carries the readout weights and shrinks by 1/sqrt(width): its share of the NTK
vanishes, and the kernel converges to the readout's part alone, the NNGP (a random-features
model; training moves the readout only). Measured: the empirical NTK's relative distance from the
closed-form NTK stops falling at {result.nngp_ntk_distance:.3f} (dotted, the distance between the
NNGP and the NTK), while its distance from the NNGP falls with fitted exponent {fit_text(nngp_fit, '+.2f')}.
Trained at width {config.width} with the same optimizer and {p.steps} steps, the test MSE is
{np.mean(trained['once']):.4f} with the readout scaled once and {np.mean(trained['twice']):.4f}
scaled twice (means over {len(trained['once'])} seeds): the network also starts from outputs near
zero and learns with a smaller kernel.
"""
