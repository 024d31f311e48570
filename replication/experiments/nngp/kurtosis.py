"""One output across initialisations becomes Gaussian: its excess kurtosis falls as 1/width.

Given a network's features, its output at ``x0`` is Gaussian with variance
``s^2 = K_emp(x0, x0)`` (the readout's weights are Gaussian and independent
of the features), so the output's excess kurtosis is exactly
``3 Var(s^2) / E[s^2]^2``, over initialisations. At depth 1, ``s^2`` is an
average of ``N`` i.i.d. terms and the kurtosis is exactly proportional to
``1/N``; deeper networks add an ``O(N^-2)`` term.

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
from replication.stats import EXPONENT_BAND, PowerLawFit, fit_finite
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
    groups: int = 4              # independent groups, for the interval of the exponent
    expected_exponent: float = -1.0
    # Depth 1 is exactly N^-1 (see kurtosis_of_one_output). Deeper networks add
    # an O(N^-2) term: width * kurtosis of a depth-2 ReLU network falls from 61
    # at width 2 to 34 at 16 and stays near 30 beyond, so the asymptotic rate is
    # fitted from width 16 on (the table and figure show every width).
    fit_min_width: int = 16
    exponent_tolerance: float = EXPONENT_BAND

    def widths_at(self, depth: int) -> list[int]:
        """The widths measured at ``depth``: all of them at depth 1, up to ``max_width_deep`` beyond."""
        return [w for w in self.widths if depth == 1 or w <= self.max_width_deep]


@dataclass
class Result:
    # (activation, depth) -> (widths, excess kurtosis (n_widths, groups), one value per group)
    kurtosis: dict[tuple[str, int], tuple[list[int], np.ndarray]]
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


def measure(config: Config, streams: Streams) -> Result:
    """``samples`` networks per (activation, depth, width), at the rate sweep's first input."""
    x0 = inputs(config.sphere, streams)[:1]
    kurt, direct, histograms = {}, {}, {}
    configs = [(a, d) for a in config.activations for d in config.depths]
    with progress(len(configs) * len(config.widths), "nngp kurtosis") as bar:
        for a, d in configs:
            ws = config.widths_at(d)
            rows, rows_direct = [], []
            for width in ws:
                spec = MLP(width, d, a, W_std=config.sphere.W_std, b_std=config.sphere.b_std)
                # One stream of networks per (width, depth): the activations share it.
                keys = jax.random.split(streams.network("kurtosis", width, d), config.samples)
                f, s2 = map(np.asarray, kurtosis_of_one_output(spec, x0, keys))
                groups = s2.reshape(config.groups, -1)
                rows.append(3 * groups.var(axis=1, ddof=1) / groups.mean(axis=1) ** 2)
                rows_direct.append(stats.kurtosis(f))
                if a == config.activations[0] and d == 1 and width in (ws[0], ws[-1]):
                    histograms[width] = f / np.sqrt(s2.mean())
                bar.update()
            kurt[a, d] = (ws, np.array(rows))
            direct[a, d] = np.array(rows_direct)
    return Result(kurt, direct, histograms)


def asymptotic_fits(config: Config, result: Result) -> dict[tuple[str, int], PowerLawFit | None]:
    """Per (activation, depth), the power law fitted over widths >= ``fit_min_width`` (``None``
    where fewer than two remain)."""
    fits = {}
    for k, (ws, e) in result.kurtosis.items():
        keep = [i for i, w in enumerate(ws) if w >= config.fit_min_width]
        fits[k] = fit_finite([ws[i] for i in keep], e[keep])
    return fits


def findings(config: Config, result: Result) -> Findings:
    """One claim per (activation, depth): the fitted exponent is ``expected_exponent`` within the band."""
    fits = asymptotic_fits(config, result)
    claims = [Claim.of_fit(
        f, id=f"nngp_kurtosis_rate_{a}_depth{d}",
        statement=f"Excess kurtosis of one output falls as 1/width ({a}, depth {d})",
        prediction="kurtosis ~ width^(-1)", expected=config.expected_exponent,
        tolerance=config.exponent_tolerance, section=SECTION) for (a, d), f in fits.items()]
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
    section = Section(SECTION, _prose(config, result, fits), figures)
    series = {"kurtosis": {f"{a}/depth{d}": {"width": ws, "excess_kurtosis": e.mean(axis=1),
                                             "groups": e, "direct": result.direct[a, d], "fit": fits[a, d]}
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


def _prose(config: Config, result: Result, fits: dict) -> str:
    se = np.sqrt(24 / config.samples)
    per_width = markdown_table(
        ["activation", "depth", "width", "excess kurtosis (conditional)", "width x kurtosis",
         "direct sample kurtosis"],
        [[a, d, w, float(e[i].mean()), float(w * e[i].mean()), f"{result.direct[a, d][i]:+.3f} ± {se:.3f}"]
         for (a, d), (ws, e) in result.kurtosis.items() for i, w in enumerate(ws)])
    fitted = markdown_table(["activation", "depth", "fitted exponent [95% CI]", "prefactor"],
                            [[a, d, fit_text(f), "n/a" if f is None else f.prefactor]
                             for (a, d), f in fits.items()])
    return f"""
{config.samples} networks per width, one input. The excess kurtosis is measured as
`3 Var(s^2) / E[s^2]^2`, where `s^2 = K_emp(x0, x0)` is each network's empirical NNGP at the
input: given its features a network's output is Gaussian with variance `s^2`, so this is the
output's kurtosis exactly, with much less variance than the sample kurtosis of the outputs
(shown beside it with its standard error `sqrt(24/M)`). If the kurtosis falls as 1/width,
`width x kurtosis` settles to a constant: exactly so at depth 1, from above at depth 2, whose
O(width^-2) term shows below width {config.fit_min_width}. The claims concern the
asymptotic rate and fit widths >= {config.fit_min_width} (the figure's lines extend the
fits to every width); the exponent's interval is a Student-t interval over
{config.groups} independent groups of networks. Depth >= 2 stops at width
{config.max_width_deep} (each network costs width^2 draws).

{fitted}

{per_width}
"""
