"""GOES/XRS soft X-ray flux: loading, quality masking, resampling and flare classes.

Everything here is in W/m² for the 1-8 Å (XRS-B) channel unless stated otherwise.
Files are read with :class:`sunpy.timeseries.TimeSeries` (old SDAC FITS of GOES <= 15 and
NOAA's netCDF of the reprocessed GOES 1-15 and GOES-R series) and handed on as an
:class:`xarray.Dataset` with a UTC ``datetime64`` ``time`` coordinate.

Two flux scales exist (see ``shared/notes/anchors.md``): the operational SWPC values of
GOES <= 15 carry a factor 0.7 on XRS-B (0.85 on XRS-A) to match older satellites; the
science-quality reprocessing removed it. Every dataset records which one it holds in
``attrs["goes_scaling"]`` and :func:`combine_xrs` refuses to mix them.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

log = logging.getLogger(__name__)

#: Lower flux bound of each GOES class, W/m² (peak 1-8 Å flux; NGDC xray.fmt).
FLARE_CLASS_THRESHOLDS: dict[str, float] = {"A": 1e-8, "B": 1e-7, "C": 1e-6, "M": 1e-5, "X": 1e-4}
#: Label used for finite fluxes below A1 and for missing values.
BELOW_A = "<A"
NO_DATA = ""
#: Class labels from weakest to strongest, as tables list them.
CLASS_ORDER: list[str] = [BELOW_A, *FLARE_CLASS_THRESHOLDS]
#: The classes whose lower bound makes an "event" in skill scores and in the model's class head (>= C1, >= M1).
EVENT_CLASSES: tuple[str, ...] = ("C", "M")
#: SWPC multiplicative factors of operational GOES <= 15 data (XRS-B, XRS-A).
SWPC_SCALE = {"xrsb": 0.7, "xrsa": 0.85}
SCALINGS = ("swpc-scaled", "science-quality", "synthetic", "none")
FILL_VALUE = -9999.0


class GOESDataError(ValueError):
    """A GOES file or series cannot be used (unreadable, empty, mixed scalings)."""


def flare_class(flux: np.ndarray | float | xr.DataArray) -> np.ndarray:
    """Letter class of each flux value (W/m²): ``"A"`` ... ``"X"``.

    Values below 1e-8 W/m² give ``"<A"``; NaN gives ``""``. Works on any array shape.
    """
    values = np.asarray(flux, dtype=float)
    out = np.full(values.shape, NO_DATA, dtype="<U2")
    finite = np.isfinite(values)
    out[finite] = BELOW_A
    for letter, bound in FLARE_CLASS_THRESHOLDS.items():
        out[finite & (values >= bound)] = letter
    return out


def flare_class_label(flux: float) -> str:
    """The conventional label of a peak flux, e.g. ``2.2e-4 -> "X2.2"``, ``2.55e-5 -> "M2.6"``.

    The multiplier is rounded to one decimal. X-class multipliers may exceed 10 (``"X17.2"``).
    """
    letter = str(flare_class(flux)[()])
    if letter in (NO_DATA, BELOW_A):
        return letter
    multiplier = float(flux) / FLARE_CLASS_THRESHOLDS[letter]
    if letter != "X" and round(multiplier, 1) >= 10.0:  # 9.97e-6 rounds to C10.0 -> M1.0
        letter = "ABCMX"["ABCMX".index(letter) + 1]
        multiplier = float(flux) / FLARE_CLASS_THRESHOLDS[letter]
    return f"{letter}{multiplier:.1f}"


def class_to_flux(label: str) -> float:
    """Inverse of :func:`flare_class_label`: ``"X2.2" -> 2.2e-4`` W/m²."""
    match = re.fullmatch(r"\s*([ABCMX])\s*(\d+(?:\.\d*)?)?\s*", str(label).upper())
    if not match:
        raise ValueError(f"not a GOES flare class: {label!r} (expected e.g. 'M2.6' or 'X2.2')")
    letter, mult = match.groups()
    return FLARE_CLASS_THRESHOLDS[letter] * (float(mult) if mult else 1.0)


def peak_steps(times: np.ndarray, peaks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For flare peaks (UTC ``datetime64``), the index of the time step at or just before each peak, and whether
    the peak lies inside the span of ``times`` (sorted) and within one cadence of that step (not in a gap).

    Event lists also hold flares from before the first step (the flare history that targets need).
    """
    times, peaks = np.asarray(times), np.asarray(peaks)
    steps = np.clip(np.searchsorted(times, peaks, side="right") - 1, 0, max(times.size - 1, 0))
    if times.size < 2:
        return steps, np.zeros(peaks.shape, bool)
    cadence = np.diff(times).min()
    return steps, (peaks >= times[0]) & (peaks - times[steps] < cadence)


#: Years each GOES satellite's XRS data can fall in (launch to end of service, rounded out to whole years): a
#: file claiming a satellite outside its years contradicts itself.
SATELLITE_YEARS = {8: (1994, 2003), 9: (1995, 1998), 10: (1998, 2009), 11: (2000, 2011), 12: (2001, 2010),
                   13: (2006, 2017), 14: (2009, 2020), 15: (2010, 2020), 16: (2016, 2026), 17: (2018, 2023),
                   18: (2022, 2040), 19: (2024, 2040)}


def _satellite_number(text: str | None) -> int | None:
    number = re.search(r"(\d+)", str(text)) if text else None
    return int(number.group(1)) if number else None


def _satellite_from(ts_observatory: str | None, path: Path) -> str:
    """The satellite from the evidence: the file's header (what sunpy reads as the observatory) and its name
    (``go15...``, ``..._g16_...``). When both name one, they must agree; an SDAC FITS file (the format of GOES
    <= 15) cannot come from GOES-16 or later. A contradiction raises :class:`GOESDataError` naming both, because
    the satellite decides the flux scaling (a GOES-15 file read as GOES-16 is off by 0.7)."""
    header = (_satellite_number(ts_observatory)
              if ts_observatory and "GOES" in str(ts_observatory).upper() else None)
    match = re.search(r"(?:go|_g)(\d{2})", path.name.lower())
    named = int(match.group(1)) if match else None
    if header is not None and named is not None and header != named:
        raise GOESDataError(f"{path.name}: its header says GOES-{header} but its name says GOES-{named}; the "
                            "satellite decides the flux scaling, so it is refused: fix the header or the name")
    number = header if header is not None else named
    if number is not None and number >= 16 and ".nc" not in path.name.lower():
        raise GOESDataError(f"{path.name}: a FITS file (the SDAC format of GOES <= 15) that claims GOES-{number}; "
                            "GOES-16 and later come as NOAA netCDF: check where the file came from")
    return f"GOES-{number}" if number is not None else "unknown"


def _check_years(path: Path, satellite: str, times: pd.DatetimeIndex) -> None:
    """Refuse data dated outside the years its satellite flew (:data:`SATELLITE_YEARS`)."""
    number = _satellite_number(satellite)
    years = SATELLITE_YEARS.get(number) if number is not None else None
    if years is None or times.empty:
        return
    first, last = times.min(), times.max()
    if first.year < years[0] or last.year > years[1]:
        raise GOESDataError(f"{path.name}: {satellite} data dated {first:%Y-%m-%d} to {last:%Y-%m-%d}, but "
                            f"{satellite} flew {years[0]}-{years[1]}: the file's satellite or times are wrong")


def _scaling_from(path: Path, satellite: str) -> str:
    """SDAC FITS (``go15YYYYMMDD.fits``) of GOES <= 15 are SWPC-scaled; NOAA netCDF are not."""
    name = path.name.lower()
    if ".nc" in name:
        return "science-quality"
    number = _satellite_number(satellite)
    if number is not None and number >= 16:
        return "science-quality"
    return "swpc-scaled"


def _good_data_masks(path: Path) -> tuple[dict[str, int | None], dict[str, int]]:
    """Bit masks of the ``good_data`` and of the saturation meanings of each XRS flag variable in a NOAA netCDF.

    NOAA's products disagree on which bits mean "bad" (GOES-R avg1m: 3; GOES 1-15 avg1m: 7;
    high-resolution irradiances: 1023), so the mask is read from the file's own
    ``flag_meanings``/``flag_masks``. ``None`` means "every non-zero flag is bad". The second
    mapping holds the bits whose meaning says "saturated" (0 where none): such samples are a
    lower bound of the flux (the peak of a strong flare), flagged but kept.
    """
    masks: dict[str, int | None] = {"xrsa": None, "xrsb": None}
    saturation: dict[str, int] = {"xrsa": 0, "xrsb": 0}
    if ".nc" not in path.name.lower():
        return masks, saturation
    import h5netcdf

    with h5netcdf.File(path, "r") as nc:
        for channel, candidates in (("xrsa", ("xrsa_flag", "a_flags")), ("xrsb", ("xrsb_flag", "b_flags"))):
            for name in candidates:
                if name in nc.variables:
                    attrs = nc.variables[name].attrs
                    meanings = str(attrs.get("flag_meanings", "")).split()
                    flag_masks = np.atleast_1d(attrs.get("flag_masks", []))
                    if len(flag_masks) == len(meanings):
                        if "good_data" in meanings:
                            masks[channel] = int(flag_masks[meanings.index("good_data")])
                        for meaning, bits in zip(meanings, flag_masks):
                            if "saturat" in meaning.lower():
                                saturation[channel] |= int(bits)
                    break
    return masks, saturation


def load_xrs(path: str | Path, *, mask_bad_quality: bool = True) -> xr.Dataset:
    """Load one GOES XRS file into an xarray Dataset.

    Parameters
    ----------
    path
        A GOES <= 15 SDAC FITS file (``go15YYYYMMDD.fits[.gz]``) or a NOAA netCDF
        (``sci_xrsf-l2-avg1m_*``, ``sci_xrsf-l2-flx1s_*``, ``sci_gxrs-l2-irrad_*``).
    mask_bad_quality
        Set samples whose quality flag marks bad data to NaN (the flag itself is kept).
        Saturated samples are not masked: they are flagged in ``xrsb_saturated`` (their
        value is a lower bound of the flux, the peak of a strong flare) and counted.

    Returns
    -------
    xarray.Dataset
        ``xrsb`` and ``xrsa`` (time) float64 in W/m², ``xrsb_quality`` (time) where the file
        has flags, ``xrsb_saturated`` (time, bool) where the flags have a saturation meaning.
        Fill values (-9999), non-positive and non-finite fluxes become NaN (partly filled files
        log the count). Duplicate times keep their first sample, and times are sorted.
        ``attrs`` record ``goes_satellite``, ``goes_scaling``, ``source`` and the counts of
        masked and saturated samples.

    Raises
    ------
    GOESDataError
        The file is unreadable, holds no samples, or no valid XRS-B sample (all fill or bad quality).
    """
    path = Path(path)
    import sunpy.timeseries

    try:
        with warnings.catch_warnings():
            # sunpy's GOES source calls a pandas method deprecated in pandas 3 (not ours to fix)
            warnings.filterwarnings("ignore", message="The inplace keyword in DataFrame.sort_index",
                                    category=getattr(pd.errors, "Pandas4Warning", DeprecationWarning))
            series = sunpy.timeseries.TimeSeries(str(path))
    except Exception as exc:  # sunpy raises many types for unreadable files
        raise GOESDataError(f"{path.name}: not a readable GOES XRS file ({type(exc).__name__}: {exc})") from exc
    if isinstance(series, list) or "xrsb" not in series.columns:
        raise GOESDataError(f"{path.name}: no XRS-B column; is this a GOES XRS file?")
    frame = series.to_dataframe()
    if frame.empty:
        raise GOESDataError(f"{path.name}: the file holds no samples")

    satellite = _satellite_from(getattr(series, "observatory", None), path)
    scaling = _scaling_from(path, satellite)
    index = pd.DatetimeIndex(frame.index)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    frame.index = index
    _check_years(path, satellite, index)
    n_duplicates = int(frame.index.duplicated().sum())
    frame = frame[~frame.index.duplicated(keep="first")].sort_index()

    counts = {"n_samples": len(frame), "n_duplicate_times": n_duplicates}
    data_vars = {}
    masks, saturation_bits = _good_data_masks(path)
    for channel in ("xrsb", "xrsa"):
        flux = frame[channel].to_numpy(dtype=float).copy()
        fill = ~np.isfinite(flux) | (flux <= 0) | np.isclose(flux, FILL_VALUE)
        flux[fill] = np.nan
        counts[f"n_{channel}_fill"] = int(fill.sum())
        quality_column = f"{channel}_quality"
        if quality_column in frame:
            quality = frame[quality_column].fillna(0).to_numpy().astype(np.int64)
            bad_bits = masks[channel]
            sat_bits = saturation_bits[channel]
            saturated = ((quality & sat_bits) != 0) & ~fill
            quality_bad = quality & ~sat_bits  # saturation alone is not bad data: the value is kept
            bad = (quality_bad & bad_bits) != 0 if bad_bits is not None else quality_bad != 0
            counts[f"n_{channel}_bad_quality"] = int(bad.sum())
            if mask_bad_quality:
                flux[bad] = np.nan
            if channel == "xrsb":
                data_vars["xrsb_quality"] = ("time", quality, {"long_name": "XRS-B quality flag as in the file"})
                if sat_bits:
                    counts["n_xrsb_saturated"] = int(saturated.sum())
                    data_vars["xrsb_saturated"] = ("time", saturated, {
                        "long_name": "XRS-B sample flagged saturated (kept: a lower bound of the flux)"})
                    if saturated.any():
                        log.warning("%s: %d XRS-B samples flagged saturated, kept as lower bounds of the flux "
                                    "(xrsb_saturated)", path.name, int(saturated.sum()))
        data_vars[channel] = (
            "time",
            flux,
            {"units": "W m-2",
             "long_name": f"GOES {channel.upper()} flux ({'1-8' if channel == 'xrsb' else '0.5-4'} Å)"},
        )
    ds = xr.Dataset(data_vars, coords={"time": frame.index.to_numpy(dtype="datetime64[ns]")})
    ds.time.attrs["standard_name"] = "time"
    ds.time.attrs["timezone"] = "UTC"
    ds.attrs.update({"goes_satellite": satellite, "goes_scaling": scaling, "source": path.name, **counts})
    n_masked = counts["n_xrsb_fill"] + counts.get("n_xrsb_bad_quality", 0)
    if not np.isfinite(ds["xrsb"].values).any():
        raise GOESDataError(
            f"{path.name}: no valid XRS-B sample ({counts['n_xrsb_fill']} of {len(frame)} are fill values, "
            f"{counts.get('n_xrsb_bad_quality', 0)} flagged bad): use another file for these days")
    if n_masked:
        log.info("%s: %d XRS-B samples masked (fill or bad quality)", path.name, n_masked)
    return ds


def to_science_quality(xrs: xr.Dataset) -> xr.Dataset:
    """Remove the SWPC scaling of GOES <= 15 operational data (XRS-B / 0.7, XRS-A / 0.85)."""
    scaling = xrs.attrs.get("goes_scaling")
    if scaling == "science-quality":
        return xrs
    if scaling != "swpc-scaled":
        raise GOESDataError(f"cannot convert GOES data with scaling {scaling!r} to science quality")
    out = xrs.copy()
    for channel, factor in SWPC_SCALE.items():
        if channel in out:
            out[channel] = out[channel] / factor
            out[channel].attrs.update(xrs[channel].attrs)
    out.attrs["goes_scaling"] = "science-quality"
    out.attrs["converted_from"] = "swpc-scaled (XRS-B / 0.7, XRS-A / 0.85)"
    return out


def combine_xrs(parts: Sequence[xr.Dataset]) -> xr.Dataset:
    """Concatenate XRS datasets along time (sorted; where times repeat, the first part wins).

    Raises :class:`GOESDataError` when the parts mix SWPC-scaled and science-quality values:
    convert with :func:`to_science_quality` first.
    """
    if not parts:
        raise GOESDataError("no GOES data to combine")
    if len(parts) == 1:
        return parts[0]
    scalings = {p.attrs.get("goes_scaling") for p in parts}
    if len(scalings) > 1:
        raise GOESDataError(
            f"refusing to mix GOES flux scalings {sorted(map(str, scalings))}; "
            "convert with flarelib.cube.goes.to_science_quality first"
        )
    merged = xr.concat(list(parts), dim="time", data_vars="minimal", coords="minimal", compat="override",
                       join="outer", combine_attrs="drop")
    _, first = np.unique(merged.time.values, return_index=True)
    merged = merged.isel(time=np.sort(first)).sortby("time")
    merged.attrs = {
        "goes_satellite": ",".join(sorted({str(p.attrs.get("goes_satellite")) for p in parts})),
        "goes_scaling": scalings.pop(),
        "source": ",".join(str(p.attrs.get("source")) for p in parts),
    }
    return merged


def resample_to_slots(
    xrsb: xr.DataArray, times: np.ndarray, cadence: np.timedelta64, *, min_coverage: float = 0.5
) -> xr.DataArray:
    """Mean XRS-B flux over the cadence interval that ends at each slot time: ``(t - cadence, t]``.

    Causal: nothing after ``t`` enters the value at ``t`` (a nowcast target or a
    persistence forecast issued at ``t`` may use it). A slot whose valid samples cover less
    than ``min_coverage`` of the samples expected at the series' median sampling interval
    is NaN (a gap), and counted in ``attrs["n_gap_slots"]``. Returns a float64 DataArray on
    ``time=times`` in W/m².
    """
    times = np.asarray(times, dtype="datetime64[ns]")
    cadence = np.timedelta64(cadence, "ns")
    src_t = xrsb.time.values.astype("datetime64[ns]")
    values = xrsb.values.astype(float)
    if src_t.size > 1:
        step = np.median(np.diff(src_t)).astype("timedelta64[ns]")
    else:
        step = cadence
    expected = max(cadence / step, 1.0)
    lo = np.searchsorted(src_t, times - cadence, side="right")
    hi = np.searchsorted(src_t, times, side="right")
    valid = np.isfinite(values)
    csum = np.concatenate([[0.0], np.cumsum(np.where(valid, values, 0.0))])
    ccount = np.concatenate([[0], np.cumsum(valid)])
    n_valid = ccount[hi] - ccount[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (csum[hi] - csum[lo]) / n_valid
    gap = n_valid < min_coverage * expected
    mean[gap] = np.nan
    out = xr.DataArray(mean, coords={"time": times}, dims="time", attrs=dict(xrsb.attrs))
    out.attrs.update({"resampling": f"mean over (t - {cadence.astype('timedelta64[s]')}, t] (causal), "
                      f"NaN below {min_coverage:.0%} coverage", "n_gap_slots": int(gap.sum())})
    return out


def window_max(
    xrsb: xr.DataArray, times: np.ndarray, lead: np.timedelta64, window: np.timedelta64, *, min_coverage: float = 0.5
) -> np.ndarray:
    """Max XRS-B flux in ``[t + lead, t + lead + window]`` for each ``t`` in ``times`` (W/m²).

    Uses the series at its native sampling. NaN where the window runs past the data or
    its valid samples cover less than ``min_coverage`` of the expected samples. A negative
    ``lead`` looks back: ``lead = -window`` gives the max over ``[t - window, t]`` (the
    flare history known at ``t``).
    """
    times = np.asarray(times, dtype="datetime64[ns]")
    src_t = xrsb.time.values.astype("datetime64[ns]")
    values = xrsb.values.astype(float)
    lead = np.timedelta64(lead, "ns")
    window = np.timedelta64(window, "ns")
    out = np.full(times.shape, np.nan)
    if src_t.size == 0:
        return out
    step = np.median(np.diff(src_t)).astype("timedelta64[ns]") if src_t.size > 1 else window
    expected = max(window / step, 1.0)
    lo = np.searchsorted(src_t, times + lead, side="left")
    hi = np.searchsorted(src_t, times + lead + window, side="right")
    inside = (times + lead + window) <= src_t[-1]
    for i in np.flatnonzero(inside & (hi > lo)):
        chunk = values[lo[i]:hi[i]]
        finite = np.isfinite(chunk)
        if finite.sum() >= min_coverage * expected:
            out[i] = chunk[finite].max()
    return out


def window_complete(
    xrsb: xr.DataArray, times: np.ndarray, lead: np.timedelta64, window: np.timedelta64, *, max_gap: float = 3.0
) -> np.ndarray:
    """True for each ``t`` whose window ``[t + lead, t + lead + window]`` has no data gap (bool array).

    A gap is a stretch longer than ``max_gap`` times the series' median sampling interval
    without a finite sample (fill values, masked samples or missing times), inside the window
    or at its edges. A flare peak may hide in a gap, so the window's maximum
    (:func:`window_max`, which accepts windows down to ``min_coverage``) is then only a lower
    bound. Windows running past the data are not complete either.
    """
    times = np.asarray(times, dtype="datetime64[ns]")
    src_t = xrsb.time.values.astype("datetime64[ns]")
    lead = np.timedelta64(lead, "ns")
    window = np.timedelta64(window, "ns")
    out = np.zeros(times.shape, dtype=bool)
    valid_t = src_t[np.isfinite(xrsb.values.astype(float))]
    if valid_t.size == 0:
        return out
    step = np.median(np.diff(src_t)).astype("timedelta64[ns]") if src_t.size > 1 else window
    limit = max_gap * step
    lo = np.searchsorted(valid_t, times + lead, side="left")
    hi = np.searchsorted(valid_t, times + lead + window, side="right")
    for i in range(times.size):
        start, end = times[i] + lead, times[i] + lead + window
        if end > src_t[-1] or start < src_t[0]:
            continue
        inside = valid_t[lo[i]:hi[i]]
        edges = np.concatenate([[start], inside, [end]])
        out[i] = bool(np.diff(edges).max() <= limit) if edges.size > 1 else False
    return out
