"""Trained networks against the closed-form NTK from their own initialisation, at the same step.

A network trained by full-batch gradient descent on mse follows the
closed-form NTK dynamics started from its own initial outputs (Lee et al.
2019), ``replication.dynamics.gradient_descent_mse`` at the same step, with a
gap in its test outputs of order ``width^(-1/2)``; so its test accuracy
approaches the one its NTK prediction has. For the linearised architectures
each network's linearisation around its init is trained beside it, which
splits the gap in two: the kernel's change in training (network vs its
linearisation) and the init kernel's fluctuation carried by the linear
dynamics (linearisation vs closed form). The same networks are also trained
centred, from the same inits in the same pass (``centred``). Every network is
stopped at a few early steps on its way, where its gap and its kernel's
change are measured, and each ladder has a wider width trained to those
steps only: the gap's rate is claimed where the kernel's change is first
order (``regime``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
import optax

from replication.arch import CNN
from replication.data import Digits
from replication.dynamics import Predictor, gradient_descent_mse, stable_step
from replication.experiments.digits import centred, regime
from replication.experiments.digits.task import (ACCURACY_REASON, ARCHITECTURES, PAIRED_METHOD, Task,
                                                 accuracy, accuracy_panels, closed_form, finish_panels,
                                                 inputs_of, rms)
from replication.kernels import empirical_ntk
from replication.report import (Claim, Figure, Findings, Section, fit_text, fmt, loglog_figure,
                                markdown_table, mean_sd, slopes_text)
from replication.stats import EXPONENT_BAND, finite_rows, fit_finite, local_slopes, paired_accuracy_difference
from replication.sweep import Streams, measured_once, progress
from replication.train import fit, linearized, linearized_loss, mse_loss

SECTION = "Trained networks against the NTK at the same training time"
NETWORK = ("acc_net", "acc_ntk", "rmse", "agree", "diverged", "loss_ratio")
# Per test image, 1 where it is classified right (NaN where not measured): the paired comparisons.
PER_IMAGE = ("correct_net", "correct_ntk", "correct_centred")
# Along training, per network: at each of the stops and at the last step, the RMS gap of the test outputs
# to the closed form at that step and ||Theta_N(t) - Theta_N(0)||_op on the kernel's training images;
# once: ||Theta_N(0) - Theta||_op there, and the kernel's relative change at the last step (Frobenius).
ALONG = ("gap_along", "kernel_change_along")
STOPPED = (*ALONG, "kernel_deviation", "kernel_relative_change")
LINEARISED = ("rmse_nonlinear", "rmse_linear", "diverged_linear")
SPLIT = ("rmse_nonlinear", "rmse_linear")


@dataclass(frozen=True)
class Ladder:
    """The widths an architecture is trained at (channels for the CNN); ``early``: wider ones trained
    only to ``Config.early_steps``, where the kernel's change is first order at the widest widths
    (``regime``), at a fraction of the cost."""

    widths: tuple[int, ...]
    early: tuple[int, ...] = ()


@dataclass(frozen=True)
class Config:
    task: Task = Task()
    architectures: tuple[str, ...] = ARCHITECTURES   # those trained
    mlp: Ladder = Ladder((16, 64, 256, 1024, 2048))  # depth 1
    # Depth 2 and 3 cost width^2 per step: a shorter ladder on the quick preset.
    deep_mlp: Ladder = Ladder((8, 32, 128, 512))
    cnn: Ladder = Ladder((2, 8, 32, 128))
    seeds: int = 3                     # independent networks per width
    # Architectures whose networks' linearisations are trained beside them, to split the gap
    # (as costly again as the networks: the full preset splits every architecture, the quick one none).
    linearise: tuple[str, ...] = ("mlp-1",)
    # Centred networks, f(x; theta) - f(x; theta_0): the same networks from the same inits, trained
    # from zero outputs at every width of the ladder, with the first `centred_seeds` seeds (None: all).
    # Their cost is the networks' again, mostly at the widest width: one seed on the quick preset.
    centred_seeds: int | None = 2
    lr_fraction: float = 0.5           # of the stability limit 2 n k / lambda_max of the closed-form NTK
    steps: int = 300
    # Steps at which every network is stopped on its way to ``steps``: its test outputs against the closed
    # form at that step, and how far its kernel has moved (``regime``). Early ones: the kernel's change
    # is first order there at the ladder's wide end.
    stops: tuple[int, ...] = (1, 2, 4, 8, 16)
    # Training images (the split's first, which keeps the data set's order; all of them where fewer) on
    # which each network's empirical NTK is computed at init and at every stop. ||Theta||_op / points
    # estimates the norm of the kernel's integral operator on any sample, as ||Theta||_op / n does on
    # the whole training set.
    kernel_points: int = 128
    # The ladders' ``early`` widths are trained through the stops up to this step only.
    early_steps: int = 4
    # The first-order cells, where the rate is claimed: epsilon of the kernel's change at most this (a
    # first-order expansion's relative error is O(epsilon); as in the regression experiment).
    small_epsilon: float = 0.1
    expected_exponent: float = -0.5
    # The gap is the kernel's O(width^-1/2) fluctuation carried by the dynamics.
    exponent_tolerance: float = EXPONENT_BAND
    # Accuracy differences on the same test images (trained networks against their own NTK
    # predictions, centred networks against the NTK mean predictor), paired image by image as in
    # McNemar's test. Theory says the difference tends to 0 and gives no finite-width size for
    # it: the band is a resolution of one point of accuracy (4.5 of the 450 test images).
    accuracy_band: float = 0.01

    @property
    def times(self) -> tuple[int, ...]:
        """The steps at which every network is measured: the stops, then ``steps``."""
        return (*self.stops, self.steps)

    @property
    def early_until(self) -> int | None:
        """The step the early widths are trained to: the last stop at or before ``early_steps``."""
        return max((t for t in self.stops if t <= self.early_steps), default=None)

    def ladder(self, name: str) -> tuple[int, ...]:
        return self._ladder(name).widths

    def early(self, name: str) -> tuple[int, ...]:
        """The widths trained only to ``early_steps``."""
        return self._ladder(name).early

    def _ladder(self, name: str) -> Ladder:
        if name.startswith("cnn"):
            return self.cnn
        return self.mlp if name == "mlp-1" else self.deep_mlp

    @property
    def n_centred(self) -> int:
        """Seeds trained centred at each width."""
        return self.seeds if self.centred_seeds is None else self.centred_seeds


@dataclass
class Result:
    n_train: int
    outputs: int
    n_test: int
    labels_test: np.ndarray
    networks: dict   # per architecture: ``sweep``'s arrays, its step and timings
    closed: dict     # per architecture: the closed forms at t -> infinity (``task.closed_form``)


@measured_once
def measure(config: Config, streams: Streams) -> Result:
    for name in config.linearise:
        if name not in config.architectures:
            raise ValueError(f"architecture {name!r} is linearised but not trained: add it to architectures")
    if not 0 <= config.n_centred <= config.seeds:
        raise ValueError(f"centred_seeds must be None or between 0 and seeds={config.seeds}, "
                         f"got {config.centred_seeds}")
    bounds = (0, *config.stops, config.steps)
    if any(a >= b for a, b in zip(bounds, bounds[1:])):
        raise ValueError(f"stops must increase strictly between 0 and steps={config.steps}, got {config.stops}")
    if any(config.early(name) for name in config.architectures) and config.early_until is None:
        raise ValueError(f"early widths need a stop at or before early_steps={config.early_steps}")
    data = config.task.data(streams)
    n, k = data.y_train.shape
    if config.kernel_points < 2:
        raise ValueError(f"kernel_points must be at least 2, got {config.kernel_points}")
    networks, closed = {}, {}
    for name in config.architectures:
        kernels, closed[name] = closed_form(config.task, name, streams)
        k_train, k_test_train = kernels["ntk"]
        lr = stable_step(k_train, config.lr_fraction, outputs=k)
        start = time.perf_counter()
        m = sweep(config, name, data, k_train, k_test_train, lr, streams)
        m["seconds"] = time.perf_counter() - start
        m["learning_rate"] = lr
        networks[name] = m
    return Result(n, k, data.y_test.shape[0], data.labels_test, networks, closed)


@dataclass
class Problem:
    """One architecture's training problem: inputs, targets, optimizer, and its closed-form NTK dynamics."""

    x_train: jax.Array
    x_test: jax.Array
    y_train: jax.Array
    labels_test: np.ndarray
    optimizer: optax.GradientTransformation
    steps: int
    predict: Predictor               # the closed-form NTK dynamics from given initial outputs
    k_test_train: np.ndarray
    mean_prediction: np.ndarray      # its test outputs at ``steps`` from zero outputs, (m, k)
    stops: tuple[int, ...]           # steps where the network is measured on its way to ``steps``
    x_kernel: jax.Array              # the training inputs of the empirical NTK at init and at each stop
    k_kernel: np.ndarray             # the closed-form NTK on them


def sweep(config: Config, name: str, data: Digits, k_train, k_test_train, lr: float,
          streams: Streams) -> dict:
    """For each width, ``seeds`` networks trained by ``fit``; each against the NTK from its own init.

    Arrays ``(n_widths, seeds)``: test accuracy of the network and of its
    closed-form NTK prediction at the same step, the RMS difference of their
    test outputs, the fraction of test images given the same class, and
    whether the run diverged; for a linearised architecture, the gap's two
    parts (``one_network``); for the first ``n_centred`` seeds, the centred
    networks' (``centred.one_network``), with the NTK mean predictor's test
    outputs ``mean_prediction`` and accuracy ``acc_mean_step``. NaN where not
    measured. A CNN is trained on its inputs' patches (``CNN.apply_on_patches``).
    """
    widths = config.ladder(name)
    spec = config.task.spec(name, widths[0])
    images = [jnp.asarray(inputs_of(spec, x)) for x in (data.x_train, data.x_test)]
    xtr, xte = (spec.patches(x) for x in images) if isinstance(spec, CNN) else images
    # Gradient descent's own closed form (the discrete recursion): the gap holds nothing of the
    # difference between gradient descent and the gradient flow.
    predict = gradient_descent_mse(k_train, data.y_train, lr, discrete=True)
    p = min(config.kernel_points, len(data.y_train))
    problem = Problem(xtr, xte, jnp.asarray(data.y_train), data.labels_test, optax.sgd(lr), config.steps,
                      predict, k_test_train, predict(config.steps, k_test_train=k_test_train)[1],
                      config.stops, xtr[:p], np.asarray(k_train, np.float64)[:p, :p])
    linearise, centre = name in config.linearise, config.n_centred > 0
    keys = (*NETWORK, "correct_net", "correct_ntk", *STOPPED, *(LINEARISED if linearise else ()),
            *(centred.MEASURED if centre else ()))
    trailing = {**{k: (len(data.labels_test),) for k in PER_IMAGE}, **{k: (len(config.times),) for k in ALONG}}
    m = {k: np.full((len(widths), config.seeds, *trailing.get(k, ())), np.nan) for k in keys}
    with progress(len(widths) + len(config.early(name)), f"digits {name}") as bar:
        for i, w in enumerate(widths):
            module, apply = _network(spec, w)
            for s in range(config.seeds):
                # One network at a time, with one program per width: vmapped over seeds,
                # XLA's CPU convolutions become grouped ones, many times slower.
                # Eager init: its primitives compile once per shape, where a jitted init costs
                # about a second of compilation per width and architecture.
                params = module.init(streams.network("networks", w, s), images[0][:1])
                for k, v in one_network(problem, apply, params, linearise, s < config.n_centred).items():
                    m[k][i, s] = v
            bar.update()
        early = config.early(name)
        e = {k: np.full((len(early), config.seeds, *trailing.get(k, ())), np.nan)
             for k in ("diverged", *ALONG, "kernel_deviation")}
        for i, w in enumerate(early):
            module, apply = _network(spec, w)
            for s in range(config.seeds):
                params = module.init(streams.network("networks", w, s), images[0][:1])
                for k, v in early_network(problem, apply, params, config.early_until).items():
                    e[k][i, s] = v
            bar.update()
        # How much the mean over outputs understates epsilon: one network, the ladder's widest, seed 0.
        module, apply = _network(spec, widths[-1])
        blocks = output_blocks(problem, apply, module.init(streams.network("networks", widths[-1], 0), images[0][:1]),
                               config.early_until or config.steps)
    out = {"width": list(widths), **m, "early": {"width": list(early), **e}, "output_blocks": blocks}
    if centre:
        out.update(mean_prediction=problem.mean_prediction, centred_seeds=config.n_centred,
                   acc_mean_step=accuracy(problem.mean_prediction, data.labels_test))
    return out


def _network(spec, width: int):
    """``(Flax module, apply)`` of ``spec`` at ``width``; a CNN is applied to its inputs' patches."""
    spec_w = spec.replace(width=width)
    module = spec_w.flax()
    return module, spec_w.apply_on_patches if isinstance(spec, CNN) else module.apply


@lru_cache(maxsize=None)
def jitted(fn):
    return jax.jit(fn)


def one_network(p: Problem, apply, params, linearise: bool, centre: bool) -> dict:
    """One network from ``params``, trained, against its closed-form NTK prediction from its own init.

    The network is stopped at ``p.stops`` on its way to ``p.steps``: at each
    stop and at the end, the RMS gap of its test outputs to the closed form
    at that step, and its empirical NTK's change since init on ``p.x_kernel``
    (``STOPPED``). ``linearise``: its linearisation too, trained with the
    same optimizer, which splits the RMS gap at the end (Lee et al. 2019):
    network vs its linearisation (``rmse_nonlinear``), linearisation vs the
    closed form (``rmse_linear``). ``centre``: the centred network from the
    same init (``centred``).
    """
    loss, forward = mse_loss(apply), jitted(apply)
    f0_tr, f0_te = forward(params, p.x_train), forward(params, p.x_test)
    out = centred.one_network(p, loss, forward, params, f0_tr, f0_te) if centre else {}
    run = _along(p, apply, params, f0_tr, f0_te, p.steps)
    f_te, own, diverged = run.pop("network"), run.pop("outputs"), run["diverged"]
    out.update(run, acc_ntk=accuracy(own, p.labels_test), correct_ntk=own.argmax(-1) == p.labels_test)
    f_lin_te = None
    if linearise:
        f_lin = linearized(apply)
        lin = fit(linearized_loss(f_lin), params, p.optimizer, p.steps, args=(params, p.x_train, p.y_train))
        # The linearisation's loss is a convex quadratic: below its stability step
        # gradient descent never raises it, so a raised loss is an unstable mode
        # growing geometrically (not yet overflowed), recorded as diverged.
        out["diverged_linear"] = bool(lin.diverged) or float(lin.losses[-1]) > float(lin.losses[0])
        if not out["diverged_linear"]:
            f_lin_te = np.asarray(jitted(f_lin)(lin.params, params, p.x_test), np.float64)
            out["rmse_linear"] = rms(f_lin_te - own)
    if diverged:
        return out  # recorded as diverged; its outputs are not measurements
    out.update(acc_net=accuracy(f_te, p.labels_test), correct_net=f_te.argmax(-1) == p.labels_test,
               rmse=out["gap_along"][-1], agree=float(np.mean(f_te.argmax(-1) == own.argmax(-1))))
    if f_lin_te is not None:
        out["rmse_nonlinear"] = rms(f_te - f_lin_te)
    return out


def early_network(p: Problem, apply, params, until: int) -> dict:
    """A network trained only through the stops up to ``until``: ``STOPPED``'s measures there (NaN after)."""
    forward = jitted(apply)
    run = _along(p, apply, params, forward(params, p.x_train), forward(params, p.x_test), until)
    pad = len(p.stops) + 1 - len(run["gap_along"])
    return {"diverged": run["diverged"], "kernel_deviation": run["kernel_deviation"],
            **{k: [*run[k], *[np.nan] * pad] for k in ALONG}}


def _along(p: Problem, apply, params, f0_tr, f0_te, until: int) -> dict:
    """Gradient descent from ``params`` to step ``until``, stopped at ``p.stops`` before it and at
    ``until``: at each, the test outputs' RMS gap to the closed form at that step and the kernel's change
    since init (``STOPPED``); with the test outputs of the ``network`` and of the closed form
    (``outputs``) at ``until``, divergence and the final over initial loss."""
    loss, forward = mse_loss(apply), jitted(apply)
    theta0 = _kernel(apply, params, p.x_kernel)
    out = {"kernel_deviation": _op_norm(theta0 - p.k_kernel), "gap_along": [], "kernel_change_along": []}
    current, t, diverged, first_loss = params, 0, False, None
    for stop in sorted({*(s for s in p.stops if s < until), until}):
        # Unit steps through the stops, then the rest in one call: two compiled programs per width.
        while t < stop:
            run = fit(loss, current, p.optimizer, 1 if stop in p.stops else stop - t, args=(p.x_train, p.y_train))
            current, t, diverged = run.params, t + len(run.losses), diverged or bool(run.diverged)
            first_loss = run.losses[0] if first_loss is None else first_loss
        own = p.predict(t, f0_tr, f0_te, p.k_test_train)[1]
        theta = _kernel(apply, current, p.x_kernel)
        f_te = np.asarray(forward(current, p.x_test), np.float64)
        out["gap_along"].append(rms(f_te - own))
        out["kernel_change_along"].append(_op_norm(theta - theta0))
    return {**out, "network": f_te, "outputs": own, "diverged": diverged,
            "loss_ratio": float(run.losses[-1] / first_loss),
            "kernel_relative_change": float(np.linalg.norm(theta - theta0) / np.linalg.norm(theta0))}


def output_blocks(p: Problem, apply, params, until: int, points: int = 32) -> dict:
    """The full ``(points k, points k)`` NTK's operator norms over the output-traced kernel's, on the first
    ``points`` of the kernel's images: of the change in training at step ``until`` (unit steps) and of
    the deviation at init from the closed form (``Theta x I_k``). ``>= 1``: the traced kernel's epsilon
    is a lower bound. Few images: the full kernel costs ``k^2`` times the traced one per pair."""
    import neural_tangents as nt

    full_fn = jax.jit(nt.empirical_ntk_fn(apply, trace_axes=(), vmap_axes=0,
                                          implementation=nt.NtkImplementation.STRUCTURED_DERIVATIVES))
    k = p.y_train.shape[1]

    x, closed = p.x_kernel[:points], p.k_kernel[:points, :points]

    def full(q):   # (points, points, k, k) -> (points k, points k), output index fastest
        a = np.asarray(full_fn(x, None, q), np.float64)
        return a.transpose(0, 2, 1, 3).reshape(a.shape[0] * k, a.shape[1] * k)

    current = params
    for _ in range(until):
        current = fit(mse_loss(apply), current, p.optimizer, 1, args=(p.x_train, p.y_train)).params
    f0, f1 = full(params), full(current)
    t0, t1 = _kernel(apply, params, x), _kernel(apply, current, x)
    return {"step": until, "points": int(x.shape[0]), "change": _op_norm(f1 - f0) / _op_norm(t1 - t0),
            "init_deviation": _op_norm(f0 - np.kron(closed, np.eye(k))) / _op_norm(t0 - closed)}


def _kernel(apply, params, x) -> np.ndarray:
    """The empirical NTK (mean over outputs) on ``x``, in float64."""
    return np.asarray(empirical_ntk(apply, params, x), np.float64)


def _op_norm(a: np.ndarray) -> float:
    """The operator norm of a symmetric matrix: its largest eigenvalue in absolute value (NaN where a
    diverged run left non-finite entries)."""
    return float(np.abs(np.linalg.eigvalsh(a)).max()) if np.all(np.isfinite(a)) else float("nan")


# ---------------------------------------------------------------------------
# Findings.

def findings(config: Config, result: Result) -> Findings:
    """Per architecture: the gap's rate, the widest networks' accuracy, the centred networks' accuracy."""
    fits = {name: {part: fit_finite(m["width"], m[part]) for part in ("rmse", *SPLIT) if part in m}
            for name, m in result.networks.items()}
    rate_claims, regime_section, regime_series = regime.findings(config, result)
    claims = []
    for rate, (name, m) in zip(rate_claims, result.networks.items()):
        claims += [rate, accuracy_claim(config, result, name)]
        if "acc_centred" in m:
            claims.append(centred.claim(config, result, name))
    sections = [trained_section(config, result, fits, regime_series), regime_section] if config.architectures else []
    if any("acc_centred" in m for m in result.networks.values()):
        sections.append(centred.section(config, result))
    series = {name: {**{k: v for k, v in m.items() if k not in ("mean_prediction", *PER_IMAGE)},
                     **{f"fit_{part}": f for part, f in fits[name].items()}, "steps": config.steps,
                     "regime": regime_series[name]}
              for name, m in result.networks.items()}
    return Findings(claims, sections, {"trained": series})


def accuracy_claim(config: Config, result: Result, name: str) -> Claim:
    """The widest networks' test accuracy minus their own NTK predictions', paired by network and
    by test image."""
    m = result.networks[name]
    # No measurement where a widest run diverged.
    measured = ci = None
    if finite_rows(m["rmse"])[-1]:
        measured, ci, _ = paired_accuracy_difference(m["correct_net"][-1], m["correct_ntk"][-1])
    return Claim(
        id=f"digits_accuracy_{name}", section=SECTION,
        statement=f"{name}: widest networks' test accuracy -> their NTK predictions' (width {m['width'][-1]})",
        prediction="accuracy gap -> 0", expected=0.0, measured=measured, ci=ci,
        tolerance=config.accuracy_band, reason=ACCURACY_REASON,
        interval_method=PAIRED_METHOD.format(n=result.n_test, runs=config.seeds), n_seeds=config.seeds,
        fit_range=(m["width"][-1], m["width"][-1]))



def trained_section(config: Config, result: Result, fits: dict, regime_series: dict) -> Section:
    text = "\n".join(_architecture_text(config, result, name, fits[name]) for name in result.networks)
    return Section(SECTION, text + _paired_text(config, result) + _ladder_note(config, result, regime_series), [
        Figure("gap", _gap_figure(config, result, fits), "RMS difference between each trained network's "
               "test outputs and the closed-form NTK prediction from its own init at the same step (left), "
               "and for the linearised architectures that gap split into network vs its linearisation and "
               "linearisation vs closed form. Markers: geometric mean over seeds; band: range; thin "
               "lines: fits; dashed: width^(-1/2)."),
        Figure("accuracy", _accuracy_figure(result), "Test accuracy of trained networks and of their "
               "closed-form NTK predictions at the same step, against width, one panel per architecture "
               "(mean and sd over seeds).")])


def _architecture_text(config: Config, result: Result, name: str, fits: dict) -> str:
    m = result.networks[name]
    rows = [[w, *(mean_sd(m[key][i], empty="diverged") for key in ("acc_net", "acc_ntk", "rmse", "agree")),
             f"{np.nanmax(m['loss_ratio'][i]):.2e}", int(np.sum(m["diverged"][i]))]
            for i, w in enumerate(m["width"])]
    fitted = fit_text(fits["rmse"], none="no fit: fewer than two widths without a diverged run")
    if fits["rmse"] is not None:
        fitted = f"exponent over the whole ladder at step {config.steps} {fitted}"
    split = _split_text(config, name, m, fits) if "rmse_linear" in m else ""
    return f"""
**{name}** (step {fmt(m["learning_rate"])} = {fmt(config.lr_fraction)} x 2 n k / lambda_max of its closed-form training
NTK, n = {result.n_train}, k = {result.outputs}; {config.steps} steps). Mean +- sd over {config.seeds} seeds; "NTK prediction" is
the closed-form NTK dynamics at the same step from the network's own initial outputs.

{markdown_table([("channels" if name.startswith("cnn") else "width"), "test accuracy, trained",
                 "test accuracy, its NTK prediction", "RMS gap of test outputs", "same class as its NTK prediction",
                 "worst final / initial loss", "diverged"], rows)}

RMS gap: {fitted}; local slopes {slopes_text(local_slopes(m["width"], m["rmse"]))}. The closed form is
gradient descent's own discrete recursion, so the gap holds nothing of the difference between
gradient descent and the gradient flow.
{split}"""


def _paired_text(config: Config, result: Result) -> str:
    """Each width's networks against their own NTK predictions, image by image (McNemar)."""
    rows = []
    for name, m in result.networks.items():
        for i, w in enumerate(m["width"]):
            ok = np.all(np.isfinite(m["correct_net"][i]), axis=-1)
            if not ok.any():
                rows.append([name, w, 0, "diverged", "", "", ""])
                continue
            net, ntk = m["correct_net"][i][ok], m["correct_ntk"][i][ok]
            diff, ci, (b, c) = paired_accuracy_difference(net, ntk)
            rows.append([name, w, int(ok.sum()), f"{net.mean():.4f}", f"{ntk.mean():.4f}",
                         "n/a" if ci is None else f"{diff:+.4f} [{ci[0]:+.4f}, {ci[1]:+.4f}]",
                         f"{b / ok.sum():.1f} / {c / ok.sum():.1f}"])
    return f"""
**Accuracy, image by image.** Each network and its own NTK prediction classify the same
{result.n_test} test images; only the images on which they disagree carry information about which is
more accurate (McNemar's test). Each image's difference in correctness is averaged over the networks,
and the interval is Student-t over the images, so the test set's sampling is in it. Discordant
images: those only the network gets right / those only its NTK prediction gets right, per network.
The claims read the widest row of each architecture.

{markdown_table(["architecture", "width", "networks", "accuracy, trained", "accuracy, NTK prediction",
                 "difference [95%]", "discordant images per network"], rows)}
"""


def _split_text(config: Config, name: str, m: dict, fits: dict) -> str:
    """The gap split into network vs its linearisation and linearisation vs closed form, as markdown."""
    rows = [[w, *(mean_sd(m[key][i], empty="diverged") for key in ("rmse", *SPLIT)),
             int(np.nansum(m["diverged_linear"][i]))] for i, w in enumerate(m["width"])]

    def fitted(part):
        return f"{fit_text(fits[part])} (local slopes {slopes_text(local_slopes(m['width'], m[part]))})"

    wide = {part: float(np.nanmean(m[part][-1])) for part in SPLIT}
    dominant = ("the network's departure from its own linearisation" if wide["rmse_nonlinear"] > wide["rmse_linear"]
                else "the linearisation's distance from the closed form")

    def verdict(part, what):
        f = fits[part]
        if f is None:
            return f"{what}: no fit"
        inside = abs(f.exponent - config.expected_exponent) <= config.exponent_tolerance
        return (f"{what} falls at {f.exponent:+.2f}, {'within' if inside else 'outside'} "
                f"{config.exponent_tolerance} of {config.expected_exponent}")

    reading = (verdict("rmse_nonlinear", "The kernel's change in training (network vs linearisation)") + "; "
               + verdict("rmse_linear", "the init kernel's fluctuation carried by the linear dynamics "
                                        "(linearisation vs closed form)") + ".")
    return f"""
The gap split (each network's linearisation around its init trained beside it, same optimizer and
steps; RMS over test outputs, mean +- sd over seeds):

{markdown_table(["width", "trained vs closed form", "trained vs its linearisation",
                 "linearisation vs closed form", "linearisations diverged"], rows)}

Fitted exponents: trained vs its linearisation {fitted("rmse_nonlinear")}; linearisation vs closed
form {fitted("rmse_linear")}. At width {m["width"][-1]} the larger part is {dominant}. {reading}
"""


def _ladder_note(config: Config, result: Result, regime_series: dict) -> str:
    """What the whole-ladder exponents at the last step are, and where the rate is claimed instead."""
    unsplit = [name for name in result.networks if "rmse_linear" not in result.networks[name]]
    # epsilon (``regime``) at the last step, at each ladder's widest width (geometric mean over seeds)
    widest = {name: float(np.exp(np.nanmean(np.log(regime_series[name]["epsilon"][len(m["width"]) - 1, :, -1]))))
              for name, m in result.networks.items()}
    where = ", ".join(f"{name} {e:.2g}" for name, e in widest.items())
    reading = ("far from first order on every ladder here, so the exponents above are pre-asymptotic"
               if min(widest.values()) > 1 else "not first order on every ladder (see there)")
    return f"""
**The rate at step {config.steps} over the whole ladder is not the claim.** The gap between a trained network and
the closed form from its own init has two sources (Lee et al. 2019): the empirical NTK's fluctuation
at initialisation, carried by the dynamics (the linearisation against the closed form), and the
kernel's change during training (the network against its linearisation). Both are at most of order
width^(-1/2) where the kernel's change over the training window is first order. The next section
measures that change for every network: at step {config.steps} its epsilon at each ladder's widest width is
{where}: {reading}. The rate is claimed there, on the cells where the change is first order.
{"" if not unsplit else f"Not split on this preset (the linearisations cost as much again to train): {', '.join(unsplit)}; the full preset splits every architecture."}
"""


def _gap_figure(config: Config, result: Result, fits: dict):
    panels = {"trained network vs its closed-form NTK prediction": {
        name: (m["width"], m["rmse"], fits[name]["rmse"]) for name, m in result.networks.items()
        if np.all(np.isfinite(m["rmse"]))}}
    for name, m in result.networks.items():
        if "rmse_linear" not in m:
            continue
        # Widths where every part is measured (a diverged linearisation leaves NaN).
        ok = np.all([np.all(np.isfinite(m[p]), axis=1) for p in ("rmse", *SPLIT)], axis=0)
        if ok.sum() >= 2:
            w_ok = np.asarray(m["width"])[ok]
            panels[f"{name}: the gap split (widths without a diverged run)"] = {
                "trained vs closed form": (w_ok, m["rmse"][ok], None),
                "trained vs its linearisation": (w_ok, m["rmse_nonlinear"][ok], fits[name]["rmse_nonlinear"]),
                "linearisation vs closed form": (w_ok, m["rmse_linear"][ok], fits[name]["rmse_linear"])}
    return loglog_figure(
        panels, xlabel="width (channels for the CNN)", ylabel="RMS difference of test outputs",
        reference_exponent=config.expected_exponent, reference_label="theory: width^(-1/2)")


def _accuracy_figure(result: Result):
    """One panel per architecture, one shared accuracy axis."""
    return finish_panels(*accuracy_panels(result.networks))
