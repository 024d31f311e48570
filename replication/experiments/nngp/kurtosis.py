"""One output across initialisations becomes Gaussian: its excess kurtosis falls as 1/width.

Given a network's features, its output at ``x0`` is Gaussian with variance
``s^2 = K_emp(x0, x0)`` (the readout's weights are Gaussian and independent
of the features), so the output's excess kurtosis is exactly
``3 Var(s^2) / E[s^2]^2``, over initialisations.

For ReLU, theory gives more than the rate: the exact value at every width and
depth (``relu_kurtosis``). Let ``q_l`` be the variance of layer ``l``'s
pre-activations given the layer below (``q_1 = W^2 |x|^2 / d + b^2`` is
fixed). Given ``q_l``, the ``N`` units ``relu(h)``, ``h ~ N(0, q_l)``, are
i.i.d. with ``E relu(h)^2 = q_l / 2`` and ``E relu(h)^4 = 3 q_l^2 / 2``, so
``A = (W^2 / N) sum relu(h)^2`` has ``E[A | q_l] = W^2 q_l / 2`` and
``E[A^2 | q_l] = W^4 q_l^2 (N + 5) / (4 N)``. With ``q_{l+1} = A + b^2``, the
first two moments of ``q`` follow one recursion over the layers, and
``s^2 = q_{depth+1}``: the excess kurtosis is ``3 (E[s^4] / E[s^2]^2 - 1)``.
Without biases it is ``3 ((1 + 5/N)^depth - 1)``: ``15/N`` at depth 1 (every
width), ``30/N + 75/N^2`` at depth 2, the ``N^-2`` term that bends the rate's
fit at small widths. For erf no such recursion closes (``E erf(h)^4`` is not
a power of ``q``), so erf is tested by its rate.

Random streams: ``inputs`` (``x0`` is the rate sweep's first point) and
``kurtosis`` (the networks).
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from replication.arch import MLP
from replication.experiments.nngp.sphere import Sphere, inputs
from replication.kernels import nngp_of_features, over_initialisations, readout_input
from replication.report import Claim, Figure, Findings, Section, fit_text, loglog_figure, markdown_table
from replication.stats import EXPONENT_BAND, PowerLawFit, fit_finite, jackknife
from replication.sweep import Streams, progress

SECTION = "One output across initialisations becomes Gaussian"


@dataclass(frozen=True)
class Config:
    sphere: Sphere = Sphere()    # x0 is the rate sweep's first input; its weight scales
    activations: tuple[str, ...] = ("relu", "erf")
    depths: tuple[int, ...] = (1, 2)
    widths: tuple[int, ...] = (2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
    max_width_deep: int = 256    # depth >= 2 costs N^2 per network
    samples: int = 8192          # networks per width
    groups: int = 16             # independent groups: the replicates behind every interval
    expected_exponent: float = -1.0
    # erf's rate: deeper networks add an O(N^-2) term (as ReLU's exact value shows: at
    # depth 2, 30/N + 75/N^2), so the asymptotic rate is fitted from width 16 on (the
    # table and figure show every width).
    fit_min_width: int = 16
    exponent_tolerance: float = EXPONENT_BAND
    # ReLU against its exact value: the weighted mean over widths of log(measured / exact).
    # The band, 5%, is a resolution: at depth 2 the exact value differs from the leading
    # order 30/N by 14-120% at widths 16-2, so the band separates the two.
    exact_tolerance: float = 0.05

    def widths_at(self, depth: int) -> list[int]:
        """The widths measured at ``depth``: all of them at depth 1, up to ``max_width_deep`` beyond."""
        return [w for w in self.widths if depth == 1 or w <= self.max_width_deep]


@dataclass
class Result:
    # (activation, depth) -> (widths, excess kurtosis (n_widths, groups), one value per group)
    kurtosis: dict[tuple[str, int], tuple[list[int], np.ndarray]]
    # (activation, depth) -> every network's s^2, (n_widths, groups, samples / groups)
    variances: dict[tuple[str, int], np.ndarray]
    # |x0|^2 / input dimension
    x_sq_per_dim: float
    # (activation, depth) -> the outputs' sample excess kurtosis, per width
    direct: dict[tuple[str, int], np.ndarray]
    # width -> outputs standardised by their variance (first activation, depth 1, end widths)
    histograms: dict[int, np.ndarray]


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


def relu_kurtosis(width: int, depth: int, W_std: float, b_std: float, x_sq_per_dim: float = 1.0) -> float:
    """The exact excess kurtosis of one output of a ReLU network (module docstring), input with
    ``|x|^2 / d = x_sq_per_dim``; every hidden layer ``width`` units, the readout scaled alike."""
    w2, b2 = W_std**2, b_std**2
    m1 = w2 * x_sq_per_dim + b2           # q_1 is fixed: E q = q, E q^2 = q^2
    m2 = m1**2
    for _ in range(depth):
        a1, a2 = w2 * m1 / 2, w2**2 * m2 * (width + 5) / (4 * width)
        m1, m2 = a1 + b2, a2 + 2 * b2 * a1 + b2**2
    return 3 * (m2 / m1**2 - 1)


def conditional_kurtosis(s2: np.ndarray) -> float:
    """``3 Var(s^2) / E[s^2]^2``: the output's excess kurtosis from its conditional variances."""
    return float(3 * s2.var(ddof=1) / s2.mean() ** 2)


def measure(config: Config, streams: Streams) -> Result:
    """``samples`` networks per (activation, depth, width), at the rate sweep's first input."""
    x0 = inputs(config.sphere, streams)[:1]
    kurt, direct, histograms, variances = {}, {}, {}, {}
    configs = [(a, d) for a in config.activations for d in config.depths]
    with progress(len(configs) * len(config.widths), "nngp kurtosis") as bar:
        for a, d in configs:
            ws = config.widths_at(d)
            rows, rows_direct, rows_s2 = [], [], []
            for width in ws:
                spec = MLP(width, d, a, W_std=config.sphere.W_std, b_std=config.sphere.b_std)
                # One stream of networks per (width, depth): the activations share it.
                keys = jax.random.split(streams.network("kurtosis", width, d), config.samples)
                f, s2 = map(np.asarray, kurtosis_of_one_output(spec, x0, keys))
                groups = s2.reshape(config.groups, -1)
                rows.append(3 * groups.var(axis=1, ddof=1) / groups.mean(axis=1) ** 2)
                rows_s2.append(groups)
                rows_direct.append(stats.kurtosis(f))
                if a == config.activations[0] and d == 1 and width in (ws[0], ws[-1]):
                    histograms[width] = f / np.sqrt(s2.mean())
                bar.update()
            kurt[a, d] = (ws, np.array(rows))
            direct[a, d] = np.array(rows_direct)
            variances[a, d] = np.array(rows_s2)
    return Result(kurtosis=kurt, variances=variances, x_sq_per_dim=float(np.mean(np.square(np.asarray(x0)))),
                  direct=direct, histograms=histograms)


def asymptotic_fits(config: Config, result: Result) -> dict[tuple[str, int], PowerLawFit | None]:
    """Per (activation, depth), the power law fitted over widths >= ``fit_min_width`` (``None``
    where fewer than two remain)."""
    fits = {}
    for k, (ws, e) in result.kurtosis.items():
        keep = [i for i, w in enumerate(ws) if w >= config.fit_min_width]
        fits[k] = fit_finite([ws[i] for i in keep], e[keep])
    return fits


def exact_comparison(config: Config, result: Result, a: str, d: int) -> dict:
    """ReLU against ``relu_kurtosis`` at every width: per width the jackknifed kurtosis and its
    interval, and the inverse-variance weighted mean over widths of ``log(measured / exact)`` with
    its jackknife interval."""
    ws = result.kurtosis[a, d][0]
    exact = np.array([relu_kurtosis(w, d, config.sphere.W_std, config.sphere.b_std, result.x_sq_per_dim)
                      for w in ws])
    s2 = np.moveaxis(result.variances[a, d], 1, 0)       # (groups, widths, per group)
    per_width = [jackknife(lambda g, i=i: conditional_kurtosis(g[:, i].ravel()), s2) for i in range(len(ws))]
    # Widths weighted by the inverse variance of their log ratio (from the jackknife): the narrowest
    # widths' heavy tails would otherwise set the interval.
    weights = np.array([(p[0] / p[2]) ** 2 if p[2] > 0 else 0.0 for p in per_width])
    weights = weights / weights.sum()
    log_ratio = jackknife(lambda g: float(sum(wt * np.log(conditional_kurtosis(g[:, i].ravel()) / exact[i])
                                              for i, wt in enumerate(weights))), s2)
    return {"width": ws, "exact": exact, "measured": [p[0] for p in per_width],
            "ci": [p[1] for p in per_width], "log_ratio": log_ratio}


def findings(config: Config, result: Result) -> Findings:
    """ReLU: one claim per depth, the exact finite-width value at every width. erf: one claim per
    depth, the fitted exponent is ``expected_exponent`` within the band."""
    fits = asymptotic_fits(config, result)
    exact = {(a, d): exact_comparison(config, result, a, d) for a, d in result.kurtosis if a == "relu"}
    claims = []
    for (a, d), f in fits.items():
        if (a, d) in exact:
            e = exact[a, d]
            estimate, ci, _ = e["log_ratio"]
            claims.append(Claim(
                id=f"nngp_kurtosis_exact_{a}_depth{d}", section=SECTION,
                statement=f"Excess kurtosis of one output equals its exact finite-width value at every "
                          f"width ({a}, depth {d}, widths {e['width'][0]}-{e['width'][-1]})",
                prediction="weighted mean over widths of log(measured / exact) = 0", expected=0.0,
                measured=estimate, ci=ci, tolerance=config.exact_tolerance,
                reason="a 5% resolution; at depth 2 the exact value differs from the leading order "
                       "30/N by 14-120% at widths 16-2",
                interval_method=f"delete-one-group jackknife over {config.groups} groups of "
                                f"{config.samples // config.groups} networks, Student-t",
                n_seeds=config.groups, fit_range=(e["width"][0], e["width"][-1])))
        else:
            claims.append(Claim.of_fit(
                f, id=f"nngp_kurtosis_rate_{a}_depth{d}",
                statement=f"Excess kurtosis of one output falls as 1/width ({a}, depth {d})",
                prediction="kurtosis ~ width^(-1)", expected=config.expected_exponent,
                tolerance=config.exponent_tolerance, section=SECTION,
                reason="+-0.1 around the leading order; the O(N^-2) term is cut by fitting widths "
                       f">= {config.fit_min_width}"))
    rate_figure = loglog_figure(
        {"excess kurtosis of f(x0)": {f"{a}, depth {d}": (ws, e, fits[a, d])
                                      for (a, d), (ws, e) in result.kurtosis.items()}},
        xlabel="width", ylabel="excess kurtosis", reference_exponent=config.expected_exponent,
        reference_label="theory: width^(-1)")
    figures = [Figure("kurtosis", rate_figure,
                      "Excess kurtosis of one output across initialisations, by width.")]
    if result.histograms:  # drawn at depth 1 only
        figures.append(Figure(
            "output_histograms", _histogram_figure(config, result),
            "One output across initialisations at the narrowest and widest width, standardised "
            "by the ensemble's variance, against the NNGP's Gaussian (log scale shows the tails)."))
    section = Section(SECTION, _prose(config, result, fits, exact), figures)
    ax = rate_figure.axes[0]
    for (a, d), e in exact.items():
        ax.plot(e["width"], e["exact"], "k:", lw=1.2, label="exact (ReLU)" if (a, d) == next(iter(exact)) else None)
    if exact:
        ax.legend(fontsize=7)
    series = {"kurtosis": {f"{a}/depth{d}": {"width": ws, "excess_kurtosis": e.mean(axis=1),
                                             "groups": e, "direct": result.direct[a, d], "fit": fits[a, d],
                                             **({"exact": exact[a, d]["exact"],
                                                 "jackknifed": exact[a, d]["measured"],
                                                 "jackknife_ci": exact[a, d]["ci"]} if (a, d) in exact else {})}
                           for (a, d), (ws, e) in result.kurtosis.items()}}
    return Findings(claims, [section], series)


def _histogram_figure(config: Config, result: Result):
    n = len(result.histograms)
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 3.6), squeeze=False)
    grid = np.linspace(-4, 4, 200)
    for ax, (width, z) in zip(axes[0], result.histograms.items()):
        ax.hist(z, bins=80, range=(-4, 4), density=True, alpha=0.6, label="networks")
        ax.plot(grid, stats.norm.pdf(grid), "k-", lw=1.2, label="NNGP: N(0, K(x0, x0))")
        ax.set(title=f"{config.activations[0]}, depth 1, width {width}",
               xlabel="f(x0) / sqrt(K(x0, x0))", yscale="log", ylim=(1e-4, 1))
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _prose(config: Config, result: Result, fits: dict, exact: dict) -> str:
    se = np.sqrt(24 / config.samples)
    per_width = markdown_table(
        ["activation", "depth", "width", "excess kurtosis (conditional)", "width x kurtosis",
         "direct sample kurtosis"],
        [[a, d, w, float(e[i].mean()), float(w * e[i].mean()), f"{result.direct[a, d][i]:+.3f} ± {se:.3f}"]
         for (a, d), (ws, e) in result.kurtosis.items() for i, w in enumerate(ws)])
    fitted = markdown_table(["activation", "depth", "fitted exponent [95% CI]", "prefactor"],
                            [[a, d, fit_text(f), "n/a" if f is None else f.prefactor]
                             for (a, d), f in fits.items()])
    against_exact = markdown_table(
        ["activation", "depth", "width", "exact", "measured (jackknife) [95% interval]", "measured / exact",
         "leading order 15 depth / N"],
        [[a, d, w, float(e["exact"][i]), f"{e['measured'][i]:.4g} [{e['ci'][i][0]:.4g}, {e['ci'][i][1]:.4g}]",
          f"{e['measured'][i] / e['exact'][i]:.3f}", 15 * d / w]
         for (a, d), e in exact.items() for i, w in enumerate(e["width"])])
    return f"""
**ReLU against its exact value.** The recursion in the module's docstring gives ReLU's excess
kurtosis at every width and depth, biases included (here W_std = {config.sphere.W_std:.4g}, b_std =
{config.sphere.b_std:g}, |x0|^2 / d = {result.x_sq_per_dim:.4g}). The measured value at each width
is a delete-one-group jackknife over {config.groups} groups (bias-corrected: the ratio estimator's
own bias is of order 1 / samples per group); the claim is the weighted mean over widths of
log(measured / exact), with its jackknife interval. The leading order 15 depth / N is shown
beside: it is what a rate alone would test. The widths are weighted by the inverse variance of
their log ratio, so that the narrowest widths' heavy tails do not set the interval.

{against_exact}

{config.samples} networks per width, one input. The excess kurtosis is measured as
`3 Var(s^2) / E[s^2]^2`, where `s^2 = K_emp(x0, x0)` is each network's empirical NNGP at the
input: given its features a network's output is Gaussian with variance `s^2`, so this is the
output's kurtosis exactly, with much less variance than the sample kurtosis of the outputs
(shown beside it with its standard error `sqrt(24/M)`). If the kurtosis falls as 1/width,
`width x kurtosis` settles to a constant, from above at depth 2, whose O(width^-2) term shows
below width {config.fit_min_width}. The rates (claims for erf; shown for ReLU, whose claim is its
exact value) fit widths >= {config.fit_min_width} (the figure's lines extend the fits to every
width); the exponent's interval is a Student-t interval over {config.groups} independent groups
of networks. Depth >= 2 stops at width
{config.max_width_deep} (each network costs width^2 draws).

{fitted}

{per_width}
"""
