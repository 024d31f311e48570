"""After training the limits differ: NTK parameterization and muP trained to one loss, against the
closed-form NTK's gradient descent.

On the single-index task of ``replication.fixed_loss`` (the ``lazy``
experiment's), one-hidden-layer networks under NTK parameterization and muP
are trained to the same training loss. The NTK prediction ``f_NTK(t)`` is
discrete gradient descent with the closed-form NTK from zero outputs, with the
NTK networks' step. The RMS distance of an NTK network's test outputs from
``f_NTK`` at its own stopping step falls as ``width^(-1/2)``; a muP network's
distance from ``f_NTK(t*)``, ``t*`` the step at which the prediction reaches
the same loss, tends to a constant: the muP limit is another function. By the
triangle inequality on test-set RMS norms,

    |f_muP - f_NTK| >= RMSE(f_NTK) - RMSE(f_muP),

a lower bound on that distance that no finite-width fluctuation can fake.

Random streams: those of ``replication.fixed_loss`` (``direction``,
``train_inputs``, ``test_inputs``, ``networks``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from replication.experiments.mup.networks import LABELS
from replication.fixed_loss import Task, distance_to_limit, ladders
from replication.report import Claim, Figure, Findings, Section, fmt, loglog_figure, markdown_table, mean_sd
from replication.stats import EXPONENT_BAND, fit_finite, fit_inverse_width, t_interval
from replication.sweep import Streams

SECTION = "After training the limits differ"
COMPARED = ("ntk", "mup")

# The lazy experiment's task and training, with the networks of this experiment's
# other studies and muP's base width 32.
TASK = Task(input_dim=16, n_train=128, n_test=512, n_kernel=64, activation="relu", W_std=2**0.5, b_std=0.1,
            target_fraction=3e-3, ntk_lr_fraction=0.5, step_margin=5.0, mup_base_width=32,
            mup_lr_fraction=0.5, mup_max_steps=4000)


@dataclass(frozen=True)
class Config:
    task: Task = TASK
    widths: tuple[int, ...] = (64, 256, 1024, 4096)
    seeds: int = 8                # independent networks per width
    exponent_tolerance: float = EXPONENT_BAND
    # The NTK networks' distance at infinite width is 0; resolved to a tenth of the NTK
    # prediction's RMS test error (the scale on which the two limits' test errors differ).
    limit_resolution: float = 0.1
    # The NTK networks' alignment gain at infinite width is 0; resolved to a tenth of the alignment
    # at initialisation (1/d), the scale of a random first layer's alignment.
    alignment_resolution: float = 0.1


@dataclass
class Trained:
    """``distance[p]`` ``(n_widths, seeds)``: RMS distance of test outputs from the NTK prediction
    (NaN where a run diverged); ``results[p]``: ``fixed_loss.train_members``'s measures by width;
    ``prediction`` ``(n_test,)``: the NTK prediction at ``t_star``; ``y_test`` ``(n_test,)``;
    ``settings``: target loss, learning rates and ``t_star``."""

    distance: dict[str, np.ndarray]
    results: dict[str, dict[str, np.ndarray]]
    prediction: np.ndarray
    y_test: np.ndarray
    settings: dict


def measure(config: Config, streams: Streams) -> Trained:
    lad = ladders(config.task, config.widths, config.seeds, streams, kernel=False)
    t_star = lad.settings["t_star"]
    # NTK networks against the limit at their own stopping step; muP's steps are
    # of another learning rate, so it meets the limit at the same training loss.
    distance = {"ntk": distance_to_limit(lad.results["ntk"], lad.limit, lad.k_test_train),
                "mup": distance_to_limit(lad.results["mup"], lad.limit, lad.k_test_train, step=t_star)}
    return Trained(distance, lad.results, lad.limit_test_outputs(t_star),
                   np.asarray(lad.data[3], np.float64)[:, 0], lad.settings)


def limit_distance(widths, distance: np.ndarray) -> dict:
    """``D^2 = D_inf^2 + c^2 / N`` fitted to the squared distances ``(n_widths, seeds)`` by weighted
    least squares: ``D_inf`` with its interval (the square roots of ``D_inf^2``'s, clipped at 0)
    and the fitted coefficients. A network is its limit plus a fluctuation of order ``N^(-1/2)``,
    so its squared distance from any fixed function is the limit's squared distance plus
    ``O(1/N)``."""
    (a, c2), (a_ci, _) = fit_inverse_width(widths, distance**2, (0, 1))
    root = [float(np.sqrt(max(x, 0.0))) for x in (a, *a_ci)]
    return {"d_inf": root[0], "ci": (root[1], root[2]), "d_inf_squared": a, "d_inf_squared_ci": a_ci, "c2": c2}


def findings(config: Config, result: Trained) -> Findings:
    """The NTK networks' distance exponent (-1/2); both parameterizations' distance at infinite
    width, ``D^2 = D_inf^2 + c^2 / N`` (0 for NTK, above 0 for muP); the lower bound on muP's
    distance at the widest width (> 0), with a 95% Student-t interval over seeds."""
    fits = {p: fit_finite(config.widths, d) for p, d in result.distance.items()}
    limits = {p: limit_distance(config.widths, d) for p, d in result.distance.items()}
    rmse_prediction = float(np.sqrt(np.mean((result.prediction - result.y_test) ** 2)))
    bound = rmse_prediction - np.sqrt(result.results["mup"]["test_mse"])       # (widths, seeds)
    bound_mean, bound_ci = t_interval(bound[-1])
    fitted = dict(interval_method=f"weighted least squares of D^2 on 1/N over {len(config.widths)} widths, "
                                  f"{config.seeds} networks each (normal interval), square-rooted",
                  n_seeds=config.seeds, fit_range=(config.widths[0], config.widths[-1]))
    statement = ("{}, trained to a fixed loss: RMS distance of test outputs from closed-form NTK gradient "
                 "descent at infinite width, D_inf in D^2 = D_inf^2 + c^2 / N")
    claims = [
        Claim.of_fit(fits["ntk"], id="mup_trained_ntk_distance_to_ntk", section=SECTION,
                     statement=f"{LABELS['ntk']}, trained to a fixed loss: RMS distance of test outputs from "
                               "closed-form NTK gradient descent",
                     prediction="falls as width^(-1/2): the NTK limit", expected=-0.5,
                     tolerance=config.exponent_tolerance),
        Claim(id="ntk_limit_distance_from_ntk", section=SECTION, statement=statement.format(LABELS["ntk"]),
              prediction="D_inf = 0: the NTK limit is the closed form", expected=0.0,
              measured=limits["ntk"]["d_inf"], ci=limits["ntk"]["ci"], relation="<=",
              tolerance=config.limit_resolution * rmse_prediction,
              reason=f"a resolution: {config.limit_resolution:g} of the NTK prediction's RMS test error",
              **fitted),
        Claim(id="mup_limit_distance_from_ntk", section=SECTION, statement=statement.format(LABELS["mup"]),
              prediction="D_inf > 0: the muP limit is another function", expected=0.0,
              measured=limits["mup"]["d_inf"], ci=limits["mup"]["ci"], relation=">=", tolerance=0.0,
              **fitted)]
    gain = {p: r["alignment"] - r["alignment0"] for p, r in result.results.items()}
    align = {p: fit_inverse_width(config.widths, g, (0, 1)) for p, g in gain.items()}
    a0 = float(np.nanmean(result.results["ntk"]["alignment0"]))
    align_fit = dict(interval_method=f"weighted least squares of the gain on 1/N over {len(config.widths)} widths, "
                                     f"{config.seeds} networks each (normal interval)",
                     n_seeds=config.seeds, fit_range=(config.widths[0], config.widths[-1]))
    align_statement = ("{}, trained to a fixed loss: gain in the first layer's alignment with the target's "
                       "direction u, |W^T u|^2 / |W|_F^2 after training minus before, at infinite width "
                       "(G_inf in G = G_inf + c / N)")
    claims += [
        Claim(id="mup_alignment_ntk_vs_width", section=SECTION, statement=align_statement.format(LABELS["ntk"]),
              prediction="G_inf = 0: the NTK limit's features do not turn", expected=0.0,
              measured=align["ntk"][0][0], ci=align["ntk"][1][0], relation="=",
              tolerance=config.alignment_resolution * a0,
              reason=f"a resolution: {config.alignment_resolution:g} of the alignment at initialisation, 1/d",
              **align_fit),
        Claim(id="mup_alignment_vs_width", section=SECTION, statement=align_statement.format(LABELS["mup"]),
              prediction="G_inf > 0: the muP limit's features turn towards u", expected=0.0,
              measured=align["mup"][0][0], ci=align["mup"][1][0], relation=">=", tolerance=0.0, **align_fit)]
    claims.append(Claim(
        id="mup_trained_mup_distance_bound", section=SECTION,
        statement=f"muP at width {config.widths[-1]}: lower bound on its distance from the NTK prediction, "
                  "RMSE(NTK prediction) - RMSE(muP) on test inputs",
        prediction="> 0 and not shrinking: the muP limit is not the NTK's", expected=0.0,
        measured=bound_mean, ci=bound_ci, tolerance=0.0, relation=">="))
    s = result.settings
    series = {"trained": {"widths": list(config.widths), "t_star": s["t_star"], "learning_rates": {
        "ntk": s["ntk_lr"], "mup": s["mup_lr"]}, "target_loss": s["target"],
        **{f"distance/{p}": d for p, d in result.distance.items()},
        **{f"test_mse/{p}": r["test_mse"] for p, r in result.results.items()},
        "distance_lower_bound/mup": bound, "rmse_ntk_prediction": rmse_prediction,
        **{f"alignment_gain/{p}": g for p, g in gain.items()},
        "alignment_at_init": a0, "alignment_fits": {p: {"g_inf": a[0][0], "ci": a[1][0], "c": a[0][1]}
                                                    for p, a in align.items()},
        "fits": {p: f for p, f in fits.items() if f is not None}, "limits": limits}}
    section = Section(SECTION, _prose(config, result, fits, limits, bound, rmse_prediction, bound_mean)
                      + _alignment_prose(config, gain, align, a0), [Figure(
        "trained_distance", _figure(config, result, fits, limits), "Distance of trained networks' test "
        "outputs from closed-form NTK gradient descent. Left: against width (geometric mean over seeds, "
        "band: range; thin lines: power-law fits). Right: the squared distance against 1/width (mean and "
        "95% interval over seeds) with the fit D^2 = D_inf^2 + c^2 / N, whose intercept at 1/N = 0 is "
        "the limits' squared distance."), Figure("trained_alignment", _alignment_figure(config, gain, align, a0),
        "Gain in the first layer's alignment with the target's direction, |W^T u|^2 / |W|_F^2 after "
        "training minus before, against 1/width (mean and 95% interval over seeds), with the fit "
        "G = G_inf + c / N; the dotted line is the alignment at initialisation, 1/d.")])
    return Findings(claims, [section], series)


def _figure(config: Config, result: Trained, fits: dict, limits: dict):
    fig = loglog_figure({"distance from closed-form NTK gradient descent": {
        LABELS[p]: (config.widths, result.distance[p], fits[p]) for p in COMPARED}},
        xlabel="width", ylabel="RMS distance of test outputs", reference_exponent=-0.5,
        reference_label="width^(-1/2)")
    fig.set_size_inches(10.4, 4.2)
    fig.axes[0].set_position([0.09, 0.13, 0.38, 0.78])
    ax = fig.add_axes([0.57, 0.13, 0.4, 0.78])
    w = np.asarray(config.widths, float)
    grid = np.geomspace(w[0], w[-1] * 4, 60)
    for i, p in enumerate(COMPARED):
        d2 = result.distance[p] ** 2
        mean, sem = np.nanmean(d2, axis=1), np.nanstd(d2, axis=1, ddof=1) / np.sqrt(d2.shape[1])
        ax.errorbar(w, mean, yerr=1.96 * sem, fmt="o", color=f"C{i}", ms=4, capsize=2, label=LABELS[p])
        lim = limits[p]
        ax.plot(grid, np.maximum(lim["d_inf_squared"] + lim["c2"] / grid, 1e-12), "-", color=f"C{i}", lw=1,
                label=f"fit: D_inf = {lim['d_inf']:.3g} [{lim['ci'][0]:.3g}, {lim['ci'][1]:.3g}]")
        if lim["d_inf_squared"] > 0:
            ax.axhline(lim["d_inf_squared"], color=f"C{i}", ls=":", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="width", ylabel="squared RMS distance (mean over seeds)",
           title="D^2 = D_inf^2 + c^2 / N (dotted: D_inf^2)")
    ax.set_xscale("log", base=2)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7)
    return fig


def _alignment_figure(config: Config, gain: dict, align: dict, a0: float):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 4))
    w = np.asarray(config.widths, float)
    x = np.linspace(0, 1 / w[0], 50)
    for i, p in enumerate(COMPARED):
        g = gain[p]
        mean, sem = np.nanmean(g, axis=1), np.nanstd(g, axis=1, ddof=1) / np.sqrt(g.shape[1])
        ax.errorbar(1 / w, mean, yerr=1.96 * sem, fmt="o", color=f"C{i}", ms=4, capsize=2, label=LABELS[p])
        (g_inf, c), (ci, _) = align[p]
        ax.plot(x, g_inf + c * x, "-", color=f"C{i}", lw=1,
                label=f"fit: G_inf = {g_inf:.3g} [{ci[0]:.3g}, {ci[1]:.3g}]")
    ax.axhline(a0, color="gray", ls=":", lw=1, label=f"alignment at init, {a0:.3g}")
    ax.axhline(0, color="k", lw=0.5)
    ax.set(xlabel="1 / width", ylabel="alignment gain", title="features turning towards u")
    ax.grid(True, alpha=0.25)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _alignment_prose(config: Config, gain: dict, align: dict, a0: float) -> str:
    rows = [[w, *(mean_sd(gain[p][i], ".3g", ".2g") for p in COMPARED)] for i, w in enumerate(config.widths)]

    def fit(p):
        (g_inf, c), (ci, c_ci) = align[p]
        return f"G_inf = {fmt(g_inf)} [{fmt(ci[0])}, {fmt(ci[1])}], c = {fmt(c)} [{fmt(c_ci[0])}, {fmt(c_ci[1])}]"

    return f"""
**Moving is not learning: do the features turn towards the target?** The target depends on one direction
u of R^{config.task.input_dim}. A first layer W (one column per hidden unit) aligned with it has
|W^T u|^2 / |W|_F^2 near 1; a random one has 1/d = {fmt(a0)}. The gain in training, by width:

{markdown_table(["width", *(f"{LABELS[p]}: gain (mean +- sd)" for p in COMPARED)], rows)}

Under NTK parameterization each unit moves by O(N^(-1/2)), in a direction whose sign is its random readout
weight's; the alignment's change is a mean over units of terms of order 1/N (a square of the move, and a
cross term of zero mean), so G = G_inf + c / N with G_inf = 0. Under muP each unit moves by O(1) and
G_inf is the limit's own gain. Fitted by weighted least squares over widths
{config.widths[0]}-{config.widths[-1]}: NTK parameterization {fit("ntk")}; muP {fit("mup")}.
"""


def _tables(config: Config, result: Trained, bound: np.ndarray) -> tuple[str, str]:
    """Distances, test errors and failed runs per width; the lower bound per width."""
    def ms(a):
        return mean_sd(a, ".3g", ".2g")

    d, r = result.distance, result.results
    rows = [[w, ms(d["ntk"][i]), ms(d["mup"][i]), ms(r["ntk"]["test_mse"][i]), ms(r["mup"]["test_mse"][i]),
             int(sum(np.sum(r[p]["diverged"][i]) for p in COMPARED)),
             int(sum(np.sum(~r[p]["reached"][i]) for p in COMPARED))]
            for i, w in enumerate(config.widths)]
    return (markdown_table(["width", "NTK: distance", "muP: distance", "NTK: test mse", "muP: test mse",
                            "diverged", "target not reached"], rows),
            markdown_table(["width", "lower bound (mean +- sd)"],
                           [[w, ms(bound[i])] for i, w in enumerate(config.widths)]))


def _prose(config: Config, result: Trained, fits: dict, limits: dict, bound: np.ndarray, rmse_prediction: float,
           bound_mean: float | None) -> str:
    task, s, widths = config.task, result.settings, config.widths
    scale = float(np.sqrt(np.mean(result.prediction**2)))
    distances, bounds = _tables(config, result, bound)
    exponent = {p: fmt(None if f is None else f.exponent) for p, f in fits.items()}

    def limit(p):
        lim = limits[p]
        lo, hi = lim["d_inf_squared_ci"]
        return (f"D_inf = {fmt(lim['d_inf'])} [{fmt(lim['ci'][0])}, {fmt(lim['ci'][1])}] "
                f"(D_inf^2 = {lim['d_inf_squared']:.2e} [{lo:.2e}, {hi:.2e}], c^2 = {fmt(lim['c2'])})")

    return f"""
The second half of "the limits differ". The `lazy` experiment's task (y = g(<u, x>) with one ReLU unit g,
{task.n_train} training and {task.n_test} test inputs on the sphere in R^{task.input_dim}) and networks (one hidden
layer, {task.activation}, outputs centred so that they start at 0): NTK parameterization with step
{fmt(s['ntk_lr'])} ({fmt(task.ntk_lr_fraction)} of the closed-form NTK's stability limit 2 n / lambda_max), and
muP with base width {task.mup_base_width} and base step {fmt(s['mup_lr'])} ({fmt(task.mup_lr_fraction)} of
the stability limit of the empirical NTK at the base width, carried to the other widths by muP's factors),
{config.seeds} seeds per width, each trained by full-batch SGD until its training loss is
{fmt(s['target'])} ({fmt(task.target_fraction)} of the initial loss). The NTK prediction is gradient descent with
the closed-form NTK from zero outputs (discrete steps of the NTK networks' size; `replication.fixed_loss`),
taken at each NTK network's own stopping step, and for muP, whose steps are of another size, at the step
where it reaches the same training loss ({s['t_star']}). The RMS size of that prediction on the test inputs is
{fmt(scale)}; its RMS test error is {fmt(rmse_prediction)}.

{distances}

The NTK-parameterized networks approach the NTK prediction as width^({exponent['ntk']}); the muP networks'
distance changes as width^({exponent['mup']}) over these widths. Theory does not say that muP's distance is
flat at every width: a single network of width N is its limit plus a fluctuation of order N^(-1/2) (a mean
over N units), so its squared distance from any fixed function is the limit's squared distance plus
O(1/N), `D^2 = D_inf^2 + c^2 / N`. Fitted by weighted least squares over widths {widths[0]}-{widths[-1]}:

- NTK parameterization: {limit("ntk")}. Theory: 0, the NTK limit is the closed form.
- muP: {limit("mup")}. Theory: above 0, the muP limit is another function.
{_residual_note(config, result, limits, rmse_prediction)}
A bound that no fluctuation can fake: by the triangle inequality on test-set RMS norms, muP's distance
from the NTK prediction is at least RMSE(NTK prediction) - RMSE(muP) = {fmt(rmse_prediction)} - RMSE(muP), at
every width:

{bounds}

The bound does not shrink with width: muP's test error converges to a value below the NTK prediction's,
so its networks converge to another function, the one their learned features give, at a distance of at
least {fmt(bound_mean)} from the NTK prediction (whose RMS size is {fmt(scale)}). On this task that distance is
small next to the narrow networks' fluctuations, which is why a power law fitted to muP's distance over
these widths does not have exponent 0: the fluctuation bends the curve, and the fit with its intercept
separates the two.
"""


def _residual_note(config: Config, result: Trained, limits: dict, rmse_prediction: float) -> str:
    """Where the NTK networks' fitted D_inf^2 excludes 0: what N D^2 does along the ladder."""
    if limits["ntk"]["d_inf_squared_ci"][0] <= 0:
        return ""
    w = np.asarray(config.widths)
    d2 = result.distance["ntk"] ** 2
    scaled = ", ".join(f"{x:.2f} +- {e:.2f}" for x, e in zip(
        w * np.nanmean(d2, axis=1), w * np.nanstd(d2, axis=1, ddof=1) / np.sqrt(d2.shape[1])))
    return f"""
The NTK networks' D_inf^2 interval excludes 0: N D^2, constant if the distance were a pure
N^(-1/2) fluctuation, is {scaled} at widths {", ".join(map(str, w))} (mean +- standard error).
The residual, {fmt(limits["ntk"]["d_inf"])}, is {limits["ntk"]["d_inf"] / rmse_prediction:.0%} of the prediction's RMS test
error and inside the claim's resolution; its source is not established here (a term falling slower than 1/N, or a
floor of the training loop's float32 arithmetic), and the full preset's wider ladder tests it.
"""
