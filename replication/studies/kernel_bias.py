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
order ``1/N``: ``s(N) = c / N + O(N^-2)``. The coefficient ``c`` is measured
(weighted least squares over the widths) and shown; the claims are depth
1's: no bias.

Random stream: ``kernel_bias`` (the networks); the inputs are the rate
sweep's.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import jax
import numpy as np
from scipy import stats as _st

from replication.arch import MLP
from replication.kernels import closed_form, empirical_nngp, empirical_ntk, over_initialisations
from replication.report import Claim, Findings, Section, fmt, markdown_table
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

    @property
    def section(self) -> str:
        return f"The mean {NAMES[self.kind]} over initialisations against the closed form"


def _kernel_fn(kind: str, module):
    if kind == "ntk":
        return lambda params, x: empirical_ntk(module.apply, params, x)
    return lambda params, x: empirical_nngp(module, params, x)


def measure(config: Config, streams: Streams) -> dict[tuple[str, int], np.ndarray]:
    """Per (activation, depth): ``(n_widths, inits)`` signed relative biases along the closed form."""
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
    return out


def bias_coefficient(widths, s: np.ndarray, confidence: float = 0.95):
    """``c`` in ``mean s(N) = c / N`` by weighted least squares over the widths (weights: the
    inverse squared standard errors of the means), with its normal interval."""
    x = 1.0 / np.asarray(widths, dtype=np.float64)
    mean = s.mean(axis=1)
    se2 = s.var(axis=1, ddof=1) / s.shape[1]
    info = np.sum(x**2 / se2)
    c = float(np.sum(x * mean / se2) / info)
    half = float(_st.norm.ppf(0.5 + confidence / 2) / np.sqrt(info))
    return c, (c - half, c + half)


def findings(config: Config, biases: dict[tuple[str, int], np.ndarray]) -> Findings:
    """Depth 1: one claim per activation, no bias (c = 0). Every depth: the table of z-scores and
    the measured c."""
    kind, name, widths = config.kind, NAMES[config.kind], config.widths
    coefficients = {k: bias_coefficient(widths, s) for k, s in biases.items()}
    claims = [Claim(
        id=f"{kind}_init_unbiased_{a}_depth1", section=config.section,
        statement=f"Mean of {config.inits} empirical {name}s = the closed form at every width ({a}, depth 1)",
        prediction="bias c / N with c = 0", expected=0.0, measured=c, ci=ci,
        tolerance=config.unbiased_tolerance,
        reason="a resolution: a relative bias under 0.1 / N; depth 1's mean is the limit exactly",
        interval_method=f"weighted least squares of the mean bias on 1/N over {len(widths)} widths, "
                        f"{config.inits} networks each (normal interval)",
        n_seeds=config.inits, fit_range=(widths[0], widths[-1]))
        for (a, d), (c, ci) in coefficients.items() if d == 1]
    rows = []
    for (a, d), s in biases.items():
        z = s.mean(axis=1) / (s.std(axis=1, ddof=1) / np.sqrt(s.shape[1]))
        c, ci = coefficients[a, d]
        rows.append([a, d, *(f"{m:+.4f} ({zz:+.1f})" for m, zz in zip(s.mean(axis=1), z)),
                     f"{c:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]"])
    body = f"""
The direct test of the limit, beside the rate of the previous section: at each width
{config.inits} independently initialised networks (NTK parameterization, W_std = {fmt(config.W_std)},
b_std = {fmt(config.b_std)}, the same {config.n_inputs} inputs); for each, the signed relative bias
of its empirical {name} along the closed form, `<K_i - K, K> / |K|_F^2`. The table gives the mean
over the networks at each width and, in brackets, its z-score (mean over its standard error).
Theory: zero at depth 1 at every width; deeper, `c / N`, whose `c` (weighted least squares on
1/N, 95% interval) is the last column. The claims are depth 1's: c = 0 within
{fmt(config.unbiased_tolerance)}.

{markdown_table(["activation", "depth", *(f"width {w}" for w in widths), "c in bias = c / N"], rows)}
"""
    series = {f"init_{kind}_bias/{a}/depth{d}": {
        "width": list(widths), "mean_bias": s.mean(axis=1), "sd": s.std(axis=1, ddof=1),
        "inits": s.shape[1], "c": coefficients[a, d][0], "c_ci": list(coefficients[a, d][1])}
        for (a, d), s in biases.items()}
    return Findings(claims, [Section(config.section, body)], series)
