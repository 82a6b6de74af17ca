"""The cube on disk: one Zarr store per dataset, written resumably, checksummed, readable by plain xarray.

Format choices (also in ``DATASET_CARD.md``, which every store carries in its attrs):

* **Zarr format 2**, on purpose. Consolidated metadata is part of the v2 convention
  but not of the v3 specification (zarr-python warns about it); SDOML v2, which a later
  stage reads, is Zarr v2, so both stores open with the same tools; and every Zarr
  reader in the ecosystem (zarr-python 2 and 3, xarray, Julia, JS, ...) reads v2.
* Chunks of **one time step with all channels** ``(1, C, ny, nx)`` for ``aia`` (and
  ``(1, ny, nx)`` for per-pixel masks), so a training sample or one time step is one read.
* **Blosc zstd, level 5, byte shuffle** (as the v2 filter) and **consolidated metadata**.
* **A CRC32 per chunk** (numcodecs ``crc32`` as the v2 compressor, so it covers the bytes
  as stored) on every variable, and a **chunk manifest** (``chunk_checksums.json``, written when
  the store is verified complete): each chunk key with the CRC32 it was written with, so that
  a chunk moved or swapped to another variable or time step is caught as well. Plain zarr/xarray
  readers verify the CRC while decoding (a ``RuntimeError``); :func:`open_cube` verifies both before
  decoding and raises
  :class:`DamagedCubeError` naming the store, the variable and the time step. Every chunk
  is written, even one that equals the fill value, so a missing chunk is a damaged store
  unless its step is flagged not ingested. :data:`STORE_SCHEMA` (an attr) is bumped with
  each layout change: older stores are rebuilt by the writer and refused by :func:`open_cube`.

Resumable writes: :func:`write_cube` takes a per-store lock (``<store>.lock``, the
``filelock`` package; a second writer waits up to ``WriteOptions.lock_timeout`` seconds,
then fails with :class:`CubeLockedError` naming the pid that holds it; on object storage, which has no file
locks, a writer lease ``<store>.lock`` beside the store names the holder's host, pid and start time, see
:func:`store_lock` and docs/scaling.md). Readers
(:func:`verify_cube`, :func:`open_cube`) take a shared :func:`read_lock` on the same file, so a
store being built is reported as such, never as missing chunks; reading needs no write access
(a complete store in a read-only folder is reused and opened without the write lock). A store
flarelib did not write (:func:`foreign_store`: another program's Zarr store, a Zarr v3 copy, a
re-encoded copy, a cube whose attrs another program replaced) is named as such and never deleted
unasked; variables another program added are kept and not checked. It first writes a *template* (every coordinate and
target, ``aia`` empty, ``ingested=0`` everywhere, ``attrs["ingest_status"]="incomplete"``)
under a unique temporary name and renames it into place; then it fills the time steps a batch
at a time (``steps_per_write``) and sets ``ingested`` for a batch only after its pixels are written; then it
verifies every chunk of the finished store (:func:`verify_cube`), and only then marks the
store ``complete`` and consolidates the metadata again. A killed writer therefore leaves a
store that says it is incomplete and which steps are missing; re-running the same ingest
(same inputs, same parameters: same ``input_fingerprint``) fills in exactly those steps.
:func:`mark_damaged` flags damaged steps not ingested, so that the same re-run re-ingests
exactly them. :func:`open_cube` refuses incomplete, outdated and visibly damaged stores.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import itertools
import json
import logging
import math
import os
import shutil
import socket
import sys
import threading
import time
import uuid
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import dask.array
import filelock
import numcodecs
import numpy as np
import pandas as pd
import xarray as xr
import zarr
import zarr.storage
from tqdm.auto import tqdm

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

log = logging.getLogger(__name__)

ZARR_FORMAT = 2
COMPRESSOR = numcodecs.Blosc(cname="zstd", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
CHECKSUM = numcodecs.CRC32()  #: 4 bytes of CRC32 (little endian) in front of each stored chunk
#: The store layout version (``attrs["store_schema"]``). 2: a CRC32 on every chunk, every chunk written,
#: ``attrs["streamed_variables"]``. A store of another version is rebuilt by :func:`write_cube`.
STORE_SCHEMA = 2
#: Seconds a second writer of the same store waits for the lock (``$FLARELIB_LOCK_TIMEOUT`` overrides it).
DEFAULT_LOCK_TIMEOUT = 600.0
#: Seconds after its last refresh that a writer lease on object storage (:func:`store_lock` on a URL) is stale and
#: may be broken by the next writer, with a warning (``$FLARELIB_LEASE_MAX_AGE`` overrides it). Its writer refreshes
#: it every quarter of this age, so only a writer that died (killed, lost its machine) leaves a stale lease.
DEFAULT_LEASE_MAX_AGE = 6 * 3600.0
#: Seconds a writer waits after creating its lease before reading it back to check it is still its own: a store
#: that does not honour an exclusive create lets two writers both "create" it, and the later one wins.
LEASE_SETTLE = 0.5
DATASET_CARD_PATH = Path(__file__).with_name("DATASET_CARD.md")
_METADATA_NAMES = (".zarray", ".zattrs", ".zgroup", ".zmetadata")
#: The chunk manifest of a complete store: every chunk key -> the CRC32 it was written with. A chunk's own CRC
#: proves its bytes are intact; the manifest proves they are the bytes written at that variable and position
#: (a chunk moved or swapped to another time step keeps a valid CRC, but not the one its key records).
MANIFEST_KEY = "chunk_checksums.json"
#: ``fill_steps`` may return this key beside its arrays: the inputs it left out while filling (dicts with
#: ``source``, ``reason``, ``detail`` and ``time_step``, e.g. a frame whose calibration failed). They are kept in the
#: store (``write_skips/<i0>-<i1>.json``, written before the steps are flagged ingested, so a killed writer loses
#: none) and added to ``attrs["skipped_inputs"]`` and ``attrs["n_skipped"]`` when the store is completed;
#: :func:`mark_damaged` drops the entries of the steps it flags for re-ingest.
SKIPPED_KEY = "_skipped_inputs"
_SKIPS_DIR = "write_skips"


class IncompleteCubeError(RuntimeError):
    """The store exists but its ingest did not finish (re-run the same ingest to complete it)."""


class CubeMismatchError(RuntimeError):
    """A store exists at the path but was made from other inputs or parameters."""


class DamagedCubeError(RuntimeError):
    """A chunk of a store is missing or fails its checksum; the message names store, variable and time step."""


class OutdatedCubeError(RuntimeError):
    """The store was written with another :data:`STORE_SCHEMA` (e.g. without chunk checksums): rebuild it."""


class CubeLockedError(RuntimeError):
    """Another process holds the store's write lock for longer than the lock timeout."""


ZARR_FORMAT_REASON = ("Zarr v2: consolidated metadata is standard there (not in the v3 spec), SDOML v2 is v2, "
                      "and every Zarr reader supports it")
_ADVICE = "run `flarelib catalog verify NAME`, then `build NAME` again (it re-ingests the damaged steps)"


@dataclass(frozen=True)
class WriteOptions:
    """How :func:`write_cube` writes.

    ``steps_per_write``: time steps per call of ``fill_steps`` (and per Dask task). ``overwrite``:
    replace a store made from other inputs instead of raising :class:`CubeMismatchError`.
    ``progress``: a tqdm bar. ``on_written(i0, i1)``: called after each batch of steps is committed
    (progress reporting, tests). ``scheduler``: ``None`` writes in this process; otherwise
    the blocks run as ``dask.distributed`` tasks (see :func:`dask_client`).
    ``storage_options``: fsspec options for a URL path (credentials, endpoint), also passed
    to the workers. ``lock_timeout``: seconds to wait for another writer of the same store (its
    lock file, or on object storage its lease: :func:`store_lock`; ``None``: ``$FLARELIB_LOCK_TIMEOUT``
    or :data:`DEFAULT_LOCK_TIMEOUT`).
    """

    steps_per_write: int = 1
    overwrite: bool = False
    progress: bool = True
    on_written: Callable[[int, int], None] | None = None
    scheduler: object = None
    storage_options: dict | None = None
    lock_timeout: float | None = None


def dataset_card() -> str:
    """The dataset card (markdown) that documents the cube schema."""
    return DATASET_CARD_PATH.read_text()


def provenance_attrs() -> dict[str, str]:
    """The attrs every flarelib cube carries about its format: the dataset card, the software
    versions and why Zarr v2."""
    return {"dataset_card": dataset_card(), "software_versions": json_attr(software_versions()),
            "zarr_format_reason": ZARR_FORMAT_REASON}


def software_versions() -> dict[str, str]:
    """Versions of the packages that shape the cube's content."""
    out = {"python": sys.version.split()[0]}
    for pkg in ("flarelib", "numpy", "astropy", "sunpy", "aiapy", "xarray", "zarr", "numcodecs"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _encoding(template: xr.Dataset, streamed: set[str]) -> dict:
    """Every variable: CRC32 over the stored bytes; numbers and times also Blosc-compressed (as the v2 filter)."""
    enc = {}
    for name, var in template.variables.items():
        if var.dtype.kind in "fiubMm":
            enc[name] = {"compressors": (CHECKSUM,), "filters": (COMPRESSOR,)}
        else:  # fixed-width strings: the checksum only
            enc[name] = {"compressors": (CHECKSUM,)}
        if name in streamed:
            enc[name]["chunks"] = (1,) + tuple(var.shape[1:])
        elif "time" in var.dims and var.dtype.kind in "fiub" and var.ndim >= 1:
            enc[name]["chunks"] = var.shape
    enc["ingested"] = {"chunks": (1,), "compressors": (CHECKSUM,), "filters": (COMPRESSOR,)}
    return enc


def is_url(path) -> bool:
    """True for an fsspec URL such as ``s3://bucket/cube.zarr`` (object storage), False for a local path."""
    return isinstance(path, str) and "://" in path


def _location(path, storage_options: dict | None):
    """What zarr and xarray open: a local path string, or an fsspec store for a URL."""
    if is_url(path):
        return zarr.storage.FsspecStore.from_url(path, storage_options=storage_options or {})
    return str(path)


def _fs(path: str, storage_options: dict | None):
    import fsspec  # lazy: only object-storage paths need it

    return fsspec.core.url_to_fs(path, **(storage_options or {}))


def _exists(path, storage_options: dict | None, name: str = "") -> bool:
    if is_url(path):
        fs, root = _fs(path, storage_options)
        return fs.exists(f"{root}/{name}" if name else root)
    return (Path(path) / name).exists()


def _remove(path, storage_options: dict | None) -> None:
    if is_url(path):
        fs, root = _fs(path, storage_options)
        fs.rm(root, recursive=True)
    else:
        shutil.rmtree(path)


def read_attrs(path, storage_options: dict | None = None) -> dict:
    """The attrs of a store (path or URL) as consolidated, without opening its variables."""
    return dict(zarr.open_group(_location(path, storage_options), mode="r", zarr_format=ZARR_FORMAT).attrs)


# --------------------------------------------------------------------------- raw chunk access and checks

class _Raw:
    """Byte-level access to the keys of a store (a local folder or an fsspec URL), bypassing zarr."""

    def __init__(self, path, storage_options: dict | None = None):
        self.path = path
        self.url = is_url(path)
        if self.url:
            self.fs, self.root = _fs(path, storage_options)

    def get(self, key: str) -> bytes | None:
        try:
            if self.url:
                return self.fs.cat_file(f"{self.root}/{key}")
            return (Path(self.path) / key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def put(self, key: str, data: bytes) -> None:
        if self.url:
            self.fs.pipe_file(f"{self.root}/{key}", data)
        else:
            (Path(self.path) / key).parent.mkdir(parents=True, exist_ok=True)
            (Path(self.path) / key).write_bytes(data)

    def delete(self, key: str) -> None:
        if self.url:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(f"{self.root}/{key}")
        else:
            (Path(self.path) / key).unlink(missing_ok=True)

    def chunk_keys(self, name: str) -> set[str] | None:
        """The chunk keys present under an array (``None`` when its folder is missing)."""
        try:
            if self.url:  # never a cached listing: zarr writes through its own (async) file system instance
                self.fs.invalidate_cache(f"{self.root}/{name}")
                names = [p.rsplit("/", 1)[-1] for p in self.fs.ls(f"{self.root}/{name}", detail=False)]
            else:
                names = [e.name for e in os.scandir(Path(self.path) / name)]
        except (FileNotFoundError, NotADirectoryError):
            return None
        return {f"{name}/{n}" for n in names if not n.startswith(".")}

    def metadata(self) -> dict | None:
        """The consolidated metadata (``.zmetadata``'s ``metadata``), or ``None`` when missing or unreadable."""
        raw = self.get(".zmetadata")
        try:
            return json.loads(raw)["metadata"] if raw is not None else None
        except (ValueError, KeyError, TypeError):
            return None


def _crc_ok(data) -> bool:
    """Whether a stored chunk (CRC32 in its first 4 bytes, then the payload) is intact."""
    view = memoryview(data).cast("B")
    return len(view) >= 4 and zlib.crc32(view[4:]) == int.from_bytes(view[:4], "little")


@dataclass(frozen=True)
class _ArrayLayout:
    name: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    time_chunk: int | None  # time steps per chunk when the first dimension is time
    separator: str
    checked: bool = True  # stored with flarelib's CRC32 codec (an array added by other software is not)

    def chunk_keys(self) -> Iterator[str]:
        grid = [range(math.ceil(s / c)) for s, c in zip(self.shape, self.chunks)] or [range(1)]
        for idx in itertools.product(*grid):
            yield f"{self.name}/{self.separator.join(map(str, idx))}"

    def steps(self, key: str) -> tuple[int, int] | None:
        """The time steps ``[i0, i1)`` a chunk key covers (``None`` without a time axis)."""
        if self.time_chunk is None:
            return None
        k = int(key.rsplit("/", 1)[-1].split(self.separator)[0])
        return k * self.time_chunk, min((k + 1) * self.time_chunk, self.shape[0])


def _layouts(metadata: dict) -> dict[str, _ArrayLayout]:
    """The arrays of a store (from its consolidated metadata)."""
    out = {}
    for key, meta in metadata.items():
        if not key.endswith("/.zarray"):
            continue
        name = key[: -len("/.zarray")]
        dims = metadata.get(f"{name}/.zattrs", {}).get("_ARRAY_DIMENSIONS", [])
        time_chunk = int(meta["chunks"][0]) if dims[:1] == ["time"] else None
        compressor = meta.get("compressor") or {}
        out[name] = _ArrayLayout(name, tuple(meta["shape"]), tuple(meta["chunks"]), time_chunk,
                                 meta.get("dimension_separator") or ".",
                                 isinstance(compressor, dict) and compressor.get("id") == "crc32")
    return out


def _checked_layouts(metadata: dict) -> dict[str, _ArrayLayout]:
    """The arrays flarelib wrote and checks: those stored with its CRC32 codec."""
    return {name: layout for name, layout in _layouts(metadata).items() if layout.checked}


def _added_variables(metadata: dict) -> list[str]:
    """Arrays without flarelib's CRC32 codec: added by other software (e.g. ``to_zarr(mode="a")``), not checked."""
    return sorted(name for name, layout in _layouts(metadata).items() if not layout.checked)


def _streamed(attrs: dict) -> set[str]:
    try:
        return set(json.loads(attrs.get("streamed_variables", "[]")))
    except (ValueError, TypeError):
        return set()


def _missing_variables(metadata: dict, manifest: dict[str, int] | None = None) -> list[str]:
    """The variables flarelib wrote in a store that it lacks: its ``streamed_variables``, ``ingested`` and, in a
    complete store, every variable of its chunk manifest (so a renamed target or coordinate is caught too)."""
    present = set(_layouts(metadata))
    written = {key.rpartition("/")[0] for key in (manifest or {})}
    return sorted((_streamed(metadata.get(".zattrs", {})) | {"ingested"} | written) - present)


def _complete_manifest(path, metadata: dict, storage_options: dict | None = None) -> dict[str, int] | None:
    """The chunk manifest of a complete store (``None``: not complete, none, or unreadable; verify reports that)."""
    if metadata.get(".zattrs", {}).get("ingest_status") != "complete":
        return None
    try:
        return _manifest(path, storage_options)
    except DamagedCubeError:
        return None


def _missing_variable_message(path, metadata: dict, missing: list[str]) -> str:
    """What a store that lacks a variable flarelib wrote there says (a renamed or deleted variable)."""
    return f"{path}: {_missing_variable_text(metadata, missing[0])}"


def _missing_variable_text(metadata: dict, name: str) -> str:
    others = sorted(set(_layouts(metadata)) - {"ingested"})
    return (f"variable {name!r} (written by flarelib) is not in the store, "
            f"which holds {others}: renamed or deleted? Rename it back (then zarr.consolidate_metadata), or rebuild "
            "the store (`flarelib catalog build NAME --overwrite` deletes the whole store, every variable above "
            "included)")


def foreign_store(path, metadata: dict | None, raw: _Raw | None = None) -> str | None:
    """Why a store is not a flarelib cube (what was found), or ``None`` when it is one (of any schema).

    Tells a Zarr v3 store, a Zarr store written by other software (no flarelib attrs), a flarelib
    cube whose attrs were replaced by other software (e.g. ``xarray.to_zarr(mode="a")`` with
    a dataset without them) and a copy re-encoded without flarelib's CRC32 codec.
    """
    raw = raw or _Raw(path)
    if metadata is None:  # not consolidated: judge by the root's own attrs
        if raw.get("zarr.json") is not None:
            return ("a Zarr v3 store (zarr.json), not a flarelib cube (Zarr v2): written by other software, e.g. "
                    "xarray's to_zarr without zarr_format=2")
        root_attrs = raw.get(".zattrs")
        if root_attrs is None:  # a template cut off before its attrs (object storage), or damage: not judged here
            return None
        try:
            attrs = json.loads(root_attrs)
        except ValueError:
            return None  # unreadable: the checks of the metadata say so
        if raw.get(".zgroup") is None or not isinstance(attrs, dict) or any(
                k in attrs for k in ("store_schema", "input_fingerprint", "streamed_variables")):
            return None
        metadata = {".zattrs": attrs, **({"ingested/.zarray": {}} if raw.get("ingested/.zarray") is not None else {})}
    attrs = metadata.get(".zattrs", {})
    if any(k in attrs for k in ("store_schema", "input_fingerprint", "streamed_variables")):
        layouts = _layouts(metadata)
        if layouts and not any(layout.checked for layout in layouts.values()):
            return ("a copy of a flarelib cube re-encoded by other software: no variable carries flarelib's CRC32 "
                    "codec, so its chunks cannot be checked")
        return None
    if "ingested/.zarray" in metadata or raw.get(MANIFEST_KEY) is not None:
        return ("a flarelib cube whose attrs were replaced by other software (.zattrs has no store_schema or "
                "input_fingerprint; xarray's to_zarr(mode='a') writes the appended dataset's attrs)")
    return "a Zarr store written by other software (no flarelib attrs: store_schema, input_fingerprint)"


def _store_name(path) -> str:
    return str(path)


class _ChunkGuard:
    """What :class:`CheckedStore` checks each chunk read against (one per opened store)."""

    def __init__(self, label: str, layouts: dict[str, _ArrayLayout], streamed: set[str],
                 ingested: np.ndarray | None, manifest: dict[str, int] | None = None):
        self.label, self.layouts, self.streamed, self.ingested = label, layouts, streamed, ingested
        self.manifest = manifest or {}
        self.times: np.ndarray | None = None  # set once the time coordinate is read, for the messages

    def error(self, name: str, key: str, problem: str) -> DamagedCubeError:
        layout = self.layouts[name]
        steps = layout.steps(key)
        if steps is None:
            where = "(no time axis)"
        elif steps[1] - steps[0] == 1:
            when = f" ({str(self.times[steps[0]])[:19]})" if self.times is not None else ""
            where = f"time step {steps[0]}{when}"
        else:
            where = f"time steps {steps[0]}-{steps[1] - 1}"
        return DamagedCubeError(f"{self.label}: variable {name!r}, {where}: chunk {key} {problem}; {_ADVICE}")

    def check(self, key: str, data) -> None:
        name, _, chunk = key.rpartition("/")
        if name not in self.layouts or chunk in _METADATA_NAMES:
            return
        if data is None:
            steps = self.layouts[name].steps(key)
            if (name in self.streamed and steps is not None and self.ingested is not None
                    and not self.ingested[steps[0]:steps[1]].any()):
                return  # a step that was never written: the fill value is right
            raise self.error(name, key, "is missing")
        if not _crc_ok(data):
            raise self.error(name, key, "fails its checksum (damaged or truncated)")
        if key in self.manifest and self.manifest[key] != _stored_crc(data):
            raise self.error(name, key, "holds other bytes than were written there (moved or swapped)")


class CheckedStore(zarr.storage.WrapperStore):
    """A zarr store that verifies each chunk's CRC32 and presence before zarr decodes it.

    A damaged or missing chunk raises :class:`DamagedCubeError` naming the store, the
    variable and the time step (what :func:`open_cube` reads through).
    """

    def __init__(self, store, guard: _ChunkGuard):
        super().__init__(store)
        self._guard = guard

    def _with_store(self, store):
        return type(self)(store, self._guard)

    async def get(self, key, prototype, byte_range=None):
        buf = await self._store.get(key, prototype, byte_range)
        if byte_range is None:
            self._guard.check(key, None if buf is None else buf.as_numpy_array())
        return buf


# --------------------------------------------------------------------------- verification

@dataclass(frozen=True)
class ChunkProblem:
    """One missing or damaged chunk (or metadata file) of a store. ``steps``: time steps ``[i0, i1)`` or None."""

    variable: str
    key: str
    problem: str
    steps: tuple[int, int] | None = None


@dataclass(frozen=True)
class CubeReport:
    """What :func:`verify_cube` found in a store.

    ``problems``: every missing or damaged chunk; ``times``: the time coordinate as ISO
    strings (empty when unreadable); ``streamed``: the variables filled step by step.
    """

    path: str
    status: str
    n_steps: int
    n_ingested: int
    problems: tuple[ChunkProblem, ...]
    times: tuple[str, ...] = ()
    streamed: tuple[str, ...] = ()
    checksums: dict = dataclasses.field(default_factory=dict, repr=False)  #: chunk key -> CRC32 read
    #: what was found besides damage: variables added by other software (not checked), no chunk manifest
    notes: tuple[str, ...] = ()
    added: tuple[str, ...] = ()  #: variables without flarelib's CRC32 codec (added by other software)
    foreign: str | None = None  #: why the store is not a flarelib cube (``None``: it is one)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def damaged_steps(self) -> tuple[int, ...]:
        """Time steps whose streamed chunks (or ``ingested`` flag) are missing or damaged: re-ingestable."""
        steps = {i for p in self.problems if p.variable in (*self.streamed, "ingested") and p.steps
                 for i in range(*p.steps)}
        return tuple(sorted(steps))

    @property
    def repairable(self) -> bool:
        """Every problem is in a re-ingestable time step (no template variable or metadata damaged)."""
        return bool(self.streamed) and all(self.reingestable(p) for p in self.problems)

    def reingestable(self, problem: ChunkProblem) -> bool:
        """A streamed chunk or flag of some steps, a streamed variable's metadata (restored from .zmetadata), or
        the chunk manifest (written again when the store is verified complete)."""
        if problem.key == MANIFEST_KEY:
            return True
        if problem.variable not in (*self.streamed, "ingested"):
            return False
        return problem.steps is not None or problem.key.endswith((".zarray", ".zattrs"))

    def lines(self) -> list[str]:
        """One line per problem (what ``flarelib catalog verify`` prints)."""
        out = []
        for p in self.problems:
            if not p.key:
                out.append(f"{self.path}: {p.problem}")
                continue
            if p.steps is None:
                where = ""
            elif p.steps[1] - p.steps[0] == 1:
                when = f" ({self.times[p.steps[0]][:19]})" if self.times else ""
                where = f" time step {p.steps[0]}{when}"
            else:
                where = f" time steps {p.steps[0]}-{p.steps[1] - 1}"
            out.append(f"{self.path}: {p.variable or '(store)'}{where}: {p.key} {p.problem}")
        return out

    def fix(self, command: str = "flarelib catalog build NAME") -> str:
        """The fix of a damaged store, and what it deletes (what ``flarelib catalog verify`` prints)."""
        if self.foreign is not None and "attrs were replaced" not in self.foreign:
            return ("flarelib does not delete a store it did not write: move it away (or build the cube into "
                    "another --build-dir); xarray.open_zarr reads it without flarelib's checks")
        if any(p.key == ".zmetadata" for p in self.problems):
            return (f"{command} consolidates the metadata again from the variables' own .zarray/.zattrs and "
                    "checks every chunk (it deletes nothing)")
        added = f", the variables {list(self.added)} that flarelib did not write included" if self.added else ""
        if self.repairable:
            return (f"{command} re-ingests time steps {list(self.damaged_steps)[:20]} (it deletes only their "
                    "damaged chunks" + (f"; it keeps {list(self.added)}" if self.added else "") + ")")
        return f"{command} --overwrite deletes the whole store and builds it anew{added}"


def verify_cube(path: str | Path, *, storage_options: dict | None = None,
                expected: set[str] | None = None, lock_timeout: float | None = 0.0) -> CubeReport:
    """Check every chunk of a store (path or URL): present where it should be, and its CRC32 intact.

    Reads every stored byte once (no decompression), under a :func:`read_lock`: a store being
    written raises :class:`CubeLockedError` naming the writer's pid once ``lock_timeout`` seconds
    (default 0: at once) have passed, instead of reporting its unwritten chunks missing. A streamed
    chunk may be missing only where ``ingested`` is 0; any other chunk must be present. The
    variables flarelib wrote (``attrs["streamed_variables"]``, ``ingested`` and ``expected``, which
    the writer passes) must exist. A complete store whose ``ingested`` flags are not all 1 is damaged
    too. A store flarelib did not write is one problem saying what was found (:func:`foreign_store`);
    variables added by other software (without flarelib's CRC32 codec) are not checked and are listed
    in ``notes``. Returns a :class:`CubeReport`; raises nothing for damage.
    """
    with read_lock(path, lock_timeout):
        return _verify(path, storage_options, expected)


def _verify(path, storage_options: dict | None, expected: set[str] | None) -> CubeReport:
    raw = _Raw(path if is_url(path) else Path(path), storage_options)
    label = _store_name(path)
    metadata = raw.metadata()
    foreign = foreign_store(path, metadata, raw)
    if foreign is not None:
        return CubeReport(label, "unknown", 0, 0, (ChunkProblem("", "", f"not a flarelib cube: {foreign}"),),
                          foreign=foreign, added=tuple(_added_variables(metadata or {})))
    if metadata is None:
        what = ("is missing: deleted, or the store was copied without it" if raw.get(".zmetadata") is None
                else "is unreadable")
        return CubeReport(label, "unknown", 0, 0, (ChunkProblem("", ".zmetadata", f"(consolidated metadata) {what}"),))
    attrs = metadata.get(".zattrs", {})
    status = str(attrs.get("ingest_status", "unknown"))
    if attrs.get("store_schema", 1) != STORE_SCHEMA:
        return CubeReport(label, status, 0, 0, (ChunkProblem(
            "", ".zattrs", f"has store schema {attrs.get('store_schema', 1)} (this flarelib writes {STORE_SCHEMA}, "
            "with chunk checksums): build it again"),))
    streamed = _streamed(attrs)
    layouts = _checked_layouts(metadata)
    added = tuple(_added_variables(metadata))
    notes = [f"variable {name!r} was not written by flarelib (no CRC32 codec: added by other software?); it is not "
             "checked, and `build` keeps it" for name in added]
    problems: list[ChunkProblem] = []
    own = set(_missing_variables(metadata, _complete_manifest(path, metadata, storage_options)))
    for name in sorted(own):  # flarelib wrote it in this store: renamed or deleted since
        problems.append(ChunkProblem(name, "", _missing_variable_text(metadata, name)))
    for name in sorted((expected or set()) - set(_layouts(metadata)) - own):  # the writer's, never in this store
        problems.append(ChunkProblem(name, f"{name}/.zarray", "is not in the store, though this flarelib writes it "
                                     "(a store of another flarelib version?)"))
    if "ingested" not in layouts:
        return CubeReport(label, status, 0, 0, tuple(problems), (), tuple(sorted(streamed)), notes=tuple(notes),
                          added=added)
    nt = layouts["ingested"].shape[0]
    good: dict[str, dict[str, bytes]] = {}
    checksums: dict[str, int] = {}
    for name, layout in sorted(layouts.items()):
        if raw.get(f"{name}/.zarray") is None:
            problems.append(ChunkProblem(name, f"{name}/.zarray", "is missing (the variable's folder was deleted?)"))
        present = raw.chunk_keys(name) or set()
        for key in layout.chunk_keys():
            data = raw.get(key) if key in present else None
            if data is None:
                problems.append(ChunkProblem(name, key, "is missing", layout.steps(key)))
            elif not _crc_ok(data):
                problems.append(ChunkProblem(name, key, "fails its checksum (damaged or truncated)",
                                             layout.steps(key)))
            else:
                checksums[key] = _stored_crc(data)
                if name in ("ingested", "time"):
                    good.setdefault(name, {})[key] = data
    if status == "complete":
        try:
            manifest = _manifest(path, storage_options)
            problems += _misplaced_chunks(checksums, manifest, layouts)
            if manifest is None:
                notes.append(f"{MANIFEST_KEY} is missing, which flarelib writes when it completes a store: a copy made "
                             "by other software (xarray leaves out chunks equal to the fill value)? The chunks' "
                             "positions are not checked")
        except DamagedCubeError:
            problems.append(ChunkProblem("", MANIFEST_KEY, "is unreadable (the chunks' positions cannot be checked)"))
    ingested = np.zeros(nt, dtype=bool)
    for key, data in good.get("ingested", {}).items():
        i0, i1 = layouts["ingested"].steps(key)
        ingested[i0:i1] = _decode(data, np.uint8, i1 - i0).astype(bool)
    # a streamed chunk that was never written is expected, unless the store claims to be complete
    problems = [p for p in problems if not (p.variable in streamed and p.problem == "is missing" and p.steps
                                            and not ingested[p.steps[0]:p.steps[1]].any() and status != "complete")]
    if status == "complete":
        flagged = {i for p in problems if p.variable == "ingested" and p.steps for i in range(*p.steps)}
        for i in np.flatnonzero(~ingested):
            if int(i) not in flagged:
                problems.append(ChunkProblem("ingested", f"ingested/{i}", "is 0 in a store marked complete",
                                             (int(i), int(i) + 1)))
    times = _times(good.get("time", {}), layouts.get("time"), metadata)
    return CubeReport(label, status, nt, int(ingested.sum()), tuple(problems), times, tuple(sorted(streamed)),
                      checksums, tuple(notes), added)


def _stored_crc(data) -> int:
    """The CRC32 a stored chunk carries (its first 4 bytes, little endian)."""
    return int.from_bytes(bytes(memoryview(data).cast("B")[:4]), "little")


def _manifest(path, storage_options: dict | None = None) -> dict[str, int] | None:
    """The store's chunk manifest (``None`` without one: stores written before it, or not complete yet).
    An unreadable manifest raises :class:`DamagedCubeError`: it must not switch the check off."""
    data = _Raw(path, storage_options).get(MANIFEST_KEY)
    if data is None:
        return None
    try:
        return {str(k): int(v) for k, v in json.loads(data).items()}
    except (ValueError, AttributeError, TypeError) as err:
        raise DamagedCubeError(f"{_store_name(path)}: {MANIFEST_KEY} is unreadable ({type(err).__name__}); "
                               f"{_ADVICE}") from None


def _misplaced_chunks(checksums: dict[str, int], manifest: dict[str, int] | None,
                      layouts: dict[str, _ArrayLayout]) -> list[ChunkProblem]:
    """Chunks whose (valid) CRC32 is not the one the manifest records for their key: moved or swapped."""
    if manifest is None:
        return []
    origin = {crc: key for key, crc in manifest.items()}
    out = []
    for key, crc in sorted(checksums.items()):
        if key in manifest and manifest[key] != crc:
            name = key.rpartition("/")[0]
            source = origin.get(crc)
            what = f"holds the bytes written at {source}" if source else "holds bytes that were never written there"
            out.append(ChunkProblem(name, key, f"{what} (moved or swapped; its own checksum is intact)",
                                    layouts[name].steps(key) if name in layouts else None))
    return out


def _decode(data: bytes, dtype, n: int) -> np.ndarray:
    """A verified chunk's values (CRC32 stripped, Blosc decoded)."""
    return np.frombuffer(COMPRESSOR.decode(bytes(data[4:])), dtype=dtype)[:n]


def _times(chunks: dict[str, bytes], layout: _ArrayLayout | None, metadata: dict) -> tuple[str, ...]:
    """The time coordinate as ISO strings from its verified chunk (empty when it is not readable)."""
    if layout is None or len(chunks) != 1 or layout.chunks[0] != layout.shape[0]:
        return ()
    try:
        attrs = metadata.get("time/.zattrs", {})
        values = _decode(next(iter(chunks.values())), np.dtype(metadata["time/.zarray"]["dtype"]), layout.shape[0])
        var = xr.Variable(("time",), values, attrs={k: v for k, v in attrs.items() if k != "_ARRAY_DIMENSIONS"})
        decoded = xr.conventions.decode_cf_variable("time", var)
        return tuple(str(t) for t in np.asarray(decoded.values))
    except Exception:  # noqa: BLE001 - the times only decorate the report
        return ()


def mark_damaged(path: str | Path, report: CubeReport | None = None, *,
                 storage_options: dict | None = None) -> CubeReport:
    """Flag a store's damaged time steps not ingested, so that re-running its ingest re-writes exactly them.

    Restores a deleted streamed variable's metadata from the consolidated metadata, removes
    the damaged chunks, sets ``ingested`` to 0 at the damaged steps and the store's status to
    ``incomplete``. Raises :class:`DamagedCubeError` when the damage is outside the streamed
    steps (a coordinate, a target, the metadata): rebuild that store from scratch
    (``--overwrite``). Returns the report it acted on.
    """
    report = report or verify_cube(path, storage_options=storage_options)
    if report.ok:
        return report
    if not report.repairable:
        first = next(p for p in report.problems if not report.reingestable(p))
        raise DamagedCubeError(f"{report.path}: {first.variable or '(store)'}: {first.key} {first.problem}; this "
                               "part is not re-ingestable: rebuild the store from scratch (build NAME --overwrite)")
    raw = _Raw(path if is_url(path) else Path(path), storage_options)
    metadata = raw.metadata()
    for name in (*report.streamed, "ingested"):
        for meta in (".zarray", ".zattrs"):
            if raw.get(f"{name}/{meta}") is None and f"{name}/{meta}" in metadata:
                raw.put(f"{name}/{meta}", json.dumps(metadata[f"{name}/{meta}"], indent=4).encode())
    for p in report.problems:
        if p.key.rsplit("/", 1)[-1] not in _METADATA_NAMES:
            raw.delete(p.key)
    raw.delete(MANIFEST_KEY)  # written again when the re-ingested store is verified complete
    location = _location(path, storage_options)
    with zarr.config.set({"array.write_empty_chunks": True}):
        group = zarr.open_group(location, mode="r+", zarr_format=ZARR_FORMAT, use_consolidated=False)
        flags = group["ingested"]
        for i in report.damaged_steps:
            flags[i] = 0
        _forget_write_skips(group, set(report.damaged_steps))
        group.attrs["ingest_status"] = "incomplete"
    zarr.consolidate_metadata(location, zarr_format=ZARR_FORMAT)
    log.warning("%s: %d damaged time steps flagged for re-ingest: %s", report.path, len(report.damaged_steps),
                list(report.damaged_steps)[:20])
    return report


def _quick_problems(path: Path, metadata: dict, manifest: dict[str, int] | None = None) -> list[str]:
    """Cheap structural checks of a local store (one directory listing per variable, no chunk read); ``manifest``:
    its chunk manifest when already read (else read here for a complete store)."""
    raw = _Raw(path)
    attrs = metadata.get(".zattrs", {})
    complete = attrs.get("ingest_status") == "complete"
    streamed = _streamed(attrs)
    manifest = manifest if manifest is not None else _complete_manifest(path, metadata)
    out = [_missing_variable_text(metadata, name) for name in _missing_variables(metadata, manifest)]
    for name, layout in _checked_layouts(metadata).items():
        present = raw.chunk_keys(name)
        if present is None or not (path / name / ".zarray").exists():
            out.append(f"variable {name!r}: its folder or metadata is missing")
            continue
        if complete or name not in streamed:
            n_expected = math.prod(math.ceil(s / c) for s, c in zip(layout.shape, layout.chunks))
            if len(present) < n_expected:
                missing = sorted(set(layout.chunk_keys()) - present, key=lambda k: (layout.steps(k) or (0, 0), k))
                steps = [layout.steps(k) for k in missing[:3]]
                where = f" (time steps {[s[0] for s in steps]}{' ...' if len(missing) > 3 else ''})" if steps[0] else ""
                out.append(f"variable {name!r}: {len(missing)} of {n_expected} chunks are missing{where}, "
                           f"first {missing[0]}")
    return out


# --------------------------------------------------------------------------- writing

#: Lock files whose write lock this process holds (:func:`store_lock`): its own reads need no read lock.
_HELD: set[str] = set()


def _lock_file(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _lock_holder(lock_file: Path) -> tuple[int, str] | None:
    """The pid holding a lock on ``lock_file`` and how (``"WRITE"``: a writer, ``"READ"``: a reader), from
    ``/proc/locks``; ``None`` where unknown (not Linux, or released meanwhile)."""
    try:
        inode = os.stat(lock_file).st_ino
        with open("/proc/locks") as fh:
            for line in fh:
                fields = line.split()
                # "1: FLOCK  ADVISORY  WRITE 12345 fd:01:678 0 EOF" (a blocked waiter has "->" after the number)
                if "->" in fields:
                    continue
                if len(fields) >= 6 and fields[5].rsplit(":", 1)[-1] == str(inode):
                    return int(fields[4]), fields[3]
    except (OSError, ValueError, IndexError):
        return None
    return None


def _busy_message(path, lock_file: Path | str, timeout: float, lease: _Lease | None = None) -> str:
    waited = f" (waited {timeout:g} s)" if timeout > 0 else ""
    if lease is not None:  # object storage: the holder is in the lease (:func:`store_lock`)
        held = lease.read()
        who = _Lease.holder(held) if held is not None else "another writer, which released it just now"
        return (f"{path} is being written by {who}: it holds the writer lease {lock_file}"
                f"{waited}; wait for that build to finish, then run the command again (or raise "
                f"FLARELIB_LOCK_TIMEOUT); if that writer is dead, delete the lease: `{lease.delete_command()}`"
                f"{'' if lease.url.startswith('s3://') else ' (add your storage options to url_to_fs)'} "
                f"(it is broken by itself once not refreshed for FLARELIB_LEASE_MAX_AGE={_lease_max_age():g} s)")
    holder = _lock_holder(lock_file)
    if holder is not None and holder[1] == "READ":
        return (f"{path} is being read by pid {holder[0]} (a verify or an open holds the read lock {lock_file})"
                f"{waited}; run the command again when it is done (or raise FLARELIB_LOCK_TIMEOUT)")
    who = f"pid {holder[0]}" if holder is not None else "another process"
    return (f"{path} is being written by {who}: a build is in progress (lock {lock_file} held){waited}; "
            "wait for it to finish, then run the command again (or raise FLARELIB_LOCK_TIMEOUT)")


def _default_timeout(timeout: float | None) -> float:
    return float(os.environ.get("FLARELIB_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT)) if timeout is None else timeout


@contextlib.contextmanager
def store_lock(path: str | Path, timeout: float | None = None,
               storage_options: dict | None = None) -> Iterator[None]:
    """The per-store write lock: ``<store>.lock`` next to a local store, a writer lease ``<store>.lock`` next to a
    store on object storage (:class:`_Lease`, reached with ``storage_options``).

    Waits ``timeout`` seconds (``None``: ``$FLARELIB_LOCK_TIMEOUT`` or :data:`DEFAULT_LOCK_TIMEOUT`), then raises
    :class:`CubeLockedError` naming the holder (its pid; on object storage its host, pid and start time, and how to
    delete a dead writer's lease). Readers of a local store take :func:`read_lock` on the same file. Only the
    process that orchestrates a build takes it: Dask workers writing its regions (:func:`write_region`) do not.
    """
    if is_url(path):
        with _Lease(path, storage_options).held(_default_timeout(timeout)):
            yield
        return
    path = Path(path)
    timeout = _default_timeout(timeout)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_file = _lock_file(path)
    lock = filelock.FileLock(str(lock_file), timeout=timeout)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise CubeLockedError(_busy_message(path, lock_file, timeout)) from None
    except PermissionError:
        raise PermissionError(f"{path}: cannot create its write lock {lock_file}: the folder {path.parent} is not "
                              "writable; build the cube where you can write (--build-dir or $FLARELIB_DATA_DIR) "
                              "or make the folder writable") from None
    key = str(lock_file.resolve())
    _HELD.add(key)
    try:
        yield
    finally:
        _HELD.discard(key)
        lock.release()


def _lease_max_age() -> float:
    return float(os.environ.get("FLARELIB_LEASE_MAX_AGE", DEFAULT_LEASE_MAX_AGE))


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class _Lease:
    """The writer lease of a store on object storage: the object ``<store>.lock`` (beside the store, so that deleting
    the store for a rebuild keeps it), JSON ``{host, pid, started, refreshed, token}`` (times UTC ISO 8601).

    Object storage has no file locks. The lease is created with fsspec's exclusive create (``pipe_file(...,
    mode="create")``: on S3 with s3fs a conditional ``PutObject`` with ``If-None-Match: *``, atomic on AWS S3 and on
    servers that honour the header, moto included; other fsspec file systems check, then write). After
    :data:`LEASE_SETTLE` seconds it is read back and its token compared, which catches a server that ignored the
    condition unless the two writers' writes land further apart than that: the fallback narrows the race, it cannot
    close it. A lease whose ``refreshed`` time is older than ``$FLARELIB_LEASE_MAX_AGE`` (:data:`DEFAULT_LEASE_MAX_AGE`)
    is broken with a warning (not atomically: two writers breaking the same stale lease at once may both proceed);
    its writer refreshes it every quarter of that age from a daemon thread. It is deleted when the write ends,
    whether it succeeded or failed; a killed writer leaves it, to be deleted by hand or broken once stale.
    """

    def __init__(self, path: str, storage_options: dict | None = None):
        self.store = path.rstrip("/")
        self.url = self.store + ".lock"
        self.storage_options = storage_options
        self.fs, self.key = _fs(self.url, storage_options)
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()

    def read(self) -> dict | None:
        """The lease's content (``{}`` when it is not JSON), ``None`` when there is none."""
        try:
            data = self.fs.cat_file(self.key)
        except FileNotFoundError:
            return None
        try:
            lease = json.loads(data)
        except ValueError:
            return {}
        return lease if isinstance(lease, dict) else {}

    def age(self, lease: dict) -> float | None:
        """Seconds since ``lease`` was last refreshed (from its ``refreshed``/``started``; else the object's
        modification time); ``None`` where unknown."""
        stamp = lease.get("refreshed") or lease.get("started")
        try:
            when = (datetime.datetime.fromisoformat(stamp) if stamp else self.fs.modified(self.key))
        except (ValueError, TypeError, OSError, NotImplementedError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
        return (_utc_now() - when).total_seconds()

    def _content(self, started: str) -> bytes:
        return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": started,
                           "refreshed": _utc_now().isoformat(timespec="seconds"), "token": self.token}).encode()

    def _try_create(self) -> bool:
        """Create the lease; True when it is ours after the settle delay."""
        self.started = _utc_now().isoformat(timespec="seconds")
        try:
            self.fs.pipe_file(self.key, self._content(self.started), mode="create")
        except FileExistsError:
            return False
        except FileNotFoundError as err:
            raise FileNotFoundError(f"{self.store}: cannot create its writer lease {self.url}: {err}; does the bucket "
                                    "exist? Create it first (or check the URL and storage_options)") from err
        time.sleep(LEASE_SETTLE)
        lease = self.read()
        return lease is not None and lease.get("token") == self.token

    def _break_if_stale(self, lease: dict) -> bool:
        """Delete ``lease`` when it is older than the maximum age (a warning says whose it was); True if deleted."""
        age, max_age = self.age(lease), _lease_max_age()
        if age is None or age <= max_age:
            return False
        log.warning("%s: breaking the stale writer lease %s of %s (not refreshed for %.1f h, more than "
                    "FLARELIB_LEASE_MAX_AGE=%g s): that writer is taken to be dead; if it still runs, stop it",
                    self.store, self.url, self.holder(lease), age / 3600, max_age)
        current = self.read()
        if current is not None and current.get("token") == lease.get("token"):
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self.key)
        return True

    @staticmethod
    def holder(lease: dict) -> str:
        if not lease:
            return "an unknown writer (the lease is not flarelib's JSON)"
        return (f"host {lease.get('host', '?')} pid {lease.get('pid', '?')} (started {lease.get('started', '?')}, "
                f"refreshed {lease.get('refreshed', '?')})")

    def delete_command(self) -> str:
        """A command that deletes the lease."""
        if self.url.startswith("s3://"):
            endpoint = ((self.storage_options or {}).get("client_kwargs") or {}).get("endpoint_url")
            return f"aws s3 rm {self.url}" + (f" --endpoint-url {endpoint}" if endpoint else "")
        return f'python -c "import fsspec; fs, key = fsspec.core.url_to_fs(\'{self.url}\'); fs.rm_file(key)"'

    def acquire(self, timeout: float) -> None:
        """Take the lease, waiting up to ``timeout`` seconds for a live one to go, else :class:`CubeLockedError`."""
        deadline = time.monotonic() + timeout
        while True:
            if self._try_create():
                return
            lease = self.read()
            if lease is not None and self._break_if_stale(lease):
                continue
            if time.monotonic() >= deadline:
                raise CubeLockedError(_busy_message(self.store, self.url, timeout, lease=self))
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))

    def refresh(self) -> bool:
        """Rewrite the lease with a new ``refreshed`` time if it is still ours; False (and an error logged) if not."""
        lease = self.read()
        if lease is None or lease.get("token") != self.token:
            log.error("%s: the writer lease %s is no longer this writer's (%s): another writer may be writing the "
                      "same store; check the store when this build ends (flarelib verify_cube)", self.store, self.url,
                      "deleted" if lease is None else f"now held by {self.holder(lease)}")
            return False
        self.fs.pipe_file(self.key, self._content(self.started))
        return True

    def _keep_fresh(self) -> None:
        interval = _lease_max_age() / 4
        while not self._stop.wait(interval):
            try:
                if not self.refresh():
                    return
            except Exception as err:  # a network error: try again at the next interval
                log.warning("%s: could not refresh the writer lease %s: %s", self.store, self.url, err)

    def release(self) -> None:
        """Delete the lease if it is still ours (a warning with the command to delete it if that fails)."""
        self._stop.set()
        try:
            lease = self.read()
            if lease is not None and lease.get("token") == self.token:
                self.fs.rm_file(self.key)
        except Exception as err:
            log.warning("%s: could not delete its writer lease %s (%s); the next writer waits for it: delete it with "
                        "`%s`", self.store, self.url, err, self.delete_command())

    @contextlib.contextmanager
    def held(self, timeout: float) -> Iterator[_Lease]:
        """The lease, taken (:meth:`acquire`), kept fresh, and deleted on exit whether the body succeeded or not."""
        try:
            self.acquire(timeout)
        except BaseException:  # e.g. interrupted during the settle delay: a lease already created is deleted
            self.release()
            raise
        refresher = threading.Thread(target=self._keep_fresh, name=f"lease {self.url}", daemon=True)
        try:
            refresher.start()
            yield self
        finally:
            self.release()


@contextlib.contextmanager
def read_lock(path: str | Path, timeout: float | None = 0.0) -> Iterator[None]:
    """A shared lock on a local store's ``<store>.lock`` while it is read: writers (:func:`store_lock`) wait for it,
    and it waits for a writer.

    ``timeout``: seconds to wait for a writer (``None``: ``$FLARELIB_LOCK_TIMEOUT`` or :data:`DEFAULT_LOCK_TIMEOUT`),
    then :class:`CubeLockedError` naming the writer's pid ("a build is in progress"). Needs no write access: an
    existing lock file is opened read-only, and a folder where the lock file cannot be created is read without a
    lock (no flarelib writer can write there either). No-op for URLs and inside this process's own write lock.
    """
    if is_url(path):
        yield
        return
    path = Path(path)
    lock_file = _lock_file(path)
    if str(lock_file.resolve()) in _HELD:
        yield
        return
    try:
        fd = os.open(lock_file, os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError:
        try:
            fd = os.open(lock_file, os.O_RDONLY)
        except OSError:
            log.debug("%s: no lock file and its folder is not writable: read without a lock", path)
            yield
            return
    try:
        if fcntl is not None:  # POSIX: the flock the writers' filelock takes too (Windows: read unlocked)
            deadline = time.monotonic() + _default_timeout(timeout)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise CubeLockedError(_busy_message(path, lock_file, _default_timeout(timeout))) from None
                    time.sleep(0.05)
                except OSError as err:  # a file system without flock (the writers' filelock falls back too)
                    log.debug("%s: no flock on %s (%s): read without a lock", path, lock_file, err)
                    break
        yield
    finally:
        os.close(fd)


def _write_template(path, template: xr.Dataset, streamed: dict[str, tuple],
                    storage_options: dict | None = None) -> None:
    """Write the template: locally under a unique temporary name, then renamed into place.

    On object storage (no atomic rename) it is written in place; its consolidated
    metadata (``.zmetadata``) is written last, so a store without it is a template that
    was cut off, which :func:`write_cube` deletes and writes again.
    """
    ds = template.copy()
    nt = ds.sizes["time"]
    for name, (dims, shape, dtype) in streamed.items():
        fill = np.nan if np.dtype(dtype).kind == "f" else 0
        ds[name] = (("time",) + tuple(dims),
                    dask.array.full((nt,) + tuple(shape), fill, dtype=dtype, chunks=(1,) + tuple(shape)))
    ds["ingested"] = ("time", np.zeros(nt, dtype=np.uint8),
                      {"long_name": "1 once the time step's streamed variables are written"})
    ds.attrs["ingest_status"] = "incomplete"
    ds.attrs["store_schema"] = STORE_SCHEMA
    ds.attrs["streamed_variables"] = json_attr(sorted(streamed))
    kwargs = dict(zarr_format=ZARR_FORMAT, consolidated=True, compute=False, write_empty_chunks=True,
                  encoding=_encoding(ds, set(streamed)))
    if is_url(path):
        ds.to_zarr(_location(path, storage_options), mode="w", **kwargs)
        return
    tmp = path.with_name(f"{path.name}.template-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    ds.to_zarr(str(tmp), mode="w-", **kwargs)
    tmp.rename(path)


def _remove_stale_templates(path: Path) -> None:
    """Templates left by killed writers (called under the store's lock, so none is in use)."""
    for stale in [*path.parent.glob(f"{path.name}.template-*.tmp"), path.with_name(path.name + ".template-tmp")]:
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


def write_cube(
    path: str | Path,
    template: xr.Dataset,
    streamed: dict[str, tuple[tuple[str, ...], tuple[int, ...], str]],
    fill_steps: Callable[[int, int], dict[str, np.ndarray]],
    options: WriteOptions = WriteOptions(),
) -> Path | str:
    """Write (or resume, or repair) a cube store, serially or on Dask workers, on a disk or on object storage.

    Parameters
    ----------
    path
        Target ``.zarr`` directory, or an fsspec URL (``s3://bucket/cube.zarr``, with
        ``options.storage_options``) to write straight to object storage.
    template
        Everything but the streamed variables: coordinates, targets and attrs. Its
        ``attrs["input_fingerprint"]`` identifies the inputs and parameters.
    streamed
        ``{name: (dims_without_time, shape_without_time, dtype)}`` of the variables filled
        block by block, e.g. ``{"aia": (("channel", "y", "x"), (6, 64, 64), "float32")}``.
    fill_steps
        ``fill_steps(i0, i1)`` returns ``{name: array of shape (i1 - i0, *shape)}``.
    options
        :class:`WriteOptions`. With a ``scheduler``, each Dask task fills one block and
        writes its own chunk-aligned region (chunks hold one time step) plus its
        ``ingested`` flags, so the workers never share a chunk. The store must then be where
        every worker can write: a shared file system or object storage.

    A complete store of the same fingerprint is reused after a cheap structural check
    (missing variables or chunks send it through :func:`verify_cube` and :func:`mark_damaged`,
    then the damaged steps are re-ingested). Raises :class:`CubeLockedError` when another
    process keeps the store locked, and :class:`DamagedCubeError` when the finished store
    does not verify (e.g. it was deleted or changed during the write).
    """
    path = path if is_url(path) else Path(path)
    if not is_url(path) and path.exists() and not _writable(path.parent):
        return _reuse_read_only(path, template.attrs["input_fingerprint"])
    with store_lock(path, options.lock_timeout, options.storage_options):
        if not is_url(path):
            _remove_stale_templates(path)
        return _write_locked(path, template, streamed, fill_steps, options)


def _writable(folder: Path) -> bool:
    """Whether this process may create files in ``folder`` (the lock file, a template)."""
    return os.access(folder, os.W_OK)


def _reuse_read_only(path: Path, fingerprint: str) -> Path:
    """A complete store of ``fingerprint`` in a folder this process cannot write: reused as it is (no write lock is
    needed to read it); anything else raises a ``PermissionError`` saying why it would have to be written."""
    with read_lock(path, None):
        metadata = _Raw(path).metadata()
        foreign = foreign_store(path, metadata)
        attrs = (metadata or {}).get(".zattrs", {})
        if foreign is not None:
            why = f"is not a flarelib cube ({foreign})"
        elif metadata is None:
            why = "has no consolidated metadata (.zmetadata)"
        elif attrs.get("input_fingerprint") != fingerprint:
            why = "was built from other inputs or parameters"
        elif attrs.get("store_schema") != STORE_SCHEMA or attrs.get("ingest_status") != "complete":
            why = (f"is {attrs.get('ingest_status', 'incomplete')} (store schema {attrs.get('store_schema', 1)})"
                   if attrs.get("ingest_status") != "complete" else "was written with another store schema")
        else:
            quick = _quick_problems(path, metadata)
            why = f"is damaged ({quick[0]})" if quick else ""
    if why:
        raise PermissionError(f"{path} {why}, and its folder {path.parent} is not writable, so it cannot be "
                              "(re)built there: build it where you can write (--build-dir or $FLARELIB_DATA_DIR) or "
                              "make the folder writable")
    log.info("%s is complete and up to date (read-only folder: reused without the write lock)", path)
    return path


def _write_locked(path, template: xr.Dataset, streamed: dict, fill_steps: Callable, options: WriteOptions):
    per_write, overwrite, progress, on_written = (options.steps_per_write, options.overwrite, options.progress,
                                                  options.on_written)
    scheduler, storage_options = options.scheduler, options.storage_options
    fingerprint = template.attrs["input_fingerprint"]
    expected = {str(v) for v in template.variables} | set(streamed) | {"ingested"}
    if (is_url(path) and _exists(path, storage_options) and not _exists(path, storage_options, ".zmetadata")
            and foreign_store(path, None, _Raw(path, storage_options)) is None):  # never another program's store
        log.warning("%s holds a template that was cut off; writing it again", path)
        _remove(path, storage_options)
    reconsolidated = False
    if _exists(path, storage_options):
        raw = _Raw(path, storage_options)
        foreign = foreign_store(path, raw.metadata(), raw)
        if foreign is not None and "attrs were replaced" not in foreign:  # never delete what flarelib did not write
            raise CubeMismatchError(f"{path} exists and is not a flarelib cube: {foreign}; flarelib will not delete "
                                    "it (not even with overwrite): move it away, or build the cube at another path")
        try:
            attrs = read_attrs(path, storage_options)
        except Exception:  # not a zarr group: never delete what we did not write
            raise CubeMismatchError(f"{path} exists and is not a flarelib cube (not even a Zarr store: no readable "
                                    ".zgroup/.zattrs); flarelib will not delete it: move it away, or build the cube "
                                    "at another path") from None
        if (raw.metadata() is None and not is_url(path) and attrs.get("input_fingerprint") == fingerprint
                and raw.get(".zmetadata") is None):
            log.warning("%s: its consolidated metadata (.zmetadata) is missing; consolidating it again from the "
                        "variables' own metadata, then checking every chunk", path)
            with warnings.catch_warnings():  # the chunk manifest is not a Zarr object (so says zarr)
                warnings.filterwarnings("ignore", message=".*not recognized as a component")
                zarr.consolidate_metadata(_location(path, storage_options), zarr_format=ZARR_FORMAT)
            reconsolidated = True
        if foreign is not None:
            added = _added_variables(raw.metadata() or {})
            if not overwrite:
                raise CubeMismatchError(
                    f"{path}: {foreign}; pass overwrite=True (catalog: build NAME --overwrite) to delete it and build "
                    "it anew" + (f" (the variables {added} that flarelib did not write are deleted too)" if added
                                 else ""))
            log.warning("%s: %s; deleting it and building it anew (overwrite)%s", path, foreign,
                        f", the variables {added} that flarelib did not write included" if added else "")
            _remove(path, storage_options)
        elif attrs.get("input_fingerprint") != fingerprint:
            added = _added_variables(raw.metadata() or {})
            if not overwrite:
                raise CubeMismatchError(
                    f"{path} was built from other inputs or parameters "
                    f"(fingerprint {str(attrs.get('input_fingerprint'))[:12]} != {fingerprint[:12]}); "
                    "pass overwrite=True (catalog: build NAME --overwrite) to replace it (it deletes the whole store"
                    + (f", the variables {added} that flarelib did not write included)" if added else ")"))
            log.warning("%s was built from other inputs or parameters; deleting it and building it anew (overwrite)%s",
                        path, f", the variables {added} that flarelib did not write included" if added else "")
            _remove(path, storage_options)
        elif attrs.get("store_schema") != STORE_SCHEMA:
            log.warning("%s was written with store schema %s (this flarelib writes %s); rebuilding it", path,
                        attrs.get("store_schema", 1), STORE_SCHEMA)
            _remove(path, storage_options)
        else:
            metadata = _Raw(path, storage_options).metadata() or {}
            quick = [] if is_url(path) else _quick_problems(path, metadata)
            if attrs.get("ingest_status") == "complete" and not quick and not reconsolidated:
                log.info("%s is complete and up to date", path)
                return path
            report = verify_cube(path, storage_options=storage_options, expected=expected)
            if not report.ok:
                missing = [p for p in report.problems if not p.key and p.variable]  # renamed or deleted variables
                if report.repairable:
                    mark_damaged(path, report, storage_options=storage_options)
                elif (missing or report.added) and not overwrite:  # not what a rebuild may silently delete
                    raise DamagedCubeError(report.lines()[0] if missing else f"{report.lines()[0]}; fix: "
                                           f"{report.fix('build NAME')}")
                else:
                    log.warning("%s: %s; rebuilding the whole store", path, report.lines()[0])
                    _remove(path, storage_options)
            if _exists(path, storage_options):
                log.info("resuming the incomplete store %s", path)
    if not _exists(path, storage_options):
        _write_template(path, template, streamed, storage_options)

    location = _location(path, storage_options)
    with zarr.config.set({"array.write_empty_chunks": True}):  # arrays take the setting when opened
        group = zarr.open_group(location, mode="r+", zarr_format=ZARR_FORMAT)
    done = group["ingested"][:].astype(bool)
    todo = np.flatnonzero(~done)
    batches = [todo[k:k + per_write] for k in range(0, len(todo), per_write)]
    # contiguous runs inside a batch keep region writes simple
    regions = [(int(run[0]), int(run[-1]) + 1) for idx in batches
               for run in np.split(idx, np.flatnonzero(np.diff(idx) != 1) + 1)]
    name = path.rsplit("/", 1)[-1] if is_url(path) else path.name
    with tqdm(total=len(todo), desc=f"write {name}", unit="step", disable=not progress) as bar:
        if scheduler is None:
            results = (write_region(group, list(streamed), fill_steps, i0, i1, storage_options, target=path)
                       for i0, i1 in regions)
        else:
            target = path if is_url(path) else str(path)
            results = _distributed_regions(scheduler, target, storage_options, list(streamed), fill_steps, regions)
        for i0, i1 in results:
            bar.update(i1 - i0)
            if on_written is not None:
                on_written(i0, i1)
    _finish(path, expected, storage_options)
    return path


def _finish(path, expected: set[str], storage_options: dict | None) -> None:
    """Verify every chunk of the written store, then mark it complete (raises :class:`DamagedCubeError`)."""
    report = verify_cube(path, storage_options=storage_options, expected=expected)
    if report.ok and report.n_ingested != report.n_steps:
        report = dataclasses.replace(report, problems=(ChunkProblem(
            "ingested", "ingested", f"flags {report.n_steps - report.n_ingested} steps not written"),))
    if not report.ok:
        raise DamagedCubeError(f"{path} failed its verification after the write ({len(report.problems)} problems, "
                               f"first: {report.lines()[0]}); was it changed or deleted during the build? "
                               "Build it again")
    location = _location(path, storage_options)
    group = zarr.open_group(location, mode="r+", zarr_format=ZARR_FORMAT, use_consolidated=False)
    _record_write_skips(path, group, storage_options)
    group.attrs["ingest_status"] = "complete"
    zarr.consolidate_metadata(location, zarr_format=ZARR_FORMAT)
    metadata = _Raw(path, storage_options).metadata() or {}
    missing = sorted(v for v in expected if f"{v}/.zarray" not in metadata)
    if metadata.get(".zattrs", {}).get("ingest_status") != "complete" or missing:
        raise DamagedCubeError(f"{path}: its consolidated metadata is wrong after the write (missing {missing}); "
                               "was it changed or deleted during the build? Build it again")
    # after the consolidation, which would list it as an unknown object
    _Raw(path, storage_options).put(MANIFEST_KEY, json.dumps(report.checksums, sort_keys=True).encode())


def _record_write_skips(path, group, storage_options: dict | None) -> None:
    """Add the inputs ``fill_steps`` left out (:data:`SKIPPED_KEY`) to ``skipped_inputs``/``n_skipped`` (a step
    re-ingested after :func:`mark_damaged`, which drops its entries, reports its own again)."""
    raw = _Raw(path, storage_options)
    keys = sorted(raw.chunk_keys(_SKIPS_DIR) or ())
    if not keys:
        return
    found: dict[tuple, dict] = {}
    for key in keys:
        for skip in json.loads(raw.get(key) or b"{}").get("skipped", []):  # a step written twice (a resume) once
            found[(skip.get("time_step"), str(skip.get("source", "")))] = skip
    previous = json.loads(group.attrs.get("skipped_inputs", "[]") or "[]")
    merged = previous + [found[k] for k in sorted(found, key=lambda k: (k[0] if k[0] is not None else -1, k[1]))]
    _set_skipped(group, merged)
    for key in keys:
        raw.delete(key)
    if not is_url(path):
        with contextlib.suppress(OSError):
            (Path(path) / _SKIPS_DIR).rmdir()


def _set_skipped(group, skipped: list) -> None:
    """The store's ``skipped_inputs`` and its count ``n_skipped``, written together."""
    group.attrs["skipped_inputs"] = json_attr(skipped)
    group.attrs["n_skipped"] = len(skipped)


def _forget_write_skips(group, steps: set[int]) -> None:
    """Drop the ``skipped_inputs`` entries of time steps about to be written again (they report their own)."""
    try:
        previous = json.loads(group.attrs.get("skipped_inputs", "[]") or "[]")
    except (ValueError, TypeError):
        return
    kept = [s for s in previous if not (isinstance(s, dict) and s.get("time_step") in steps)]
    if len(kept) != len(previous):
        _set_skipped(group, kept)


def write_region(group, names: list[str], fill_steps: Callable, i0: int, i1: int,
                 storage_options: dict | None = None, target=None) -> tuple[int, int]:
    """Fill time steps ``[i0, i1)`` of the streamed variables, then flag them ingested.

    ``group`` is an open Zarr group, or a store path or URL (what a Dask worker receives);
    ``target``: the store's path or URL when ``group`` is an open group (where the inputs that
    ``fill_steps`` left out, :data:`SKIPPED_KEY`, are kept until the store is completed).
    Every chunk is written, even one equal to the fill value (a missing chunk means damage).
    """
    with zarr.config.set({"array.write_empty_chunks": True}):
        if not isinstance(group, zarr.Group):
            target = group
            group = zarr.open_group(_location(group, storage_options), mode="r+", zarr_format=ZARR_FORMAT)
        arrays = fill_steps(i0, i1)
        if arrays.get(SKIPPED_KEY) and target is not None:  # before the flags: a killed writer loses no record
            _Raw(target, storage_options).put(f"{_SKIPS_DIR}/{i0}-{i1}.json", json.dumps(
                {"steps": [i0, i1], "skipped": arrays[SKIPPED_KEY]}, default=str).encode())
        for name in names:
            group[name][i0:i1] = arrays[name]
        group["ingested"][i0:i1] = 1
    return i0, i1


def dask_client(scheduler):
    """A ``dask.distributed.Client`` (and the cluster it owns, or ``None``) for a scheduler spec.

    ``"local"`` or ``"local:N"``: a :class:`~dask.distributed.LocalCluster` of ``N``
    (default: the CPU count) worker processes with one thread each, on 127.0.0.1.
    ``"tcp://host:port"`` (or any address): an existing scheduler, e.g. one started by
    ``dask-jobqueue``, ``dask-kubernetes`` or ``dask scheduler`` on a cluster. A ``Client``
    is used as it is.
    """
    import os

    from dask.distributed import Client, LocalCluster  # lazy: distributed takes a second to import

    if isinstance(scheduler, Client):
        return scheduler, None
    spec = str(scheduler)
    if spec == "local" or spec.startswith("local:"):
        n = int(spec.split(":")[1]) if ":" in spec else os.cpu_count() or 1
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None)
        return Client(cluster), cluster
    return Client(spec), None


def _distributed_regions(scheduler, path: str, storage_options, names: list[str], fill_steps: Callable, regions):
    from dask.distributed import as_completed  # lazy: distributed takes a second to import

    client, cluster = dask_client(scheduler)
    try:
        shipped = client.scatter(fill_steps, broadcast=True, hash=False)  # once per worker, not once per task
        futures = [client.submit(write_region, path, names, shipped, i0, i1, storage_options, pure=False,
                                 key=f"region-{i0}-{i1}") for i0, i1 in regions]
        for future in as_completed(futures):
            yield future.result()
    finally:
        if cluster is not None:
            client.close()
            cluster.close()


def cube_status(path: str | Path, *, storage_options: dict | None = None) -> dict:
    """``{"status": ..., "n_steps": ..., "n_ingested": ..., "missing": [times]}`` of a store (path or URL)."""
    group = zarr.open_group(_location(path, storage_options), mode="r", zarr_format=ZARR_FORMAT,
                            use_consolidated=False)
    ingested = group["ingested"][:].astype(bool)
    ds = xr.open_zarr(_location(path, storage_options), consolidated=False)
    return {
        "status": group.attrs.get("ingest_status", "unknown"),
        "n_steps": int(ingested.size),
        "n_ingested": int(ingested.sum()),
        "missing": [str(t) for t in ds.time.values[~ingested]],
    }


def open_cube(path: str | Path, *, allow_incomplete: bool = False, storage_options: dict | None = None,
              **kwargs) -> xr.Dataset:
    """Open a cube (a path, or a URL with ``storage_options``) lazily, refusing incomplete or damaged stores.

    Plain ``xr.open_zarr(path)`` opens the same store without flarelib; this wrapper adds
    the checks. Opening stays cheap: it reads the consolidated metadata and, for a local
    store, lists each variable's folder once (a deleted variable or chunk raises
    :class:`DamagedCubeError` here). Every chunk read later goes through a
    :class:`CheckedStore`: a chunk that fails its CRC32, or is missing at an ingested step,
    raises :class:`DamagedCubeError` naming the store, the variable and the time step.
    :class:`OutdatedCubeError` for a store of another :data:`STORE_SCHEMA`.
    """
    path = path if is_url(path) else Path(path)
    if not _exists(path, storage_options):
        raise FileNotFoundError(f"no cube at {path}; build it first (see data_catalog.yaml / make data)")
    with read_lock(path, None):  # a writer in progress is waited for (as long as a second writer would wait)
        return _open_checked(path, allow_incomplete, storage_options, kwargs)


def _open_checked(path, allow_incomplete: bool, storage_options: dict | None, kwargs: dict) -> xr.Dataset:
    raw = _Raw(path, storage_options)
    metadata = raw.metadata()
    foreign = foreign_store(path, metadata, raw)
    if foreign is not None:
        added = _added_variables(metadata or {})
        fix = ("`flarelib catalog build NAME --overwrite` deletes it and builds the cube anew"
               + (f" (the variables {added} that flarelib did not write included)" if added else "")
               if "attrs were replaced" in foreign else
               "xarray.open_zarr reads it without flarelib's checks; flarelib will not delete it")
        raise OutdatedCubeError(f"{path} is not a flarelib cube: {foreign}; {fix}")
    if metadata is None:
        if raw.get(".zmetadata") is not None:
            raise DamagedCubeError(f"{path}: its consolidated metadata (.zmetadata) is unreadable; {_ADVICE}")
        if is_url(path):  # object storage: the template is written in place, its .zmetadata last
            raise IncompleteCubeError(f"{path} has no consolidated metadata (.zmetadata): its writer stopped while "
                                      "writing the template; re-run the same ingest (it writes the template again)")
        raise IncompleteCubeError(f"{path} has no consolidated metadata (.zmetadata): deleted, or the store was copied "
                                  "without it; `flarelib catalog build NAME` (or re-running the same ingest) "
                                  "consolidates it again and checks every chunk (it deletes nothing)")
    attrs = metadata.get(".zattrs", {})
    if attrs.get("store_schema") != STORE_SCHEMA:
        schema = attrs.get("store_schema", 1)
        raise OutdatedCubeError(f"{path} was written by an older flarelib, with store schema {schema} "
                                f"(without chunk checksums); this flarelib reads schema {STORE_SCHEMA}: rebuild it "
                                "(re-run its ingest, or `flarelib catalog build NAME`: it replaces the old store)")
    manifest = _complete_manifest(path, metadata, storage_options)
    missing = _missing_variables(metadata, manifest)
    if missing:
        raise DamagedCubeError(_missing_variable_message(path, metadata, missing))
    if not is_url(path):
        quick = _quick_problems(path, metadata, manifest)
        if quick:
            copy = (f" (the store has no chunk manifest {MANIFEST_KEY}, which flarelib writes when it completes a "
                    "store: a copy made by other software? xarray's to_zarr leaves out chunks equal to the fill "
                    "value)" if attrs.get("ingest_status") == "complete" and raw.get(MANIFEST_KEY) is None else "")
            raise DamagedCubeError(f"{path}: {quick[0]}" + (f" (and {len(quick) - 1} more problems)"
                                                           if len(quick) > 1 else "") + f"{copy}; {_ADVICE}")
    added = _added_variables(metadata)
    if added:
        log.warning("%s: the variables %s were not written by flarelib (no CRC32 codec: added by other software?); "
                    "they are read without flarelib's checks", path, added)
    status = attrs.get("ingest_status")
    ingested = None
    # "complete" is set only after every block has been written, flagged and verified, so the flags (one chunk per
    # step: thousands of small reads) are read only to say what is missing
    if status != "complete":
        ingested = zarr.open_group(_location(path, storage_options), mode="r",
                                   zarr_format=ZARR_FORMAT)["ingested"][:].astype(bool)
        message = (f"{path} is incomplete ({int((~ingested).sum())} of {ingested.size} time steps not written; "
                   "re-run the same ingest to complete it)")
        if not allow_incomplete:
            raise IncompleteCubeError(message)
        log.warning(message)
    checked = checked_store(path, storage_options=storage_options, ingested=ingested, metadata=metadata)
    ds = xr.open_zarr(checked, **kwargs)
    if "time" in ds.coords:
        checked._guard.times = ds["time"].values
    return ds


def checked_store(path: str | Path, *, storage_options: dict | None = None, ingested: np.ndarray | None = None,
                  metadata: dict | None = None) -> CheckedStore:
    """A read-only :class:`CheckedStore` of a cube (what :func:`open_cube` reads through; also for
    ``zarr.open_group(checked_store(path), mode="r")`` in a DataLoader worker). ``ingested``: the flags of an
    incomplete store (``None``: every step must be present)."""
    metadata = metadata if metadata is not None else (_Raw(path, storage_options).metadata() or {})
    attrs = metadata.get(".zattrs", {})
    inner = (zarr.storage.FsspecStore.from_url(path, storage_options=storage_options or {}, read_only=True)
             if is_url(path) else zarr.storage.LocalStore(str(path), read_only=True))
    manifest = _manifest(path, storage_options) if attrs.get("ingest_status") == "complete" else None
    guard = _ChunkGuard(str(path), _checked_layouts(metadata), _streamed(attrs), ingested, manifest)
    return CheckedStore(inner, guard)


def json_attr(value) -> str:
    """Serialize provenance for a Zarr attr (stable key order, so reruns compare equal)."""
    return json.dumps(value, sort_keys=True, default=str)


def cube_cadence(cube: xr.Dataset) -> np.timedelta64:
    """The cadence a cube was built on, ``timedelta64[ns]``: the one its builder recorded (``alignment``'s
    ``cadence``); for a cube that records none (written by other software), the most common step between its
    times. The one definition of a cube's cadence that the data module, the baselines and the plots share."""
    recorded = json.loads(cube.attrs.get("alignment", "{}") or "{}").get("cadence")
    if recorded:
        return np.timedelta64(pd.Timedelta(recorded).value, "ns")
    steps = np.diff(np.asarray(cube["time"].values, dtype="datetime64[ns]"))
    if steps.size == 0:
        raise ValueError(f"{cube.attrs.get('name', 'the cube')} records no cadence and has one time step")
    values, counts = np.unique(steps, return_counts=True)
    return values[np.argmax(counts)]
