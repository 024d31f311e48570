"""Learning-rate transfer (Tensor Programs V, Figure 1): under muP the best learning rate does not
move with the width; under SP it does.

Full-batch SGD on ``mse`` for a fixed number of steps, at every learning rate
``2^k`` of a grid, at every width. The best learning rate of a width is the
grid point of least mean final training loss over seeds. Under muP it stays
put across widths and a wider network is never worse; under SP it moves
towards smaller rates as the width grows.

Random streams: ``transfer_inputs`` (the training set) and
``transfer_networks`` (the networks).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from replication.data import sphere_inputs
from replication.experiments.mup.networks import LABELS, Networks
from replication.report import Claim, Figure, Findings, Section, fmt, markdown_table
from replication.sweep import Streams, progress
from replication.train import fit, mse

SECTION = "Learning-rate transfer"
COMPARED = ("standard", "mup")


@dataclass(frozen=True)
class Config:
    networks: Networks = field(default_factory=Networks)
    widths: tuple[int, ...] = (128, 256, 512)   # the full preset to 8192
    base_width: int = 128                 # muP equals SP here
    depth: int = 2
    n_inputs: int = 64                    # the training set, inputs on the sphere
    log2_learning_rates: tuple[int, ...] = tuple(range(-8, 3))   # the grid: 2^k
    steps: int = 60                       # the fixed budget of SGD steps
    seeds: int = 3                        # independent networks per width
    # z-score of one width's best loss above the narrower width's best loss that
    # still counts as "not worse": two standard errors of the difference.
    z_tolerance: float = 2.0


@dataclass
class Transfer:
    """``losses[p]``: final training loss ``(n_widths, seeds, n_learning_rates)``, ``inf`` where a
    run diverged; ``learning_rates`` the grid."""

    learning_rates: np.ndarray
    losses: dict[str, np.ndarray]


def training_set(config: Config, streams: Streams) -> tuple[jax.Array, jax.Array]:
    """Inputs on the sphere, target ``sin(2 x_1) + cos(x_2 x_3) / 2``."""
    x = sphere_inputs(streams.key("transfer_inputs"), config.n_inputs, config.networks.input_dim)
    return x, jnp.sin(2 * x[:, :1]) + 0.5 * jnp.cos(x[:, 1:2] * x[:, 2:3])


def _grid_fn(module, optimizer, steps: int):
    """All seeds and learning rates of one width in one compiled program.

    SGD with step ``eta`` on a loss ``L`` is SGD with step 1 on ``eta L``
    (per-layer factors included), so the learning rate enters as a traced
    argument and one program serves the whole grid.
    """
    def loss(p, x, y, eta):
        return eta * mse(module.apply(p, x), y)

    def one(p, eta, x, y):
        run = fit(loss, p, optimizer, steps, args=(x, y, eta))
        final = mse(module.apply(run.params, x), y)
        return jnp.where(run.diverged | ~jnp.isfinite(final), jnp.inf, final)

    over_lrs = jax.vmap(one, in_axes=(None, 0, None, None))
    return jax.jit(jax.vmap(over_lrs, in_axes=(0, None, None, None)))


def measure(config: Config, streams: Streams) -> Transfer:
    x, y = training_set(config, streams)
    lrs = 2.0 ** np.asarray(config.log2_learning_rates, dtype=np.float64)
    losses = {}
    with progress(len(COMPARED) * len(config.widths), "mup learning-rate transfer") as bar:
        for p in COMPARED:
            a = np.empty((len(config.widths), config.seeds, len(lrs)))
            for i, w in enumerate(config.widths):
                spec = config.networks.spec(p, w, config.depth, config.base_width)
                module = spec.flax()
                keys = jnp.stack([streams.network("transfer_networks", w, s) for s in range(config.seeds)])
                params = jax.vmap(module.init, (0, None))(keys, x)
                fn = _grid_fn(module, spec.optimizer("sgd", 1.0), config.steps)
                a[i] = np.asarray(fn(params, jnp.asarray(lrs, jnp.float32), x, y))
                bar.update()
            losses[p] = a
    return Transfer(lrs, losses)


def best_learning_rates(losses: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per width, the grid index of least mean loss over seeds, that loss and its standard error."""
    mean = losses.mean(axis=1)  # (widths, lrs); inf where a seed diverged
    best = np.argmin(mean, axis=1)
    best_loss = mean[np.arange(losses.shape[0]), best]
    se = np.array([np.std(losses[i, :, best[i]], ddof=1) / np.sqrt(losses.shape[1])
                   for i in range(losses.shape[0])])
    return best, best_loss, se


def findings(config: Config, result: Transfer) -> Findings:
    best = {p: best_learning_rates(a) for p, a in result.losses.items()}
    shift = {p: int(b[0].max() - b[0].min()) for p, b in best.items()}
    _, loss, se = best["mup"]
    z = (loss[1:] - loss[:-1]) / np.sqrt(se[1:] ** 2 + se[:-1] ** 2)
    widths = config.widths
    span = f"{widths[0]}-{widths[-1]}"
    claims = [
        Claim(id="mup_transfer_mup_best_lr_stable", section=SECTION,
              statement=f"muP: best learning rate across widths {span} (grid steps of 2x)",
              prediction="moves at most one grid step", expected=1, measured=shift["mup"], ci=None,
              tolerance=0, relation="<="),
        Claim(id="mup_transfer_sp_best_lr_shifts", section=SECTION,
              statement=f"SP: best learning rate across widths {span} (grid steps of 2x)",
              prediction="moves by more than one grid step", expected=2, measured=shift["standard"], ci=None,
              tolerance=0, relation=">="),
        Claim(id="mup_transfer_wider_is_better", section=SECTION,
              statement="muP: best loss of each width against the next narrower one (z-score of the increase)",
              prediction="a wider network is never worse", expected=0.0, measured=float(np.max(z)), ci=None,
              tolerance=config.z_tolerance, relation="<="),
    ]
    series = {"transfer": {"widths": list(widths), "learning_rates": result.learning_rates,
                           **{f"loss/{p}": a for p, a in result.losses.items()},
                           **{f"best_index/{p}": b[0] for p, b in best.items()},
                           **{f"best_loss/{p}": b[1] for p, b in best.items()}, "z_wider": z}}
    section = Section(SECTION, _prose(config, result, best, shift, z), [Figure(
        "lr_transfer", _figure(config, result), "Training loss against learning rate, one line per width "
        "(geometric mean over seeds). Theory: SP's optimum moves left as the width grows, muP's stays; "
        "the table above says where each width's optimum is.")])
    return Findings(claims, [section], series)


def _figure(config: Config, result: Transfer):
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, p in zip(axes, COMPARED):
        for i, w in enumerate(config.widths):
            a = result.losses[p][i]
            # A learning rate where any seed diverged is a gap in the curve.
            m = np.where(np.all(np.isfinite(a), axis=0),
                         np.exp(np.mean(np.log(np.where(np.isfinite(a), a, 1.0)), axis=0)), np.nan)
            ax.plot(np.log2(result.learning_rates), m, "o-", ms=3,
                    color=plt.cm.viridis(i / max(len(config.widths) - 1, 1)), label=f"width {w}")
        ax.set(xlabel="log2 learning rate", title=LABELS[p], yscale="log")
        ax.grid(alpha=0.25)
    axes[0].set_ylabel(f"training loss after {config.steps} steps")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def _prose(config: Config, result: Transfer, best: dict, shift: dict, z: np.ndarray) -> str:
    lrs, k = result.learning_rates, config.log2_learning_rates
    rows = [[w, *(f"{fmt(lrs[best[p][0][i]])} ({best[p][1][i]:.4f} +- {best[p][2][i]:.4f})" for p in COMPARED)]
            for i, w in enumerate(config.widths)]
    return f"""
Training loss (mse) after {config.steps} steps of full-batch SGD on {config.n_inputs} inputs on the
sphere in R^{config.networks.input_dim} (target sin(2 x_1) + cos(x_2 x_3) / 2), MLPs of depth
{config.depth} ({config.networks.activation}), learning rates 2^k for k = {k[0]} ... {k[-1]},
{config.seeds} seeds; muP's base width is {config.base_width}, where it equals SP. A run whose loss
became NaN or infinite counts as diverged and its learning rate as unusable at that width (a gap in the
curve). The figure follows Tensor Programs V, Figure 1.

Best learning rate per width (the grid point of least mean loss over seeds), with that loss (mean +- standard error):

{markdown_table(["width", "SP: best lr (loss)", "muP: best lr (loss)"], rows)}

The best learning rate moves by {shift['standard']} grid steps under SP and by {shift['mup']} under muP. Under
muP the best loss changes from one width to the next by z-scores {", ".join(f"{v:+.1f}" for v in z)}
(negative: the wider network is better).
"""
