"""lazy: why the NTK regime cannot learn features.

Theory. Under the NTK parameterization every parameter of a network of
width `N` moves by `O(N^(-1/2))` in training (Jacot et al. 2018; Lee et al.
2019): the gradient of the output with respect to one hidden unit's weights
carries the readout's `1/sqrt(N)`, and the training time needed to reach a
given loss is `O(1)`. Relative to their size at initialisation the hidden
weights and the hidden features `phi(x)` therefore move as `N^(-1/2)`, and
the empirical NTK moves by at most `O(N^(-1/2))` (Lee et al. 2019,
Theorem 2.1); the kernel's sharper rate is `N^(-1)` for smooth activations
(Dyer and Gur-Ari 2020) and lies between the two for ReLU. In the limit the
features are those of initialisation and the trained network is kernel
regression with the NTK: it cannot adapt its features to the task. On a
target that depends on one direction of high-dimensional inputs, where
learned features pay, wide NTK-parameterized networks approach the
closed-form NTK predictor's test error, while muP networks of the same
widths, which move their features by `O(1)` at every width (Yang and Hu
2021), beat it. Laziness is a matter of scale, not of width: multiplying a
fixed network's centred output by `alpha` and its loss by `alpha^(-2)` leaves
the function-space dynamics unchanged to first order and moves the
parameters, and with them the features, by `O(alpha^(-1))` (Chizat, Oyallon
and Bach 2019).

Measured here: the three relative changes against width for NTK-parameterized
one-hidden-layer ReLU networks trained to a fixed loss; the test error of the
same networks against closed-form NTK gradient descent stopped at the same
step, and against muP networks of the same widths; and the feature change of
one network against `alpha`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from jax.experimental import enable_x64
from scipy import stats as _st

from replication.arch import MLP
from replication.data import single_index
from replication.kernels import empirical_ntk, readout_input
from replication.report import Claim, Figure, Report, Section, fmt, loglog_figure, markdown_table
from replication.stats import fit_power_law, relative_frobenius_error
from replication.sweep import network_key, progress
from replication.train import fit_to_loss_ensemble, mse

SECTION_LADDER = "Under NTK parameterization the weights, the features and the kernel freeze"
SECTION_QUALITY = "Frozen features cost test error: NTK networks, their kernel, and muP"
SECTION_ALPHA = "Lazy training by output scaling"


@dataclass(frozen=True)
class Config:
    seed: int = 0
    # The task: y = g(<u, x>), x on the sphere in R^input_dim (replication.data.single_index).
    input_dim: int = 16
    n_train: int = 128
    n_test: int = 512
    n_kernel: int = 64            # test inputs on which the empirical NTK's change is measured
    # The networks: one hidden layer.
    activation: str = "relu"
    W_std: float = 2**0.5
    b_std: float = 0.1
    widths: tuple[int, ...] = (16, 64, 256, 1024, 4096, 8192)
    seeds: int = 4
    # Every network is trained by full-batch SGD on mse until its training loss
    # is target_fraction of the initial loss (1/2 mean y^2: outputs are centred).
    target_fraction: float = 3e-3
    # NTK parameterization: step = ntk_lr_fraction * 2 n / lambda_max of the
    # closed-form training NTK (the stability limit of the limit's dynamics);
    # at most step_margin times the steps the limit needs.
    ntk_lr_fraction: float = 0.5
    step_margin: float = 5.0
    # muP: equal to SP at the base width, where the step is mup_lr_fraction of
    # the stability limit 2 n / lambda_max of the empirical NTK; muP's
    # per-layer factors carry it to the other widths.
    mup_base_width: int = 32
    mup_lr_fraction: float = 0.5
    mup_max_steps: int = 4000
    # Lazy training by output scaling: one muP network of this width, centred
    # output times alpha, loss divided by alpha^2.
    alpha_width: int = 256
    alphas: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)
    alpha_seeds: int = 4
    # Fluctuations across seeds and corrections of relative order N^(-1/2)
    # bend the narrow end of a ladder; a 0.1 band on an exponent absorbs them
    # (as in nngp, ntk and mup).
    exponent_tolerance: float = 0.1
    # "Not better than the kernel": the NTK networks' mean test error at the
    # widest width may fall below the kernel's by at most this many standard
    # errors of the mean over seeds (the Monte Carlo error of that mean).
    z_tolerance: float = 2.0


PRESETS = {"quick": Config(),
           "full": Config(widths=(16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768), seeds=16,
                          n_test=2048, alpha_width=1024, alphas=tuple(2.0**k for k in range(11)),
                          alpha_seeds=16)}
OPTIONS = {"widths": "widths", "seeds": "seeds"}


# ---------------------------------------------------------------------------
# Data, models, learning rates.

def task(config: Config):
    """``x_train, y_train, x_test, y_test, u``: direction, training and test inputs from independent keys."""
    keys = [jax.random.PRNGKey(config.seed + k) for k in (100, 101, 102)]
    return single_index(*keys, config.n_train, config.n_test, config.input_dim)


def spec_of(parameterization: str, width: int, config: Config) -> MLP:
    return MLP(width, 1, config.activation, W_std=config.W_std, b_std=config.b_std,
               parameterization=parameterization,
               base_width=config.mup_base_width if parameterization == "mup" else None)


def target_loss(config: Config, y_train) -> float:
    return float(config.target_fraction * 0.5 * np.mean(np.asarray(y_train, np.float64) ** 2))


def ntk_learning_rate(config: Config, k_train: np.ndarray) -> float:
    return float(config.ntk_lr_fraction * 2 * config.n_train / np.linalg.eigvalsh(k_train)[-1])


def mup_learning_rate(config: Config, x_train) -> float:
    """``mup_lr_fraction`` of ``2 n / lambda_max`` of one network's empirical NTK at the base width."""
    spec = spec_of("standard", config.mup_base_width, config)
    module = spec.flax()
    k = np.asarray(empirical_ntk(module.apply, module.init(network_key(config.seed, 0, 0), x_train), x_train))
    return float(config.mup_lr_fraction * 2 * x_train.shape[0] / np.linalg.eigvalsh(k)[-1])


@lru_cache(maxsize=None)
def scaled_model(apply_fn):
    """``(outputs, loss)`` of the centred, scaled model of Chizat, Oyallon and Bach (2019).

    ``outputs(params, f0, x, alpha) = alpha * (f(params, x) - f0)`` with ``f0 = f(params_0, x)``
    (zero at initialisation), and ``loss(params, f0, x, y, alpha) = mse(outputs, y) / alpha^2``:
    gradient descent on it moves the outputs as the unscaled model's to first order, whatever
    ``alpha``, and the parameters by ``O(1 / alpha)``. ``alpha = 1`` is the centred network.
    One pair of function objects per ``apply_fn``, so a ladder compiles once per shape.
    """
    def outputs(params, f0, x, alpha):
        return alpha * (apply_fn(params, x) - f0)

    def loss(params, f0, x, y, alpha):
        return mse(outputs(params, f0, x, alpha), y) / alpha**2

    return outputs, loss


@lru_cache(maxsize=None)
def _measure_fn(module):
    """Per member: relative change of the hidden weights and features, test outputs, training loss."""
    outputs, loss = scaled_model(module.apply)

    def measure(p, p0, x_train, y_train, x_test, alpha):
        w, w0 = p["params"]["dense_0"]["kernel"], p0["params"]["dense_0"]["kernel"]
        phi, phi0 = readout_input(module, p, x_test), readout_input(module, p0, x_test)
        f0_train = module.apply(p0, x_train)
        return {"weights": jnp.linalg.norm(w - w0) / jnp.linalg.norm(w0),
                "features": jnp.linalg.norm(phi - phi0) / jnp.linalg.norm(phi0),
                "test_outputs": outputs(p, module.apply(p0, x_test), x_test, alpha)[:, 0],
                "train_mse": mse(outputs(p, f0_train, x_train, alpha), y_train)}

    return jax.jit(jax.vmap(measure, in_axes=(0, 0, None, None, None, None)))


def train_members(spec: MLP, keys, data, optimizer, target: float, max_steps: int, alpha: float = 1.0,
                  kernel_inputs=None) -> dict:
    """Initialise one network per key, train each to ``target``, measure what moved.

    Returns arrays over members: ``weights`` and ``features`` (relative
    changes), ``kernel`` (the empirical NTK's relative change on
    ``kernel_inputs``, if given), ``test_outputs`` ``(members, n_test)``,
    ``test_mse``, ``train_mse``, ``steps``, ``diverged`` and ``reached``.
    """
    x_train, y_train, x_test, y_test = data
    module = spec.flax()
    outputs, loss = scaled_model(module.apply)
    p0 = jax.vmap(module.init, (0, None))(keys, x_train)
    f0 = jax.vmap(module.apply, (0, None))(p0, x_train)
    # The loss is mse / alpha^2, so mse <= target is loss <= target / alpha^2.
    run = fit_to_loss_ensemble(loss, p0, optimizer, target / alpha**2, max_steps, member_args=(f0,),
                               args=(x_train, y_train, jnp.float32(alpha)))
    m = {k: np.asarray(v, np.float64) for k, v in
         _measure_fn(module)(run.params, p0, x_train, y_train, x_test, jnp.float32(alpha)).items()}
    m["test_mse"] = np.mean((m["test_outputs"] - np.asarray(y_test, np.float64)[None, :, 0]) ** 2, axis=1)
    m["steps"] = np.asarray(run.steps)
    m["diverged"] = np.asarray(run.diverged)
    m["reached"] = m["train_mse"] <= target * (1 + 1e-3)   # float32 rounding of the rescaled loss
    if kernel_inputs is not None:
        m["kernel"] = np.array([relative_frobenius_error(
            empirical_ntk(module.apply, _member(run.params, s), kernel_inputs),
            empirical_ntk(module.apply, _member(p0, s), kernel_inputs)) for s in range(keys.shape[0])])
    bad = m["diverged"]
    for k in ("weights", "features", "kernel", "test_mse", "train_mse"):
        if k in m:
            m[k] = np.where(bad, np.nan, m[k])
    return m


def _member(tree, i: int):
    return jax.tree_util.tree_map(lambda a: a[i], tree)


# ---------------------------------------------------------------------------
# The closed form: the infinite-width network's gradient descent.

@dataclass(frozen=True)
class LimitDynamics:
    """Discrete gradient descent on mse with the closed-form NTK, from zero outputs.

    With ``K = V diag(lam) V^T`` on the training inputs and step ``eta``, after
    ``t`` steps the training residual is ``V (1 - eta lam / n)^t V^T (-y)`` and
    the test outputs are ``K_te,tr V diag((1 - (1 - eta lam / n)^t) / lam) V^T y``:
    the step-by-step version of ``nt.predict.gradient_descent_mse`` (which
    solves the flow, ``exp(-eta lam t / n)``), so that a network trained by the
    same discrete steps is compared with its own limit, not with the flow.
    """

    lam: np.ndarray
    V: np.ndarray
    k_test_train: np.ndarray
    y: np.ndarray
    eta: float

    @classmethod
    def of(cls, spec: MLP, x_train, y_train, x_test, eta: float) -> "LimitDynamics":
        with enable_x64():
            kernel_fn = spec.stax()[2]
            xtr, xte = jnp.asarray(x_train, jnp.float64), jnp.asarray(x_test, jnp.float64)
            k = np.asarray(kernel_fn(xtr, None, "ntk"))
            kt = np.asarray(kernel_fn(xte, xtr, "ntk"))
        lam, V = np.linalg.eigh(k)
        return cls(lam, V, kt, np.asarray(y_train, np.float64)[:, 0], float(eta))

    def _decay(self, t):
        return (1 - self.eta * self.lam / self.lam.shape[0]) ** np.asarray(t, np.float64)

    def train_loss(self, t) -> float:
        r = self._decay(t) * (self.V.T @ self.y)
        return float(0.5 * np.mean(r**2))

    def test_outputs(self, t) -> np.ndarray:
        coef = (1 - self._decay(t)) / self.lam * (self.V.T @ self.y)
        return self.k_test_train @ (self.V @ coef)

    def regression(self) -> np.ndarray:
        """``t -> infinity``: kernel regression ``K_te,tr K^-1 y``."""
        return self.k_test_train @ (self.V @ ((self.V.T @ self.y) / self.lam))

    def steps_to(self, target: float, limit: int = 10**7) -> int:
        """The first step at which the training loss is ``<= target``."""
        lo, hi = 0, 1
        while self.train_loss(hi) > target:
            lo, hi = hi, 2 * hi
            if hi > limit:
                raise ValueError(f"the limit does not reach loss {target} within {limit} steps")
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if self.train_loss(mid) <= target else (mid, hi)
        return hi


# ---------------------------------------------------------------------------
# The study.

def trained_ladders(config: Config, kernel: bool = True):
    """The task, its closed-form limit, and NTK-parameterized and muP networks at every width.

    Returns ``(results, limit, data, settings)``: ``results[p][measure]`` of
    ``train_members`` stacked over widths, shape ``(n_widths, seeds, ...)``,
    for ``p`` in ``("ntk", "mup")``; ``limit`` the closed-form NTK network's
    ``LimitDynamics``; ``data = (x_train, y_train, x_test, y_test)``;
    ``settings`` the target loss, both learning rates, the limit's step count
    to the target and the NTK networks' step cap. ``kernel=False`` skips the
    empirical NTK's change.
    """
    x_train, y_train, x_test, y_test, _ = task(config)
    data = (x_train, y_train, x_test, y_test)
    target = target_loss(config, y_train)
    spec = spec_of("ntk", config.widths[0], config)
    with enable_x64():
        k_train = np.asarray(spec.stax()[2](jnp.asarray(x_train, jnp.float64), None, "ntk"))
    limit = LimitDynamics.of(spec, x_train, y_train, x_test, ntk_learning_rate(config, k_train))
    mup_lr = mup_learning_rate(config, x_train)
    res, t_star, ntk_steps = width_ladders(config, data, limit, target, mup_lr, kernel)
    settings = {"target": target, "ntk_lr": limit.eta, "mup_lr": mup_lr, "t_star": t_star, "ntk_steps": ntk_steps}
    return res, limit, data, settings


def width_ladders(config: Config, data, limit: LimitDynamics, target: float, mup_lr: float, kernel: bool = True):
    """NTK-parameterized and muP networks at every width, trained to the same loss."""
    x_train, _, x_test, _ = data
    t_star = limit.steps_to(target)
    ntk_steps = int(np.ceil(config.step_margin * t_star))
    ntk_opt = optax.sgd(limit.eta)
    out = {"ntk": [], "mup": []}
    with progress(2 * len(config.widths), "lazy width ladders") as bar:
        for w in config.widths:
            keys = jnp.stack([network_key(config.seed, w, s) for s in range(config.seeds)])
            out["ntk"].append(train_members(spec_of("ntk", w, config), keys, data, ntk_opt, target, ntk_steps,
                                            kernel_inputs=x_test[:config.n_kernel] if kernel else None))
            bar.update()
            spec = spec_of("mup", w, config)
            out["mup"].append(train_members(spec, keys, data, spec.optimizer("sgd", mup_lr), target,
                                            config.mup_max_steps))
            bar.update()
    stacked = {p: {k: np.stack([r[k] for r in rows]) for k in rows[0]} for p, rows in out.items()}
    return stacked, t_star, ntk_steps


def distance_to_limit(results: dict, limit: LimitDynamics, step: int | None = None) -> np.ndarray:
    """RMS distance of trained networks' test outputs from the limit's, shape ``(n_widths, seeds)``.

    The limit is taken at each network's own stopping step, or at ``step``
    for all; NaN for a diverged run.
    """
    out = np.full(results["steps"].shape, np.nan)
    for i, s in np.ndindex(out.shape):
        if not results["diverged"][i, s]:
            t = results["steps"][i, s] if step is None else step
            out[i, s] = np.sqrt(np.mean((results["test_outputs"][i, s] - limit.test_outputs(t)) ** 2))
    return out


def _fit_ok(widths, a):
    """Power law over the widths where every seed gave a positive finite value (diverged runs are NaN)."""
    ok = np.all(np.isfinite(a) & (a > 0), axis=1)
    return (fit_power_law(np.asarray(widths)[ok], a[ok]) if ok.sum() >= 2 else None), ok


def _ms(a):
    a = np.asarray(a, np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return "n/a"
    return f"{np.mean(a):.3g} +- {np.std(a, ddof=1):.2g}" if a.size > 1 else f"{a[0]:.3g}"


def ladder_section(config: Config, res, fits, settings):
    widths = config.widths
    ntk = res["ntk"]
    claims = []
    for key, what in (("weights", "hidden weights"), ("features", "hidden features phi(x) on held-out inputs")):
        f = fits[key]
        claims.append(Claim(
            id=f"lazy_ntk_{key}_rate", section=SECTION_LADDER,
            statement=f"NTK param, trained to a fixed loss: relative change of the {what}",
            prediction="~ width^(-1/2)", expected=-0.5, measured=None if f is None else f.exponent,
            ci=None if f is None else f.ci, tolerance=config.exponent_tolerance))
    f = fits["kernel"]
    claims.append(Claim(
        id="lazy_ntk_kernel_rate", section=SECTION_LADDER,
        statement="NTK param, trained to a fixed loss: relative change of the empirical NTK on held-out inputs",
        prediction="<~ width^(-1/2) (Lee et al. 2019, Thm 2.1)", expected=-0.5,
        measured=None if f is None else f.exponent, ci=None if f is None else f.ci,
        tolerance=config.exponent_tolerance, relation="<="))
    rows = [[w, _ms(ntk["weights"][i]), _ms(ntk["features"][i]), _ms(ntk["kernel"][i]),
             _ms(res["mup"]["features"][i]), _ms(ntk["steps"][i]),
             int(np.sum(ntk["diverged"][i])), int(np.sum(~ntk["reached"][i]))]
            for i, w in enumerate(widths)]
    fit_rows = [[k, f"{fits[k].exponent:+.3f} [{fits[k].ci[0]:+.3f}, {fits[k].ci[1]:+.3f}]", fmt(fits[k].prefactor)]
                for k in ("weights", "features", "kernel") if fits[k] is not None]
    figure = loglog_figure(
        {"NTK parameterization": {
            "hidden weights": (widths, ntk["weights"], fits["weights"]),
            "hidden features (held-out)": (widths, ntk["features"], fits["features"]),
            "empirical NTK (held-out)": (widths, ntk["kernel"], fits["kernel"])},
         "muP, same task and loss": {
            "hidden weights": (widths, res["mup"]["weights"], None),
            "hidden features (held-out)": (widths, res["mup"]["features"], None)}},
        xlabel="width", ylabel="relative change, trained vs init", reference_exponent=-0.5,
        reference_label="width^(-1/2)")
    body = f"""
One-hidden-layer {config.activation} networks (W_std = {fmt(config.W_std)}, b_std = {fmt(config.b_std)}) in NTK
parameterization at widths {", ".join(map(str, widths))}, {config.seeds} seeds each, trained by full-batch
gradient descent (optax SGD) on `mse` over the {config.n_train} training inputs of the task below, from
centred outputs (f(x; w) - f(x; w_0), so every network starts at output 0 and the limit's dynamics start
from zero), until the training loss is {fmt(config.target_fraction)} of its initial value
({fmt(settings['target'])}): the same loss at every width. The step is {fmt(config.ntk_lr_fraction)} of the
stability limit 2 n / lambda_max of the closed-form training NTK, eta = {fmt(settings['ntk_lr'])}, the same at
every width; the infinite-width network reaches the target after {settings['t_star']} steps, and no network
was allowed more than {settings['ntk_steps']}.

Measured after training, relative to initialisation (Frobenius norms): the hidden layer's weight matrix
(d x N), the hidden features phi(x) = relu(h(x)) that the readout sees, on {config.n_test} held-out inputs,
and one network's empirical NTK (structured derivatives) on {config.n_kernel} held-out inputs. Mean +- sd
over seeds; the last columns count runs that diverged and runs that stopped at the step cap before
the target loss (none expected):

{markdown_table(["width", "weights", "features", "NTK", "muP features", "steps", "diverged", "not reached"], rows)}

Fitted exponents (95% interval over seeds) and prefactors, change ~ prefactor x width^exponent:

{markdown_table(["change of", "exponent", "prefactor"], fit_rows)}

**Why the kernel's claim is an upper bound.** Each hidden unit's features move by O(N^(-1/2)), in a
direction proportional to its own readout weight, whose sign is independent of the unit's features at
initialisation. The NTK is an average over the N units, so these first-order moves add up as a random
walk: O(N^(-1/2)) x N^(-1/2) = O(N^(-1)) for a smooth activation (Dyer and Gur-Ari 2020). For ReLU the
units whose pre-activation crosses 0 on some input (a fraction O(N^(-1/2))) change their derivative by
O(1), which gives about N^(-3/4); the `ntk` report measures the same. Lee et al.'s theorem bounds the
change by O(N^(-1/2)), and that bound is the claim; the weights and the features have no such
cancellation (each unit's change is counted in norm), and move as N^(-1/2) exactly. The muP column
shows the contrast: trained to the same loss on the same task, muP's features move by an amount that
does not vanish with width.
"""
    return claims, Section(SECTION_LADDER, body, [Figure(
        "ladder", figure, "Relative change in training against width (geometric mean over seeds, band: "
        "the seeds' range; thin lines: the fits). Left NTK parameterization, right muP.")])


def quality_section(config: Config, res, limit: LimitDynamics, data, settings):
    widths = np.asarray(config.widths)
    _, _, _, y_test = data
    y = np.asarray(y_test, np.float64)[:, 0]
    t_star = settings["t_star"]
    e_kernel = float(np.mean((limit.test_outputs(t_star) - y) ** 2))
    e_regression = float(np.mean((limit.regression() - y) ** 2))
    ntk, mup = res["ntk"], res["mup"]
    # The gap to the limit at each network's own stopping step.
    gap = distance_to_limit(ntk, limit)
    gap_fit, _ = _fit_ok(widths, gap)

    def ratio_stats(e):
        r = e / e_kernel
        r = r[np.isfinite(r)]
        if r.size < 2:
            return (float(np.mean(r)) if r.size else None), None, np.nan
        se = np.std(r, ddof=1) / np.sqrt(r.size)
        half = _st.t.ppf(0.975, r.size - 1) * se
        return float(np.mean(r)), (float(np.mean(r) - half), float(np.mean(r) + half)), se

    ntk_ratio, ntk_ci, ntk_se = ratio_stats(ntk["test_mse"][-1])
    mup_ratio, mup_ci, _ = ratio_stats(mup["test_mse"][-1])
    z = None if ntk_ratio is None or not np.isfinite(ntk_se) or ntk_se == 0 else float((ntk_ratio - 1) / ntk_se)
    claims = [
        Claim(id="lazy_quality_ntk_gap_rate", section=SECTION_QUALITY,
              statement="NTK param: test outputs against closed-form NTK gradient descent at the same step",
              prediction="RMS gap ~ width^(-1/2)", expected=-0.5,
              measured=None if gap_fit is None else gap_fit.exponent, ci=None if gap_fit is None else gap_fit.ci,
              tolerance=config.exponent_tolerance),
        Claim(id="lazy_quality_ntk_not_better", section=SECTION_QUALITY,
              statement=f"NTK param at width {widths[-1]}: test error against the closed form's "
                        "(z-score of the mean ratio's excess over 1)",
              prediction="not better than the kernel (ratio -> 1 from either side)", expected=0.0,
              measured=z, ci=None, tolerance=config.z_tolerance, relation=">="),
        Claim(id="lazy_quality_mup_better", section=SECTION_QUALITY,
              statement=f"muP at width {widths[-1]}: test error / closed-form NTK's",
              prediction="below 1: learned features beat the kernel", expected=1.0,
              measured=mup_ratio, ci=mup_ci, tolerance=0.0, relation="<="),
    ]
    rows = []
    for i, w in enumerate(widths):
        rows.append([w, _ms(ntk["test_mse"][i]), _ms(ntk["test_mse"][i] / e_kernel), _ms(gap[i]),
                     _ms(mup["test_mse"][i]), _ms(mup["test_mse"][i] / e_kernel), _ms(mup["steps"][i]),
                     int(np.sum(mup["diverged"][i])), int(np.sum(~mup["reached"][i] & ~mup["diverged"][i]))])
    fig, axes = plt.subplots(1, 2, figsize=(10.4, 4.2))
    ax = axes[0]
    for p, label, color in (("ntk", "NTK parameterization", "C0"), ("mup", "muP", "C1")):
        e = res[p]["test_mse"]
        ax.plot(widths, np.nanmean(e, axis=1), "o-", color=color, label=label)
        ax.fill_between(widths, np.nanmin(e, axis=1), np.nanmax(e, axis=1), color=color, alpha=0.15, lw=0)
    ax.axhline(e_kernel, color="k", ls="--", lw=1.2, label="closed-form NTK, same loss")
    ax.axhline(e_regression, color="k", ls=":", lw=1, label="closed-form NTK regression (t = inf)")
    ax.set(xscale="log", xlabel="width", ylabel="test mse", title="Test error, trained to the same loss")
    ax.set_xscale("log", base=2)
    ax.grid(alpha=0.25, which="both")
    ax.legend(fontsize=7)
    ax = axes[1]
    centre = np.exp(np.nanmean(np.log(gap), axis=1))
    ax.plot(widths, centre, "o", color="C0", label="NTK param vs its limit" +
            ("" if gap_fit is None else f" (slope {gap_fit.exponent:+.2f})"))
    if gap_fit is not None:
        ax.plot(widths, gap_fit.prefactor * widths.astype(float) ** gap_fit.exponent, "-", color="C0", lw=1)
    ax.plot(widths, 1.5 * centre[0] * (widths / widths[0]) ** -0.5, "k--", lw=1.2, label="width^(-1/2)")
    ax.set(xscale="log", yscale="log", xlabel="width", ylabel="RMS gap of test outputs",
           title="Distance to closed-form NTK gradient descent")
    ax.set_xscale("log", base=2)
    ax.grid(alpha=0.25, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    body = f"""
**The task.** Inputs uniform on the sphere of radius sqrt(d) in R^{config.input_dim}, {config.n_train} for
training and {config.n_test} for testing (independent keys), and a target that depends on one direction u:
y = g(<u, x>), g(z) = (relu(z) - 1/sqrt(2 pi)) / sqrt(1/2 - 1/(2 pi)) (one ReLU unit, mean 0 and variance
1). With n = {config.n_train} = {config.n_train // config.input_dim} d points a rotation-invariant kernel can
fit the target's linear part but little of its nonlinear part, which lives in the direction u: a network
that turns its features towards u can.

**Learning rates.** NTK parameterization: {fmt(config.ntk_lr_fraction)} of the stability limit
2 n / lambda_max of the closed-form training NTK, eta = {fmt(settings['ntk_lr'])} at every width. muP
(Tensor Programs V, Table 8, base width {config.mup_base_width}, where it is SP): {fmt(config.mup_lr_fraction)}
of the stability limit of one network's empirical NTK at the base width, eta = {fmt(settings['mup_lr'])}, with
muP's per-layer factors at the other widths; muP's learning rate transfers across widths (the `mup`
report's transfer section). muP networks are centred like the NTK ones, stop at the same training loss
({fmt(settings['target'])}), and may take up to {config.mup_max_steps} steps.

**The reference.** The infinite-width NTK network is gradient descent with the closed-form NTK from zero
outputs, step eta (`LimitDynamics`: the discrete-step form of `nt.predict.gradient_descent_mse`). Stopped
at the same training loss (step {t_star}) its test mse is {fmt(e_kernel)}; kernel regression (t = infinity)
has {fmt(e_regression)}; the target's variance is {fmt(float(np.var(y)))}. Each NTK network is compared
with the limit at its own stopping step.

Test mse (mean +- sd over {config.seeds} seeds) and its ratio to the closed form's {fmt(e_kernel)}; the
RMS distance of the NTK networks' test outputs from the limit's; muP's steps, diverged runs and runs that
stopped at the cap before the target:

{markdown_table(["width", "NTK: test mse", "NTK / kernel", "NTK: gap to limit", "muP: test mse",
                 "muP / kernel", "muP: steps", "muP diverged", "muP not reached"], rows)}

At width {widths[-1]} the NTK networks' test error is {fmt(ntk_ratio)} of the kernel's
{'' if ntk_ci is None else f'[{fmt(ntk_ci[0])}, {fmt(ntk_ci[1])}] '}(z = {fmt(z)}), and muP's
{fmt(mup_ratio)}{'' if mup_ci is None else f' [{fmt(mup_ci[0])}, {fmt(mup_ci[1])}]'}. The NTK networks'
distance from the limit falls as width^({fmt(None if gap_fit is None else gap_fit.exponent)}): in the limit
they are the kernel predictor, whose features are those of initialisation.
"""
    series = {"quality": {"width": list(widths), "kernel_test_mse": e_kernel, "regression_test_mse": e_regression,
                          "t_star": t_star, "ntk_test_mse": ntk["test_mse"], "mup_test_mse": mup["test_mse"],
                          "ntk_gap": gap, "ntk_gap_fit": gap_fit, "mup_steps": mup["steps"],
                          "mup_diverged": mup["diverged"], "mup_reached": mup["reached"]}}
    return claims, Section(SECTION_QUALITY, body, [Figure(
        "quality", fig, "Left: test error against width, NTK parameterization and muP, trained to the same "
        "training loss (line: mean, band: range over seeds), against the closed-form NTK network stopped at "
        "that loss. Right: the NTK networks' distance from it.")]), series


def alpha_section(config: Config, data, target: float, mup_lr: float):
    spec = spec_of("mup", config.alpha_width, config)
    optimizer = spec.optimizer("sgd", mup_lr)
    keys = jnp.stack([network_key(config.seed + 1, config.alpha_width, s) for s in range(config.alpha_seeds)])
    alphas = np.asarray(config.alphas, np.float64)
    rows_ = []
    with progress(len(alphas), "lazy output scaling") as bar:
        for a in alphas:
            rows_.append(train_members(spec, keys, data, optimizer, target, config.mup_max_steps, alpha=float(a)))
            bar.update()
    res = {k: np.stack([r[k] for r in rows_]) for k in rows_[0]}
    fits = {k: _fit_ok(alphas, res[k])[0] for k in ("weights", "features")}
    f = fits["features"]
    claims = [Claim(
        id="lazy_alpha_features_rate", section=SECTION_ALPHA,
        statement=f"Output scaled by alpha, loss by alpha^-2 (muP, width {config.alpha_width}): "
                  "relative change of the hidden features",
        prediction="~ alpha^(-1) (Chizat, Oyallon and Bach 2019)", expected=-1.0,
        measured=None if f is None else f.exponent, ci=None if f is None else f.ci,
        tolerance=config.exponent_tolerance)]
    rows = [[fmt(a), _ms(res["weights"][i]), _ms(res["features"][i]), _ms(res["test_mse"][i]),
             _ms(res["steps"][i]), int(np.sum(res["diverged"][i])), int(np.sum(~res["reached"][i]))]
            for i, a in enumerate(alphas)]
    figure = loglog_figure(
        {f"muP, width {config.alpha_width}": {
            "hidden weights": (alphas, res["weights"], fits["weights"]),
            "hidden features (held-out)": (alphas, res["features"], fits["features"])}},
        xlabel="alpha", ylabel="relative change, trained vs init", reference_exponent=-1.0,
        reference_label="alpha^(-1)")
    body = f"""
Chizat, Oyallon and Bach (2019): for a model h(w) with h(w_0) = 0, gradient descent on
L(alpha h(w)) / alpha^2 moves alpha h by the same amount per step whatever alpha (the gradient is
J^T (alpha h - y) / alpha and the output moves by alpha J dw), so the function-space dynamics are those
of the unscaled model to first order, while the parameters move by O(1 / alpha): large alpha is lazy
training at any width. Here h is the muP network of width {config.alpha_width} of the section above,
centred (h(x; w) = f(x; w) - f(x; w_0)), with the same step eta = {fmt(mup_lr)} (its base optimizer
with muP's per-layer factors) and trained to the same loss, for alpha = {", ".join(fmt(a) for a in alphas)},
{config.alpha_seeds} seeds. Mean +- sd over seeds:

{markdown_table(["alpha", "weights", "features", "test mse", "steps", "diverged", "not reached"], rows)}

The features' change falls as alpha^({fmt(None if f is None else f.exponent)})
{'' if f is None else f'[{fmt(f.ci[0])}, {fmt(f.ci[1])}]'}; the weights' as
alpha^({fmt(None if fits['weights'] is None else fits['weights'].exponent)}). As the features freeze, the
test error rises from muP's towards the kernel regime's: the same network, the same data, the same step,
and only the output's scale decides whether it learns features.
"""
    series = {"alpha": {"alpha": alphas, "width": config.alpha_width, **{k: res[k] for k in
              ("weights", "features", "test_mse", "steps", "diverged", "reached")},
              "fits": {k: v for k, v in fits.items() if v is not None}}}
    return claims, Section(SECTION_ALPHA, body, [Figure(
        "alpha", figure, "Relative change in training against the output scale alpha (geometric mean over "
        "seeds, band: range). Dashed: alpha^(-1).")]), series


def run(config: Config) -> Report:
    res, limit, data, settings = trained_ladders(config)
    fits = {k: _fit_ok(config.widths, res["ntk"][k])[0] for k in ("weights", "features", "kernel")}
    c1, s1 = ladder_section(config, res, fits, settings)
    c2, s2, d2 = quality_section(config, res, limit, data, settings)
    c3, s3, d3 = alpha_section(config, data, settings["target"], settings["mup_lr"])
    series = {"ladder": {"width": list(config.widths), **settings,
                         **{f"ntk/{k}": res["ntk"][k] for k in ("weights", "features", "kernel", "steps",
                                                                "diverged", "reached")},
                         **{f"mup/{k}": res["mup"][k] for k in ("weights", "features")},
                         "fits": {k: v for k, v in fits.items() if v is not None}},
              **d2, **d3}
    return Report(experiment="lazy", title="Why the NTK regime cannot learn features",
                  summary=__doc__.split("\n\n", 1)[1], claims=c1 + c2 + c3, sections=[s1, s2, s3],
                  series=series,
                  precision="float32 networks, training and empirical NTKs; closed-form NTK and its "
                            "gradient-descent dynamics in float64")
