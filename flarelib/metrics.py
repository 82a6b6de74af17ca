"""Metrics stage: flare-forecast skill with uncertainty, and the reference forecasts every model is scored against.

Units: forecasts and truths of flux are log10 GOES XRS-B flux (log10 W/m²); raw fluxes
(``dm.plan.target.flux``, ``dm.plan.flux_now``, ``dm.history_max``) are W/m²; probabilities are in [0, 1].

**Events and yes forecasts.** An *event* is a true flux at or above a class threshold
(``C`` = 1e-6, ``M`` = 1e-5 W/m²). A predictor that gives a flux says *yes* when its flux is at
or above the threshold; a predictor that gives a probability says yes when it is at or above a
probability threshold chosen to maximize TSS on the **validation** block (never on test). From the
2x2 contingency table (TP, FP, FN, TN):

* POD = TP / (TP + FN); FAR = FP / (TP + FP); POFD = FP / (FP + TN)
* TSS = POD - POFD  (true skill statistic; 0 for any constant forecast; the headline score)
* HSS = 2 (TP TN - FN FP) / ((TP + FN)(FN + TN) + (TP + FP)(FP + TN))  (depends on the base rate)
* BSS = 1 - BS / BS_clim, BS = mean (p - o)², BS_clim the Brier score of the training base rate
* MAE = mean |pred - true| in dex (log10 flux)

A score whose denominator is zero (e.g. POD with no events) is NaN: undefined, not zero.

**Uncertainty.** Flares cluster in time, so samples are not independent: intervals come from a
*day-block bootstrap* (:func:`bootstrap_scores`): the calendar days (UTC) of the evaluated samples
are resampled with replacement (``N_RESAMPLES`` = 1000 resamples, seed ``SEED`` = 2017), paired
(every predictor sees the same day draws), and the 5th/95th percentiles give 90 % intervals.
:func:`verdict` calls one predictor better than another only when their intervals do not overlap.

**Reference forecasts**, all on exactly the samples of the model (cube step indices), calibrated on
the training block only and using nothing after the issue time ``t``:

* ``persistence``: nowcast: the flux at exactly ``t - cadence`` (NaN where that step is missing);
  forecast: the flux at ``t`` (``flux_now``).
* ``flare-history persistence 6h`` / ``24h`` (forecasts only): the max XRS-B flux over ``[t - H, t]``
  (the cube's ``flux_history_max``). The 24 h one is the benchmark definition of persistence
  (Leka+ 2019: "a flare above the threshold in the previous 24 h"); the 6 h one is a sharper variant.
* ``climatology``: the training-block mean log flux (regression) and base rate (probability).
* ``brightest pixel N Å``: ``a + b log10(max DN/s)`` of the hot channel that fits the training block best.
* ``region photometry``: the summed hot-channel excess over the frame's median (94, 131, 335 Å),
  log10, as features of a linear fit (flux) and of logistic regressions (P(>=C1), P(>=M1)).
* ``oracle`` (synthetic cubes only): the generator's own noiseless flux and event probabilities.

The model gives two rows: ``FlareNet`` (class-head probabilities with the validation-chosen threshold;
MAE from the regression output) and ``FlareNet regression`` (the log flux thresholded at the class
threshold).
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import zarr

from flarelib.data import DataConfigError, read_frames
from flarelib.goes import EVENT_CLASSES, FLARE_CLASS_THRESHOLDS
from flarelib.labels import data_kind
from flarelib.paths import results_dir

#: Event thresholds in W/m² (>= C1, >= M1).
THRESHOLDS = {c: FLARE_CLASS_THRESHOLDS[c] for c in EVENT_CLASSES}
#: Default bootstrap seed, number of resamples and interval level.
SEED = 2017
N_RESAMPLES = 1000
LEVEL = 0.9
#: Hot channels (Å) of the region-photometry baseline, and of the brightest-pixel baseline.
PHOTOMETRY_CHANNELS = (94, 131, 335)
BRIGHTEST_PIXEL_CHANNELS = (94, 131)
#: Flare-history windows (labels of the cube's ``history`` coordinate); 24 h is the benchmark persistence.
HISTORY_LABELS = ("6h", "24h")
#: Floor (DN/s) of the summed hot-channel excess before its log10 (an empty excess is log10 1 = 0).
EXCESS_FLOOR = 1.0
#: Columns of :func:`skill_table`, in order.
SKILL_COLUMNS = ["dataset", "synthetic", "split", "target", "predictor", "threshold", "n_samples", "n_events",
                 "TSS", "TSS_lo", "TSS_hi", "HSS", "HSS_lo", "HSS_hi", "BSS", "MAE_dex"]
MODEL = "FlareNet"


def threshold_label(letter: str) -> str:
    """``"C"`` -> ``">=C1"``: how a threshold is written in every table."""
    return f">={letter}1"


# --------------------------------------------------------------------------- contingency scores

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


def _cells(yes: np.ndarray, event: np.ndarray) -> np.ndarray:
    """Per-sample indicator of TP, FP, FN, TN: ``yes`` (n, P) and ``event`` (n,) as 1/0/NaN -> (n, 4, P) float."""
    valid = np.isfinite(yes) & np.isfinite(event)[:, None]
    y = (yes == 1) & valid
    n = (yes == 0) & valid
    e = (event == 1)[:, None]
    q = (event == 0)[:, None]
    return np.stack([y & e, y & q, n & e, n & q], axis=1).astype(float)


# --------------------------------------------------------------------------- day-block bootstrap

def day_resample_counts(times: np.ndarray, n_resamples: int = N_RESAMPLES,
                        seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Day-block bootstrap draws: ``(day_code, counts)``.

    ``day_code`` (n,) numbers the calendar day (UTC) of each sample time; ``counts``
    (n_resamples, n_days) says how often each day is drawn in each resample (n_days draws with
    replacement from ``numpy.random.default_rng(seed)``).
    """
    times = np.asarray(times, dtype="datetime64[ns]")
    if np.isnat(times).any():
        raise ValueError("sample times must not be NaT")
    _, code = np.unique(times.astype("datetime64[D]"), return_inverse=True)
    n_days = int(code.max()) + 1 if code.size else 0
    draws = np.random.default_rng(seed).integers(0, max(n_days, 1), size=(n_resamples, n_days))
    flat = (draws + n_days * np.arange(n_resamples)[:, None]).ravel()
    counts = np.bincount(flat, minlength=n_resamples * n_days).reshape(n_resamples, n_days)
    return code.ravel(), counts


def bootstrap_scores(times: np.ndarray, event: np.ndarray, forecasts: Mapping[str, np.ndarray], *,
                     n_resamples: int = N_RESAMPLES, seed: int = SEED, level: float = LEVEL) -> pd.DataFrame:
    """TSS and HSS of yes/no ``forecasts`` with paired day-block bootstrap percentile intervals.

    Args:
        times: sample times (datetime64), one per sample; their UTC calendar days are the blocks.
        event: observed event per sample (bool, or 1/0 with NaN = no truth).
        forecasts: predictor name -> yes forecast per sample (bool, or 1/0 with NaN = no forecast).
            A sample missing in a predictor's forecast or in ``event`` is left out of that predictor.
        n_resamples, seed, level: ``n_resamples`` resamples of the days with replacement from
            ``default_rng(seed)``; the interval is the ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles.

    All predictors are scored on the same day draws (paired). Resamples where a score is undefined
    (no events drawn) are left out of its percentiles. Returns a DataFrame indexed by predictor with
    ``TSS, TSS_lo, TSS_hi, HSS, HSS_lo, HSS_hi`` (the point scores are on all samples).
    """
    names = list(forecasts)
    event = _as_flags(event).ravel()
    yes = np.stack([_as_flags(forecasts[k]).ravel() for k in names], axis=1) if names else np.empty((event.size, 0))
    if yes.shape[0] != event.size or np.asarray(times).size != event.size:
        raise ValueError(f"times ({np.asarray(times).size}), event ({event.size}) and forecasts ({yes.shape[0]}) "
                         "differ in length")
    cells = _cells(yes, event)  # (n, 4, P)
    code, counts = day_resample_counts(times, n_resamples, seed)
    per_day = np.zeros((counts.shape[1], *cells.shape[1:]))
    np.add.at(per_day, code, cells)
    point = per_day.sum(axis=0)  # (4, P)
    drawn = np.tensordot(counts.astype(float), per_day, axes=1)  # (R, 4, P)
    tss, hss = _tss_hss(*point)
    tss_r, hss_r = _tss_hss(*np.moveaxis(drawn, 1, 0))
    q = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (no events ever) stay NaN
        tss_q = np.nanpercentile(tss_r, q, axis=0) if n_resamples else np.full((2, len(names)), np.nan)
        hss_q = np.nanpercentile(hss_r, q, axis=0) if n_resamples else np.full((2, len(names)), np.nan)
    return pd.DataFrame({"TSS": tss, "TSS_lo": tss_q[0], "TSS_hi": tss_q[1],
                         "HSS": hss, "HSS_lo": hss_q[0], "HSS_hi": hss_q[1]},
                        index=pd.Index(names, name="predictor"))


# --------------------------------------------------------------------------- verdicts

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


def _fmt(value: float, lo: float, hi: float) -> str:
    return "undefined" if not np.isfinite(value) else f"{value:.2f} [{lo:.2f}, {hi:.2f}]"


def verdict_sentences(table: pd.DataFrame, *, model: str = MODEL, score: str = "TSS",
                      level: float = LEVEL) -> list[str]:
    """One sentence per (dataset, target, threshold) of a :func:`skill_table`, comparing ``model`` with every
    baseline by :func:`verdict` on the ``score`` intervals.

    Rows whose predictor starts with ``model`` (``FlareNet regression``) are the model's own variants and
    are not compared. Example: ``"SYNTHETIC synthetic-sun-default, ≥M1, 1h/24h forecast: FlareNet TSS 0.41
    [0.30, 0.52] beats climatology 0.00 [0.00, 0.00], ties flare-history persistence 24h 0.38 [0.25, 0.49],
    loses to oracle 0.80 [0.71, 0.88] (12 events in 1440 test samples; 90% day-block bootstrap intervals)."``
    """
    lines = []
    lo, hi = f"{score}_lo", f"{score}_hi"
    for (dataset, target, threshold), group in table.groupby(["dataset", "target", "threshold"], sort=False):
        own = group[group["predictor"] == model]
        if own.empty:
            continue
        m = own.iloc[0]
        parts = []
        for _, b in group.iterrows():
            name = str(b["predictor"])
            if name == model or name.startswith(model + " "):
                continue
            said = verdict(m[lo], m[hi], b[lo], b[hi])
            number = _fmt(b[score], b[lo], b[hi])
            parts.append({"beats": f"beats {name} {number}", "ties": f"ties {name} {number}",
                          "loses": f"loses to {name} {number}",
                          "undefined": f"cannot be compared with {name} ({number})"}[said])
        head = f"{dataset}, {str(threshold).replace('>=', '≥')}, {describe_target(str(target))}: "
        body = f"{model} {score} {_fmt(m[score], m[lo], m[hi])} " + ", ".join(parts)
        n_events, n_samples = int(m["n_events"]), int(m["n_samples"])
        tail = (f" ({n_events} events in {n_samples} {m.get('split', 'test')} samples; "
                f"{100 * level:.0f}% day-block bootstrap intervals)")
        if n_events == 0:
            tail += "; no events, so TSS is undefined"
        elif n_events < 20:
            tail += "; fewer than 20 events, so the intervals are wide"
        lines.append(head + body + tail + ".")
    return lines


# --------------------------------------------------------------------------- reference forecasts

def _log10(flux: np.ndarray) -> np.ndarray:
    flux = np.asarray(flux, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux > 0, np.log10(np.where(flux > 0, flux, 1.0)), np.nan)


def _is_nowcast(dm) -> bool:
    return bool(dm.plan.target.horizon == np.timedelta64(0, "ns"))


def persistence(flux_now: np.ndarray, times: np.ndarray, time_index: np.ndarray, *, nowcast: bool,
                cadence: np.timedelta64) -> np.ndarray:
    """log10 (W/m²) of the latest flux known at issue time for the cube steps ``time_index``.

    ``flux_now`` (time,) W/m² and ``times`` (time,) datetime64 are the cube's. A forecast uses the flux
    at ``t``. A nowcast cannot use the flux it predicts: it uses the flux at exactly ``t - cadence``
    (the cube's, :func:`flarelib.store.cube_cadence`), looked up by time, so it is NaN where
    that step is missing from the cube (a gap), not the flux of an earlier step.
    """
    flux_now = np.asarray(flux_now, float)
    index = np.asarray(time_index, np.int64)
    if not nowcast:
        return _log10(flux_now[index])
    times = np.asarray(times, dtype="datetime64[ns]")
    want = times[index] - np.timedelta64(cadence, "ns")
    pos = np.clip(np.searchsorted(times, want), 0, times.size - 1)
    found = times[pos] == want
    return np.where(found, _log10(flux_now[pos]), np.nan)


def persistence_forecast(dm, time_index: np.ndarray) -> np.ndarray:
    """:func:`persistence` (log10 W/m²) of a set-up data module ``dm`` for its cube steps ``time_index``."""
    return persistence(dm.plan.flux_now, dm.plan.times, time_index, nowcast=_is_nowcast(dm), cadence=dm.plan.cadence)


def flare_history_persistence(dm, time_index: np.ndarray, label: str = "24h") -> np.ndarray:
    """log10 (W/m²) of the max XRS-B flux over ``[t - H, t]`` (``dm.history_max(label)``), H = ``label``.

    Forecasts only: for a nowcast the window contains the flux being predicted.
    """
    if _is_nowcast(dm):
        raise ValueError("flare-history persistence is for forecasts: a nowcast's history contains its target")
    return _log10(np.asarray(dm.history_max(label), float)[np.asarray(time_index, np.int64)])


def climatology(train_log: np.ndarray, n: int) -> np.ndarray:
    """The training-block mean log10 flux (log10 W/m²), repeated ``n`` times."""
    return np.full(n, np.nanmean(np.asarray(train_log, float)))


def base_rate(dm, threshold: float) -> float:
    """Fraction of training samples of ``dm`` whose target flux is at or above ``threshold`` (W/m²)."""
    flux = np.asarray(dm.plan.target.flux, float)[dm.plan.index["train"]]
    flux = flux[np.isfinite(flux)]
    return float(np.mean(flux >= threshold)) if flux.size else float("nan")


def climatology_forecast(dm, time_index: np.ndarray) -> np.ndarray:
    """The training-block mean log10 flux of ``dm`` (log10 W/m²) for each of ``time_index``."""
    return climatology(np.asarray(dm.plan.target.log_flux, float)[dm.plan.index["train"]], len(time_index))


def _mtime(store: str) -> float:
    meta = Path(store) / ".zmetadata"
    return meta.stat().st_mtime if meta.exists() else 0.0


@functools.lru_cache(maxsize=4)
def _frame_summaries(store: str, mtime: float) -> tuple[np.ndarray, np.ndarray]:
    """``(log10 max DN/s, hot_excess DN/s)`` of every frame and channel, (time, channel) each: the whole
    cube read once, in contiguous batches, for every image baseline. Memoized per store and mtime."""
    aia = zarr.open_group(store, mode="r")["aia"]
    n, c = aia.shape[:2]
    peak, excess = np.full((n, c), np.nan), np.full((n, c), np.nan)
    for pos, frames in read_frames(store, np.arange(n), np.arange(c), batch=512):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN frames
            peak[pos] = _log10(np.nanmax(frames.reshape(len(pos), c, -1), axis=2))
        for k in range(c):
            excess[pos, k] = hot_excess(frames[:, k])
    peak.flags.writeable = excess.flags.writeable = False
    return peak, excess


def _brightest_pixel_series(store: str, channel_index: int, mtime: float) -> np.ndarray:
    return _frame_summaries(store, mtime)[0][:, channel_index]


def brightest_pixel(store: str | Path, time_index: np.ndarray, channel_index: int) -> np.ndarray:
    """log10 of the maximum DN/s of one channel at the time steps ``time_index`` (NaN-safe).

    The whole series of the channel is read once, in contiguous batches, and memoized per store.
    """
    store = str(store)
    return _brightest_pixel_series(store, int(channel_index), _mtime(store))[np.asarray(time_index)]


def fit_linear(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``y = a + b x`` over finite pairs; returns ``(a, b)`` (:func:`fit_least_squares`
    with one feature)."""
    a, b = fit_least_squares(np.asarray(x, float), y)
    return float(a), float(b)


def brightest_pixel_forecast(dm, time_index: np.ndarray, *,
                             hot_channels: Sequence[int] = BRIGHTEST_PIXEL_CHANNELS) -> tuple[str, np.ndarray] | None:
    """``(name, log10 W/m²)`` of the brightest-pixel baseline: ``a + b log10(max DN/s)`` of whichever of
    ``hot_channels`` in the cube fits the training block best (lowest training MAE); None without one."""
    train = dm.plan.index["train"]
    train_log = np.asarray(dm.plan.target.log_flux, float)[train]
    best = None
    for channel in hot_channels:
        if channel not in dm.cube_channels:
            continue
        k = dm.cube_channels.index(channel)
        x_train = brightest_pixel(dm.store_path, train, k)
        try:
            a, b = fit_linear(x_train, train_log)
        except ValueError:
            continue
        residual = mae(a + b * x_train, train_log)
        if best is None or residual < best[0]:
            best = (residual, channel, k, a, b)
    if best is None:
        return None
    _, channel, k, a, b = best
    return f"brightest pixel {channel} Å", a + b * brightest_pixel(dm.store_path, time_index, k)


def hot_excess(frames: np.ndarray) -> np.ndarray:
    """Summed excess over the quiet level of each frame, DN/s: ``sum(max(frame - median, 0))``.

    ``frames`` is (n, ny, nx) DN/s; the quiet level is the median of each frame's finite pixels and
    NaN pixels add nothing. A frame without finite pixels gives NaN.
    """
    frames = np.asarray(frames, np.float64)
    flat = frames.reshape(frames.shape[0], -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN frames
        quiet = np.nanmedian(flat, axis=1)
    excess = np.nansum(np.clip(flat - quiet[:, None], 0.0, None), axis=1)
    return np.where(np.isfinite(quiet), excess, np.nan)


def _excess_series(store: str, channel_indices: tuple[int, ...], mtime: float) -> np.ndarray:
    return _frame_summaries(store, mtime)[1][:, list(channel_indices)]


def photometry_features(dm, time_index: np.ndarray, *,
                        channels: Sequence[int] = PHOTOMETRY_CHANNELS) -> tuple[list[int], np.ndarray]:
    """``(channels used, features)``: log10 of :func:`hot_excess` (DN/s, floored at ``EXCESS_FLOOR``) of each
    of ``channels`` present in the cube, (n, k), at the cube steps ``time_index``. Memoized per store."""
    used = [c for c in channels if c in dm.cube_channels]
    if not used:
        return [], np.empty((len(time_index), 0))
    store = str(dm.store_path)
    series = _excess_series(store, tuple(dm.cube_channels.index(c) for c in used), _mtime(store))
    with np.errstate(invalid="ignore"):
        return used, np.log10(np.maximum(series[np.asarray(time_index, np.int64)], EXCESS_FLOOR))


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
    """Logistic regression ``P(y=1) = sigmoid(c0 + x @ c[1:])`` by Newton's method (IRLS).

    ``x`` (n, k) features, ``y`` (n,) 0/1; rows with a non-finite value are left out. ``l2`` is a ridge
    penalty ``l2/2 |c[1:]|²`` on the slopes of the standardized features (as scikit-learn's default
    ``C=1``), which keeps separable data finite; the intercept is not penalized. With only one class
    in ``y`` the fit is the constant rate (clipped to [1e-6, 1 - 1e-6]) with zero slopes.
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
    beta = np.r_[np.log(rate / (1 - rate)), np.zeros(k)]
    for _ in range(max_iter):
        p = _sigmoid(design @ beta)
        grad = design.T @ (y - p) - penalty @ beta
        hess = design.T @ (design * (p * (1 - p))[:, None]) + penalty
        step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            break
    slopes = beta[1:] / std
    return np.r_[beta[0] - np.sum(slopes * mean), slopes]


def predict_logistic(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Probabilities of a :func:`fit_logistic` fit at ``x`` (n, k); NaN where a feature is NaN."""
    x = np.atleast_2d(np.asarray(x, float).T).T
    return _sigmoid(coef[0] + x @ np.asarray(coef[1:], float))


def region_photometry_forecast(dm, time_index: np.ndarray, *, thresholds: Mapping[str, float] = THRESHOLDS,
                               channels: Sequence[int] = PHOTOMETRY_CHANNELS
                               ) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """The region-photometry baseline at ``time_index``: ``(log10 W/m², {class letter: P(event)})``.

    Features: :func:`photometry_features` (all hot channels present, together). The flux is a linear
    least-squares fit of the training-block log10 target; each probability a :func:`fit_logistic` of the
    training-block events (target flux >= the class threshold). None if the cube has no hot channel.
    """
    used, x = photometry_features(dm, time_index, channels=channels)
    if not used:
        return None
    train = dm.plan.index["train"]
    _, x_train = photometry_features(dm, train, channels=channels)
    coef = fit_least_squares(x_train, np.asarray(dm.plan.target.log_flux, float)[train])
    log_pred = coef[0] + x @ coef[1:]
    flux_train = np.asarray(dm.plan.target.flux, float)[train]
    probs = {}
    for letter, threshold in thresholds.items():
        events = np.where(np.isfinite(flux_train), (flux_train >= threshold).astype(float), np.nan)
        probs[letter] = predict_logistic(fit_logistic(x_train, events), x)
    return log_pred, probs


def oracle_forecast(dm, time_index: np.ndarray) -> tuple[np.ndarray | None, dict[str, np.ndarray]] | None:
    """The synthetic generator's oracle at ``time_index``: ``(log10 W/m² or None, {class letter: P(event)})``.

    Nowcast: ``oracle_flux_now (time)``. Forecast: ``oracle_flux_max (time, forecast)`` and
    ``oracle_prob (time, forecast, event_class)`` at ``forecast = dm.plan.target.name``. None when the cube
    has none of these (real cubes).
    """
    index = np.asarray(time_index, np.int64)
    with xr.open_zarr(dm.store_path) as ds:
        if _is_nowcast(dm):
            if "oracle_flux_now" not in ds:
                return None
            return _log10(ds["oracle_flux_now"].values[index]), {}
        flux, probs = None, {}
        if "oracle_flux_max" in ds:
            flux = _log10(ds["oracle_flux_max"].sel(forecast=dm.plan.target.name).values[index])
        if "oracle_prob" in ds:
            prob = ds["oracle_prob"].sel(forecast=dm.plan.target.name)
            for letter in prob["event_class"].values:
                probs[str(letter)] = prob.sel(event_class=letter).values.astype(float)[index]
        if flux is None and not probs:
            return None
        return flux, probs


def _baselines(dm, time_index: np.ndarray, thresholds: Mapping[str, float] = THRESHOLDS
               ) -> dict[str, tuple[np.ndarray | None, dict[str, np.ndarray]]]:
    """Every reference forecast: name -> (log10 W/m² or None, {class letter: probability})."""
    index = np.asarray(time_index, np.int64)
    out: dict[str, tuple[np.ndarray | None, dict[str, np.ndarray]]] = {
        "persistence": (persistence_forecast(dm, index), {})}
    if not _is_nowcast(dm):
        for label in HISTORY_LABELS:
            try:
                out[f"flare-history persistence {label}"] = (flare_history_persistence(dm, index, label), {})
            except (DataConfigError, AttributeError, KeyError):
                pass  # a cube without flux_history_max
    out["climatology"] = (climatology_forecast(dm, index),
                          {letter: np.full(index.size, base_rate(dm, t)) for letter, t in thresholds.items()})
    bright = brightest_pixel_forecast(dm, index)
    if bright is not None:
        out[bright[0]] = (bright[1], {})
    photometry = region_photometry_forecast(dm, index, thresholds=thresholds)
    if photometry is not None:
        out["region photometry"] = photometry
    oracle = oracle_forecast(dm, index)
    if oracle is not None:
        out["oracle"] = oracle
    return out


def baseline_predictions(dm, time_index: np.ndarray) -> dict[str, np.ndarray]:
    """log10 flux (W/m²) of every reference forecast that gives a flux, for the cube steps ``time_index``.

    ``dm`` is a set-up :class:`flarelib.data.FlareDataModule`; everything calibrated is calibrated
    on its training block.
    """
    return {name: log for name, (log, _) in _baselines(dm, time_index).items() if log is not None}


def baseline_probabilities(dm, time_index: np.ndarray, *,
                           thresholds: Mapping[str, float] = THRESHOLDS) -> dict[str, dict[str, np.ndarray]]:
    """{name: {class letter: P(event)}} of every reference forecast that gives probabilities."""
    return {name: probs for name, (_, probs) in _baselines(dm, time_index, thresholds).items() if probs}


# --------------------------------------------------------------------------- probabilistic scores

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
        return float(default)
    candidates = np.r_[unique[:1], 0.5 * (unique[1:] + unique[:-1])]
    tss = tss_vs_threshold(prob, event, candidates)["TSS"].to_numpy()
    if not np.isfinite(tss).any():
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


# --------------------------------------------------------------------------- collecting every predictor

@dataclass
class SplitForecasts:
    """Every predictor on one split's samples (cube steps ``time_index``)."""

    split: str
    time_index: np.ndarray
    times: np.ndarray  #: datetime64[ns]
    flux: np.ndarray  #: true target flux, W/m²
    log: dict[str, np.ndarray] = field(default_factory=dict)  #: predictor -> log10 W/m²
    prob: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  #: predictor -> {letter: P(event)}

    @property
    def true_log(self) -> np.ndarray:
        return _log10(self.flux)

    def event(self, threshold: float) -> np.ndarray:
        """1 where the true flux >= ``threshold`` (W/m²), 0 below, NaN without truth."""
        return np.where(np.isfinite(self.flux), (self.flux >= threshold).astype(float), np.nan)


@dataclass
class Forecasts:
    """The model and every baseline on the validation and test samples, with the validation-chosen
    probability thresholds. Made by :func:`collect_forecasts`; read by :func:`skill_table` and the
    diagnostic tables."""

    dataset: str
    synthetic: bool
    target: str
    thresholds: dict[str, float]  #: class letter -> W/m²
    base_rate: dict[str, float]  #: class letter -> training base rate
    val: SplitForecasts
    test: SplitForecasts
    prob_threshold: dict[tuple[str, str], float] = field(default_factory=dict)  #: (predictor, letter) -> chosen

    @property
    def predictors(self) -> list[str]:
        return list(dict.fromkeys([*self.test.log, *self.test.prob]))

    def split(self, split: str) -> SplitForecasts:
        return {"val": self.val, "test": self.test}[split]

    def yes(self, split: str, predictor: str, letter: str) -> np.ndarray:
        """Yes forecasts (1/0, NaN = none) of ``predictor`` at class ``letter`` on ``split``: its probability
        against the validation-chosen threshold, or else its flux against the class threshold."""
        s = self.split(split)
        probs = s.prob.get(predictor, {})
        if letter in probs:
            p = np.asarray(probs[letter], float)
            return np.where(np.isfinite(p), (p >= self.prob_threshold[(predictor, letter)]).astype(float), np.nan)
        log = np.asarray(s.log[predictor], float)
        return np.where(np.isfinite(log), (log >= np.log10(self.thresholds[letter])).astype(float), np.nan)

    def frame(self, rows: list[dict]) -> pd.DataFrame:
        head = {"dataset": self.dataset, "synthetic": self.synthetic, "target": self.target}
        return pd.DataFrame([{**head, **row} for row in rows])


def _dataset_name(dm) -> str:
    attrs = getattr(dm, "cube_attrs", {}) or {}
    return f"{data_kind(bool(dm.synthetic))} {attrs.get('name', Path(dm.store_path).name)}"


def _model_outputs(ds: xr.Dataset, thresholds: Mapping[str, float]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(log10 flux, {class letter: P(event)}) of a model's predictions (:func:`flarelib.flarenet.predict`)."""
    head = {letter: np.asarray(ds[f"prob_{letter}"].values, float) for letter in thresholds if f"prob_{letter}" in ds}
    return np.asarray(ds["pred"].values, float), head


def _split_forecasts(ds: xr.Dataset, dm, thresholds: Mapping[str, float],
                     others: Mapping[str, xr.Dataset] | None = None) -> SplitForecasts:
    index = np.asarray(ds["time_index"].values, np.int64)
    flux = np.asarray(dm.plan.target.flux, float)[index]
    true = np.asarray(ds["true"].values, float)
    expected = _log10(flux)
    if true.shape != expected.shape or not np.allclose(true, expected, atol=1e-4, equal_nan=True):
        raise ValueError(f"predictions of split {ds.attrs.get('split', '?')!r} do not match the data module's "
                         f"target {dm.plan.target.name!r} at their time_index (another cube or target?)")
    pred, head = _model_outputs(ds, thresholds)
    times = np.asarray(dm.plan.times)[index].astype("datetime64[ns]")
    out = SplitForecasts(str(ds.attrs.get("split", "?")), index, times, flux)
    out.log[MODEL] = pred
    if head:
        out.prob[MODEL] = head
        out.log[f"{MODEL} regression"] = pred
    for name, other in (others or {}).items():
        if not np.array_equal(np.asarray(other["time_index"].values, np.int64), index):
            raise ValueError(f"{name!r} predicted other steps than the model on split {out.split!r}")
        out.log[name], probs = _model_outputs(other, thresholds)
        if probs:
            out.prob[name] = probs
    for name, (log, probs) in _baselines(dm, index, thresholds).items():
        out.log[name] = log if log is not None else np.full(index.size, np.nan)
        if probs:
            out.prob[name] = probs
    return out


def collect_forecasts(val: xr.Dataset, test: xr.Dataset, dm, *,
                      thresholds: Mapping[str, float] = THRESHOLDS,
                      others: Mapping[str, tuple[xr.Dataset, xr.Dataset]] | None = None) -> Forecasts:
    """The model's predictions on ``val`` and ``test`` (from :func:`flarelib.flarenet.predict`) and every
    baseline on exactly the same cube steps, with each probability predictor's yes/no threshold chosen
    on ``val`` (:func:`choose_threshold`).

    ``dm`` is the set-up :class:`flarelib.data.FlareDataModule` the predictions were made on (checked:
    their ``true`` must equal its target at their ``time_index``). ``others`` are reference models scored
    beside it, ``{name: (val predictions, test predictions)}`` on the same steps: e.g. the GOES-only model
    that a CNN with GOES inputs must beat to show that its images add information.
    """
    thresholds = dict(thresholds)
    others = dict(others or {})
    f = Forecasts(_dataset_name(dm), bool(dm.synthetic), str(test.attrs.get("target", dm.plan.target.name)), thresholds,
                  {letter: base_rate(dm, t) for letter, t in thresholds.items()},
                  _split_forecasts(val, dm, thresholds, {k: v[0] for k, v in others.items()}),
                  _split_forecasts(test, dm, thresholds, {k: v[1] for k, v in others.items()}))
    for name, probs in f.test.prob.items():
        for letter in (k for k in probs if k in thresholds):
            f.prob_threshold[(name, letter)] = choose_threshold(f.val.prob[name][letter],
                                                                f.val.event(thresholds[letter]))
    return f


# --------------------------------------------------------------------------- the skill table

def skill_table(val: xr.Dataset, test: xr.Dataset, dm, *, thresholds: Mapping[str, float] = THRESHOLDS,
                n_resamples: int = N_RESAMPLES, seed: int = SEED, level: float = LEVEL,
                forecasts: Forecasts | None = None) -> pd.DataFrame:
    """The skill table of the model and every baseline on the test samples, with bootstrap intervals.

    Args:
        val, test: the model's predictions (:func:`flarelib.flarenet.predict` on ``"val"`` and ``"test"``).
        dm: the set-up data module they were made on.
        thresholds: class letter -> W/m².
        n_resamples, seed, level: of the paired day-block bootstrap (:func:`bootstrap_scores`).
        forecasts: a :func:`collect_forecasts` result to reuse (computed if None).

    Returns one row per (dataset, target, predictor, threshold) with exactly :data:`SKILL_COLUMNS`:
    ``n_samples`` / ``n_events`` are the test samples with a forecast and a truth / the events among them;
    TSS and HSS with their ``level`` intervals; BSS against the training base rate (NaN for a predictor
    without probabilities); MAE_dex of its log10 flux (log10 W/m²).
    """
    f = forecasts if forecasts is not None else collect_forecasts(val, test, dm, thresholds=thresholds)
    rows = []
    for letter, threshold in f.thresholds.items():
        event = f.test.event(threshold)
        yes = {name: f.yes("test", name, letter) for name in f.predictors}
        boot = bootstrap_scores(f.test.times, event, yes, n_resamples=n_resamples, seed=seed, level=level)
        for name in f.predictors:
            valid = np.isfinite(yes[name]) & np.isfinite(event)
            prob = f.test.prob.get(name, {}).get(letter)
            rows.append({"split": "test", "predictor": name, "threshold": threshold_label(letter),
                         "n_samples": int(valid.sum()), "n_events": int(np.sum(event[valid] == 1)),
                         **boot.loc[name].to_dict(),
                         "BSS": np.nan if prob is None else brier_skill_score(prob, event, f.base_rate[letter]),
                         "MAE_dex": mae(f.test.log[name], f.test.true_log)})
    return f.frame(rows)[SKILL_COLUMNS]


def summary_columns(table: pd.DataFrame) -> pd.DataFrame:
    """A :func:`skill_table` for reading: TSS and HSS as ``"0.41 [0.30, 0.52]"``, BSS and MAE rounded,
    indexed by (target, threshold, predictor)."""
    out = table.set_index(["target", "threshold", "predictor"])
    shown = pd.DataFrame(index=out.index)
    shown["n_events"] = out["n_events"]
    shown["n_samples"] = out["n_samples"]
    for score in ("TSS", "HSS"):
        shown[score] = [_fmt(v, lo, hi) for v, lo, hi in zip(out[score], out[f"{score}_lo"], out[f"{score}_hi"])]
    shown["BSS"] = out["BSS"].round(3)
    shown["MAE_dex"] = out["MAE_dex"].round(3)
    return shown


def write_skill_csv(table: pd.DataFrame | Sequence[pd.DataFrame], path: str | Path | None = None, *,
                    append: bool = False) -> Path:
    """Write one or several skill tables (e.g. one per target) as one CSV; returns its path.

    ``path`` defaults to ``flarelib.paths.results_dir() / "skill.csv"`` (the folder is created). With
    ``append``, rows already in the file for other (dataset, target, split) are kept and those for the
    same ones are replaced, so that notebooks for different targets can add to one file.
    """
    tables = [table] if isinstance(table, pd.DataFrame) else list(table)
    out = pd.concat(tables, ignore_index=True)[SKILL_COLUMNS]
    path = Path(path) if path is not None else results_dir() / "skill.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    if append and path.exists():
        old = pd.read_csv(path)
        keys = ["dataset", "target", "split"]
        new_keys = set(map(tuple, out[keys].astype(str).to_numpy()))
        keep = [tuple(k) not in new_keys for k in old[keys].astype(str).to_numpy()]
        out = pd.concat([old[keep], out], ignore_index=True)[SKILL_COLUMNS]
    out.to_csv(path, index=False)
    return path


def contingency_table(forecasts: Forecasts) -> pd.DataFrame:
    """TP, FP, FN, TN, TSS and HSS of every predictor on the test samples with the yes forecasts of
    :func:`skill_table`, indexed by (target, predictor, threshold) (the input of
    :func:`flarelib.plotting.plot_confusion`)."""
    f = forecasts
    rows = []
    for letter, threshold in f.thresholds.items():
        event = f.test.event(threshold)
        for name in f.predictors:
            cells = _cells(f.yes("test", name, letter)[:, None], event).sum(axis=0)[:, 0]
            counts = dict(zip(("TP", "FP", "FN", "TN"), (int(c) for c in cells)))
            s = scores(counts)
            rows.append({"predictor": name, "threshold": threshold_label(letter), **counts,
                         "TSS": s["TSS"], "HSS": s["HSS"]})
    return f.frame(rows).set_index(["target", "predictor", "threshold"])


def _probability_rows(f: Forecasts, split: str, make: Callable[[np.ndarray, np.ndarray, str, str], pd.DataFrame]
                      ) -> pd.DataFrame:
    s = f.split(split)
    parts = []
    for name, probs in s.prob.items():
        for letter, prob in probs.items():
            if letter not in f.thresholds:
                continue
            part = make(prob, s.event(f.thresholds[letter]), name, letter)
            part.insert(0, "threshold", threshold_label(letter))
            part.insert(0, "predictor", name)
            part.insert(0, "split", split)
            parts.append(part)
    head = {"dataset": f.dataset, "synthetic": f.synthetic, "target": f.target}
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    for k, (column, value) in enumerate(head.items()):
        out.insert(k, column, value)
    return out


def reliability_table(forecasts: Forecasts, *, split: str = "test", bins: int = 10) -> pd.DataFrame:
    """:func:`reliability` of every probability predictor and class on ``split``, labelled with dataset,
    synthetic, target, split, predictor and threshold."""
    return _probability_rows(forecasts, split, lambda p, e, name, letter: reliability(p, e, bins))


def roc_table(forecasts: Forecasts, *, split: str = "test") -> pd.DataFrame:
    """:func:`roc_curve` of every probability predictor and class on ``split``, with its ``AUC``."""
    def make(p, e, name, letter):
        curve = roc_curve(p, e)
        curve["AUC"] = roc_auc(p, e)
        return curve
    return _probability_rows(forecasts, split, make)


def tss_threshold_table(forecasts: Forecasts, *, split: str = "val",
                        grid: np.ndarray | None = None) -> pd.DataFrame:
    """:func:`tss_vs_threshold` of every probability predictor and class on ``split`` (default the
    validation block, where the threshold is chosen), with the ``chosen`` threshold of each."""
    def make(p, e, name, letter):
        curve = tss_vs_threshold(p, e, grid)
        curve["chosen"] = forecasts.prob_threshold[(name, letter)]
        return curve
    return _probability_rows(forecasts, split, make)


# --------------------------------------------------------------------------- skill per block

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
        counts = np.tensordot(member, _cells(flags, event), axes=1)  # (G, 4, P)
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


def skill_by_test_block(forecasts: Forecasts, cadence: np.timedelta64) -> pd.DataFrame:
    """:func:`skill_per_block` of the model and every baseline over the test blocks of a blocked split
    (probabilistic predictors with their validation-chosen thresholds)."""
    test = forecasts.test
    names = [n for n in forecasts.predictors if n in test.log]
    yes = {n: {letter: forecasts.yes("test", n, letter) for letter in forecasts.thresholds}
           for n in names if n in test.prob}
    return skill_per_block(test.true_log, {n: test.log[n] for n in names}, block_labels(test.times, cadence),
                           thresholds=forecasts.thresholds, yes=yes)


def rolling_origin_baselines(dm, folds: Sequence[dict[str, np.ndarray]], *,
                             thresholds: Mapping[str, float] = THRESHOLDS) -> pd.DataFrame:
    """Rolling-origin evaluation of the reference forecasts: for each fold (``{"train", "val", "test"}`` cube
    step indices, e.g. :func:`flarelib.data.rolling_origin`), every baseline is calibrated on that fold's
    training steps and scored on its test block. Returns :func:`skill_per_block` rows, block = fold number.

    The model is not retrained per fold here (that is an experiment, not a notebook run).
    """
    per_fold = []
    for fold in folds:
        # a view whose split is this fold's: the baselines calibrate on its train
        view = dm.viewed_with(dataclasses.replace(dm.plan, index={name: idx[np.isfinite(dm.plan.target.log_flux[idx])]
                                                                  for name, idx in fold.items()}))
        test = view.plan.index["test"]
        logs = {name: np.asarray(log, float) for name, (log, _) in _baselines(view, test, thresholds).items()
                if log is not None}
        per_fold.append((test, logs))
    names = list(dict.fromkeys(n for _, logs in per_fold for n in logs))
    trues = [dm.plan.target.log_flux[test].astype(float) for test, _ in per_fold]
    preds = {n: [logs.get(n, np.full(test.size, np.nan)) for test, logs in per_fold] for n in names}
    blocks = [np.full(test.size, f"fold {k + 1}") for k, (test, _) in enumerate(per_fold)]
    return skill_per_block(np.concatenate(trues), {n: np.concatenate(v) for n, v in preds.items()},
                           np.concatenate(blocks), thresholds=thresholds)
