"""Alignment: AIA frames onto a cadence grid, GOES onto the same grid, and the targets.

* :func:`scan_frames` validates every file (header and pixels) and records each problem as a
  :class:`Skip` instead of stopping.
* :func:`plan_slots` assigns frames to nominal cadence slots. A frame belongs to the
  slot whose time is nearest to its T_OBS if it lies within ``tolerance`` of it.
  Duplicates keep the frame closest to the slot time; slots that miss a channel are
  dropped (or kept with an empty frame, ``fill_missing=True``); every decision is a
  logged :class:`Skip`, so no input disappears silently.
* :func:`goes_targets` and :func:`event_targets` compute the regression/classification
  targets, float64 in W/m²: the nowcast flux (mean over ``(t - cadence, t]``: causal, nothing
  after ``t``), the maximum flux in ``[t + lead, t + lead + window]`` with the flare class of
  each, and the flare history known at ``t`` (maximum flux over ``[t - H, t]``, for the
  flare-history persistence baseline).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm

from flarelib.checksums import fingerprint
from flarelib.cube.goes import (
    GOESDataError,
    class_to_flux,
    flare_class,
    flare_class_label,
    resample_to_slots,
    window_complete,
    window_max,
)
from flarelib.cube.prep import (
    DEFAULT_CHANNELS,
    BadFrameError,
    FrameInfo,
    PrepOptions,
    check_calibration,
    read_frame_info,
)

log = logging.getLogger(__name__)


class EmptySelectionError(ValueError):
    """No usable frame (or no time) is left after validation, alignment or a time cut."""


class TooManySkipsError(ValueError):
    """More of a build's input files were skipped as bad than :attr:`SlotRules.max_skipped_fraction` allows."""


class GOESCoverageError(GOESDataError):
    """The GOES data do not cover the cube: its targets would be mostly NaN."""


@dataclass(frozen=True)
class Skip:
    """An input left out of a cube, and why."""

    source: str
    reason: str
    detail: str = ""

    def as_dict(self) -> dict:
        return {"source": self.source, "reason": self.reason, "detail": self.detail}


def to_timedelta(value: str | np.timedelta64 | pd.Timedelta) -> np.timedelta64:
    """``"12min"``, ``"1h"``, ``pd.Timedelta`` or ``np.timedelta64`` -> ``timedelta64[ns]``."""
    return pd.Timedelta(value).to_timedelta64().astype("timedelta64[ns]")


def scan_frames(
    paths: Iterable[str | Path], *, allowed_quality_bits: int = 0, progress: bool = False,
    prep_options: PrepOptions | None = None,
) -> tuple[list[FrameInfo], list[Skip]]:
    """Validate AIA files; return the usable ones and a logged :class:`Skip` for each other file.

    Each file goes through :func:`flarelib.cube.prep.read_frame_info` (header, units and the pixel
    :class:`flarelib.cube.prep.SanityRules` of ``prep_options``) and, with ``prep_options``,
    :func:`flarelib.cube.prep.check_calibration` (date inside the degradation table). Any failure of
    one file, expected (:class:`flarelib.cube.prep.BadFrameError`) or not, is a skip naming the file
    and the reason; nothing here stops a build.
    """
    infos, skipped = [], []
    sanity = prep_options.sanity if prep_options is not None else PrepOptions().sanity
    for path in tqdm(list(paths), desc="scan AIA files", disable=not progress, unit="file"):
        try:
            info = read_frame_info(path, allowed_quality_bits=allowed_quality_bits, sanity=sanity)
            infos.append(check_calibration(info, prep_options) if prep_options is not None else info)
        except BadFrameError as err:
            skipped.append(Skip(err.path.name, err.reason, err.detail))
            log.warning("skip %s: %s %s", err.path.name, err.reason, err.detail)
        except Exception as exc:  # an unforeseen failure of one file must not stop the others
            name = Path(path).name
            skipped.append(Skip(name, "unreadable", f"{type(exc).__name__}: {exc}"))
            log.warning("skip %s: unreadable %s: %s", name, type(exc).__name__, exc)
    return infos, skipped


def check_skipped_fraction(n_files: int, skipped: Sequence[Skip], limit: float, *, name: str = "") -> None:
    """Raise :class:`TooManySkipsError` when more than ``limit`` of ``n_files`` were skipped as bad files.

    ``skipped`` are the skips of :func:`scan_frames` (bad files, not alignment decisions).
    The message names the build, the count, the limit and the most common reasons.
    """
    if n_files == 0 or len(skipped) <= limit * n_files:
        return
    reasons = pd.Series([s.reason for s in skipped]).value_counts()
    listed = ", ".join(f"{reason} x{count}" for reason, count in reasons.items())
    examples = ", ".join(s.source for s in list(skipped)[:3])
    raise TooManySkipsError(
        f"{name + ': ' if name else ''}{len(skipped)} of {n_files} input files "
        f"({len(skipped) / n_files:.0%}) were skipped as bad ({listed}; e.g. {examples}), more than "
        f"max_skipped_fraction={limit:.0%}: fix or remove those files (the log names each and why), "
        "or raise max_skipped_fraction"
    )


@dataclass
class SlotPlan:
    """Which file fills each (time slot, channel) cell of a cube."""

    times: np.ndarray  #: slot times, datetime64[ns] UTC
    channels: tuple[int, ...]  #: Å
    frames: list[list[FrameInfo | None]]  #: [slot][channel]
    cadence: np.timedelta64
    tolerance: np.timedelta64
    skipped: list[Skip] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.times), len(self.channels)

    def frame_coords(self) -> dict[str, tuple]:
        """Per-frame coordinates (time, channel): t_obs, exptime, quality, source."""
        nt, nc = self.shape
        t_obs = np.full((nt, nc), np.datetime64("NaT"), dtype="datetime64[ns]")
        exptime = np.full((nt, nc), np.nan, dtype=np.float32)
        quality = np.full((nt, nc), -1, dtype=np.int32)
        source = np.full((nt, nc), "", dtype=object)
        for i, row in enumerate(self.frames):
            for j, info in enumerate(row):
                if info is not None:
                    t_obs[i, j], exptime[i, j], quality[i, j], source[i, j] = (
                        info.t_obs, info.exptime, info.quality, info.path.name)
        dims = ("time", "channel")
        return {
            "t_obs": (dims, t_obs, {"long_name": "observation time (T_OBS) of the frame", "timezone": "UTC"}),
            "exptime": (dims, exptime, {"units": "s", "long_name": "exposure time (EXPTIME) divided out"}),
            "quality": (dims, quality, {"long_name": "QUALITY keyword (-1: no frame)"}),
            "source": (dims, source.astype(str), {"long_name": "input file name"}),
        }

    def describe(self) -> dict:
        return {
            "cadence": str(pd.Timedelta(self.cadence)),
            "tolerance": str(pd.Timedelta(self.tolerance)),
            "slot_rule": "nearest slot of a grid anchored at 00:00 UTC; |T_OBS - slot| <= tolerance",
            "duplicates": "the frame nearest the slot time is kept",
            "channels": list(self.channels),
        }


@dataclass(frozen=True)
class SlotRules:
    """How frames become cadence slots: the channels (Å), the cadence, the matching tolerance
    (default: half the cadence), an optional UTC time cut ``[start, end]``, whether slots that
    miss a channel are kept (``fill_missing``) and which QUALITY bits are accepted.

    ``max_skipped_fraction``: a build stops (:class:`TooManySkipsError`, before anything is
    written) when more than this fraction of its input files are bad files (unreadable,
    wrong units, impossible pixels, dates outside the degradation table, ...; see
    :func:`scan_frames`). Up to it, each bad file is a logged skip. Alignment decisions
    (duplicates, off-grid, incomplete slots) do not count.
    """

    channels: tuple[int, ...] = DEFAULT_CHANNELS
    cadence: str = "12min"
    tolerance: str | None = None
    start: str | None = None
    end: str | None = None
    fill_missing: bool = False
    allowed_quality_bits: int = 0
    max_skipped_fraction: float = 0.5

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if not 0.0 <= float(self.max_skipped_fraction) <= 1.0:
            raise ValueError(f"SlotRules.max_skipped_fraction={self.max_skipped_fraction!r}: "
                             "a fraction between 0 and 1")

    def plan(self, infos: Sequence[FrameInfo], skipped: Sequence[Skip] = (),
             shape: tuple[int, int] | None = None) -> SlotPlan:
        """:func:`plan_slots` with these rules (``shape``: the prep's target ``(ny, nx)`` in pixels, if any)."""
        return plan_slots(infos, channels=self.channels, cadence=self.cadence, tolerance=self.tolerance,
                          start=self.start, end=self.end, fill_missing=self.fill_missing, skipped=skipped,
                          shape=shape)


def plan_slots(
    infos: Sequence[FrameInfo],
    *,
    channels: Sequence[int],
    cadence: str | np.timedelta64,
    tolerance: str | np.timedelta64 | None = None,
    start: str | np.datetime64 | None = None,
    end: str | np.datetime64 | None = None,
    fill_missing: bool = False,
    skipped: Sequence[Skip] = (),
    shape: tuple[int, int] | None = None,
) -> SlotPlan:
    """Assign validated frames to cadence slots (see the module docstring for the rules).

    ``tolerance`` defaults to half the cadence. ``start``/``end`` (inclusive, UTC) cut the
    slot range. ``shape``: the ``(ny, nx)`` in pixels every frame is resampled to by the prep; without
    it, the cube takes the most common frame size and a frame of another size is a logged skip
    [``odd-shape``] naming the file and the ``shape`` that would keep it. With it, frames whose
    aspect ratio differs from ``shape``'s (they would be stretched: pixels scaled unevenly in y
    and x) are a logged warning naming them and a ``shape`` with their aspect. Raises
    :class:`EmptySelectionError` when no complete slot remains, or when ``start >= end``.
    """
    cadence = to_timedelta(cadence)
    tolerance = to_timedelta(tolerance) if tolerance is not None else cadence // 2
    channels = tuple(int(c) for c in channels)
    skips = list(skipped)
    t_start = np.datetime64(start, "ns") if start is not None else None
    t_end = np.datetime64(end, "ns") if end is not None else None
    if t_start is not None and t_end is not None and t_start >= t_end:
        raise EmptySelectionError(f"empty time range: start {t_start} is not before end {t_end}")

    common = _common_shape(infos, channels) if shape is None else None
    cells: dict[tuple[np.datetime64, int], list[FrameInfo]] = {}
    for info in sorted(infos, key=lambda f: (f.t_obs, f.path.name)):
        if info.channel not in channels:
            skips.append(Skip(info.path.name, "channel-not-selected", f"{info.channel} Å"))
            continue
        if common is not None and tuple(info.shape) != common:
            skips.append(Skip(info.path.name, "odd-shape", (
                f"{info.shape[0]}x{info.shape[1]} px, while the cube's frames are {common[0]}x{common[1]} px (the "
                f"most common size); pass shape=({common[0]}, {common[1]}) (PrepOptions.shape; catalog: "
                f"cube.shape) to resample every frame to one size and keep it")))
            continue
        day = info.t_obs.astype("datetime64[D]").astype("datetime64[ns]")
        slot = day + np.round((info.t_obs - day) / cadence).astype(np.int64) * cadence
        if abs(info.t_obs - slot) > tolerance:
            skips.append(Skip(info.path.name, "off-grid", f"T_OBS {info.t_obs} is {abs(info.t_obs - slot)} from slot"))
            continue
        if (t_start is not None and slot < t_start) or (t_end is not None and slot > t_end):
            skips.append(Skip(info.path.name, "outside-time-range", str(slot)))
            continue
        cells.setdefault((slot, info.channel), []).append(info)

    slots = sorted({slot for slot, _ in cells})
    frames: list[list[FrameInfo | None]] = []
    times = []
    for slot in slots:
        row: list[FrameInfo | None] = []
        for channel in channels:
            candidates = sorted(cells.get((slot, channel), []), key=lambda f: (abs(f.t_obs - slot), f.path.name))
            for dup in candidates[1:]:
                skips.append(Skip(dup.path.name, "duplicate", f"{channel} Å at {slot}: kept {candidates[0].path.name}"))
            row.append(candidates[0] if candidates else None)
        missing = [c for c, f in zip(channels, row) if f is None]
        if missing and not fill_missing:
            for f in row:
                if f is not None:
                    skips.append(Skip(f.path.name, "slot-incomplete", f"{slot} lacks {missing} Å"))
            continue
        times.append(slot)
        frames.append(row)
    for s in skips[len(skipped):]:
        log.warning("skip %s: %s %s", s.source, s.reason, s.detail)
    if not times:
        raise EmptySelectionError(
            f"no complete cadence slot for channels {list(channels)} "
            f"({len(infos)} valid frames, {len(skips)} skipped; see the skip list)"
        )
    if shape is not None:
        _warn_uneven_resampling(frames, (int(shape[0]), int(shape[1])))
    return SlotPlan(np.array(times, dtype="datetime64[ns]"), channels, frames, cadence, tolerance, skips)


def _common_shape(infos: Sequence[FrameInfo], channels: Sequence[int]) -> tuple[int, int] | None:
    """The most common ``(ny, nx)`` of the frames of the selected channels (ties: the larger size)."""
    counts: dict[tuple[int, int], int] = {}
    for info in infos:
        if info.channel in channels:
            counts[tuple(info.shape)] = counts.get(tuple(info.shape), 0) + 1
    return max(counts, key=lambda s: (counts[s], s)) if counts else None


def _warn_uneven_resampling(frames: list[list[FrameInfo | None]], shape: tuple[int, int]) -> None:
    """A logged warning for each frame size the prep would stretch to ``shape`` (another aspect ratio, > 1 %)."""
    by_shape: dict[tuple[int, int], list[str]] = {}
    for row in frames:
        for f in row:
            if f is not None:
                by_shape.setdefault(tuple(f.shape), []).append(f.path.name)
    for (ny, nx), names in sorted(by_shape.items()):
        fy, fx = ny / shape[0], nx / shape[1]
        if abs(fy / fx - 1) > 0.01:
            log.warning("%d frames of %dx%d px (first %s) are resampled to shape=(%d, %d): by %.3g in y but %.3g in x, "
                        "so the image is stretched (pixels no longer square); pass a shape with their aspect, e.g. "
                        "shape=(%d, %d)", len(names), ny, nx, names[0], shape[0], shape[1], 1 / fy, 1 / fx,
                        shape[0], max(1, round(shape[0] * nx / ny)))


def plan_fingerprint(plan: SlotPlan, checksums: dict[str, str], params: dict) -> str:
    """A sha256 over the inputs' checksums, the slot assignment and the prep parameters."""
    payload = {
        "cells": [[f.path.name if f else None for f in row] for row in plan.frames],
        "times": [str(t) for t in plan.times],
        "checksums": dict(sorted(checksums.items())),
        "params": params,
    }
    return fingerprint(payload)


# --------------------------------------------------------------------------- targets

def forecast_coords(forecasts: Sequence[tuple[str, str]]) -> dict[str, tuple]:
    """Coordinates of the ``forecast`` dimension: label, ``lead`` and ``window`` (timedelta)."""
    leads = np.array([to_timedelta(lead) for lead, _ in forecasts], dtype="timedelta64[ns]")
    windows = np.array([to_timedelta(window) for _, window in forecasts], dtype="timedelta64[ns]")
    labels = [f"lead{_minutes(lead)}min_window{_minutes(win)}min" for lead, win in zip(leads, windows)]
    if len(set(labels)) != len(labels):
        raise ValueError(f"repeated forecast (lead, window) pairs: {list(forecasts)}")
    return {
        "forecast": ("forecast", np.array(labels)),
        "lead": ("forecast", leads, {"long_name": "time from t to the start of the target window"}),
        "window": ("forecast", windows, {"long_name": "length of the target window"}),
    }


def _minutes(delta: np.timedelta64) -> int:
    return int(delta // np.timedelta64(1, "m"))


#: Look-back windows of the flare history stored with every cube's targets (``flux_history_max``).
HISTORIES: tuple[str, ...] = ("6h", "24h")


def history_coords(histories: Sequence[str] = HISTORIES) -> dict[str, tuple]:
    """Coordinates of the ``history`` dimension: labels (``"6h"``) and ``history_window`` (timedelta)."""
    return {"history": ("history", np.array(list(histories))),
            "history_window": ("history", np.array([to_timedelta(h) for h in histories], dtype="timedelta64[ns]"),
                               {"long_name": "look-back H of the flare history [t - H, t]"})}


def _target_dataset(times, forecasts, now, future, history, attrs: dict) -> xr.Dataset:
    coords = {"time": times, **forecast_coords(forecasts), **history_coords()}
    ds = xr.Dataset(
        {
            "flux_now": ("time", now.astype(np.float64),
                         {"units": "W m-2", "long_name": "nowcast XRS-B flux: mean over (t - cadence, t]"}),
            "flux_max": (("time", "forecast"), future.astype(np.float64),
                         {"units": "W m-2", "long_name": "max XRS-B flux in [t + lead, t + lead + window]"}),
            "flux_history_max": (("time", "history"), history.astype(np.float64),
                                 {"units": "W m-2", "long_name": "max XRS-B flux in [t - H, t] (known at t)"}),
            "class_now": ("time", flare_class(now), {"long_name": "GOES class of flux_now ('' = no data)"}),
            "class_max": (("time", "forecast"), flare_class(future),
                          {"long_name": "GOES class of flux_max ('' = no data)"}),
        },
        coords=coords,
    )
    for name in ("flux_now", "flux_max", "flux_history_max", "class_now", "class_max"):
        ds[name].attrs.update(attrs)
    return ds


def goes_targets(
    xrs: xr.Dataset, times: np.ndarray, cadence: str | np.timedelta64, forecasts: Sequence[tuple[str, str]],
    *, min_coverage: float = 0.5,
) -> xr.Dataset:
    """XRS-B on the cube's time grid plus targets computed from the native-cadence series.

    Returns ``xrsb`` (mean over ``(t - cadence, t]``), ``flux_now`` (= ``xrsb``), ``flux_max``
    (time, forecast), ``flux_history_max`` (time, history), ``class_now`` and ``class_max``,
    fluxes float64 in W/m² with the data's ``goes_scaling``. Windows running past the data or
    with too many gaps are NaN (class ``""``). ``flux_max_complete`` (time, forecast, bool) is
    False for a window that passed the coverage rule but holds a data gap
    (:func:`flarelib.cube.goes.window_complete`): a flare peak may hide in it, so its ``flux_max`` is
    a lower bound. Their count is ``flux_max.attrs["n_incomplete_windows"]`` and is logged.
    """
    times = np.asarray(times, dtype="datetime64[ns]")
    xrsb = resample_to_slots(xrs["xrsb"], times, to_timedelta(cadence), min_coverage=min_coverage)
    future = np.stack(
        [window_max(xrs["xrsb"], times, to_timedelta(lead), to_timedelta(window), min_coverage=min_coverage)
         for lead, window in forecasts],
        axis=-1,
    )
    complete = np.stack([window_complete(xrs["xrsb"], times, to_timedelta(lead), to_timedelta(window))
                         for lead, window in forecasts], axis=-1)
    incomplete = np.isfinite(future) & ~complete
    n_incomplete = int(incomplete.sum())
    if n_incomplete:
        log.warning("%s: %d of %d forecast windows hold a GOES data gap (a flare peak may be hidden; "
                    "flux_max_complete is False there)", xrs.attrs.get("source", "GOES"), n_incomplete,
                    int(np.isfinite(future).sum()))
    history = np.stack([window_max(xrs["xrsb"], times, -to_timedelta(h), to_timedelta(h), min_coverage=min_coverage)
                        for h in HISTORIES], axis=-1)
    attrs = {"target_source": "goes-xrs", "goes_scaling": xrs.attrs.get("goes_scaling", "unknown")}
    ds = _target_dataset(times, forecasts, xrsb.values, future, history, attrs)
    ds["flux_max"].attrs["n_incomplete_windows"] = n_incomplete
    ds["flux_max_complete"] = (("time", "forecast"), ~incomplete, {
        "long_name": "False where the window of flux_max holds a GOES data gap (a peak may be hidden)",
        "n_incomplete_windows": n_incomplete})
    ds["xrsb"] = ("time", xrsb.values.astype(np.float64), {
        "units": "W m-2", "long_name": "GOES XRS-B (1-8 Å) flux, mean over (t - cadence, t]",
        "n_gap_slots": xrsb.attrs["n_gap_slots"]})
    if "xrsb_saturated" in xrs:
        ds["xrsb"].attrs["n_saturated_samples"] = int(xrs["xrsb_saturated"].sum())
    return ds


def check_goes_coverage(
    xrs: xr.Dataset, times: np.ndarray, cadence: str | np.timedelta64, forecasts: Sequence[tuple[str, str]],
) -> dict:
    """Does the GOES data span the cube's times plus the largest ``lead + window``?

    Needed: ``[times[0] - cadence, times[-1] + max(lead + window)]`` (UTC). Raises
    :class:`GOESCoverageError` when the valid XRS-B samples do not overlap it at all; logs a
    warning naming the uncovered ends when they cover only part of it. Returns
    ``{"needed": (start, end), "covered": (start, end)}``.
    """
    times = np.asarray(times, dtype="datetime64[ns]")
    source = xrs.attrs.get("source", "GOES data")
    reach = max((to_timedelta(lead) + to_timedelta(window) for lead, window in forecasts),
                default=np.timedelta64(0, "ns"))
    need = (times.min() - to_timedelta(cadence), times.max() + max(reach, np.timedelta64(0, "ns")))
    valid = xrs.time.values[np.isfinite(xrs["xrsb"].values)].astype("datetime64[ns]")
    if valid.size == 0:
        raise GOESCoverageError(f"{source}: no valid XRS-B sample; the cube needs GOES data "
                                f"from {need[0]} to {need[1]}")
    have = (valid.min(), valid.max())
    if have[1] < need[0] or have[0] > need[1]:
        raise GOESCoverageError(
            f"{source} covers {have[0]} to {have[1]}, but the cube needs GOES data from {need[0]} to {need[1]} "
            "(its times plus the largest lead + window): every target would be NaN; give GOES data of those days")
    if have[0] > need[0] or have[1] < need[1]:
        log.warning("%s covers %s to %s, part of the %s to %s the cube needs (its times plus the largest lead + "
                    "window): targets outside are NaN", source, have[0], have[1], need[0], need[1])
    return {"needed": need, "covered": have}


#: Event lists report classes on SWPC's scaled basis (XRS-B x 0.7) for peaks before this date (GOES <= 15).
SCIENCE_QUALITY_EVENTS_FROM = np.datetime64("2020-01-01", "ns")


def event_scaling(peak: np.datetime64) -> str:
    """The flux basis of a listed flare class: ``"swpc-scaled"`` before 2020 (GOES <= 15), else science quality."""
    return "swpc-scaled" if np.datetime64(peak, "ns") < SCIENCE_QUALITY_EVENTS_FROM else "science-quality"


def utc_time(value) -> np.datetime64:
    """A time as UTC ``datetime64[ns]``: a time with an offset (``"...+02:00"``, tz-aware objects) is
    converted to UTC; a naive one is taken as UTC."""
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return np.datetime64(stamp.to_datetime64(), "ns")


def events_dataset(events: Sequence[dict]) -> xr.Dataset:
    """A flare event list as variables on an ``event`` dimension.

    Each event is a mapping with ``start``, ``peak``, ``end`` (UTC; times with an offset are
    converted to UTC) and ``goes_class``
    (e.g. ``"X2.2"``) or ``peak_flux`` (W/m², float64); optional ``source``, ``noaa_ar`` and
    ``goes_scaling`` (the flux basis of its class; default :func:`event_scaling` of its peak).
    """
    rows = []
    for k, ev in enumerate(events):
        try:
            start, peak, end = (utc_time(ev[key]) for key in ("start", "peak", "end"))
            flux = float(ev["peak_flux"]) if "peak_flux" in ev else class_to_flux(ev["goes_class"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"flare event #{k} {dict(ev)!r}: {exc}") from exc
        if not start <= peak <= end:
            raise ValueError(f"flare event #{k}: needs start <= peak <= end, got {start}, {peak}, {end}")
        rows.append((start, peak, end, flux, str(ev.get("source", "")), int(ev.get("noaa_ar", -1)),
                     str(ev.get("goes_scaling", event_scaling(peak)))))
    cols = list(zip(*rows)) if rows else [[]] * 7
    return xr.Dataset(
        {
            "event_start": ("event", np.array(cols[0], dtype="datetime64[ns]")),
            "event_peak": ("event", np.array(cols[1], dtype="datetime64[ns]")),
            "event_end": ("event", np.array(cols[2], dtype="datetime64[ns]")),
            "event_peak_flux": ("event", np.array(cols[3], dtype=np.float64), {"units": "W m-2"}),
            "event_class": ("event", np.array([flare_class_label(f) for f in cols[3]], dtype="<U6")),
            "event_source": ("event", np.array(cols[4], dtype=str)),
            "event_noaa_ar": ("event", np.array(cols[5], dtype=np.int32)),
            "event_scaling": ("event", np.array(cols[6], dtype=str),
                              {"long_name": "flux basis of the listed class (swpc-scaled or science-quality)"}),
        }
    )


def event_targets(events: xr.Dataset, times: np.ndarray, forecasts: Sequence[tuple[str, str]]) -> xr.Dataset:
    """Targets from a flare event list, where no GOES light curve is available.

    ``flux_now(t)`` is the peak flux of the largest listed event in progress at ``t``
    (``start <= t <= end``); ``flux_max(t)`` is the largest peak flux of the events that
    overlap ``[t + lead, t + lead + window]``. Both are NaN where no listed event applies:
    an event list says nothing about the background flux. These are upper bounds of the
    measured flux, not measurements; ``attrs["target_source"] = "event-list"`` says so.
    ``xrsb`` is all NaN.
    """
    times = np.asarray(times, dtype="datetime64[ns]")
    start, end = events.event_start.values, events.event_end.values
    flux = events.event_peak_flux.values.astype(float)

    def strongest(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        overlap = (start[None, :] <= hi[:, None]) & (end[None, :] >= lo[:, None])
        return np.where(overlap.any(axis=1), np.where(overlap, flux[None, :], -np.inf).max(axis=1), np.nan)

    def strongest_in(lo, hi):
        return strongest(lo, hi) if flux.size else np.full(times.shape, np.nan)

    now = strongest_in(times, times)
    future = np.stack([strongest_in(times + to_timedelta(lead), times + to_timedelta(lead) + to_timedelta(window))
                       for lead, window in forecasts], axis=-1)
    history = np.stack([strongest_in(times - to_timedelta(h), times) for h in HISTORIES], axis=-1)
    bases = sorted(set(events.event_scaling.values.tolist())) if "event_scaling" in events else []
    basis = bases[0] if len(bases) == 1 else "mixed" if bases else "none"
    attrs = {"target_source": "event-list", "goes_scaling": basis,
             "target_note": "peak flux of listed flare events overlapping the window: an upper bound, "
                            "NaN where no listed event applies (no GOES light curve for this period)"}
    ds = _target_dataset(times, forecasts, now, future, history, attrs)
    ds["xrsb"] = ("time", np.full(times.shape, np.nan, dtype=np.float64),
                  {"units": "W m-2", "long_name": "GOES XRS-B (1-8 Å) flux", "note": "no GOES data in this cube"})
    return ds


@dataclass(frozen=True, eq=False)
class Targets:
    """Where a cube's targets come from: a GOES XRS dataset (W/m², from
    :func:`flarelib.cube.goes.load_xrs`) or, without one, a flare event list (dicts as in
    :func:`events_dataset`); and the forecasts ``(lead, window)`` besides the nowcast.

    ``max_missing_fraction``: with GOES data, the build stops (:class:`GOESCoverageError`)
    when more than this fraction of the GOES targets (``flux_now`` and ``flux_max``, every
    time and forecast) would be NaN (GOES data of another day, a cadence or lead that reaches
    past the data, long gaps). See :func:`check_goes_coverage`.
    """

    goes: xr.Dataset | None = None
    events: tuple[dict, ...] = ()
    forecasts: tuple[tuple[str, str], ...] = (("0min", "12min"),)
    max_missing_fraction: float = 0.5

    def __post_init__(self):
        object.__setattr__(self, "events", tuple(dict(e) for e in self.events or ()))
        object.__setattr__(self, "forecasts", tuple((str(lead), str(window)) for lead, window in self.forecasts))
        if not 0.0 <= float(self.max_missing_fraction) <= 1.0:
            raise ValueError(f"Targets.max_missing_fraction={self.max_missing_fraction!r}: a fraction between 0 and 1")

    def identity(self) -> dict:
        """What identifies these targets in a store's fingerprint."""
        return {"goes": self.goes.attrs.get("source") if self.goes is not None else None,
                "events": [dict(e) for e in self.events] or None, "forecasts": [list(f) for f in self.forecasts]}

    def dataset(self, times: np.ndarray, cadence: str | np.timedelta64) -> tuple[xr.Dataset, dict]:
        """The target variables on ``times`` plus the event list, and the attrs saying where they come from."""
        events = events_dataset(self.events)
        if self.goes is not None:
            check_goes_coverage(self.goes, times, cadence, self.forecasts)
            targets = goes_targets(self.goes, times, cadence, self.forecasts)
            cells = np.concatenate([targets["flux_now"].values.ravel(), targets["flux_max"].values.ravel()])
            missing = float(np.isnan(cells).mean()) if cells.size else 1.0
            if missing > self.max_missing_fraction:
                raise GOESCoverageError(
                    f"{self.goes.attrs.get('source', 'GOES data')}: {missing:.0%} of the GOES targets would be NaN "
                    f"(more than max_missing_fraction={self.max_missing_fraction:.0%}); give GOES data covering "
                    f"{np.min(times)} to {np.max(times)} plus the largest lead + window, or check the cadence")
            attrs = {"goes_satellite": self.goes.attrs.get("goes_satellite", "unknown"),
                     "goes_scaling": self.goes.attrs.get("goes_scaling", "unknown"), "target_source": "goes-xrs"}
        else:
            targets = event_targets(events, times, self.forecasts)
            attrs = {"goes_satellite": "none", "goes_scaling": targets["flux_now"].attrs["goes_scaling"],
                     "target_source": "event-list" if self.events else "none"}
            if not self.events:
                log.warning("NO TARGETS: neither GOES data nor flare events were given, so every target of this "
                            "cube is NaN (target_source: none); it can be explored but no model can be trained "
                            "on it. Add cube.goes_from (a goes_xrs entry) or cube.events to the catalog entry")
        return xr.merge([targets, events], combine_attrs="drop_conflicts"), attrs
