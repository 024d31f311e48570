"""Errors between kernels, and power laws fitted to them against width."""
from __future__ import annotations

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

    def as_dict(self) -> dict:
        return {"exponent": self.exponent, "prefactor": self.prefactor,
                "ci": list(self.ci), "confidence": self.confidence, "n_seeds": self.n_seeds}


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
                       (float(slope - half), float(slope + half)), confidence, n_seeds)
