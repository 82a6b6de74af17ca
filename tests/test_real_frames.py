"""The real flare history on the real frames: flares per month, flare positions through each map's WCS, the real
targets at any time axis, and how far a map's maximum lies from a real flare."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from flarelib import explain
from flarelib.cube import noaa
from flarelib.evaluate import real


@pytest.fixture(scope="module")
def positions(catalog):
    return catalog.open("noaa-flares-sc24-positions")


def _map(catalog, entry: str, pattern: str):
    import sunpy.map

    return sunpy.map.Map(next(p for p in catalog.files(entry) if pattern in p.name))


def test_flares_per_month_counts_every_flare_once_in_a_month_without_gaps(catalog):
    events = catalog.open("noaa-flares-1996-2018")
    table = noaa.flares_per_month(events)
    assert int(table.to_numpy().sum()) == len(events) and list(table.columns) == ["C", "M", "X"]
    assert (np.diff(table.index.asi8) == 1).all()  # every month, quiet ones too
    assert table.loc[pd.Period("2011-02", "M"), "X"] == (events["goes_class"].str.startswith("X")
                                                         & (events["peak"].dt.to_period("M") == "2011-02")).sum()


def test_the_x22_flare_lands_on_its_own_cutout_next_to_the_brightest_94_pixel(catalog, positions):
    smap = _map(catalog, "sample-flare-2011-02-15", "01-56-02_094")
    near = noaa.flares_near(positions, smap.date.isot, "1h")
    assert near["goes_class"].iloc[0] == "X2.2" and near["noaa_ar"].iloc[0] == 11158
    pixels = noaa.flare_pixels(near.head(1), smap, shape=smap.data.shape)
    x, y = pixels[["x_px", "y_px"]].iloc[0]
    bright_y, bright_x = np.unravel_index(np.nanargmax(smap.data), smap.data.shape)
    assert 0 <= x < smap.data.shape[1] and 0 <= y < smap.data.shape[0]
    assert np.hypot(x - bright_x, y - bright_y) * smap.scale.axis1.value < 15  # arcsec
    assert pixels["x_cube"].iloc[0] == pytest.approx(x)  # the cutout cube keeps the map's grid


def test_a_flare_hours_later_is_rotated_back_to_the_frame_time(catalog, positions):
    smap = _map(catalog, "fulldisk-2014-01-01", "_094")
    m99 = positions[(positions["goes_class"] == "M9.9") & (positions["peak"].dt.year == 2014)].head(1)
    still = noaa.flare_pixels(m99.assign(peak=pd.Timestamp(smap.date.isot)), smap)  # as if it were at 00:00
    moved = noaa.flare_pixels(m99, smap, shape=(128, 128))
    # 18.9 h earlier the region sat east of where it flared (solar rotation, about 13 degrees a day)
    assert moved["x_px"].iloc[0] < still["x_px"].iloc[0] - 10
    assert moved["y_px"].iloc[0] == pytest.approx(still["y_px"].iloc[0], abs=3)
    assert moved["x_cube"].iloc[0] == pytest.approx((moved["x_px"].iloc[0] + 0.5) * 128 / smap.data.shape[1] - 0.5)


def test_real_targets_at_any_time_axis_are_causal(catalog):
    history = real.RealHistory(catalog.open("noaa-flares-1996-2018"), catalog.open("noaa-regions-1996-2018"))
    times = np.array(["2011-02-14T01:55", "2011-02-15T01:55", "2011-02-15T01:56", "2011-02-15T02:30"],
                      "datetime64[ns]")
    table = real.targets_at(history, times)
    assert table["event_X"].tolist() == [0.0, 1.0, 0.0, 0.0]  # (t, t + 24 h] holds the 01:56 peak only for 01:55
    assert table["max_flux"].iloc[1] == pytest.approx(2.2e-4)
    assert (table["max_flux"] >= real.FLOOR_FLUX).all()


def test_pointing_offsets_measure_the_maximum_against_a_random_pixel():
    values = np.zeros((1, 10, 10))
    values[0, 2, 7] = 1.0
    maps = {"m": xr.DataArray(values, dims=("time", "y", "x")),
            "per channel": xr.DataArray(np.stack([values, values], axis=1), dims=("time", "channel", "y", "x"))}
    table = explain.pointing_offsets(maps, x=7, y=6, arcsec_per_px=2.0)
    assert list(table.columns) == explain.POINTING_COLUMNS
    assert (table["offset_px"] == 4).all() and (table["offset_arcsec"] == 8).all()
    yy, xx = np.mgrid[:10, :10]
    assert table["random_offset_arcsec"].iloc[0] == pytest.approx(2 * np.hypot(xx - 7, yy - 6).mean())
    near = np.hypot(xx - 7, yy - 6) <= 3  # a random pixel drawn only where it can lie (e.g. on the disk)
    inside = explain.pointing_offsets(maps, x=7, y=6, arcsec_per_px=2.0, where=near)
    assert inside["random_offset_arcsec"].iloc[0] == pytest.approx(2 * np.hypot(xx - 7, yy - 6)[near].mean())


def test_the_disk_of_a_full_disk_frame_is_a_disk_of_the_solar_radius(catalog):
    smap = _map(catalog, "fulldisk-2014-01-01", "_094")
    disk = noaa.disk_pixels(smap, (64, 64))
    radius_px = smap.rsun_obs.value / smap.scale.axis1.value * 64 / smap.data.shape[1]
    assert disk.shape == (64, 64) and disk.sum() == pytest.approx(np.pi * radius_px**2, rel=0.05)
    assert not disk[0, 0] and disk[32, 32]


def test_the_browser_window_opens_on_a_flare_with_time_before_its_peak(small_cube_path):
    from flarelib.learn.data import FlareDataModule

    dm = FlareDataModule.from_settings({"cube": str(small_cube_path), "target": "now",
                                        "split": {"fractions": [0.5, 0.25, 0.25]}})
    dm.setup()
    test = np.sort(dm.plan.index["test"])
    window = explain.steps_around_peak(dm, "test", half=30, min_before=12)
    peak = window[np.nanargmax(dm.plan.target.log_flux[window])]
    assert np.isin(np.arange(peak - 12, peak + 1), test).all()  # 12 hourly test steps up to the peak
    assert (window >= peak - 30).all() and (window <= peak + 30).all() and np.isin(window, test).all()
    with pytest.raises(ValueError, match="before it"):
        explain.steps_around_peak(dm, "test", min_before=test.size)


def test_flares_between_takes_only_the_forecast_window(positions):
    start, end = np.datetime64("2014-01-01T01:00"), np.datetime64("2014-01-02T01:00")
    ahead = noaa.flares_between(positions, start, end)
    assert ((ahead["peak"] > pd.Timestamp(start)) & (ahead["peak"] <= pd.Timestamp(end))).all()
    assert ahead["peak_flux"].is_monotonic_decreasing and ahead["goes_class"].iloc[0] == "M9.9"
