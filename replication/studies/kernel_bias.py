"""The mean of many networks' kernels against the closed form: bias, beside the rate.

A fitted rate cannot tell a kernel that converges to the closed form from one
that converges to something else: an error sqrt(a^2 / N + delta^2) with a
limit off by delta still fits a slope near -1/2 over a finite ladder. The
direct test is the mean over initialisations. For each width, ``inits``
networks give empirical kernels ``K_i``; each one's signed relative bias along
the closed form ``K`` is ``s_i = <K_i - K, K> / |K|_F^2``, and their mean,
with a Student-t interval over the networks, is the kernel's bias in the
direction that matters most (its scale).

Theory: at depth 1 the mean is the closed form exactly, at every width (each
kernel is an average over hidden units that are i.i.d. with the limit's law,
and the readout's weights are independent of them). Deeper layers see the
layer below only through its empirical kernel, which fluctuates by
``O(N^-1/2)``; a nonlinearity turns those fluctuations into a mean shift of
order ``1/N``: ``s(N) = c / N + O(N^-2)``. For the NNGP, perturbation
theory predicts ``c`` (``replication.studies.kernel_perturbation``): each
layer's map, expanded to second order around the limit, turns the layer
below's O(1/N) covariance into a mean shift. The claims: no bias at depth 1
(``c`` by weighted least squares on ``1/N``), and deeper NNGPs' ``c`` (fitted
as ``c / N + e / N^2``) at its predicted value. For the NTK the deeper
coefficients are measured and shown, not predicted.

Random stream: ``kernel_bias`` (the networks, and its numpy generator the
prediction's Gaussian draws); the inputs are the rate sweep's.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import jax
import numpy as np

from replication.arch import MLP
from replication.kernels import closed_form, empirical_nngp, empirical_ntk, over_initialisations
from replication.report import Claim, Findings, Section, fmt, markdown_table
from replication.stats import fit_inverse_width
from replication.studies import kernel_perturbation
from replication.studies.kernel_rate import NAMES, inputs
from replication.sweep import Streams, progress


@dataclass(frozen=True)
class Config:
    kind: str = "ntk"            # which kernel: "ntk" or "nngp"
    # Narrow widths: a bias c / N stands out against the mean's standard error, about
    # sqrt(N) c / sqrt(inits) relative, most at the narrow end.
    widths: tuple[int, ...] = (4, 8, 16, 32, 64, 128)
    depths: tuple[int, ...] = (1, 2, 3)
    activations: tuple[str, ...] = ("relu", "erf")
    inits: int = 2048            # networks per width: the replicates behind each interval
    chunk: int = 256             # networks vmapped at once
    n_inputs: int = 16           # the rate sweep's inputs (kernel_rate.inputs)
    input_dim: int = 8
    W_std: float = 2**0.5
    b_std: float = 0.1
    # Depth 1's band on c (bias = c / N): a resolution, a relative bias under 0.1 / N
    # (2.5% at width 4, 0.08% at width 128).
    unbiased_tolerance: float = 0.1
    # Deeper NNGPs: c against perturbation theory's (Monte Carlo over prediction_draws draws of each
    # layer's Gaussian). The band, 20% of the prediction, separates it from no bias and from twice it.
    prediction_draws: int = 2**18
    prediction_tolerance: float = 0.2

    @property
    def section(self) -> str:
        return f"The mean {NAMES[self.kind]} over initialisations against the closed form"


def _kernel_fn(kind: str, module):
    if kind == "ntk":
        return lambda params, x: empirical_ntk(module.apply, params, x)
    return lambda params, x: empirical_nngp(module, params, x)


@dataclass
class Result:
    biases: dict[tuple[str, int], np.ndarray]        # (n_widths, inits) signed relative biases
    predicted: dict[tuple[str, int], tuple[float, float]]  # NNGP, depth >= 2: c and its MC error


def measure(config: Config, streams: Streams) -> Result:
    """Per (activation, depth): ``(n_widths, inits)`` signed relative biases along the closed form;
    for the NNGP beyond depth 1, perturbation theory's ``c``."""
    x = inputs(config, streams)
    out = {}
    configs = list(itertools.product(config.activations, config.depths))
    with progress(len(configs) * len(config.widths), f"{config.kind} bias") as bar:
        for a, d in configs:
            rows = []
            for width in config.widths:
                spec = MLP(width, d, a, W_std=config.W_std, b_std=config.b_std)
                limit = np.asarray(closed_form(spec, x, get=config.kind), dtype=np.float64)
                module = spec.flax()
                kernel = _kernel_fn(config.kind, module)
                keys = jax.random.split(streams.network("kernel_bias", width, d), config.inits)
                k = np.asarray(over_initialisations(module, keys, x, lambda p: kernel(p, x),
                                                    chunk_size=config.chunk), dtype=np.float64)
                rows.append(np.einsum("sij,ij->s", k - limit, limit) / np.sum(limit**2))
                bar.update()
            out[a, d] = np.array(rows)
    predicted = {}
    if config.kind == "nngp":
        rng = streams.numpy("kernel_bias")
        for a, d in configs:
            if d >= 2:
                p = kernel_perturbation.nngp_bias(np.asarray(x), d, a, config.W_std, config.b_std, rng,
                                                  draws=config.prediction_draws)
                per_batch = [kernel_perturbation.along(b, p["limit"]) for b in p["batches"]]
                predicted[a, d] = (kernel_perturbation.along(p["delta"], p["limit"]),
                                   float(np.std(per_batch, ddof=1) / np.sqrt(len(per_batch))))
    return Result(out, predicted)


def bias_coefficient(widths, s: np.ndarray, confidence: float = 0.95, second_order: bool = False):
    """``c`` in ``mean s(N) = c / N`` (``+ e / N^2`` with ``second_order``) by weighted least
    squares over the widths (weights: the inverse squared standard errors of the means), with its
    normal interval."""
    a, ci = fit_inverse_width(widths, s, (1, 2) if second_order else (1,), confidence)
    return a[0], ci[0]


def findings(config: Config, result: Result) -> Findings:
    """Depth 1: one claim per activation, no bias (c = 0). Deeper NNGPs: one claim each, c at
    perturbation theory's value. Every depth: the table of z-scores and the measured c."""
    kind, name, widths, biases = config.kind, NAMES[config.kind], config.widths, result.biases
    # Depth 1 has no bias at any order; deeper, the O(N^-2) term is fitted beside c.
    coefficients = {(a, d): bias_coefficient(widths, s, second_order=d >= 2) for (a, d), s in biases.items()}
    fit_method = (f"weighted least squares of the mean bias on {{}} over {len(widths)} widths, "
                  f"{config.inits} networks each (normal interval)")
    claims = [Claim(
        id=f"{kind}_init_unbiased_{a}_depth1", section=config.section,
        statement=f"Mean of {config.inits} empirical {name}s = the closed form at every width ({a}, depth 1)",
        prediction="bias c / N with c = 0", expected=0.0, measured=c, ci=ci,
        tolerance=config.unbiased_tolerance,
        reason="a resolution: a relative bias under 0.1 / N; depth 1's mean is the limit exactly",
        interval_method=fit_method.format("1/N"), n_seeds=config.inits, fit_range=(widths[0], widths[-1]))
        for (a, d), (c, ci) in coefficients.items() if d == 1]
    for (a, d), (c_pred, c_err) in result.predicted.items():
        c, ci = coefficients[a, d]
        claims.append(Claim(
            id=f"{kind}_init_bias_predicted_{a}_depth{d}", section=config.section,
            statement=f"Mean of {config.inits} empirical {name}s: its O(1/N) bias has the coefficient "
                      f"perturbation theory predicts ({a}, depth {d})",
            prediction=f"bias c / N + O(N^-2) with c = {c_pred:+.3f} (+-{c_err:.3f} Monte Carlo)",
            expected=c_pred, measured=c, ci=ci, tolerance=config.prediction_tolerance * abs(c_pred),
            reason="20% of the prediction: separates it from no bias and from twice it",
            interval_method=fit_method.format("1/N and 1/N^2"), n_seeds=config.inits,
            fit_range=(widths[0], widths[-1])))
    rows = []
    for (a, d), s in biases.items():
        z = s.mean(axis=1) / (s.std(axis=1, ddof=1) / np.sqrt(s.shape[1]))
        c, ci = coefficients[a, d]
        pred = result.predicted.get((a, d))
        rows.append([a, d, *(f"{m:+.4f} ({zz:+.1f})" for m, zz in zip(s.mean(axis=1), z)),
                     f"{c:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]",
                     "0" if d == 1 else ("" if pred is None else f"{pred[0]:+.3f} +- {pred[1]:.3f}")])
    theory = ("perturbation theory's c (`replication.studies.kernel_perturbation`: each layer's map "
              "expanded to second order around the limit turns the layer below's O(1/N) covariance "
              "into an O(1/N) mean shift; +- its Monte Carlo error)" if kind == "nngp" else
              "the coefficient at depth 1, 0; deeper it is not derived here")
    body = f"""
The direct test of the limit, beside the rate of the previous section: at each width
{config.inits} independently initialised networks (NTK parameterization, W_std = {fmt(config.W_std)},
b_std = {fmt(config.b_std)}, the same {config.n_inputs} inputs); for each, the signed relative bias
of its empirical {name} along the closed form, `<K_i - K, K> / |K|_F^2`. The table gives the mean
over the networks at each width and, in brackets, its z-score (mean over its standard error).
Theory: zero at depth 1 at every width; deeper, `c / N + O(N^-2)`. The fitted c (weighted least
squares on 1/N at depth 1, on 1/N and 1/N^2 deeper; 95% interval) is beside theory's: {theory}.
The claims: c = 0 within {fmt(config.unbiased_tolerance)} at depth 1{
    "; deeper, c within 20% of its prediction" if result.predicted else ""}.

{markdown_table(["activation", "depth", *(f"width {w}" for w in widths), "c fitted", "c theory"], rows)}
"""
    series = {f"init_{kind}_bias/{a}/depth{d}": {
        "width": list(widths), "mean_bias": s.mean(axis=1), "sd": s.std(axis=1, ddof=1),
        "inits": s.shape[1], "c": coefficients[a, d][0], "c_ci": list(coefficients[a, d][1]),
        "c_predicted": result.predicted.get((a, d), (None, None))[0],
        "c_predicted_mc_error": result.predicted.get((a, d), (None, None))[1]}
        for (a, d), s in biases.items()}
    return Findings(claims, [Section(config.section, body)], series)
