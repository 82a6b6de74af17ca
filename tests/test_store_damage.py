"""Bad-input corpus for the store and the catalog command (issue 13, sections 1, 4, 5 and 6).

Each case: an input made by a fixture (a tiny cube written by ``store.write_cube``, a tiny
catalog, a damaged copy), the call, and the expected named error or outcome. The cubes are
6 steps of 2x4x4 px (``write_cube`` directly) or a 1-day, 64x64 synthetic sun (the catalog).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from flarelib.cube import catalog, store
from tests.conftest import ROOT

# --------------------------------------------------------------------------- a tiny cube written by write_cube

NT = 6


def _template(fingerprint: str = "tiny-1") -> tuple[xr.Dataset, dict]:
    times = np.datetime64("2031-01-01", "ns") + np.arange(NT) * np.timedelta64(1, "h")
    template = xr.Dataset({"flux_now": ("time", np.linspace(1e-6, 1e-5, NT))},
                          coords={"time": times, "channel": np.array([94, 171], dtype=np.int32),
                                  "source": (("time", "channel"), np.full((NT, 2), "synthetic"))},
                          attrs={"input_fingerprint": fingerprint})
    streamed = {"aia": (("channel", "y", "x"), (2, 4, 4), "float32"), "mask": (("y", "x"), (4, 4), "uint8")}
    return template, streamed


class Filler:
    """``fill_steps`` that records which steps it was asked for (aia = step index, mask = 0: a fill-value chunk)."""

    def __init__(self):
        self.steps: list[int] = []

    def __call__(self, i0: int, i1: int) -> dict[str, np.ndarray]:
        self.steps += list(range(i0, i1))
        aia = np.arange(i0, i1, dtype=np.float32)[:, None, None, None] + np.zeros((1, 2, 4, 4), np.float32)
        return {"aia": aia, "mask": np.zeros((i1 - i0, 4, 4), np.uint8)}


def write_tiny(path: Path, fingerprint: str = "tiny-1", **options) -> tuple[Path, Filler]:
    template, streamed = _template(fingerprint)
    filler = Filler()
    options.setdefault("progress", False)
    return Path(store.write_cube(path, template, streamed, filler, store.WriteOptions(**options))), filler


@pytest.fixture(scope="module")
def tiny_reference(tmp_path_factory) -> Path:
    return write_tiny(tmp_path_factory.mktemp("ref") / "ref.zarr")[0]


@pytest.fixture
def tiny(tiny_reference, tmp_path) -> Path:
    """A fresh copy of the tiny cube, free to damage."""
    return Path(shutil.copytree(tiny_reference, tmp_path / "tiny.zarr"))


def flip(path: Path, byte: int = 12) -> None:
    data = bytearray(path.read_bytes())
    data[min(byte, len(data) - 1)] ^= 0x10
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-7])


def unlink(path: Path) -> None:
    path.unlink()


def empty(path: Path) -> None:
    path.write_bytes(b"")


# (case id, damage: (path of the store) -> None, variable, time step or None, where it is caught, re-ingestable)
DAMAGE = [
    ("aia-chunk-deleted", lambda p: unlink(p / "aia/3.0.0.0"), "aia", 3, "open", True),
    ("aia-chunk-bit-flipped", lambda p: flip(p / "aia/2.0.0.0"), "aia", 2, "read", True),
    ("aia-chunk-bit-flipped-in-crc", lambda p: flip(p / "aia/4.0.0.0", 1), "aia", 4, "read", True),
    ("aia-chunk-truncated", lambda p: truncate(p / "aia/5.0.0.0"), "aia", 5, "read", True),
    ("aia-chunk-emptied", lambda p: empty(p / "aia/0.0.0.0"), "aia", 0, "read", True),
    ("aia-folder-deleted", lambda p: shutil.rmtree(p / "aia"), "aia", None, "open", True),
    ("mask-fill-chunk-deleted", lambda p: unlink(p / "mask/1.0.0"), "mask", 1, "open", True),
    ("mask-chunk-bit-flipped", lambda p: flip(p / "mask/4.0.0"), "mask", 4, "read", True),
    ("ingested-chunk-deleted", lambda p: unlink(p / "ingested/2"), "ingested", 2, "open", True),
    ("aia-chunk-copied-over-another-step", lambda p: shutil.copyfile(p / "aia/2.0.0.0", p / "aia/3.0.0.0"), "aia", 3,
     "read", True),
    ("target-chunk-bit-flipped", lambda p: flip(p / "flux_now/0"), "flux_now", None, "read", False),
    ("time-chunk-bit-flipped", lambda p: flip(p / "time/0"), "time", None, "open", False),
    ("string-coord-truncated", lambda p: truncate(p / "source/0.0"), "source", None, "read", False),
]


@pytest.mark.parametrize("damage, variable, step, caught", [d[1:5] for d in DAMAGE], ids=[d[0] for d in DAMAGE])
def test_a_damaged_chunk_raises_an_error_naming_store_variable_and_step(tiny, damage, variable, step, caught):
    damage(tiny)
    pattern = f"{tiny}.*{variable}" + (f".*time steps? \\[?{step}" if step is not None else "")
    if caught == "open":
        with pytest.raises(store.DamagedCubeError, match=pattern):
            store.open_cube(tiny)
    else:
        ds = store.open_cube(tiny)
        with pytest.raises(store.DamagedCubeError, match=pattern):
            ds.load()
    report = store.verify_cube(tiny)
    assert not report.ok and any(p.variable == variable for p in report.problems)
    if step is not None:
        assert step in report.damaged_steps
    assert all(str(tiny) in line for line in report.lines())


REPAIRABLE = [d for d in DAMAGE if d[5]]


@pytest.mark.parametrize("damage, step", [(d[1], d[3]) for d in REPAIRABLE], ids=[d[0] for d in REPAIRABLE])
def test_a_rebuild_reingests_exactly_the_damaged_steps(tiny, tiny_reference, damage, step):
    damage(tiny)
    store.mark_damaged(tiny)  # what `catalog build` does first
    assert store.cube_status(tiny)["status"] == "incomplete"
    _, filler = write_tiny(tiny)
    assert filler.steps == ([step] if step is not None else list(range(NT)))
    assert store.verify_cube(tiny).ok
    xr.testing.assert_identical(store.open_cube(tiny).load(), store.open_cube(tiny_reference).load())


def test_swapped_chunks_keep_valid_checksums_but_not_their_places(tiny, tiny_reference):
    """Two chunks moved between time steps each pass their own CRC32; the manifest binds each to its key."""
    a, b = tiny / "aia/1.0.0.0", tiny / "aia/4.0.0.0"
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    with pytest.raises(store.DamagedCubeError, match="aia.*time step [14].*moved or swapped"):
        store.open_cube(tiny)["aia"].load()
    report = store.verify_cube(tiny)
    assert report.damaged_steps == (1, 4) and "holds the bytes written at aia/4.0.0.0" in report.lines()[0]
    store.mark_damaged(tiny)
    assert not (tiny / store.MANIFEST_KEY).exists()
    _, filler = write_tiny(tiny)
    assert filler.steps == [1, 4] and store.verify_cube(tiny).ok and (tiny / store.MANIFEST_KEY).exists()
    xr.testing.assert_identical(store.open_cube(tiny).load(), store.open_cube(tiny_reference).load())


def test_an_unreadable_manifest_does_not_switch_the_check_off(tiny, tiny_reference):
    (tiny / store.MANIFEST_KEY).write_bytes(b'{"aia/0.0.0.0": ')  # cut off
    with pytest.raises(store.DamagedCubeError, match="chunk_checksums.json is unreadable"):
        store.open_cube(tiny)
    report = store.verify_cube(tiny)
    assert not report.ok and report.repairable and "chunk_checksums.json is unreadable" in report.lines()[0]
    store.mark_damaged(tiny, report)
    _, filler = write_tiny(tiny)
    assert filler.steps == [] and store.verify_cube(tiny).ok and (tiny / store.MANIFEST_KEY).exists()
    xr.testing.assert_identical(store.open_cube(tiny).load(), store.open_cube(tiny_reference).load())


def test_a_deleted_chunk_is_found_and_refilled_by_a_plain_rerun_of_the_writer(tiny, tiny_reference):
    (tiny / "aia/3.0.0.0").unlink()
    _, filler = write_tiny(tiny)  # the writer's cheap check lists the chunks of a complete store
    assert filler.steps == [3]
    xr.testing.assert_identical(store.open_cube(tiny).load(), store.open_cube(tiny_reference).load())


def test_damage_outside_the_steps_is_not_repaired_in_place(tiny):
    flip(tiny / "flux_now/0")
    with pytest.raises(store.DamagedCubeError, match="flux_now.*not re-ingestable.*--overwrite"):
        store.mark_damaged(tiny)


def test_plain_xarray_also_refuses_a_bit_flip(tiny):
    flip(tiny / "aia/2.0.0.0")
    with pytest.raises(RuntimeError, match="checksum"):
        xr.open_zarr(tiny).aia.load()


def test_a_missing_consolidated_metadata_is_consolidated_again_by_a_rerun(tiny, tiny_reference):
    (tiny / ".zmetadata").unlink()
    with pytest.raises(store.IncompleteCubeError, match="no consolidated metadata.*deleted.*consolidates it again"):
        store.open_cube(tiny)
    report = store.verify_cube(tiny)
    assert not report.ok and "consolidates the metadata again" in report.fix()
    _, filler = write_tiny(tiny)  # the advice works: the same ingest consolidates it again, re-ingesting nothing
    assert filler.steps == []
    xr.testing.assert_identical(store.open_cube(tiny).load(), store.open_cube(tiny_reference).load())


# --------------------------------------------------------------------------- stores flarelib did not write (alone)


@pytest.mark.parametrize("consolidated", [True, False])
def test_a_foreign_zarr_store_is_named_so_and_never_deleted(tmp_path, consolidated):
    foreign = tmp_path / "foreign.zarr"
    xr.Dataset({"a": ("t", np.arange(3.0))}).to_zarr(foreign, zarr_format=2, consolidated=consolidated)
    with pytest.raises(store.OutdatedCubeError, match="not a flarelib cube: a Zarr store written by other software"):
        store.open_cube(foreign)
    report = store.verify_cube(foreign)
    assert "not a flarelib cube" in report.lines()[0] and "store schema 1" not in report.lines()[0]
    assert "does not delete" in report.fix()
    with pytest.raises(store.CubeMismatchError, match="not a flarelib cube.*will not delete it"):
        write_tiny(foreign, overwrite=True)
    assert (foreign / "a").is_dir()


def test_a_zarr_v3_copy_is_named_so(tiny_reference, tmp_path):
    copy = tmp_path / "v3.zarr"
    cube = xr.open_zarr(tiny_reference).load()
    for var in cube.variables.values():
        var.encoding = {}
    cube.to_zarr(copy, zarr_format=3)
    with pytest.raises(store.OutdatedCubeError, match="not a flarelib cube: a Zarr v3 store"):
        store.open_cube(copy)


def test_a_plain_xarray_copy_is_said_to_be_a_copy(tiny_reference, tmp_path):
    copy = tmp_path / "copy.zarr"
    xr.open_zarr(tiny_reference).to_zarr(copy, zarr_format=2)  # leaves out the all-zero mask chunks, no manifest
    with pytest.raises(store.DamagedCubeError, match="no chunk manifest.*a copy made by other software"):
        store.open_cube(copy)
    assert any("a copy made by other software" in note for note in store.verify_cube(copy).notes)


def _append_extra_to(path: Path, keep_attrs: bool) -> None:
    """Append a variable ``extra`` with plain xarray (``keep_attrs=False``: as xarray does, it writes empty attrs)."""
    cube = xr.open_zarr(path)
    attrs = dict(cube.attrs) if keep_attrs else {}
    xr.Dataset({"extra": ("time", np.arange(cube.sizes["time"], dtype=float))}, attrs=attrs).to_zarr(
        path, mode="a", zarr_format=2)


def test_a_variable_appended_with_xarray_is_kept_and_not_called_damage(tiny, tiny_reference):
    _append_extra_to(tiny, keep_attrs=True)
    report = store.verify_cube(tiny)
    assert report.ok and report.added == ("extra",)
    assert "'extra' was not written by flarelib" in report.notes[0]
    np.testing.assert_array_equal(store.open_cube(tiny)["extra"].values, np.arange(NT))
    flip(tiny / "aia/2.0.0.0")  # real damage beside it: the repair re-ingests the step and keeps 'extra'
    report = store.verify_cube(tiny)
    assert report.repairable and "keeps ['extra']" in report.fix()
    store.mark_damaged(tiny, report)
    assert write_tiny(tiny)[1].steps == [2]
    np.testing.assert_array_equal(store.open_cube(tiny)["extra"].values, np.arange(NT))
    xr.testing.assert_identical(store.open_cube(tiny).drop_vars("extra").load(),
                                store.open_cube(tiny_reference).load())


def test_an_append_that_replaced_the_attrs_says_so_and_what_overwrite_deletes(tiny):
    _append_extra_to(tiny, keep_attrs=False)  # xarray writes the appended dataset's (empty) attrs over the cube's
    with pytest.raises(store.OutdatedCubeError, match="attrs were replaced by other software.*--overwrite. deletes it"
                                                      r".*\['extra'\]"):
        store.open_cube(tiny)
    with pytest.raises(store.CubeMismatchError, match=r"attrs were replaced.*\['extra'\] that flarelib did not write"):
        write_tiny(tiny)
    assert (tiny / "extra").is_dir()
    write_tiny(tiny, overwrite=True)
    assert store.verify_cube(tiny).ok and not (tiny / "extra").exists()


@pytest.mark.parametrize("variable", ["aia", "flux_now"])
def test_a_renamed_variable_is_named_by_open_verify_and_build(tiny, variable):
    import zarr

    (tiny / variable).rename(tiny / f"{variable}_x")
    zarr.consolidate_metadata(str(tiny), zarr_format=2)
    with pytest.raises(store.DamagedCubeError, match=f"tiny.zarr: variable '{variable}' .* is not in the store.*"
                                                     f"'{variable}_x'.*renamed"):
        store.open_cube(tiny)
    report = store.verify_cube(tiny)
    assert not report.ok and not report.repairable and f"variable '{variable}'" in report.lines()[0]
    with pytest.raises(store.DamagedCubeError, match=f"variable '{variable}'"):
        write_tiny(tiny)  # the writer neither reuses it as complete nor deletes it (the renamed one stays)
    assert (tiny / f"{variable}_x").is_dir()


# --------------------------------------------------------------------------- readers and writers (locks)


@contextlib.contextmanager
def another_writer(path: Path):
    """Another process holding a store's write lock (as a build in progress does); yields its pid."""
    code = ("import sys; from flarelib.cube import store\n"
            f"with store.store_lock({str(path)!r}):\n    print('held', flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc.pid
    finally:
        proc.stdin.close()
        proc.wait()


@pytest.fixture
def other_writer(tiny):
    with another_writer(tiny) as pid:
        yield pid


def test_verify_of_a_store_being_written_says_a_build_is_in_progress(tiny, other_writer, monkeypatch):
    with pytest.raises(store.CubeLockedError, match=f"tiny.zarr is being written by pid {other_writer}: a build is "
                                                    "in progress"):
        store.verify_cube(tiny)  # never "chunk missing" for a chunk not written yet
    monkeypatch.setenv("FLARELIB_LOCK_TIMEOUT", "0")
    with pytest.raises(store.CubeLockedError, match=f"pid {other_writer}"):
        store.open_cube(tiny)


def test_a_writer_waits_for_a_reader(tiny):
    with store.read_lock(tiny):
        with pytest.raises(store.CubeLockedError, match=f"tiny.zarr is being read by pid {os.getpid()}"):
            write_tiny(tiny, lock_timeout=0.1)
    with store.store_lock(tiny):  # inside its own write lock a writer reads without waiting for itself
        assert store.verify_cube(tiny).ok


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="chmod does not restrict root")
def test_a_complete_cube_opens_from_a_read_only_folder(tiny, tiny_reference):
    folder = tiny.parent
    folder.chmod(0o555)
    try:
        _, filler = write_tiny(tiny)
        assert filler.steps == []
        xr.testing.assert_identical(store.open_cube(tiny).load(), store.open_cube(tiny_reference).load())
    finally:
        folder.chmod(0o755)


def _no_write_access(monkeypatch, tmp_path):
    """Where chmod cannot restrict (root): no folder is writable, no lock file can be made, no write lock taken."""

    class NoWriteLock:
        def __init__(self, *args, **kwargs):
            raise PermissionError("the write lock must not be taken to read")

    monkeypatch.setattr(store, "_writable", lambda folder: False)
    monkeypatch.setattr(store.filelock, "FileLock", NoWriteLock)
    monkeypatch.setattr(store, "_lock_file", lambda path: tmp_path / "no-such-folder" / "x.lock")


def test_reading_a_complete_cube_needs_no_write_access(tiny, tiny_reference, tmp_path, monkeypatch):
    """The same as above where chmod cannot restrict (root): no folder is writable, no lock file can be made."""

    _no_write_access(monkeypatch, tmp_path)
    _, filler = write_tiny(tiny)  # what catalog.open does first: reused, not rebuilt
    assert filler.steps == []
    xr.testing.assert_identical(store.open_cube(tiny).load(), store.open_cube(tiny_reference).load())
    assert store.verify_cube(tiny).ok
    with pytest.raises(PermissionError, match="other inputs.*not writable.*--build-dir"):
        write_tiny(tiny, fingerprint="tiny-2")


def test_a_store_of_the_old_schema_is_refused_and_rebuilt(tiny, tiny_reference):
    _drop_schema(tiny)
    with pytest.raises(store.OutdatedCubeError, match="schema 1.*rebuild"):
        store.open_cube(tiny)
    _, filler = write_tiny(tiny)
    assert filler.steps == list(range(NT))
    xr.testing.assert_identical(store.open_cube(tiny).load(), store.open_cube(tiny_reference).load())


def test_a_flag_reset_in_a_complete_store_is_reported(tiny):
    import zarr

    with zarr.config.set({"array.write_empty_chunks": True}):
        group = zarr.open_group(str(tiny), mode="r+", zarr_format=2)
        group["ingested"][1] = 0
    assert group.attrs["ingest_status"] == "complete"
    assert store.verify_cube(tiny).damaged_steps == (1,)


def test_a_store_deleted_mid_build_fails_the_write(tmp_path):
    target = tmp_path / "gone.zarr"

    def delete_after_first(i0, i1):
        if i0 == 0:
            shutil.rmtree(target)

    with pytest.raises(store.DamagedCubeError, match="gone.zarr.*verification.*deleted during the build"):
        write_tiny(target, on_written=delete_after_first)


def test_a_held_lock_gives_a_clear_one_line_error(tmp_path):
    target = tmp_path / "locked.zarr"
    with store.store_lock(target):
        with pytest.raises(store.CubeLockedError, match=f"locked.zarr is being written by pid {os.getpid()}: a build "
                                                        "is in progress") as err:
            write_tiny(target, lock_timeout=0.2)
    assert "\n" not in str(err.value)
    assert write_tiny(target)[0] == target and store.verify_cube(target).ok  # once released, it builds


def test_a_writer_lease_whose_exclusive_create_was_not_honoured_is_found_by_its_read_back(monkeypatch):
    """An fsspec file system (or S3 server) that lets a later writer overwrite the lease just created: the first
    writer reads it back after the settle delay, finds another token and does not write (tests/test_scale.py tests the
    lease against a real S3 server)."""
    import fsspec

    monkeypatch.setattr(store, "LEASE_SETTLE", 0.0)
    fs = fsspec.filesystem("memory")
    url, key = "memory://leases/racy.zarr", "leases/racy.zarr.lock"
    other = json.dumps({"host": "node7", "pid": 4242, "started": "2031-01-01T00:00:00+00:00",
                        "refreshed": "2099-01-01T00:00:00+00:00", "token": "theirs"}).encode()
    create = type(fs).pipe_file

    def ignores_create(self, path, value, mode="overwrite", **kwargs):
        create(self, path, value, mode=mode, **kwargs)
        if mode == "create":  # the other writer's create lands just after ours, and wins
            create(self, path, other)

    monkeypatch.setattr(type(fs), "pipe_file", ignores_create)
    with pytest.raises(store.CubeLockedError) as err:
        with store.store_lock(url, 0):
            pytest.fail("took a lease that another writer overwrote")
    assert str(err.value).startswith(f"{url} is being written by host node7 pid 4242 (started 2031-01-01T00:00:00")
    assert f"fsspec.core.url_to_fs('{url}.lock')" in str(err.value) and "\n" not in str(err.value)
    assert json.loads(fs.cat_file(key))["token"] == "theirs"  # never deleted by the writer that lost
    fs.rm_file(key)
    monkeypatch.setattr(type(fs), "pipe_file", create)
    with store.store_lock(url, 0):
        assert json.loads(fs.cat_file(key))["pid"] == os.getpid()
    assert not fs.exists(key)

def test_a_writer_interrupted_while_taking_its_lease_leaves_none(monkeypatch):
    import fsspec

    def interrupted(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(store.time, "sleep", interrupted)  # Ctrl-C during the settle delay, after the create
    with pytest.raises(KeyboardInterrupt):
        with store.store_lock("memory://leases/interrupted.zarr", 0):
            pytest.fail("the lease was taken")
    assert not fsspec.filesystem("memory").exists("leases/interrupted.zarr.lock")

def test_stale_templates_are_removed_and_names_are_unique(tmp_path):
    stale = tmp_path / "t.zarr.template-1234-deadbeef.tmp"
    stale.mkdir()
    write_tiny(tmp_path / "t.zarr")
    assert not stale.exists() and not list(tmp_path.glob("*.tmp"))


def test_other_inputs_are_refused_with_the_overwrite_advice(tiny):
    with pytest.raises(store.CubeMismatchError, match="other inputs.*--overwrite"):
        write_tiny(tiny, fingerprint="tiny-2")
    write_tiny(tiny, fingerprint="tiny-2", overwrite=True)
    assert store.read_attrs(tiny)["input_fingerprint"] == "tiny-2"


# --------------------------------------------------------------------------- catalog fields


def _entries() -> dict:
    return yaml.safe_load((ROOT / "data_catalog.yaml").read_text())["entries"]


def _with_absolute_paths(entry: dict) -> dict:
    return dict(entry, path=str(ROOT / entry["path"])) if "path" in entry else dict(entry)


def write_catalog(folder: Path, entries: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "data_catalog.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "entries": {k: _with_absolute_paths(v)
                                                              for k, v in entries.items()}}))
    return path


def _flare(**cube) -> dict:
    entry = _entries()["sample-flare-2011-02-15"]
    return dict(entry, cube={**entry["cube"], **cube})


FIELD_ERRORS = [
    ("cadence-zero", {"x": _flare(cadence="0min")}, "cube.cadence", "not positive"),
    ("cadence-negative", {"x": _flare(cadence="-12min")}, "cube.cadence", "not positive"),
    ("cadence-word", {"x": _flare(cadence="fast")}, "cube.cadence", "not a duration"),
    ("cadence-number", {"x": _flare(cadence=[12])}, "cube.cadence", "not a duration"),
    ("tolerance-negative", {"x": _flare(tolerance="-1min")}, "cube.tolerance", "not zero or positive"),
    ("lead-negative", {"x": _flare(forecasts=[["-1h", "10min"]])}, r"cube.forecasts\[0\].lead", "not zero or pos"),
    ("window-zero", {"x": _flare(forecasts=[["0min", "0min"]])}, r"cube.forecasts\[0\].window", "not positive"),
    ("forecast-not-a-pair", {"x": _flare(forecasts=["10min"])}, "cube.forecasts", "pairs"),
    ("sha256-null", {"x": dict(_entries()["goes15-2011-06-07"], sha256=None)}, "sha256", "is null"),
    ("time-range-reversed", {"x": dict(_entries()["goes15-2011-06-07"],
                                       time_range=["2011-06-08T00:00", "2011-06-07T00:00"])}, "time_range", "after"),
    ("time-range-garbage", {"x": dict(_entries()["goes15-2011-06-07"], time_range=["soon", "later"])},
     "time_range", "not two ISO times"),
    ("channels-duplicated", {"x": dict(_entries()["sample-flare-2011-02-15"], channels=[94, 94])}, "channels",
     "each once"),
    ("query-cadence-zero", {"x": dict(_entries()["fido-aia-2011-02-15"], query={"cadence": "0s"},
                                      cube={"cadence": "12min"})}, "query.cadence", "not positive"),
]


@pytest.mark.parametrize("entries, field, message", [c[1:] for c in FIELD_ERRORS], ids=[c[0] for c in FIELD_ERRORS])
def test_a_bad_catalog_value_is_a_one_line_error_naming_entry_and_field(tmp_path, entries, field, message):
    with pytest.raises(catalog.CatalogError, match=f"entry 'x', field {field}: .*{message}") as err:
        catalog.load_catalog(write_catalog(tmp_path, entries))
    assert "\n" not in str(err.value)


def test_time_range_cuts_a_goes_entry(tmp_path):
    entry = dict(_entries()["goes15-2011-06-07"], time_range=["2011-06-07T06:00:00", "2011-06-07T07:00:00"])
    xrs = catalog.load_catalog(write_catalog(tmp_path, {"g": entry})).open("g")
    times = xrs.time.values
    assert times.min() >= np.datetime64("2011-06-07T06:00") and times.max() <= np.datetime64("2011-06-07T07:00")
    assert times.size > 100


def test_a_time_range_outside_the_goes_files_is_an_error(tmp_path):
    entry = dict(_entries()["goes15-2011-06-07"], time_range=["2011-06-09T00:00:00", "2011-06-10T00:00:00"])
    with pytest.raises(catalog.CatalogError, match="entry 'g', field time_range: .*holds no sample"):
        catalog.load_catalog(write_catalog(tmp_path, {"g": entry})).open("g")


# --------------------------------------------------------------------------- the catalog command


def _tiny_entries(seed: int = 3) -> dict:
    full = _entries()
    return {"fulldisk-2014-01-01": full["fulldisk-2014-01-01"],
            "tiny": dict(full["synthetic-sun-small"], generator={"size": "small", "seed": seed, "days": 1.0})}


@pytest.fixture(scope="module")
def built_tiny(tmp_path_factory) -> tuple[Path, Path]:
    """(catalog file, build folder) with the tiny synthetic entry built once through the command."""
    folder = tmp_path_factory.mktemp("cat")
    cat = write_catalog(folder, _tiny_entries())
    assert catalog.main(["build", "tiny", "--catalog", str(cat), "--build-dir", str(folder / "b")]) == 0
    return cat, folder / "b"


@pytest.fixture
def tiny_catalog(built_tiny, tmp_path) -> tuple[Path, Path]:
    """A copy of the built tiny entry, free to damage: (catalog file, build folder)."""
    cat, built = built_tiny
    shutil.copytree(built / "tiny.zarr", tmp_path / "b" / "tiny.zarr")
    return cat, tmp_path / "b"


def cli(capsys, *args) -> tuple[int, str, str]:
    rc = catalog.main(list(map(str, args)))
    out = capsys.readouterr()
    return rc, out.out, out.err


CLI_ERRORS = [
    ("unknown-entry", ["build", "nope"], "no catalog entry 'nope'"),
    ("not-built-yet", ["verify", "fulldisk-level1-2011-02-15"], None),
    ("not-a-cube-kind", ["build", "goes15-2011-06-07"], "not built into cubes"),
]


@pytest.mark.parametrize("args, message", [c[1:] for c in CLI_ERRORS], ids=[c[0] for c in CLI_ERRORS])
def test_the_command_fails_with_one_line_and_a_non_zero_exit(capsys, tmp_path, args, message):
    rc, out, err = cli(capsys, *args, "--build-dir", tmp_path / "b")
    assert rc != 0
    if message:
        assert len(err.strip().splitlines()) == 1 and message in err and "--debug" in err
    else:
        assert "build it with" in out


def test_an_invalid_catalog_is_one_line_and_debug_shows_the_traceback(capsys, tmp_path, monkeypatch):
    bad = write_catalog(tmp_path, {"x": _flare(cadence="fast")})
    rc, _, err = cli(capsys, "list", "--catalog", bad)
    assert rc == 1 and err.count("\n") == 1 and "entry 'x', field cube.cadence" in err and "Traceback" not in err
    rc, _, err = cli(capsys, "list", "--catalog", bad, "--debug")
    assert rc == 1 and "Traceback" in err
    monkeypatch.setenv("FLARELIB_DEBUG", "1")
    rc, _, err = cli(capsys, "list", "--catalog", bad)
    assert rc == 1 and "Traceback" in err


def test_verify_passes_a_good_cube_and_lists_the_damaged_steps_of_a_bad_one(capsys, tiny_catalog):
    cat, build = tiny_catalog
    rc, out, _ = cli(capsys, "verify", "tiny", "--catalog", cat, "--build-dir", build)
    assert rc == 0 and "OK (24 of 24" in out
    flip(build / "tiny.zarr/aia/5.0.0.0")
    (build / "tiny.zarr/region_id/7.0.0").unlink()
    rc, out, _ = cli(capsys, "verify", "tiny", "--catalog", cat, "--build-dir", build)
    assert rc == 1 and "DAMAGED" in out and "[5, 7]" in out and "fix: flarelib catalog build tiny" in out


@pytest.mark.parametrize("damage", [lambda p: flip(p / "aia/5.0.0.0"), lambda p: shutil.rmtree(p / "aia"),
                                    lambda p: truncate(p / "flare_mask/9.0.0")],
                         ids=["bit-flip", "aia-folder-deleted", "mask-truncated"])
def test_build_repairs_the_damaged_steps(capsys, tiny_catalog, built_tiny, damage):
    cat, build = tiny_catalog
    damage(build / "tiny.zarr")
    rc, _, err = cli(capsys, "build", "tiny", "--catalog", cat, "--build-dir", build)
    assert rc == 0, err
    assert store.verify_cube(build / "tiny.zarr").ok
    xr.testing.assert_identical(store.open_cube(build / "tiny.zarr").load(),
                                store.open_cube(built_tiny[1] / "tiny.zarr").load())


def _drop_schema(path: Path) -> None:
    """Make a store look like one written before chunk checksums (store schema 1)."""
    meta = json.loads((path / ".zmetadata").read_text())
    del meta["metadata"][".zattrs"]["store_schema"]
    (path / ".zmetadata").write_text(json.dumps(meta))
    zattrs = json.loads((path / ".zattrs").read_text())
    del zattrs["store_schema"]
    (path / ".zattrs").write_text(json.dumps(zattrs))


def test_build_rebuilds_a_cube_of_the_old_schema_and_verify_says_so(capsys, tiny_catalog, built_tiny):
    cat, build = tiny_catalog
    _drop_schema(build / "tiny.zarr")
    rc, out, _ = cli(capsys, "verify", "tiny", "--catalog", cat, "--build-dir", build)
    assert rc == 1 and "store schema 1" in out
    rc, _, err = cli(capsys, "build", "tiny", "--catalog", cat, "--build-dir", build)
    assert rc == 0, err
    xr.testing.assert_identical(store.open_cube(build / "tiny.zarr").load(),
                                store.open_cube(built_tiny[1] / "tiny.zarr").load())


def test_build_overwrite_replaces_a_cube_damaged_beyond_its_steps(capsys, tiny_catalog):
    cat, build = tiny_catalog
    flip(build / "tiny.zarr/flux_now/0")
    rc, _, err = cli(capsys, "build", "tiny", "--catalog", cat, "--build-dir", build)
    assert rc == 1 and "--overwrite" in err and err.count("\n") == 1
    rc, _, err = cli(capsys, "build", "tiny", "--catalog", cat, "--build-dir", build, "--overwrite")
    assert rc == 0, err
    assert store.verify_cube(build / "tiny.zarr").ok


def test_build_while_another_process_holds_the_lock(capsys, tiny_catalog, monkeypatch):
    cat, build = tiny_catalog
    monkeypatch.setenv("FLARELIB_LOCK_TIMEOUT", "0.2")
    with store.store_lock(build / "tiny.zarr"):
        rc, _, err = cli(capsys, "build", "tiny", "--catalog", cat, "--build-dir", build)
    assert rc == 1 and "CubeLockedError" in err and f"being written by pid {os.getpid()}" in err


BUILD = "import sys; from flarelib.cube.catalog import main; sys.exit(main(sys.argv[1:]))"


@pytest.mark.slow
def test_two_processes_building_the_same_entry_give_one_good_store(tmp_path):
    cat = write_catalog(tmp_path, _tiny_entries(seed=5))
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    args = [sys.executable, "-c", BUILD, "build", "tiny", "--catalog", str(cat), "--build-dir", str(tmp_path / "b")]
    procs = [subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for rc, err in results:
        assert rc == 0 or (rc == 1 and err.strip().count("\n") == 0 and "error:" in err), err[-2000:]
    assert any(rc == 0 for rc, _ in results)
    report = store.verify_cube(tmp_path / "b/tiny.zarr")
    assert report.ok and report.status == "complete" and report.n_ingested == 24
    assert not list((tmp_path / "b").glob("*.tmp"))


def test_verify_command_during_a_build_names_the_build_not_missing_chunks(capsys, tiny_catalog):
    cat, build = tiny_catalog
    with another_writer(build / "tiny.zarr") as pid:
        rc, out, _ = cli(capsys, "verify", "tiny", "--catalog", cat, "--build-dir", build)
    assert rc == 1 and "tiny: not verified: " in out and f"being written by pid {pid}" in out
    assert "missing" not in out and "DAMAGED" not in out


def test_catalog_open_of_a_complete_cube_needs_no_write_access(tiny_catalog, tmp_path, monkeypatch):
    cat, build = tiny_catalog

    _no_write_access(monkeypatch, tmp_path)
    cube = catalog.load_catalog(cat).open("tiny", build_dir=build, progress=False)
    assert cube.sizes["time"] == 24 and cube.attrs["ingest_status"] == "complete"


def test_verify_command_names_added_and_renamed_variables_and_what_the_fix_deletes(capsys, tiny_catalog):
    import zarr

    cat, build = tiny_catalog
    cube = build / "tiny.zarr"
    _append_extra_to(cube, keep_attrs=True)
    rc, out, _ = cli(capsys, "verify", "tiny", "--catalog", cat, "--build-dir", build)
    assert rc == 0 and "note: variable 'extra' was not written by flarelib" in out
    (cube / "aia").rename(cube / "aia_x")
    zarr.consolidate_metadata(str(cube), zarr_format=2)
    rc, out, _ = cli(capsys, "verify", "tiny", "--catalog", cat, "--build-dir", build)
    assert rc == 1 and "variable 'aia'" in out and "'aia_x'" in out
    assert "fix: flarelib catalog build tiny --overwrite deletes the whole store" in out and "['extra']" in out


class SkippingFiller(Filler):
    """A ``fill_steps`` that reports the inputs it left out (as the FITS ingest does for a frame failing at write
    time): step 4 while ``bad`` is set."""

    bad = True

    def __call__(self, i0: int, i1: int) -> dict:
        out = super().__call__(i0, i1)
        out[store.SKIPPED_KEY] = [{"source": "f4.fits", "reason": "calibration-failed", "detail": "at write time",
                                   "time_step": 4}] if self.bad and i0 <= 4 < i1 else []
        return out


def test_inputs_left_out_at_write_time_are_listed_in_skipped_inputs(tmp_path):
    template, streamed = _template()
    template.attrs["skipped_inputs"] = json.dumps([{"source": "scan.fits", "reason": "quality", "detail": ""}])
    filler = SkippingFiller()
    path = tmp_path / "s.zarr"
    store.write_cube(path, template, streamed, filler, store.WriteOptions(progress=False, steps_per_write=2))
    attrs = store.open_cube(path).attrs
    skipped = json.loads(attrs["skipped_inputs"])
    assert [s["source"] for s in skipped] == ["scan.fits", "f4.fits"] and attrs["n_skipped"] == 2
    assert skipped[1]["time_step"] == 4 and not (path / "write_skips").exists()
    # the step is written again (a repair) and now succeeds: its entry goes, the scan's stays
    flip(path / "aia/4.0.0.0")
    store.mark_damaged(path)
    filler.bad = False
    store.write_cube(path, template, streamed, filler, store.WriteOptions(progress=False))
    skipped = json.loads(store.open_cube(path).attrs["skipped_inputs"])
    assert [s["source"] for s in skipped] == ["scan.fits"]


@pytest.mark.slow
def test_build_command_consolidates_a_deleted_zmetadata_again(capsys, tiny_catalog, built_tiny):
    cat, build = tiny_catalog
    (build / "tiny.zarr/.zmetadata").unlink()
    rc, out, _ = cli(capsys, "verify", "tiny", "--catalog", cat, "--build-dir", build)
    assert rc == 1 and "fix: flarelib catalog build tiny consolidates the metadata again" in out
    rc, _, err = cli(capsys, "build", "tiny", "--catalog", cat, "--build-dir", build)  # the fix offered works
    assert rc == 0, err
    assert store.verify_cube(build / "tiny.zarr").ok
    xr.testing.assert_identical(store.open_cube(build / "tiny.zarr").load(),
                                store.open_cube(built_tiny[1] / "tiny.zarr").load())


@pytest.mark.slow
def test_verify_and_build_commands_on_a_foreign_store(capsys, tiny_catalog):
    cat, build = tiny_catalog
    shutil.rmtree(build / "tiny.zarr")
    xr.Dataset({"a": ("t", np.arange(3.0))}).to_zarr(build / "tiny.zarr", zarr_format=2)
    rc, out, _ = cli(capsys, "verify", "tiny", "--catalog", cat, "--build-dir", build)
    assert rc == 1 and "NOT A FLARELIB CUBE" in out and "written by other software" in out
    assert "store schema" not in out and "does not delete" in out
    rc, _, err = cli(capsys, "build", "tiny", "--catalog", cat, "--build-dir", build, "--overwrite")
    assert rc == 1 and "not a flarelib cube" in err and "will not delete it" in err
    assert (build / "tiny.zarr/a").is_dir()


def test_an_input_left_out_before_a_writer_was_killed_is_still_listed(tmp_path):
    template, streamed = _template()
    path = tmp_path / "k.zarr"

    def killed(i0, i1):
        if i1 == 6:
            raise KeyboardInterrupt  # the writer dies after the last steps are flagged, before it completes the store

    with pytest.raises(KeyboardInterrupt):
        store.write_cube(path, template, streamed, SkippingFiller(),
                         store.WriteOptions(progress=False, steps_per_write=2, on_written=killed))
    store.write_cube(path, template, streamed, SkippingFiller(), store.WriteOptions(progress=False))  # the resume
    skipped = json.loads(store.open_cube(path).attrs["skipped_inputs"])
    assert [(s["source"], s["time_step"]) for s in skipped] == [("f4.fits", 4)]
