"""Dataset summaries for exploration (notebook 03): class counts, channel statistics, event rates.

All functions take a cube (:class:`xarray.Dataset` with the flarelib schema) and return
pandas tables, so a notebook can show or plot them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from flarelib.cube.goes import CLASS_ORDER, FLARE_CLASS_THRESHOLDS, NO_DATA, peak_steps


def class_counts(cube: xr.Dataset, forecast: str | None = None, *, by: str | None = None) -> pd.DataFrame:
    """Number of time steps per GOES class of a target.

    ``forecast=None`` counts ``class_now``; otherwise ``class_max`` of that forecast label.
    ``by="month"`` gives one row per calendar month, labelled ``"2031-01"``; a month the cube
    covers only in part says so, e.g. ``"2031-03 (1 of 31 days)"``, so that its small counts are
    not read as a quiet month. Steps without a target are left out.
    """
    labels = cube.class_now if forecast is None else cube.class_max.sel(forecast=forecast)
    times = pd.DatetimeIndex(cube.time.values)
    frame = pd.DataFrame({"class": labels.values.astype(str)}, index=times)
    frame = frame[frame["class"] != NO_DATA]
    if by == "month":
        table = frame.groupby([frame.index.to_period("M"), "class"]).size().unstack(fill_value=0)
        table.index = [month_label(month, times) for month in table.index]
        table.index.name = "month"
    elif by is None:
        table = frame["class"].value_counts().to_frame("steps").T
    else:
        raise ValueError(f"by must be None or 'month', not {by!r}")
    return table.reindex(columns=[c for c in CLASS_ORDER if c in table.columns or c in "BCMX"], fill_value=0)


def month_label(month: pd.Period, times: pd.DatetimeIndex) -> str:
    """``"2031-01"`` when ``times`` cover every day of ``month``, else ``"2031-01 (14 of 31 days)"``."""
    covered = int(pd.Index(times[times.to_period("M") == month].normalize()).nunique())
    days = int(month.days_in_month)
    return str(month) if covered >= days else f"{month} ({covered} of {days} days)"


def class_count_table(cube: xr.Dataset, forecasts=()) -> pd.DataFrame:
    """Time steps per GOES class, one row per target: ``nowcast`` and each label of ``forecasts``."""
    rows = {"nowcast": class_counts(cube).iloc[0]}
    rows.update({forecast: class_counts(cube, forecast).iloc[0] for forecast in forecasts})
    table = pd.DataFrame(rows).T.fillna(0).astype(int)
    table.index.name = "target"
    return table.reindex(columns=[c for c in CLASS_ORDER if c in table.columns])


def channel_statistics(cube: xr.Dataset, *, max_steps: int = 500) -> pd.DataFrame:
    """Per-channel statistics of ``aia`` in DN/s over up to ``max_steps`` evenly spaced steps.

    Columns: median, p1, p99, mean and std of log10(DN/s) (non-positive pixels excluded),
    and the fraction of non-positive pixels.
    """
    step = max(1, cube.sizes["time"] // max_steps)
    sample = cube.aia.isel(time=slice(None, None, step)).values
    rows = {}
    for j, channel in enumerate(cube.channel.values):
        values = sample[:, j].ravel()
        values = values[np.isfinite(values)]
        positive = values[values > 0]
        logs = np.log10(positive)
        rows[int(channel)] = {
            "median DN/s": float(np.median(positive)), "p1 DN/s": float(np.percentile(positive, 1)),
            "p99 DN/s": float(np.percentile(positive, 99)), "mean log10": float(logs.mean()),
            "std log10": float(logs.std()), "non-positive fraction": float(1 - positive.size / max(values.size, 1)),
        }
    frame = pd.DataFrame(rows).T
    frame.index.name = "channel (Å)"
    return frame


def events_per_span(cube: xr.Dataset, spans_days=(1, 7, 30, 60, 365),
                    threshold: float = FLARE_CLASS_THRESHOLDS["M"]) -> pd.DataFrame:
    """How many events of at least ``threshold`` W/m² a span of data holds ("long data").

    Uses the cube's event rate (events per day over the cube's duration) and a Poisson
    model: expected count and the probability that a span holds none.
    """
    days = (cube.time.values[-1] - cube.time.values[0]) / np.timedelta64(1, "D")
    n = int((cube.event_peak_flux.values >= threshold).sum())
    rate = n / days if days > 0 else np.nan
    rows = [{"span (days)": s, "expected events": rate * s, "P(no event)": float(np.exp(-rate * s))}
            for s in spans_days]
    frame = pd.DataFrame(rows).set_index("span (days)")
    frame.attrs.update({"events_in_cube": n, "cube_days": float(days), "rate_per_day": rate})
    return frame


def hot_channel_totals(cube: xr.Dataset, channels=(94, 131)) -> xr.DataArray:
    """Sum of ``aia`` over the image (DN/s) for the given channels, as (time, channel)."""
    return cube.aia.sel(channel=list(channels)).sum(("y", "x"))


def biggest_flare_step(cube: xr.Dataset) -> int:
    """The time index at (or just before) the peak of the largest listed flare that peaks inside the cube's
    span (:func:`flarelib.cube.goes.peak_steps`); else of the largest ``flux_now``; else 0. (The saliency browser
    opens at the highest XRS-B of its stretch instead: :func:`flarelib.show.widgets.xrsb_peak_step`.)"""
    if "event_peak_flux" in cube and cube.sizes.get("event", 0):
        steps, inside = peak_steps(cube["time"].values, cube["event_peak"].values)
        flux = np.where(inside, np.nan_to_num(cube["event_peak_flux"].values.astype(float), nan=-np.inf), -np.inf)
        if np.isfinite(flux).any():
            return int(steps[np.argmax(flux)])
    flux_now = cube["flux_now"].values.astype(float) if "flux_now" in cube else np.array([])
    return int(np.nanargmax(flux_now)) if np.isfinite(flux_now).any() else 0


def busiest_step(cube: xr.Dataset) -> int:
    """The time index with the most active regions on the disk (``region_on_disk``, synthetic cubes)."""
    return int(np.argmax(cube["region_on_disk"].sum("region").values))


def steps_around(cube: xr.Dataset, step: int, *, before: int = 1, after: int = 1) -> list[int]:
    """``step`` with up to ``before`` steps before it and ``after`` steps after it, inside the cube."""
    return list(range(max(0, step - before), min(cube.sizes["time"], step + after + 1)))


def has_regions(cube: xr.Dataset) -> bool:
    """Whether the cube carries region identities (``region_id``, ``region_on_disk``): the synthetic sun's ground
    truth, which no observed cube has."""
    return "region_id" in cube and "region_on_disk" in cube
