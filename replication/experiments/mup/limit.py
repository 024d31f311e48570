"""The muP limit itself: the infinite-width network computed, networks converging to it, and where it
beats the NTK limit.

A one-hidden-layer muP network with a zero readout is a mean over its ``N``
hidden units, which interact only through the shared residual
(``replication.mean_field``). Its infinite-width limit replaces that mean by
an expectation over the units' initial law, computed here by a tensor
Gauss-Hermite rule over the initial ``(w, b)``: no width enters it, and
refining the rule shows its error. Two tasks, both ``y = tanh(k <u, x>)`` with
Gaussian inputs and erf units (smooth, so the rule converges fast):

- **In one dimension** the rule is accurate to about ``1e-5`` with a few
  thousand nodes, so trained Flax networks can be compared with the exact
  limit at widths where their distance is ``1e-3``: a single network
  approaches it as ``N^(-1/2)`` (a mean over ``N`` units) and the squared
  distance's intercept in ``1/N`` is 0.
- **In two dimensions**, where the target depends on one direction of the
  inputs, the limit's test error is compared with the NTK limit's (closed-form
  NTK gradient descent from zero outputs, stopped at its best step, an oracle
  the muP limit is not given), over a ladder of training-set sizes.

Random streams: ``limit_inputs`` (the one-dimensional task), ``limit_networks``
(its networks), ``limit_draws`` (the two-dimensional task: direction and
inputs, one draw per sample size and replicate).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

from replication import mean_field
from replication.arch import ACTIVATIONS, MLP
from replication.dynamics import gradient_descent_mse, stable_step
from replication.report import Claim, Figure, Findings, Section, fit_text, fmt, markdown_table, mean_sd
from replication.experiments.mup.trained import limit_distance
from replication.stats import EXPONENT_BAND, fit_finite, t_interval
from replication.sweep import Streams, progress
from replication.train import fit_ensemble, mse

SECTION = "The muP limit, computed"


@dataclass(frozen=True)
class Task:
    """``y = tanh(sharpness <u, x>)``, ``x ~ N(0, I_d)``; one hidden erf layer."""

    input_dim: int
    n_train: int
    n_test: int = 256
    sharpness: float = 3.0
    W_std: float = 1.0
    b_std: float = 1.0
    base_width: int = 32          # muP's base width: the readout is base_width * E[v phi] + c
    lr_fraction: float = 0.4      # of the stability limit 2 n / lambda_max of the limit's initial kernel
    steps: int = 2000
    record_every: int = 500


@dataclass(frozen=True)
class Config:
    line: Task = Task(input_dim=1, n_train=32, sharpness=4.0)
    nodes: tuple[int, ...] = (16, 32, 64, 128)     # Gauss-Hermite nodes per coordinate; the last is the limit
    widths: tuple[int, ...] = (256, 1024, 4096, 16384)
    seeds: int = 24
    plane: Task = Task(input_dim=2, n_train=64, lr_fraction=0.8, steps=2000, record_every=2000)
    plane_nodes: tuple[int, ...] = (12, 20)        # the sweep's rule, and a finer one that measures its error
    sample_sizes: tuple[int, ...] = (16, 32, 64)   # the full preset to 256
    draws: int = 6                                 # independent tasks (direction and inputs) per sample size
    ntk_lr_fraction: float = 0.5                   # of the closed-form NTK's stability limit
    exponent_tolerance: float = EXPONENT_BAND
    # The networks' distance from the limit at infinite width is 0; resolved to a tenth of the
    # limit's RMS test error, as for the NTK networks in "After training the limits differ".
    limit_resolution: float = 0.1


ERF = ACTIVATIONS["erf"].fn


@dataclass
class Limit:
    """``line``: the one-dimensional task's limit by rule (``test[nodes]`` ``(records, n_test)``),
    networks' test outputs ``networks`` ``(n_widths, seeds, records, n_test)`` and the data;
    ``plane``: test RMSE of both limits ``(n_sizes, draws)`` and the rule's error."""

    line: dict
    plane: dict


def task_data(task: Task, rng: np.random.Generator, n_train: int | None = None):
    """``(x_train, y_train, x_test, y_test)`` with a uniformly random direction ``u``."""
    n = task.n_train if n_train is None else n_train
    u = rng.normal(size=task.input_dim)
    u /= np.linalg.norm(u)
    x, x_test = rng.normal(size=(n, task.input_dim)), rng.normal(size=(task.n_test, task.input_dim))
    return x, np.tanh(task.sharpness * x @ u), x_test, np.tanh(task.sharpness * x_test @ u)


def limit_learning_rate(task: Task, particles: mean_field.Particles, x_train) -> float:
    """``lr_fraction`` of ``2 n / lambda_max`` of the limit's kernel at initialisation,
    ``base_width E[phi(<w, x> + b) phi(<w, x'> + b)] + 1`` (the readout's weights and bias: the
    hidden layer's terms vanish with the zero readout)."""
    phi = np.asarray(ERF(jnp.asarray(x_train @ particles.w.T + particles.b)))
    return stable_step(task.base_width * (phi * particles.weights) @ phi.T + 1.0, task.lr_fraction)


def rule(task: Task, nodes: int) -> mean_field.Particles:
    """The Gauss-Hermite rule with ``nodes`` points per coordinate for ``task``'s initial law."""
    return mean_field.quadrature(task.input_dim, task.W_std, task.b_std, nodes)


def limit_descent(task: Task, particles: mean_field.Particles, data, learning_rate: float) -> mean_field.Descent:
    x, y, x_test, _ = data
    return mean_field.descent(particles, x, y, x_test, activation=ERF, base_width=task.base_width,
                              learning_rate=learning_rate, steps=task.steps, record_every=task.record_every)


def spec_of(task: Task, width: int) -> MLP:
    return MLP(width, 1, "erf", W_std=task.W_std, b_std=task.b_std, parameterization="mup",
               base_width=task.base_width, zero_readout=True)


def train_networks(task: Task, width: int, keys, data, learning_rate: float) -> np.ndarray:
    """Flax muP networks, one per key, trained by their optax SGD (vmapped over the keys): test
    outputs ``(members, records, n_test)`` after ``record_every``, ``2 record_every``, ... steps.

    The readout bias is set to 0 after initialisation (the readout weights are already 0), so every
    network starts from zero outputs as the particles do; a network with another initial bias is
    the same network with its targets shifted by it.
    """
    x, y, x_test, _ = (jnp.asarray(a, jnp.float32) for a in data)
    spec = spec_of(task, width)
    module = spec.flax()
    params = jax.vmap(module.init, (0, None))(keys, x)
    params["params"]["readout"]["bias"] = jnp.zeros_like(params["params"]["readout"]["bias"])
    out = fit_ensemble(_loss(module), params, spec.optimizer("sgd", learning_rate), task.steps,
                       record=_test_outputs(module), record_every=task.record_every, args=(x, y[:, None], x_test))
    return np.asarray(out.records, np.float64)[:, 1:]


@lru_cache(maxsize=None)
def _loss(module):
    return lambda p, x, y, x_test: mse(module.apply(p, x), y)


@lru_cache(maxsize=None)
def _test_outputs(module):
    return lambda p, x, y, x_test: module.apply(p, x_test)[:, 0]


def ntk_limit_errors(task: Task, data, lr_fraction: float) -> tuple[float, float]:
    """The NTK limit's test RMSE at its best step (``t = 2^k`` or ``t -> infinity``) and after the
    limit's steps: closed-form NTK gradient descent from zero outputs (NTK parameterization,
    random readout), discrete steps of ``lr_fraction`` of the stability limit."""
    x, y, x_test, y_test = data
    kernel = MLP(1, 1, "erf", W_std=task.W_std, b_std=task.b_std).stax()[2]
    k_train, k_test = (np.asarray(kernel(a, b, "ntk"), np.float64) for a, b in ((x, None), (x_test, x)))
    limit = gradient_descent_mse(k_train, y[:, None], stable_step(k_train, lr_fraction), discrete=True)

    def rmse(t):
        return float(np.sqrt(np.mean((limit(t, k_test_train=k_test)[1][:, 0] - y_test) ** 2)))

    return min([rmse(2**k) for k in range(25)] + [rmse(None)]), rmse(task.steps)


def measure(config: Config, streams: Streams) -> Limit:
    task = config.line
    data = task_data(task, streams.numpy("limit_inputs"))
    rules = {q: rule(task, q) for q in config.nodes}
    lr = limit_learning_rate(task, rules[config.nodes[-1]], data[0])
    runs = {q: limit_descent(task, particles, data, lr) for q, particles in rules.items()}
    networks = np.empty((len(config.widths), config.seeds, task.steps // task.record_every, task.n_test))
    with progress(len(config.widths), "muP networks against their limit") as bar:
        for i, width in enumerate(config.widths):
            keys = jnp.stack([streams.network("limit_networks", width, s) for s in range(config.seeds)])
            networks[i] = train_networks(task, width, keys, data, lr)
            bar.update()
    line = {"data": data, "learning_rate": lr, "test": {q: r.test for q, r in runs.items()},
            "particles": {q: len(p.weights) for q, p in rules.items()},
            "train_loss": runs[config.nodes[-1]].train_loss, "networks": networks,
            "ntk_best": ntk_limit_errors(task, data, config.ntk_lr_fraction)[0]}
    return Limit(line, _plane(config, streams))


def _plane(config: Config, streams: Streams) -> dict:
    """Both limits' test RMSE on the two-dimensional task, per sample size and draw."""
    task, rng = config.plane, streams.numpy("limit_draws")
    shape = (len(config.sample_sizes), config.draws)
    mup, ntk_best, ntk_same, loss = np.empty(shape), np.empty(shape), np.empty(shape), np.empty(shape)
    falling = np.empty(shape, bool)
    rule_error = None
    coarse, fine = (rule(task, q) for q in config.plane_nodes)
    with progress(mup.size, "muP and NTK limits, two dimensions") as bar:
        for i, n in enumerate(config.sample_sizes):
            for j in range(config.draws):
                data = task_data(task, rng, n)
                lr = limit_learning_rate(task, coarse, data[0])
                run = limit_descent(task, coarse, data, lr)
                mup[i, j] = np.sqrt(np.mean((run.test[-1] - data[3]) ** 2))
                loss[i, j] = run.train_loss[-1]
                falling[i, j] = bool(np.all(np.diff(run.train_loss) <= 0))
                ntk_best[i, j], ntk_same[i, j] = ntk_limit_errors(task, data, config.ntk_lr_fraction)
                if n == task.n_train and j == 0:
                    finer = limit_descent(task, fine, data, lr)
                    rule_error = float(np.sqrt(np.mean((finer.test[-1] - run.test[-1]) ** 2)))
                bar.update()
    return {"mup": mup, "ntk_best": ntk_best, "ntk_same_steps": ntk_same, "train_loss": loss,
            "rule_error": rule_error, "loss_falls_every_step": falling}


def _rms(a, axis=-1):
    return np.sqrt(np.mean(np.asarray(a) ** 2, axis=axis))


def findings(config: Config, result: Limit) -> Findings:
    line, plane, task = result.line, result.plane, config.line
    limit = line["test"][config.nodes[-1]]                        # (records, n_test)
    # The rule's error: each refinement against the finest; the finest's own error is bounded by
    # the last refinement's change (the changes shrink several-fold per doubling).
    rule_change = {q: _rms(line["test"][q][-1] - limit[-1]) for q in config.nodes[:-1]}
    limit_error = rule_change[config.nodes[-2]]
    distance = _rms(line["networks"] - limit[None, None])         # (widths, seeds, records)
    final = distance[..., -1]
    rate = fit_finite(config.widths, final)
    reach = limit_distance(config.widths, final)
    d_inf, c2 = [reach["d_inf"], *reach["ci"]], reach["c2"]
    y_test = line["data"][3]
    limit_rmse = float(_rms(limit[-1] - y_test))
    mean_distance = _rms(line["networks"][..., -1, :].mean(axis=1) - limit[-1])   # (widths,)
    # The ensemble mean's squared distance is bias^2 + (trace of the variance) / seeds; the
    # second is estimated from the seeds' spread, leaving the bias.
    spread = line["networks"][..., -1, :].var(axis=1, ddof=1).mean(axis=-1) / config.seeds
    bias2 = mean_distance**2 - spread

    log_ratio = np.log(plane["mup"] / plane["ntk_best"])            # (sizes, draws)
    at = config.sample_sizes.index(config.plane.n_train)
    ratio_mean, ratio_ci = t_interval(log_ratio[at])
    # The rule's error moves the muP limit's RMSE by at most its own size: widen by it.
    slack = float(np.log1p(plane["rule_error"] / np.min(plane["mup"][at])))
    ratio_ci = (ratio_ci[0] - slack, ratio_ci[1] + slack)

    claims = [
        Claim.of_fit(rate, id="mup_limit_convergence", section=SECTION,
                     statement=f"muP networks (one hidden erf layer, zero readout) after {task.steps} SGD steps: "
                               "RMS distance of test outputs from the computed infinite-width muP network",
                     prediction="falls as width^(-1/2): a mean over N units fluctuates by N^(-1/2)",
                     expected=-0.5, tolerance=config.exponent_tolerance),
        Claim(id="mup_networks_reach_limit", section=SECTION,
              statement="the same distance at infinite width, D_inf in D^2 = D_inf^2 + c^2 / N",
              prediction="D_inf = 0: the computed limit is the networks' limit", expected=0.0,
              measured=d_inf[0], ci=(d_inf[1], d_inf[2]), relation="<=",
              tolerance=config.limit_resolution * limit_rmse,
              reason=f"a resolution: {config.limit_resolution:g} of the limit's RMS test error",
              interval_method=f"weighted least squares of D^2 on 1/N over {len(config.widths)} widths, "
                              f"{config.seeds} networks each (normal interval), square-rooted",
              n_seeds=config.seeds, fit_range=(config.widths[0], config.widths[-1])),
        Claim(id="mup_limit_beats_ntk", section=SECTION,
              statement=f"two dimensions, y = tanh({fmt(config.plane.sharpness)} <u, x>), "
                        f"{config.plane.n_train} training inputs: log(test RMSE of the muP limit / test RMSE "
                        "of the NTK limit at its best step)",
              prediction="< 0: learned features beat the fixed kernel where the target depends on one direction",
              expected=0.0, measured=ratio_mean, ci=ratio_ci, relation="<=", tolerance=0.0,
              interval_method=f"Student-t over {config.draws} independent tasks, widened by the rule's "
                              "measured error", n_seeds=config.draws),
    ]
    series = {"limit": {
        "line": {"widths": list(config.widths), "nodes": list(config.nodes), "learning_rate": line["learning_rate"],
                 "distance": distance, "rule_change": {str(q): v for q, v in rule_change.items()},
                 "limit_error_bound": limit_error, "limit_test_rmse": limit_rmse,
                 "ensemble_mean_distance": mean_distance, "ensemble_bias_squared": bias2,
                 "d_inf": d_inf, "c2": c2, "fit": None if rate is None else rate.as_dict(),
                 "limit_train_loss_final": float(line["train_loss"][-1])},
        "plane": {"sample_sizes": list(config.sample_sizes), "test_rmse/mup_limit": plane["mup"],
                  "test_rmse/ntk_limit_best": plane["ntk_best"],
                  "test_rmse/ntk_limit_same_steps": plane["ntk_same_steps"],
                  "mup_limit_train_loss": plane["train_loss"], "rule_error": plane["rule_error"],
                  "loss_falls_every_step": plane["loss_falls_every_step"]}}}
    figure = Figure("limit", _figure(config, distance, mean_distance, rule_change, plane),
                    "Left: RMS distance of muP networks' test outputs from the computed infinite-width network, "
                    "against width, after each recorded step count (geometric mean over seeds; dashed: the "
                    "ensemble mean of all seeds after the last step; dotted: width^(-1/2)). Middle: the rule's "
                    "change from the finest rule against nodes per coordinate. Right: test RMSE of the two "
                    "limits against the number of training inputs in two dimensions (mean over tasks, bars: "
                    "range).")
    body = _prose(config, result, distance, rate, d_inf, c2, limit_rmse, limit_error, rule_change, mean_distance,
                  bias2, log_ratio, ratio_mean, ratio_ci)
    return Findings(claims, [Section(SECTION, body, [figure])], series)


def _figure(config: Config, distance, mean_distance, rule_change, plane):
    import matplotlib.pyplot as plt

    task = config.line
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    w = np.asarray(config.widths, float)
    ax = axes[0]
    for k in range(distance.shape[-1]):
        ax.plot(w, np.exp(np.log(distance[..., k]).mean(axis=1)), "o-", ms=3, color=f"C{k}",
                label=f"step {(k + 1) * task.record_every}")
    ax.plot(w, mean_distance, "s--", ms=3, color="k", label=f"ensemble mean of {config.seeds}, last step")
    ref = distance[0, :, -1].mean() * (w / w[0]) ** -0.5
    ax.plot(w, ref, ":", color="gray", label="width^(-1/2)")
    ax.set(xscale="log", yscale="log", xlabel="width", ylabel="RMS distance from the limit",
           title="one dimension: networks against the limit")
    ax.set_xscale("log", base=2)
    ax.legend(fontsize=7)
    ax = axes[1]
    nodes = list(rule_change)
    ax.semilogy(nodes, [rule_change[q] for q in nodes], "o-")
    ax.set(xlabel="Gauss-Hermite nodes per coordinate", ylabel=f"RMS change from {config.nodes[-1]} nodes",
           title="the rule's convergence")
    ax = axes[2]
    n = np.asarray(config.sample_sizes, float)
    for key, label, c in (("mup", "muP limit", "C1"), ("ntk_best", "NTK limit, best step", "C0"),
                          ("ntk_same_steps", f"NTK limit, step {config.plane.steps}", "C2")):
        v = plane[key]
        m = v.mean(axis=1)
        ax.errorbar(n, m, yerr=[m - v.min(axis=1), v.max(axis=1) - m], fmt="o-", ms=4, capsize=2, color=c,
                    label=label)
    ax.set(xscale="log", yscale="log", xlabel="training inputs", ylabel="test RMSE",
           title=f"two dimensions: y = tanh({fmt(config.plane.sharpness)} <u, x>)")
    ax.set_xscale("log", base=2)
    ax.legend(fontsize=7)
    for a in axes:
        a.grid(True, which="both", alpha=0.25)
    fig.tight_layout()
    return fig


def _prose(config, result, distance, rate, d_inf, c2, limit_rmse, limit_error, rule_change, mean_distance, bias2,
           log_ratio, ratio_mean, ratio_ci) -> str:
    line, plane, task, p = result.line, result.plane, config.line, config.plane
    scaled = distance[..., -1].mean(axis=1) * np.sqrt(np.asarray(config.widths, float))
    closer = distance[..., -1].mean(axis=1) / mean_distance
    rows = [[w, mean_sd(distance[i, :, -1], ".3g", ".2g"), f"{scaled[i]:.3g}",
             f"{mean_distance[i]:.3g}", f"{bias2[i]:.2e}"] for i, w in enumerate(config.widths)]
    table = markdown_table(["width", "distance (mean +- sd)", "sqrt(N) x distance", f"mean of {config.seeds}: distance",
                            f"mean of {config.seeds}: bias^2 estimate"], rows)
    rule_rows = markdown_table(["nodes per coordinate", "particles", f"RMS change from {config.nodes[-1]} nodes"],
                               [[q, line["particles"][q], f"{v:.2e}"]
                                for q, v in rule_change.items()])
    sweep = markdown_table(["training inputs", "muP limit", "NTK limit, best step", f"NTK limit, step {p.steps}",
                            "log ratio (muP / NTK best)", "muP limit's training loss"],
                           [[n, mean_sd(plane["mup"][i], ".3g", ".2g"), mean_sd(plane["ntk_best"][i], ".3g", ".2g"),
                             mean_sd(plane["ntk_same_steps"][i], ".3g", ".2g"), mean_sd(log_ratio[i], ".2f", ".2f"),
                             f"{np.max(plane['train_loss'][i]):.1e} (max)"]
                            for i, n in enumerate(config.sample_sizes)])
    lo, hi = ratio_ci
    return f"""
Under muP a one-hidden-layer network with a zero readout is a set of particles: each hidden unit
(w_i, b_i, v_i) moves by an O(1) amount per step, driven by the residual that all of them share, and
the network is their mean (`replication.mean_field`; a test checks that a Flax network trained by its own
optax SGD is its particle system to float64 rounding). The infinite-width network is the same dynamics
with the mean over units replaced by the expectation over their initial law, w ~ N(0, {fmt(task.W_std)}^2 / d),
b ~ N(0, {fmt(task.b_std)}^2), v = 0. For erf units every particle's trajectory is an analytic function of its
initial (w, b), and a tensor Gauss-Hermite rule computes the expectation; another test checks the rule
against a closed form (a linear activation, whose second moments follow an exact recursion).

**One dimension.** y = tanh({fmt(task.sharpness)} x), {task.n_train} training and {task.n_test} test inputs
x ~ N(0, 1), base width {task.base_width}, {task.steps} steps of SGD with base step {fmt(line['learning_rate'])}
({fmt(task.lr_fraction)} of the stability limit of the limit's kernel at initialisation, the same for every width;
muP's factors carry it), in float64 for the limit. The limit's training loss after the last step is
{line['train_loss'][-1]:.2e}; its RMS test error is {fmt(limit_rmse)}. The rule, refined:

{rule_rows}

The finest rule's own error is below the last refinement's change, {limit_error:.1e}: the changes shrink
several-fold per doubling. Trained Flax networks (float32, {config.seeds} per width) against it, after the last
step:

{table}

A single network's distance falls as width^({fit_text(rate)}) (theory: -1/2, the fluctuation of a mean over N
units); sqrt(N) x distance runs from {scaled.min():.3g} to {scaled.max():.3g}. Fitting D^2 = D_inf^2 + c^2 / N:
D_inf = {fmt(d_inf[0])} [{fmt(d_inf[1])}, {fmt(d_inf[2])}], c^2 = {fmt(c2)}; the interval's upper end is
{d_inf[2] / limit_rmse:.1%} of the limit's RMS test error. The ensemble mean of {config.seeds} networks is
{closer.min():.1f} to {closer.max():.1f} times closer than one network (sqrt({config.seeds}) = {np.sqrt(config.seeds):.1f}
for independent fluctuations); its bias, E f_N - f_inf, is O(1/N) by theory. The column "bias^2 estimate" (the
mean's squared distance minus the seeds' variance over {config.seeds}) is that bias squared with its noise;
where it is negative or comparable with the variance term, {config.seeds} networks do not resolve it.

**Two dimensions: where features matter.** y = tanh({fmt(p.sharpness)} <u, x>) with x ~ N(0, I_2) and a random
unit direction u; the muP limit from {config.plane_nodes[0]} nodes per coordinate ({p.steps} steps of
{fmt(p.lr_fraction)} of its initial kernel's stability limit; the training loss falls at every step in
{int(plane['loss_falls_every_step'].sum())} of its {plane['loss_falls_every_step'].size} runs), the NTK
limit from neural-tangents' closed-form NTK of the same units under NTK parameterization with a random
readout, by gradient descent from zero outputs (step {fmt(config.ntk_lr_fraction)} of its stability limit), stopped
at its best step on the test set (an oracle that favours the NTK), {config.draws} independent tasks per size:

{sweep}

At {p.n_train} training inputs the rule with {config.plane_nodes[-1]} nodes moves the muP limit's test outputs by
{plane['rule_error']:.1e} (RMS), which the claim's interval includes. log(muP / NTK best) =
{fmt(ratio_mean)} [{fmt(lo)}, {fmt(hi)}]: the muP limit's test error is {np.exp(ratio_mean):.2f} times the NTK
limit's. On the one-dimensional task the NTK limit's test RMSE at its best step is {fmt(line['ntk_best'])},
against the muP limit's {fmt(limit_rmse)}{_one_dimension(line['ntk_best'], limit_rmse, task.n_train)}
"""


def _one_dimension(ntk: float, mup: float, n: int) -> str:
    if ntk >= mup:
        return ": the muP limit is ahead there too."
    return (f": there the kernel is ahead, by {mup / ntk:.1f} times. A kernel regression in one dimension "
            f"already resolves a smooth target from {n} points; the muP limit's advantage in two dimensions "
            "is the direction it learns.")
