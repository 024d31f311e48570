"""Training to convergence: the kernel stays put, the weights barely move, the network stays linear.

One network at each width is trained by full-batch gradient descent until
the slowest mode of the limit's dynamics has lost a factor ``reduction``
of its residual; its linearisation ``f(theta_0) + J(theta_0) (theta -
theta_0)`` (Lee et al. 2019) is trained from the same init by the same
steps. Measured against width: the relative change of the empirical NTK on
the training and test inputs, of all weights (and of each layer's), and the
largest RMS gap between the network's and the linearisation's outputs over
the trajectory.

Random streams: ``train_inputs`` and ``test_inputs`` (the task's data),
``stability`` (the networks).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
import optax

from replication.dynamics import stable_step
from replication.experiments.ntk.task import Task, training_data
from replication.kernels import closed_form, empirical_ntk
from replication.report import Claim, Figure, Findings, Section, fit_text, fmt, loglog_figure, markdown_table
from replication.stats import EXPONENT_BAND, fit_finite, relative_frobenius_error
from replication.sweep import Streams, progress
from replication.train import fit, linearized, mse

SECTION = "The kernel stays put in training, and the network stays linear"
MEASURES = ("kernel_change", "weight_change", "train_gap", "test_gap")


@dataclass(frozen=True)
class Config:
    task: Task = Task()
    widths: tuple[int, ...] = (16, 64, 256, 1024, 4096, 16384)  # 3 decades
    depths: tuple[int, ...] = (1, 2)
    max_width_deep: int = 1024     # depth >= 2 costs N^2 per step, twice (network, linearisation)
    activations: tuple[str, ...] = ("relu", "erf")
    smooth_activations: tuple[str, ...] = ("erf",)  # those whose kernel change is claimed at width^(-1)
    seeds: int = 8                 # independent networks per width: the replicates behind each interval
    # Learning rate, as a fraction of the stability limit 2 n / lambda_max of the limit's training
    # NTK: 1/2 removes the top mode in one step.
    step_fraction: float = 0.5
    reduction: float = 1e3         # "converged": the slowest mode's residual has fallen by this factor
    record_every: int = 10         # steps between recorded outputs
    exponent_tolerance: float = EXPONENT_BAND


@dataclass
class Sweep:
    """One (activation, depth) across widths."""

    widths: list[int]
    learning_rate: float
    steps: int
    measures: dict[str, np.ndarray]  # MEASURES -> (n_widths, seeds)
    loss_ratio: np.ndarray           # (n_widths, seeds) final / initial training loss
    layers: list[dict[str, float]] = field(default_factory=list)  # per width: layer -> relative change
    diverged: int = 0                # runs of network or linearisation that diverged


def steps_to_converge(kernel: np.ndarray, learning_rate: float, reduction: float, every: int) -> int:
    """Steps for the slowest mode's residual to fall by ``reduction``, rounded up to ``every``.

    Under ``mse`` (1/2 mean over ``n`` outputs) a kernel mode's residual is
    multiplied by ``1 - eta lambda / n`` per step.
    """
    a_min = learning_rate * np.linalg.eigvalsh(kernel)[0] / kernel.shape[0]
    steps = int(np.ceil(np.log(reduction) / -np.log1p(-a_min)))
    return every * -(-steps // every)


def expected_weight_exponent(depth: int) -> float:
    """Relative change of all weights: ``N^(-1/2)`` at depth 1, ``N^(-1)`` deeper.

    Every parameter moves by ``O(1)`` in total (``|grad|`` is ``O(1)`` in NTK
    parameterization and training takes ``O(1)`` steps of ``O(1)`` size).
    The first layer (``N x d``) and the readout (``N``) have norm ``sqrt(N)``,
    so they move as ``N^(-1/2)`` relative; an ``N x N`` hidden matrix has norm
    ``N`` and moves as ``N^(-1)``, and dominates the total from depth 2 on.
    """
    return -0.5 if depth == 1 else -1.0


def measure(config: Config, streams: Streams) -> dict[tuple[str, int], Sweep]:
    """A ``Sweep`` per (activation, depth); depth >= 2 stops at ``max_width_deep``."""
    x_train, y_train, x_test = training_data(config.task, streams)
    sweeps = {}
    for a, d in itertools.product(config.activations, config.depths):
        widths = [w for w in config.widths if d == 1 or w <= config.max_width_deep]
        spec = config.task.network(widths[0], d, a)
        k_train = np.asarray(closed_form(spec, x_train))
        lr = stable_step(k_train, config.step_fraction)
        sweep = Sweep(widths, lr, steps_to_converge(k_train, lr, config.reduction, config.record_every),
                      {m: np.empty((len(widths), config.seeds)) for m in MEASURES},
                      np.empty((len(widths), config.seeds)))
        optimizer = optax.sgd(lr)
        with progress(len(widths) * config.seeds, f"ntk training {a} depth {d}") as bar:
            for i, w in enumerate(widths):
                module = spec.replace(width=w).flax()
                per_seed = []
                for s in range(config.seeds):
                    params = module.init(streams.network("stability", w, s), x_train)
                    r = train_and_linearise(module, params, x_train, y_train, x_test, optimizer, sweep.steps,
                                            config.record_every)
                    for m in MEASURES:
                        sweep.measures[m][i, s] = r[m]
                    sweep.loss_ratio[i, s], sweep.diverged = r["loss_ratio"], sweep.diverged + r["diverged"]
                    per_seed.append(r["layers"])
                    bar.update()
                sweep.layers.append({k: float(np.exp(np.mean(np.log([p[k] for p in per_seed]))))
                                     for k in per_seed[0]})
        sweeps[a, d] = sweep
    return sweeps


def train_and_linearise(module, params, x_train, y_train, x_test, optimizer: optax.GradientTransformation,
                        steps: int, every: int) -> dict:
    """Train a network and its linearisation by full-batch GD; what moved and how far apart they are.

    Both runs use the same optax optimizer and record the outputs on the
    training and test inputs every ``every`` steps; the linearisation (Lee et
    al. 2019) is ``f(theta_0) + J(theta_0) (theta - theta_0)``.
    """
    xs = jnp.concatenate([x_train, x_test])
    fns = _linearisation_fns(module.apply)
    net = fit(fns["net_loss"], params, optimizer, steps, record=fns["net_record"], record_every=every,
              args=(x_train, y_train, xs))
    lin = fit(fns["lin_loss"], params, optimizer, steps, record=fns["lin_record"], record_every=every,
              args=(params, x_train, y_train, xs))
    k0 = empirical_ntk(module.apply, params, xs)
    k1 = empirical_ntk(module.apply, net.params, xs)
    gap = np.asarray(net.records - lin.records)
    n = x_train.shape[0]
    leaves0 = jax.tree_util.tree_leaves_with_path(params)
    leaves1 = jax.tree_util.tree_leaves(net.params)
    per_layer = {}
    for (path, a0), a1 in zip(leaves0, leaves1):
        name = "/".join(str(getattr(k, "key", k)) for k in path[1:])
        if name.endswith("kernel"):
            per_layer[name.rsplit("/", 1)[0]] = float(jnp.linalg.norm(a1 - a0) / jnp.linalg.norm(a0))
    flat0 = jnp.concatenate([a.ravel() for _, a in leaves0])
    flat1 = jnp.concatenate([a.ravel() for a in leaves1])
    return {
        "kernel_change": relative_frobenius_error(k1, k0),
        "weight_change": float(jnp.linalg.norm(flat1 - flat0) / jnp.linalg.norm(flat0)),
        "layers": per_layer,
        "train_gap": float(np.sqrt(np.mean(gap[:, :n] ** 2, axis=1)).max()),
        "test_gap": float(np.sqrt(np.mean(gap[:, n:] ** 2, axis=1)).max()),
        "loss_ratio": float(net.losses[-1] / net.losses[0]),
        "diverged": bool(net.diverged) or bool(lin.diverged),
    }


@lru_cache(maxsize=None)
def _linearisation_fns(apply_fn) -> dict:
    """The losses and records of ``train_and_linearise``, one set of function objects per network,
    so that its compiled programs are reused across seeds."""
    f_lin = linearized(apply_fn)
    return {"net_loss": lambda p, x, y, xs: mse(apply_fn(p, x), y),
            "net_record": lambda p, x, y, xs: apply_fn(p, xs)[:, 0],
            "lin_loss": lambda p, p0, x, y, xs: mse(f_lin(p, p0, x), y),
            "lin_record": lambda p, p0, x, y, xs: f_lin(p, p0, xs)[:, 0]}


def findings(config: Config, sweeps: dict[tuple[str, int], Sweep]) -> Findings:
    """Per (activation, depth): the kernel's change ``<~ width^(-1/2)`` (and ``~ width^(-1)`` for a
    smooth activation), the weights' at ``expected_weight_exponent``, the linearisation's gap
    ``<~ width^(-1/2)``; the figure, the tables and the series."""
    fits = {(a, d, m): fit_finite(s.widths, s.measures[m]) for (a, d), s in sweeps.items() for m in MEASURES}
    claims = [c for a, d in sweeps for c in _claims(config, a, d, fits)]
    labels = {"kernel_change": "relative change of the NTK",
              "weight_change": "relative change of the weights",
              "test_gap": "sup_t RMS |f - f_lin| on test inputs"}
    panels = {label: {f"{a}, depth {d}": (s.widths, s.measures[m], fits[a, d, m])
                      for (a, d), s in sweeps.items()} for m, label in labels.items()}
    figure = loglog_figure(panels, xlabel="width", ylabel="relative change / gap",
                           reference_exponent=-0.5, reference_label="width^(-1/2)")
    series = {f"training/{a}/depth{d}": {
        "width": s.widths, "learning_rate": s.learning_rate, "steps": s.steps,
        **{m: s.measures[m] for m in MEASURES}, **{f"{m}_fit": fits[a, d, m] for m in MEASURES},
        "final_loss_ratio": s.loss_ratio, "diverged": s.diverged, "layers": s.layers}
        for (a, d), s in sweeps.items()}
    section = Section(SECTION, _prose(config, sweeps, fits), [Figure(
        "training_stability", figure,
        "How far a network moves in training to convergence, by width: its NTK, its weights, and "
        "the distance of its outputs from its linearisation's. Dashed: width^(-1/2).")])
    return Findings(claims, [section], series)


def _claims(config: Config, a: str, d: int, fits: dict) -> list[Claim]:
    band = config.exponent_tolerance
    f = fits[a, d, "kernel_change"]
    # One measurement, one claim: for a smooth activation theory says more than the bound,
    # and the sharper statement is the claim.
    if a in config.smooth_activations:
        claims = [Claim.of_fit(
            f, id=f"ntk_training_kernel_change_rate_{a}_depth{d}", section=SECTION,
            statement=f"NTK's change over training, smooth activation ({a}, depth {d})",
            prediction="change ~ width^(-1) (Dyer & Gur-Ari 2020)", expected=-1.0, tolerance=band)]
    else:
        claims = [Claim.of_fit(
            f, id=f"ntk_training_kernel_change_{a}_depth{d}", section=SECTION,
            statement=f"NTK's change over training to convergence ({a}, depth {d})",
            prediction="change <~ width^(-1/2) (Lee et al. 2019, Thm 2.1)", expected=-0.5, tolerance=band,
            relation="<=")]
    p = expected_weight_exponent(d)
    claims.append(Claim.of_fit(
        fits[a, d, "weight_change"], id=f"ntk_training_weight_change_{a}_depth{d}", section=SECTION,
        statement=f"Relative change of all weights in training ({a}, depth {d})",
        prediction=f"change ~ width^({fmt(p)})", expected=p, tolerance=band))
    claims.append(Claim.of_fit(
        fits[a, d, "test_gap"], id=f"ntk_training_linearisation_gap_{a}_depth{d}", section=SECTION,
        statement=f"Trained network vs its linearisation, test outputs, sup over time ({a}, depth {d})",
        prediction="gap <~ width^(-1/2) (Lee et al. 2019, Thm 2.1)", expected=-0.5, tolerance=band,
        relation="<="))
    return claims


def _layer_rows(sweeps: dict[tuple[str, int], Sweep]) -> list[list]:
    """Per layer: its fitted slope of relative change against width, and the change at both ends."""
    rows = []
    for (a, d), s in sweeps.items():
        for name in s.layers[0]:
            changes = np.array([s.layers[i][name] for i in range(len(s.widths))])
            slope = np.polyfit(np.log(s.widths), np.log(changes), 1)[0]
            rows.append([a, d, name, f"{slope:+.2f}", changes[0], changes[-1]])
    return rows


def _prose(config: Config, sweeps: dict[tuple[str, int], Sweep], fits: dict) -> str:
    task = config.task
    rows = [[a, d, f"{s.widths[0]}-{s.widths[-1]}", fmt(s.learning_rate), s.steps,
             *(fit_text(fits[a, d, m], "+.2f") for m in MEASURES),
             f"{float(np.max(s.loss_ratio)):.1e}", s.diverged] for (a, d), s in sweeps.items()]
    return f"""
Each network (NTK parameterization, W_std = {" and ".join(f"{fmt(w)} for {a}" for a, w in task.W_std)},
b_std = {fmt(task.b_std)}) is trained by full-batch gradient descent
(optax SGD) on `mse` over {task.n_train} inputs on the sphere in R^{task.input_dim}, with targets
y = sin(x_1) + cos(x_2) / 2. The step is {fmt(config.step_fraction)} of the stability limit
2 n / lambda_max of the closed-form training NTK, and training runs until the slowest mode of the
limit's dynamics has lost a factor {config.reduction:g} of its residual ("to convergence": the
final / initial loss column). Its linearisation f(theta_0) + J(theta_0)(theta - theta_0) (Lee et
al. 2019) is trained from the same init with the same steps; the gap is the RMS difference of
their outputs on the {task.n_train} training and {task.n_test} test inputs, maximised over the
trajectory (recorded every {config.record_every} steps). {config.seeds} networks per width;
exponents are fitted as elsewhere.

**What theory says.** Lee et al. (2019, Theorem 2.1) bound the NTK's change and the gap to the
linearisation by O(width^(-1/2)): these are the `<=` claims. The bound is not the rate. For smooth
activations the kernel's change is O(width^(-1)) (Dyer and Gur-Ari 2020; Huang and Yau 2020):
each unit's contribution to Theta moves by O(width^(-1/2)), but with a sign that is independent
across units, so the changes add up as a random walk. ReLU's derivative jumps at 0: a fraction
O(width^(-1/2)) of the units cross the kink, each changing Theta by O(1/width), again with random
signs, which gives about width^(-3/4); the measured ReLU slopes lie between -1/2 and -1, and
no claim is made on them. Weights: see below.

{markdown_table(["activation", "depth", "widths", "step", "steps", "NTK change", "weights change",
                 "gap (train)", "gap (test)", "worst final / initial loss", "diverged"], rows)}

**Which weights move.** Every parameter moves by O(1) in total in NTK parameterization. Relative
to its norm at init, a layer whose fan-in or fan-out is fixed (the first layer, N x d, and the
readout, N x 1; norm sqrt(N)) moves as width^(-1/2), and an N x N hidden matrix (norm N) as
width^(-1). Fitted slopes per layer (geometric mean over seeds):

{markdown_table(["activation", "depth", "layer", "slope", "change at narrowest", "change at widest"],
                _layer_rows(sweeps))}
"""
