"""Skill scores on arrays (pure NumPy): contingency tables, TSS/HSS/BSS/MAE, ROC and reliability, the
validation-chosen probability threshold, the paired day-block bootstrap and its verdicts, and the small
fits (least squares, logistic regression) the baselines use. The package docstring
(:mod:`flarelib.evaluate`) defines every score.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from flarelib.cube.goes import EVENT_CLASSES, FLARE_CLASS_THRESHOLDS

#: Event thresholds in W/m² (>= C1, >= M1).
THRESHOLDS = {c: FLARE_CLASS_THRESHOLDS[c] for c in EVENT_CLASSES}


#: Default bootstrap seed, number of resamples and interval level.
log = logging.getLogger(__name__)

SEED = 2017


N_RESAMPLES = 1000


LEVEL = 0.9


MODEL = "FlareNet"


#: The shortest bootstrap block: one UTC calendar day.
DAY = np.timedelta64(1, "D")


def threshold_label(letter: str) -> str:
    """``"C"`` -> ``">=C1"``: how a threshold is written in every table."""
    return f">={letter}1"


def contingency(pred_log: np.ndarray, true_log: np.ndarray, threshold: float) -> dict[str, int]:
    """TP, FP, FN, TN of ``pred >= log10(threshold)`` against ``true >= log10(threshold)`` (log10 W/m²).

    NaN in either array drops the sample.
    """
    pred_log, true_log = np.asarray(pred_log, float), np.asarray(true_log, float)
    if pred_log.shape != true_log.shape:
        raise ValueError(f"pred {pred_log.shape} and true {true_log.shape} differ in shape")
    ok = np.isfinite(pred_log) & np.isfinite(true_log)
    level = np.log10(threshold)
    yes, event = pred_log[ok] >= level, true_log[ok] >= level
    return {"TP": int(np.sum(yes & event)), "FP": int(np.sum(yes & ~event)),
            "FN": int(np.sum(~yes & event)), "TN": int(np.sum(~yes & ~event))}


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else float("nan")


def scores(table: Mapping[str, int]) -> dict[str, float]:
    """POD, FAR, POFD, TSS and HSS of a contingency table (NaN where undefined)."""
    tp, fp, fn, tn = (table[k] for k in ("TP", "FP", "FN", "TN"))
    pod = _ratio(tp, tp + fn)
    pofd = _ratio(fp, fp + tn)
    hss_den = (tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)
    return {"POD": pod, "FAR": _ratio(fp, tp + fp), "POFD": pofd, "TSS": pod - pofd,
            "HSS": _ratio(2 * (tp * tn - fn * fp), hss_den)}


def mae(pred_log: np.ndarray, true_log: np.ndarray) -> float:
    """Mean absolute error in dex (log10 W/m²) over samples where both are finite."""
    pred_log, true_log = np.asarray(pred_log, float), np.asarray(true_log, float)
    ok = np.isfinite(pred_log) & np.isfinite(true_log)
    return float(np.mean(np.abs(pred_log[ok] - true_log[ok]))) if ok.any() else float("nan")


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, float), np.asarray(den, float)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _tss_hss(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TSS and HSS of arrays of counts (any shape; NaN where undefined)."""
    tss = _safe_div(tp, tp + fn) - _safe_div(fp, fp + tn)
    hss = _safe_div(2 * (tp * tn - fn * fp), (tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))
    return tss, hss


def _as_flags(values: np.ndarray) -> np.ndarray:
    """Bool or 0/1 (NaN = missing) -> float 1/0/NaN."""
    values = np.asarray(values)
    if values.dtype == bool:
        return values.astype(float)
    values = values.astype(float)
    return np.where(np.isfinite(values), (values > 0.5).astype(float), np.nan)


def contingency_cells(yes: np.ndarray, event: np.ndarray) -> np.ndarray:
    """Per-sample indicator of TP, FP, FN, TN: ``yes`` (n, P) and ``event`` (n,) as 1/0/NaN -> (n, 4, P) float."""
    valid = np.isfinite(yes) & np.isfinite(event)[:, None]
    y = (yes == 1) & valid
    n = (yes == 0) & valid
    e = (event == 1)[:, None]
    q = (event == 0)[:, None]
    return np.stack([y & e, y & q, n & e, n & q], axis=1).astype(float)


def autocorrelation(values: np.ndarray) -> np.ndarray:
    """The sample autocorrelation ``rho_k`` (biased estimator, by FFT) of a series on a regular grid, for lags
    ``k = 0 .. n - 1``; NaN entries count as the mean. All ones (no variance) for a constant series."""
    x = np.asarray(values, float).ravel()
    ok = np.isfinite(x)
    if ok.sum() < 3:
        return np.ones(x.size)
    x = np.where(ok, x - x[ok].mean(), 0.0)
    variance = float(np.sum(x * x))
    if variance == 0:
        return np.ones(x.size)
    spectrum = np.fft.rfft(x, 2 * x.size)
    return np.fft.irfft(spectrum * np.conj(spectrum))[: x.size] / variance


def autocorrelation_time(values: np.ndarray) -> float:
    """Integrated autocorrelation time ``tau = 1 + 2 sum_k rho_k`` of a series on a regular grid, in steps.

    ``rho_k`` is the sample autocorrelation at lag ``k`` (the biased estimator, by FFT); the sum runs over
    ``k >= 1`` up to the first lag where ``rho_k <= 0`` (the initial positive sequence), the usual cut for a
    series whose correlation decays. NaN entries count as the mean (they add no correlation). A constant or
    too short series gives 1 (no memory that can be measured). For hourly samples of "an event in the next
    24 h", ``tau`` is at least about 24 h by construction, and longer when flares cluster in time.
    """
    x = np.asarray(values, float).ravel()
    if np.isfinite(x).sum() < 3 or np.nanvar(x) == 0:
        return 1.0
    rho = autocorrelation(x)
    stop = np.flatnonzero(rho[1:] <= 0)
    last = int(stop[0]) + 1 if stop.size else x.size
    return float(1.0 + 2.0 * np.sum(rho[1:last]))


def regular_grid(times: np.ndarray, values: np.ndarray) -> tuple[np.timedelta64, np.ndarray]:
    """``(cadence, grid)``: ``values`` placed on the regular grid of their most common time step from the first
    time to the last, NaN at missing steps (what :func:`autocorrelation` needs)."""
    times = np.asarray(times, dtype="datetime64[ns]").ravel()
    cadence = pd.Series(np.diff(times)).mode().iloc[0].to_timedelta64()
    position = np.rint((times - times[0]) / cadence).astype(np.int64)
    grid = np.full(int(position[-1]) + 1, np.nan)
    grid[position] = np.asarray(values, float).ravel()
    return cadence, grid


def memory_curve(times: np.ndarray, values: np.ndarray, *, max_days: float = 30.0
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """``(lags in hours, autocorrelation, tau in hours)`` of a series (e.g. the 0/1 events of a target) at
    ``times`` on a regular grid (:func:`regular_grid`), lags up to ``max_days``: what a notebook plots beside
    the bootstrap block it chose (:func:`memory_block`)."""
    cadence, grid = regular_grid(times, values)
    hours = float(cadence / np.timedelta64(1, "h"))
    rho = autocorrelation(grid)[: int(max_days * 24 / hours) + 1]
    return np.arange(rho.size) * hours, rho, autocorrelation_time(grid) * hours


def memory_block(times: np.ndarray, values: np.ndarray, *, minimum: np.timedelta64 = DAY) -> np.timedelta64:
    """The bootstrap block for a series: its :func:`autocorrelation_time` as a duration, rounded up to whole
    days, and at least ``minimum``.

    ``times`` (n,) datetime64 (sorted, on a grid of one most common step, gaps allowed: missing steps are NaN)
    and ``values`` (n,), e.g. the 0/1 event of every step of a cube. Blocks at least this long keep the
    samples of one block nearly independent of the next, so the bootstrap does not count one flare episode as
    many independent samples (blocks shorter than the memory make intervals too narrow).
    """
    times = np.asarray(times, dtype="datetime64[ns]").ravel()
    values = np.asarray(values, float).ravel()
    if times.size != values.size:
        raise ValueError(f"times ({times.size}) and values ({values.size}) differ in length")
    if times.size < 3:
        return np.timedelta64(minimum, "h")
    cadence, grid = regular_grid(times, values)
    tau = autocorrelation_time(grid) * cadence
    days = max(int(np.ceil(tau / DAY)), 1)
    return max(np.timedelta64(days * 24, "h"), np.timedelta64(minimum, "h"))


def block_resample_counts(times: np.ndarray, block: np.timedelta64 = DAY, n_resamples: int = N_RESAMPLES,
                          seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Circular block bootstrap draws over the UTC calendar days of ``times``: ``(day_code, counts)``.

    ``day_code`` (n,) numbers the calendar days that hold samples, in order; ``counts`` (n_resamples, n_days)
    says how often each day is drawn in each resample. A resample is ``ceil(n_days / L)`` runs of ``L``
    consecutive days (``L`` = ``block`` in whole days, at least 1), each starting at a day drawn uniformly
    from ``default_rng(seed)`` and wrapping around the end, cut to ``n_days`` days. With ``L = 1`` this is
    the day bootstrap: ``n_days`` days drawn with replacement.
    """
    times = np.asarray(times, dtype="datetime64[ns]")
    if np.isnat(times).any():
        raise ValueError("sample times must not be NaT")
    _, code = np.unique(times.astype("datetime64[D]"), return_inverse=True)
    n_days = int(code.max()) + 1 if code.size else 0
    length = max(int(np.ceil(np.timedelta64(block, "ns") / DAY)), 1)
    runs = -(-n_days // length)
    starts = np.random.default_rng(seed).integers(0, max(n_days, 1), size=(n_resamples, runs))
    days = ((starts[:, :, None] + np.arange(length)) % max(n_days, 1)).reshape(n_resamples, -1)[:, :n_days]
    flat = (days + n_days * np.arange(n_resamples)[:, None]).ravel()
    counts = np.bincount(flat, minlength=n_resamples * n_days).reshape(n_resamples, n_days)
    return code.ravel(), counts


@dataclass(frozen=True, eq=False)
class Resampled:
    """Scores of several predictors on the same samples and on the same bootstrap draws
    (:func:`resample_scores`): point values (P,) on all samples and one value per resample (R, P)."""

    names: list[str]
    tss: np.ndarray
    hss: np.ndarray
    bss: np.ndarray
    tss_r: np.ndarray
    hss_r: np.ndarray
    bss_r: np.ndarray

    def column(self, name: str) -> int:
        return self.names.index(name)


def resample_scores(times: np.ndarray, event: np.ndarray, forecasts: Mapping[str, np.ndarray], *,
                    probs: Mapping[str, np.ndarray] | None = None, reference_rate: float = float("nan"),
                    block: np.timedelta64 = DAY, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> Resampled:
    """TSS, HSS and BSS of every predictor on the same circular block bootstrap draws
    (:func:`block_resample_counts`).

    ``forecasts``: name -> yes forecast per sample (bool, or 1/0 with NaN = none); ``probs``: name ->
    probability per sample for the predictors that give one (BSS against ``reference_rate``, the training
    base rate; NaN for the others). A sample without truth, or without that predictor's forecast, is left out
    of that predictor. Resamples where a score is undefined are NaN.
    """
    names = list(forecasts)
    probs = dict(probs or {})
    event = _as_flags(event).ravel()
    yes = np.stack([_as_flags(forecasts[k]).ravel() for k in names], axis=1) if names else np.empty((event.size, 0))
    if yes.shape[0] != event.size or np.asarray(times).size != event.size:
        raise ValueError(f"times ({np.asarray(times).size}), event ({event.size}) and forecasts ({yes.shape[0]}) "
                         "differ in length")
    cells = contingency_cells(yes, event)  # (n, 4, P)
    code, counts = block_resample_counts(times, block, n_resamples, seed)
    n_days = counts.shape[1]
    per_day = np.zeros((n_days, *cells.shape[1:]))
    np.add.at(per_day, code, cells)
    drawn = np.tensordot(counts.astype(float), per_day, axes=1)  # (R, 4, P)
    tss, hss = _tss_hss(*per_day.sum(axis=0))
    tss_r, hss_r = _tss_hss(*np.moveaxis(drawn, 1, 0))
    # Brier sums per day: (p - o)² of the predictor and of the reference rate, on the predictor's samples
    has_prob = np.array([name in probs and np.isfinite(reference_rate) for name in names], bool)
    errors = np.zeros((n_days, 2, len(names)))
    for j in np.flatnonzero(has_prob):
        p = np.asarray(probs[names[j]], float).ravel()
        ok = np.isfinite(p) & np.isfinite(event)
        np.add.at(errors[:, 0, j], code[ok], (p[ok] - event[ok]) ** 2)
        np.add.at(errors[:, 1, j], code[ok], (reference_rate - event[ok]) ** 2)
    summed = np.tensordot(counts.astype(float), errors, axes=1)  # (R, 2, P)
    bss = np.where(has_prob, 1.0 - _safe_div(errors[:, 0].sum(axis=0), errors[:, 1].sum(axis=0)), np.nan)
    bss_r = np.where(has_prob[None, :], 1.0 - _safe_div(summed[:, 0], summed[:, 1]), np.nan)
    return Resampled(names, tss, hss, bss, tss_r, hss_r, bss_r)


def weighted_auc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC of ``scores`` (n,) for binary ``labels`` (n,) under each row of sample ``weights`` (R, n) (bootstrap
    counts): ``sum_{i pos, j neg} w_i w_j ([s_i > s_j] + [s_i = s_j] / 2) / (sum_pos w * sum_neg w)``, all rows at
    once in O(R n log n). Returns (R,); NaN where a row weighs no positive or no negative."""
    scores, labels = np.asarray(scores, float), np.asarray(labels).astype(bool)
    weights = np.atleast_2d(np.asarray(weights, float))
    order = np.argsort(scores, kind="stable")
    s, pos, w = scores[order], labels[order], weights[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # groups of tied scores
    group = np.cumsum(np.r_[True, s[1:] != s[:-1]]) - 1
    neg_w = np.where(~pos, w, 0.0)
    neg_group = np.add.reduceat(neg_w, starts, axis=1)  # (R, G) negative weight per tie group
    below = np.cumsum(neg_group, axis=1) - neg_group  # negative weight strictly below each group
    credit = below[:, group] + 0.5 * neg_group[:, group]
    total_pos, total_neg = np.where(pos, w, 0.0).sum(axis=1), neg_w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (np.where(pos, w, 0.0) * credit).sum(axis=1) / (total_pos * total_neg)
    return np.where((total_pos > 0) & (total_neg > 0), auc, np.nan)


def interval(draws: np.ndarray, level: float) -> np.ndarray:
    """The percentile interval (2, ...) of resampled values (R, ...), NaN resamples left out."""
    q = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
    if draws.shape[0] == 0:
        return np.full((2, *draws.shape[1:]), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (no events ever) stay NaN
        return np.nanpercentile(draws, q, axis=0)


def auc_interval(score: np.ndarray, event: np.ndarray, times: np.ndarray, *, block: np.timedelta64 = DAY,
                 n_resamples: int = N_RESAMPLES, seed: int = SEED, level: float = LEVEL) -> tuple[float, float]:
    """The ``level`` interval of the ROC AUC of ``score`` (n,) for the 0/1 ``event`` (n,) under the circular block
    bootstrap of the samples' UTC days (``times`` (n,) datetime64, blocks of ``block``,
    :func:`block_resample_counts`), each resample weighing a sample as often as its day is drawn
    (:func:`weighted_auc`)."""
    code, counts = block_resample_counts(times, block, n_resamples, seed)
    lo, hi = interval(weighted_auc(score, np.asarray(event).astype(bool), counts[:, code])[:, None], level)[:, 0]
    return float(lo), float(hi)


def bootstrap_scores(times: np.ndarray, event: np.ndarray, forecasts: Mapping[str, np.ndarray], *,
                     block: np.timedelta64 = DAY, n_resamples: int = N_RESAMPLES, seed: int = SEED,
                     level: float = LEVEL) -> pd.DataFrame:
    """TSS and HSS of yes/no ``forecasts`` with block bootstrap percentile intervals.

    Args:
        times: sample times (datetime64), one per sample; runs of ``block`` (whole UTC calendar days) are
            the bootstrap's units (:func:`block_resample_counts`).
        event: observed event per sample (bool, or 1/0 with NaN = no truth).
        forecasts: predictor name -> yes forecast per sample (bool, or 1/0 with NaN = no forecast).
            A sample missing in a predictor's forecast or in ``event`` is left out of that predictor.
        block, n_resamples, seed, level: ``n_resamples`` resamples from ``default_rng(seed)``; the interval
            is the ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles.

    All predictors are scored on the same draws (paired). Resamples where a score is undefined (no events
    drawn) are left out of its percentiles. Returns a DataFrame indexed by predictor with
    ``TSS, TSS_lo, TSS_hi, HSS, HSS_lo, HSS_hi`` (the point scores are on all samples). Whether one predictor
    beats another is a question for :func:`paired_difference`, not for these marginal intervals.
    """
    r = resample_scores(times, event, forecasts, block=block, n_resamples=n_resamples, seed=seed)
    tss_q, hss_q = interval(r.tss_r, level), interval(r.hss_r, level)
    return pd.DataFrame({"TSS": r.tss, "TSS_lo": tss_q[0], "TSS_hi": tss_q[1],
                         "HSS": r.hss, "HSS_lo": hss_q[0], "HSS_hi": hss_q[1]},
                        index=pd.Index(r.names, name="predictor"))


def paired_difference(times: np.ndarray, event: np.ndarray, yes_a: np.ndarray, yes_b: np.ndarray, *,
                      prob_a: np.ndarray | None = None, prob_b: np.ndarray | None = None,
                      reference_rate: float = float("nan"), block: np.timedelta64 = DAY,
                      n_resamples: int = N_RESAMPLES, seed: int = SEED, level: float = LEVEL) -> dict[str, float]:
    """The paired block bootstrap of ``a - b`` on the samples where both forecast and the truth is known.

    Both predictors are scored on the same samples and on the same resamples (:func:`resample_scores`), and
    the difference is taken resample by resample, so what the two share (the same quiet weeks, the same
    flare episodes) cancels. Returns ``n_samples``, ``dTSS`` with its ``level`` interval ``dTSS_lo, dTSS_hi``,
    ``p_not_better`` (the fraction of resamples with ``dTSS <= 0``: a one-sided bootstrap p-value for "a beats
    b"), and ``dBSS, dBSS_lo, dBSS_hi`` (NaN unless both give probabilities).
    """
    event = _as_flags(event).ravel()
    a, b = _as_flags(yes_a).ravel(), _as_flags(yes_b).ravel()
    both = np.isfinite(a) & np.isfinite(b) & np.isfinite(event)
    if prob_a is not None and prob_b is not None:
        prob_a, prob_b = np.asarray(prob_a, float).ravel(), np.asarray(prob_b, float).ravel()
        both &= np.isfinite(prob_a) & np.isfinite(prob_b)
    shared = np.where(both, event, np.nan)
    probs = {"a": prob_a, "b": prob_b} if prob_a is not None and prob_b is not None else None
    r = resample_scores(times, shared, {"a": a, "b": b}, probs=probs, reference_rate=reference_rate, block=block,
                        n_resamples=n_resamples, seed=seed)
    d_tss_r, d_bss_r = r.tss_r[:, 0] - r.tss_r[:, 1], r.bss_r[:, 0] - r.bss_r[:, 1]
    tss_q, bss_q = interval(d_tss_r, level), interval(d_bss_r, level)
    defined = np.isfinite(d_tss_r)
    return {"n_samples": int(both.sum()), "dTSS": float(r.tss[0] - r.tss[1]), "dTSS_lo": float(tss_q[0]),
            "dTSS_hi": float(tss_q[1]),
            "p_not_better": float(np.mean(d_tss_r[defined] <= 0)) if defined.any() else float("nan"),
            "dBSS": float(r.bss[0] - r.bss[1]), "dBSS_lo": float(bss_q[0]), "dBSS_hi": float(bss_q[1])}


def paired_verdict(lo: float, hi: float) -> str:
    """The verdict of a paired difference ``a - b`` from its interval: ``"beats"`` if it lies wholly above 0,
    ``"loses"`` if wholly below, ``"ties"`` if it holds 0, ``"undefined"`` if a bound is NaN."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "undefined"
    if lo > 0:
        return "beats"
    if hi < 0:
        return "loses"
    return "ties"


def verdict(a_lo: float, a_hi: float, b_lo: float, b_hi: float) -> str:
    """``"beats"`` if interval a lies wholly above b, ``"loses"`` if wholly below, else ``"ties"``.

    Overlapping (or touching) intervals are a tie. ``"undefined"`` if any bound is NaN.
    """
    bounds = np.array([a_lo, a_hi, b_lo, b_hi], float)
    if not np.isfinite(bounds).all():
        return "undefined"
    if a_lo > b_hi:
        return "beats"
    if a_hi < b_lo:
        return "loses"
    return "ties"


def describe_target(target: str) -> str:
    """``"now"`` -> ``"nowcast"``; ``"lead60min_window1440min"`` -> ``"1h/24h forecast"``."""
    if target in ("now", "nowcast"):
        return "nowcast"
    if target.startswith("lead") and "_window" in target:
        parts = target[4:].split("_window", 1)
        try:
            deltas = [pd.Timedelta(p) for p in parts]
        except ValueError:
            return f"{target} forecast"
        text = [f"{int(d / pd.Timedelta('1h'))}h" if d % pd.Timedelta("1h") == pd.Timedelta(0)
                else f"{int(d / pd.Timedelta('1min'))}min" for d in deltas]
        return f"{text[0]}/{text[1]} forecast"
    return f"{target} forecast"


def format_interval(value: float, lo: float, hi: float) -> str:
    return "undefined" if not np.isfinite(value) else f"{value:.2f} [{lo:.2f}, {hi:.2f}]"


def fit_linear(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``y = a + b x`` over finite pairs; returns ``(a, b)`` (:func:`fit_least_squares`
    with one feature)."""
    a, b = fit_least_squares(np.asarray(x, float), y)
    return float(a), float(b)


def fit_least_squares(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares ``y = c0 + x @ c[1:]`` over rows where ``x`` (n, k) and ``y`` (n,) are finite."""
    x, y = np.atleast_2d(np.asarray(x, float).T).T, np.asarray(y, float)
    ok = np.isfinite(x).all(axis=1) & np.isfinite(y)
    if ok.sum() < x.shape[1] + 1:
        raise ValueError("need more finite samples than features to calibrate a baseline")
    design = np.column_stack([np.ones(ok.sum()), x[ok]])
    coef, *_ = np.linalg.lstsq(design, y[ok], rcond=None)
    return coef


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, float)))


def fit_logistic(x: np.ndarray, y: np.ndarray, *, l2: float = 1.0, max_iter: int = 100,
                 tol: float = 1e-10) -> np.ndarray:
    """Logistic regression ``P(y=1) = sigmoid(c0 + x @ c[1:])`` by damped Newton steps (IRLS with a
    backtracking line search).

    ``x`` (n, k) features, ``y`` (n,) 0/1; rows with a non-finite value are left out. ``l2`` is a ridge
    penalty ``l2/2 |c[1:]|²`` on the slopes of the standardized features (as scikit-learn's default
    ``C=1``), which keeps separable data finite; the intercept is not penalized. Each Newton step is halved
    until the penalized log-likelihood rises by at least a small fraction of what the step promises (Armijo),
    so the fit cannot diverge where a full Newton step overshoots (heavy-tailed features with rare events:
    undamped steps once sent the coefficients to ~1e4 and every probability to 0). With only one class in
    ``y`` the fit is the constant rate (clipped to [1e-6, 1 - 1e-6]) with zero slopes.
    """
    x, y = np.atleast_2d(np.asarray(x, float).T).T, np.asarray(y, float)
    ok = np.isfinite(x).all(axis=1) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if y.size == 0:
        raise ValueError("no finite samples to fit a logistic regression")
    k = x.shape[1]
    rate = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
    if y.min() == y.max():
        return np.r_[np.log(rate / (1 - rate)), np.zeros(k)]
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    design = np.column_stack([np.ones(y.size), (x - mean) / std])
    penalty = np.diag(np.r_[0.0, np.full(k, float(l2))])

    def objective(beta: np.ndarray) -> float:  # the penalized log-likelihood
        z = design @ beta
        return float(np.sum(y * z - np.logaddexp(0.0, z)) - 0.5 * beta @ penalty @ beta)

    beta = np.r_[np.log(rate / (1 - rate)), np.zeros(k)]
    value = objective(beta)
    for _ in range(max_iter):
        p = _sigmoid(design @ beta)
        grad = design.T @ (y - p) - penalty @ beta
        hess = design.T @ (design * (p * (1 - p))[:, None]) + penalty
        step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        promise = float(grad @ step)  # > 0: the rise a full step would give to first order
        size = 1.0
        while True:
            trial = objective(beta + size * step)
            if trial >= value + 1e-4 * size * promise or size < 1e-12:
                break
            size *= 0.5
        if trial < value:  # no step up left: at the optimum to rounding
            break
        beta, value = beta + size * step, trial
        if np.max(np.abs(size * step)) < tol:
            break
    slopes = beta[1:] / std
    return np.r_[beta[0] - np.sum(slopes * mean), slopes]


def predict_logistic(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Probabilities of a :func:`fit_logistic` fit at ``x`` (n, k); NaN where a feature is NaN."""
    x = np.atleast_2d(np.asarray(x, float).T).T
    return _sigmoid(coef[0] + x @ np.asarray(coef[1:], float))


def _prob_event(prob: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    prob, event = np.asarray(prob, float).ravel(), _as_flags(event).ravel()
    ok = np.isfinite(prob) & np.isfinite(event)
    return prob[ok], event[ok] == 1


def _threshold_counts(prob: np.ndarray, event: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, ...]:
    """TP, FP, FN, TN of ``prob >= t`` for every ``t`` of ``thresholds`` (vectorized by sorting)."""
    p, e = _prob_event(prob, event)
    order = np.argsort(p, kind="stable")
    p, e = p[order], e[order]
    below = np.searchsorted(p, np.asarray(thresholds, float), side="left")  # samples with p < t
    events_below = np.r_[0, np.cumsum(e)][below]
    n_events = int(e.sum())
    tp = n_events - events_below
    fp = (p.size - below) - tp
    return tp, fp, events_below, (p.size - n_events) - fp


def tss_vs_threshold(prob: np.ndarray, event: np.ndarray, thresholds: np.ndarray | None = None) -> pd.DataFrame:
    """TSS, HSS, POD and POFD of the yes forecast ``prob >= threshold`` for each probability threshold
    (default 0, 0.01, ..., 1). Samples with NaN probability or event are left out."""
    thresholds = np.linspace(0, 1, 101) if thresholds is None else np.asarray(thresholds, float)
    tp, fp, fn, tn = _threshold_counts(prob, event, thresholds)
    tss, hss = _tss_hss(tp, fp, fn, tn)
    return pd.DataFrame({"prob_threshold": thresholds, "TSS": tss, "HSS": hss,
                         "POD": _safe_div(tp, tp + fn), "POFD": _safe_div(fp, fp + tn)})


def choose_threshold(prob: np.ndarray, event: np.ndarray, *, default: float = 0.5) -> float:
    """The probability threshold that maximizes TSS of ``prob >= threshold`` on (validation) data.

    Candidates are the lowest probability and the midpoints between consecutive distinct probabilities,
    so every distinct yes/no split is tried; ties go to the lowest threshold. ``default`` if TSS is
    undefined for all (no events or no non-events).
    """
    p, _ = _prob_event(prob, event)
    unique = np.unique(p)
    if unique.size == 0:
        log.warning("no validation samples to choose a probability threshold on: using %g", default)
        return float(default)
    candidates = np.r_[unique[:1], 0.5 * (unique[1:] + unique[:-1])]
    tss = tss_vs_threshold(prob, event, candidates)["TSS"].to_numpy()
    if not np.isfinite(tss).any():
        log.warning("the validation samples hold no events or no non-events, so no threshold can be chosen on "
                    "them: using %g", default)
        return float(default)
    return float(candidates[int(np.nanargmax(tss))])


def _brier(p, e: np.ndarray) -> float:
    """The Brier score ``mean (p - o)²`` of probabilities ``p`` (or one constant probability) for events ``e``."""
    return float(np.mean((p - e) ** 2))


def brier_skill_score(prob: np.ndarray, event: np.ndarray, reference_rate: float) -> float:
    """``1 - BS(prob) / BS(reference_rate)`` on the same samples, where both are finite (the reference is
    climatology: the training base rate). NaN if the reference is perfect (BS 0) or there are no samples."""
    p, e = _prob_event(prob, event)
    if p.size == 0:
        return float("nan")
    reference = _brier(reference_rate, e)
    return 1.0 - _brier(p, e) / reference if reference > 0 else float("nan")


def roc_curve(prob: np.ndarray, event: np.ndarray) -> pd.DataFrame:
    """ROC points (POFD, POD) of ``prob >= t`` for every distinct probability ``t`` (and ``t = inf``: (0, 0))."""
    p, _ = _prob_event(prob, event)
    thresholds = np.r_[np.inf, np.unique(p)[::-1]]
    tp, fp, fn, tn = _threshold_counts(prob, event, thresholds)
    return pd.DataFrame({"prob_threshold": thresholds, "POFD": _safe_div(fp, fp + tn), "POD": _safe_div(tp, tp + fn)})


def roc_auc(prob: np.ndarray, event: np.ndarray) -> float:
    """Area under the ROC curve: P(p_event > p_non-event) + ½ P(tie) (Mann–Whitney). NaN without both classes."""
    p, e = _prob_event(prob, event)
    n1, n0 = int(e.sum()), int((~e).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    _, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]  # average ranks, 1-based
    return float((ranks[e].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def within_block_auc(score: np.ndarray, event: np.ndarray, blocks: np.ndarray) -> float:
    """The ROC area over pairs of samples from the same block only: ``sum_b n1_b n0_b AUC_b / sum_b n1_b n0_b``.

    ``score`` is any forecast that ranks (a probability, or a log flux), ``blocks`` a label per sample (the
    test blocks of a blocked split). What a forecast gains by knowing only each block's activity level
    (quiet weeks against busy weeks) drops out; what is left is how well it ranks the hours within a block.
    NaN when no block holds both an event and a non-event.
    """
    score, blocks = np.asarray(score, float).ravel(), np.asarray(blocks).ravel()
    event = _as_flags(event).ravel()
    weight, total = 0.0, 0.0
    for label in np.unique(blocks):
        member = blocks == label
        auc = roc_auc(score[member], event[member])
        if np.isfinite(auc):
            pairs = float(np.sum(event[member] == 1)) * float(np.sum(event[member] == 0))
            weight += pairs
            total += pairs * auc
    return total / weight if weight else float("nan")


def reliability(prob: np.ndarray, event: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Reliability diagram data: per probability bin ``[k/bins, (k+1)/bins)`` (the last closed), the mean
    forecast probability, the observed event frequency and the sample count (NaN for empty bins)."""
    p, e = _prob_event(prob, event)
    edges = np.linspace(0.0, 1.0, bins + 1)
    k = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    count = np.bincount(k, minlength=bins)
    return pd.DataFrame({"bin_lo": edges[:-1], "bin_hi": edges[1:],
                         "mean_forecast": _safe_div(np.bincount(k, weights=p, minlength=bins), count),
                         "observed_frequency": _safe_div(np.bincount(k, weights=e.astype(float), minlength=bins),
                                                         count),
                         "count": count})


def skill_per_block(true_log: np.ndarray, predictions: Mapping[str, np.ndarray], blocks: np.ndarray, *,
                    thresholds: Mapping[str, float] = THRESHOLDS,
                    yes: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                    pooled: bool = True) -> pd.DataFrame:
    """TSS, HSS and MAE of each predictor in each test block (rolling-origin evaluation).

    Args:
        true_log: true log10 flux (log10 W/m²) per sample (pooled over blocks).
        predictions: predictor -> log10 flux per sample (NaN = no forecast).
        blocks: block label per sample (e.g. the fold number or the test block's first day).
        thresholds: class letter -> W/m².
        yes: optional predictor -> {class letter: yes forecast (1/0/NaN)} that replaces the thresholded
            flux for TSS/HSS (e.g. a probability with its validation-chosen threshold).
        pooled: also add rows with ``block == "pooled"`` (all samples together).

    Returns one row per (predictor, threshold, block): ``n_samples, n_events, TSS, HSS, MAE_dex``.
    """
    true_log = np.asarray(true_log, float).ravel()
    blocks = np.asarray(blocks).ravel()
    names = list(predictions)
    preds = np.stack([np.asarray(predictions[k], float).ravel() for k in names], axis=1)
    if preds.shape[0] != true_log.size or blocks.size != true_log.size:
        raise ValueError("true_log, blocks and predictions differ in length")
    labels, code = np.unique(blocks, return_inverse=True)
    groups = [(label, code == k) for k, label in enumerate(labels)]
    if pooled:
        groups.append(("pooled", np.ones(true_log.size, bool)))
    member = np.stack([m for _, m in groups], axis=0).astype(float)  # (G, n)
    ok = np.isfinite(preds) & np.isfinite(true_log)[:, None]
    abs_err = np.where(ok, np.abs(np.nan_to_num(preds) - np.nan_to_num(true_log)[:, None]), 0.0)
    mae_g = _safe_div(member @ abs_err, member @ ok.astype(float))  # (G, P)
    rows = []
    for letter, threshold in thresholds.items():
        event = np.where(np.isfinite(true_log), (true_log >= np.log10(threshold)).astype(float), np.nan)
        flags = np.where(np.isfinite(preds), (preds >= np.log10(threshold)).astype(float), np.nan)
        for p, name in enumerate(names):
            if yes is not None and letter in yes.get(name, {}):
                flags[:, p] = _as_flags(yes[name][letter]).ravel()
        counts = np.tensordot(member, contingency_cells(flags, event), axes=1)  # (G, 4, P)
        tss, hss = _tss_hss(*np.moveaxis(counts, 1, 0))
        n = counts.sum(axis=1)
        n_events = counts[:, 0] + counts[:, 2]
        for g, (label, _) in enumerate(groups):
            for p, name in enumerate(names):
                rows.append({"predictor": name, "threshold": threshold_label(letter), "block": label,
                             "n_samples": int(n[g, p]), "n_events": int(n_events[g, p]),
                             "TSS": tss[g, p], "HSS": hss[g, p], "MAE_dex": mae_g[g, p]})
    return pd.DataFrame(rows)


def block_spread(per_block: pd.DataFrame) -> pd.DataFrame:
    """Spread over blocks of a :func:`skill_per_block` table, per (predictor, threshold): the number of
    blocks, mean, standard deviation (ddof 1), min and max of TSS, HSS and MAE_dex over the blocks
    (NaN scores left out), and the pooled score where the table has ``"pooled"`` rows."""
    is_pooled = per_block["block"].astype(str) == "pooled"
    blocks = per_block[~is_pooled]
    keys = ["predictor", "threshold"]
    grouped = blocks.groupby(keys, sort=False)[["TSS", "HSS", "MAE_dex"]]
    out = grouped.agg(["mean", "std", "min", "max"])
    out.columns = [f"{score}_{stat}" for score, stat in out.columns]
    out.insert(0, "n_blocks", blocks.groupby(keys, sort=False)["block"].nunique())
    if is_pooled.any():
        pooled = per_block[is_pooled].set_index(keys)[["TSS", "HSS", "MAE_dex"]].add_suffix("_pooled")
        out = out.join(pooled)
    return out


def block_labels(times: np.ndarray, cadence: np.timedelta64) -> np.ndarray:
    """Per sample: the first day (``YYYY-MM-DD``) of the contiguous run of samples it belongs to.

    A run breaks where consecutive ``times`` are more than one ``cadence`` apart (a purged gap or another
    split's block), so on a blocked split's test samples each label is one test block.
    """
    times = np.asarray(times, dtype="datetime64[ns]")
    if times.size == 0:
        return np.array([], dtype="<U10")
    order = np.argsort(times, kind="stable")
    breaks = np.concatenate([[True], np.diff(times[order]) > np.timedelta64(cadence, "ns")])
    first = times[order][np.flatnonzero(breaks)[np.cumsum(breaks) - 1]]
    out = np.empty(times.size, dtype="<U10")
    out[order] = np.datetime_as_string(first, unit="D")
    return out
