"""The bad-input corpus of issue 13 (§2 units and pixel sanity, §3 per-file failures, §5 GOES data).

Each case: a fixture-made input (a copy of a real AIA FITS file or GOES netCDF, changed), the
public call, and the expected outcome: a named error, or a logged skip that names the file and
its reason (checked with caplog). ``docs``: the outcomes are listed in the module's cases below.
"""

from __future__ import annotations

import gzip
import json
import logging
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr
from astropy.io import fits

from flarelib.cube import align, goes, ingest, prep
from flarelib.cube.store import WriteOptions
from tests.conftest import FLARE_DIR, FLARE_EVENT, GOES_DIR, REAL, edit_header

# the test helpers edit real AIA files in place, whose float data carry a BLANK card
pytestmark = pytest.mark.filterwarnings("ignore:Invalid 'BLANK' keyword in header")

NORMAL_193 = "aia_flare_2011-02-15T01-44-07_193.fits"  # EXPTIME 2.0 s, no BUNIT (DN)
T_OBS_193 = np.datetime64("2011-02-15T01:44:08.837", "ns")


def _edit_data(path, change):
    with fits.open(path, mode="update") as hdul:
        data = hdul[0].data.astype(np.float32)
        change(data)
        hdul[0].data = data


def _set(index, value):
    def change(data):
        data[index] = value
    return change


def _extra_hdu(path):
    with fits.open(path, mode="update") as hdul:
        hdul.append(fits.ImageHDU(np.zeros((4, 4), np.float32)))


def _truncated_gzip(path):
    packed = gzip.compress(path.read_bytes())
    path.with_name(path.name + ".gz").write_bytes(packed[: len(packed) // 2])
    path.unlink()
    return path.with_name(path.name + ".gz")


def _three_d(path):
    data = fits.getdata(path)
    header = fits.getheader(path)
    fits.writeto(path, np.stack([data, data]), header, overwrite=True)


def _negative(data):
    data[:] = -np.abs(data) * 1e-3


def _zero(data):
    data[:] = 0.0


def _mostly_nan(data):
    data[:, : int(data.shape[1] * 0.6)] = np.nan


def _all_nan(data):
    data[:] = np.nan


def _text(path):
    path.write_text("SIMPLE  = this is not a FITS file\n")


def _empty(path):
    path.write_bytes(b"")


#: (case id, how the file is damaged, expected skip reason). The call: align.scan_frames([file], prep_options=...).
SKIP_CASES = [
    ("bunit-watts", lambda p: edit_header(p, BUNIT="W"), "unknown-unit"),
    ("bunit-dn-per-siemens", lambda p: edit_header(p, BUNIT="DN/S"), "unknown-unit"),
    ("bunit-not-a-unit", lambda p: edit_header(p, BUNIT="furlongs per fortnight"), "unknown-unit"),
    ("exptime-text", lambda p: edit_header(p, EXPTIME="two seconds"), "bad-exptime"),
    ("exptime-negative", lambda p: edit_header(p, EXPTIME=-2.0), "bad-exptime"),
    ("exptime-zero", lambda p: edit_header(p, EXPTIME=0.0), "bad-exptime"),
    ("wavelnth-text", lambda p: edit_header(p, WAVELNTH="blue"), "bad-keyword"),
    ("quality-text", lambda p: edit_header(p, QUALITY="fine"), "bad-keyword"),
    ("t-obs-not-a-time", lambda p: edit_header(p, T_OBS="yesterday"), "bad-keyword"),
    ("no-time-at-all", lambda p: edit_header(p, T_OBS=None, **{"DATE-OBS": None}), "missing-keyword"),
    ("no-wavelnth", lambda p: edit_header(p, WAVELNTH=None), "missing-keyword"),
    ("quality-bit", lambda p: edit_header(p, QUALITY=0x40000000), "quality"),
    ("not-aia", lambda p: edit_header(p, TELESCOP="SOHO", INSTRUME="EIT"), "not-aia"),
    ("extra-image-hdu", _extra_hdu, "extra-image-hdu"),
    ("three-d-image", _three_d, "unreadable"),
    ("not-fits", _text, "unreadable"),
    ("empty-file", _empty, "unreadable"),
    ("truncated-fits", lambda p: p.write_bytes(p.read_bytes()[:5000]), "unreadable"),
    ("truncated-gzip", _truncated_gzip, "unreadable"),
    ("plus-inf-pixel", lambda p: _edit_data(p, _set((3, 4), np.inf)), "out-of-range"),
    ("minus-inf-pixel", lambda p: _edit_data(p, _set((3, 4), -np.inf)), "out-of-range"),
    ("1e30-pixel", lambda p: _edit_data(p, _set((10, 10), 1e30)), "out-of-range"),
    ("minus-1e6-dn-pixel", lambda p: _edit_data(p, _set((0, 0), -1e6)), "out-of-range"),
    ("all-negative", lambda p: _edit_data(p, _negative), "negative"),
    ("all-zero", lambda p: _edit_data(p, _zero), "all-zero"),
    ("60-percent-nan", lambda p: _edit_data(p, _mostly_nan), "non-finite"),
    ("all-nan", lambda p: _edit_data(p, _all_nan), "all-nan"),
    ("before-degradation-table", lambda p: edit_header(p, T_OBS="2009-06-01T00:00:00.00Z"),
     "outside-degradation-table"),
    ("after-degradation-table", lambda p: edit_header(p, T_OBS="2031-06-01T00:00:00.00Z"),
     "outside-degradation-table"),
]


@pytest.fixture
def frame(tmp_path):
    """A writable copy of one real 67x67 flare cutout (193 Å, 2 s, DN)."""
    path = tmp_path / NORMAL_193
    shutil.copyfile(FLARE_DIR / NORMAL_193, path)
    return path


@pytest.mark.parametrize(("damage", "reason"), [c[1:] for c in SKIP_CASES], ids=[c[0] for c in SKIP_CASES])
def test_bad_frame_is_a_logged_skip_naming_file_and_reason(frame, damage, reason, caplog):
    result = damage(frame)
    path = result if isinstance(result, Path) else frame
    with caplog.at_level(logging.WARNING, logger="flarelib"):
        infos, skipped = align.scan_frames([path], prep_options=prep.PrepOptions())
    assert infos == []
    assert [(s.source, s.reason) for s in skipped] == [(path.name, reason)]
    assert f"skip {path.name}: {reason}" in caplog.text
    # the same file, read directly, is a BadFrameError naming it (or the calibration check refuses it)
    with pytest.raises(prep.BadFrameError) as err:
        prep.check_calibration(prep.read_frame_info(path), prep.PrepOptions())
    assert err.value.reason == reason and path.name in str(err.value)


# --------------------------------------------------------------------------- accepted, with the right values

def test_every_real_file_passes_the_default_rules():
    files = sorted(REAL.glob("aia_*/*.fits"))
    assert len(files) == 67
    infos, skipped = align.scan_frames(files, prep_options=prep.PrepOptions())
    assert skipped == [] and len(infos) == len(files)
    for info in infos:  # the calibrated frames too (sanity is checked again after calibration)
        if info.full_disk and info.level < 1.5 or info.channel in (94, 335) and not info.full_disk:
            continue  # registration takes seconds; one flare channel of each kind is enough below
        smap, _ = prep.prep_frame(info)
        assert np.isfinite(smap.data).all()


def test_frame_already_in_dn_per_s_is_not_divided_again(frame):
    raw = fits.getdata(frame).astype(float)
    edit_header(frame, BUNIT="DN / s")
    info = prep.read_frame_info(frame)
    assert info.unit == prep.UNIT_DN_PER_S
    smap, steps = prep.prep_frame(frame)
    exposure = next(s for s in steps if s["step"] == "exposure")
    assert exposure["divided_by_exptime_s"] is None and "already DN/s" in exposure["operation"]
    factor = next(s for s in steps if s["step"] == "degradation")["divided_by"]
    np.testing.assert_allclose(smap.data, raw / factor, rtol=1e-5)  # not raw / factor / 2.0
    assert str(smap.unit) == "DN / s"


@pytest.mark.parametrize("bunit", ["DN", "dn", "DN/s", "DN s-1", "dn / s"])
def test_unit_spellings_parse(bunit):
    expected = prep.UNIT_DN if "s" not in bunit.replace("dn", "").replace("DN", "") else prep.UNIT_DN_PER_S
    assert prep.parse_unit(bunit) == expected


def test_valid_gzip_fits_is_read(frame):
    packed = frame.with_name(frame.name + ".gz")
    packed.write_bytes(gzip.compress(frame.read_bytes()))
    info = prep.read_frame_info(packed)
    assert info == prep.dataclasses.replace(prep.read_frame_info(frame), path=packed)
    smap, _ = prep.prep_frame(packed)
    reference, _ = prep.prep_frame(frame)
    np.testing.assert_array_equal(smap.data, reference.data)


def test_missing_t_obs_is_logged_and_date_obs_used(frame, caplog):
    edit_header(frame, T_OBS=None)
    with caplog.at_level(logging.WARNING, logger="flarelib"):
        info = prep.read_frame_info(frame)
    assert info.t_obs == np.datetime64("2011-02-15T01:44:07.837", "ns")
    assert f"{frame.name}: T_OBS missing; DATE-OBS" in caplog.text


@pytest.mark.parametrize(("t_obs", "utc"), [
    ("2011-02-15T01:44:42.837_TAI", "2011-02-15T01:44:08.837"),  # TAI - UTC = 34 s in 2011
    ("2021-02-15T01:44:45.837_TAI", "2021-02-15T01:44:08.837"),  # 37 s since 2017
    ("2011-02-15T02:44:08.837+01:00", "2011-02-15T01:44:08.837"),
    ("2011-02-15T01:44:08.837_UTC", "2011-02-15T01:44:08.837"),
])
def test_t_obs_in_tai_or_with_an_offset_becomes_utc(frame, t_obs, utc):
    edit_header(frame, T_OBS=t_obs)
    assert prep.read_frame_info(frame).t_obs == np.datetime64(utc, "ns")


def test_date_outside_the_degradation_table_is_a_warning_by_option(frame, caplog):
    edit_header(frame, T_OBS="2009-06-01T00:00:00.00Z")
    options = prep.PrepOptions(outside_degradation_table="warn")
    with caplog.at_level(logging.WARNING, logger="flarelib"):
        infos, skipped = align.scan_frames([frame], prep_options=options)
        smap, steps = prep.prep_frame(frame, outside_degradation_table="warn")
    assert skipped == [] and len(infos) == 1
    assert "outside the degradation table" in caplog.text and frame.name in caplog.text
    assert next(s for s in steps if s["step"] == "degradation")["why"] == "outside the table"
    assert np.isfinite(smap.data).all()
    with pytest.raises(ValueError, match="outside_degradation_table"):
        prep.PrepOptions(outside_degradation_table="ignore")


def test_sanity_rules_are_parameters(frame):
    _edit_data(frame, _set((3, 4), 1e30))
    loose = prep.SanityRules(max_dn_per_s={193: 1e31})
    assert prep.read_frame_info(frame, sanity=loose).channel == 193
    assert prep.read_frame_info(frame, sanity=None).channel == 193
    assert prep.PrepOptions(sanity={"max_negative_fraction": 0.9}).sanity.max_negative_fraction == 0.9
    with pytest.raises(ValueError, match="min_finite_fraction"):
        prep.SanityRules(min_finite_fraction=2)


# --------------------------------------------------------------------------- whole builds

def _two_slots(tmp_path):
    folder = tmp_path / "aia"
    folder.mkdir()
    for f in sorted(FLARE_DIR.glob("aia_flare_2011-02-15T01-4[46]-*.fits")):
        shutil.copyfile(f, folder / f.name)
    return sorted(folder.glob("*.fits"))


def _build(files, path, **rules):
    return ingest.build_fits_cube(files, path, name="corpus", rules=align.SlotRules(cadence="2min", tolerance="60s",
                                                                                   **rules),
                                  targets=align.Targets(events=[FLARE_EVENT]), write=WriteOptions(progress=False))


def test_one_bad_file_never_stops_a_build(tmp_path, caplog):
    files = _two_slots(tmp_path)
    edit_header(files[0], EXPTIME="n/a")  # 01:44 211 Å
    with caplog.at_level(logging.WARNING, logger="flarelib"):
        path = _build(files, tmp_path / "cube.zarr")
    ds = xr.open_zarr(path)
    skipped = {s["source"]: s["reason"] for s in json.loads(ds.attrs["skipped_inputs"])}
    assert skipped[files[0].name] == "bad-exptime"
    assert f"skip {files[0].name}: bad-exptime" in caplog.text
    assert ds.sizes["time"] == 1  # the 01:44 slot lacks 211 Å; 01:46 is whole


def test_too_many_bad_files_stop_the_build_before_writing(tmp_path):
    files = _two_slots(tmp_path)
    for f in files[:7]:
        edit_header(f, BUNIT="W")
    with pytest.raises(align.TooManySkipsError, match=r"7 of 12 input files \(58%\).*unknown-unit x7.*max_skipped"):
        _build(files, tmp_path / "cube.zarr")
    assert not (tmp_path / "cube.zarr").exists()
    path = _build(files, tmp_path / "cube.zarr", max_skipped_fraction=0.6, fill_missing=True)  # the documented limit
    assert xr.open_zarr(path).attrs["n_skipped"] == 7


def test_calibration_failure_during_the_write_is_a_logged_skip(tmp_path, caplog, monkeypatch):
    files = _two_slots(tmp_path)
    bad = files[3].name
    real = prep.prep_frame

    def failing(source, **kwargs):
        if getattr(source, "path", source).name == bad:
            raise prep.BadFrameError(source.path, "calibration-failed", "simulated aiapy error")
        return real(source, **kwargs)

    monkeypatch.setattr(prep, "prep_frame", failing)
    with caplog.at_level(logging.WARNING, logger="flarelib"):
        path = _build(files, tmp_path / "cube.zarr")
    ds = xr.open_zarr(path)
    assert f"skip {bad}: calibration-failed" in caplog.text
    cell = (ds.source == bad).values
    assert cell.sum() == 1 and np.isnan(ds.aia.values[cell]).all()


# --------------------------------------------------------------------------- event lists

def test_event_time_offsets_are_converted_not_dropped():
    events = align.events_dataset([{"start": "2011-02-15T02:44:00+01:00", "peak": "2011-02-15T01:56:00Z",
                                    "end": "2011-02-14T21:06:00-05:00", "goes_class": "X2.2"}])
    assert events.event_start.values[0] == np.datetime64("2011-02-15T01:44", "ns")
    assert events.event_peak.values[0] == np.datetime64("2011-02-15T01:56", "ns")
    assert events.event_end.values[0] == np.datetime64("2011-02-15T02:06", "ns")


def test_event_with_a_bad_time_names_the_event():
    with pytest.raises(ValueError, match="event #0"):
        align.events_dataset([{"start": "soon", "peak": "2011-02-15T01:56", "end": "2011-02-15T02:06",
                               "goes_class": "X2.2"}])


# --------------------------------------------------------------------------- GOES

AVG1M_G16 = "sci_xrsf-l2-avg1m_g16_d20210101_truncated.nc"  # 2021-01-01 22:20 - 23:59, 1-min samples
IRRAD_G13 = "sci_gxrs-l2-irrad_g13_d20170901_truncated.nc"  # 2017-09-01 00:00 - 00:20, 2-s samples


@pytest.fixture
def nc_copy(tmp_path):
    def make(name, change):
        path = tmp_path / name
        shutil.copyfile(GOES_DIR / name, path)
        with h5py.File(path, "r+") as h:
            change(h)
        return path
    return make


def _fill_all(h):
    h["xrsb_flux"][...] = np.full(h["xrsb_flux"].shape, -9999.0, dtype=np.float32)


def _fill_some(h):
    flux = h["xrsb_flux"][...]
    flux[5:8] = -9999.0
    h["xrsb_flux"][...] = flux


def test_all_fill_goes_file_is_an_error(nc_copy):
    with pytest.raises(goes.GOESDataError, match=f"{AVG1M_G16}: no valid XRS-B sample.*100 of 100 are fill"):
        goes.load_xrs(nc_copy(AVG1M_G16, _fill_all))


def test_partly_filled_goes_file_logs_its_count(nc_copy, caplog):
    with caplog.at_level(logging.INFO, logger="flarelib"):
        ds = goes.load_xrs(nc_copy(AVG1M_G16, _fill_some))
    assert ds.attrs["n_xrsb_fill"] == 3 and f"{AVG1M_G16}: 3 XRS-B samples masked" in caplog.text


def test_unreadable_goes_csv_is_a_named_error(tmp_path):
    path = tmp_path / "goes_xrs.csv"
    path.write_text("time,xrsb\n2011-02-15T00:00:00,-9999\n")
    with pytest.raises(goes.GOESDataError, match="goes_xrs.csv: not a readable GOES XRS file"):
        goes.load_xrs(path)


def test_saturated_goes_samples_are_flagged_not_removed(nc_copy, caplog):
    def saturate(h):
        flags = h["b_flags"][...]
        flags[100:104] = 256  # the file's "saturated" bit
        flags[200] = 256 | 128  # saturated and unknown_bad_data: masked
        h["b_flags"][...] = flags

    plain = goes.load_xrs(GOES_DIR / IRRAD_G13)
    with caplog.at_level(logging.WARNING, logger="flarelib"):
        ds = goes.load_xrs(nc_copy(IRRAD_G13, saturate))
    assert ds.attrs["n_xrsb_saturated"] == 5 and int(ds.xrsb_saturated.sum()) == 5
    np.testing.assert_array_equal(ds.xrsb.values[100:104], plain.xrsb.values[100:104])  # kept
    assert np.isnan(ds.xrsb.values[200]) and ds.attrs["n_xrsb_bad_quality"] == 1
    assert f"{IRRAD_G13}: 5 XRS-B samples flagged saturated" in caplog.text


def _light_curve(minutes=240, start="2020-01-01"):
    t = np.datetime64(start, "ns") + np.arange(minutes).astype("timedelta64[m]")
    flux = np.full(minutes, 2e-7)
    flux[100:110] = 3e-5
    return xr.Dataset({"xrsb": ("time", flux)}, coords={"time": t},
                      attrs={"goes_scaling": "science-quality", "source": "curve.nc"})


def test_goes_of_another_day_is_an_error():
    grid = np.datetime64("2020-01-03", "ns") + np.arange(10).astype("timedelta64[m]") * 12
    with pytest.raises(align.GOESCoverageError,
                       match="curve.nc covers 2020-01-01.*needs GOES data from 2020-01-02T23:48"):
        align.Targets(goes=_light_curve()).dataset(grid, "12min")


def test_goes_targets_mostly_nan_are_an_error(caplog):
    grid = np.datetime64("2020-01-01T03:00", "ns") + np.arange(20).astype("timedelta64[m]") * 12  # 03:00 - 06:48
    message = r"\d+% of the GOES targets would be NaN.*max_missing_fraction=50%"
    with caplog.at_level(logging.WARNING, logger="flarelib"), pytest.raises(align.GOESCoverageError, match=message):
        align.Targets(goes=_light_curve()).dataset(grid, "12min")
    assert "part of the" in caplog.text
    targets, _ = align.Targets(goes=_light_curve(), max_missing_fraction=1.0).dataset(grid, "12min")
    assert np.isnan(targets.flux_now.values[-1])


def test_goes_short_of_the_largest_lead_is_a_warning(caplog):
    grid = np.datetime64("2020-01-01T00:12", "ns") + np.arange(15).astype("timedelta64[m]") * 12  # to 03:00
    targets = align.Targets(goes=_light_curve(), forecasts=[("0min", "12min"), ("1h", "1h")])
    with caplog.at_level(logging.WARNING, logger="flarelib"):
        ds, _ = targets.dataset(grid, "12min")
    assert "the largest lead + window" in caplog.text
    assert np.isnan(ds.flux_max.sel(forecast="lead60min_window60min").values[-1])


def test_goes_gap_over_a_flare_peak_marks_windows_incomplete(caplog):
    xrs = _light_curve()
    flux = xrs.xrsb.values.copy()
    flux[103:107] = np.nan  # the peak minutes are missing; the window still passes the coverage rule
    xrs["xrsb"] = ("time", flux)
    grid = xrs.time.values[::12][:-2]
    with caplog.at_level(logging.WARNING, logger="flarelib"):
        ds, _ = align.Targets(goes=xrs, forecasts=[("0min", "12min")]).dataset(grid, "12min")
    complete = ds.flux_max_complete.values[:, 0]
    assert not complete[8] and complete[0]  # t = 96 min: window 96-108 holds the gap
    assert ds.flux_max.attrs["n_incomplete_windows"] == int((~complete).sum()) >= 1
    assert "forecast windows hold a GOES data gap" in caplog.text
