"""The reference forecasts every model is scored against, read from the cube on exactly the model's samples
(persistence, flare-history persistence, climatology, a running-rate Poisson forecast, a GOES + flare-history
logistic model, brightest pixel, region photometry, the synthetic oracle), each calibrated on the training
block only and using nothing after the issue time.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

from flarelib.evaluate.scoring import THRESHOLDS, fit_least_squares, fit_linear, fit_logistic, mae, predict_logistic
from flarelib.learn.data import DataConfigError, FlareDataModule, read_frames

log = logging.getLogger(__name__)

#: Hot channels (Å) of the region-photometry baseline, and of the brightest-pixel baseline.
PHOTOMETRY_CHANNELS = (94, 131, 335)


BRIGHTEST_PIXEL_CHANNELS = (94, 131)


#: Flare-history windows (labels of the cube's ``history`` coordinate); 24 h is the benchmark persistence.
HISTORY_LABELS = ("6h", "24h")


#: The synthetic sun's forecasts from its generator: from the latent state, and the best fit on noiseless observables.
LATENT_ORACLE = "latent oracle"
OBSERVABLE_ORACLE = "observable oracle"


#: The name of the GOES + flare-history logistic model in every table.
GOES_HISTORY_MODEL = "GOES + flare-history logistic"


#: Days of flare history behind the running-rate Poisson forecast (one solar rotation, as in the literature).
RATE_DAYS = 27


#: Floor (DN/s) of the summed hot-channel excess before its log10 (an empty excess is log10 1 = 0).
EXCESS_FLOOR = 1.0


def log10_flux(flux: np.ndarray) -> np.ndarray:
    flux = np.asarray(flux, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux > 0, np.log10(np.where(flux > 0, flux, 1.0)), np.nan)


def _is_nowcast(dm: FlareDataModule) -> bool:
    return bool(dm.plan.target.horizon == np.timedelta64(0, "ns"))


def persistence(flux_now: np.ndarray, times: np.ndarray, time_index: np.ndarray, *, nowcast: bool,
                cadence: np.timedelta64) -> np.ndarray:
    """log10 (W/m²) of the latest flux known at issue time for the cube steps ``time_index``.

    ``flux_now`` (time,) W/m² and ``times`` (time,) datetime64 are the cube's. A forecast uses the flux
    at ``t``. A nowcast cannot use the flux it predicts: it uses the flux at exactly ``t - cadence``
    (the cube's, :func:`flarelib.cube.store.cube_cadence`), looked up by time, so it is NaN where
    that step is missing from the cube (a gap), not the flux of an earlier step.
    """
    flux_now = np.asarray(flux_now, float)
    index = np.asarray(time_index, np.int64)
    if not nowcast:
        return log10_flux(flux_now[index])
    times = np.asarray(times, dtype="datetime64[ns]")
    want = times[index] - np.timedelta64(cadence, "ns")
    pos = np.clip(np.searchsorted(times, want), 0, times.size - 1)
    found = times[pos] == want
    return np.where(found, log10_flux(flux_now[pos]), np.nan)


def persistence_forecast(dm: FlareDataModule, time_index: np.ndarray) -> np.ndarray:
    """:func:`persistence` (log10 W/m²) of a set-up data module ``dm`` for its cube steps ``time_index``."""
    return persistence(dm.plan.flux_now, dm.plan.times, time_index, nowcast=_is_nowcast(dm), cadence=dm.plan.cadence)


def flare_history_persistence(dm: FlareDataModule, time_index: np.ndarray, label: str = "24h") -> np.ndarray:
    """log10 (W/m²) of the max XRS-B flux over ``[t - H, t]`` (``dm.history_max(label)``), H = ``label``.

    Forecasts only: for a nowcast the window contains the flux being predicted.
    """
    if _is_nowcast(dm):
        raise ValueError("flare-history persistence is for forecasts: a nowcast's history contains its target")
    return log10_flux(np.asarray(dm.history_max(label), float)[np.asarray(time_index, np.int64)])


def climatology(train_log: np.ndarray, n: int) -> np.ndarray:
    """The training-block mean log10 flux (log10 W/m²), repeated ``n`` times."""
    return np.full(n, np.nanmean(np.asarray(train_log, float)))


def base_rate(dm: FlareDataModule, threshold: float) -> float:
    """Fraction of training samples of ``dm`` whose target flux is at or above ``threshold`` (W/m²)."""
    flux = np.asarray(dm.plan.target.flux, float)[dm.plan.index["train"]]
    flux = flux[np.isfinite(flux)]
    return float(np.mean(flux >= threshold)) if flux.size else float("nan")


def climatology_forecast(dm: FlareDataModule, time_index: np.ndarray) -> np.ndarray:
    """The training-block mean log10 flux of ``dm`` (log10 W/m²) for each of ``time_index``."""
    return climatology(np.asarray(dm.plan.target.log_flux, float)[dm.plan.index["train"]], len(time_index))


def flare_list(dm: FlareDataModule) -> tuple[np.ndarray, np.ndarray]:
    """``(peak times datetime64[ns], peak flux W/m² float64)`` of the cube's flare event list, sorted by peak
    (empty arrays for a cube without one). The synthetic sun's list also holds the flares simulated before its
    first image, so a running rate is defined from the start."""
    cube = dm.cube()
    if "event_peak" not in cube or cube.sizes.get("event", 0) == 0:
        return np.array([], "datetime64[ns]"), np.array([], float)
    peak = cube["event_peak"].values.astype("datetime64[ns]")
    flux = cube["event_peak_flux"].values.astype(np.float64)
    order = np.argsort(peak, kind="stable")
    return peak[order], flux[order]


def recent_flares(dm: FlareDataModule, time_index: np.ndarray, threshold: float, days: int = RATE_DAYS) -> np.ndarray:
    """Per cube step of ``time_index``, how many listed flares at or above ``threshold`` (W/m²) peaked in
    ``(t - days, t]``: the flare history known at the issue time ``t`` (zeros for a cube without a flare list)."""
    peak, flux = flare_list(dm)
    peaks = peak[flux >= threshold]
    times = np.asarray(dm.plan.times, "datetime64[ns]")[np.asarray(time_index, np.int64)]
    span = np.timedelta64(int(days), "D")
    return np.searchsorted(peaks, times, side="right") - np.searchsorted(peaks, times - span, side="right")


def running_rate_poisson(dm: FlareDataModule, time_index: np.ndarray, *, thresholds: Mapping[str, float] = THRESHOLDS,
                         days: int = RATE_DAYS) -> dict[str, np.ndarray] | None:
    """The running-rate Poisson forecast (the activity-aware reference; the synthetic analogue of
    McIntosh-Poisson): ``{class letter: P(event)}`` at the cube steps ``time_index``.

    The rate ``lambda`` of flares at or above each class threshold is their count with a peak in
    ``(t - days, t]`` divided by ``days`` (only flares already peaked at the issue time ``t``), and
    ``P = 1 - exp(-lambda * window)`` for the target's window. Forecasts only (a nowcast has no window);
    None for a nowcast or a cube without a flare event list. Nothing is fitted.
    """
    if _is_nowcast(dm) or flare_list(dm)[0].size == 0:
        return None
    window_days = float(dm.plan.target.window / np.timedelta64(1, "D"))
    return {letter: 1.0 - np.exp(-recent_flares(dm, time_index, threshold, days) / float(days) * window_days)
            for letter, threshold in thresholds.items()}


def history_features(dm: FlareDataModule, time_index: np.ndarray) -> np.ndarray:
    """(n, k) GOES and flare-history features known at each issue time: ``log10`` of the XRS-B flux at ``t``
    and of its max over each flare-history window (6 h, 24 h), and ``log10(1 + count)`` of the flares >= C1 and
    >= M1 that peaked in the previous :data:`RATE_DAYS` days (where the cube lists its flares)."""
    index = np.asarray(time_index, np.int64)
    columns = [log10_flux(np.asarray(dm.plan.flux_now, float)[index])]
    for label in HISTORY_LABELS:
        try:
            columns.append(log10_flux(np.asarray(dm.history_max(label), float)[index]))
        except (DataConfigError, AttributeError, KeyError):
            pass  # a cube without flux_history_max
    if flare_list(dm)[0].size:
        columns += [np.log10(1.0 + recent_flares(dm, index, threshold)) for threshold in THRESHOLDS.values()]
    return np.column_stack(columns)


def goes_history_logistic(dm: FlareDataModule, time_index: np.ndarray, *, thresholds: Mapping[str, float] = THRESHOLDS
                          ) -> dict[str, np.ndarray] | None:
    """The GOES + flare-history model: per class, a :func:`fit_logistic` of the training-block events on
    :func:`history_features`, at the cube steps ``time_index``: ``{class letter: P(event)}``.

    What a forecaster knows without images (the X-ray flux, its recent maxima and the recent flare counts);
    the image models and the observable oracle are compared with it. Forecasts only (None for a nowcast).
    """
    if _is_nowcast(dm):
        return None
    train = dm.plan.index["train"]
    return _logistic_per_class(dm, history_features(dm, train), history_features(dm, time_index), thresholds)


def _logistic_per_class(dm: FlareDataModule, x_train: np.ndarray, x: np.ndarray,
                        thresholds: Mapping[str, float]) -> dict[str, np.ndarray]:
    """``{class letter: P(event)}`` at ``x`` of a :func:`fit_logistic` per class of the training-block events
    (target flux >= the class threshold) on the features ``x_train`` of the training steps."""
    flux_train = np.asarray(dm.plan.target.flux, float)[dm.plan.index["train"]]
    known = np.isfinite(x_train).any(axis=0)  # a history window longer than the data has no value in training
    if not known.all():
        log.warning("%s: %d of %d history features have no value in the training block (a history window longer "
                    "than the data before it); fitted without them", dm.plan.name, int((~known).sum()), known.size)
        x_train, x = x_train[:, known], x[:, known]
    out = {}
    for letter, threshold in thresholds.items():
        events = np.where(np.isfinite(flux_train), (flux_train >= threshold).astype(float), np.nan)
        out[letter] = predict_logistic(fit_logistic(x_train, events), x)
    return out


def observable_oracle(dm: FlareDataModule, time_index: np.ndarray, *, thresholds: Mapping[str, float] = THRESHOLDS
                      ) -> dict[str, np.ndarray] | None:
    """The synthetic sun's observable oracle: per class, a :func:`fit_logistic` of the training-block events on
    :func:`history_features` and the cube's noiseless image ``observables`` (SYNTHETIC: the rate proxy, the
    largest warm-envelope growth over 24 h, the X-ray background; :func:`flarelib.cube.synthetic.observables`),
    at the cube steps ``time_index``: ``{class letter: P(event)}``.

    The best a model of the images can hope for with a well-fitted combination of what the images show without
    noise, beside what GOES shows: the ceiling for FlareNet that the latent oracle (which knows hidden
    complexity and the flares already announced) is not. Forecasts on cubes with ``observables`` only (None
    otherwise)."""
    if _is_nowcast(dm):
        return None
    cube = dm.cube()
    if "observables" not in cube:
        return None
    values = cube["observables"].values.astype(np.float64)
    train = dm.plan.index["train"]
    index = np.asarray(time_index, np.int64)
    x_train = np.column_stack([history_features(dm, train), values[train]])
    x = np.column_stack([history_features(dm, index), values[index]])
    return _logistic_per_class(dm, x_train, x, thresholds)


def distinct_events(dm: FlareDataModule, time_index: np.ndarray, threshold: float) -> int:
    """How many distinct flares at or above ``threshold`` (W/m²) make the samples ``time_index`` events.

    With the cube's flare list: a forecast counts the flares whose peak lies in some sample's window
    ``(t + lead, t + lead + window]``; a nowcast the flares in progress (start <= t <= end) at some event
    sample. Without a list: the runs of consecutive event samples (one cadence apart). Hourly samples of a
    24 h window repeat each flare 24 times, so this, not the sample count, is how many events a score rests on.
    """
    index = np.asarray(time_index, np.int64)
    times = np.asarray(dm.plan.times, "datetime64[ns]")[index]
    target = np.asarray(dm.plan.target.flux, float)[index]
    is_event = np.isfinite(target) & (target >= threshold)
    peak, flux = flare_list(dm)
    if peak.size and not _is_nowcast(dm):
        big = np.sort(peak[flux >= threshold])
        lo = np.searchsorted(big, times + dm.plan.target.lead, side="right")
        hi = np.searchsorted(big, times + dm.plan.target.horizon, side="right")
        covered = np.zeros(big.size + 1, int)
        np.add.at(covered, lo, 1)
        np.add.at(covered, hi, -1)
        return int(np.count_nonzero(np.cumsum(covered)[:-1]))
    if peak.size:
        cube = dm.cube()
        start = cube["event_start"].values.astype("datetime64[ns]")
        end = cube["event_end"].values.astype("datetime64[ns]")
        big = cube["event_peak_flux"].values.astype(float) >= threshold
        hits = times[is_event]
        inside = (start[big][:, None] <= hits[None, :]) & (hits[None, :] <= end[big][:, None])
        return int(inside.any(axis=1).sum())
    hits = np.sort(times[is_event])
    if hits.size == 0:
        return 0
    return int(1 + np.sum(np.diff(hits) > np.timedelta64(dm.plan.cadence, "ns")))


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
            peak[pos] = log10_flux(np.nanmax(frames.reshape(len(pos), c, -1), axis=2))
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


def brightest_pixel_forecast(dm: FlareDataModule, time_index: np.ndarray, *,
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


def photometry_features(dm: FlareDataModule, time_index: np.ndarray, *,
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


def region_photometry_forecast(dm: FlareDataModule, time_index: np.ndarray, *,
                               thresholds: Mapping[str, float] = THRESHOLDS,
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


def oracle_forecast(dm: FlareDataModule, time_index: np.ndarray
                    ) -> tuple[np.ndarray | None, dict[str, np.ndarray]] | None:
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
            return log10_flux(ds["oracle_flux_now"].values[index]), {}
        flux, probs = None, {}
        if "oracle_flux_max" in ds:
            flux = log10_flux(ds["oracle_flux_max"].sel(forecast=dm.plan.target.name).values[index])
        if "oracle_prob" in ds:
            prob = ds["oracle_prob"].sel(forecast=dm.plan.target.name)
            for letter in prob["event_class"].values:
                probs[str(letter)] = prob.sel(event_class=letter).values.astype(float)[index]
        if flux is None and not probs:
            return None
        return flux, probs


def baseline_forecasts(dm: FlareDataModule, time_index: np.ndarray, thresholds: Mapping[str, float] = THRESHOLDS
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
    rate = running_rate_poisson(dm, index, thresholds=thresholds)
    if rate is not None:
        out[f"running-rate Poisson {RATE_DAYS}d"] = (None, rate)
    history = goes_history_logistic(dm, index, thresholds=thresholds)
    if history is not None:
        out[GOES_HISTORY_MODEL] = (None, history)
    bright = brightest_pixel_forecast(dm, index)
    if bright is not None:
        out[bright[0]] = (bright[1], {})
    photometry = region_photometry_forecast(dm, index, thresholds=thresholds)
    if photometry is not None:
        out["region photometry"] = photometry
    oracle = oracle_forecast(dm, index)
    if oracle is not None:
        out[LATENT_ORACLE] = oracle
    observable = observable_oracle(dm, index, thresholds=thresholds)
    if observable is not None:
        out[OBSERVABLE_ORACLE] = (None, observable)
    return out


def baseline_predictions(dm: FlareDataModule, time_index: np.ndarray) -> dict[str, np.ndarray]:
    """log10 flux (W/m²) of every reference forecast that gives a flux, for the cube steps ``time_index``.

    ``dm`` is a set-up :class:`flarelib.learn.data.FlareDataModule`; everything calibrated is calibrated
    on its training block.
    """
    return {name: log for name, (log, _) in baseline_forecasts(dm, time_index).items() if log is not None}


def baseline_probabilities(dm: FlareDataModule, time_index: np.ndarray, *,
                           thresholds: Mapping[str, float] = THRESHOLDS) -> dict[str, dict[str, np.ndarray]]:
    """{name: {class letter: P(event)}} of every reference forecast that gives probabilities."""
    return {name: probs for name, (_, probs) in baseline_forecasts(dm, time_index, thresholds).items() if probs}
