"""The NOAA flare and active-region history as tidy tables (``data/real/noaa_flare_history``).

Three readers, one per table compiled by hayesla/flare_forecast_proj from the NOAA/SWPC GOES event reports
and the daily Solar Region Summaries (SRS):

* :func:`read_event_list`: the GOES X-ray event list (``swpc_flarelist_*.csv``), one row per flare;
* :func:`read_flare_positions`: the cycle-24 list with positions (``final_flare_list_sc24.csv``);
* :func:`read_region_days`: one row per region per day at the 00:30 UT SRS issue (``AR_flare_ml_23_24.csv``).

Each returns ``(table, skips)``. Nothing is dropped or changed silently: every dropped or repaired row is
counted by reason in :class:`Skips` and logged as one warning per reason (the file, the count and the first
line numbers). Line numbers are those of the CSV file (the header is line 1).

Times are UTC ``datetime64[ns]``; ``peak_flux`` is float64 W/m² from the listed class (C = 1e-6, M = 1e-5,
X = 1e-4 W/m² times the number; the lists use the SWPC-scaled basis of GOES-15 and earlier); ``noaa_ar`` is a
nullable ``Int64``, NA where the list gives no region (0 or blank).

Quirks handled (as found in the files): an unnamed leading index column; the event list's peak is only
``HHMM`` and, like the end time (and the cycle-24 list's peak and end), carries the start's date even when it
falls after midnight: a time earlier than the one before it in start <= peak <= end is moved to the next
day (a repair); rows lasting longer than :data:`MAX_DURATION` after that are dropped; ``////`` peaks;
classes such as ``C6,2`` (a decimal comma) or ``C`` (no number).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from flarelib.cube.goes import FLARE_CLASS_THRESHOLDS

log = logging.getLogger(__name__)

#: Line numbers shown per reason in a log message (the count is always complete).
SHOWN_LINES = 8

#: Letters of the McIntosh classification, per component: Z (modified Zurich class), p (penumbra of the
#: largest spot), c (compactness).
MCINTOSH_LETTERS = ("ABCDEFH", "XRSAHK", "XOIC")

#: Longest start-to-end span taken as one flare; longer rows (a peak or end time that cannot be right) are dropped.
MAX_DURATION = pd.Timedelta("12h")

_CLASS = re.compile(r"([CMX])(\d+(?:\.\d*)?)")
_DAY = pd.Timedelta("1D")


@dataclass(frozen=True)
class Skips:
    """What a reader dropped or repaired, by reason: reason -> the CSV line numbers (header = line 1)."""

    file: str
    dropped: dict[str, tuple[int, ...]] = field(default_factory=dict)
    repaired: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """``{"dropped: <reason>": n, "repaired: <reason>": n}`` for every reason with at least one row."""
        return {**{f"dropped: {k}": len(v) for k, v in self.dropped.items()},
                **{f"repaired: {k}": len(v) for k, v in self.repaired.items()}}

    @property
    def n_dropped(self) -> int:
        return sum(len(v) for v in self.dropped.values())

    @property
    def n_repaired(self) -> int:
        return sum(len(v) for v in self.repaired.values())


class _Ledger:
    """Collects reasons per row while a reader works; :meth:`skips` logs them and freezes them."""

    def __init__(self, path: Path, n_rows: int):
        self.path = path
        self.keep = np.ones(n_rows, bool)
        self.dropped: dict[str, list[int]] = {}
        self.repaired: dict[str, list[int]] = {}

    def drop(self, mask: np.ndarray, reason: str) -> None:
        """Drop the rows of ``mask`` still kept (a row dropped once is counted under its first reason only)."""
        rows = np.flatnonzero(np.asarray(mask, bool) & self.keep)
        if rows.size:
            self.dropped.setdefault(reason, []).extend((rows + 2).tolist())
            self.keep[rows] = False

    def repair(self, mask: np.ndarray, reason: str) -> None:
        rows = np.flatnonzero(np.asarray(mask, bool) & self.keep)
        if rows.size:
            self.repaired.setdefault(reason, []).extend((rows + 2).tolist())

    def skips(self) -> Skips:
        """Log one warning per reason and freeze the counts (repairs of rows dropped later are not counted)."""
        kept = set((np.flatnonzero(self.keep) + 2).tolist())
        self.repaired = {k: kept_lines for k, v in self.repaired.items() if (kept_lines := [n for n in v if n in kept])}
        for verb, book in (("dropped", self.dropped), ("repaired", self.repaired)):
            for reason, lines in book.items():
                shown = ", ".join(map(str, lines[:SHOWN_LINES])) + (", ..." if len(lines) > SHOWN_LINES else "")
                log.warning("%s: %s %d row(s): %s (line %s)", self.path.name, verb, len(lines), reason, shown)
        return Skips(self.path.name, {k: tuple(v) for k, v in self.dropped.items()},
                     {k: tuple(v) for k, v in self.repaired.items()})


def _read(path: str | Path, required: tuple[str, ...]) -> tuple[Path, pd.DataFrame]:
    """The CSV as strings (the unnamed leading column becomes the index), its required columns checked."""
    path = Path(path)
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise ValueError(f"{path.name}: no column {missing}; it has {list(raw.columns)}")
    return path, raw.reset_index(drop=True)


def _times(text: pd.Series) -> pd.Series:
    return pd.to_datetime(text.str.strip(), errors="coerce", format="%Y-%m-%d %H:%M:%S")


def _after(earlier: pd.Series, later: pd.Series, ledger: _Ledger, what: str) -> pd.Series:
    """``later`` moved one day on where it is before ``earlier`` but within a day of it (a time that carries
    the previous time's date after midnight); each such row is a repair."""
    wrapped = (later < earlier) & (later + _DAY >= earlier)
    ledger.repair(wrapped.to_numpy(), f"{what} after midnight given the previous date (moved to the next day)")
    return later.where(~wrapped, later + _DAY)


def _classes(text: pd.Series, ledger: _Ledger) -> tuple[pd.Series, np.ndarray]:
    """Normalized class labels (``"C6.2"``) and their peak flux (float64 W/m²); bad classes are dropped."""
    clean = text.str.strip().str.upper()
    comma = clean.str.contains(",", regex=False).to_numpy()
    clean = clean.str.replace(",", ".", regex=False)
    parts = clean.str.fullmatch(_CLASS.pattern)
    found = clean.str.extract(_CLASS.pattern.join("^$"))
    ledger.drop(~parts.to_numpy(), "GOES class unparsable")
    number = pd.to_numeric(found[1], errors="coerce").to_numpy(float)
    letter = found[0].fillna("").to_numpy(str)
    out_of_range = parts.to_numpy() & ((number < 1.0) | ((letter != "X") & (number >= 10.0)))
    ledger.drop(out_of_range, "GOES class out of range (C/M need 1.0 <= number < 10, X >= 1.0)")
    ledger.repair(comma, "decimal comma in the GOES class")
    scale = np.array([FLARE_CLASS_THRESHOLDS.get(s, np.nan) for s in letter])
    labels = pd.Series([f"{a}{n:.1f}" if a else "" for a, n in zip(letter, number)], index=text.index)
    return labels, (scale * number).astype(np.float64)


def _region(text: pd.Series, ledger: _Ledger) -> pd.Series:
    """NOAA region numbers as nullable Int64: NA for 0 or blank; other non-numbers are NA and a repair."""
    clean = text.str.strip()
    number = pd.to_numeric(clean, errors="coerce")
    ledger.repair((number.isna() & (clean != "")).to_numpy(), "region not a number (set to NA)")
    return number.where(number > 0).round().astype("Int64")


def _finish(table: pd.DataFrame, ledger: _Ledger, key: list[str]) -> pd.DataFrame:
    kept = np.flatnonzero(ledger.keep)
    duplicate = np.zeros(len(table), bool)
    duplicate[kept[table.iloc[kept].duplicated(subset=key).to_numpy()]] = True
    ledger.drop(duplicate, "duplicate of an earlier row")
    return table[ledger.keep].sort_values(key, kind="stable").reset_index(drop=True)


def _flares(path: Path, raw: pd.DataFrame, start: pd.Series, peak: pd.Series, end: pd.Series,
            class_text: pd.Series, ledger: _Ledger) -> pd.DataFrame:
    """The flare columns shared by both lists, with the time and class checks."""
    ledger.drop(start.isna().to_numpy(), "start time unparsable")
    ledger.drop(peak.isna().to_numpy(), "peak time unparsable")
    ledger.drop(end.isna().to_numpy(), "end time unparsable")
    peak = _after(start, peak, ledger, "peak")
    end = _after(peak, end, ledger, "end")
    ledger.drop((peak < start).to_numpy(), "peak before start")
    ledger.drop((end < peak).to_numpy(), "end before peak")
    hours = MAX_DURATION / pd.Timedelta("1h")
    ledger.drop((end - start > MAX_DURATION).to_numpy(), f"start to end longer than {hours:.0f} h")
    label, flux = _classes(class_text, ledger)
    return pd.DataFrame({"start": start.astype("datetime64[ns]"), "peak": peak.astype("datetime64[ns]"),
                         "end": end.astype("datetime64[ns]"), "goes_class": label, "peak_flux": flux,
                         "noaa_ar": _region(raw["noaa_ar"], ledger)})


def read_event_list(path: str | Path) -> tuple[pd.DataFrame, Skips]:
    """The NOAA/SWPC GOES X-ray event list (``swpc_flarelist_*.csv``) as a tidy table.

    Returns ``(events, skips)``: one row per flare, sorted by start, with ``start``, ``peak``, ``end`` (UTC
    ``datetime64[ns]``; the peak's ``HHMM`` is resolved against the start's date, and is on the next day when
    earlier than the start's time of day), ``goes_class`` (str, ``"X2.2"``), ``peak_flux`` (float64 W/m², from
    the class), ``noaa_ar`` (``Int64``, NA for no region) and ``satellite`` (as listed, e.g. ``"G15"``). The
    truncated ``integrated_flux`` column is not read.
    """
    path, raw = _read(path, ("start_time", "max_time", "end_time", "goes_class", "noaa_ar", "goes_sat"))
    ledger = _Ledger(path, len(raw))
    start = _times(raw["start_time"])
    hhmm = raw["max_time"].str.strip()
    ok = hhmm.str.fullmatch(r"\d{4}")
    hours = pd.to_numeric(hhmm.where(ok).str[:2], errors="coerce")
    minutes = pd.to_numeric(hhmm.where(ok).str[2:], errors="coerce")
    valid = ok & (hours < 24) & (minutes < 60)
    peak = (start.dt.normalize() + pd.to_timedelta(hours, unit="h") + pd.to_timedelta(minutes, unit="min"))
    peak = peak.where(valid)
    table = _flares(path, raw, start, peak, _times(raw["end_time"]), raw["goes_class"], ledger)
    table["satellite"] = raw["goes_sat"].str.strip()
    return _finish(table, ledger, ["start", "peak", "goes_class"]), ledger.skips()


def read_flare_positions(path: str | Path) -> tuple[pd.DataFrame, Skips]:
    """The cycle-24 flare list with positions (``final_flare_list_sc24.csv``) as a tidy table.

    Returns ``(flares, skips)``: the columns of :func:`read_event_list` but ``satellite``, and ``location``
    (str, e.g. ``"S20W12"``, empty where none), ``hgs_lat``, ``hgs_lon`` (heliographic Stonyhurst, degrees)
    and ``hpc_x``, ``hpc_y`` (helioprojective, arcsec), float64 with NaN where the list gives no position
    (kept: the flare itself is known).
    """
    path, raw = _read(path, ("event_starttime", "event_peaktime", "event_endtime", "goes_class", "noaa_ar",
                             "position_hgs", "hgs_lat", "hgs_lon", "hpc_x", "hpc_y"))
    ledger = _Ledger(path, len(raw))
    table = _flares(path, raw, _times(raw["event_starttime"]), _times(raw["event_peaktime"]),
                    _times(raw["event_endtime"]), raw["goes_class"], ledger)
    table["location"] = raw["position_hgs"].str.strip()
    for column in ("hgs_lat", "hgs_lon", "hpc_x", "hpc_y"):
        table[column] = pd.to_numeric(raw[column].str.strip(), errors="coerce").astype(np.float64)
    return _finish(table, ledger, ["start", "peak", "goes_class"]), ledger.skips()


def read_region_days(path: str | Path) -> tuple[pd.DataFrame, Skips]:
    """The region-days table (``AR_flare_ml_23_24.csv``): one row per NOAA region per SRS issue (00:30 UT).

    Returns ``(regions, skips)`` sorted by (issue, region) with ``issue`` (UTC ``datetime64[ns]``), ``noaa_ar``
    (``Int64``), ``mcintosh`` (the 3-letter McIntosh class, e.g. ``"EKC"``), ``hale`` (the Mount Wilson class as
    listed, e.g. ``"BETA-GAMMA-DELTA"``), ``area`` (float64, millionths of a hemisphere), ``latitude``,
    ``longitude`` (float64 degrees; longitude from central meridian, west positive), ``carrington_long``
    (degrees), ``longitude_extent`` (degrees), ``n_spots`` (float64), ``location`` (``"S09E22"``) and
    ``flares_c``, ``flares_m``, ``flares_x`` (int64: the flares of exactly that class the region produced
    that day, as compiled). Rows without a time or a region, with a McIntosh class outside its letters, or
    with a negative area or count are dropped.
    """
    path, raw = _read(path, ("AR issue_date", "noaa_ar", "McIntosh", "MAGTYPE", "AREA", "Latitude",
                             "Longitude", "No_sunspots", "C", "M", "X"))
    ledger = _Ledger(path, len(raw))
    issue = pd.to_datetime(raw["AR issue_date"].str.strip(), errors="coerce", format="%Y-%m-%d %H:%M")
    ledger.drop(issue.isna().to_numpy(), "issue time unparsable")
    region = _region(raw["noaa_ar"], ledger)
    ledger.drop(region.isna().to_numpy(), "no region number")
    mcintosh = raw["McIntosh"].str.strip().str.upper()
    letters = MCINTOSH_LETTERS
    valid = mcintosh.str.fullmatch("".join(f"[{s}]" for s in letters))
    ledger.drop(~valid.to_numpy(), "McIntosh class not three valid letters")

    def number(column: str) -> np.ndarray:
        return pd.to_numeric(raw[column].str.strip(), errors="coerce").to_numpy(np.float64)

    table = pd.DataFrame({"issue": issue.astype("datetime64[ns]"), "noaa_ar": region, "mcintosh": mcintosh,
                          "hale": raw["MAGTYPE"].str.strip().str.upper(), "area": number("AREA"),
                          "latitude": number("Latitude"), "longitude": number("Longitude"),
                          "carrington_long": number("Carrington_long") if "Carrington_long" in raw else np.nan,
                          "longitude_extent": number("Longitude_extent") if "Longitude_extent" in raw else np.nan,
                          "n_spots": number("No_sunspots"),
                          "location": raw["LOCATION"].str.strip() if "LOCATION" in raw else ""})
    for letter in "CMX":
        counts = number(letter)
        ledger.drop(~np.isfinite(counts) | (counts < 0), f"{letter} flare count not a count")
        table[f"flares_{letter.lower()}"] = np.nan_to_num(counts).astype(np.int64)
    ledger.drop(~np.isfinite(table["area"]) | (table["area"] < 0), "area not a non-negative number")
    return _finish(table, ledger, ["issue", "noaa_ar"]), ledger.skips()


def read_table(path: str | Path) -> tuple[pd.DataFrame, Skips]:
    """Whichever of the three tables ``path`` holds, told by its header: region-days (``McIntosh``), the
    cycle-24 positions (``hpc_x``) or the event list (``max_time``)."""
    header = Path(path).open().readline()
    if "McIntosh" in header:
        return read_region_days(path)
    if "hpc_x" in header:
        return read_flare_positions(path)
    if "max_time" in header:
        return read_event_list(path)
    raise ValueError(f"{Path(path).name}: not a NOAA flare list or region table (header {header.strip()!r})")


def flares_per_month(events: pd.DataFrame) -> pd.DataFrame:
    """Flares per calendar month of their peak, by class letter: a (month, C/M/X) table of counts with every month
    from the first to the last (0 where none), indexed by ``pandas.Period`` months."""
    letters = events["goes_class"].str[0]
    months = events["peak"].dt.to_period("M")
    table = pd.crosstab(months, letters).reindex(columns=list("CMX"), fill_value=0)
    full = pd.period_range(months.min(), months.max(), freq="M")
    return table.reindex(full, fill_value=0).rename_axis(index="month", columns="class")


def flares_near(positions: pd.DataFrame, time: np.datetime64 | str, window: str | pd.Timedelta = "12h"
                ) -> pd.DataFrame:
    """The flares of ``positions`` (:func:`read_flare_positions`) with a position that peak within ``window`` of
    ``time`` (UTC), biggest first."""
    when = pd.Timestamp(time)
    half = pd.Timedelta(window)
    near = positions[(positions["peak"] - when).abs() <= half].dropna(subset=["hpc_x", "hpc_y"])
    return near.sort_values("peak_flux", ascending=False).reset_index(drop=True)


def flare_pixels(flares: pd.DataFrame, smap, *, shape: tuple[int, int] | None = None) -> pd.DataFrame:
    """Where ``flares`` (with ``hpc_x``, ``hpc_y`` in arcsec at their ``peak``) sit on the map ``smap`` (a sunpy
    Map): each position is rotated with the solar surface from its peak time to the map's time (sunpy's
    ``RotatedSunFrame``; a flare on the far side by then gets NaN) and put through the map's WCS. ``shape``
    (ny, nx): also give the pixel on a grid that resamples the map's whole field to that shape (a cube's).
    Adds ``x_px``, ``y_px`` (map pixels, 0-based) and, with ``shape``, ``x_cube``, ``y_cube``."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from sunpy.coordinates import Helioprojective, RotatedSunFrame

    out = flares.copy()
    xs, ys = [], []
    for _, row in flares.iterrows():
        at_peak = SkyCoord(row["hpc_x"] * u.arcsec, row["hpc_y"] * u.arcsec,
                           frame=Helioprojective(observer=smap.observer_coordinate, obstime=row["peak"]))
        moved = RotatedSunFrame(base=at_peak.transform_to("heliographic_stonyhurst"),
                                duration=(smap.date - at_peak.obstime).to(u.day))
        try:
            x, y = smap.world_to_pixel(SkyCoord(moved).transform_to(smap.coordinate_frame))
            xs.append(float(x.value))
            ys.append(float(y.value))
        except ValueError:
            xs.append(np.nan)
            ys.append(np.nan)
    out["x_px"], out["y_px"] = np.asarray(xs, float), np.asarray(ys, float)
    if shape is not None:
        ny, nx = smap.data.shape
        out["x_cube"] = (out["x_px"] + 0.5) * shape[1] / nx - 0.5
        out["y_cube"] = (out["y_px"] + 0.5) * shape[0] / ny - 0.5
    return out


def disk_pixels(smap, shape: tuple[int, int]) -> np.ndarray:
    """Which pixels of a grid that resamples the map ``smap``'s whole field to ``shape`` (ny, nx) (a cube's, as in
    :func:`flare_pixels`) lie on the solar disk: bool ``(ny, nx)``, from the map's WCS, disk centre and radius."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    ny, nx = smap.data.shape
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    x_px = (xx + 0.5) * nx / shape[1] - 0.5
    y_px = (yy + 0.5) * ny / shape[0] - 0.5
    world = smap.pixel_to_world(x_px * u.pix, y_px * u.pix)
    centre = SkyCoord(0 * u.arcsec, 0 * u.arcsec, frame=smap.coordinate_frame)
    return np.asarray(world.separation(centre).to_value(u.arcsec) <= smap.rsun_obs.to_value(u.arcsec))


def flares_between(positions: pd.DataFrame, start: np.datetime64 | str, end: np.datetime64 | str) -> pd.DataFrame:
    """The flares of ``positions`` with a position that peak in ``(start, end]`` (UTC, e.g. a forecast window),
    biggest first."""
    first, last = pd.Timestamp(start), pd.Timestamp(end)
    inside = positions[(positions["peak"] > first) & (positions["peak"] <= last)].dropna(subset=["hpc_x", "hpc_y"])
    return inside.sort_values("peak_flux", ascending=False).reset_index(drop=True)
