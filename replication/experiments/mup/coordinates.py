"""The coordinate check of the `mup` package: how far each layer's outputs move in a few SGD steps.

One fixed batch ``x`` ``(batch, input_dim)``, target ``y = sin(2 x_1)``. After
each SGD step ``t`` on ``mse``, for every affine layer ``l`` (a hidden
pre-activation ``h_l``, or the network's output for the readout), the size
``mean |h_l(t)|`` and the change ``mean |h_l(t) - h_l(0)|`` on that batch. Under
muP every layer's change is ``O(1)`` in width (exponent 0); under NTK
parameterization the hidden layers' change is ``O(width^(-1/2))``; under SP at
a learning rate held fixed the output's change grows with width.

The base learning rate is ``lr_fraction`` of the stability limit
``2 n / lambda_max`` of one network's empirical NTK at the base width
(``replication.dynamics.stable_step``), one for NTK parameterization and one
shared by SP and muP, which coincide there.

Random streams: ``coordinate_inputs`` (the batch) and ``networks`` (every
network; replicate 0 at "width" 0 is the base-width network that sets the step).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import lru_cache

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from replication.arch import training_layout
from replication.data import sphere_inputs
from replication.dynamics import stable_step
from replication.experiments.mup.networks import LABELS, PARAMETERIZATIONS, Networks
from replication.kernels import empirical_ntk
from replication.report import Claim, Figure, Findings, Section, fit_text, fmt, markdown_table
from replication.stats import EXPONENT_BAND, fit_finite
from replication.sweep import Streams, progress
from replication.train import fit, mse

SECTION = "Coordinate check"


@dataclass(frozen=True)
class Config:
    networks: Networks = field(default_factory=Networks)
    widths: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048, 4096)
    base_width: int = 32          # muP equals SP here; the base learning rate is set here
    depth: int = 3
    batch: int = 32               # one fixed batch of inputs on the sphere
    steps: int = 5                # SGD steps, each one recorded
    seeds: int = 8                # independent networks per width
    lr_fraction: float = 0.5      # of the stability limit 2 n / lambda_max of the empirical NTK at the base width
    exponent_tolerance: float = EXPONENT_BAND


@dataclass
class CoordinateCheck:
    """``records[p][layer]``: ``(n_widths, seeds, steps + 1, 2)``, mean ``|h_t|`` and mean
    ``|h_t - h_0|`` after each step (NaN where a run diverged); the base learning rates by
    parameterization."""

    learning_rates: dict[str, float]
    records: dict[str, dict[str, np.ndarray]]


def fixed_batch(config: Config, streams: Streams) -> tuple[jax.Array, jax.Array]:
    """The inputs ``x`` ``(batch, input_dim)`` on the sphere and the target ``sin(2 x_1)`` ``(batch, 1)``."""
    x = sphere_inputs(streams.key("coordinate_inputs"), config.batch, config.networks.input_dim)
    return x, jnp.sin(2 * x[:, :1])


def base_learning_rates(config: Config, streams: Streams, x) -> dict[str, float]:
    """``lr_fraction`` of the stability limit of one network's empirical NTK at the base width."""
    out = {}
    for p in ("ntk", "standard"):
        module = config.networks.spec(p, config.base_width, config.depth, config.base_width).flax()
        k = np.asarray(empirical_ntk(module.apply, module.init(streams.network("networks", 0, 0), x), x))
        out[p] = stable_step(k, config.lr_fraction)
    out["mup"] = out["standard"]   # muP is SP at the base width
    return out


def layer_outputs(module, params, x) -> dict:
    """Every affine layer's output (pre-activations, and the network's output), by layer name."""
    _, state = module.apply(params, x, capture_intermediates=True, mutable=["intermediates"])
    inter = state["intermediates"]
    return {name: inter[name]["__call__"][0] for name in inter if name != "__call__"}


@lru_cache(maxsize=None)
def _coordinate_fns(module):
    """The loss, the record (given the layer outputs ``h0`` at init) and the function giving ``h0``."""
    def loss(p, h0, x, y):
        return mse(module.apply(p, x), y)

    def record(p, h0, x, y):
        now = layer_outputs(module, p, x)
        return {k: jnp.stack([jnp.mean(jnp.abs(now[k])), jnp.mean(jnp.abs(now[k] - h0[k]))])
                for k in now}

    # fit traces ``record`` in training_layout, where an MLP's layer outputs are (width, n): h0 is
    # taken in the same layout (only ever called inside it, so its compiled program is that one).
    h0 = jax.jit(lambda p, x: layer_outputs(module, p, x))

    def outputs(p, x):
        with training_layout():
            return h0(p, x)

    return loss, record, outputs


def coordinate_check(config: Config, streams: Streams, x, y, parameterization: str,
                     lr: float) -> dict[str, np.ndarray]:
    """``{layer: (n_widths, seeds, steps + 1, 2)}``: mean |h| and mean |h - h_0| after each SGD step."""
    out = {}
    for i, width in enumerate(config.widths):
        # muP's readout starts at zero: the first residual is then the same at every width.
        spec = config.networks.spec(parameterization, width, config.depth, config.base_width,
                                    zero_readout=parameterization == "mup")
        module = spec.flax()
        loss, record, outputs = _coordinate_fns(module)
        opt = spec.optimizer("sgd", lr)
        for s in range(config.seeds):
            p0 = module.init(streams.network("networks", width, s), x)
            run = fit(loss, p0, opt, config.steps, record=record, record_every=1,
                      args=(outputs(p0, x), x, y))
            for k, v in run.records.items():
                out.setdefault(k, np.full((len(config.widths), config.seeds, config.steps + 1, 2),
                                          np.nan))[i, s] = np.asarray(v)
    return out


def measure(config: Config, streams: Streams) -> CoordinateCheck:
    x, y = fixed_batch(config, streams)
    lrs = base_learning_rates(config, streams, x)
    records = {}
    with progress(len(PARAMETERIZATIONS), "mup coordinate check") as bar:
        for p in PARAMETERIZATIONS:
            records[p] = coordinate_check(config, streams, x, y, p, lrs[p])
            bar.update()
    return CoordinateCheck(lrs, records)


def findings(config: Config, result: CoordinateCheck) -> Findings:
    """Exponents of each layer's change after the last step against width (over widths where no
    seed diverged): 0 under muP and -1/2 under NTK parameterization for every hidden layer, > 0
    for SP's output."""
    layers = list(result.records["mup"])
    fits = {(p, layer): fit_finite(config.widths, result.records[p][layer][:, :, config.steps, 1])
            for p in PARAMETERIZATIONS for layer in layers}
    series = {"coord_check": {"widths": list(config.widths), "steps": config.steps,
                              "learning_rates": result.learning_rates,
                              **{f"{p}/{layer}": result.records[p][layer]
                                 for p in PARAMETERIZATIONS for layer in layers},
                              "fits": {f"{p}/{layer}": f for (p, layer), f in fits.items() if f is not None}}}
    section = Section(SECTION, _prose(config, result, fits), _figures(config, result))
    return Findings(_claims(config, fits, layers), [section], series)


def _claims(config: Config, fits: dict, layers: list[str]) -> list[Claim]:
    T = config.steps
    claims = [Claim.of_fit(fits[p, layer], id=f"mup_coord_{p}_{layer}", section=SECTION,
                           statement=f"{LABELS[p]}: change of {layer}'s output after {T} SGD steps",
                           prediction=f"{what} (exponent {fmt(expected)})", expected=expected,
                           tolerance=config.exponent_tolerance)
              for p, expected, what in (("mup", 0.0, "constant in width"), ("ntk", -0.5, "width^(-1/2)"))
              for layer in layers if layer != "readout"]
    claims.append(Claim.of_fit(
        fits["standard", "readout"], id="mup_coord_sp_output_grows", section=SECTION,
        statement=f"SP at a fixed learning rate: change of the output after {T} SGD steps",
        prediction="grows with width (exponent > 0)", expected=0.0, tolerance=0.0, relation=">="))
    return claims


MIN_SPAN = 6.0   # octaves: the smallest y range of a coordinate-check row


def _figures(config: Config, result: CoordinateCheck) -> list[Figure]:
    """In the style of the `mup` package's coordinate checks: log2 size against log2 width, one
    panel per step, one line per layer; rows SP, NTK, muP."""
    T, rows, layers = config.steps, len(PARAMETERIZATIONS), list(result.records["mup"])
    log2_widths = np.log2(np.asarray(config.widths))
    figs = []
    for kind, label in ((1, "change since init, mean |h_t - h_0|"), (0, "size, mean |h_t|")):
        # One y axis per row (parameterization), so SP's blow-up does not flatten the others, and
        # at least MIN_SPAN octaves tall, so a flat line's float noise is not autoscaled into a slope.
        fig, axes = plt.subplots(rows, T, figsize=(3.0 * T, 2.6 * rows), squeeze=False, sharex=True,
                                 sharey="row")
        for r, p in enumerate(PARAMETERIZATIONS):
            for t in range(1, T + 1):
                ax = axes[r, t - 1]
                for j, layer in enumerate(layers):
                    # A layer that has not moved yet, or a width whose every seed diverged: no point.
                    with np.errstate(divide="ignore"), warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        m = np.exp(np.nanmean(np.log(result.records[p][layer][:, :, t, kind]), axis=1))
                        ax.plot(log2_widths, np.log2(m), "o-", ms=3, color=f"C{j}", label=layer)
                ax.set_title(f"{LABELS[p]}, step {t}", fontsize=9)
                ax.grid(alpha=0.25)
                if t == 1:
                    ax.set_ylabel("log2 " + ("change" if kind else "size"))
                if r == rows - 1:
                    ax.set_xlabel("log2 width")
        for r in range(rows):
            lo, hi = axes[r, 0].get_ylim()
            if hi - lo < MIN_SPAN:
                mid = (lo + hi) / 2
                axes[r, 0].set_ylim(mid - MIN_SPAN / 2, mid + MIN_SPAN / 2)
        axes[0, 0].legend(fontsize=7)
        fig.tight_layout()
        figs.append(Figure(f"coord_check_{'change' if kind else 'size'}", fig,
                           f"Coordinate check, {label}, averaged (geometric mean) over {config.seeds} seeds: "
                           "rows SP, NTK, muP (each row its own y axis, at least "
                           f"{MIN_SPAN:g} octaves tall); columns the SGD steps. Flat lines are "
                           "width-independent."))
    return figs


def _prose(config: Config, result: CoordinateCheck, fits: dict) -> str:
    T, net, widths, lrs = config.steps, config.networks, config.widths, result.learning_rates
    change = {key: result.records[key[0]][key[1]][:, :, T, 1] for key in fits}
    def mean(a):  # "nan" where every seed diverged
        return f"{np.mean(a[np.isfinite(a)]):.3g}" if np.isfinite(a).any() else "nan"

    rows = [[LABELS[p], layer, fit_text(fits[p, layer], none="-"), mean(c[0]), mean(c[-1]),
             int(np.sum(~np.isfinite(c)))] for (p, layer), c in change.items()]
    return f"""
The `mup` package's coordinate check: one fixed batch of {config.batch} inputs on the sphere in
R^{net.input_dim} (target sin(2 x_1)), MLPs of depth {config.depth} ({net.activation},
W_std = {fmt(net.W_std)}, b_std = {fmt(net.b_std)}) at widths {", ".join(map(str, widths))},
muP's base width {config.base_width}; {T} steps of SGD on mse, {config.seeds} seeds. The readout
of the muP networks is initialised at zero (Tensor Programs V's recommendation, and muP's limit: its
random initial output shrinks as r^(-1/2)), so the first step's residual is the same at every width;
with a random readout the narrow muP networks start from an O(1) random output and the wide ones from
about 0, and that difference in the residual, not the scaling, bends the narrow end of the curves.
A hidden layer's gradient carries the readout weights, so under muP only the readout moves at step 1
(log2 of 0: no point) and the hidden layers from step 2 on. SP and NTK keep their random readout:
under NTK parameterization a zero readout would make the hidden layers' first moves second order
(order 1/width instead of width^(-1/2)). After
each step, for every affine layer, the mean absolute value of its output (the pre-activation; the
network's output for the readout) and of its change since init, on the same batch. The base learning rate
is {fmt(config.lr_fraction)} of the stability limit 2 n / lambda_max of one network's empirical
NTK at the base width: {fmt(lrs['ntk'])} for NTK, {fmt(lrs['standard'])} for SP and muP (which coincide at the
base width); muP's per-layer factors (table above) multiply it at other widths, SP and NTK use it as
is at every width.

Exponents of the change after step {T} against width (95% interval over seeds), and its size at the
narrowest and widest width; the last column counts runs whose output became NaN or infinite:

{markdown_table(["parameterization", "layer", "exponent of the change", f"change at width {widths[0]}",
                 f"change at width {widths[-1]}", "diverged runs"], rows)}

Under NTK parameterization the features are frozen in the limit (change ~ width^(-1/2)) while the
output still moves by O(1): the kernel regime. Under muP every layer moves by O(1) at every width.
Under SP at a fixed learning rate the output's change grows with the width: the learning rate that
is stable at width {widths[0]} is too large for wider networks.
"""
