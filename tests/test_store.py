"""The Zarr cube: schema, storage settings, completeness and a resume after a real kill."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from flarelib.cube import ingest, store
from flarelib.cube.align import SlotRules, Targets
from tests.conftest import FLARE_EVENT, ROOT

BUILD = dict(name="sample-flare-2011-02-15", rules=SlotRules(cadence="2min", tolerance="60s"),
             targets=Targets(events=[FLARE_EVENT], forecasts=[("0min", "10min"), ("10min", "10min")]),
             write=store.WriteOptions(progress=False))


@pytest.fixture(scope="module")
def flare_cube(tmp_path_factory):
    files = sorted((ROOT / "data/real/aia_flare_2011-02-15").glob("*.fits"))
    return ingest.build_fits_cube(files, tmp_path_factory.mktemp("c") / "flare.zarr", **BUILD)


@pytest.mark.slow
def test_plain_xarray_opens_the_cube_with_the_schema(flare_cube):
    code = ("import sys, xarray as xr; ds = xr.open_zarr(sys.argv[1]); "
            "assert 'flarelib' not in sys.modules; print(dict(ds.sizes), ds.aia.attrs.get('units', ''))")
    out = subprocess.run([sys.executable, "-c", code, str(flare_cube)], capture_output=True, text=True, check=True)
    assert "'time': 10" in out.stdout
    ds = xr.open_zarr(flare_cube)
    assert ds.aia.dims == ("time", "channel", "y", "x") and ds.aia.dtype == np.float32
    assert ds.time.dtype == np.dtype("datetime64[ns]")
    assert ds.channel.values.tolist() == [94, 131, 171, 193, 211, 335]
    for name in ("t_obs", "exptime", "quality", "source"):
        assert name in ds.coords and ds[name].dims == ("time", "channel")
    assert ds.exptime.sel(channel=193).min() < 0.01  # the AEC frames
    assert ds.attrs["synthetic"] is False
    assert ds.attrs["target_source"] == "event-list" and ds.flux_now.attrs["target_source"] == "event-list"
    assert ds.attrs["dataset_card"] == (ROOT / "flarelib/cube/DATASET_CARD.md").read_text()
    inputs = json.loads(ds.attrs["inputs"])
    assert len(inputs) == 60 and all(len(i["sha256"]) == 64 for i in inputs)
    assert [s["step"] for s in json.loads(ds.attrs["prep_steps"])] == ["register", "degradation", "exposure"]
    assert "aiapy" in json.loads(ds.attrs["software_versions"])
    assert ds.event_class.values.tolist() == ["X2.2"]


@pytest.mark.slow
def test_storage_is_zarr_v2_blosc_zstd_crc32_one_step_chunks_consolidated(flare_cube):
    assert (flare_cube / ".zmetadata").exists() and (flare_cube / ".zgroup").exists()
    meta = json.loads((flare_cube / "aia" / ".zarray").read_text())
    assert meta["zarr_format"] == 2
    assert meta["chunks"] == [1, 6, 67, 67]
    # Blosc as the v2 filter, a CRC32 over the stored bytes as the v2 compressor (issue 13: checksummed chunks)
    blosc = meta["filters"][0]
    assert blosc["id"] == "blosc" and blosc["cname"] == "zstd" and blosc["shuffle"] == 1
    assert meta["compressor"]["id"] == "crc32"
    attrs = zarr.open_group(str(flare_cube), mode="r").attrs
    assert attrs["ingest_status"] == "complete" and attrs["store_schema"] == store.STORE_SCHEMA
    assert store.verify_cube(flare_cube).ok


@pytest.mark.slow
def test_rebuilding_a_complete_store_is_a_no_op_and_other_inputs_are_refused(flare_cube, tmp_path):
    before = (flare_cube / "aia" / ".zarray").stat().st_mtime_ns
    files = sorted((ROOT / "data/real/aia_flare_2011-02-15").glob("*.fits"))
    ingest.build_fits_cube(files, flare_cube, **BUILD)
    assert (flare_cube / "aia" / ".zarray").stat().st_mtime_ns == before
    with pytest.raises(store.CubeMismatchError, match="other inputs"):
        ingest.build_fits_cube(files[:30], flare_cube, **BUILD)
    stranger = tmp_path / "not-a-cube.zarr"
    stranger.mkdir()
    (stranger / "precious.txt").write_text("keep me")
    with pytest.raises(store.CubeMismatchError, match="not a flarelib cube"):
        ingest.build_fits_cube(files, stranger, **BUILD)
    assert (stranger / "precious.txt").exists()


@pytest.mark.slow
def test_frame_map_rebuilds_a_sunpy_map(flare_cube):
    ds = store.open_cube(flare_cube)
    smap = ingest.frame_map(ds, 7, 193)
    assert smap.data.shape == (67, 67) and str(smap.unit) == "DN / s"
    assert smap.wavelength.value == 193


WRITER = """
import sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from flarelib.cube import ingest, store
from flarelib.cube.align import SlotRules, Targets
from tests.conftest import FLARE_EVENT
files = sorted(Path({root!r}, "data/real/aia_flare_2011-02-15").glob("*.fits"))
ingest.build_fits_cube(files, Path(sys.argv[1]), name="sample-flare-2011-02-15",
                       rules=SlotRules(cadence="2min", tolerance="60s"),
                       targets=Targets(events=[FLARE_EVENT], forecasts=[("0min", "10min"), ("10min", "10min")]),
                       write=store.WriteOptions(progress=False, on_written=lambda i0, i1: time.sleep(0.4)))
"""


@pytest.mark.slow
def test_a_killed_ingest_resumes_to_the_same_store(flare_cube, tmp_path):
    target = tmp_path / "killed.zarr"
    proc = subprocess.Popen([sys.executable, "-c", WRITER.format(root=str(ROOT)), str(target)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    written = 0
    while time.time() < deadline:
        if (target / "ingested").exists():
            written = int(zarr.open_group(str(target), mode="r")["ingested"][:].sum())
            if written >= 3:
                break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 3 <= written < 10, "the writer was not caught mid-way"

    # the interrupted store says so, to flarelib and to plain xarray
    plain = xr.open_zarr(target)
    assert plain.attrs["ingest_status"] == "incomplete"
    with pytest.raises(store.IncompleteCubeError, match="incomplete"):
        store.open_cube(target)
    status = store.cube_status(target)
    assert status["status"] == "incomplete" and 0 < len(status["missing"]) < 10
    missing = plain.ingested.values == 0
    assert np.isnan(plain.aia.values[missing]).all()

    files = sorted((ROOT / "data/real/aia_flare_2011-02-15").glob("*.fits"))
    ingest.build_fits_cube(files, target, **BUILD)
    resumed, reference = store.open_cube(target).load(), store.open_cube(flare_cube).load()
    xr.testing.assert_identical(resumed, reference)
    assert resumed.attrs == reference.attrs


def test_open_cube_errors():
    with pytest.raises(FileNotFoundError, match="build it first"):
        store.open_cube(Path("/nonexistent/cube.zarr"))
