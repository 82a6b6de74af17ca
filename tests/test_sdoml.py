"""SDOML v2 on a real (local) S3 server: the cube from the store equals the cube from the same FITS frames."""

import dataclasses

import numpy as np
import pytest
import xarray as xr
from astropy.io import fits

from conftest import FLARE_EVENT
from flarelib.cube import prep, sdoml
from flarelib.cube.align import SlotRules, Targets
from flarelib.cube.ingest import build_fits_cube
from flarelib.cube.store import WriteOptions, open_cube

pytestmark = pytest.mark.slow  # a local S3 server and whole ingests


CHANNELS = (94, 131, 171, 193, 211, 335)
HEADER_KEYS = ("T_OBS", "EXPTIME", "WAVELNTH", "QUALITY", "CDELT1", "CDELT2", "CRPIX1", "CRPIX2", "CRVAL1",
               "CRVAL2", "RSUN_OBS", "DSUN_OBS", "CTYPE1", "CTYPE2", "CUNIT1", "CUNIT2")
BUCKET = "sdoml-test"


def make_public_bucket(s3_server, bucket):
    """A bucket anyone may list and read, like the public SDOML v2 bucket."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3_server["endpoint"], aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    client.create_bucket(Bucket=bucket, ACL="public-read")


def sdoml_frame(path):
    """(DN/s pixels, header dict) of a real FITS frame, calibrated as the FITS path does it."""
    info = prep.read_frame_info(path)
    data = prep.prep_frame(info)[0].data
    header = fits.getheader(path, 1 if fits.getheader(path).get("NAXIS", 0) == 0 else 0)
    return data, {k: header.get(k) for k in HEADER_KEYS if header.get(k) is not None}


@pytest.fixture(scope="module")
def sdoml_store(s3_server, tmp_path_factory):
    """An SDOML v2-layout store (Zarr v2, unsorted, one 94 Å frame fewer) on the local S3 server."""
    from conftest import FLARE_DIR

    files = sorted(FLARE_DIR.glob("*.fits"))
    dropped = next(f for f in files if prep.read_frame_info(f).channel == 94)
    kept = [f for f in files if f != dropped]
    make_public_bucket(s3_server, BUCKET)
    url = f"s3://{BUCKET}/fdl-sdoml-v2/sdomlv2_small.zarr"
    sdoml.write_sdoml_layout([sdoml_frame(f) for f in kept], url, storage_options=s3_server["write"], seed=7)
    return {"url": url, "files": kept, "dropped": dropped, "read": s3_server["read"]}


def test_store_has_the_sdoml_v2_layout(sdoml_store):
    group = sdoml.open_sdoml(sdoml_store["url"], storage_options=sdoml_store["read"])
    assert group.metadata.zarr_format == 2
    assert sorted(group["2011"].array_keys()) == sorted(f"{c}A" for c in CHANNELS)
    counts = {k: group["2011"][k].shape[0] for k in group["2011"].array_keys()}
    assert counts["94A"] == 9 and counts["171A"] == 10  # channel counts differ, as in SDOML v2
    t_obs = list(group["2011"]["171A"].attrs["T_OBS"])
    assert t_obs != sorted(t_obs)  # not ordered by time
    assert group["2011"]["171A"].chunks == (4, 67, 67)


def test_sdoml_cube_equals_the_fits_cube(sdoml_store, tmp_path):
    rules = SlotRules(channels=CHANNELS, cadence="2min", tolerance="60s")
    targets = Targets(events=[FLARE_EVENT], forecasts=[("0min", "10min")])
    fits_cube = open_cube(build_fits_cube(sdoml_store["files"], tmp_path / "fits.zarr", name="sample", rules=rules,
                                          targets=targets, write=WriteOptions(progress=False)))
    s3_cube = open_cube(sdoml.build_sdoml_cube(
        tmp_path / "s3.zarr", name="sample", url=sdoml_store["url"], storage_options=sdoml_store["read"],
        rules=dataclasses.replace(rules, start="2011-02-15T01:40", end="2011-02-15T02:10"), targets=targets,
        write=WriteOptions(steps_per_write=3, progress=False)))
    assert s3_cube.sizes["time"] == fits_cube.sizes["time"] == 9  # the slot missing a 94 Å frame is left out
    compared = ["aia", "t_obs", "exptime", "quality", "flux_now", "flux_max", "xrsb", "ingested"]
    # equal pixels, times, header coordinates and targets; only the frame names differ (file vs store index)
    s3_values, fits_values = (c[compared].drop_vars("source").load() for c in (s3_cube, fits_cube))
    xr.testing.assert_equal(s3_values, fits_values)
    assert s3_cube.source.values[0, 0].startswith("2011_94A_")
    assert np.isfinite(s3_cube.aia).all()
    assert s3_cube.attrs["source_store"] == sdoml_store["url"]
    assert s3_cube.attrs["aia_units"] == "DN/s"
    assert "sdoml-v2" in s3_cube.attrs["prep_steps"]


def test_missing_channel_and_bad_header_lists_are_clear_errors(sdoml_store, s3_server):
    group = sdoml.open_sdoml(sdoml_store["url"], storage_options=sdoml_store["read"])
    with pytest.raises(sdoml.SDOMLError, match="2011/304A is not in the store"):
        sdoml.sdoml_frames(group, years=[2011], channels=[304])
    with pytest.raises(sdoml.SDOMLError, match="year 2012"):
        sdoml.sdoml_frames(group, years=[2012], channels=[171])
    url = f"s3://{BUCKET}/broken.zarr"
    data, header = sdoml_frame(sdoml_store["files"][0])
    frames = [(data, header), (data, dict(header, EXPTIME=-1.0)), (data, header), (data, dict(header, QUALITY=4096)),
              (data, header)]
    sdoml.write_sdoml_layout(frames, url, storage_options=s3_server["write"], seed=None)
    import zarr

    root = zarr.open_group(url, mode="r+", zarr_format=2, storage_options=s3_server["write"])
    array = root["2011"][sdoml.channel_key(header["WAVELNTH"])]
    array.attrs["T_OBS"] = [t if k != 2 else None for k, t in enumerate(array.attrs["T_OBS"])]  # a missing T_OBS
    array.attrs["WAVELNTH"] = [w if k != 4 else 304 for k, w in enumerate(array.attrs["WAVELNTH"])]  # misfiled
    zarr.consolidate_metadata(root.store)
    infos, skipped, _ = sdoml.sdoml_frames(sdoml.open_sdoml(url, storage_options=s3_server["read"]), years=[2011],
                                           channels=[header["WAVELNTH"]])
    assert len(infos) == 1
    assert [s.reason for s in skipped] == ["bad-exptime", "missing-keyword", "quality", "wrong-channel"]


def test_block_mean_downsamples_and_refuses_other_shapes():
    frames = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    out = sdoml.block_mean(frames, (2, 2))
    assert out.shape == (2, 2, 2) and out[0, 0, 0] == np.mean([0, 1, 4, 5])
    with pytest.raises(sdoml.SDOMLError, match="does not divide"):
        sdoml.block_mean(frames, (3, 3))


def test_a_catalog_entry_builds_the_cube_and_reuses_it(sdoml_store, tmp_path):
    import json

    import yaml

    from flarelib.cube.catalog import load_catalog

    entry = {"kind": "sdoml_v2", "description": "REAL frames in the SDOML v2 layout on a local S3 server",
             "synthetic": False, "licence": "NASA/SDO public data", "citation": "test",
             "time_range": ["2011-02-15T01:40:00", "2011-02-15T02:10:00"], "channels": list(CHANNELS),
             "query": {"url": sdoml_store["url"], "storage_options": sdoml_store["read"]},
             "cube": {"cadence": "2min", "tolerance": "60s", "events_from": "hek-local",
                      "forecasts": [["0min", "10min"]], "steps_per_write": 4}}
    hek = {"kind": "hek_events", "description": "HEK flares (saved earlier)", "synthetic": False,
           "licence": "public", "citation": "HEK", "query": {}, "time_range": ["2011-02-15", "2011-02-16"]}
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "entries": {"sdoml-local": entry, "hek-local": hek}}))
    cat = load_catalog(path)
    saved = cat.download_dir("hek-local", tmp_path / "b") / "events.json"  # as a first, online run leaves it
    saved.parent.mkdir(parents=True)
    saved.write_text(json.dumps({"catalog_spec": cat["hek-local"].fingerprint, "events": [FLARE_EVENT]}))
    cube_path = cat.build("sdoml-local", build_dir=tmp_path / "b", progress=False)
    cube = cat.open("sdoml-local", build_dir=tmp_path / "b")
    assert cube.sizes["time"] == 9 and cube.attrs["licence"] == "NASA/SDO public data"
    assert cube.event_class.values.tolist() == ["X2.2"] and cube.attrs["target_source"] == "event-list"
    assert float(cube.flux_now.max()) == pytest.approx(2.2e-4, rel=1e-3)  # labels from the HEK entry
    stamp = (cube_path / ".zattrs").stat().st_mtime_ns
    assert cat.build("sdoml-local", build_dir=tmp_path / "b") == cube_path
    assert (cube_path / ".zattrs").stat().st_mtime_ns == stamp  # reused, not rebuilt


def test_pixels_are_read_in_bounded_blocks(sdoml_store, tmp_path, monkeypatch):
    import zarr

    reads = []
    original = zarr.Array.get_orthogonal_selection

    def spy(self, selection, **kw):
        if isinstance(selection, tuple) and isinstance(selection[0], list):  # the reader's frame picks
            reads.append(len(selection[0]))
        return original(self, selection, **kw)

    monkeypatch.setattr(zarr.Array, "get_orthogonal_selection", spy)
    sdoml.build_sdoml_cube(tmp_path / "c.zarr", name="sample", url=sdoml_store["url"],
                           storage_options=sdoml_store["read"],
                           rules=SlotRules(channels=CHANNELS, cadence="2min", tolerance="60s",
                                           start="2011-02-15T01:40", end="2011-02-15T02:10"),
                           write=WriteOptions(steps_per_write=2, progress=False))
    assert reads and max(reads) <= 2  # never more than `steps_per_write` frames of a channel at once
    assert sum(reads) == 9 * len(CHANNELS)  # each used frame read once


def test_a_cube_from_the_s3_store_lines_up_with_the_real_flare_targets(sdoml_store, tmp_path):
    """How a CNN on real images would join notebook 10's table: the SDOML cube's own time axis, read from the
    local S3 store, gets the real NOAA targets, causally ("a flare peaks in (t, t + 24 h]")."""
    from flarelib.evaluate import real

    rules = SlotRules(channels=CHANNELS, cadence="2min", tolerance="60s")
    rules = dataclasses.replace(rules, start="2011-02-15T01:40", end="2011-02-15T02:10")
    path = sdoml.build_sdoml_cube(tmp_path / "s3.zarr", name="sdoml", url=sdoml_store["url"],
                                  storage_options=sdoml_store["read"], rules=rules,
                                  write=WriteOptions(steps_per_write=4, progress=False))
    times = open_cube(path)["time"].values
    targets = real.targets_at(real.load_real_history(), times)
    peak = np.datetime64("2011-02-15T01:56")  # the X2.2 of AR 11158, in the NOAA event list
    before = times < peak
    assert before.any() and (~before).any()
    assert (targets["event_X"].to_numpy()[before] == 1).all()  # the X2.2 is ahead of every earlier frame
    assert (targets["event_X"].to_numpy()[~before] == 0).all()  # and behind every later one (no other X in 24 h)
    assert targets["max_flux"].to_numpy()[before] == pytest.approx(2.2e-4)
