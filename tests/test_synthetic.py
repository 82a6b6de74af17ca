"""The synthetic sun: labelled, deterministic, resumable, with masks that match the flares."""

import dataclasses

import numpy as np
import pytest
import xarray as xr

from flarelib import store, synthetic
from tests.conftest import REAL

DISK = sorted((REAL / "aia_fulldisk_2014-01-01").glob("*.fits"))
TINY = dataclasses.replace(synthetic.SIZES["small"], days=1.0, size=32, seed=7)


def test_it_is_labelled_synthetic_everywhere(small_synthetic):
    ds = small_synthetic
    assert ds.attrs["synthetic"] is True
    assert "SYNTHETIC" in ds.attrs["title"]
    assert ds.attrs["goes_scaling"] == "synthetic" and ds.attrs["target_source"] == "synthetic"
    assert ds.flux_max.attrs["target_source"] == "synthetic"
    assert "generator" in ds.attrs and "Precursors" in ds.attrs["generator_model"]
    assert set(ds.source.values.ravel()) == {"synthetic"}


def test_schema_matches_the_real_cubes(small_synthetic):
    ds = small_synthetic
    assert ds.aia.dims == ("time", "channel", "y", "x") and ds.aia.dtype == np.float32
    assert ds.channel.values.tolist() == [94, 131, 171, 193, 211, 335]
    for name in ("t_obs", "exptime", "quality", "source", "xrsb", "flux_now", "flux_max", "class_now", "class_max"):
        assert name in ds.variables
    assert ds.flare_mask.dims == ("time", "y", "x")
    assert np.isfinite(ds.aia.values).all() and (ds.aia.values.mean(axis=(0, 2, 3)) > 0).all()


@pytest.mark.slow
def test_deterministic_from_the_seed(tmp_path):
    a = store.open_cube(synthetic.build_synthetic_cube(tmp_path / "a.zarr", TINY, DISK, progress=False)).load()
    b = store.open_cube(synthetic.build_synthetic_cube(tmp_path / "b.zarr", TINY, DISK, progress=False)).load()
    xr.testing.assert_identical(a, b)
    other = dataclasses.replace(TINY, seed=8)
    c = store.open_cube(synthetic.build_synthetic_cube(tmp_path / "c.zarr", other, DISK, progress=False)).load()
    assert not np.array_equal(a.aia.values, c.aia.values)


@pytest.mark.slow
def test_interrupted_generation_resumes_identically(tmp_path):
    class Stop(Exception):
        pass

    def stop_after_first_block(i0, i1):
        raise Stop

    with pytest.raises(Stop):
        synthetic.build_synthetic_cube(tmp_path / "r.zarr", TINY, DISK, progress=False, on_block=stop_after_first_block)
    assert store.cube_status(tmp_path / "r.zarr")["status"] == "incomplete"
    synthetic.build_synthetic_cube(tmp_path / "r.zarr", TINY, DISK, progress=False)
    ref = synthetic.build_synthetic_cube(tmp_path / "ref.zarr", TINY, DISK, progress=False)
    xr.testing.assert_identical(store.open_cube(tmp_path / "r.zarr").load(), store.open_cube(ref).load())


def test_masks_match_the_flares(small_synthetic):
    ds = small_synthetic.load()
    times = ds.time.values
    big = ds.event_peak_flux.values >= 1e-6
    assert big.sum() > 0
    in_progress = np.zeros(times.size, dtype=bool)
    for start, end in zip(ds.event_start.values[big], ds.event_end.values[big]):
        in_progress |= (times >= start) & (times <= end)
    has_mask = ds.flare_mask.values.max(axis=(1, 2)) > 0
    assert not (has_mask & ~in_progress).any()  # no mask without a >= C1 flare in progress
    assert (in_progress & ~has_mask).mean() < 0.02  # only flares whose AR crossed the limb lack one
    # the mask sits on the flare: its pixels are bright in 131 A compared with the disk
    k = int(np.flatnonzero(has_mask)[0])
    frame = ds.aia.sel(channel=131).values[k]
    inside = ds.flare_mask.values[k] > 0
    assert frame[inside].mean() > 2 * np.median(frame[ds.disk_mask.values > 0])
    # and at the recorded event position
    first = int(np.flatnonzero(big)[0])
    y, x = ds.event_y.values[first], ds.event_x.values[first]
    assert np.isfinite(x) and 0 <= x < ds.sizes["x"] and 0 <= y < ds.sizes["y"]


def test_flare_sizes_follow_a_power_law_with_realistic_class_order():
    history = synthetic.simulate_history(synthetic.SIZES["default"], disk_radius=25.0)
    flux = np.array([e["peak_flux"] for e in history.events])
    counts = {c: int(((flux >= lo) & (flux < lo * 10)).sum()) for c, lo in (("B", 1e-7), ("C", 1e-6), ("M", 1e-5))}
    assert counts["B"] > counts["C"] > counts["M"] > 0
    # dN/dF ~ F^-2 means ~10x fewer events per decade
    assert 4 < counts["B"] / counts["C"] < 20
    # the GOES curve peaks where the flares are
    biggest = max(history.events, key=lambda e: e["peak_flux"])
    k = np.searchsorted(history.goes_time, biggest["peak"])
    assert history.goes_flux[k - 3:k + 4].max() > 0.8 * biggest["peak_flux"]


def test_persistence_is_a_real_competitor():
    """Over 60 days the flux now predicts the next hours' max: a forecaster must beat that."""
    config = synthetic.SIZES["default"]
    history = synthetic.simulate_history(config, disk_radius=25.0)
    goes = xr.DataArray(history.goes_flux, coords={"time": history.goes_time}, dims="time")
    from flarelib.goes import resample_to_slots, window_max

    now = np.log10(resample_to_slots(goes, history.times, np.timedelta64(12, "m")).values)
    future = np.log10(window_max(goes, history.times, np.timedelta64(1, "h"), np.timedelta64(6, "h")))
    ok = np.isfinite(now) & np.isfinite(future)
    rho = np.corrcoef(now[ok], future[ok])[0, 1]
    assert 0.4 < rho < 0.9  # informative, but far from a copy of the future
