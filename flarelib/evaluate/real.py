"""The real Sun's verdict: real flare targets from the NOAA event list and the reference forecasts of the
literature, trained on solar cycle 23 and scored on cycle 24 with the protocol of :mod:`.skill`.

**Issue times and targets** (causal: a forecast issued at ``t`` uses nothing after ``t``). Forecasts are issued
daily at 00:30 UT, the time of the NOAA Solar Region Summary (SRS) they read. Full disk: "a flare at or above
C1 / M1 / X1 peaks in ``(t, t + 24 h]``", so a flare peaking at ``p`` counts for the issue times in
``[p - 24 h, p)``. Per region: "this NOAA region produces a flare at or above the threshold (its peak in
``(t, t + 24 h]``, attributed to the region by the event list) in the next 24 h", at each SRS row. The
target flux (float64 W/m²) is the largest listed peak flux in the window; the lists hold flares of C1 and
above only, so a window without one gets :data:`FLOOR_FLUX` (B1, below every listed flare).

**Protocol.** Fit on cycle 23 up to :data:`TRAIN_SPAN` (1996-08-01 to 2004-12-31); yes/no probability
thresholds chosen to maximize TSS on the validation span :data:`VAL_SPAN` (the last cycle-23 years,
2005-01-01 to 2008-12-31, with the models fitted on the training span; never on test); test on cycle 24
:data:`TEST_SPAN` (2011-01-01 to 2018-12-16, the last SRS day). These are the defaults of :class:`RealSplit`;
:func:`real_forecasts` takes any other split of the issue times (spans, or functions of the issue time such
as every third month; :mod:`.real_lessons`). Intervals: the circular block bootstrap of
:mod:`.scoring`, blocks as long as each full-disk target's measured memory (:func:`memory_block` of its daily
0/1 series over the test span, the series the bootstrap resamples; over 1996-2018 the solar cycle's rise and
fall keep the autocorrelation positive for months and the measured memory is far longer: 158 days instead of
17 at >= M1); the per-region target uses the full-disk block of the same threshold; 90 % intervals.

**Reference forecasts** (all probabilities in [0, 1] unless said):

* ``climatology``: the training base rate.
* ``flare-history persistence 24h``: the largest flare peaking in ``(t - 24 h, t]`` (log10 W/m², floored at
  :data:`FLOOR_FLUX`): yes when it reaches the threshold (Leka et al. 2019's persistence).
* ``running-rate Poisson 27d``: ``P = 1 - exp(-n / 27)``, ``n`` the flares at or above the threshold peaking
  in ``(t - 27 d, t]`` (full disk; per region, that region's).
* ``McIntosh-Poisson`` (Gallagher et al. 2002; Bloomfield et al. 2012): ``lambda`` per McIntosh class = the
  mean number of flares at or above the threshold per region per 24 h over the training region-days of that
  class; ``P_region = 1 - exp(-lambda)``; full disk ``P = 1 - prod(1 - P_region)`` over the regions of the
  day's SRS (0 on a day without regions). A class unseen in training gets the pooled training rate.
* ``Hale-class Poisson``: the same with the Mount Wilson class.
* ``McIntosh logistic``: :func:`fit_logistic` per region on the McIntosh letters (Z, p, c one-hot),
  log10(1 + area) and log(1 + the region's flares at or above the threshold in the previous 24 h); full
  disk as for McIntosh-Poisson.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from flarelib.cube.catalog import Catalog, load_catalog
from flarelib.cube.noaa import MCINTOSH_LETTERS
from flarelib.evaluate.baselines import log10_flux
from flarelib.evaluate.scoring import (
    LEVEL,
    N_RESAMPLES,
    SEED,
    fit_logistic,
    memory_block,
    predict_logistic,
)
from flarelib.evaluate.skill import (
    Forecasts,
    SplitForecasts,
    forecasts_skill_table,
    paired_table,
    write_paired_csv,
    write_skill_csv,
)
from flarelib.paths import results_dir

#: The catalog entries the real targets and the region features come from.
EVENTS_ENTRY = "noaa-flares-1996-2018"
REGIONS_ENTRY = "noaa-regions-1996-2018"

#: Class thresholds of the real targets, W/m² (>= C1, >= M1, >= X1).
REAL_THRESHOLDS = {"C": 1e-6, "M": 1e-5, "X": 1e-4}

#: Spans of the issue times (inclusive, UTC): fit, choose thresholds, test.
TRAIN_SPAN = ("1996-08-01", "2004-12-31 23:59")
VAL_SPAN = ("2005-01-01", "2008-12-31 23:59")
TEST_SPAN = ("2011-01-01", "2018-12-16 23:59")

#: One part of a split of the issue times: an inclusive ``(start, end)`` span (UTC strings), or a function of
#: issue times (datetime64[ns] (n,)) -> bool (n,) that selects them (e.g. every third month). The same
#: selection applies to the full-disk issue times and to the region-days (by their SRS issue time).
Selection = tuple[str, str] | Callable[[np.ndarray], np.ndarray]

#: The daily issue time (that of the SRS), after 00:00 UT.
ISSUE_OFFSET = np.timedelta64(30, "m")
#: Forecast window and flare-history window.
WINDOW = np.timedelta64(24, "h")
#: Days of the running-rate Poisson forecast.
RATE_DAYS = 27
#: Target and history flux of a window without a listed flare (W/m²): B1, below the lists' C1 floor.
FLOOR_FLUX = 1e-7

FULL_DISK = "full_disk_24h"
PER_REGION = "region_24h"
CLIMATOLOGY = "climatology"
PERSISTENCE = "flare-history persistence 24h"
RUNNING_RATE = f"running-rate Poisson {RATE_DAYS}d"
MCINTOSH_POISSON = "McIntosh-Poisson"
HALE_POISSON = "Hale-class Poisson"
MCINTOSH_LOGISTIC = "McIntosh logistic"

#: The paired comparisons of :func:`real_paired`: every reference against climatology, and the region-based
#: forecasts against flare-history persistence and the running rate.
REAL_PAIRS = [(name, CLIMATOLOGY) for name in (PERSISTENCE, RUNNING_RATE, MCINTOSH_POISSON, HALE_POISSON,
                                               MCINTOSH_LOGISTIC)] + [
    (MCINTOSH_POISSON, PERSISTENCE), (MCINTOSH_POISSON, RUNNING_RATE), (MCINTOSH_LOGISTIC, MCINTOSH_POISSON)]

_MINUTE = np.timedelta64(1, "m")
_REGION_KEY = np.int64(10**8)  # minutes since 1970 stay below 10**8 until 2160


@dataclass(frozen=True)
class RealHistory:
    """The two real tables the targets and forecasts are made from (:func:`load_real_history`)."""

    events: pd.DataFrame  #: :func:`flarelib.cube.noaa.read_event_list`
    regions: pd.DataFrame  #: :func:`flarelib.cube.noaa.read_region_days`
    dataset: str = EVENTS_ENTRY


def load_real_history(catalog: Catalog | None = None) -> RealHistory:
    """The event list and the region-days from their catalog entries (checked by sha256)."""
    cat = catalog if catalog is not None else load_catalog()
    return RealHistory(cat.open(EVENTS_ENTRY), cat.open(REGIONS_ENTRY))


def daily_issue_times(start: str | np.datetime64, end: str | np.datetime64) -> np.ndarray:
    """The daily issue times (00:30 UT) from the day of ``start`` to that of ``end``: datetime64[ns] (n,)."""
    days = pd.date_range(pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize(), freq="D")
    return (days.to_numpy("datetime64[ns]") + ISSUE_OFFSET).astype("datetime64[ns]")


def _minutes(times: np.ndarray) -> np.ndarray:
    return (np.asarray(times, "datetime64[ns]") - np.datetime64(0, "ns")) // _MINUTE


def _in_window(peaks: np.ndarray, times: np.ndarray, window: np.timedelta64, future: bool) -> tuple[np.ndarray, ...]:
    """For sorted keys ``peaks`` and query keys ``times`` (same units): the slice ``[lo, hi)`` of peaks in
    ``(t, t + window]`` (``future``) or ``(t - window, t]``."""
    w = np.int64(window)
    lo = np.searchsorted(peaks, times if future else times - w, side="right")
    hi = np.searchsorted(peaks, times + w if future else times, side="right")
    return lo, hi


def _slice_max(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, empty: float) -> np.ndarray:
    out = np.full(lo.size, empty, np.float64)
    for k in np.flatnonzero(hi > lo):
        out[k] = max(empty, float(values[lo[k]:hi[k]].max()))
    return out


def window_flares(peak: np.ndarray, flux: np.ndarray, times: np.ndarray, *, window: np.timedelta64 = WINDOW,
                  future: bool = True, threshold: float = 0.0,
                  floor: float = FLOOR_FLUX) -> tuple[np.ndarray, np.ndarray]:
    """``(count, max flux)`` per issue time of the flares (peak times ``peak``, flux ``flux`` W/m²) at or above
    ``threshold`` that peak in ``(t, t + window]`` (``future``) or ``(t - window, t]``. The max flux (float64
    W/m²) is ``floor`` where there is none. ``times`` (n,) datetime64 -> two (n,) arrays."""
    peak, flux = np.asarray(peak, "datetime64[ns]"), np.asarray(flux, np.float64)
    keep = flux >= threshold
    order = np.argsort(peak[keep], kind="stable")
    keys, values = _minutes(peak[keep][order]), flux[keep][order]
    lo, hi = _in_window(keys, _minutes(times), window // _MINUTE, future)
    return (hi - lo).astype(np.int64), _slice_max(values, lo, hi, floor)


def region_window_flares(events: pd.DataFrame, regions: pd.DataFrame, *, window: np.timedelta64 = WINDOW,
                         future: bool = True, threshold: float = 0.0,
                         floor: float = FLOOR_FLUX) -> tuple[np.ndarray, np.ndarray]:
    """As :func:`window_flares`, per region-day: the flares of that NOAA region (by the event list's region)
    around its ``issue`` time. ``regions`` needs ``issue`` and ``noaa_ar``; returns two (len(regions),) arrays."""
    listed = events.dropna(subset=["noaa_ar"])
    listed = listed[listed["peak_flux"] >= threshold]
    ekeys = listed["noaa_ar"].to_numpy(np.int64) * _REGION_KEY + _minutes(listed["peak"].to_numpy())
    order = np.argsort(ekeys, kind="stable")
    ekeys, values = ekeys[order], listed["peak_flux"].to_numpy(np.float64)[order]
    rkeys = regions["noaa_ar"].to_numpy(np.int64) * _REGION_KEY + _minutes(regions["issue"].to_numpy())
    lo, hi = _in_window(ekeys, rkeys, window // _MINUTE, future)
    return (hi - lo).astype(np.int64), _slice_max(values, lo, hi, floor)


def combine_regions(issue: np.ndarray, p_region: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Full-disk probability ``P = 1 - prod_r (1 - P_r)`` over the regions issued at each of ``times``
    (independent regions), 0 where no region was issued. ``issue`` and ``p_region`` (m,) per region-day,
    ``times`` (n,) datetime64 -> (n,) float64."""
    log_none = pd.Series(np.log1p(-np.clip(np.asarray(p_region, np.float64), 0.0, 1.0 - 1e-15)),
                         index=pd.DatetimeIndex(np.asarray(issue, "datetime64[ns]")))
    summed = log_none.groupby(level=0).sum().reindex(pd.DatetimeIndex(times), fill_value=0.0)
    return -np.expm1(summed.to_numpy(np.float64))


def poisson_rates(classes: pd.Series, counts: np.ndarray) -> tuple[dict[str, float], float]:
    """Per class: the mean count per region-day (flares per region per 24 h) over the given (training)
    region-days, and the pooled mean (for classes unseen in training)."""
    counts = np.asarray(counts, np.float64)
    rates = pd.Series(counts, index=classes.to_numpy()).groupby(level=0).mean()
    return {str(k): float(v) for k, v in rates.items()}, float(counts.mean()) if counts.size else 0.0


def poisson_probability(classes: pd.Series, rates: Mapping[str, float], pooled: float) -> np.ndarray:
    """``P = 1 - exp(-lambda_class)`` per region-day (the pooled rate for an unknown class): (m,) float64."""
    lam = classes.map(dict(rates)).astype(np.float64).fillna(pooled).to_numpy(np.float64)
    return -np.expm1(-lam)


def mcintosh_features(regions: pd.DataFrame, history: np.ndarray) -> np.ndarray:
    """Region-day features of the logistic model: one-hot McIntosh Z, p and c letters (7 + 6 + 4 columns),
    log10(1 + area / MSH) and log(1 + flares of the region in the previous 24 h): (m, 19) float64."""
    at = regions["mcintosh"].to_numpy(dtype="U3").view("U1").reshape(len(regions), 3)  # (m, 3) letters
    columns = [(at[:, i] == letter).astype(np.float64) for i, letters in enumerate(MCINTOSH_LETTERS)
               for letter in letters]
    columns += [np.log10(1.0 + regions["area"].to_numpy(np.float64)), np.log1p(np.asarray(history, np.float64))]
    return np.column_stack(columns)


def in_span(times: np.ndarray, span: tuple[str, str]) -> np.ndarray:
    """Which of ``times`` (datetime64 (n,)) lie in the inclusive ``span`` ``(start, end)``: bool (n,)."""
    times = np.asarray(times, "datetime64[ns]")
    return (times >= np.datetime64(pd.Timestamp(span[0]))) & (times <= np.datetime64(pd.Timestamp(span[1])))


def select(times: np.ndarray, selection: Selection) -> np.ndarray:
    """Which of ``times`` (datetime64 (n,)) a :data:`Selection` selects: bool (n,)."""
    times = np.asarray(times, "datetime64[ns]")
    if isinstance(selection, tuple):
        return in_span(times, selection)
    mask = np.asarray(selection(times), bool)
    if mask.shape != times.shape:
        raise ValueError(f"a selection returned {mask.shape} flags for {times.shape} issue times")
    return mask


@dataclass(frozen=True)
class RealSplit:
    """Which issue times (full disk) and region-days (by issue time) :func:`real_forecasts` fits on
    (``train``), chooses the yes/no probability thresholds on (``val``) and scores (``test``). The defaults are
    the chronological cycle-23 -> cycle-24 protocol of the module docstring. Parts may overlap only if the
    caller means them to (nothing here checks); a part that selects nothing gives empty forecasts."""

    train: Selection = TRAIN_SPAN
    val: Selection = VAL_SPAN
    test: Selection = TEST_SPAN

    def masks(self, times: np.ndarray) -> dict[str, np.ndarray]:
        """``{"train", "val", "test"}`` -> bool (n,) over ``times`` (datetime64 (n,))."""
        return {part: select(times, getattr(self, part)) for part in ("train", "val", "test")}


@dataclass(frozen=True, eq=False)
class RealForecasts:
    """The full-disk and per-region :class:`Forecasts` of every reference (:func:`real_forecasts`), and the
    event list's peak times (datetime64[ns]) and peak fluxes (float64 W/m²) behind the targets."""

    full_disk: Forecasts
    region: Forecasts
    peak: np.ndarray
    peak_flux: np.ndarray


def distinct_flares(peak: np.ndarray, flux: np.ndarray, times: np.ndarray, threshold: float) -> int:
    """How many distinct flares at or above ``threshold`` (W/m²) peak in the window ``(t, t + 24 h]`` of at
    least one issue time of ``times``: the independent events behind a series of daily targets."""
    flux = np.asarray(flux, np.float64)
    return _distinct(_minutes(np.asarray(peak, "datetime64[ns]")[flux >= threshold]), _minutes(times),
                     int(WINDOW // _MINUTE))


def _distinct(keys: np.ndarray, issue_keys: np.ndarray, window_minutes: int) -> int:
    """How many flare keys fall in ``(i, i + window]`` of at least one issue key (both sorted or not)."""
    issue_keys = np.sort(issue_keys)
    return int(np.sum(np.searchsorted(issue_keys, keys, side="left")
                      > np.searchsorted(issue_keys, keys - window_minutes, side="left")))


def history_issue_times(history: RealHistory) -> np.ndarray:
    """The daily issue times (00:30 UT) from the first to the last SRS day of the region table: the full-disk
    issue times every split of :func:`real_forecasts` selects from, datetime64[ns] (n,)."""
    issue = history.regions["issue"]
    return daily_issue_times(issue.min(), issue.max())


def real_forecasts(history: RealHistory, *, thresholds: Mapping[str, float] = REAL_THRESHOLDS,
                   split: RealSplit = RealSplit()) -> RealForecasts:
    """Every reference forecast on the validation and test issue times of ``split`` (default the chronological
    cycle-23 -> cycle-24 protocol), full disk and per region, fitted on its training issue times, with the
    validation-chosen probability thresholds and each threshold's bootstrap block (the memory of the test
    days' event series; see the module docstring for the definitions). Without training region-days the
    McIntosh logistic probabilities are NaN (the Poisson rates are then 0)."""
    thresholds = dict(thresholds)
    events, regions = history.events, history.regions.reset_index(drop=True)
    peak, flux = events["peak"].to_numpy("datetime64[ns]"), events["peak_flux"].to_numpy(np.float64)
    times = history_issue_times(history)
    issue = regions["issue"].to_numpy("datetime64[ns]")
    split_of, region_split = split.masks(times), split.masks(issue)

    _, truth = window_flares(peak, flux, times)  # max flux in (t, t + 24 h]
    _, past = window_flares(peak, flux, times, future=False)
    _, region_truth = region_window_flares(events, regions)
    _, region_past = region_window_flares(events, regions, future=False)
    disk = {"log": {PERSISTENCE: log10_flux(past)}, "prob": {}}
    per_region = {"log": {PERSISTENCE: log10_flux(region_past)}, "prob": {}}
    base, region_base = {}, {}
    for letter, threshold in thresholds.items():
        event = (truth >= threshold).astype(np.float64)
        region_next, _ = region_window_flares(events, regions, threshold=threshold)
        region_prev, _ = region_window_flares(events, regions, future=False, threshold=threshold)
        train = region_split["train"]
        base[letter] = float(event[split_of["train"]].mean())
        region_base[letter] = float((region_next[train] > 0).mean())
        recent, _ = window_flares(peak, flux, times, window=np.timedelta64(RATE_DAYS, "D"), future=False,
                                  threshold=threshold)
        region_recent, _ = region_window_flares(events, regions, window=np.timedelta64(RATE_DAYS, "D"),
                                                future=False, threshold=threshold)
        probs = {CLIMATOLOGY: (np.full(times.size, base[letter]), np.full(len(regions), region_base[letter])),
                 RUNNING_RATE: (-np.expm1(-recent / RATE_DAYS), -np.expm1(-region_recent / RATE_DAYS))}
        for name, column in ((MCINTOSH_POISSON, "mcintosh"), (HALE_POISSON, "hale")):
            rates, pooled = poisson_rates(regions.loc[train, column], region_next[train])
            p_region = poisson_probability(regions[column], rates, pooled)
            probs[name] = (combine_regions(issue, p_region, times), p_region)
        x = mcintosh_features(regions, region_prev)
        if train.any():
            p_region = predict_logistic(fit_logistic(x[train], (region_next[train] > 0).astype(np.float64)), x)
        else:
            p_region = np.full(len(regions), np.nan)
        probs[MCINTOSH_LOGISTIC] = (combine_regions(issue, p_region, times), p_region)
        for name, (p_disk, p_reg) in probs.items():
            disk["prob"].setdefault(name, {})[letter] = p_disk
            per_region["prob"].setdefault(name, {})[letter] = p_reg

    def split(kind: dict, where: np.ndarray, when: np.ndarray, target: np.ndarray, name: str) -> SplitForecasts:
        index = np.flatnonzero(where)
        out = SplitForecasts(name, index, when[index], target[index])
        for predictor in [PERSISTENCE, *kind["prob"]]:
            log = kind["log"].get(predictor)
            out.log[predictor] = log[index] if log is not None else np.full(index.size, np.nan)
            if predictor in kind["prob"]:
                out.prob[predictor] = {k: v[index] for k, v in kind["prob"][predictor].items()}
        return out

    test = split_of["test"]
    block = {letter: memory_block(times[test], (truth[test] >= t).astype(np.float64))
             for letter, t in thresholds.items()}
    full = Forecasts(history.dataset, False, FULL_DISK, thresholds, base,
                     split(disk, split_of["val"], times, truth, "val"),
                     split(disk, split_of["test"], times, truth, "test"),
                     block=dict(block), cadence=np.timedelta64(1, "D"))
    reg = Forecasts(history.dataset, False, PER_REGION, thresholds, region_base,
                    split(per_region, region_split["val"], issue, region_truth, "val"),
                    split(per_region, region_split["test"], issue, region_truth, "test"),
                    block=dict(block), cadence=np.timedelta64(1, "D"))
    listed = events.dropna(subset=["noaa_ar"])
    test_regions = regions[region_split["test"]]
    for letter, threshold in thresholds.items():
        full.distinct[letter] = distinct_flares(peak, flux, full.test.times, threshold)
        major = listed[listed["peak_flux"] >= threshold]
        reg.distinct[letter] = _distinct(
            major["noaa_ar"].to_numpy(np.int64) * _REGION_KEY + _minutes(major["peak"].to_numpy()),
            test_regions["noaa_ar"].to_numpy(np.int64) * _REGION_KEY + _minutes(test_regions["issue"].to_numpy()),
            int(WINDOW // _MINUTE))
    full.choose_prob_thresholds()
    reg.choose_prob_thresholds()
    return RealForecasts(full, reg, peak, flux)


def real_skill(forecasts: RealForecasts, *, n_resamples: int = N_RESAMPLES, seed: int = SEED,
               level: float = LEVEL) -> pd.DataFrame:
    """The ``real_skill`` table: every reference on the cycle-24 test issue times, full disk and per region,
    with exactly :data:`flarelib.evaluate.skill.SKILL_COLUMNS` (``dataset`` the event list's catalog entry,
    ``synthetic`` False, ``target`` :data:`FULL_DISK` or :data:`PER_REGION`)."""
    return pd.concat([forecasts_skill_table(f, n_resamples=n_resamples, seed=seed, level=level)
                      for f in (forecasts.full_disk, forecasts.region)], ignore_index=True)


def real_paired(forecasts: RealForecasts, pairs: Sequence[tuple[str, str]] = tuple(REAL_PAIRS), *,
                n_resamples: int = N_RESAMPLES, seed: int = SEED, level: float = LEVEL) -> pd.DataFrame:
    """The ``real_paired`` table (:data:`flarelib.evaluate.skill.PAIRED_COLUMNS`): the paired block bootstrap of
    each ``(predictor, reference)`` of ``pairs`` (default :data:`REAL_PAIRS`), full disk and per region."""
    return pd.concat([paired_table(f, list(pairs), n_resamples=n_resamples, seed=seed, level=level)
                      for f in (forecasts.full_disk, forecasts.region)], ignore_index=True)


def write_real_results(skill: pd.DataFrame, paired: pd.DataFrame,
                       folder: str | Path | None = None) -> tuple[Path, Path]:
    """Write ``real_skill.csv`` and ``real_paired.csv`` into ``folder`` (default :func:`results_dir`, i.e.
    ``build/results``); returns their paths."""
    folder = Path(folder) if folder is not None else results_dir()
    return (write_skill_csv(skill, folder / "real_skill.csv"), write_paired_csv(paired, folder / "real_paired.csv"))


def targets_at(history: RealHistory, times: np.ndarray, *, thresholds: Mapping[str, float] = REAL_THRESHOLDS,
               window: np.timedelta64 = WINDOW) -> pd.DataFrame:
    """The real full-disk targets at any issue times (e.g. the time axis of an image cube: SDOML v2 frames every
    12 min), so that a model reading images joins the same table: ``max_flux`` (float64 W/m², the largest listed
    flare peaking in ``(t, t + window]``, :data:`FLOOR_FLUX` if none) and one 0/1 column ``event_<letter>`` per
    threshold, indexed by ``times`` (datetime64[ns], as given)."""
    times = np.asarray(times, "datetime64[ns]")
    peak = history.events["peak"].to_numpy("datetime64[ns]")
    _, flux = window_flares(peak, history.events["peak_flux"].to_numpy(np.float64), times, window=window)
    table = pd.DataFrame({"max_flux": flux}, index=pd.DatetimeIndex(times, name="time"))
    for letter, threshold in thresholds.items():
        table[f"event_{letter}"] = (flux >= threshold).astype(np.float64)
    return table
