"""At initialisation SP, NTK parameterization and muP share one NNGP.

The three draw the hidden layers alike (effective weight variance
``W_std^2 / fan_in``; with Flax's key per layer, one key gives the same hidden
weights under all three), so the features ``phi(x)`` that the readout sees are
the same. The readout's effective weight variance is ``W_std^2 / fan_in``
under SP and NTK, and ``W_std^2 base_width / width^2`` under muP, so with
``r = width / base_width``

    K_muP - b_std^2 = (K_SP - b_std^2) / r,

the readout bias's ``b_std^2`` being common. The shared NNGP approaches
neural-tangents' closed form as ``width^(-1/2)``. muP's base width is the
narrowest width of the ladder.

Random streams: ``init_inputs`` (the inputs) and ``init_networks`` (the networks).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from replication.data import sphere_inputs
from replication.experiments.mup.networks import PARAMETERIZATIONS, Networks
from replication.kernels import closed_form, empirical_nngp
from replication.report import Check, Figure, Findings, Section, loglog_figure
from replication.stats import EXPONENT_BAND, fit_power_law, relative_frobenius_error
from replication.sweep import Streams

SECTION = "At initialisation the three share one NNGP"


@dataclass(frozen=True)
class Config:
    networks: Networks = field(default_factory=Networks)
    widths: tuple[int, ...] = (64, 256, 1024, 4096)   # the first is muP's base width
    depth: int = 2
    seeds: int = 8                # independent networks per width
    n_inputs: int = 16            # inputs on the sphere
    exponent_tolerance: float = EXPONENT_BAND


@dataclass
class SharedNNGP:
    """``errors`` ``(n_widths, seeds)``: the NTK-parameterized network's empirical NNGP against the
    closed form (relative Frobenius); ``max_difference``: the largest relative difference of SP's and
    muP's (weight part times ``r``) from it, over all networks."""

    errors: np.ndarray
    max_difference: float


def measure(config: Config, streams: Streams) -> SharedNNGP:
    x = sphere_inputs(streams.key("init_inputs"), config.n_inputs, config.networks.input_dim)
    base = config.widths[0]
    limit = np.asarray(closed_form(config.networks.spec("ntk", base, config.depth, base), x, get="nngp"))
    err = np.empty((len(config.widths), config.seeds))
    differ = 0.0
    bias = config.networks.b_std**2  # the readout bias's share of the NNGP: the same under all three
    for i, w in enumerate(config.widths):
        specs = {p: config.networks.spec(p, w, config.depth, base) for p in PARAMETERIZATIONS}
        for s in range(config.seeds):
            key = streams.network("init_networks", w, s)
            k = {p: (np.asarray(empirical_nngp(sp.flax(), sp.flax().init(key, x), x), np.float64) - bias)
                 * sp.width_ratio + bias for p, sp in specs.items()}
            err[i, s] = relative_frobenius_error(k["ntk"], limit)
            differ = max(differ, *(relative_frobenius_error(k[p], k["ntk"]) for p in ("standard", "mup")))
    return SharedNNGP(err, differ)


def findings(config: Config, result: SharedNNGP) -> Findings:
    """One NNGP up to float32 rounding (``N eps``, ``N`` the widest width), and its ``width^(-1/2)``
    approach to the closed form."""
    fit = fit_power_law(config.widths, result.errors)
    rounding = float(np.finfo(np.float32).eps * max(config.widths))
    checks = [
        Check(id="mup_init_same_nngp", section=SECTION,
              statement="SP, NTK and muP (weight part times width / base_width) from one key: one empirical NNGP",
              expected=0.0, measured=result.max_difference, tolerance=rounding, relation="<=",
              why="one random draw: the three share their hidden layers by construction (float32 rounding, N eps)"),
        Check(id="mup_init_nngp_rate", section=SECTION,
              statement="That NNGP's relative error against neural-tangents' closed form falls as width^(-1/2)",
              expected=-0.5, measured=None if fit is None else fit.exponent, tolerance=config.exponent_tolerance,
              why="the nngp report's claim (nngp_init_rate_*) on another draw; repeated here, not counted twice")]
    figure = loglog_figure({"NNGP at init": {"SP = NTK = muP x r": (config.widths, result.errors, fit)}},
                           xlabel="width", ylabel="relative Frobenius error", reference_exponent=-0.5,
                           reference_label="width^(-1/2)")
    body = f"""
SP, NTK parameterization and muP draw the hidden layers alike (effective weight variance
W_std^2 / fan_in; with Flax's key-per-layer initialisation, one key gives the same hidden
weights under all three), so the features, and with them the NNGP that the readout sees, are the
same. The readout differs: under muP its effective weight has variance W_std^2 base_width / width^2,
so the weight part of the output's NNGP is SP's divided by r = width / base_width and vanishes as the
width grows, leaving the readout bias's b_std^2 (`zero_readout` removes the weight part at every width). Measured, depth {config.depth}, {config.n_inputs}
inputs, {config.seeds} seeds, base width {config.widths[0]}: the three empirical NNGPs from one key (muP's
weight part multiplied by r) differ by at most {result.max_difference:.1e} relative, and their common value approaches
neural-tangents' closed form as width^({fit.exponent:+.3f}) [{fit.ci[0]:+.3f}, {fit.ci[1]:+.3f}].
In training they part: NTK parameterization stays at its kernel, muP moves its features (coordinate
check above, and the next section).
"""
    series = {"init_nngp": {"widths": list(config.widths), "error": result.errors, "fit": fit,
                            "max_relative_difference": result.max_difference}}
    return Findings([], [Section(SECTION, body, [Figure(
        "init_nngp", figure, "One network's NNGP against the closed form.")])], series, checks)
