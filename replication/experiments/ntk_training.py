"""The NTK in training: it stays put, it fixes the dynamics, and where it fluctuates.

Parts of the ``ntk`` experiment beyond the kernel at initialisation (see
``replication.experiments.ntk``); each function returns ``(claims,
sections, series)`` for the report.

* ``jacot_figure``: Jacot et al. 2018, Figure 1.
* ``stability_study``: one network trained by full-batch gradient descent to
  convergence, its linearisation trained the same way; how far the kernel,
  the weights and the outputs move, against width.
* ``ensemble_study``: the mean and variance of an ensemble of trained
  networks against ``nt.predict.gradient_descent_mse_ensemble``.
* ``fluctuation_study``: the NTK diagonal's fluctuations against depth and
  width (Hanin and Nica 2019).
"""
from __future__ import annotations

import itertools
from functools import lru_cache

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from jax.experimental import enable_x64

from replication.arch import MLP, training_layout
from replication.data import sphere_inputs
from replication.kernels import empirical_ntk, empirical_ntk_row, over_initialisations
from replication.report import Claim, Figure, Section, fmt, loglog_figure, markdown_table
from replication.stats import fit_power_law, relative_frobenius_error
from replication.sweep import network_key, progress
from replication.train import fit, fit_ensemble, linearized, mse, mse_loss

SECTION_JACOT = "Jacot et al. 2018, Figure 1"
SECTION_STABLE = "The kernel stays put in training, and the network stays linear"
SECTION_ENSEMBLE = "An ensemble of trained networks follows the closed-form dynamics"
SECTION_FLUCT = "Fluctuations grow with depth / width"


def circle(angles) -> jax.Array:
    """Points ``(cos g, sin g)`` on the unit circle, shape ``(len(angles), 2)``."""
    g = jnp.asarray(angles, dtype=jnp.float32)
    return jnp.stack([jnp.cos(g), jnp.sin(g)], axis=1)


def step_size(kernel: np.ndarray, fraction: float) -> float:
    """The learning rate that moves the kernel's top mode by ``fraction`` of its residual per step.

    Under ``mse`` (1/2 mean over ``n`` outputs) one gradient step multiplies
    a kernel mode's residual by ``1 - eta lambda / n``; ``fraction < 2`` is
    stable, 1 removes the top mode in one step.
    """
    return float(fraction * kernel.shape[0] / np.linalg.eigvalsh(kernel)[-1])


def steps_to_converge(kernel: np.ndarray, learning_rate: float, reduction: float, every: int) -> int:
    """Steps for the slowest mode's residual to fall by ``reduction``, rounded up to ``every``."""
    a_min = learning_rate * np.linalg.eigvalsh(kernel)[0] / kernel.shape[0]
    steps = int(np.ceil(np.log(reduction) / -np.log1p(-a_min)))
    return every * -(-steps // every)


# ---------------------------------------------------------------------------
# Jacot et al. 2018, Figure 1.

def jacot_figure(config):
    """Theta(x0, x(gamma)) on the unit circle at two widths, at init and after training."""
    spec = MLP(config.jacot_widths[0], config.jacot_depth, "relu", W_std=config.jacot_W_std,
               b_std=config.jacot_b_std)
    gamma = np.linspace(-np.pi, np.pi, config.jacot_angles)
    x0, xg = circle([0.0]), circle(gamma)
    x_train = circle(config.jacot_train_angles)
    y_train = jnp.asarray(config.jacot_train_targets, dtype=jnp.float32)[:, None]
    kernel_fn = spec.stax()[2]
    limit = np.asarray(kernel_fn(x0, xg, "ntk"))[0]
    lr = step_size(np.asarray(kernel_fn(x_train, None, "ntk")), config.jacot_lr_fraction)
    curves, losses = {}, {}
    with progress(len(config.jacot_widths) * config.jacot_inits, "ntk jacot figure") as bar:
        optimizer = optax.sgd(lr)
        for width in config.jacot_widths:
            module = spec.replace(width=width).flax()
            at = np.empty((config.jacot_inits, 2, len(gamma)))
            final = np.empty(config.jacot_inits)
            for i in range(config.jacot_inits):
                params = module.init(network_key(config.seed + 10, width, i), x0)
                at[i, 0] = np.asarray(empirical_ntk_row(module.apply, params, x0, xg))
                run = fit(mse_loss(module.apply), params, optimizer, config.jacot_steps,
                          args=(x_train, y_train))
                del params
                at[i, 1] = np.asarray(empirical_ntk_row(module.apply, run.params, x0, xg))
                final[i] = float(run.losses[-1]) / float(run.losses[0])
                bar.update()
            curves[width], losses[width] = at, final

    def spread(a):  # per init: relative RMS distance of a curve from the limit
        return np.sqrt(np.mean((a - limit) ** 2, axis=-1)) / np.sqrt(np.mean(limit**2))

    init_spread = {w: spread(a[:, 0]) for w, a in curves.items()}
    moved = {w: np.sqrt(np.mean((a[:, 1] - a[:, 0]) ** 2, axis=-1)) / np.sqrt(np.mean(a[:, 0] ** 2, axis=-1))
             for w, a in curves.items()}
    w_lo, w_hi = config.jacot_widths[0], config.jacot_widths[-1]
    fits = {name: fit_power_law([w_lo, w_hi], np.stack([d[w_lo], d[w_hi]]))
            for name, d in (("init", init_spread), ("moved", moved))}
    claims = [
        Claim(id="ntk_jacot_init_spread", section=SECTION_JACOT,
              statement=f"Spread of Theta(x0, x(gamma)) around the limit, width {w_lo} -> {w_hi}",
              prediction="spread ~ width^(-1/2)", expected=-0.5, measured=fits["init"].exponent,
              ci=fits["init"].ci, tolerance=config.exponent_tolerance),
        Claim(id="ntk_jacot_training_move", section=SECTION_JACOT,
              statement=f"Change of Theta(x0, x(gamma)) in training, width {w_lo} -> {w_hi}",
              prediction="change <~ width^(-1/2) (Jacot et al.: constant in the limit)",
              expected=-0.5, measured=fits["moved"].exponent, ci=fits["moved"].ci,
              tolerance=config.exponent_tolerance, relation="<="),
    ]
    fig, axes = plt.subplots(1, len(config.jacot_widths), figsize=(5.4 * len(config.jacot_widths), 4.0),
                             sharey=True, squeeze=False)
    for ax, (width, a) in zip(axes[0], curves.items()):
        for i in range(a.shape[0]):
            ax.plot(gamma, a[i, 0], color="C0", lw=0.7, alpha=0.8, label="t = 0" if i == 0 else None)
            ax.plot(gamma, a[i, 1], color="C1", lw=0.7, ls="--", alpha=0.8,
                    label=f"t = {config.jacot_steps} steps" if i == 0 else None)
        ax.plot(gamma, limit, "k", lw=2, label="infinite width")
        ax.scatter(config.jacot_train_angles, np.interp(config.jacot_train_angles, gamma, limit),
                   marker="x", color="k", zorder=3, label="training inputs")
        ax.set(xlabel="gamma", title=f"width {width}, {a.shape[0]} initialisations")
        ax.grid(alpha=0.25)
    axes[0, 0].set_ylabel("Theta(x0, x(gamma))")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    rows = [[w, float(np.mean(init_spread[w])), float(np.mean(spread(curves[w][:, 1]))),
             float(np.mean(moved[w])), float(np.max(losses[w]))] for w in config.jacot_widths]
    body = f"""
Jacot et al. (2018) plot the NTK of depth-4 ReLU networks (four affine layers: {config.jacot_depth}
hidden layers and the readout; NTK parameterization, weights N(0, 1) scaled by 1/sqrt(fan-in), bias
scale beta = {fmt(config.jacot_b_std)}) between x0 = (1, 0) and x(gamma) = (cos gamma, sin gamma), for 10
initialisations at widths 500 and 10000, at initialisation and after training, beside the limit. Here:
the same networks (Flax, {config.jacot_inits} initialisations per width, widths
{", ".join(map(str, config.jacot_widths))}), trained by full-batch gradient descent (optax SGD,
{config.jacot_steps} steps of size {fmt(lr)} = {fmt(config.jacot_lr_fraction)} n / lambda_max of the limit's
training kernel) on {len(config.jacot_train_angles)} points of the circle (angles
{", ".join(fmt(a) for a in config.jacot_train_angles)}, targets {", ".join(fmt(t) for t in config.jacot_train_targets)}).
The limit is neural-tangents' closed form; one network's Theta(x0, x(gamma)) is computed exactly, as
the forward-mode derivative of its outputs along its gradient at x0. Spread: relative RMS distance, over the {config.jacot_angles}
angles, of one network's curve from the limit; change: relative RMS distance between one network's
curves before and after training. The exponents are the slopes between the two widths, with a
t-interval over the initialisations.

{markdown_table(["width", "spread at init", "spread after training", "change in training",
                 "worst final / initial loss"], rows)}
"""
    series = {f"jacot/width{w}": {"gamma": gamma, "limit": limit, "theta_init": a[:, 0],
                                   "theta_trained": a[:, 1], "spread_init": init_spread[w],
                                   "change": moved[w], "loss_ratio": losses[w]}
              for w, a in curves.items()}
    series["jacot/fits"] = fits
    return claims, [Section(SECTION_JACOT, body, [Figure(
        "jacot_figure1", fig,
        "Theta(x0, x(gamma)) of depth-4 ReLU networks: thin solid lines at initialisation, dashed "
        "after training, thick black the infinite-width limit (after Jacot et al. 2018, Figure 1).")])], series


# ---------------------------------------------------------------------------
# Stability in training and the linearised dynamics.

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
    """The losses and records of ``train_and_linearise``, one set of function objects per network."""
    f_lin = linearized(apply_fn)
    return {"net_loss": lambda p, x, y, xs: mse(apply_fn(p, x), y),
            "net_record": lambda p, x, y, xs: apply_fn(p, xs)[:, 0],
            "lin_loss": lambda p, p0, x, y, xs: mse(f_lin(p, p0, x), y),
            "lin_record": lambda p, p0, x, y, xs: f_lin(p, p0, xs)[:, 0]}


def training_data(config):
    """Inputs on the sphere (train and test from independent keys) and a smooth target."""
    x_train = sphere_inputs(jax.random.PRNGKey(config.seed + 1), config.n_train, config.input_dim)
    x_test = sphere_inputs(jax.random.PRNGKey(config.seed + 2), config.n_test, config.input_dim)
    return x_train, target(x_train), x_test


def target(x: jax.Array) -> jax.Array:
    """``y = sin(x_1) + cos(x_2) / 2``, shape ``(n, 1)``."""
    return (jnp.sin(x[:, :1]) + 0.5 * jnp.cos(x[:, 1:2])).astype(jnp.float32)


def expected_weight_exponent(depth: int) -> float:
    """Relative change of all weights: ``N^(-1/2)`` at depth 1, ``N^(-1)`` deeper.

    Every parameter moves by ``O(1)`` in total (``|grad|`` is ``O(1)`` in NTK
    parameterization and training takes ``O(1)`` steps of ``O(1)`` size).
    The first layer (``N x d``) and the readout (``N``) have norm ``sqrt(N)``,
    so they move as ``N^(-1/2)`` relative; an ``N x N`` hidden matrix has norm
    ``N`` and moves as ``N^(-1)``, and dominates the total from depth 2 on.
    """
    return -0.5 if depth == 1 else -1.0


def stability_study(config):
    x_train, y_train, x_test = training_data(config)
    measures = ("kernel_change", "weight_change", "train_gap", "test_gap")
    results, settings, layers, losses, diverged = {}, {}, {}, {}, {}
    configs = list(itertools.product(config.train_activations, config.train_depths))
    for a, d in configs:
        widths = [w for w in config.train_widths if d == 1 or w <= config.train_max_width_deep]
        spec = MLP(widths[0], d, a, W_std=config.train_W_std[a], b_std=config.b_std)
        k_train = np.asarray(spec.stax()[2](x_train, None, "ntk"))
        lr = step_size(k_train, config.train_lr_fraction)
        steps = steps_to_converge(k_train, lr, config.train_reduction, config.record_every)
        settings[a, d] = (widths, lr, steps)
        optimizer = optax.sgd(lr)
        out = {m: np.empty((len(widths), config.train_seeds)) for m in measures}
        lay, loss, div = [], np.empty((len(widths), config.train_seeds)), 0
        with progress(len(widths) * config.train_seeds, f"ntk training {a} depth {d}") as bar:
            for i, w in enumerate(widths):
                module = spec.replace(width=w).flax()
                per_seed = []
                for s in range(config.train_seeds):
                    params = module.init(network_key(config.seed + 20, w, s), x_train)
                    r = train_and_linearise(module, params, x_train, y_train, x_test, optimizer, steps,
                                            config.record_every)
                    for m in measures:
                        out[m][i, s] = r[m]
                    loss[i, s], div = r["loss_ratio"], div + r["diverged"]
                    per_seed.append(r["layers"])
                    bar.update()
                lay.append({k: float(np.exp(np.mean(np.log([p[k] for p in per_seed]))))
                            for k in per_seed[0]})
        results[a, d], layers[a, d], losses[a, d], diverged[a, d] = out, lay, loss, div

    fits = {(a, d, m): fit_power_law(settings[a, d][0], results[a, d][m])
            for a, d in configs for m in measures}
    claims = []
    for a, d in configs:
        f = fits[a, d, "kernel_change"]
        claims.append(Claim(
            id=f"ntk_training_kernel_change_{a}_depth{d}", section=SECTION_STABLE,
            statement=f"NTK's change over training to convergence ({a}, depth {d})",
            prediction="change <~ width^(-1/2) (Lee et al. 2019, Thm 2.1)", expected=-0.5,
            measured=f.exponent, ci=f.ci, tolerance=config.exponent_tolerance, relation="<="))
        if a in config.smooth_activations:
            claims.append(Claim(
                id=f"ntk_training_kernel_change_rate_{a}_depth{d}", section=SECTION_STABLE,
                statement=f"NTK's change over training, smooth activation ({a}, depth {d})",
                prediction="change ~ width^(-1) (Dyer & Gur-Ari 2020)", expected=-1.0,
                measured=f.exponent, ci=f.ci, tolerance=config.exponent_tolerance))
        f = fits[a, d, "weight_change"]
        p = expected_weight_exponent(d)
        claims.append(Claim(
            id=f"ntk_training_weight_change_{a}_depth{d}", section=SECTION_STABLE,
            statement=f"Relative change of all weights in training ({a}, depth {d})",
            prediction=f"change ~ width^({fmt(p)})", expected=p, measured=f.exponent, ci=f.ci,
            tolerance=config.exponent_tolerance))
        f = fits[a, d, "test_gap"]
        claims.append(Claim(
            id=f"ntk_training_linearisation_gap_{a}_depth{d}", section=SECTION_STABLE,
            statement=f"Trained network vs its linearisation, test outputs, sup over time ({a}, depth {d})",
            prediction="gap <~ width^(-1/2) (Lee et al. 2019, Thm 2.1)", expected=-0.5,
            measured=f.exponent, ci=f.ci, tolerance=config.exponent_tolerance, relation="<="))

    labels = {"kernel_change": "relative change of the NTK", "weight_change": "relative change of the weights",
              "test_gap": "sup_t RMS |f - f_lin| on test inputs", "train_gap": "sup_t RMS |f - f_lin| on training inputs"}
    panels = {labels[m]: {f"{a}, depth {d}": (settings[a, d][0], results[a, d][m], fits[a, d, m])
                          for a, d in configs} for m in ("kernel_change", "weight_change", "test_gap")}
    figure = loglog_figure(panels, xlabel="width", ylabel="relative change / gap",
                           reference_exponent=-0.5, reference_label="width^(-1/2)")
    rows = []
    for a, d in configs:
        widths, lr, steps = settings[a, d]
        rows.append([a, d, f"{widths[0]}-{widths[-1]}", fmt(lr), steps,
                     *(f"{fits[a, d, m].exponent:+.2f} [{fits[a, d, m].ci[0]:+.2f}, {fits[a, d, m].ci[1]:+.2f}]"
                       for m in measures),
                     f"{float(np.max(losses[a, d])):.1e}", diverged[a, d]])
    layer_rows = []
    for a, d in configs:
        widths = settings[a, d][0]
        names = list(layers[a, d][0])
        for name in names:
            changes = np.array([layers[a, d][i][name] for i in range(len(widths))])
            slope = np.polyfit(np.log(widths), np.log(changes), 1)[0]
            layer_rows.append([a, d, name, f"{slope:+.2f}", changes[0], changes[-1]])
    body = f"""
Each network (NTK parameterization, W_std = {fmt(config.train_W_std['relu'])} for relu and
{fmt(config.train_W_std['erf'])} for erf, b_std = {fmt(config.b_std)}) is trained by full-batch gradient descent
(optax SGD) on `mse` over {config.n_train} inputs on the sphere in R^{config.input_dim}, with targets
y = sin(x_1) + cos(x_2) / 2. The step is {fmt(config.train_lr_fraction)} n / lambda_max of the closed-form
training NTK, and training runs until the slowest mode of the limit's dynamics has lost a factor
{config.train_reduction:g} of its residual ("to convergence": the final / initial loss column). Its
linearisation f(theta_0) + J(theta_0)(theta - theta_0) (Lee et al. 2019) is trained from the same
init with the same steps; the gap is the RMS difference of their outputs on the {config.n_train}
training and {config.n_test} test inputs, maximised over the trajectory (recorded every
{config.record_every} steps). {config.train_seeds} networks per width; exponents are fitted as elsewhere.

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

{markdown_table(["activation", "depth", "layer", "slope", "change at narrowest", "change at widest"], layer_rows)}
"""
    series = {}
    for a, d in configs:
        widths, lr, steps = settings[a, d]
        series[f"training/{a}/depth{d}"] = {
            "width": widths, "learning_rate": lr, "steps": steps,
            **{m: results[a, d][m] for m in measures},
            **{f"{m}_fit": fits[a, d, m] for m in measures},
            "final_loss_ratio": losses[a, d], "diverged": diverged[a, d],
            "layers": layers[a, d]}
    return claims, [Section(SECTION_STABLE, body, [Figure(
        "training_stability", figure,
        "How far a network moves in training to convergence, by width: its NTK, its weights, and "
        "the distance of its outputs from its linearisation's. Dashed: width^(-1/2).")])], series


# ---------------------------------------------------------------------------
# Ensembles against gradient_descent_mse_ensemble.

def ensemble_study(config):
    import neural_tangents as nt

    x_train, y_train, x_test = training_data(config)
    spec = MLP(config.ens_width, config.ens_depth, config.ens_activation,
               W_std=config.train_W_std[config.ens_activation], b_std=config.b_std)
    module = spec.flax()
    kernel_fn = spec.stax()[2]
    k_train = np.asarray(kernel_fn(x_train, None, "ntk"), dtype=np.float64)
    lr = step_size(k_train, config.ens_lr_fraction)
    steps = max(config.ens_times)
    every = int(np.gcd.reduce(config.ens_times))
    keys = jax.random.split(network_key(config.seed + 30, config.ens_width, 0), config.ens_members)
    params = over_initialisations(module, keys, x_train, lambda p: p, chunk_size=config.ens_members)
    run = fit_ensemble(lambda p, x, y, xt: mse(module.apply(p, x), y), params, optax.sgd(lr), steps,
                       record=lambda p, x, y, xt: module.apply(p, xt)[:, 0], record_every=every,
                       args=(x_train, y_train, x_test))
    outputs = np.asarray(run.records, dtype=np.float64)  # (members, records, n_test)
    idx = [t // every for t in config.ens_times]
    with enable_x64():
        predict = nt.predict.gradient_descent_mse_ensemble(
            kernel_fn, jnp.asarray(x_train, jnp.float64), jnp.asarray(y_train, jnp.float64),
            learning_rate=lr)
        pred = [predict(float(t), jnp.asarray(x_test, jnp.float64), "ntk", compute_cov=True)
                for t in config.ens_times]
        mean = np.stack([np.asarray(p.mean[:, 0]) for p in pred])
        var = np.stack([np.asarray(jnp.diag(p.covariance)) for p in pred])
        # Gradient descent against the gradient flow that the closed form solves:
        # the linear model's test-output means, both ways, from the limit's kernels.
        k_tt = np.asarray(kernel_fn(jnp.asarray(x_test, jnp.float64), jnp.asarray(x_train, jnp.float64), "ntk"))
    lam, v = np.linalg.eigh(k_train)
    proj = v.T @ np.asarray(y_train, np.float64)[:, 0]
    n = k_train.shape[0]
    disc = np.stack([k_tt @ v @ ((1 - (1 - lr * lam / n) ** t) / lam * proj) for t in config.ens_times])
    flow = np.stack([k_tt @ v @ ((1 - np.exp(-lr * lam * t / n)) / lam * proj) for t in config.ens_times])
    M = config.ens_members
    sample_mean = outputs[:, idx].mean(axis=0)
    sample_var = outputs[:, idx].var(axis=0, ddof=1)
    se = np.sqrt(var / M)
    z_rms = np.sqrt(np.mean(((sample_mean - mean) / se) ** 2, axis=1))
    var_ratio = sample_var.mean(axis=1) / var.mean(axis=1)
    discretisation = np.sqrt(np.mean(((disc - flow) / se) ** 2, axis=1))
    var_tol = 3 * np.sqrt(2 / (M - 1))
    worst_var = int(np.argmax(np.abs(var_ratio - 1)))
    claims = [
        Claim(id="ntk_ensemble_mean", section=SECTION_ENSEMBLE,
              statement=f"Mean of {M} trained networks = gradient_descent_mse_ensemble, every time plotted",
              prediction="RMS z-score ~ 1", expected=0.0, measured=float(z_rms.max()), ci=None,
              tolerance=3.0, relation="<="),
        Claim(id="ntk_ensemble_variance", section=SECTION_ENSEMBLE,
              statement=f"Variance over {M} trained networks = the closed form's, every time plotted",
              prediction="variance ratio = 1", expected=1.0, measured=float(var_ratio[worst_var]),
              ci=None, tolerance=float(var_tol)),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.0))
    order = np.argsort(np.asarray(x_test[:, 0]))
    for j, t in enumerate(config.ens_times):
        c = f"C{j}"
        axes[0].plot(np.asarray(x_test[order, 0]), mean[j, order], "-", color=c, lw=1, label=f"t = {t}")
        axes[0].errorbar(np.asarray(x_test[order, 0]), sample_mean[j, order], yerr=se[j, order], fmt="o",
                         color=c, ms=3, lw=0.8)
    axes[0].set(xlabel="x_1 of the test input", ylabel="mean test output",
                title="ensemble mean (points, +- MC s.e.) vs closed form (lines)")
    axes[0].legend(fontsize=7)
    t_axis = np.maximum(np.asarray(config.ens_times, dtype=float), 0.5)
    axes[1].plot(t_axis, z_rms, "o-", label="RMS z of the mean")
    axes[1].plot(t_axis, discretisation, "s:", label="GD vs gradient flow (in s.e.)")
    axes[1].axhline(3.0, color="k", ls="--", lw=1, label="tolerance")
    axes[1].set(xscale="log", xlabel="step (t = 0 plotted at 0.5)", ylabel="RMS z-score",
                title="ensemble mean against the closed form")
    axes[1].legend(fontsize=7)
    axes[2].plot(t_axis, var_ratio, "o-")
    axes[2].axhspan(1 - var_tol, 1 + var_tol, color="gray", alpha=0.2, label="1 +- 3 sqrt(2/(M-1))")
    axes[2].set(xscale="log", xlabel="step", ylabel="sample / closed-form variance",
                title="ensemble variance against the closed form")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    rows = [[t, z_rms[j], var_ratio[j], discretisation[j], float(np.sqrt(np.mean(var[j])))]
            for j, t in enumerate(config.ens_times)]
    body = f"""
{M} networks ({config.ens_activation}, depth {config.ens_depth}, width {config.ens_width}, NTK
parameterization), independently initialised, are trained at once (one vmapped optax program) by
full-batch gradient descent on the data of the previous section, with step {fmt(lr)}
({fmt(config.ens_lr_fraction)} n / lambda_max of the limit's training NTK). Over initialisations, an
infinitely wide network trained this way is a Gaussian process at every time t, whose mean and
covariance on the test inputs neural-tangents gives in closed form
(`gradient_descent_mse_ensemble(kernel_fn, x_train, y_train, learning_rate)`, t in steps; at t = 0 the
NNGP prior). The ensemble's mean is compared with it in units of the Monte Carlo standard error
sqrt(var_t / M), per test input; the RMS of those z-scores is about 1 when they agree. The closed form
solves gradient flow; the column "GD vs flow" is how far gradient descent's own linear dynamics are
from it, in the same units (computed from the limit's kernel), small at this step size. The variance
ratio's tolerance is 3 sqrt(2/(M - 1)), three standard deviations of a sample variance.

{markdown_table(["step t", "RMS z of the mean", "variance ratio", "GD vs flow (s.e.)",
                 "closed-form sd"], rows)}
"""
    series = {"ensemble": {"t": list(config.ens_times), "closed_form_mean": mean, "closed_form_var": var,
                           "sample_mean": sample_mean, "sample_var": sample_var, "rms_z": z_rms,
                           "variance_ratio": var_ratio, "discretisation_in_se": discretisation,
                           "learning_rate": lr, "members": M, "diverged": int(np.sum(np.asarray(run.diverged)))}}
    return claims, [Section(SECTION_ENSEMBLE, body, [Figure(
        "ensemble_dynamics", fig,
        "An ensemble of trained networks against neural-tangents' closed-form ensemble dynamics.")])], series


# ---------------------------------------------------------------------------
# Depth / width fluctuations.

def ntk_diagonal_samples(spec: MLP, x: jax.Array, keys: jax.Array, chunk_size: int) -> np.ndarray:
    """``Theta(x, x) = |grad_theta f(x)|^2`` for networks initialised from ``keys``."""
    module = spec.flax()

    def diagonal(params):
        g = jax.grad(lambda p: module.apply(p, x)[0, 0])(params)
        return sum(jnp.sum(a**2) for a in jax.tree_util.tree_leaves(g))

    # Traced feature-major: the gradient's backward products are W @ delta (replication.arch).
    with training_layout():
        return np.asarray(over_initialisations(module, keys, x, diagonal, chunk_size=chunk_size))


def fluctuation_study(config):
    x = jnp.ones((1, config.input_dim), jnp.float32)  # |x|^2 / d = 1
    cells = [(d, w) for d in config.fluct_depths for w in config.fluct_widths
             if d * w * w <= config.fluct_max_weights]
    stats = {}
    with progress(len(cells), "ntk fluctuations") as bar:
        for d, w in cells:
            spec = MLP(w, d, "relu", W_std=2**0.5, b_std=None)
            keys = jax.random.split(network_key(config.seed + 40, w, d), config.fluct_inits)
            theta = ntk_diagonal_samples(spec, x, keys, chunk_size=200).astype(np.float64)
            limit = float(spec.stax()[2](x, None, "ntk")[0, 0])
            stats[d, w] = theta, limit
            bar.update()

    def log_moment_ratio(theta):
        return float(np.log(np.mean(theta**2) / np.mean(theta) ** 2))

    # Bootstrap over initialisations for the intervals of the two-variable fit.
    rng = np.random.default_rng(config.seed)
    B = config.fluct_bootstrap
    fit_cells = [(d, w) for d, w in cells if d >= config.fluct_fit_min_depth]
    design = np.stack([np.ones(len(fit_cells)), np.log([d for d, _ in fit_cells]),
                       np.log([w for _, w in fit_cells])], axis=1)

    def depth_width_fit(resample: bool):
        r = []
        for d, w in fit_cells:
            th = stats[d, w][0]
            if resample:
                th = th[rng.integers(0, len(th), len(th))]
            r.append(np.log(log_moment_ratio(th)))
        return np.linalg.lstsq(design, np.array(r), rcond=None)[0]

    coef = depth_width_fit(False)
    boot = np.stack([depth_width_fit(True) for _ in range(B)])
    ci = {k: tuple(np.percentile(boot[:, i], [2.5, 97.5])) for i, k in ((1, "depth"), (2, "width"))}
    beta = np.array([d / w for d, w in cells])
    lmr = np.array([log_moment_ratio(stats[c][0]) for c in cells])
    slope_c = float(np.sum(lmr * beta) / np.sum(beta**2))  # log ratio = c beta through the origin

    # At a fixed depth: the relative fluctuation against width, and the mean's bias.
    d0 = config.fluct_rate_depth
    row = [(w, *stats[d0, w]) for w in config.fluct_widths if (d0, w) in stats]
    widths = [w for w, *_ in row]
    rel_sd = np.array([np.std(th) / lim for _, th, lim in row])
    rel_bias = np.array([np.mean(th) / lim - 1 for _, th, lim in row])
    bias_se = np.array([np.std(th) / np.sqrt(len(th)) / lim for _, th, lim in row])
    sd_boot = np.stack([[np.std(th[rng.integers(0, len(th), len(th))]) / lim for _, th, lim in row]
                        for _ in range(B)])
    sd_fit = fit_power_law(widths, rel_sd)
    sd_slopes = np.array([np.polyfit(np.log(widths), np.log(s), 1)[0] for s in sd_boot])
    sd_ci = tuple(np.percentile(sd_slopes, [2.5, 97.5]))

    claims = [
        Claim(id="ntk_fluctuation_depth_exponent", section=SECTION_FLUCT,
              statement="log(E[Theta^2] / E[Theta]^2) of the NTK diagonal: exponent of depth",
              prediction="a function of depth/width: exponent +1 (Hanin & Nica 2019)", expected=1.0,
              measured=float(coef[1]), ci=ci["depth"], tolerance=config.exponent_tolerance),
        Claim(id="ntk_fluctuation_width_exponent", section=SECTION_FLUCT,
              statement="log(E[Theta^2] / E[Theta]^2) of the NTK diagonal: exponent of width",
              prediction="a function of depth/width: exponent -1 (Hanin & Nica 2019)", expected=-1.0,
              measured=float(coef[2]), ci=ci["width"], tolerance=config.exponent_tolerance),
        Claim(id="ntk_fluctuation_sd_rate", section=SECTION_FLUCT,
              statement=f"Relative standard deviation of the NTK diagonal at depth {d0}",
              prediction="sd / mean ~ width^(-1/2)", expected=-0.5, measured=sd_fit.exponent,
              ci=sd_ci, tolerance=config.exponent_tolerance),
    ]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, d in enumerate(config.fluct_depths):
        pts = [(d / w, log_moment_ratio(stats[d, w][0])) for w in config.fluct_widths if (d, w) in stats]
        if pts:
            b, l = zip(*pts)
            axes[0].plot(b, l, "o", color=f"C{i}", label=f"depth {d}")
    bb = np.linspace(0, beta.max() * 1.05, 50)
    axes[0].plot(bb, slope_c * bb, "k-", lw=1, label=f"fit: {slope_c:.2f} depth/width")
    axes[0].plot(bb, 5 * bb, "k--", lw=1, label="5 depth/width (Hanin & Nica's exponent)")
    axes[0].set(xlabel="depth / width", ylabel="log(E[Theta(x,x)^2] / E[Theta(x,x)]^2)",
                title=f"ReLU, {config.fluct_inits} initialisations per point")
    axes[0].legend(fontsize=7)
    axes[1].plot(widths, rel_sd, "o-", label=f"sd / limit (slope {sd_fit.exponent:+.2f})")
    axes[1].errorbar(widths, np.abs(rel_bias), yerr=bias_se, fmt="s", color="C1", ms=4,
                     label="|mean - limit| / limit, +- MC s.e.")
    axes[1].plot(widths, bias_se, ":", color="C1", lw=1, label="MC s.e. of the mean")
    axes[1].set(xscale="log", yscale="log", xlabel="width", title=f"depth {d0}: fluctuation and bias")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    rows = [[d, w, d / w, log_moment_ratio(stats[d, w][0]), float(np.std(stats[d, w][0]) / stats[d, w][1]),
             float(np.mean(stats[d, w][0]) / stats[d, w][1] - 1)] for d, w in cells]
    body = f"""
Hanin and Nica (2019) show that for ReLU networks (He init, weights N(0, 2 / fan-in), no biases) the
NTK diagonal's relative second moment is exponential in the ratio of depth to width:
E[Theta(x,x)^2] / E[Theta(x,x)]^2 ~ exp(C depth/width), with C = 5 in their estimate up to O(1)
factors. So at fixed width the fluctuations grow with depth, and the kernel is deterministic only
when depth/width -> 0. Measured: {config.fluct_inits} networks per (depth, width) (NTK
parameterization, W_std = sqrt(2), no biases, input |x|^2 = d), Theta(x, x) = |grad f(x)|^2 exactly;
log(E[Theta^2]/E[Theta]^2) fitted as a * depth^p * width^q over depths >= {config.fluct_fit_min_depth}
(depth 1 has no hidden-to-hidden layer and sits lower, see the table) with a bootstrap interval over
initialisations. The claims are p = +1 and q = -1: the points collapse onto one curve of depth/width.
The fitted constant through the origin is C = {slope_c:.2f}, below Hanin and Nica's 5; their
estimate holds up to multiplicative constants, which this measurement does not separate from C.

At depth {d0}, the relative standard deviation falls as width^(-1/2) (third claim). The mean's
bias, the other finite-width term, is expected at O(1/width); on the diagonal of a ReLU network it
is measured at {", ".join(f"{b:+.4f}" for b in rel_bias)} (widths {", ".join(map(str, widths))}) with
Monte Carlo standard errors {", ".join(f"{s:.4f}" for s in bias_se)}: indistinguishable from zero
at this sample size, so no exponent can be fitted to it. ReLU's NTK diagonal is known to have no
finite-width correction to its mean at all (its forward and backward norms are exactly preserved
in expectation at He init), which is consistent with this.

{markdown_table(["depth", "width", "depth/width", "log E[T^2]/E[T]^2", "sd / limit", "mean / limit - 1"], rows)}
"""
    series = {"fluctuations": {"cells": cells, "log_moment_ratio": lmr, "depth_over_width": beta,
                               "fit_log_a_p_q": coef, "ci_p": ci["depth"], "ci_q": ci["width"],
                               "C_through_origin": slope_c, "rate_depth": d0, "rate_widths": widths,
                               "relative_sd": rel_sd, "relative_bias": rel_bias, "bias_se": bias_se,
                               "sd_fit": sd_fit}}
    return claims, [Section(SECTION_FLUCT, body, [Figure(
        "depth_width_fluctuations", fig,
        "Left: the NTK diagonal's relative second moment against depth/width, every (depth, width). "
        "Right: at fixed depth, its relative standard deviation and the mean's bias against width.")])], series
