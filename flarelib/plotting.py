"""Plots for the notebooks. Every title says whether the data are REAL or SYNTHETIC."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.colors import LogNorm

from flarelib.goes import FLARE_CLASS_THRESHOLDS, flare_class_label
from flarelib.labels import data_kind


def aia_cmap(channel: int):
    """The sunpy colormap of an AIA channel (``sdoaia171`` ...)."""
    import sunpy.visualization.colormaps  # noqa: F401  (registers the colormaps)

    return plt.get_cmap(f"sdoaia{int(channel)}")


def frame_range(image: np.ndarray) -> tuple[float, float]:
    """Display range (DN/s) of an AIA frame for a log scale: 1st and 99.8th percentile of its positive pixels."""
    positive = image[np.isfinite(image) & (image > 0)]
    lo, hi = np.percentile(positive, [1, 99.8]) if positive.size else (1.0, 10.0)
    return float(lo), float(hi)


def plot_channels(cube: xr.Dataset, time_index: int = 0, *, mask: bool = True, axes=None):
    """One panel per channel of a time step, log-scaled DN/s, with sunpy's AIA colormaps.

    Synthetic cubes draw the ground-truth flare mask as a contour when ``mask``.
    """
    from matplotlib.colors import LogNorm

    channels = cube.channel.values
    if axes is None:
        fig, axes = plt.subplots(1, len(channels), figsize=(2.6 * len(channels), 3), squeeze=False)
        axes = axes[0]
    frame = cube.aia.isel(time=time_index).values
    for ax, channel, image in zip(axes, channels, frame):
        lo, hi = frame_range(image)
        ax.imshow(np.clip(image, lo, None), origin="lower", cmap=aia_cmap(channel), norm=LogNorm(lo, hi))
        if mask and "flare_mask" in cube and cube.flare_mask.isel(time=time_index).values.any():
            ax.contour(cube.flare_mask.isel(time=time_index).values, levels=[0.5], colors="cyan", linewidths=0.8)
        exptime = float(cube.exptime.isel(time=time_index).sel(channel=channel))
        ax.set_title(f"{channel} Å  (exp {exptime:.3g} s)", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    t = np.datetime_as_string(cube.time.values[time_index], unit="s")
    axes[0].figure.suptitle(f"{data_kind(cube)} {cube.attrs.get('name', '')}: {t} UTC, DN/s (log)")
    axes[0].figure.tight_layout()
    return axes


def add_class_bands(ax, *, labels: bool = True) -> None:
    """Shade the GOES class bands (A ... X) on a log flux axis."""
    bounds = list(FLARE_CLASS_THRESHOLDS.items())
    for k, (letter, lo) in enumerate(bounds):
        hi = bounds[k + 1][1] if k + 1 < len(bounds) else 1e-2
        ax.axhspan(lo, hi, color="0.5" if k % 2 else "0.85", alpha=0.25, lw=0)
        if labels:
            ax.text(1.005, np.sqrt(lo * min(hi, 1e-3)), letter, transform=ax.get_yaxis_transform(), va="center",
                    fontsize=9)


def add_event_markers(ax, events: xr.Dataset, *, start=None, end=None) -> int:
    """Dashed lines at the peaks of listed flares (e.g. HEK/SWPC events), labelled with their class.

    ``events`` has the ``event_peak`` / ``event_class`` variables of
    :func:`flarelib.align.events_dataset`; only peaks inside ``[start, end]`` are drawn.
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
        ax.annotate(f"{flare_class_label(peak)} at {np.datetime_as_string(xrs.time.values[k], unit='m')}",
                    (xrs.time.values[k], peak), xytext=(10, 5), textcoords="offset points")
    lo = np.nanmin(xrs.xrsb.values[finite]) if finite.any() else 1e-8
    hi = np.nanmax(xrs.xrsb.values[finite]) if finite.any() else 1e-4
    ax.set_ylim(max(lo / 3, 1e-9), hi * 5)
    ax.set_ylabel("W m$^{-2}$")
    scaling = xrs.attrs.get("goes_scaling", "")
    ax.set_title(title or f"{data_kind(xrs)} {xrs.attrs.get('goes_satellite', '')} XRS-B ({scaling})")
    return ax


def plot_exposure_normalization(table, *, channel: int = 193, title: str = ""):
    """Raw DN vs DN/s of one channel over time (the table of :func:`flarelib.prep.exposure_table`)."""
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
    top.set_ylabel("XRS-B W m$^{-2}$")
    for channel in tot.channel.values:
        series = tot.sel(channel=channel).values
        bottom.semilogy(sub.time.values, series / np.nanmedian(series), lw=0.8, label=f"{channel} Å")
    bottom.set_ylabel("AIA total / median")
    bottom.legend(loc="upper left", fontsize=8)
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


# --------------------------------------------------------------------------- training and evaluation

SPLIT_COLOURS = {"train": "tab:blue", "val": "tab:orange", "test": "tab:green"}


def plot_split(dm, *, ax=None):
    """The target flux over time, coloured by split: shows the blocks and the purged gaps."""
    dm.setup()
    if ax is None:
        _, ax = plt.subplots(figsize=(11, 3.2))
    flux = dm.target.flux
    ax.semilogy(dm.times, np.where(flux > 0, flux, np.nan), color="0.75", lw=0.6, label="not used (gap / no data)")
    for name, idx in dm.split_index.items():
        ax.semilogy(dm.times[idx], flux[idx], ".", ms=1.5, color=SPLIT_COLOURS[name], label=f"{name} ({idx.size})")
    add_class_bands(ax)
    ax.set_title(f"{data_kind(dm)} {dm.cube_attrs.get('name', '')}: target {dm.target.name} by split")
    ax.set_ylabel("target flux (W/m²)")
    ax.legend(loc="upper left", fontsize=8, markerscale=6, ncols=4)
    return ax


def plot_loss_curves(curves, *, title: str, ax=None):
    """Training and validation loss per epoch from :func:`flarelib.flarenet.metrics_frame`."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    for column, style in (("train_loss_epoch", "-o"), ("val_loss", "-s"), ("val_mae", ":^")):
        if column in curves:
            ax.plot(curves.index, curves[column], style, ms=3, label=column)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (MSE in dex², + BCE) / MAE (dex)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return ax


def plot_pred_vs_true(true_log, predictions: dict, *, title: str, axes=None):
    """Predicted vs true log10 flux, one panel per predictor, with the C and M thresholds."""
    if axes is None:
        _, axes = plt.subplots(1, len(predictions), figsize=(3.3 * len(predictions), 3.4), squeeze=False,
                               sharex=True, sharey=True)
        axes = axes[0]
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
    axes[0].set_ylabel("predicted log10 flux")
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

def plot_attributions(cube: xr.Dataset, attributions: dict, *, step: int = 0, channel: int = 131, mask=None,
                      axes=None):
    """The AIA frame of ``channel`` and each method's map at ``step`` (index into the attributions' time).

    ``attributions`` maps a method name to a DataArray from :func:`flarelib.explain.attribute`;
    ``mask`` (ny, nx), e.g. the synthetic ground truth, is drawn as a cyan contour.
    """
    from matplotlib.colors import LogNorm

    first = next(iter(attributions.values()))
    t = int(first["time_index"].values[step])
    if axes is None:
        _, axes = plt.subplots(1, len(attributions) + 1, figsize=(2.7 * (len(attributions) + 1), 3.1))
    frame = cube["aia"].isel(time=t).sel(channel=channel).values
    lo, hi = frame_range(frame)
    axes[0].imshow(np.clip(frame, lo, None), origin="lower", cmap=aia_cmap(channel), norm=LogNorm(lo, hi))
    axes[0].set_title(f"{channel} Å (DN/s)", fontsize=9)
    for ax, (name, attr) in zip(axes[1:], attributions.items()):
        values = attr.isel(time=step).sel(channel=channel).values
        limit = float(np.nanmax(np.abs(values))) or 1.0
        ax.imshow(values, origin="lower", cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(name, fontsize=9)
    for ax in axes:
        if mask is not None and np.asarray(mask).any():
            ax.contour(np.asarray(mask), levels=[0.5], colors="cyan", linewidths=0.8)
        ax.set_xticks([])
        ax.set_yticks([])
    when = np.datetime_as_string(cube["time"].values[t], unit="m")
    axes[0].figure.suptitle(f"{data_kind(cube)} {cube.attrs.get('name', '')}: {when} UTC "
                            "(red raises the predicted flux, blue lowers it)", fontsize=10)
    axes[0].figure.tight_layout()
    return axes


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


def plot_randomization(table, *, title: str, ax=None):
    """Spearman rho between original and cascading-randomized maps, per method (Adebayo et al. 2018)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.2))
    for method, rows in table.groupby("method", sort=False):
        ax.plot(rows["randomized_down_to"], rows["spearman_rho"], "-o", ms=4, label=method)
    ax.axhline(0, color="0.5", lw=0.6)
    ax.set_ylim(-1, 1.05)
    ax.set_xlabel("layers randomized, from the output down to")
    ax.set_ylabel("Spearman ρ with original")
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", rotation=45)
    ax.legend(fontsize=8)
    return ax


def plot_activations(acts: xr.DataArray, filters, *, step: int = 0, title: str, axes=None):
    """Activation maps of the given ``filters`` of one layer at one step."""
    filters = list(filters)
    if axes is None:
        _, axes = plt.subplots(1, len(filters), figsize=(2.3 * len(filters), 2.5), squeeze=False)
        axes = axes[0]
    for ax, f in zip(axes, filters):
        ax.imshow(acts.isel(time=step).sel(filter=f).values, origin="lower", cmap="magma")
        ax.set_title(f"filter {f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].figure.suptitle(title, fontsize=10)
    axes[0].figure.tight_layout()
    return axes


# --------------------------------------------------------------------------- evaluation (tables of flarelib.metrics)

def _evaluation_title(table, what: str) -> str:
    """``"SYNTHETIC synthetic-sun-default, 1h/24h: what"`` from a metrics table's dataset/synthetic/target columns."""
    kind = data_kind(bool(table["synthetic"].iloc[0])) if "synthetic" in table and len(table) else "REAL?"
    dataset = str(table["dataset"].iloc[0]) if "dataset" in table and len(table) else ""
    name = dataset.split(" ", 1)[1] if dataset.split(" ", 1)[0] in ("REAL", "SYNTHETIC") and " " in dataset else dataset
    targets = ", ".join(dict.fromkeys(str(t) for t in table["target"])) if "target" in table else ""
    return f"{kind} {name} ({targets}): {what}"


def plot_reliability(table, *, threshold: str = ">=M1", axes=None):
    """Reliability diagram from :func:`flarelib.metrics.reliability_table`: mean forecast probability vs
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
    top.set_title(_evaluation_title(table, f"reliability {threshold}, {split} block"), fontsize=9)
    top.figure.tight_layout()
    return axes


def plot_roc(table, *, threshold: str = ">=M1", ax=None):
    """ROC curves (POD vs POFD) from :func:`flarelib.metrics.roc_table`, with each predictor's AUC."""
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
    ax.set_title(_evaluation_title(table, f"ROC {threshold}, {split} block"), fontsize=9)
    return ax


def plot_tss_vs_threshold(table, *, threshold: str = ">=M1", ax=None):
    """TSS vs probability threshold from :func:`flarelib.metrics.tss_threshold_table`, with a dashed line at
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


def plot_skill_intervals(table, *, score: str = "TSS", axes=None):
    """Forest plot of a :func:`flarelib.metrics.skill_table`: ``score`` with its bootstrap interval per
    predictor, one panel per (target, threshold)."""
    panels = list(table.groupby(["target", "threshold"], sort=False))
    if axes is None:
        n_rows = max(len(g) for _, g in panels) if panels else 1
        _, axes = plt.subplots(1, max(len(panels), 1), figsize=(4.2 * max(len(panels), 1), 0.4 * n_rows + 1.4),
                               squeeze=False)
        axes = axes[0]
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
        ax.set_xlabel(f"{score} (day-block bootstrap interval)")
        events = int(group["n_events"].max())
        ax.set_title(f"{target}, {threshold} ({events} events)", fontsize=9)
    axes[0].figure.suptitle(_evaluation_title(table, f"{score} with intervals, {table['split'].iloc[0]} block"),
                            fontsize=10)
    axes[0].figure.tight_layout()
    return axes


def plot_activity(cube: xr.Dataset, *, axes=None):
    """A cube's activity over its span: regions on the disk, the daily GOES maximum and flares per day.

    Needs ``region_on_disk`` (synthetic cubes); flares come from the cube's event list (``event_peak``).
    """
    if axes is None:
        _, axes = plt.subplots(3, 1, figsize=(10, 6), sharex=True)
    regions = cube["region_on_disk"].sum("region").to_series().resample("1D").mean()
    axes[0].plot(regions.index, regions.values, color="tab:orange")
    axes[0].set_ylabel("regions on disk")
    daily_max = cube["xrsb"].to_series().resample("1D").max()
    axes[1].semilogy(daily_max.index, daily_max.values, color="k", lw=0.8)
    add_class_bands(axes[1])
    axes[1].set_ylabel("daily max XRS-B (W/m²)")
    peaks = cube["event_peak"].to_series()
    flux = cube["event_peak_flux"].to_series()
    for letter, colour in (("C", "tab:green"), ("M", "tab:red")):
        daily = (flux >= FLARE_CLASS_THRESHOLDS[letter]).groupby(peaks.dt.floor("1D")).sum()
        axes[2].plot(daily.index, daily.values, ".", ms=3, color=colour, label=f"≥{letter}1")
    axes[2].set_ylabel("flares per day")
    axes[2].legend(loc="upper left", fontsize=8)
    axes[0].set_title(f"{data_kind(cube)} {cube.attrs.get('name', '')}: activity over the span")
    return axes


def plot_regions(cube: xr.Dataset, time_index: int, *, channel: int = 94, ax=None):
    """One frame of ``channel`` with the outline and number of every region in ``region_id`` (synthetic cubes)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    image = cube["aia"].isel(time=time_index).sel(channel=channel).values
    ids = cube["region_id"].isel(time=time_index).values
    lo, hi = frame_range(image)
    ax.imshow(np.clip(image, lo, None), origin="lower", cmap=aia_cmap(channel), norm=LogNorm(lo, hi))
    for region in np.unique(ids[ids > 0]):
        ax.contour(ids == region, levels=[0.5], colors="cyan", linewidths=0.8)
        y, x = np.argwhere(ids == region).mean(axis=0)
        ax.text(x, y, str(int(region) - 1), color="white", fontsize=7, ha="center", va="center")
    when = np.datetime_as_string(cube["time"].values[time_index], unit="m")
    ax.set_title(f"{data_kind(cube)} {cube.attrs.get('name', '')}: {channel} Å, {when} UTC, regions outlined",
                 fontsize=9)
    ax.set_axis_off()
    return ax
