"""Slot assignment, duplicates, missing channels, time ranges and the targets."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from flarelib.cube import align
from flarelib.cube.prep import FrameInfo

T0 = np.datetime64("2011-02-15T01:44:00", "ns")


def _info(channel, seconds, name=None):
    t = T0 + np.timedelta64(int(seconds * 1e9), "ns")
    return FrameInfo(Path(name or f"f_{channel}_{seconds}.fits"), channel, t, 2.0, 0, 1.0, (4, 4), False)


def test_channels_within_tolerance_share_a_slot():
    infos = [_info(94, 2), _info(131, 9), _info(171, 24), _info(94, 122), _info(131, 130), _info(171, 135)]
    plan = align.plan_slots(infos, channels=[94, 131, 171], cadence="2min", tolerance="60s")
    assert list(plan.times) == [T0, T0 + np.timedelta64(2, "m")]
    assert [[f.channel for f in row] for row in plan.frames] == [[94, 131, 171]] * 2
    assert plan.skipped == []


def test_off_grid_frames_are_skipped():
    infos = [_info(94, 2), _info(131, 50)]
    plan = align.plan_slots(infos, channels=[94], cadence="2min", tolerance="30s")
    assert [s.reason for s in plan.skipped] == ["channel-not-selected"]
    with pytest.raises(align.EmptySelectionError):
        align.plan_slots([_info(94, 50)], channels=[94], cadence="2min", tolerance="30s")


def test_duplicates_keep_the_frame_nearest_the_slot_and_input_order_does_not_matter():
    infos = [_info(94, 20, "late.fits"), _info(94, 3, "near.fits"), _info(94, -10, "early.fits")]
    plan = align.plan_slots(infos, channels=[94], cadence="2min")
    again = align.plan_slots(list(reversed(infos)), channels=[94], cadence="2min")
    assert plan.frames[0][0].path.name == "near.fits" == again.frames[0][0].path.name
    assert sorted(s.source for s in plan.skipped if s.reason == "duplicate") == ["early.fits", "late.fits"]


def test_missing_channel_drops_the_slot_or_fills_it():
    infos = [_info(94, 0), _info(131, 0), _info(94, 120)]
    plan = align.plan_slots(infos, channels=[94, 131], cadence="2min")
    assert len(plan.times) == 1
    assert [s.reason for s in plan.skipped] == ["slot-incomplete"]
    filled = align.plan_slots(infos, channels=[94, 131], cadence="2min", fill_missing=True)
    assert len(filled.times) == 2 and filled.frames[1][1] is None
    coords = filled.frame_coords()
    assert coords["quality"][1][1, 1] == -1 and coords["source"][1][1, 1] == ""


def test_time_range_cut_and_empty_time_range():
    infos = [_info(94, 120 * k) for k in range(5)]
    plan = align.plan_slots(infos, channels=[94], cadence="2min", start="2011-02-15T01:46", end="2011-02-15T01:48")
    assert len(plan.times) == 2
    with pytest.raises(align.EmptySelectionError, match="empty time range"):
        align.plan_slots(infos, channels=[94], cadence="2min", start="2011-02-15T02:00", end="2011-02-15T01:00")
    with pytest.raises(align.EmptySelectionError):
        align.plan_slots(infos, channels=[94], cadence="2min", start="2012-01-01", end="2012-01-02")


def test_a_frame_of_another_size_is_a_logged_skip_naming_the_shape_that_keeps_it(caplog):
    odd = dataclasses.replace(_info(94, 120), shape=(8, 8))
    infos = [_info(94, 0), odd, _info(94, 240)]
    with caplog.at_level("WARNING", logger="flarelib"):
        plan = align.plan_slots(infos, channels=[94], cadence="2min")
    assert len(plan.times) == 2 and [s.source for s in plan.skipped] == [odd.path.name]
    assert plan.skipped[0].reason == "odd-shape" and "pass shape=(4, 4)" in plan.skipped[0].detail
    assert f"skip {odd.path.name}: odd-shape 8x8 px" in caplog.text
    # the advice works: with a shape every frame is kept (the prep resamples each one)
    assert len(align.plan_slots(infos, channels=[94], cadence="2min", shape=(4, 4)).times) == 3


def test_a_frame_resampled_to_another_aspect_is_a_warning(caplog):
    wide = dataclasses.replace(_info(94, 0), shape=(4, 8))
    with caplog.at_level("WARNING", logger="flarelib"):
        align.plan_slots([wide], channels=[94], cadence="2min", shape=(4, 4))
    assert f"1 frames of 4x8 px (first {wide.path.name}) are resampled to shape=(4, 4)" in caplog.text
    assert "stretched" in caplog.text and "shape=(4, 8)" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="flarelib"):
        align.plan_slots([wide], channels=[94], cadence="2min", shape=(2, 4))  # the same aspect: no warning
    assert "stretched" not in caplog.text


def test_event_targets_by_hand():
    events = align.events_dataset([{"start": "2011-02-15T01:44", "peak": "2011-02-15T01:56",
                                    "end": "2011-02-15T02:06", "goes_class": "X2.2"}])
    times = T0 + np.array([-20, 0, 20, 30], dtype="timedelta64[m]")
    ds = align.event_targets(events, times, [("0min", "10min"), ("30min", "10min")])
    np.testing.assert_allclose(ds.flux_now.values, [np.nan, 2.2e-4, 2.2e-4, np.nan], rtol=1e-6)
    # window [t+0, t+10]: 01:24-01:34 misses; ... ; 02:14-02:24 misses
    np.testing.assert_allclose(ds.flux_max.values[:, 0], [np.nan, 2.2e-4, 2.2e-4, np.nan], rtol=1e-6)
    # window [t+30, t+40]: 01:54-02:04 hits for t=01:24; 02:14 onwards misses
    np.testing.assert_allclose(ds.flux_max.values[:, 1], [2.2e-4, np.nan, np.nan, np.nan], rtol=1e-6)
    assert ds.class_max.values[0, 1] == "X" and ds.class_now.values[0] == ""
    assert ds.flux_now.attrs["target_source"] == "event-list"
    assert events.event_class.values[0] == "X2.2"


def test_bad_event_entries_are_clear_errors():
    with pytest.raises(ValueError, match="start <= peak <= end"):
        align.events_dataset([{"start": "2011-02-15T02:00", "peak": "2011-02-15T01:00", "end": "2011-02-15T03:00",
                               "goes_class": "C1"}])
    with pytest.raises(ValueError, match="event #0"):
        align.events_dataset([{"start": "2011-02-15T02:00", "goes_class": "C1"}])


def test_goes_targets_from_a_light_curve():
    import xarray as xr

    t = np.datetime64("2020-01-01", "ns") + np.arange(240).astype("timedelta64[m]")
    flux = np.full(240, 2e-7)
    flux[100:110] = 3e-5  # an M3 flare from minute 100 to 109
    xrs = xr.Dataset({"xrsb": ("time", flux)}, coords={"time": t}, attrs={"goes_scaling": "science-quality"})
    grid = t[::12]
    ds = align.goes_targets(xrs, grid, "12min", [("0min", "12min"), ("1h", "1h")])
    # causal means over (t - 12, t]: t = 108 holds minutes 97-108 (9 flare minutes) -> M; t = 120 holds 109-120
    # (1 flare minute: 3e-5/12 + ... -> C); t = 96 holds 85-96, before the flare -> B
    assert ds.class_now.values[8] == "B" and ds.class_now.values[9] == "M" and ds.class_now.values[10] == "C"
    assert ds.flux_now.values[9] == pytest.approx((9 * 3e-5 + 3 * 2e-7) / 12, rel=1e-12)
    assert ds.flux_now.dtype == np.float64 and ds.flux_max.dtype == np.float64
    # window [t + 60, t + 120] min holds minutes 100-109 for t = 0 ... 48 and not from t = 60
    fmax = ds.flux_max.sel(forecast="lead60min_window60min").values
    assert fmax[0] == pytest.approx(3e-5) and fmax[4] == pytest.approx(3e-5) and fmax[5] == pytest.approx(2e-7)
    assert np.isnan(fmax[-1])  # window runs past the data
    assert ds.flux_max.attrs["goes_scaling"] == "science-quality"


def test_nowcast_target_and_flare_history_use_nothing_after_t():
    import xarray as xr

    t = np.datetime64("2020-01-01", "ns") + np.arange(600).astype("timedelta64[m]")
    flux = np.full(600, 1e-7)
    flux[301] = 5e-5  # one minute after the slot at 300
    xrs = xr.Dataset({"xrsb": ("time", flux)}, coords={"time": t}, attrs={"goes_scaling": "science-quality"})
    grid = t[::60]
    ds = align.goes_targets(xrs, grid, "60min", [("0min", "1h")])
    assert ds.flux_now.values[5] == pytest.approx(1e-7)  # t = 300 ends before minute 301
    assert ds.flux_now.values[6] == pytest.approx((59 * 1e-7 + 5e-5) / 60)  # t = 360 holds minutes 301-360
    history = ds.flux_history_max.sel(history="6h").values
    assert history[5] == pytest.approx(1e-7) and history[6] == pytest.approx(5e-5)  # known only from t = 360
    assert ds.flux_max.sel(forecast="lead0min_window60min").values[5] == pytest.approx(5e-5)  # the future window


@pytest.mark.parametrize("label, letter", [("C1.0", "C"), ("M1.0", "M"), ("X1.0", "X"), ("B9.9", "B")])
def test_event_list_classes_at_the_boundary_land_in_their_class(label, letter):
    events = align.events_dataset([{"start": "2011-02-15T01:00", "peak": "2011-02-15T01:10",
                                    "end": "2011-02-15T01:30", "goes_class": label}])
    grid = np.datetime64("2011-02-15T01:00", "ns") + np.arange(4).astype("timedelta64[m]") * 12
    ds = align.event_targets(events, grid, [("0min", "12min")])
    assert ds.class_now.values[1] == letter and ds.class_max.values[0, 0] == letter
    assert events.event_peak_flux.dtype == np.float64


def test_event_list_targets_record_their_flux_basis():
    old = {"start": "2011-02-15T01:44", "peak": "2011-02-15T01:56", "end": "2011-02-15T02:06", "goes_class": "X2.2"}
    new = {"start": "2024-05-14T16:46", "peak": "2024-05-14T16:51", "end": "2024-05-14T17:02", "goes_class": "X8.7"}
    grid = np.datetime64("2011-02-15T01:48", "ns") + np.arange(3).astype("timedelta64[m]") * 12
    scaled, _ = align.Targets(events=[old]).dataset(grid, "12min")
    assert scaled.flux_now.attrs["goes_scaling"] == "swpc-scaled"
    assert scaled.event_scaling.values.tolist() == ["swpc-scaled"]
    both = align.events_dataset([old, new])
    assert both.event_scaling.values.tolist() == ["swpc-scaled", "science-quality"]
    assert align.event_targets(both, grid, [("0min", "12min")]).flux_now.attrs["goes_scaling"] == "mixed"
