"""Hyperparameter transfer on real data (Tensor Programs V, Figures 1 and 3): under muP the best
learning rate, and the best output multiplier, do not move with the width; under SP the best
learning rate moves to smaller values.

MLPs on scikit-learn's 8x8 digits (the whole 1347 / 450 split; centred
one-hot targets, ``mse``), trained by minibatch SGD with momentum and by
Adam, at every learning rate ``2^(k/2)`` of a grid, at every width, from
independent seeds. Per seed the minibatches are one sequence of shuffled
epochs, shared by every width, parameterization, optimizer and learning rate
(common random numbers: a width's curve and its neighbour's differ by the
networks, not by the data's order). A run's training loss is its minibatch
loss averaged over the last ``tail`` of its steps; its test loss is taken on
the 450 held-out images at the end.

A width's optimum is the vertex of the parabola in log2 learning rate
through the log mean loss at the grid's best point and its two neighbours
(within half a grid step of the best point), with a percentile bootstrap
interval over seeds. The claims' slopes have delete-one-seed jackknife
intervals (Student-t), which do not shrink with a handful of seeds as a
percentile bootstrap does. Both resample the seeds jointly at every width,
because the widths share each seed's minibatches.

Theory (Tensor Programs V, section 3): in SP a learning rate held fixed
moves the output by O(width) per step through the readout (and, for Adam,
through every hidden-to-hidden layer), so the optimal rate falls as
``width^(-1)`` once the width is large; under muP every layer moves by O(1),
so it is constant.

Random streams: ``transfer_networks`` (the networks' init) and
``transfer_batches`` (each seed's minibatch order).
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from replication.arch import MLP, training_layout
from replication.data import Digits, digits
from replication.experiments.mup.networks import LABELS
from replication.report import Claim, Figure, Findings, Section, fmt, markdown_table
from replication.stats import jackknife
from replication.sweep import Streams, progress
from replication.train import mse

SECTION = "Hyperparameter transfer on digits"
COMPARED = ("standard", "mup")
OPTIMIZERS = ("sgd", "adam")
# Theory's exponent of the optimal learning rate in width, once the width is large.
THEORY_SLOPE = {"standard": -1.0, "mup": 0.0}
# The band for muP's slope (log2 optimum per log2 width) is a convention, not a derived size:
# 0.15 per doubling, 0.3 octave over the quick ladder's two doublings.
SLOPE_BAND = 0.15
SLOPE_REASON = "a convention: a drift of at most 0.15 octave per doubling of width"


@dataclass(frozen=True)
class Config:
    widths: tuple[int, ...] = (128, 256, 512)   # the full preset to 8192
    base_width: int = 128                 # muP equals SP here
    depth: int = 1
    activation: str = "relu"
    W_std: float = 2**0.5
    b_std: float = 0.1
    batch: int = 32
    steps: int = 2000
    tail: float = 0.05                    # the share of the last steps whose loss is averaged
    momentum: float = 0.9                 # SGD's
    seeds: int = 5
    # The learning-rate grids, 2^(k/2) for k in the range: wide enough that every optimum,
    # SP's at the widest width included, has a grid point on either side.
    sgd_log2_lr_halves: tuple[int, int] = (-8, -2)
    adam_log2_lr_halves: tuple[int, int] = (-17, -12)
    # Second hyperparameter: the output multiplier alpha (the network's output is alpha times
    # its readout's), under muP with SGD at the base width's best learning rate.
    log2_alpha_halves: tuple[int, int] = (-3, 1)
    # Where Adam's output change per step comes from: one network per width and parameterization
    # at the base width's best Adam rate, each layer's share of one update after these steps,
    # on the first ``probe`` training images.
    share_stops: tuple[int, ...] = (10, 2000)
    probe: int = 256
    bootstrap: int = 2000
    confidence: float = 0.95

    def lr_halves(self, optimizer: str) -> tuple[int, int]:
        return {"sgd": self.sgd_log2_lr_halves, "adam": self.adam_log2_lr_halves}[optimizer]


@dataclass
class Transfer:
    """``train[(optimizer, p)]`` and ``test[...]``: losses ``(n_widths, seeds, n_grid)``, ``inf`` where a
    run diverged; ``alpha_train`` / ``alpha_test``: muP with SGD over the output multipliers, at the
    learning rate ``alpha_lr``."""

    log2_lrs: dict
    train: dict
    test: dict
    log2_alphas: np.ndarray
    alpha_lr: float
    alpha_train: np.ndarray
    alpha_test: np.ndarray
    adam_lr: float
    shares: dict   # (p, layer) -> (n_widths, n_stops): RMS output change of one Adam update


def _grid(halves) -> np.ndarray:
    return np.arange(halves[0], halves[1] + 1) / 2.0


def base_best(losses: np.ndarray) -> int:
    """The grid index of least seed-mean loss at the ladder's first width, the base width."""
    return int(np.argmin(np.mean(losses[0], axis=0)))


def _spec(config: Config, p: str, width: int) -> MLP:
    return MLP(width, config.depth, config.activation, W_std=config.W_std, b_std=config.b_std, out_dim=10,
               parameterization=p, base_width=config.base_width if p == "mup" else None)


def _program(module, optimizer, tail_steps: int):
    """One network's init trained at every point of a grid of (learning rate, output multiplier) in
    one compiled program; minibatches given as an index array ``(steps, batch)``.

    The optimizer runs at learning rate 1 and its update is multiplied by each grid point's rate:
    SGD with momentum and Adam are both linear in their learning rate, so this is the same
    optimizer, per-layer factors included, with the rate a traced argument.
    """
    def loss(p, x, y, alpha):
        return mse(alpha * module.apply(p, x), y)

    value_and_grad = jax.vmap(jax.value_and_grad(loss), (0, None, None, 0))

    def run(params, lrs, alphas, order, x_train, y_train, x_test, y_test):
        ps = jax.tree.map(lambda a: jnp.broadcast_to(a, lrs.shape + a.shape), params)

        def step(carry, idx):
            ps, states = carry
            losses, grads = value_and_grad(ps, x_train[idx], y_train[idx], alphas)
            updates, states = jax.vmap(optimizer.update)(grads, states, ps)
            updates = jax.tree.map(lambda u: u * lrs.reshape(lrs.shape + (1,) * (u.ndim - 1)), updates)
            return (optax.apply_updates(ps, updates), states), losses

        (ps, _), losses = jax.lax.scan(step, (ps, jax.vmap(optimizer.init)(ps)), order)
        train = jnp.mean(losses[-tail_steps:], axis=0)
        test = jax.vmap(loss, (0, None, None, 0))(ps, x_test, y_test, alphas)
        # A run whose loss left the floats at any step has diverged.
        diverged = ~jnp.all(jnp.isfinite(losses), axis=0) | ~jnp.isfinite(test)
        return jnp.where(diverged, jnp.inf, train), jnp.where(diverged, jnp.inf, test)

    compiled = jax.jit(run)

    def call(*args):
        # The layout takes effect where the program is traced: at its first call, inside it.
        with training_layout():
            return compiled(*args)

    return call


def update_shares(module, optimizer, params, order, x_train, y_train, x_probe, stops) -> dict:
    """After each of ``stops`` minibatch steps, the RMS over ``x_probe`` of the output change that the
    update on the next minibatch makes (after the last of ``order``'s, its first), to first order (a
    Jacobian-vector product), along each layer's part of it and along all of it:
    ``{layer or "all": [one value per stop]}``."""
    def loss(p, idx):
        return mse(module.apply(p, x_train[idx]), y_train[idx])

    @jax.jit
    def train(p, state, block):
        def step(carry, idx):
            p, state = carry
            updates, state = optimizer.update(jax.grad(loss)(p, idx), state, p)
            return (optax.apply_updates(p, updates), state), None
        return jax.lax.scan(step, (p, state), block)[0]

    @jax.jit
    def shares(p, state, idx):
        updates, _ = optimizer.update(jax.grad(loss)(p, idx), state, p)
        layers = {name: jax.tree.map(jnp.zeros_like, updates) for name in updates["params"]}
        for name, u in layers.items():
            u["params"][name] = updates["params"][name]
        out = {name: _rms_jvp(module, p, u, x_probe) for name, u in layers.items()}
        return {**out, "all": _rms_jvp(module, p, updates, x_probe)}

    out, state, done = {}, optimizer.init(params), 0
    for stop in stops:
        params, state = train(params, state, order[done:stop])
        done = stop
        for k, v in shares(params, state, order[stop % order.shape[0]]).items():
            out.setdefault(k, []).append(float(v))
    return out


def _rms_jvp(module, params, tangent, x):
    _, change = jax.jvp(lambda q: module.apply(q, x), (params,), (tangent,))
    return jnp.sqrt(jnp.mean(change ** 2))


def _orders(config: Config, streams: Streams, n_train: int) -> list[np.ndarray]:
    """Each seed's minibatches: shuffled epochs, cut into ``(steps, batch)``."""
    rng = streams.numpy("transfer_batches")
    need = config.steps * config.batch
    out = []
    for _ in range(config.seeds):
        perms = [rng.permutation(n_train) for _ in range(-(-need // n_train))]
        out.append(np.concatenate(perms)[:need].reshape(config.steps, config.batch).astype(np.int32))
    return out


def measure(config: Config, streams: Streams) -> Transfer:
    if config.widths[0] != config.base_width:
        raise ValueError(f"the transfer ladder starts at muP's base width {config.base_width}, not "
                         f"{config.widths[0]}: the base width's optimum is the one transferred")
    if list(config.share_stops) != sorted(set(config.share_stops)):
        raise ValueError(f"share_stops must increase, got {config.share_stops}")
    data = digits()
    arrays = tuple(jnp.asarray(a) for a in (Digits.flat(data.x_train), data.y_train,
                                             Digits.flat(data.x_test), data.y_test))
    orders = [jnp.asarray(o) for o in _orders(config, streams, data.x_train.shape[0])]
    tail_steps = max(1, round(config.tail * config.steps))
    log2_lrs = {o: _grid(config.lr_halves(o)) for o in OPTIMIZERS}
    log2_alphas = _grid(config.log2_alpha_halves)
    shape = (len(config.widths), config.seeds)
    train, test = {}, {}
    programs = {}

    def sweep(spec, opt, lrs, alphas, w):
        key = (spec, opt, lrs.size)
        if key not in programs:
            options = {"momentum": config.momentum} if opt == "sgd" else {}
            programs[key] = _program(spec.flax(), spec.optimizer(opt, 1.0, **options), tail_steps)
        module = spec.flax()
        tr, te = [], []
        for s in range(config.seeds):
            params = module.init(streams.network("transfer_networks", w, s), arrays[0][:1])
            a, b = programs[key](params, jnp.asarray(lrs, jnp.float32), jnp.asarray(alphas, jnp.float32),
                                 orders[s], *arrays)
            tr.append(np.asarray(a, np.float64))
            te.append(np.asarray(b, np.float64))
        return np.stack(tr), np.stack(te)

    total = len(config.widths) * (len(OPTIMIZERS) * len(COMPARED) + 1)
    with progress(total, "mup hyperparameter transfer") as bar:
        for opt in OPTIMIZERS:
            lrs = 2.0 ** log2_lrs[opt]
            for p in COMPARED:
                a = np.empty(shape + (lrs.size,))
                b = np.empty_like(a)
                for i, w in enumerate(config.widths):
                    if p == "mup" and w == config.base_width:   # muP is SP there: the same runs
                        a[i], b[i] = train[opt, "standard"][i], test[opt, "standard"][i]
                    else:
                        a[i], b[i] = sweep(_spec(config, p, w), opt, lrs, np.ones_like(lrs), w)
                    bar.update()
                train[opt, p], test[opt, p] = a, b
        # The output multiplier at the base width's best learning rate (muP, SGD), on the grid.
        base = base_best(train["sgd", "mup"])
        alpha_lr = float(2.0 ** log2_lrs["sgd"][base])
        alphas = 2.0 ** log2_alphas
        # alpha = 1 at that rate is a run of the learning-rate sweep: taken from it, not repeated.
        one = log2_alphas == 0
        a = np.empty(shape + (alphas.size,))
        b = np.empty_like(a)
        rest = alphas[~one]
        for i, w in enumerate(config.widths):
            a[i][:, ~one], b[i][:, ~one] = sweep(_spec(config, "mup", w), "sgd", np.full_like(rest, alpha_lr),
                                                 rest, w)
            if one.any():
                a[i][:, one], b[i][:, one] = train["sgd", "mup"][i][:, [base]], test["sgd", "mup"][i][:, [base]]
            bar.update()
        # Adam's per-layer shares, at the base width's best Adam grid point, seed 0's networks.
        adam_lr = float(2.0 ** log2_lrs["adam"][base_best(train["adam", "mup"])])
        stops = tuple(t for t in config.share_stops if t <= config.steps)
        shares = {}
        for p in COMPARED:
            for i, w in enumerate(config.widths):
                spec = _spec(config, p, w)
                module = spec.flax()
                params = module.init(streams.network("transfer_networks", w, 0), arrays[0][:1])
                found = update_shares(module, spec.optimizer("adam", adam_lr), params, orders[0], arrays[0],
                                      arrays[1], arrays[0][:config.probe], stops)
                for k, v in found.items():
                    shares.setdefault((p, k), np.full((len(config.widths), len(stops)), np.nan))[i] = v
    return Transfer(log2_lrs, train, test, log2_alphas, alpha_lr, a, b, adam_lr, shares)


def optimum(log2_grid: np.ndarray, curve: np.ndarray) -> tuple[float, bool]:
    """``(log2 optimum, inside)``: the vertex of the parabola in log loss through the curve's least
    point and its two neighbours; ``inside`` is False, and the optimum the edge point, when the least
    point is at the grid's edge. Where a neighbour diverged (``inf``), the least point itself."""
    best = int(np.argmin(curve))
    if best in (0, curve.size - 1) or not np.isfinite(curve[best]):
        return float(log2_grid[best]), False
    lo, mid, hi = np.log(curve[best - 1:best + 2])
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return float(log2_grid[best]), True
    h = log2_grid[best + 1] - log2_grid[best]
    curvature = lo - 2 * mid + hi
    shift = 0.0 if curvature <= 0 else 0.5 * h * (lo - hi) / curvature
    return float(log2_grid[best] + shift), True


def _mean_curves(losses: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Mean over the chosen seeds, per width: ``(n_widths, n_grid)``; ``inf`` where any diverged."""
    return losses[:, seeds].mean(axis=1)


def optima(log2_grid, losses, seeds=None) -> tuple[np.ndarray, np.ndarray]:
    """Each width's ``optimum`` of the seed-mean curve; and whether it is inside the grid."""
    seeds = np.arange(losses.shape[1]) if seeds is None else seeds
    out = [optimum(log2_grid, c) for c in _mean_curves(losses, seeds)]
    return np.array([o for o, _ in out]), np.array([i for _, i in out])


def _slope(log2_widths, values) -> float:
    return float(np.polyfit(log2_widths, values, 1)[0])


def seed_jackknife(statistic, n_seeds: int, confidence: float) -> tuple[float, tuple[float, float]]:
    """``statistic(seed indices)`` on all seeds, with a Student-t interval from the delete-one-seed
    jackknife's standard error, centred on that all-seed value (an optimum found by a grid's argmin
    is not smooth enough in the seeds for the jackknife's bias correction)."""
    point = float(statistic(np.arange(n_seeds)))
    _, (lo, hi), _ = jackknife(statistic, np.arange(n_seeds), confidence)
    half = (hi - lo) / 2
    return point, (point - half, point + half)


def slope_statistic(config: Config, log2_grid, losses):
    """``seeds -> slope of log2 optimum against log2 width``, the optima from those seeds' mean curves."""
    lw = np.log2(np.asarray(config.widths, float))
    return lambda seeds: _slope(lw, optima(log2_grid, losses, seeds)[0])


def bootstrap(statistic, n_seeds: int, rng: np.random.Generator, draws: int) -> np.ndarray:
    """``statistic(seed indices)`` over ``draws`` resamples of the seeds with replacement."""
    return np.array([statistic(rng.integers(0, n_seeds, n_seeds)) for _ in range(draws)])


@dataclass
class Fitted:
    """One sweep's optima and the slope of log2 optimum against log2 width, with intervals."""

    optima: np.ndarray
    inside: np.ndarray
    optima_ci: np.ndarray
    slope: float
    slope_ci: tuple[float, float]


def fit_sweep(config: Config, log2_grid, losses, rng) -> Fitted:
    point, inside = optima(log2_grid, losses)
    slope, slope_ci = seed_jackknife(slope_statistic(config, log2_grid, losses), losses.shape[1],
                                     config.confidence)
    values = bootstrap(lambda s: optima(log2_grid, losses, s)[0], losses.shape[1], rng, config.bootstrap)
    q = (1 - config.confidence) / 2
    ci = np.stack([np.quantile(values, q, axis=0), np.quantile(values, 1 - q, axis=0)], axis=1)
    return Fitted(point, inside, ci, slope, slope_ci)


def findings(config: Config, result: Transfer) -> Findings:
    rng = np.random.default_rng(0)
    lw = np.log2(np.asarray(config.widths, float))
    fitted = {(o, p): fit_sweep(config, result.log2_lrs[o], result.train[o, p], rng)
              for o in OPTIMIZERS for p in COMPARED}
    alpha = fit_sweep(config, result.log2_alphas, result.alpha_train, rng)
    span = f"{config.widths[0]}-{config.widths[-1]}"
    method = (f"delete-one-seed jackknife over {config.seeds} seeds (the same seeds at every width), "
              f"Student-t")
    claims = []
    for o in OPTIMIZERS:
        for p in COMPARED:
            f = fitted[o, p]
            ok = bool(f.inside.all())
            name = {"standard": "sp", "mup": "mup"}[p]
            # An optimum at a grid's edge is a measurement the grid could not make, not evidence
            # against theory: the slope is shown and the claim left without an interval.
            common = dict(id=f"mup_transfer_slope_{name}_{o}", section=SECTION,
                          measured=f.slope, ci=f.slope_ci if ok else None,
                          interval_method=method, n_seeds=config.seeds,
                          fit_range=(config.widths[0], config.widths[-1]))
            if p == "mup":
                claims.append(Claim(
                    statement=f"muP, {o}: slope of log2 optimal learning rate against log2 width, {span}",
                    prediction="0: the optimum does not move", expected=0.0, tolerance=SLOPE_BAND,
                    reason=SLOPE_REASON, **common))
            else:
                claims.append(Claim(
                    statement=f"SP, {o}: slope of log2 optimal learning rate against log2 width, {span} "
                              f"(theory's large-width value: {THEORY_SLOPE[p]:+.0f})",
                    prediction="negative: the optimum moves to smaller rates", expected=0.0, tolerance=0.0,
                    relation="<=", reason="the sign is the claim; the large-width value -1 is compared in "
                                          "the text", **common))
    fixed = {}
    for o in OPTIMIZERS:
        losses = result.train[o, "mup"]
        j = base_best(losses)
        stat = lambda s, j=j, losses=losses: _slope(lw, np.log2(_mean_curves(losses, s)[:, j]))
        value, ci = seed_jackknife(stat, config.seeds, config.confidence)
        fixed[o] = (j, value, ci)
        claims.append(Claim(
            id=f"mup_transfer_wider_is_better_{o}", section=SECTION,
            statement=f"muP, {o}: slope of log2 training loss against log2 width at the base width's best "
                      f"learning rate 2^{result.log2_lrs[o][j]:g}, {span}",
            prediction="<= 0: a wider network is not worse", expected=0.0, tolerance=0.0, relation="<=",
            reason="Tensor Programs V's observation under muP; no size is predicted for the gain",
            measured=value if np.isfinite(value)
            else None, ci=ci if np.isfinite(value) else None, interval_method=method, n_seeds=config.seeds,
            fit_range=(config.widths[0], config.widths[-1])))
    ok = bool(alpha.inside.all())
    claims.append(Claim(
        id="mup_transfer_slope_mup_output_multiplier", section=SECTION,
        statement=f"muP, sgd at learning rate {fmt(result.alpha_lr)}: slope of log2 optimal output multiplier "
                  f"against log2 width, {span}",
        prediction="0: the optimum does not move", expected=0.0, tolerance=SLOPE_BAND,
        reason=SLOPE_REASON, measured=alpha.slope,
        ci=alpha.slope_ci if ok else None, interval_method=method, n_seeds=config.seeds,
        fit_range=(config.widths[0], config.widths[-1])))
    series = {"transfer": {
        "widths": list(config.widths),
        **{f"log2_lrs/{o}": result.log2_lrs[o] for o in OPTIMIZERS},
        **{f"train/{o}/{p}": result.train[o, p] for o in OPTIMIZERS for p in COMPARED},
        **{f"test/{o}/{p}": result.test[o, p] for o in OPTIMIZERS for p in COMPARED},
        **{f"optimum/{o}/{p}": fitted[o, p].optima for o in OPTIMIZERS for p in COMPARED},
        **{f"optimum_ci/{o}/{p}": fitted[o, p].optima_ci for o in OPTIMIZERS for p in COMPARED},
        "log2_alphas": result.log2_alphas, "alpha_lr": result.alpha_lr,
        "alpha_train": result.alpha_train, "alpha_test": result.alpha_test,
        "alpha_optimum": alpha.optima, "alpha_optimum_ci": alpha.optima_ci,
        "adam_share_lr": result.adam_lr, "adam_share_stops": [t for t in config.share_stops if t <= config.steps],
        **{f"adam_share/{p}/{k}": v for (p, k), v in result.shares.items()}}}
    figures = [
        Figure("lr_transfer", _figure(config, result, fitted),
               "Training loss (mean over seeds, the last 5% of steps) against learning rate, one line per "
               "width, in Tensor Programs V, Figure 1's layout: one column per parameterization, one row per "
               "optimizer, a shared y axis in each row. Each width's fitted optimum is marked. Theory: SP's "
               "optimum moves left as the width grows; muP's stays and wider is better."),
        Figure("output_multiplier_transfer", _alpha_figure(config, result, alpha),
               "muP with SGD: training loss against the output multiplier at a fixed learning rate, one line "
               "per width, fitted optima marked (Tensor Programs V, Figure 3's second hyperparameter)."),
    ]
    paired = {}
    for o in OPTIMIZERS:
        slope_of = {p: slope_statistic(config, result.log2_lrs[o], result.train[o, p]) for p in COMPARED}
        paired[o] = seed_jackknife(lambda s: slope_of["standard"](s) - slope_of["mup"](s), config.seeds,
                                   config.confidence)
    series["transfer"].update({f"slope_sp_minus_mup/{o}": [v, *ci] for o, (v, ci) in paired.items()})
    prose = _prose(config, result, fitted, alpha, fixed, paired)
    return Findings(claims, [Section(SECTION, prose, figures)], series)


def _curve(losses: np.ndarray) -> np.ndarray:
    """Seed mean per grid point; a point where any seed diverged is a gap (NaN)."""
    m = losses.mean(axis=0)
    return np.where(np.isfinite(m), m, np.nan)


def _figure(config: Config, result: Transfer, fitted: dict):
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.2), sharey="row")
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(config.widths)))
    for r, o in enumerate(OPTIMIZERS):
        for c, p in enumerate(COMPARED):
            ax = axes[r, c]
            for i, w in enumerate(config.widths):
                ax.plot(result.log2_lrs[o], _curve(result.train[o, p][i]), "o-", ms=2.5, lw=1.2,
                        color=colours[i], label=f"width {w}")
                ax.axvline(fitted[o, p].optima[i], color=colours[i], ls=":", lw=1)
            ax.set(yscale="log", title=f"{LABELS[p]}, {o}", xlabel="log2 learning rate")
            ax.grid(alpha=0.25)
        axes[r, 0].set_ylabel("training loss")
    axes[0, 1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def _alpha_figure(config: Config, result: Transfer, alpha: Fitted):
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(config.widths)))
    for i, w in enumerate(config.widths):
        ax.plot(result.log2_alphas, _curve(result.alpha_train[i]), "o-", ms=2.5, lw=1.2, color=colours[i],
                label=f"width {w}")
        ax.axvline(alpha.optima[i], color=colours[i], ls=":", lw=1)
    ax.set(yscale="log", xlabel="log2 output multiplier", ylabel="training loss", title="muP, sgd")
    ax.grid(alpha=0.25)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _prose(config: Config, result: Transfer, fitted: dict, alpha: Fitted, fixed: dict, paired: dict) -> str:
    def opt_cell(f, i):
        edge = "" if f.inside[i] else " (grid edge)"
        return f"{f.optima[i]:+.2f} [{f.optima_ci[i, 0]:+.2f}, {f.optima_ci[i, 1]:+.2f}]{edge}"

    def loss_cell(losses, i, j):
        m, t = losses[0][i, :, j], losses[1][i, :, j]
        return f"{m.mean():.4f} / {t.mean():.4f}"

    rows = []
    for o in OPTIMIZERS:
        for p in COMPARED:
            f = fitted[o, p]
            for i, w in enumerate(config.widths):
                j = int(np.argmin(result.train[o, p][i].mean(axis=0)))
                rows.append([o, LABELS[p], w, opt_cell(f, i),
                             loss_cell((result.train[o, p], result.test[o, p]), i, j)])
    def interval(v, ci, inside=True):
        return f"{v:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]" if inside else f"{v:+.3f} (an optimum at the grid's edge)"

    slope_rows = [[o, LABELS[p], interval(fitted[o, p].slope, fitted[o, p].slope_ci, fitted[o, p].inside.all()),
                   f"{THEORY_SLOPE[p]:+.0f}"] for o in OPTIMIZERS for p in COMPARED]
    paired_rows = [[o, interval(*paired[o])] for o in OPTIMIZERS]
    sp_moves = {o: paired[o][1][1] < 0 for o in OPTIMIZERS}
    sp_text = " ".join(
        f"With {o}, SP's optimum {'falls faster than' if sp_moves[o] else 'is not shown to fall faster than'} "
        f"muP's over this ladder." for o in OPTIMIZERS)
    if config.depth == 1:
        adam_text = ("With one hidden layer SP and muP differ under Adam only in the readout (its init and "
                     "multiplier; its Adam factor is 1 in both): the hidden-to-hidden layers, where muP's Adam "
                     "factor 1 / r acts, exist from depth 2 (the full preset).")
    else:
        adam_text = ("Under Adam SP and muP differ in the readout and in the hidden-to-hidden layers, where "
                     "muP's Adam factor is 1 / r.")
    alpha_rows = [[w, opt_cell(alpha, i), loss_cell((result.alpha_train, result.alpha_test), i,
                                                    int(np.argmin(result.alpha_train[i].mean(axis=0))))]
                  for i, w in enumerate(config.widths)]
    diverged = {(o, p): int(np.sum(~np.isfinite(result.train[o, p]))) for o in OPTIMIZERS for p in COMPARED}
    k = {o: config.lr_halves(o) for o in OPTIMIZERS}
    fixed_text = "; ".join(f"{o}: at 2^{result.log2_lrs[o][j]:g}, {v:+.3f} [{lo:+.3f}, {hi:+.3f}]"
                           for o, (j, v, (lo, hi)) in fixed.items())
    runs = config.seeds * len(config.widths)
    return f"""
MLPs with {config.depth} hidden layer{'s' if config.depth > 1 else ''} ({config.activation}, W_std = {config.W_std:.3g},
b_std = {config.b_std}) on the digits' 1347 training images: minibatches of {config.batch}, {config.steps} steps
(about {config.steps * config.batch / 1347:.0f} epochs), {config.seeds} seeds. SGD with momentum {config.momentum}
runs over learning rates 2^(k/2), k = {k['sgd'][0]} ... {k['sgd'][1]}; Adam over k = {k['adam'][0]} ... {k['adam'][1]}.
muP's base width is {config.base_width}, where it is SP exactly, so there the two columns show the same runs.
A run that diverged (a non-finite loss at any step) is a gap in its curve. Diverged runs, over all
learning rates ({runs} runs per learning rate): SGD {diverged['sgd', 'standard']} under SP and
{diverged['sgd', 'mup']} under muP; Adam {diverged['adam', 'standard']} and {diverged['adam', 'mup']}.

Each width's optimum, log2 of the learning rate (parabola through the least mean loss and its neighbours;
bootstrap interval over seeds), and the mean training / test loss at the best grid point. With
{config.seeds} seeds a resample holds at most {config.seeds} distinct networks per width, so these percentile
intervals are, if anything, narrower than the seeds' spread warrants:

{markdown_table(["optimizer", "parameterization", "width", "log2 optimum [interval]", "train / test loss"], rows)}

The slope of log2 optimum against log2 width (delete-one-seed jackknife interval), against theory's
large-width value:

{markdown_table(["optimizer", "parameterization", "slope [interval]", "theory"], slope_rows)}

SP's slope minus muP's, paired by seed (the two share each seed's minibatches; jackknife interval):

{markdown_table(["optimizer", "SP - muP [interval]"], paired_rows)}

{sp_text}

Theory's -1 for SP is the large-width exponent. With SGD the readout's update moves the output by
eta |h|^2 ~ eta width; with Adam each of the readout's width entries moves by about eta. In SP the NTK
is the readout's part, sum_i phi_i(x) phi_i(x'), which grows as width, plus the input layer's, which
does not; the stable rate of SGD with momentum beta is 2 (1 + beta) / lambda_max of the sum, so its
exponent in width reaches -1 only once the readout's part dominates. {adam_text} muP's readout is
random here, as in SP: its initial output, O(1) at the base width, shrinks as r^(-1/2), so the
narrowest muP networks start from a larger residual than the wider ones.

Under muP the training loss at the base width's best learning rate, against width (slope of log2 loss per
doubling): {fixed_text}.

**Output multiplier.** muP with SGD at learning rate {fmt(result.alpha_lr)} (the base width's best grid point),
output multipliers alpha = 2^(k/2), k = {config.log2_alpha_halves[0]} ... {config.log2_alpha_halves[1]}: the
network's output is alpha times its readout's. The optimum per width:

{markdown_table(["width", "log2 optimum [interval]", "train / test loss"], alpha_rows)}

Slope of log2 optimum against log2 width: {interval(alpha.slope, alpha.slope_ci, alpha.inside.all())}.
{_shares_text(config, result)}"""


def _shares_text(config: Config, result: Transfer) -> str:
    if not result.shares:
        return ""
    stops = [t for t in config.share_stops if t <= config.steps]
    layers = sorted({k for _, k in result.shares if k != "all"}, key=lambda k: (k == "readout", k)) + ["all"]
    header = ["parameterization", "width"] + [f"after step {t}: " + " / ".join(layers) for t in stops]
    rows = [[LABELS[p], w] + [" / ".join(f"{result.shares[p, k][i, j]:.3g}" for k in layers)
                              for j in range(len(stops))]
            for p in COMPARED for i, w in enumerate(config.widths)]
    lw = np.log2(np.asarray(config.widths, float))
    slopes = {p: ", ".join(f"{_slope(lw, np.log2(result.shares[p, 'readout'][:, j])):+.2f} after step {t}"
                           for j, t in enumerate(stops)) for p in COMPARED}
    return f"""
**Where Adam's step goes.** Theory's fall of SP's optimal rate with width comes from the growth of
the output's change per step. Measured directly: one network per width and parameterization (seed 0),
Adam at the base width's best grid rate {fmt(result.adam_lr)}; after step t, the output change that the
update on the next minibatch makes (first order, RMS over the first {config.probe} training images), along
each layer's part of the update and along all of it:

{markdown_table(header, rows)}

An Adam update that moves each of the readout's entries by about the rate, all in one direction,
gives the readout's share under SP an exponent of +1 in width (muP's multiplier 1 / r makes it 0).
The readout's share, exponent in width (log2 per log2; one network per width, so no interval):
SP {slopes['standard']}; muP {slopes['mup']}.
"""
