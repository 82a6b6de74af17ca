"""AIA frame validation and calibration on the real flare cutouts, and every bad-input case."""

import json
import logging

import numpy as np
import pytest
import xarray as xr
from astropy.io import fits

from flarelib.cube import ingest, prep
from flarelib.cube.align import SlotRules, Targets
from flarelib.cube.store import WriteOptions
from tests.conftest import FLARE_EVENT, REAL, ROOT, edit_header

AEC_193 = "aia_flare_2011-02-15T01-58-10_193.fits"  # EXPTIME 0.0049 s (flare mode)
NORMAL_193 = "aia_flare_2011-02-15T01-44-07_193.fits"  # EXPTIME 2.0 s


def test_frame_info_of_a_flare_mode_frame(flare_copy):
    info = prep.read_frame_info(flare_copy / AEC_193)
    assert info.channel == 193
    assert info.exptime == pytest.approx(0.0049182)
    assert info.aectype == 2
    assert info.quality == 0
    assert not info.full_disk
    assert info.t_obs == np.datetime64("2011-02-15T01:58:10.507")


def test_exposure_normalization_matters_on_aec_frames(flare_copy):
    """Raw DN of a 0.005 s frame are far below a 2 s frame; DN/s put them on one scale."""
    raw_aec = fits.getdata(flare_copy / AEC_193)
    raw_normal = fits.getdata(flare_copy / NORMAL_193)
    aec, steps = prep.prep_frame(flare_copy / AEC_193)
    normal, _ = prep.prep_frame(flare_copy / NORMAL_193)
    assert [s["step"] for s in steps] == ["degradation", "exposure"]
    assert str(aec.unit) == "DN / s" and aec.data.dtype == np.float32
    degradation = steps[0]["divided_by"]
    np.testing.assert_allclose(aec.data, raw_aec / degradation / 0.0049182, rtol=1e-5)
    # quiet corner pixels: the raw ratio is ~ the exposure ratio, the DN/s ratio is ~1
    raw_ratio = np.median(raw_aec[:10, :10]) / np.median(raw_normal[:10, :10])
    assert raw_ratio < 0.05
    # the flare brightens the cutout ~10-100x between 01:44 and 01:58 in DN/s
    assert np.median(aec.data) > 3 * np.median(normal.data)


#: aiapy.calibrate.degradation's factor per channel (94 ... 335 Å) with the table as flarelib read it before it
#: shipped its own copy (aiapy 0.10.2's tests/data table through aiapy.calibrate.util.get_correction_table).
DEGRADATION_BEFORE = {
    "2011-02-15T01:50:00": [1.0339272175890826, 0.8950155555555556, 0.9693456785891038, 0.9897238193467238,
                            0.9814992265629153, 0.701450486111111],
    "2014-01-01T00:00:00": [0.8152640889562799, 0.7889215023029844, 0.8542844037491237, 0.9032547133485952,
                            0.8074358222318272, 0.35714084227910814],
}


@pytest.mark.parametrize("date", sorted(DEGRADATION_BEFORE))
def test_the_shipped_degradation_table_gives_the_factors_it_gave_from_aiapy(date):
    import aiapy.calibrate
    import astropy.units as u
    from astropy.time import Time

    path = prep.SHIPPED_CORRECTION_TABLE
    assert path.is_file() and path.parent == ROOT / "flarelib" / "cube"
    assert (path.parent / "AIA_RESPONSE_TABLE.md").is_file()
    assert prep.PrepOptions().table_path() == path
    table = prep.load_correction_table(None)
    factors = [float(aiapy.calibrate.degradation(c * u.AA, Time(date, scale="utc"), correction_table=table)[0])
               for c in prep.DEFAULT_CHANNELS]
    assert factors == pytest.approx(DEGRADATION_BEFORE[date], rel=1e-12)
    assert prep.degradation_epochs(None, 94) == (np.datetime64("2010-03-24T00:00"), np.datetime64("2030-05-01T00:00"))


def test_registration_runs_on_full_disk_level1_only(flare_copy):
    level1 = REAL / "aia_fulldisk_level1_2011-02-15" / "aia_171_level1.fits"
    smap, steps = prep.prep_frame(level1)
    assert steps[0]["step"] == "register"
    assert smap.meta["lvl_num"] == 1.5
    _, cutout_steps = prep.prep_frame(flare_copy / NORMAL_193)
    assert "register" not in [s["step"] for s in cutout_steps]
    with pytest.raises(prep.BadFrameError, match="not-full-disk"):
        prep.prep_frame(flare_copy / NORMAL_193, register=True)


def test_downsampling_with_superpixel_and_resample():
    disk = REAL / "aia_fulldisk_2014-01-01" / "aia_synoptic_2014-01-01T00-00-00_171_256.fits"
    small, steps = prep.prep_frame(disk, shape=(64, 64))
    assert small.data.shape == (64, 64) and steps[-1]["function"] == "superpixel"
    odd, steps = prep.prep_frame(disk, shape=(100, 100))
    assert odd.data.shape == (100, 100) and steps[-1]["function"] == "resample"
    full, _ = prep.prep_frame(disk)
    assert small.data.mean() == pytest.approx(full.data.mean(), rel=0.01)  # mean-preserving


@pytest.mark.parametrize(("change", "reason"), [
    ("truncate", "unreadable"),
    ("non_aia", "not-aia"),
    ("no_wavelnth", "missing-keyword"),
    ("no_exptime", "missing-keyword"),
    ("exptime_zero", "bad-exptime"),
    ("quality", "quality"),
    ("all_nan", "all-nan"),
    ("rotated_180", "rotated-cutout"),
    ("rotated_pc", "rotated-cutout"),
])
def test_bad_frames_raise_clear_errors(flare_copy, change, reason):
    path = flare_copy / NORMAL_193
    if change == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif change == "non_aia":
        edit_header(path, TELESCOP="SOHO", INSTRUME="EIT")
    elif change == "no_wavelnth":
        edit_header(path, WAVELNTH=None)
    elif change == "no_exptime":
        edit_header(path, EXPTIME=None)
    elif change == "exptime_zero":
        edit_header(path, EXPTIME=0.0)
    elif change == "quality":
        edit_header(path, QUALITY=0x40000000)
    elif change == "all_nan":
        with fits.open(path, mode="update") as hdul:
            hdul[0].data[:] = np.nan
    elif change == "rotated_180":  # a cutout upside down: it would be stacked upside down beside its neighbours
        edit_header(path, CROTA2=180.0)
    elif change == "rotated_pc":  # the same roll given as a PC matrix (which sunpy reads first)
        edit_header(path, PC1_1=0.0, PC1_2=-1.0, PC2_1=1.0, PC2_2=0.0)
    with pytest.raises(prep.BadFrameError) as err:
        prep.read_frame_info(path)
    assert err.value.reason == reason
    assert path.name in str(err.value)


@pytest.mark.slow
def test_bad_files_are_logged_counted_skips_in_an_ingest(flare_copy, tmp_path, caplog):
    (flare_copy / NORMAL_193).write_bytes((flare_copy / NORMAL_193).read_bytes()[:5000])  # truncated
    edit_header(flare_copy / "aia_flare_2011-02-15T01-46-02_094.fits", QUALITY=0x100)
    edit_header(flare_copy / "aia_flare_2011-02-15T01-48-03_335.fits", EXPTIME=0.0)
    (flare_copy / "aia_flare_2011-02-15T01-50-02_094.fits").unlink()  # a channel missing in a slot
    files = sorted(flare_copy.glob("*.fits"), reverse=True)  # unsorted input
    with caplog.at_level(logging.WARNING, logger="flarelib"):
        path = ingest.build_fits_cube(files, tmp_path / "cube.zarr", name="t",
                                      rules=SlotRules(cadence="2min", tolerance="60s"),
                                      targets=Targets(events=[FLARE_EVENT]), write=WriteOptions(progress=False))
    ds = xr.open_zarr(path)
    skipped = json.loads(ds.attrs["skipped_inputs"])
    reasons = [s["reason"] for s in skipped]
    assert reasons.count("unreadable") == 1 and reasons.count("quality") == 1 and reasons.count("bad-exptime") == 1
    assert reasons.count("slot-incomplete") == 5 * 3 + 5  # 3 slots with one bad file + the slot missing 94 Å
    assert ds.attrs["n_skipped"] == len(skipped)
    assert ds.sizes["time"] == 6  # 10 slots - 4 incomplete
    assert bool((np.diff(ds.time.values) > np.timedelta64(0)).all())
    # nothing is lost: every input file is either in the cube or in the skip list
    used = set(ds.source.values.ravel())
    assert used | {s["source"] for s in skipped} == {f.name for f in files}
    assert "skip" in caplog.text
    # the inputs' checksums include the skipped files
    assert len(json.loads(ds.attrs["inputs"])) == len(files)


@pytest.mark.slow
def test_allowed_quality_bits_hold_through_the_whole_ingest(flare_copy, tmp_path):
    """A frame accepted at scan time is calibrated without being re-validated with stricter rules."""
    edit_header(flare_copy / NORMAL_193, QUALITY=0x100)
    files = sorted(flare_copy.glob("*.fits"))
    path = ingest.build_fits_cube(files, tmp_path / "cube.zarr", name="t",
                                  rules=SlotRules(cadence="2min", tolerance="60s", allowed_quality_bits=0x100),
                                  targets=Targets(events=[FLARE_EVENT]), write=WriteOptions(progress=False))
    ds = xr.open_zarr(path)
    assert ds.attrs["n_skipped"] == 0 and ds.sizes["time"] == 10
    assert int(ds.quality.sel(channel=193).values[0]) == 0x100
    assert np.isfinite(ds.aia.sel(channel=193).values[0]).all()


def test_the_degradation_uses_the_time_the_scan_checked_not_date_obs(flare_copy):
    """The scan checks T_OBS against the degradation table; the correction must use the same time (not DATE-OBS)."""
    path = flare_copy / NORMAL_193
    _, steps = prep.prep_frame(path)
    edit_header(path, **{"DATE-OBS": "2009-01-01T00:00:00.000"})  # before the table (and SDO); T_OBS unchanged
    info = prep.read_frame_info(path)
    assert str(info.t_obs).startswith("2011-02-15")
    smap, moved = prep.prep_frame(info)  # was: calibration-failed at write time, a NaN frame in a "complete" cube
    degradation = [s for s in steps if s["step"] == "degradation"][0]["divided_by"]
    assert [s for s in moved if s["step"] == "degradation"][0]["divided_by"] == degradation
    assert np.isfinite(smap.data).all()


def test_a_frame_that_fails_at_write_time_is_a_logged_skip_in_skipped_inputs(caplog):
    from types import SimpleNamespace

    from flarelib.cube import store

    def read(info):
        if info.path.name == "bad.fits":
            raise prep.BadFrameError(info.path, "calibration-failed", "ValueError: no")
        return np.ones((2, 2), np.float32)

    frames = [[SimpleNamespace(path=ROOT / f"f{i}.fits", channel=94), SimpleNamespace(
        path=ROOT / ("bad.fits" if i == 2 else f"g{i}.fits"), channel=171)] for i in range(4)]
    blocks = ingest._PlanBlocks(frames, ingest._FrameReader(read), (2, 2))
    with caplog.at_level(logging.WARNING, logger="flarelib"):
        out = blocks(1, 4)
    assert out[store.SKIPPED_KEY] == [{"source": "bad.fits", "reason": "calibration-failed", "channel": 171,
                                       "time_step": 2,
                                       "detail": "ValueError: no (at write time: left NaN in the cube)"}]
    assert np.isnan(out["aia"][1, 1]).all() and np.isfinite(out["aia"][0]).all()
    assert "skip bad.fits: calibration-failed" in caplog.text and "skipped_inputs" in caplog.text


@pytest.mark.slow
def test_frames_of_mixed_sizes_are_skipped_with_a_reason_or_resampled_to_the_shape_given(flare_copy, tmp_path):
    odd = flare_copy / NORMAL_193
    with fits.open(odd, mode="update") as hdul:  # half the size (a cutout of another size in the same folder)
        hdul[0].data = np.ascontiguousarray(hdul[0].data[::2, ::2])
        ny, nx = hdul[0].data.shape
    files = sorted(flare_copy.glob("*.fits"))
    kwargs = dict(name="t", rules=SlotRules(cadence="2min", tolerance="60s"), targets=Targets(events=[FLARE_EVENT]))
    ds = xr.open_zarr(ingest.build_fits_cube(files, tmp_path / "skip.zarr", write=WriteOptions(progress=False),
                                             **kwargs))
    skipped = {s["source"]: s for s in json.loads(ds.attrs["skipped_inputs"])}
    assert skipped[odd.name]["reason"] == "odd-shape" and f"{ny}x{nx} px" in skipped[odd.name]["detail"]
    assert ds.sizes["time"] == 9  # the slot that lost its 193 Å frame
    # the advice works: with shape=(ny, nx) (what prep does for every frame), the odd frame is resampled and kept
    ds = xr.open_zarr(ingest.build_fits_cube(files, tmp_path / "shape.zarr", write=WriteOptions(progress=False),
                                             prep_options=prep.PrepOptions(shape=(ny, nx)), **kwargs))
    assert ds.sizes["time"] == 10 and ds.sizes["y"] == ny and ds.attrs["n_skipped"] == 0
    assert np.isfinite(ds.aia.values).all()


def test_a_frame_resampled_to_another_aspect_records_the_stretch():
    disk = REAL / "aia_fulldisk_2014-01-01" / "aia_synoptic_2014-01-01T00-00-00_171_256.fits"
    _, steps = prep.prep_frame(disk, shape=(64, 32))
    assert steps[-1]["stretched"] and steps[-1]["scale_y"] == 0.25 and steps[-1]["scale_x"] == 0.125
    _, steps = prep.prep_frame(disk, shape=(100, 100))
    assert "stretched" not in steps[-1]
