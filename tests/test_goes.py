import numpy as np
import pytest
import xarray as xr

from flarelib.cube import goes
from tests.conftest import GOES_DIR


@pytest.mark.parametrize(("flux", "letter"), [
    (5e-9, "<A"), (1e-8, "A"), (9.99e-8, "A"), (1e-7, "B"), (3e-6, "C"), (1e-5, "M"), (2.2e-4, "X"), (np.nan, ""),
])
def test_flare_class_thresholds(flux, letter):
    assert goes.flare_class(flux)[()] == letter


def test_flare_class_keeps_shape():
    out = goes.flare_class(np.array([[1e-6, 1e-4], [np.nan, 2e-8]]))
    assert out.shape == (2, 2)
    assert out.tolist() == [["C", "X"], ["", "A"]]


@pytest.mark.parametrize(("flux", "label"), [(2.2e-4, "X2.2"), (2.5554e-5, "M2.6"), (9.97e-6, "M1.0"),
                                             (1.72e-3, "X17.2"), (3e-9, "<A")])
def test_flare_class_label(flux, label):
    assert goes.flare_class_label(flux) == label


def test_class_to_flux_roundtrip_and_error():
    assert goes.class_to_flux("X2.2") == pytest.approx(2.2e-4)
    assert goes.class_to_flux("m1") == pytest.approx(1e-5)
    with pytest.raises(ValueError, match="not a GOES flare class"):
        goes.class_to_flux("Q5")


def test_load_goes15_fits_is_swpc_scaled_with_the_m_flare():
    ds = goes.load_xrs(GOES_DIR / "go1520110607.fits")
    assert ds.attrs["goes_satellite"] == "GOES-15"
    assert ds.attrs["goes_scaling"] == "swpc-scaled"
    assert ds.xrsb.attrs["units"] == "W m-2"
    peak_time = ds.xrsb.idxmax().values
    assert np.datetime64("2011-06-07T06:30") < peak_time < np.datetime64("2011-06-07T06:50")
    assert goes.flare_class_label(float(ds.xrsb.max())) == "M2.6"
    assert bool((np.diff(ds.time.values) > np.timedelta64(0)).all())


@pytest.mark.parametrize("name", ["sci_xrsf-l2-avg1m_g16_d20210101_truncated.nc",
                                  "sci_xrsf-l2-flx1s_g17_d20201016_truncated.nc",
                                  "sci_gxrs-l2-irrad_g13_d20170901_truncated.nc"])
def test_load_netcdf_is_science_quality(name):
    ds = goes.load_xrs(GOES_DIR / name)
    assert ds.attrs["goes_scaling"] == "science-quality"
    assert "xrsb_quality" in ds
    assert np.isfinite(ds.xrsb).all()


def test_goes15_avg1m_flag_16_is_not_bad_data():
    # every sample of this file has flag 16 (electron correction invalid), which NOAA's own
    # flag_masks do not count as bad data: the loader must read the masks, not "!= 0"
    ds = goes.load_xrs(GOES_DIR / "sci_xrsf-l2-avg1m_g15_d20190102_truncated.nc")
    assert set(np.unique(ds.xrsb_quality.values)) == {16}
    assert ds.attrs["n_xrsb_bad_quality"] == 0
    assert np.isfinite(ds.xrsb).all()


def _write_nc_with_fill_and_flags(src, dst):
    import shutil

    import h5py
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as h:
        flux = h["xrsb_flux"][...]
        flux[3] = -9999.0
        flux[10:20] = -9999.0
        h["xrsb_flux"][...] = flux
        flag = h["xrsb_flag"][...]
        flag[30] = 2  # bad_data bit of GOES-R avg1m
        h["xrsb_flag"][...] = flag


def test_fill_values_gaps_and_bad_flags_become_nan(tmp_path):
    dst = tmp_path / "sci_xrsf-l2-avg1m_g16_d20210101_truncated.nc"
    _write_nc_with_fill_and_flags(GOES_DIR / dst.name, dst)
    ds = goes.load_xrs(dst)
    assert ds.attrs["n_xrsb_fill"] == 11
    assert ds.attrs["n_xrsb_bad_quality"] == 1
    assert np.isnan(ds.xrsb.values[[3, 10, 19, 30]]).all()
    assert np.isfinite(ds.xrsb.values[[0, 2, 4, 9, 20, 29, 31]]).all()
    # the 10-minute gap makes its slot NaN; a slot with one fill value survives
    slots = goes.resample_to_slots(ds.xrsb, ds.time.values[[4, 15, 40]], np.timedelta64(5, "m"))
    assert np.isfinite(slots.values[0]) and np.isnan(slots.values[1]) and np.isfinite(slots.values[2])
    assert slots.attrs["n_gap_slots"] == 1


def test_unreadable_goes_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "go1520110607.fits"
    bad.write_bytes(b"not a fits file")
    with pytest.raises(goes.GOESDataError, match="not a readable GOES XRS file"):
        goes.load_xrs(bad)


def test_combine_refuses_mixed_scalings_and_converts():
    scaled = goes.load_xrs(GOES_DIR / "go1520120601.fits.gz")
    science = goes.load_xrs(GOES_DIR / "sci_xrsf-l2-avg1m_g15_d20190102_truncated.nc")
    with pytest.raises(goes.GOESDataError, match="refusing to mix"):
        goes.combine_xrs([scaled, science])
    converted = goes.to_science_quality(scaled)
    np.testing.assert_allclose(converted.xrsb.values, scaled.xrsb.values / 0.7)
    merged = goes.combine_xrs([converted, science])
    assert merged.attrs["goes_scaling"] == "science-quality"
    assert merged.sizes["time"] == scaled.sizes["time"] + science.sizes["time"]


def test_window_max_by_hand():
    t = np.datetime64("2020-01-01T00:00", "ns") + np.arange(60).astype("timedelta64[m]")
    flux = np.full(60, 1e-7)
    flux[30] = 5e-6
    flux[50] = np.nan
    xrsb = xr.DataArray(flux, coords={"time": t}, dims="time")
    out = goes.window_max(xrsb, t[[0, 20, 25, 31, 50]], np.timedelta64(5, "m"), np.timedelta64(5, "m"))
    # windows [5,10] [25,30] [30,35] [36,41] [55,60->past the end]
    np.testing.assert_allclose(out[:4], [1e-7, 5e-6, 5e-6, 1e-7])
    assert np.isnan(out[4])


def test_peak_steps_and_the_biggest_flare_skip_the_history_gaps_and_nan_fluxes():
    from flarelib.evaluate import summary

    hours = np.arange("2031-01-01T00", "2031-01-02T00", dtype="datetime64[h]").astype("datetime64[ns]")
    peaks = np.array(["2030-12-31T05:00", "2031-01-01T05:30", "2031-01-01T07:10"], dtype="datetime64[ns]")
    steps, inside = goes.peak_steps(hours, peaks)
    assert steps.tolist() == [0, 5, 7] and inside.tolist() == [False, True, True]  # the first is flare history

    def cube(times, peak_flux, flux_now):
        return xr.Dataset({"event_peak": ("event", peaks), "event_peak_flux": ("event", peak_flux),
                           "flux_now": ("time", flux_now)}, coords={"time": times})

    no_flux = np.full(hours.size, np.nan)
    assert summary.biggest_flare_step(cube(hours, [1e-3, np.nan, 1e-5], no_flux)) == 7  # not the history, not NaN
    assert summary.biggest_flare_step(cube(hours, [1e-3, np.nan, np.nan], no_flux)) == 0  # nothing to go by
    gap = np.delete(hours, [6, 7, 8])  # the 07:10 peak falls in a gap: not the step hours before it
    assert summary.biggest_flare_step(cube(gap, [1e-3, 2e-5, 1e-4], np.arange(gap.size, dtype=float))) == 5


def test_the_satellite_comes_from_the_evidence_and_contradictions_are_refused(tmp_path):
    """A GOES-15 file whose header says GOES-16 would be read as science quality (every flux x0.70, M3.7 as
    M2.6): the header, the name and the format must agree."""
    from astropy.io import fits

    source = GOES_DIR / "go1520110607.fits"
    relabelled = tmp_path / "go1520110607.fits"
    with fits.open(source) as hdus:
        hdus[0].header["TELESCOP"] = "GOES 16"
        hdus.writeto(relabelled)
    with pytest.raises(goes.GOESDataError, match="header says GOES-16 but its name says GOES-15"):
        goes.load_xrs(relabelled)
    renamed = tmp_path / "go1620110607.fits"
    with fits.open(relabelled) as hdus:
        hdus.writeto(renamed)
    with pytest.raises(goes.GOESDataError, match="a FITS file .* that claims GOES-16"):
        goes.load_xrs(renamed)
    with fits.open(source) as hdus:
        hdus[0].header["TELESCOP"] = "GOES 8"
        hdus.writeto(tmp_path / "anonymous.fits")
    with pytest.raises(goes.GOESDataError, match="GOES-8 data dated 2011-06-0.* GOES-8 flew 1994-2003"):
        goes.load_xrs(tmp_path / "anonymous.fits")
    assert goes.load_xrs(source).attrs["goes_satellite"] == "GOES-15"
