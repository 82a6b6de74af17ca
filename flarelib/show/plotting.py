"""Plots for the notebooks. Every title says whether the data are REAL or SYNTHETIC."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.colors import LogNorm
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, NullLocator

from flarelib.cube.goes import FLARE_CLASS_THRESHOLDS, flare_class_label, peak_steps
from flarelib.evaluate.scoring import describe_target
from flarelib.labels import CLASS_COLOURS, data_kind


def aia_cmap(channel: int):
    """The sunpy colormap of an AIA channel (``sdoaia171`` ...)."""
    import sunpy.visualization.colormaps  # noqa: F401  (registers the colormaps)

    return plt.get_cmap(f"sdoaia{int(channel)}")


#: Full scale of AIA's 14-bit ADC: a saturated pixel reads 16383 DN (Lemen et al. 2012, Sol. Phys. 275, 17).
AIA_SATURATION_DN = 16383.0
#: Lower end of an AIA log stretch: this many times below the median positive pixel of the frames shown.
STRETCH_BELOW_MEDIAN = 30.0


def frame_range(image: np.ndarray) -> tuple[float, float]:
    """Display range (DN/s) of one or more AIA frames for a log scale.

    The top is the 99.8th percentile of the positive finite pixels. The bottom is their 1st
    percentile, raised to at most :data:`STRETCH_BELOW_MEDIAN` times below their median.
    The limit matters for faint channels: off-disk pixels of 94 Å read about 0 DN/s plus or minus
    read noise, so the 1st percentile of the positive ones is about 1e-5 DN/s. A stretch from
    there to the flare covered 6 to 9 decades, and the whole disk (0.2 to 5 DN/s) fell into one
    narrow band of the colormap: the synthetic 94 Å panel looked blank. Pass all the frames of a
    series at once (shape ``(..., ny, nx)``) to get one stretch for all of them.
    """
    image = np.asarray(image)
    positive = image[np.isfinite(image) & (image > 0)]
    if not positive.size:
        return 1.0, 10.0
    p1, median, hi = np.percentile(positive, [1, 50, 99.8])
    lo = max(float(p1), float(median) / STRETCH_BELOW_MEDIAN)
    return lo, max(float(hi), 10 * lo)


def saturated_pixels(image: np.ndarray, level: float | None = None, *, min_pixels: int = 3) -> int:
    """Number of saturated pixels in one AIA frame in DN/s (0 when the frame is not saturated).

    A saturated AIA pixel reads the ADC's full scale, :data:`AIA_SATURATION_DN` (16383 DN), and its
    excess charge blooms along the CCD column into neighbours that then read full scale too. After
    exposure normalization (divided by EXPTIME) and degradation correction (divided by a factor of
    at most 1) all of them hold one and the same value, at least 16383 DN / EXPTIME. So a frame is
    saturated when at least ``min_pixels`` pixels share its maximum (a clipped plateau that noisy,
    unsaturated data do not show) and, when the saturation ``level`` (DN/s, see
    :func:`saturation_levels`) is known, that maximum reaches it (to 1 %). The count is the pixels
    on the plateau.
    """
    image = np.asarray(image, dtype=np.float64)
    finite = image[np.isfinite(image)]
    if not finite.size:
        return 0
    top = float(finite.max())
    if top <= 0 or (level is not None and np.isfinite(level) and top < 0.99 * float(level)):
        return 0
    plateau = int(np.count_nonzero(finite >= top * (1 - 1e-6)))
    return plateau if plateau >= min_pixels else 0


def saturation_levels(cube: xr.Dataset, time_index: int) -> dict[int, float | None]:
    """The DN/s value a saturated pixel reads, per channel, at one step (None where unknown).

    Real cubes: 16383 DN / EXPTIME of the frame (the lowest value it can read after the
    degradation correction). Synthetic cubes store no exposure (``exptime`` is 1 s: the
    generator writes DN/s directly), so their generator's own level (``saturation_dn_per_s``
    in ``attrs["generator"]``) is used.
    """
    channels = [int(c) for c in cube["channel"].values]
    if data_kind(cube) == "SYNTHETIC":
        try:
            levels = json.loads(cube.attrs.get("generator", "{}")).get("saturation_dn_per_s", {})
        except ValueError:
            levels = {}
        return {c: float(levels[str(c)]) if str(c) in levels else None for c in channels}
    if "exptime" not in cube:
        return dict.fromkeys(channels)
    exptime = cube["exptime"].isel(time=int(time_index)).values
    return {c: AIA_SATURATION_DN / float(e) if e > 0 else None for c, e in zip(channels, exptime)}


def saturation_table(cube: xr.Dataset, time_indices) -> dict[int, dict[int, int]]:
    """Saturated pixels per channel and step: ``{channel: {time_index: pixels}}``, saturated frames only.

    Uses :func:`saturated_pixels` at the levels of :func:`saturation_levels`.
    """
    found: dict[int, dict[int, int]] = {}
    for t in time_indices:
        frame = cube["aia"].isel(time=int(t)).values
        levels = saturation_levels(cube, int(t))
        for j, channel in enumerate(cube["channel"].values):
            n = saturated_pixels(frame[j], levels[int(channel)])
            if n:
                found.setdefault(int(channel), {})[int(t)] = n
    return found


def _minute(time) -> str:
    """A time as ``YYYY-MM-DD HH:MM``."""
    return np.datetime_as_string(np.datetime64(time, "m"), unit="m").replace("T", " ")


def saturation_caption(cube: xr.Dataset, table: dict[int, dict[int, int]]) -> str:
    """One line for a caption: which channels are saturated when (from :func:`saturation_table`)."""
    if not table:
        return "no saturated pixels"
    times = cube["time"].values
    by_steps: dict[tuple, list[int]] = {}  # channels saturated at the same steps share one entry
    for channel, steps in table.items():
        by_steps.setdefault(tuple(steps), []).append(channel)
    parts = [f"{', '.join(map(str, channels))} Å at {', '.join(_minute(times[t])[-5:] for t in steps)}"
             for steps, channels in by_steps.items()]
    return "SATURATED (pixels at the 16383 DN full scale): " + "; ".join(parts)


def channel_norms(cube: xr.Dataset, time_indices) -> dict[int, LogNorm]:
    """One log stretch per channel over the given steps (:func:`frame_range` of all their frames)."""
    frames = cube["aia"].isel(time=[int(t) for t in time_indices]).values  # (time, channel, y, x)
    return {int(channel): LogNorm(*frame_range(frames[:, j])) for j, channel in enumerate(cube["channel"].values)}


def _dn_text(value: float, _position=None) -> str:
    """A colorbar tick in DN/s: ``0.5``, ``200``, ``5000``, ``2e+04``."""
    return f"{value:g}" if 1e-3 <= value < 1e4 else f"{value:.0e}".replace("e+0", "e+").replace("e-0", "e-")


def dn_colorbar(mappable, ax, label: str = "DN/s", **kwargs):
    """A colorbar of a log-scaled AIA image, labelled in DN/s with plain-number ticks.

    Ranges under two decades get ticks at 1, 2 and 5 times each power of ten (a log colorbar
    otherwise labels its minor ticks, which run into each other); minor ticks are unlabelled.
    """
    bar = mappable.figure.colorbar(mappable, ax=ax, **kwargs)
    norm = mappable.norm
    decades = np.log10(norm.vmax / norm.vmin) if norm.vmin and norm.vmin > 0 else 3
    axis = bar.ax.xaxis if bar.orientation == "horizontal" else bar.ax.yaxis
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if decades < 2 else (1.0,)))
    axis.set_major_formatter(FuncFormatter(_dn_text))
    axis.set_minor_formatter(NullFormatter())
    bar.set_label(label, fontsize=8)
    bar.ax.tick_params(labelsize=7)
    return bar


def plot_channels(cube: xr.Dataset, time_index=0, *, mask: bool = True, norms: dict | None = None, axes=None):
    """One panel per channel, log-scaled DN/s with sunpy's AIA colormaps; one row per time step.

    ``time_index`` is one step or a list of steps. Each channel keeps one stretch
    (:func:`channel_norms`) for all the rows, so a flare's brightening reads from row to row,
    and has a colorbar in DN/s. Saturated frames (:func:`saturated_pixels`) are marked on their
    panel and named in the title. Synthetic cubes draw the ground-truth flare mask as a
    contour when ``mask``. Returns the axes (one row: 1-D, several: 2-D).
    """
    steps = [int(time_index)] if np.ndim(time_index) == 0 else [int(t) for t in time_index]
    channels = [int(c) for c in cube["channel"].values]
    if axes is None:
        fig, grid = plt.subplots(len(steps), len(channels), figsize=(2.3 * len(channels), 2.25 * len(steps) + 1.3),
                                 squeeze=False, layout="constrained")
    else:
        grid = np.asarray(axes, dtype=object).reshape(len(steps), len(channels))
        fig = grid[0, 0].figure
    norms = norms or channel_norms(cube, steps)
    saturated = saturation_table(cube, steps)
    show_exposure = "exptime" in cube and data_kind(cube) == "REAL"  # synthetic cubes store a placeholder 1 s
    times = cube["time"].values
    for i, (row, t) in enumerate(zip(grid, steps)):
        frame = cube["aia"].isel(time=t).values
        flare_mask = cube["flare_mask"].isel(time=t).values if mask and "flare_mask" in cube else None
        for j, (ax, channel) in enumerate(zip(row, channels)):
            norm = norms[channel]
            ax.imshow(np.clip(frame[j], norm.vmin, None), origin="lower", cmap=aia_cmap(channel), norm=norm)
            if flare_mask is not None and flare_mask.any():
                ax.contour(flare_mask, levels=[0.5], colors="cyan", linewidths=0.8)
            label = f"exp {float(cube['exptime'].isel(time=t, channel=j)):.3g} s" if show_exposure else ""
            n_saturated = saturated.get(channel, {}).get(t, 0)
            if n_saturated:
                label = ", ".join(filter(None, [label, f"{n_saturated} px SATURATED"]))
            ax.set_title(f"{channel} Å\n{label}" if i == 0 else label, fontsize=8,
                         color="tab:red" if n_saturated else "black")
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(f"{_minute(times[t])} UTC", fontsize=8)
    for j, channel in enumerate(channels):
        dn_colorbar(grid[-1, j].images[0], list(grid[:, j]), f"{channel} Å, DN/s", location="bottom", shrink=0.9,
                    pad=0.02)
    stretch = "one log stretch per channel for all rows" if len(steps) > 1 else "log stretch"
    fig.suptitle(f"{data_kind(cube)} {cube.attrs.get('name', '')}: AIA in DN/s, {stretch}\n"
                 f"{saturation_caption(cube, saturated)}", fontsize=10)
    return grid[0] if len(steps) == 1 else grid


def add_class_bands(ax, *, labels: bool = True) -> None:
    """Shade the GOES class bands (A ... X) on a log flux axis.

    ``labels`` names the bands on a secondary axis at the right, one tick at each band's
    centre: only the bands inside the axis limits are labelled, so no letter sits above or
    below the axes (text outside them left large blank margins around the figure).
    """
    bounds = list(FLARE_CLASS_THRESHOLDS.items())
    centres = []
    for k, (_, lo) in enumerate(bounds):
        hi = bounds[k + 1][1] if k + 1 < len(bounds) else 1e-2
        ax.axhspan(lo, hi, color="0.5" if k % 2 else "0.85", alpha=0.25, lw=0)
        centres.append(float(np.sqrt(lo * min(hi, 1e-3))))
    if labels:
        classes = ax.secondary_yaxis("right")
        classes.set_yticks(centres, [letter for letter, _ in bounds])
        classes.yaxis.set_minor_locator(NullLocator())
        classes.tick_params(length=0, labelsize=9)


def add_event_markers(ax, events: xr.Dataset, *, start=None, end=None) -> int:
    """Dashed lines at the peaks of listed flares (e.g. HEK/SWPC events), labelled with their class.

    ``events`` has the ``event_peak`` / ``event_class`` variables of
    :func:`flarelib.cube.align.events_dataset`; only peaks inside ``[start, end]`` are drawn.
    Returns the number of markers drawn.
    """
    peaks, classes = events.event_peak.values, events.event_class.values
    inside = np.ones(peaks.shape, bool)
    if start is not None:
        inside &= peaks >= np.datetime64(start, "ns")
    if end is not None:
        inside &= peaks <= np.datetime64(end, "ns")
    for peak, label in zip(peaks[inside], classes[inside]):
        ax.axvline(peak, color="0.3", ls="--", lw=0.7)
        ax.annotate(str(label), (peak, 1), xycoords=("data", "axes fraction"), xytext=(2, -10),
                    textcoords="offset points", fontsize=7, color="0.3")
    return int(inside.sum())


def plot_goes(xrs: xr.Dataset, *, ax=None, title: str | None = None, mark_peak: bool = True,
              events: xr.Dataset | None = None):
    """The XRS-B light curve on a log axis with class bands and the peak's class label.

    ``events`` (a flare list, e.g. a ``hek_events`` catalog entry) adds a marker per listed flare.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3.2))
    ax.semilogy(xrs.time.values, xrs.xrsb.values, lw=0.8, color="tab:red", label="XRS-B 1-8 Å")
    add_class_bands(ax)
    if events is not None:
        add_event_markers(ax, events, start=xrs.time.values[0], end=xrs.time.values[-1])
    finite = np.isfinite(xrs.xrsb.values)
    if mark_peak and finite.any():
        k = int(np.nanargmax(xrs.xrsb.values))
        peak = float(xrs.xrsb.values[k])
        right_half = k > xrs.sizes["time"] / 2  # the label runs to the left of a late peak, to stay inside
        ax.annotate(f"{flare_class_label(peak)} at {_minute(xrs.time.values[k])} UTC",
                    (xrs.time.values[k], peak), xytext=(-8 if right_half else 8, 5), textcoords="offset points",
                    ha="right" if right_half else "left")
    _flux_ylim(ax, xrs.xrsb.values if finite.any() else [1e-8, 1e-4])
    ax.set_ylabel("XRS-B 1-8 Å (W m$^{-2}$)")
    ax.set_xlabel("time (UTC)")
    scaling = xrs.attrs.get("goes_scaling", "")
    ax.set_title(title or f"{data_kind(xrs)} {xrs.attrs.get('goes_satellite', '')} XRS-B ({scaling})")
    return ax


def plot_exposure_normalization(table, *, channel: int = 193, title: str = ""):
    """Raw DN vs DN/s of one channel over time (the table of :func:`flarelib.cube.prep.exposure_table`)."""
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.2))
    ax1.semilogy(table.index, table["exptime_s"], "o-")
    ax1.set_title(f"{channel} Å exposure time (s)")
    ax2.semilogy(table.index, table["median_dn"], "o-", color="tab:orange")
    ax2.set_title("median raw DN: drops when AEC shortens exposures")
    ax3.semilogy(table.index, table["median_dn_per_s"], "o-", color="tab:green")
    ax3.set_title("median DN/s: the flare brightening")
    for ax in (ax1, ax2, ax3):
        ax.tick_params(axis="x", rotation=45)
    fig.suptitle(title or f"REAL AIA {channel} Å, 2011-02-15: why exposure normalization is mandatory")
    fig.tight_layout()
    return fig


def plot_goes_and_aia(cube: xr.Dataset, totals: xr.DataArray, *, start=None, end=None):
    """GOES XRS-B (top) beside total AIA intensity of hot channels (bottom), same time axis."""
    sub = cube.sel(time=slice(start, end))
    tot = totals.sel(time=slice(start, end))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 5), sharex=True)
    top.semilogy(sub.time.values, sub.xrsb.values, color="tab:red", lw=0.8)
    add_class_bands(top)
    _flux_ylim(top, sub.xrsb.values)
    top.set_ylabel("XRS-B (W m$^{-2}$)")
    for channel in tot.channel.values:
        series = tot.sel(channel=channel).values
        bottom.semilogy(sub.time.values, series / np.nanmedian(series), lw=0.8, label=f"{channel} Å")
    bottom.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    bottom.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if round(10 * v) % 5 == 0 else ""))
    bottom.set_ylabel("AIA total / median (log)")
    bottom.legend(loc="upper left", fontsize=8)
    _date_axis(bottom)
    fig.suptitle(f"{data_kind(cube)} {cube.attrs.get('name', '')}: GOES vs hot AIA channels")
    fig.tight_layout()
    return fig


def plot_target_distributions(cube: xr.Dataset):
    """Histograms of log10 of each target (nowcast and every forecast window)."""
    forecasts = list(cube.forecast.values)
    fig, axes = plt.subplots(1, 1 + len(forecasts), figsize=(3.6 * (1 + len(forecasts)), 3), sharey=True)
    series = [("flux_now", cube.flux_now.values)] + [(f, cube.flux_max.sel(forecast=f).values) for f in forecasts]
    bins = np.linspace(-8.5, -3, 45)
    for ax, (name, values) in zip(axes, series):
        values = values[np.isfinite(values)]
        ax.hist(np.log10(values), bins=bins, color="tab:blue")
        for lo in FLARE_CLASS_THRESHOLDS.values():
            ax.axvline(np.log10(lo), color="0.6", lw=0.6)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("log10 flux (W m$^{-2}$)")
    axes[0].set_ylabel("time steps")
    fig.suptitle(f"{data_kind(cube)} {cube.attrs.get('name', '')}: target distributions")
    fig.tight_layout()
    return fig


#: Bar colours of the targets in :func:`plot_class_counts` (greys: the colours name the classes elsewhere).
TARGET_GREYS = ("0.3", "0.65", "0.9")


def _count_labels(ax, bars, values, fontsize=7) -> None:
    """Write each bar's count above it ("0" on the axis for an empty class, which has no bar on a log axis)."""
    for bar, value in zip(bars, values):
        ax.annotate(f"{int(value)}", (bar.get_x() + bar.get_width() / 2, max(value, 0.6)), xytext=(0, 1),
                    textcoords="offset points", ha="center", va="bottom", fontsize=fontsize)


def plot_class_counts(totals, by_month=None, *, title: str, axes=None):
    """Time steps per GOES class as grouped bars on a log axis, each bar with its count.

    Bars stand side by side, never stacked: on a log axis a stacked small class (X) is hidden in
    the top sliver of its bar. ``totals`` has one row per target (nowcast, forecast windows) and
    one column per class (:func:`flarelib.evaluate.summary.class_count_table`); ``by_month`` (optional)
    one row per month of one target (:func:`flarelib.evaluate.summary.class_counts` with ``by="month"``,
    whose labels name the months the data cover only in part).
    """
    panels = 1 if by_month is None else 2
    if axes is None:
        width = 4.2 + (0 if by_month is None else max(5.0, 0.55 * len(by_month) * max(1, len(by_month.columns) / 4)))
        _, axes = plt.subplots(1, panels, figsize=(width, 3.6), squeeze=False, layout="constrained",
                               gridspec_kw={"width_ratios": [4.2, width - 4.2][:panels]})
        axes = axes[0]
    classes = list(totals.columns)
    x = np.arange(len(classes))
    width = 0.8 / len(totals)
    top = float(np.max(totals.values)) if totals.size else 1.0
    for k, (target, row) in enumerate(totals.iterrows()):
        bars = axes[0].bar(x + (k - (len(totals) - 1) / 2) * width, row.values, width, label=str(target),
                           color=TARGET_GREYS[k % len(TARGET_GREYS)], edgecolor="k", lw=0.4)
        _count_labels(axes[0], bars, row.values)
    axes[0].set_xticks(x, classes)
    axes[0].set_xlabel("GOES class of the target")
    axes[0].legend(fontsize=8, loc="upper left")
    if by_month is not None:
        months = np.arange(len(by_month))
        width = 0.8 / max(len(by_month.columns), 1)
        for k, letter in enumerate(by_month.columns):
            values = by_month[letter].values
            bars = axes[1].bar(months + (k - (len(by_month.columns) - 1) / 2) * width, values, width, label=letter,
                               color=CLASS_COLOURS.get(letter, f"C{k}"))
            if len(by_month) * len(by_month.columns) <= 30:
                _count_labels(axes[1], bars, values, fontsize=6)
        axes[1].set_xticks(months, [str(m).replace(" (", "\n(") for m in by_month.index], fontsize=8,
                           rotation=0 if len(by_month) <= 6 else 45, ha="center" if len(by_month) <= 6 else "right")
        axes[1].set_xlabel("month (partial months say how many days they hold)")
        axes[1].legend(title="class", fontsize=8, ncols=len(by_month.columns), loc="upper left")
        top = max(top, float(np.max(by_month.values)) if by_month.size else 1.0)
    for ax in axes:
        ax.set_yscale("log")
        ax.set_ylim(0.5, top * 8)  # room above the bars for the counts and the legend
        ax.set_ylabel("time steps (log)")
    axes[0].figure.suptitle(title, fontsize=10)
    return axes


# --------------------------------------------------------------------------- training and evaluation

SPLIT_COLOURS = {"train": "tab:blue", "val": "tab:orange", "test": "tab:green"}


def plot_split(dm, *, ax=None):
    """The target flux over time, coloured by split: shows the blocks and the purged gaps."""
    dm.setup()
    if ax is None:
        _, ax = plt.subplots(figsize=(11, 3.2))
    flux = dm.plan.target.flux
    ax.semilogy(dm.plan.times, np.where(flux > 0, flux, np.nan), color="0.75", lw=0.6, label="not used (gap / no data)")
    for name, idx in dm.plan.index.items():
        ax.semilogy(dm.plan.times[idx], flux[idx], ".", ms=1.5, color=SPLIT_COLOURS[name], label=f"{name} ({idx.size})")
    add_class_bands(ax)
    ax.set_title(f"{data_kind(dm)} {dm.cube_attrs.get('name', '')}: target {dm.plan.target.name} by split")
    ax.set_ylabel("target flux (W/m²)")
    ax.legend(loc="upper left", fontsize=8, markerscale=6, ncols=4)
    return ax


def plot_loss_curves(curves, *, title: str, ax=None):
    """Training and validation loss per epoch from :func:`flarelib.learn.metrics_frame`."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    for column, style in (("train_loss_epoch", "-o"), ("val_loss", "-s"), ("val_mae", ":^")):
        if column in curves:
            ax.plot(curves.index, curves[column], style, ms=3, label=column)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("loss (MSE in dex², + BCE) / MAE (dex)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return ax


#: The widest grid of small panels a figure draws in one row (about 12 inches: readable in the HTML export).
PANELS_PER_ROW = 4


def plot_pred_vs_true(true_log, predictions: dict, *, title: str, axes=None):
    """Predicted vs true log10 flux, one panel per predictor (at most :data:`PANELS_PER_ROW` a row), with the C and
    M thresholds."""
    if axes is None:
        columns = min(PANELS_PER_ROW, max(len(predictions), 1))
        rows = -(-len(predictions) // columns)
        _, grid = plt.subplots(rows, columns, figsize=(2.9 * columns, 2.9 * rows + 0.5), squeeze=False,
                               sharex=True, sharey=True)
        axes = list(grid.ravel())
        for spare in axes[len(predictions):]:
            spare.set_visible(False)
    true_log = np.asarray(true_log, float)
    finite = true_log[np.isfinite(true_log)]
    lo, hi = (finite.min() - 0.3, finite.max() + 0.3) if finite.size else (-8, -3)
    for ax, (name, pred) in zip(axes, predictions.items()):
        ax.plot(true_log, pred, ".", ms=2, alpha=0.4)
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.6)
        for level in (-6, -5):
            ax.axvline(level, color="0.6", lw=0.6, ls="--")
            ax.axhline(level, color="0.6", lw=0.6, ls="--")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("true log10 flux (W/m²)")
        ax.set_ylabel("predicted log10 flux")
        ax.xaxis.set_tick_params(labelbottom=True)
    axes[0].figure.suptitle(title, fontsize=10)
    axes[0].figure.tight_layout()
    return axes


def plot_confusion(table, predictors, *, threshold: str = ">=M1", title: str, axes=None):
    """2x2 contingency tables (rows: observed yes/no, columns: forecast yes/no) from a skill table."""
    if axes is None:
        _, axes = plt.subplots(1, len(predictors), figsize=(2.8 * len(predictors), 2.9), squeeze=False)
        axes = axes[0]
    target = table.index.get_level_values("target")[0]
    for ax, name in zip(axes, predictors):
        row = table.loc[(target, name, threshold)]
        matrix = np.array([[row["TP"], row["FN"]], [row["FP"], row["TN"]]])
        ax.imshow(np.log1p(matrix), cmap="Blues")
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, int(value), ha="center", va="center", fontsize=10)
        ax.set_xticks([0, 1], ["fcst yes", "fcst no"])
        ax.set_yticks([0, 1], ["obs yes", "obs no"])
        ax.set_title(f"{name}\nTSS {row['TSS']:.2f}", fontsize=9)
    axes[0].figure.suptitle(f"{title} ({threshold})", fontsize=10)
    axes[0].figure.tight_layout()
    return axes


# --------------------------------------------------------------------------- explanations

def plot_channel_importance(share: xr.DataArray, *, title: str, ax=None):
    """Stacked share of attribution mass per channel over time (from :func:`flarelib.explain.channel_importance`)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3))
    x = np.arange(share.sizes["time"])
    bottom = np.zeros(share.sizes["time"])
    for channel in share["channel"].values:
        values = share.sel(channel=channel).values
        ax.bar(x, values, bottom=bottom, color=aia_cmap(int(channel))(0.65), label=f"{int(channel)} Å", width=1.0)
        bottom += values
    ax.set_xlim(-0.5, len(x) - 0.5)
    ax.set_ylim(0, 1)
    ax.set_xlabel("flaring frame (time order)")
    ax.set_ylabel("share of |attribution|")
    ax.set_title(title, fontsize=10)
    ax.legend(ncols=6, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    return ax


# --------------------------------------------------------------------------- evaluation (tables of flarelib.evaluate)

def _evaluation_title(table, what: str) -> str:
    """``"SYNTHETIC synthetic-sun-default, 1h/24h: what"`` from a metrics table's dataset/synthetic/target columns."""
    kind = data_kind(bool(table["synthetic"].iloc[0])) if "synthetic" in table and len(table) else "REAL?"
    dataset = str(table["dataset"].iloc[0]) if "dataset" in table and len(table) else ""
    name = dataset.split(" ", 1)[1] if dataset.split(" ", 1)[0] in ("REAL", "SYNTHETIC") and " " in dataset else dataset
    targets = ", ".join(dict.fromkeys(describe_target(str(t)) for t in table["target"])) if "target" in table else ""
    return f"{kind} {name} ({targets}): {what}"


def plot_reliability(table, *, threshold: str = ">=M1", axes=None):
    """Reliability diagram from :func:`flarelib.evaluate.reliability_table`: mean forecast probability vs
    observed frequency per bin for each predictor (top), and the sample count per bin (bottom, log)."""
    rows = table[table["threshold"] == threshold]
    if axes is None:
        _, axes = plt.subplots(2, 1, figsize=(4.6, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top, bottom = axes
    top.plot([0, 1], [0, 1], "k:", lw=0.8, label="perfect reliability")
    for name, group in rows.groupby("predictor", sort=False):
        shown = group[group["count"] > 0]
        top.plot(shown["mean_forecast"], shown["observed_frequency"], "o-", ms=4, label=name)
        centres = 0.5 * (group["bin_lo"] + group["bin_hi"])
        bottom.step(centres, group["count"].clip(lower=0.8), where="mid", label=name)
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("observed frequency")
    top.legend(fontsize=7)
    bottom.set_yscale("log")
    bottom.set_ylabel("samples")
    bottom.set_xlabel(f"forecast probability P({threshold.replace('>=', '≥')})")
    split = rows["split"].iloc[0] if len(rows) else ""
    top.set_title(_evaluation_title(table, f"reliability {_threshold_words(threshold)}, {split} block"), fontsize=9)
    top.figure.tight_layout()
    return axes


def plot_roc(table, *, threshold: str = ">=M1", ax=None):
    """ROC curves (POD vs POFD) from :func:`flarelib.evaluate.roc_table`, with each predictor's AUC."""
    rows = table[table["threshold"] == threshold]
    if ax is None:
        _, ax = plt.subplots(figsize=(4.4, 4.2))
    ax.plot([0, 1], [0, 1], "k:", lw=0.8, label="no skill")
    for name, group in rows.groupby("predictor", sort=False):
        ax.plot(group["POFD"], group["POD"], "-", lw=1.2, label=f"{name} (AUC {group['AUC'].iloc[0]:.2f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("POFD (false alarms / non-events)")
    ax.set_ylabel("POD")
    ax.legend(fontsize=7, loc="lower right")
    split = rows["split"].iloc[0] if len(rows) else ""
    ax.set_title(_evaluation_title(table, f"ROC {_threshold_words(threshold)}, {split} block"), fontsize=9)
    return ax


def plot_tss_vs_threshold(table, *, threshold: str = ">=M1", ax=None):
    """TSS vs probability threshold from :func:`flarelib.evaluate.tss_threshold_table`, with a dashed line at
    each predictor's chosen threshold (chosen on the validation block)."""
    rows = table[table["threshold"] == threshold]
    if ax is None:
        _, ax = plt.subplots(figsize=(5.0, 3.6))
    for name, group in rows.groupby("predictor", sort=False):
        (line,) = ax.plot(group["prob_threshold"], group["TSS"], "-", lw=1.2, label=name)
        ax.axvline(group["chosen"].iloc[0], color=line.get_color(), ls="--", lw=0.8)
    ax.axhline(0, color="0.5", lw=0.6)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"probability threshold for a yes forecast of {threshold.replace('>=', '≥')}")
    ax.set_ylabel("TSS")
    ax.legend(fontsize=7)
    split = rows["split"].iloc[0] if len(rows) else ""
    ax.set_title(_evaluation_title(table, f"TSS vs threshold, {split} block (dashed: chosen)"), fontsize=9)
    return ax


def plot_probability_diagnostics(reliability, roc, tss, *, threshold: str = ">=M1"):
    """One row of three panels for class ``threshold``: :func:`plot_reliability`, :func:`plot_roc` and
    :func:`plot_tss_vs_threshold` of the same forecasts (tables from :func:`flarelib.evaluate.reliability_table`,
    ``roc_table``, ``tss_threshold_table``), with one title."""
    fig = plt.figure(figsize=(12.5, 4.4))
    grid = fig.add_gridspec(2, 3, height_ratios=[3, 1], width_ratios=[1, 1, 1.1])
    top = fig.add_subplot(grid[0, 0])
    plot_reliability(reliability, threshold=threshold, axes=(top, fig.add_subplot(grid[1, 0], sharex=top)))
    plot_roc(roc, threshold=threshold, ax=fig.add_subplot(grid[:, 1]))
    plot_tss_vs_threshold(tss, threshold=threshold, ax=fig.add_subplot(grid[:, 2]))
    for ax in fig.axes:
        ax.set_title("")
    split = reliability["split"].iloc[0] if len(reliability) else ""
    fig.suptitle(_evaluation_title(reliability, f"{_threshold_words(threshold)} probabilities on the {split} block: "
                                                "reliability, ROC, TSS against the yes threshold (dashed: chosen on "
                                                "validation)"), fontsize=10)
    fig.tight_layout()
    return fig


def _forest_panels(table, axes, *, width: float):
    """``(panels, axes)`` of a forest plot: one panel per (target, threshold) of ``table``, side by side, each
    ``width`` inches wide and as tall as its rows need (``axes`` as given, when given)."""
    panels = list(table.groupby(["target", "threshold"], sort=False))
    if axes is None:
        n_rows = max(len(g) for _, g in panels) if panels else 1
        _, axes = plt.subplots(1, max(len(panels), 1), figsize=(width * max(len(panels), 1), 0.4 * n_rows + 1.5),
                               squeeze=False)
        axes = axes[0]
    return panels, axes


def plot_skill_intervals(table, *, score: str = "TSS", axes=None):
    """Forest plot of a :func:`flarelib.evaluate.skill_table`: ``score`` with its bootstrap interval per
    predictor, one panel per (target, threshold)."""
    panels, axes = _forest_panels(table, axes, width=4.2)
    for ax, ((target, threshold), group) in zip(axes, panels):
        y = np.arange(len(group))[::-1]
        value = group[score].to_numpy(float)
        lo = value - group[f"{score}_lo"].to_numpy(float)
        hi = group[f"{score}_hi"].to_numpy(float) - value
        model = group["predictor"].str.startswith("FlareNet").to_numpy()
        for mask, color in ((model, "C3"), (~model, "C0")):
            ax.errorbar(value[mask], y[mask], xerr=[lo[mask], hi[mask]], fmt="o", color=color, ms=4, capsize=2)
        ax.set_yticks(y, group["predictor"])
        ax.axvline(0, color="0.5", lw=0.6)
        ax.set_xlabel(f"{score} (block bootstrap interval)")
        distinct = int(group["n_events_distinct"].max()) if "n_events_distinct" in group else -1
        events = f"{distinct} distinct events" if distinct >= 0 else f"{int(group['n_events'].max())} event samples"
        ax.set_title(f"{describe_target(str(target))}, {_threshold_words(threshold)} ({events})", fontsize=9)
    axes[0].figure.suptitle(_evaluation_title(table, f"{score} with intervals, {table['split'].iloc[0]} block"),
                            fontsize=10)
    axes[0].figure.tight_layout()
    return axes


def _threshold_words(threshold: str) -> str:
    return str(threshold).replace(">=", "≥")


def plot_paired(paired, *, score: str = "TSS", axes=None):
    """Forest plot of a :func:`flarelib.evaluate.paired_table`: the paired difference ``d{score}`` of each
    (predictor, reference) pair with its interval, one panel per (target, threshold). Right of 0: the
    predictor beats the reference; an interval that holds 0 is a tie."""
    panels, axes = _forest_panels(paired, axes, width=5.0)
    for ax, ((target, threshold), group) in zip(axes, panels):
        y = np.arange(len(group))[::-1]
        value = group[f"d{score}"].to_numpy(float)
        lo, hi = group[f"d{score}_lo"].to_numpy(float), group[f"d{score}_hi"].to_numpy(float)
        colour = np.where(lo > 0, "C2", np.where(hi < 0, "C3", "0.4"))
        for k in range(len(group)):
            ax.errorbar(value[k], y[k], xerr=[[value[k] - lo[k]], [hi[k] - value[k]]], fmt="o", ms=4, capsize=2,
                        color=colour[k])
        ax.set_yticks(y, [f"{a} − {b}" for a, b in zip(group["predictor"], group["reference"])], fontsize=8)
        ax.axvline(0, color="0.3", lw=0.8)
        block_days = float(group["block_hours"].iloc[0]) / 24
        ax.set_xlabel(f"Δ{score} (paired bootstrap, {block_days:.0f}-day blocks)")
        ax.set_title(f"{describe_target(str(target))}, {_threshold_words(threshold)} "
                     f"({int(group['n_events_distinct'].iloc[0])} distinct events)", fontsize=9)
    axes[0].figure.suptitle(_evaluation_title(paired, f"paired Δ{score} (green: beats, red: loses, grey: tie)"),
                            fontsize=10)
    axes[0].figure.tight_layout()
    return axes


def plot_memory(lags_hours, rho, *, tau_hours: float, block_hours: float, title: str, ax=None):
    """The autocorrelation of a target's event series against the lag (hours), with its integrated
    autocorrelation time ``tau`` and the bootstrap block chosen from it (:func:`flarelib.evaluate.memory_block`)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.0))
    days = np.asarray(lags_hours, float) / 24
    ax.plot(days, rho, color="C0", lw=1.2, label="autocorrelation of the event series")
    ax.axhline(0, color="0.5", lw=0.6)
    ax.axvline(tau_hours / 24, color="C1", ls="--", lw=1, label=f"integrated time τ = {tau_hours / 24:.1f} d")
    ax.axvline(block_hours / 24, color="C3", ls=":", lw=1.2, label=f"bootstrap block = {block_hours / 24:.0f} d")
    ax.set_xlabel("lag (days)")
    ax.set_ylabel("ρ")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    return ax


def plot_activity(cube: xr.Dataset, *, axes=None):
    """A cube's activity over its span: regions on the disk, the daily GOES maximum and flares per day.

    Needs ``region_on_disk`` (synthetic cubes); flares come from the cube's event list (``event_peak``),
    those peaking inside the cube's span.
    """
    if axes is None:
        _, axes = plt.subplots(3, 1, figsize=(10, 6), sharex=True, layout="constrained")
    regions = cube["region_on_disk"].sum("region").to_series().resample("1D").mean()
    axes[0].plot(regions.index, regions.values, color="tab:orange")
    axes[0].set_ylabel("regions on disk\n(daily mean)")
    daily_max = cube["xrsb"].to_series().resample("1D").max()
    axes[1].semilogy(daily_max.index, daily_max.values, color="k", lw=0.8)
    add_class_bands(axes[1])
    _flux_ylim(axes[1], daily_max.values)
    axes[1].set_ylabel("daily max XRS-B\n(W/m²)")
    peaks = cube["event_peak"].to_series()
    inside = peak_steps(cube["time"].values, peaks.values)[1]
    peaks, flux = peaks[inside], cube["event_peak_flux"].to_series()[inside]
    for letter in ("C", "M"):
        daily = (flux >= FLARE_CLASS_THRESHOLDS[letter]).groupby(peaks.dt.floor("1D")).sum()
        axes[2].plot(daily.index, daily.values, ".", ms=4, color=CLASS_COLOURS[letter], label=f"≥{letter}1")
    axes[2].set_ylabel("flares per day")
    axes[2].legend(loc="upper left", fontsize=8)
    _date_axis(axes[2])
    axes[0].set_title(f"{data_kind(cube)} {cube.attrs.get('name', '')}: activity over the span")
    return axes


def _flux_ylim(ax, flux) -> None:
    """Limit a log flux axis to its data (a factor 3 below, 5 above), not to the class bands' full range."""
    flux = np.asarray(flux, dtype=float)
    flux = flux[np.isfinite(flux) & (flux > 0)]
    if flux.size:
        ax.set_ylim(max(flux.min() / 3, 1e-9), flux.max() * 5)


def _date_axis(ax) -> None:
    """Concise date ticks (``Jan 03``, ``2031``) that do not run into each other."""
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def plot_regions(cube: xr.Dataset, time_index: int, *, channel: int = 94, ax=None):
    """One frame of ``channel`` (DN/s, log, with a colorbar) with the outline and number of every region in
    ``region_id`` (synthetic cubes)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.6, 5), layout="constrained")
    image = cube["aia"].isel(time=time_index).sel(channel=channel).values
    ids = cube["region_id"].isel(time=time_index).values
    lo, hi = frame_range(image)
    shown = ax.imshow(np.clip(image, lo, None), origin="lower", cmap=aia_cmap(channel), norm=LogNorm(lo, hi))
    dn_colorbar(shown, ax, f"{channel} Å, DN/s", shrink=0.8, pad=0.02)
    for region in np.unique(ids[ids > 0]):
        ax.contour(ids == region, levels=[0.5], colors="cyan", linewidths=0.8)
        y, x = np.argwhere(ids == region).mean(axis=0)
        ax.text(x, y, str(int(region) - 1), color="white", fontsize=7, ha="center", va="center")
    ax.set_title(f"{data_kind(cube)} {cube.attrs.get('name', '')}: {channel} Å,\n"
                 f"{_minute(cube['time'].values[time_index])} UTC, regions outlined and numbered", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


# --------------------------------------------------------------------------- explanations at their own resolution

def _map_extent(values: np.ndarray, image_shape) -> tuple[float, float, float, float]:
    """imshow extent that lays a (my, mx) map over a (ny, nx) image, cell by cell."""
    ny, nx = image_shape if image_shape is not None else values.shape
    return (-0.5, nx - 0.5, -0.5, ny - 0.5)


def plot_explanation_maps(cube: xr.Dataset, maps: dict, *, step: int = 0, channel: int = 131, mask=None,
                          ncols: int = 5):
    """The AIA frame of ``channel`` and each map at ``step`` (index into the maps' time), each with a colorbar.

    ``maps`` maps a label to ``DataArray(time, y, x)`` at its own resolution (a CAM's 8×8 cells
    are drawn as cells over the image) or ``DataArray(time, channel, y, x)`` (``channel`` is shown).
    Signed maps use a symmetric red-blue scale, non-negative maps a sequential one. ``mask``
    (ny, nx), e.g. the synthetic ground truth, is drawn as a cyan contour on every panel.
    """
    first = next(iter(maps.values()))
    t = int(first["time_index"].values[step])
    n = len(maps) + 1
    rows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(rows, min(n, ncols), figsize=(2.9 * min(n, ncols), 2.7 * rows), squeeze=False)
    axes = axes.ravel()
    frame = cube["aia"].isel(time=t).sel(channel=channel).values
    lo, hi = frame_range(frame)
    shown = axes[0].imshow(np.clip(frame, lo, None), origin="lower", cmap=aia_cmap(channel), norm=LogNorm(lo, hi))
    fig.colorbar(shown, ax=axes[0], fraction=0.046, pad=0.03).set_label("DN/s", fontsize=8)
    axes[0].set_title(f"{channel} Å", fontsize=9)
    for ax, (name, da) in zip(axes[1:], maps.items()):
        values = da.isel(time=step)
        if "channel" in values.dims:
            values = values.sel(channel=channel)
        values = np.asarray(values.values, float)
        extent = _map_extent(values, da.attrs.get("image_shape", frame.shape))
        if np.nanmin(values) < 0:
            limit = float(np.nanmax(np.abs(values))) or 1.0
            img = ax.imshow(values, origin="lower", cmap="RdBu_r", vmin=-limit, vmax=limit, extent=extent)
        else:
            img = ax.imshow(values, origin="lower", cmap="magma", vmin=0, vmax=float(np.nanmax(values)) or 1.0,
                            extent=extent)
        bar = fig.colorbar(img, ax=ax, fraction=0.046, pad=0.03)
        bar.ax.tick_params(labelsize=7)
        units = da.attrs.get("units", "")
        if units:
            bar.set_label(units, fontsize=7)
        ax.set_title(f"{name}\n({values.shape[0]}×{values.shape[1]})", fontsize=8)
    for ax in axes[:n]:
        if mask is not None and np.asarray(mask).any():
            ax.contour(np.asarray(mask, float), levels=[0.5], colors="cyan", linewidths=0.8)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[n:]:
        ax.axis("off")
    when = np.datetime_as_string(cube["time"].values[t], unit="m")
    drawn = " (cyan: the region that flares)" if mask is not None and np.asarray(mask).any() else ""
    fig.suptitle(f"{data_kind(cube)} {cube.attrs.get('name', '')}: {when} UTC{drawn}", fontsize=10)
    fig.tight_layout()
    return axes


def plot_randomization_rhos(table, *, title: str, ax=None):
    """Cascading randomization: Spearman ρ on absolute (solid) and signed (dashed) values, per method.

    ``table`` is :func:`flarelib.explain.randomization_table`'s; a NaN ρ (a constant map) is marked ×
    on the axis's top edge: it counts as a failure."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 3.4))
    for k, (method, rows) in enumerate(table.groupby("method", sort=False)):
        color = f"C{k}"
        x = np.arange(len(rows))
        ax.plot(x, rows["spearman_abs"], "-o", ms=4, color=color, label=f"{method} |·|")
        ax.plot(x, rows["spearman_signed"], "--", color=color, lw=1, label=f"{method} signed")
        nan = ~np.isfinite(rows["spearman_abs"].to_numpy(float))
        ax.plot(x[nan], np.full(nan.sum(), 1.02), "x", color=color, ms=7)
        ax.set_xticks(x, rows["randomized_to"], rotation=30, ha="right", fontsize=8)
    ax.axhline(0, color="0.5", lw=0.6)
    ax.axhline(0.2, color="0.5", lw=0.6, ls=":")
    ax.set_ylim(-1, 1.05)
    ax.set_xlabel("layers randomized, from the output down to")
    ax.set_ylabel("Spearman ρ with original")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncols=2, loc="lower left")
    ax.figure.tight_layout()
    return ax


def plot_filter_stills(cube: xr.Dataset, survey, block: str, *, filters=None, frames=(0,), channel: int = 94):
    """A still of the filter browser for a few frames (its static fallback: renders without a kernel).

    One row per frame (positions in the survey's time): the ``channel`` Å image and the top
    ``filters`` of ``block`` (default: the 4 best by flare ratio), with the regions that will
    flare (cyan) and the other regions (white) drawn as contours.
    """
    acts = survey.activations[block]
    filters = list(survey.ranking[block].index[:4] if filters is None else filters)
    frames = list(frames)
    fig, axes = plt.subplots(len(frames), len(filters) + 1, figsize=(2.2 * (len(filters) + 1), 2.3 * len(frames)),
                             squeeze=False)
    for row, k in zip(axes, frames):
        t = int(acts["time_index"].values[k])
        frame = cube["aia"].isel(time=t).sel(channel=channel).values
        lo, hi = frame_range(frame)
        row[0].imshow(np.clip(frame, lo, None), origin="lower", cmap=aia_cmap(channel), norm=LogNorm(lo, hi))
        row[0].set_ylabel(np.datetime_as_string(cube["time"].values[t], unit="m").replace("T", "\n"), fontsize=7)
        shape = acts.attrs.get("image_shape", frame.shape)
        for ax, f in zip(row[1:], filters):
            ax.imshow(acts.isel(time=k).sel(filter=f).values, origin="lower", cmap="magma",
                      extent=_map_extent(acts.isel(time=k, filter=0).values, shape))
        for ax in row:
            for mask, color in ((survey.regions.will_flare[k], "cyan"), (survey.regions.will_not[k], "white")):
                if mask.any():
                    ax.contour(mask.astype(float), levels=[0.5], colors=color, linewidths=0.7)
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title(f"{channel} Å", fontsize=9)
    for ax, f in zip(axes[0, 1:], filters):
        ratio = survey.ranking[block].loc[f, "flare_ratio"]
        ax.set_title(f"filter {f} ({ratio:.1f}×)", fontsize=9)
    fig.suptitle(f"{data_kind(cube)} {cube.attrs.get('name', '')}: {block}, top filters by flare ratio "
                 f"(cyan: will flare in {survey.regions.window}; white: will not)", fontsize=9)
    fig.tight_layout()
    return axes


def plot_lesson(table, *, x: str, group: str | None = None, score: str = "TSS", title: str = "", ax=None):
    """One lesson of :mod:`flarelib.experiments`: ``score`` (>= M1) with its 90 % interval for every run,
    against column ``x``, one colour per ``group``; seeds side by side. The title names the data set."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.4))
    groups = list(table.groupby(group, sort=False)) if group else [("", table)]
    categories = list(dict.fromkeys(table[x].tolist()))
    numeric = all(isinstance(v, (int, float, np.integer, np.floating)) for v in categories)
    for k, (name, rows) in enumerate(groups):
        seeds = sorted(rows["seed"].unique())
        for j, seed in enumerate(seeds):
            r = rows[rows["seed"] == seed]
            pos = r[x].to_numpy(float) if numeric else np.array([categories.index(v) for v in r[x]], float)
            shift = (j - (len(seeds) - 1) / 2) * 0.06 + (k - (len(groups) - 1) / 2) * 0.18
            pos = pos * (1 + shift * 0.1) if numeric else pos + shift
            value = r[score].to_numpy(float)
            ax.errorbar(pos, value, yerr=[value - r[f"{score}_lo"].to_numpy(float),
                                          r[f"{score}_hi"].to_numpy(float) - value],
                        fmt="o-" if numeric else "o", color=f"C{k}", ms=4, capsize=2, lw=0.8,
                        label=str(name) if j == 0 and group else None)
    if numeric:
        ax.set_xscale("log")
        ax.set_xticks(categories, [f"{v:g}" for v in categories])
    else:
        ax.set_xticks(range(len(categories)), categories, rotation=15, ha="right")
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(f"{score} >= M1 (90% interval)")
    ax.axhline(0, color="0.5", lw=0.6)
    if group:
        ax.legend(fontsize=8, title=group.replace("_", " "))
    dataset = table["dataset"].iloc[0] if "dataset" in table else ""
    ax.set_title(f"{title} ({dataset}; {table['seed'].nunique()} seed(s))", fontsize=9)
    ax.figure.tight_layout()
    return ax


# --------------------------------------------------------------------------- the real Sun

def plot_flares_per_month(counts, *, title: str, ax=None):
    """Flares per month by class (a :func:`flarelib.cube.noaa.flares_per_month` table), log scale: the solar cycle in
    the event list."""
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3.0), layout="constrained")
    months = counts.index.to_timestamp()
    for letter in counts.columns:
        ax.step(months, counts[letter].clip(lower=0.5), where="mid", lw=0.9,
                color=CLASS_COLOURS.get(letter, None), label=f"{letter} flares")
    ax.set_yscale("log")
    ax.set_ylim(0.7, None)
    ax.set_ylabel("flares per month")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, ncols=3, loc="upper right")
    return ax


def plot_flare_positions(cube: xr.Dataset, pixels, *, step: int = 0, channel: int = 94, title: str = "", ax=None):
    """One frame of a real cube (``channel``, DN/s, log) with the flares of ``pixels`` (from
    :func:`flarelib.cube.noaa.flare_pixels` with the cube's shape: ``x_cube``, ``y_cube``) marked and labelled
    with their class and peak time."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 4.8), layout="constrained")
    image = cube["aia"].isel(time=step).sel(channel=channel).values
    lo, hi = frame_range(image)
    shown = ax.imshow(np.clip(image, lo, None), origin="lower", cmap=aia_cmap(channel), norm=LogNorm(lo, hi))
    dn_colorbar(shown, ax, f"{channel} Å, DN/s", shrink=0.8, pad=0.02)
    for _, row in pixels.dropna(subset=["x_cube"]).iterrows():
        ax.plot(row["x_cube"], row["y_cube"], marker="+", ms=14, mew=1.6, color="cyan")
        ax.annotate(f"{row['goes_class']} {row['peak']:%H:%M}", (row["x_cube"], row["y_cube"]),
                    xytext=(6, 6), textcoords="offset points", color="cyan", fontsize=8)
    ax.set_title(title or f"{data_kind(cube)} {cube.attrs.get('name', '')}: {channel} Å, "
                 f"{_minute(cube['time'].values[step])} UTC", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax
