"""Errors between kernels, and power laws fitted to them against width."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st


def relative_frobenius_error(estimate, reference) -> float:
    """``||estimate - reference||_F / ||reference||_F``."""
    estimate = np.asarray(estimate, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    return float(np.linalg.norm(estimate - reference) / np.linalg.norm(reference))


@dataclass(frozen=True)
class PowerLawFit:
    """``error ~= prefactor * width ** exponent``, fitted on log-log axes.

    ``ci`` is the ``confidence`` interval of the exponent. With several seeds
    it is a Student-t interval over the slopes of the seeds' own curves (each
    seed is an independent replicate of the whole sweep, so their slopes are
    i.i.d.); with one seed it comes from the residuals of the least-squares
    line.
    """

    exponent: float
    prefactor: float
    ci: tuple[float, float]
    confidence: float
    n_seeds: int
    fit_range: tuple[float, float] = (math.nan, math.nan)   # the narrowest and widest width fitted
    n_widths: int = 0

    @property
    def interval_method(self) -> str:
        if self.n_seeds >= 2:
            return (f"Student-t over {self.n_seeds} seeds' own slopes, {self.n_widths} widths "
                    f"{self.fit_range[0]:g}-{self.fit_range[1]:g}")
        return f"least-squares residuals of one seed, {self.n_widths} widths {self.fit_range[0]:g}-{self.fit_range[1]:g}"

    def as_dict(self) -> dict:
        return {"exponent": self.exponent, "prefactor": self.prefactor,
                "ci": list(self.ci), "confidence": self.confidence, "n_seeds": self.n_seeds,
                "fit_range": list(self.fit_range), "n_widths": self.n_widths}


def fit_power_law(widths, errors, confidence: float = 0.95) -> PowerLawFit:
    """Fit ``log error = log prefactor + exponent * log width``.

    ``errors`` has shape ``(n_widths,)`` or ``(n_widths, n_seeds)``. The point
    estimate fits the mean over seeds of ``log error`` (a geometric mean, the
    natural centre on log axes).
    """
    w = np.log(np.asarray(widths, dtype=np.float64))
    e = np.asarray(errors, dtype=np.float64)
    if e.ndim == 1:
        e = e[:, None]
    if e.shape[0] != w.shape[0] or w.shape[0] < 2:
        raise ValueError(f"need errors of shape (n_widths >= 2, n_seeds); got {e.shape} "
                         f"for {w.shape[0]} widths")
    if not np.all(np.isfinite(e)) or np.any(e <= 0):
        raise ValueError("errors must be positive and finite to be fitted on log axes")
    log_e = np.log(e)
    slope, intercept = np.polyfit(w, log_e.mean(axis=1), 1)
    n_seeds = e.shape[1]
    q = 0.5 + confidence / 2
    if n_seeds >= 2:
        slopes = np.polyfit(w, log_e, 1)[0]
        half = _st.t.ppf(q, n_seeds - 1) * slopes.std(ddof=1) / np.sqrt(n_seeds)
    elif w.shape[0] > 2:
        fit = _st.linregress(w, log_e[:, 0])
        half = _st.t.ppf(q, w.shape[0] - 2) * fit.stderr
    else:
        half = np.inf
    return PowerLawFit(float(slope), float(np.exp(intercept)),
                       (float(slope - half), float(slope + half)), confidence, n_seeds,
                       (float(np.min(widths)), float(np.max(widths))), int(w.shape[0]))


# Fluctuations are Theta(N^-1/2) (or whatever rate a claim states); corrections of
# relative order N^-1/2 and the O(1/N) bias bend the narrow end of a ladder of
# widths, which a band of 0.1 on a fitted exponent absorbs. Every exponent claim
# of the study uses it unless its config says otherwise.
EXPONENT_BAND = 0.1
EXPONENT_REASON = ("+-0.1: corrections of relative order width^(-1/2) and the O(1/width) bias bend "
                   "a ladder's narrow end")


def finite_rows(values) -> np.ndarray:
    """Rows (widths) of ``values`` ``(n_widths, n_seeds)`` where every seed is positive and finite.

    A diverged run leaves NaN (or inf) in its seed's column; a width with one
    is left out of a log-log fit rather than biasing it.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    return np.all(np.isfinite(v) & (v > 0), axis=1)


def fit_finite(widths, values, confidence: float = 0.95) -> PowerLawFit | None:
    """``fit_power_law`` over the widths where every seed is positive and finite; ``None`` if
    fewer than two such widths remain."""
    ok = finite_rows(values)
    if ok.sum() < 2:
        return None
    return fit_power_law(np.asarray(widths)[ok], np.asarray(values, dtype=np.float64)[ok], confidence)


def t_interval(samples, confidence: float = 0.95) -> tuple[float | None, tuple[float, float] | None]:
    """Mean of the finite ``samples`` and its Student-t interval (``None`` where undefined)."""
    a = np.asarray(samples, dtype=np.float64).ravel()
    a = a[np.isfinite(a)]
    if a.size == 0:
        return None, None
    mean = float(np.mean(a))
    if a.size < 2:
        return mean, None
    half = float(_st.t.ppf(0.5 + confidence / 2, a.size - 1) * np.std(a, ddof=1) / np.sqrt(a.size))
    return mean, (mean - half, mean + half)


def fit_inverse_width(widths, values, powers=(0, 1), confidence: float = 0.95):
    """``mean values(N) = sum_k a_k N^(-powers[k])`` by weighted least squares over the widths.

    ``values``: ``(n_widths, runs)``, independent runs at each width; the weights are the inverse
    squared standard errors of the per-width means. Returns ``(a, intervals)``, normal intervals.
    """
    w = np.asarray(widths, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] != w.size or v.shape[1] < 2:
        raise ValueError(f"values must be (n_widths={w.size}, runs >= 2), got {v.shape}")
    if w.size < len(powers):
        raise ValueError(f"{len(powers)} coefficients need at least as many widths, got {w.size}")
    design = np.stack([w ** -float(p) for p in powers], axis=1)
    se2 = v.var(axis=1, ddof=1) / v.shape[1]
    cov = np.linalg.inv(design.T @ (design / se2[:, None]))
    a = cov @ design.T @ (v.mean(axis=1) / se2)
    half = _st.norm.ppf(0.5 + confidence / 2) * np.sqrt(np.diag(cov))
    return [float(x) for x in a], [(float(x - h), float(x + h)) for x, h in zip(a, half)]


def paired_accuracy_difference(correct_a, correct_b, confidence: float = 0.95):
    """Accuracy of ``a`` minus ``b`` on the same test images, paired image by image.

    ``correct_*``: ``(runs, images)`` or ``(images,)``, 1 where a run classifies the image right.
    Each image's difference is averaged over the runs, and the interval is Student-t over the
    images: the test set is the sample. For one run this is McNemar's test's (Wald) interval,
    ``(b - c) / n`` with variance ``((b + c) / n - ((b - c) / n)^2) / (n - 1)`` from the ``b``
    and ``c`` discordant images; images that every run of both classifies alike add nothing
    but their count. Returns ``(difference, interval, (b, c))``, ``b``, ``c`` summed over runs.
    """
    a, b = (np.atleast_2d(np.asarray(x, dtype=np.float64)) for x in (correct_a, correct_b))
    if a.shape != b.shape:
        raise ValueError(f"correctness arrays differ in shape: {a.shape} and {b.shape}")
    mean, ci = t_interval((a - b).mean(axis=0), confidence)
    return mean, ci, (int(np.sum((a == 1) & (b == 0))), int(np.sum((a == 0) & (b == 1))))


def local_slopes(widths, values) -> list[tuple[int, int, float]]:
    """``(w_a, w_b, slope)`` between neighbouring widths of the geometric mean over seeds.

    Widths with a diverged run are left out. Slopes that steepen towards the
    wide end say a ladder ends before its asymptotic regime.
    """
    ok = finite_rows(values)
    v = np.asarray(values, dtype=np.float64)
    v = (v if v.ndim == 2 else v[:, None])[ok]
    w = np.asarray(widths)[ok]
    g = np.exp(np.mean(np.log(v), axis=1))
    return [(int(a), int(b), float(np.log(gb / ga) / np.log(b / a)))
            for a, b, ga, gb in zip(w[:-1], w[1:], g[:-1], g[1:])]


def jackknife(statistic, samples, confidence: float = 0.95):
    """Delete-one jackknife of ``statistic`` over ``samples``' first axis (independent replicates:
    networks, groups of networks): ``(bias-corrected estimate, Student-t interval, standard error)``.

    For a U-statistic (a sample variance; ``squared_bias``) the correction is zero and the
    interval is centred on the estimate; resampling with replacement (the bootstrap) would
    repeat members and shift such statistics instead.
    """
    samples = np.asarray(samples)
    g = samples.shape[0]
    full = float(statistic(samples))
    loo = np.array([statistic(np.delete(samples, i, axis=0)) for i in range(g)])
    estimate = g * full - (g - 1) * loo.mean()
    se = float(np.sqrt((g - 1) / g * np.sum((loo - loo.mean()) ** 2)))
    half = float(_st.t.ppf(0.5 + confidence / 2, g - 1) * se)
    return float(estimate), (float(estimate - half), float(estimate + half)), se


def squared_bias(samples, mean, var) -> float:
    """How far an ensemble's mean is from ``mean``, in units of ``var``, Monte Carlo error removed.

    ``samples`` ``(M, n)``: M independent draws at n points; ``mean`` and ``var``
    ``(n,)`` the law they should follow. The average over points of
    ``((sample mean - mean)^2 - sample var / M) / var`` is an unbiased estimate
    of the squared bias ``|E f - mean|^2 / var``: 0 when the law is right,
    whatever M (a z-score's RMS would be 1 plus noise instead).
    """
    s = np.asarray(samples, dtype=np.float64)
    m = s.shape[0]
    d2 = (s.mean(axis=0) - mean) ** 2 - s.var(axis=0, ddof=1) / m
    return float(np.mean(d2 / var))


def variance_ratio(samples, var) -> float:
    """The average over points of an ensemble's sample variance over ``var``."""
    return float(np.mean(np.asarray(samples, dtype=np.float64).var(axis=0, ddof=1) / var))
