"""The figures of notebooks 01-03: AIA panels (stretch, colorbars, saturation), the GOES class bands and the
class-imbalance chart, and the summaries behind them."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from flarelib.evaluate import summary  # noqa: E402
from flarelib.show import plotting


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def real_flare(catalog, tmp_path_factory):
    return catalog.open("sample-flare-2011-02-15", build_dir=tmp_path_factory.mktemp("flare"), progress=False).load()


def _faint_disk(seed: int = 0) -> np.ndarray:
    """A 94 Å-like frame: a disk of 0.2-5 DN/s, off-disk pixels at 0 +- read noise, one bright flare pixel."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:64, :64]
    disk = (x - 32) ** 2 + (y - 32) ** 2 < 26 ** 2
    image = np.where(disk, rng.lognormal(0, 0.8, (64, 64)).clip(0.2, 5), rng.normal(0, 1e-3, (64, 64)))
    image[30, 30] = 5000.0
    return image


def test_frame_range_keeps_a_faint_disk_in_view():
    """The blank synthetic 94 Å panel: near-zero off-disk pixels pulled the log stretch down 6-9 decades."""
    image = _faint_disk()
    lo, hi = plotting.frame_range(image)
    disk_median = float(np.median(image[image > 0.1]))
    assert lo >= np.median(image[image > 0]) / plotting.STRETCH_BELOW_MEDIAN * 0.999
    assert lo < 0.2 and hi >= 5  # the whole disk inside the range
    position = (np.log10(disk_median) - np.log10(lo)) / (np.log10(hi) - np.log10(lo))
    assert 0.1 < position < 0.9  # the disk is not squeezed into one end of the colormap
    assert plotting.frame_range(np.zeros((4, 4))) == (1.0, 10.0)


def test_saturated_pixels_finds_the_clipped_plateau():
    image = _faint_disk()
    assert plotting.saturated_pixels(image) == 0  # one bright pixel is no plateau
    level = 16383 / 2.9
    image[20:30, 40] = level  # a bloomed column at the saturation level
    assert plotting.saturated_pixels(image, level) == 10
    assert plotting.saturated_pixels(image) == 10
    assert plotting.saturated_pixels(image, 2 * level) == 0  # a plateau below the full scale is not saturation
    assert plotting.saturated_pixels(np.full((3, 3), np.nan)) == 0


def test_the_real_flare_peak_saturates_171_and_211_only(real_flare):
    """Found from the pixels: 171 and 211 Å read the full scale at the 01:56 peak (335 Å in a few pixels); 193 Å
    with its 0.03 s flare-mode exposure does not."""
    peak = int(np.searchsorted(real_flare.time.values, np.datetime64("2011-02-15T01:56")))
    table = plotting.saturation_table(real_flare, [0, peak])
    assert {c for c, steps in table.items() if steps.get(peak, 0) > 500} == {171, 211}
    assert 193 not in table and 94 not in table and 131 not in table
    assert all(0 not in steps for steps in table.values())  # nothing before the flare
    caption = plotting.saturation_caption(real_flare, table)
    assert caption.startswith("SATURATED") and "171" in caption and "01:56" in caption


def test_plot_channels_one_stretch_per_channel_with_colorbars(real_flare):
    steps = [0, 3, 6]
    grid = plotting.plot_channels(real_flare, time_index=steps)
    assert grid.shape == (3, real_flare.sizes["channel"])
    for j in range(grid.shape[1]):
        norms = {(ax.images[0].norm.vmin, ax.images[0].norm.vmax) for ax in grid[:, j]}
        assert len(norms) == 1  # the same stretch in every row
    fig = grid[0, 0].figure
    bars = [ax for ax in fig.axes if ax not in grid.ravel()]
    assert len(bars) == real_flare.sizes["channel"]
    assert all("DN/s" in bar.get_xlabel() for bar in bars)
    title = fig._suptitle.get_text()
    assert title.startswith("REAL") and "SATURATED" in title and "171" in title
    assert "SATURATED" in grid[2, list(real_flare.channel.values).index(171)].get_title()
    assert "SATURATED" not in grid[0, 0].get_title()
    assert "01:56 UTC" in grid[2, 0].get_ylabel() and ":00 UTC" not in title  # times to the minute


def test_plot_channels_synthetic(small_synthetic):
    k = summary.biggest_flare_step(small_synthetic)
    steps = summary.steps_around(small_synthetic, k)
    assert steps == [k - 1, k, k + 1]
    axes = plotting.plot_channels(small_synthetic, time_index=k)
    assert axes.ndim == 1
    assert axes[0].figure._suptitle.get_text().startswith("SYNTHETIC")
    assert "exp" not in axes[0].get_title()  # the synthetic cube stores no exposure
    levels = plotting.saturation_levels(small_synthetic, k)
    assert levels[94] == pytest.approx(16383 / 2.9) and levels[171] == pytest.approx(16383 / 2.0)
    image = axes[0].images[0]  # 94 Å: the disk spans a good part of the colormap
    disk = small_synthetic.aia.isel(time=k).sel(channel=94).values
    spread = np.ptp(image.norm(np.percentile(disk[disk > np.median(disk) / 3], [10, 90])))
    assert spread > 0.15


def test_class_bands_label_inside_the_axes_only():
    time = pd.date_range("2021-01-01", periods=100, freq="1min").values
    flux = np.full(100, 4e-8)
    flux[60] = 7e-8
    xrs = xr.Dataset({"xrsb": ("time", flux)}, coords={"time": time},
                     attrs={"goes_satellite": "GOES-16", "goes_scaling": "science-quality"})
    ax = plotting.plot_goes(xrs)
    fig = ax.figure
    fig.canvas.draw()
    assert [t.get_text() for t in ax.texts] == ["A7.0 at 2021-01-01 01:00 UTC"]  # the class letters are no texts
    lo, hi = ax.get_ylim()
    assert lo > 1e-8 and hi < 1e-6  # the limits follow the data, not the bands
    labels = [t.get_text() for t in ax.child_axes[0].get_yticklabels() if lo <= t.get_position()[1] <= hi]
    assert labels == ["A", "B"]
    tight = fig.get_tightbbox(fig.canvas.get_renderer())
    assert tight.height < 1.3 * ax.get_window_extent().height / fig.dpi  # no blank band above or below
    assert ax.get_title().startswith("REAL")


def test_class_counts_name_partial_months_and_bars_are_not_stacked(small_synthetic):
    forecast = "lead60min_window1440min"
    by_month = summary.class_counts(small_synthetic, forecast, by="month")
    assert list(by_month.index) == ["2031-01", "2031-02 (4 of 28 days)"]
    totals = summary.class_count_table(small_synthetic, [forecast])
    assert list(totals.index) == ["nowcast", forecast]
    assert (totals.sum(axis=1) > 0).all()
    totals.loc["nowcast", "X"] = 2  # a rare class must stay visible
    axes = plotting.plot_class_counts(totals, by_month, title="SYNTHETIC test")
    bars = [p for p in axes[0].patches]
    assert all(p.get_y() == 0 for p in bars)  # side by side, never stacked
    assert axes[0].get_yscale() == "log" and axes[0].get_ylim()[0] < 1
    assert "2" in [t.get_text() for t in axes[0].texts]
    assert "(4 of 28 days)" in axes[1].get_xticklabels()[1].get_text()


def test_month_label_full_and_partial():
    times = pd.date_range("2031-01-01", "2031-03-01T05:00", freq="1h")
    labels = [summary.month_label(m, times) for m in pd.PeriodIndex(times.to_period("M").unique())]
    assert labels == ["2031-01", "2031-02", "2031-03 (1 of 31 days)"]


def test_busiest_step(small_synthetic):
    k = summary.busiest_step(small_synthetic)
    counts = small_synthetic["region_on_disk"].sum("region").values
    assert counts[k] == counts.max()
