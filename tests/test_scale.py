"""Scale-out on existing engines: Dask-distributed ingest and DDP training (2 CPU processes, gloo)."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from conftest import FLARE_EVENT, ROOT
from flarelib.cube.align import SlotRules, Targets
from flarelib.cube.ingest import build_fits_cube
from flarelib.cube.store import IncompleteCubeError, WriteOptions, cube_status, open_cube

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dask_client():
    from flarelib.cube.store import dask_client

    client, cluster = dask_client("local:2")
    yield client
    client.close()
    cluster.close()


def build(files, path, **kw):
    return build_fits_cube(files, path, name="sample", rules=SlotRules(cadence="2min", tolerance="60s"),
                           targets=Targets(events=[FLARE_EVENT], forecasts=[("0min", "10min")]),
                           write=WriteOptions(progress=False, **kw))


def test_two_dask_workers_write_the_same_store_as_the_serial_path(flare_files, tmp_path, dask_client):
    assert len(dask_client.scheduler_info()["workers"]) == 2
    serial = open_cube(build(flare_files, tmp_path / "serial.zarr")).load()
    parallel = open_cube(build(flare_files, tmp_path / "dask.zarr", scheduler=dask_client)).load()
    xr.testing.assert_identical(serial, parallel)  # pixels, coordinates, targets and attrs
    logs = dask_client.get_worker_logs()
    assert len(logs) == 2


def test_an_interrupted_dask_ingest_resumes_to_the_same_store(flare_files, tmp_path, dask_client):
    import zarr

    serial = open_cube(build(flare_files, tmp_path / "serial.zarr")).load()
    path = build(flare_files, tmp_path / "dask.zarr", scheduler=dask_client)
    group = zarr.open_group(str(path), mode="r+", zarr_format=2)  # as if the workers of 3 steps had died
    group["ingested"][2:5] = 0
    group["aia"][2:5] = np.nan
    group.attrs["ingest_status"] = "incomplete"
    assert cube_status(path)["n_ingested"] == 7
    build(flare_files, path, scheduler=dask_client)
    xr.testing.assert_identical(serial, open_cube(path).load())


def test_ddp_trains_on_two_cpu_processes_with_sane_metrics(small_cube_path, tmp_path):
    """``strategy: ddp`` from config: 2 processes (gloo) on the small SYNTHETIC cube."""
    env = dict(os.environ, FLARELIB_DATA_DIR=str(small_cube_path.parent), PYTHONWARNINGS="ignore")
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "flarelib.learn.runs", "fit", "--config", str(ROOT / "configs/small.yaml"),
           "--config", str(ROOT / "configs/ddp-cpu.yaml"), "--trainer.max_epochs=2",
           f"--trainer.default_root_dir={run}", f"--trainer.logger.init_args.save_dir={run}"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "distributed_backend=gloo" in proc.stderr and "MEMBER: 2/2" in proc.stderr
    metrics = pd.read_csv(next(run.rglob("metrics.csv")))
    epochs = metrics.dropna(subset=["val_loss"])
    assert list(epochs.epoch) == [0, 1]
    assert np.isfinite(epochs[["val_loss", "val_mae"]].to_numpy()).all()
    assert (epochs.val_mae < 1.0).all()  # dex; an untrained network is off by several
    train = metrics.dropna(subset=["train_loss_epoch"])
    assert train.train_loss_epoch.iloc[-1] < train.train_loss_epoch.iloc[0]
    assert list(run.rglob("*.ckpt"))


def test_dask_workers_write_the_cube_straight_to_object_storage(flare_files, tmp_path, dask_client, s3_server):
    """Nothing on local disk: 2 worker processes write their regions into a bucket of the local S3 server."""
    import boto3

    boto3.client("s3", endpoint_url=s3_server["endpoint"]).create_bucket(Bucket="cubes")
    url = "s3://cubes/sample.zarr"
    options = s3_server["write"]
    serial = open_cube(build(flare_files, tmp_path / "serial.zarr")).load()
    assert build(flare_files, url, scheduler=dask_client, storage_options=options) == url
    on_s3 = open_cube(url, storage_options=options).load()
    xr.testing.assert_identical(serial, on_s3)
    assert cube_status(url, storage_options=options)["status"] == "complete"
    assert not list(tmp_path.glob("*.template-tmp"))


def test_a_cut_off_template_on_object_storage_is_written_again(flare_files, s3_server):
    import s3fs

    options = s3_server["write"]
    fs = s3fs.S3FileSystem(**options)
    if not fs.exists("cubes"):
        fs.mkdir("cubes")
    url = "s3://cubes/cut.zarr"
    fs.pipe("cubes/cut.zarr/.zgroup", b'{"zarr_format": 2}')  # what a writer killed before .zmetadata leaves
    with pytest.raises(IncompleteCubeError, match="template"):
        open_cube(url, storage_options=options)
    build(flare_files, url, storage_options=options)
    assert open_cube(url, storage_options=options).sizes["time"] == 10
