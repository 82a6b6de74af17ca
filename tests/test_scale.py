"""Scale-out on existing engines: Dask-distributed ingest and DDP training (2 CPU processes, gloo)."""

import datetime
import json
import logging
import os
import socket
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from conftest import FLARE_EVENT, ROOT
from flarelib.cube import store
from flarelib.cube.align import SlotRules, Targets
from flarelib.cube.ingest import build_fits_cube
from flarelib.cube.store import CubeLockedError, IncompleteCubeError, WriteOptions, cube_status, open_cube

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
    assert not _exists(s3_server, "cubes/sample.zarr.lock")  # the driver's lease, gone; the workers took none


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
    assert not _exists(s3_server, "cubes/cut.zarr.lock")


# --------------------------------------------------------------------------- the writer lease on object storage

def _bucket(s3_server):
    import s3fs

    fs = s3fs.S3FileSystem(**s3_server["write"])
    if not fs.exists("cubes"):
        fs.mkdir("cubes")
    return fs


def _exists(s3_server, key: str) -> bool:
    fs = _bucket(s3_server)
    fs.invalidate_cache()
    return fs.exists(key)


def _tiny_write(url: str, s3_server, fill=None, nt: int = 3) -> str:
    times = np.datetime64("2031-01-01", "ns") + np.arange(nt) * np.timedelta64(1, "h")
    template = xr.Dataset({"flux_now": ("time", np.linspace(1e-6, 1e-5, nt))}, coords={"time": times},
                          attrs={"input_fingerprint": "lease-1"})
    streamed = {"aia": (("y", "x"), (2, 2), "float32")}
    fill = fill or (lambda i0, i1: {"aia": np.ones((i1 - i0, 2, 2), np.float32)})
    options = WriteOptions(progress=False, storage_options=s3_server["write"])
    return store.write_cube(url, template, streamed, fill, options)


def _lease(host: str, pid: int, age: datetime.timedelta, token: str = "theirs") -> bytes:
    when = (datetime.datetime.now(datetime.UTC) - age).isoformat(timespec="seconds")
    return json.dumps({"host": host, "pid": pid, "started": when, "refreshed": when, "token": token}).encode()


def test_a_second_writer_on_object_storage_is_refused_naming_the_lease_holder(s3_server, monkeypatch):
    with pytest.raises(FileNotFoundError, match="s3://no-bucket/x.zarr: cannot create its writer lease .*bucket"):
        _tiny_write("s3://no-bucket/x.zarr", s3_server)
    monkeypatch.setenv("FLARELIB_LOCK_TIMEOUT", "0")
    fs = _bucket(s3_server)
    url = "s3://cubes/leased.zarr"
    with store.store_lock(url, storage_options=s3_server["write"]):
        lease = json.loads(fs.cat_file("cubes/leased.zarr.lock"))
        assert (lease["host"], lease["pid"]) == (socket.gethostname(), os.getpid())
        assert set(lease) == {"host", "pid", "started", "refreshed", "token"}
        with pytest.raises(CubeLockedError) as err:
            _tiny_write(url, s3_server)
        message = str(err.value)
        assert message.startswith(f"{url} is being written by host {socket.gethostname()} pid {os.getpid()} "
                                  f"(started {lease['started']}")
        assert f"`aws s3 rm {url}.lock --endpoint-url {s3_server['endpoint']}`" in message
        assert not _exists(s3_server, "cubes/leased.zarr")  # the refused writer wrote nothing
    assert not _exists(s3_server, "cubes/leased.zarr.lock")

    fs.pipe_file("cubes/leased.zarr.lock", _lease("node7", 4242, datetime.timedelta(minutes=5)))
    with pytest.raises(CubeLockedError, match=r"leased.zarr is being written by host node7 pid 4242 .*wait for"):
        _tiny_write(url, s3_server)
    assert _exists(s3_server, "cubes/leased.zarr.lock")  # another writer's live lease is never deleted
    fs.rm_file("cubes/leased.zarr.lock")  # what the message tells a user to do once node7's writer is dead
    assert _tiny_write(url, s3_server) == url
    assert open_cube(url, storage_options=s3_server["write"]).sizes["time"] == 3


def test_the_object_storage_lease_is_deleted_after_a_failed_write_and_after_a_good_one(s3_server):
    _bucket(s3_server)
    url = "s3://cubes/released.zarr"

    def broken(i0, i1):
        raise RuntimeError("an input is unreadable")

    with pytest.raises(RuntimeError, match="an input is unreadable"):
        _tiny_write(url, s3_server, fill=broken)
    assert not _exists(s3_server, "cubes/released.zarr.lock")
    assert _tiny_write(url, s3_server) == url  # the next writer is not kept waiting: it resumes the store
    assert not _exists(s3_server, "cubes/released.zarr.lock")
    assert cube_status(url, storage_options=s3_server["write"])["status"] == "complete"


def test_a_stale_object_storage_lease_is_broken_with_a_warning(s3_server, monkeypatch, caplog):
    monkeypatch.setenv("FLARELIB_LOCK_TIMEOUT", "0")
    fs = _bucket(s3_server)
    url = "s3://cubes/stale.zarr"
    fs.pipe_file("cubes/stale.zarr.lock", _lease("gone-node", 99, datetime.timedelta(hours=7)))
    with caplog.at_level(logging.WARNING, logger="flarelib.cube.store"):
        assert _tiny_write(url, s3_server) == url
    assert f"breaking the stale writer lease {url}.lock of host gone-node pid 99" in caplog.text
    assert not _exists(s3_server, "cubes/stale.zarr.lock")

    monkeypatch.setenv("FLARELIB_LEASE_MAX_AGE", "60")  # the age is configurable
    fs.pipe_file("cubes/stale.zarr.lock", _lease("gone-node", 98, datetime.timedelta(minutes=2)))
    with store.store_lock(url, storage_options=s3_server["write"]):
        assert json.loads(fs.cat_file("cubes/stale.zarr.lock"))["pid"] == os.getpid()


def test_an_object_storage_lease_is_refreshed_and_never_deleted_once_another_writer_holds_it(s3_server, caplog):
    fs = _bucket(s3_server)
    url = "s3://cubes/refreshed.zarr"
    lease = store._Lease(url, s3_server["write"])
    with lease.held(0):
        fs.pipe_file("cubes/refreshed.zarr.lock", _lease("here", 1, datetime.timedelta(hours=5), token=lease.token))
        assert lease.refresh()
        assert lease.age(json.loads(fs.cat_file("cubes/refreshed.zarr.lock"))) < 600
        fs.pipe_file("cubes/refreshed.zarr.lock", _lease("node7", 4242, datetime.timedelta(0)))  # it was broken
        with caplog.at_level(logging.ERROR, logger="flarelib.cube.store"):
            assert not lease.refresh()
        assert "is no longer this writer's (now held by host node7 pid 4242" in caplog.text
    assert json.loads(fs.cat_file("cubes/refreshed.zarr.lock"))["pid"] == 4242  # not ours to delete
    fs.rm_file("cubes/refreshed.zarr.lock")
