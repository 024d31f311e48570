"""The coordinate check of the `mup` package: how far each layer's outputs move in a few SGD steps.

The claims read the first step to first order in the learning rate, where the
abc-parametrization table gives every exponent (``EXPONENTS``): the change of
layer ``l``'s output per unit learning rate, ``delta h_l = (d h_l / d theta) u``
with ``u`` the optimizer's first update at learning rate 1 (a Jacobian-vector
product, exact; no finite step, so no learning rate at which anything
diverges), from the residual of zero outputs, ``-y``, at every width. Every
network's readout is random here, muP's included (its variance ``1 / width^2``
relative to the base width), so that the hidden layers move at step 1.

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

# Exponent of mean |delta h_l| (the first step's change, first order in the learning rate) in the
# width, from the abc table: gradients per coordinate are width^(-1/2) under SP and NTK
# parameterization, width^(-1) under muP (its readout's scale), and a hidden layer's change sums
# width of them against Theta(1) inputs; see the report's derivation.
EXPONENTS = {
    "standard": {"input": -0.5, "hidden": 0.5, "readout": 1.0},
    "ntk": {"input": -0.5, "hidden": -0.5, "readout": 0.0},
    "mup": {"input": 0.0, "hidden": 0.0, "readout": 0.0},
}


@dataclass(frozen=True)
class Config:
    networks: Networks = field(default_factory=Networks)
    widths: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048, 4096)
    base_width: int = 32          # muP equals SP here; the base learning rate is set here
    depth: int = 3
    batch: int = 32               # one fixed batch of inputs on the sphere
    steps: int = 5                # SGD steps, each one recorded
    seeds: int = 8                # independent networks per width
    # The several-step check (figures and a table, no claims) trains the first of them: its
    # widest networks' steps cost as much as everything else here.
    trajectory_seeds: int = 4
    lr_fraction: float = 0.5      # of the stability limit 2 n / lambda_max of the empirical NTK at the base width
    exponent_tolerance: float = EXPONENT_BAND


@dataclass
class CoordinateCheck:
    """``records[p][layer]``: ``(n_widths, trajectories, steps + 1, 2)``, mean ``|h_t|`` and mean
    ``|h_t - h_0|`` after each step (NaN where a run diverged); the base learning rates by
    parameterization; ``first_order[p][layer]``: ``(n_widths, seeds)``, mean ``|delta h_l|`` of the
    first step per unit learning rate."""

    learning_rates: dict[str, float]
    records: dict[str, dict[str, np.ndarray]]
    first_order: dict[str, dict[str, np.ndarray]]


def role(layer: str, layers: list[str]) -> str:
    """``input`` (the first dense layer), ``hidden`` (the others) or ``readout``."""
    return "readout" if layer == "readout" else ("input" if layer == layers[0] else "hidden")


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


def checks(config: Config, streams: Streams, x, y, parameterization: str, lr: float):
    """Both checks of one parameterization, each network initialised once.

    ``records``: ``{layer: (n_widths, trajectories, steps + 1, 2)}``, mean |h| and mean |h - h_0| after
    each SGD step at ``lr``, for the first ``trajectories(config)`` seeds; muP's readout starts at zero
    there, so that the first residual is the same at every width. ``first``: ``{layer: (n_widths,
    seeds)}``, mean |delta h_l| of the first SGD step per unit learning rate, the same networks with their random readout, along the update that the
    residual of zero outputs, ``-y``, gives: the same residual at every width (muP's random initial
    output is of order 1 at the base width and shrinks as width^(-1/2), and would bend the curves
    through the residual, not through the scaling). A zero readout changes the init only (the
    forward multipliers are the same), and Flax draws each parameter from its own name's key, so
    zeroing the readout of the random-readout network is the zero-readout network of the same key.
    """
    records, first = {}, {}
    for i, width in enumerate(config.widths):
        spec = config.networks.spec(parameterization, width, config.depth, config.base_width)
        module = spec.flax()
        loss, record, outputs = _coordinate_fns(module)
        opt_lr, opt_unit = spec.optimizer("sgd", lr), spec.optimizer("sgd", 1.0)
        # The residual of zero outputs, -y, at every width: mse's gradient at f = 0.
        grad = jax.jit(jax.grad(lambda p: -jnp.mean(y * module.apply(p, x))))
        for s in range(config.seeds):
            p0 = module.init(streams.network("networks", width, s), x)
            update, _ = opt_unit.update(grad(p0), opt_unit.init(p0), p0)
            for k, v in _first_order_fn(module)(p0, update, x).items():
                first.setdefault(k, np.full((len(config.widths), config.seeds), np.nan))[i, s] = float(v)
            if s >= trajectories(config):
                continue
            if parameterization == "mup":
                p0 = _zero_readout(p0)
            run = fit(loss, p0, opt_lr, config.steps, record=record, record_every=1,
                      args=(outputs(p0, x), x, y))
            for k, v in run.records.items():
                records.setdefault(k, np.full((len(config.widths), trajectories(config), config.steps + 1, 2),
                                              np.nan))[i, s] = np.asarray(v)
    return records, first


def trajectories(config: Config) -> int:
    """How many of each width's networks the several-step check trains."""
    return min(config.trajectory_seeds, config.seeds)


def _zero_readout(params):
    readout = dict(params["params"]["readout"])
    readout["kernel"] = jnp.zeros_like(readout["kernel"])
    return {"params": {**params["params"], "readout": readout}}


@lru_cache(maxsize=None)
def _first_order_fn(module):
    """``(params, update) -> {layer: mean |delta h|}``: each layer's output's derivative along ``update``."""
    def change(p, u, x):
        _, tangent = jax.jvp(lambda q: layer_outputs(module, q, x), (p,), (u,))
        return {k: jnp.mean(jnp.abs(v)) for k, v in tangent.items()}

    return jax.jit(change)


def measure(config: Config, streams: Streams) -> CoordinateCheck:
    x, y = fixed_batch(config, streams)
    lrs = base_learning_rates(config, streams, x)
    records, first = {}, {}
    with progress(len(PARAMETERIZATIONS), "mup coordinate check") as bar:
        for p in PARAMETERIZATIONS:
            records[p], first[p] = checks(config, streams, x, y, p, lrs[p])
            bar.update()
    return CoordinateCheck(lrs, records, first)


def findings(config: Config, result: CoordinateCheck) -> Findings:
    """One claim per parameterization and layer: the exponent of the first step's change (first
    order in the learning rate) against width is the abc table's (``EXPONENTS``). The exponents
    after the last of the ``steps`` SGD steps are shown beside them, not claimed."""
    layers = list(result.records["mup"])
    fits = {(p, layer): fit_finite(config.widths, result.records[p][layer][:, :, config.steps, 1])
            for p in PARAMETERIZATIONS for layer in layers}
    first = {(p, layer): fit_finite(config.widths, result.first_order[p][layer])
             for p in PARAMETERIZATIONS for layer in layers}
    series = {"coord_check": {"widths": list(config.widths), "steps": config.steps,
                              "learning_rates": result.learning_rates,
                              **{f"{p}/{layer}": result.records[p][layer]
                                 for p in PARAMETERIZATIONS for layer in layers},
                              **{f"first_order/{p}/{layer}": result.first_order[p][layer]
                                 for p in PARAMETERIZATIONS for layer in layers},
                              "fits": {f"{p}/{layer}": f for (p, layer), f in fits.items() if f is not None},
                              "first_order_fits": {f"{p}/{layer}": f for (p, layer), f in first.items()
                                                   if f is not None}}}
    section = Section(SECTION, _prose(config, result, fits, first), _figures(config, result))
    return Findings(_claims(config, first, layers), [section], series)


CLAIM_LABELS = {"standard": "sp", "ntk": "ntk", "mup": "mup"}


def _claims(config: Config, first: dict, layers: list[str]) -> list[Claim]:
    return [Claim.of_fit(first[p, layer], id=f"mup_coord_{CLAIM_LABELS[p]}_{layer}", section=SECTION,
                         statement=f"{LABELS[p]}: change of {layer}'s output in the first SGD step, per unit "
                                   "learning rate (first order)",
                         prediction=f"~ width^({fmt(EXPONENTS[p][role(layer, layers)])}) (abc table)",
                         expected=EXPONENTS[p][role(layer, layers)], tolerance=config.exponent_tolerance)
            for p in PARAMETERIZATIONS for layer in layers]


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
                           f"Coordinate check, {label}, averaged (geometric mean) over {trajectories(config)} seeds: "
                           "rows SP, NTK, muP (each row its own y axis, at least "
                           f"{MIN_SPAN:g} octaves tall); columns the SGD steps. Flat lines are "
                           "width-independent."))
    return figs


def _prose(config: Config, result: CoordinateCheck, fits: dict, first: dict) -> str:
    T, net, widths, lrs = config.steps, config.networks, config.widths, result.learning_rates
    change = {key: result.records[key[0]][key[1]][:, :, T, 1] for key in fits}
    layers = list(result.records["mup"])
    def mean(a):  # "nan" where every seed diverged
        return f"{np.mean(a[np.isfinite(a)]):.3g}" if np.isfinite(a).any() else "nan"

    rows = [[LABELS[p], layer, fit_text(fits[p, layer], none="-"), mean(c[0]), mean(c[-1]),
             int(np.sum(~np.isfinite(c)))] for (p, layer), c in change.items()]
    first_rows = [[LABELS[p], layer, role(layer, layers), fmt(EXPONENTS[p][role(layer, layers)]),
                   fit_text(first[p, layer], none="-")] for p, layer in first]
    return f"""
**The first step, to first order in the learning rate.** Write a layer's output as `h_l = W_l x_(l-1)`
(plus its bias), with `x_(l-1) = Theta(1)` per coordinate, and the backward signal
`g_l = d f / d h_l`. One SGD step of size `eta c_l` on layer `l` (`c_l` the parameterization's
factor) changes `h_l` by `-eta c_l chi g_l |x_(l-1)|^2` (chi the residual, Theta(1)) plus the change
carried up from the layer below, of the same order or smaller. Under SP and NTK parameterization
`g_l = Theta(width^(-1/2))` per coordinate (the readout's weights are of that size); under muP,
`Theta(1 / width)`. A hidden layer's `|x_(l-1)|^2` is a sum over width coordinates, Theta(width); under
NTK parameterization the layer's `1 / sqrt(width)` multiplier enters twice (in the gradient and in
the forward pass) and divides it by width; the input layer's `|x|^2` does not grow. So, with every
`c_l = 1` for SP and NTK and muP's factors (which put width on the input layer's and 1 / width on the
readout's step): SP's input layer moves as width^(-1/2), its hidden layers as width^(1/2) and its
output as width (`|x_L|^2` against a readout gradient of order 1); NTK parameterization's layers as
width^(-1/2) and its output as 1; muP's every layer as 1. These are
the claims, measured as the Jacobian-vector product of each layer's output along the optimizer's
first update at learning rate 1, mean |delta h_l| over the batch and the layer's units. The update
is the one the residual of zero outputs, chi = -y, gives, the same at every width: with the
networks' own initial outputs in chi, muP's (of order 1 at the base width, shrinking as
width^(-1/2)) bend its exponents by -0.2 to -0.4 over these widths through the residual alone.
Every readout is random (muP's too, of variance 1 / width^2 relative to the base width: a zero readout would
stop every hidden layer's first step):

{markdown_table(["parameterization", "layer", "role", "abc exponent", "measured exponent [95%]"], first_rows)}

**Several steps of SGD.** The `mup` package's own check, shown beside the claims and not counted:
The `mup` package's coordinate check: one fixed batch of {config.batch} inputs on the sphere in
R^{net.input_dim} (target sin(2 x_1)), MLPs of depth {config.depth} ({net.activation},
W_std = {fmt(net.W_std)}, b_std = {fmt(net.b_std)}) at widths {", ".join(map(str, widths))},
muP's base width {config.base_width}; {T} steps of SGD on mse, the first {trajectories(config)} of the
{config.seeds} seeds. The readout
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

Exponents of the change after step {T} against width (95% interval over seeds; beyond the first
step the changes compound, and no exponent of the table applies), and its size at the narrowest
and widest width; the last column counts runs whose output became NaN or infinite:

{markdown_table(["parameterization", "layer", "exponent of the change", f"change at width {widths[0]}",
                 f"change at width {widths[-1]}", "diverged runs"], rows)}

Under NTK parameterization the features are frozen in the limit (change ~ width^(-1/2)) while the
output still moves by O(1): the kernel regime. Under muP every layer moves by O(1) at every width.
Under SP at a fixed learning rate the output's change grows with the width: the learning rate that
is stable at width {widths[0]} is too large for wider networks.
"""
