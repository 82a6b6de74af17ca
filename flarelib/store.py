"""The cube on disk: one Zarr store per dataset, written resumably, readable by plain xarray.

Format choices (also in ``DATASET_CARD.md``, which every store carries in its attrs):

* **Zarr format 2**, on purpose. Consolidated metadata is part of the v2 convention
  but not of the v3 specification (zarr-python warns about it); SDOML v2, which a later
  stage reads, is Zarr v2, so both stores open with the same tools; and every Zarr
  reader in the ecosystem (zarr-python 2 and 3, xarray, Julia, JS, ...) reads v2.
* Chunks of **one time step with all channels** ``(1, C, ny, nx)`` for ``aia`` (and
  ``(1, ny, nx)`` for per-pixel masks), so a training sample or a slider step is one read.
* **Blosc zstd, level 5, byte shuffle** and **consolidated metadata**.

Resumable writes: :func:`write_cube` first writes a *template* (every coordinate and
target, ``aia`` empty, ``ingested=0`` everywhere, ``attrs["ingest_status"]="incomplete"``)
under a temporary name and renames it into place; then it fills the time steps block by
block and sets ``ingested`` for a block only after its pixels are written; finally it
marks the store ``complete`` and consolidates the metadata again. A killed writer
therefore leaves a store that says it is incomplete and which steps are missing;
re-running the same ingest (same inputs, same parameters: same ``input_fingerprint``)
fills in exactly those steps. :func:`open_cube` refuses incomplete stores.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import dask.array
import numcodecs
import numpy as np
import xarray as xr
import zarr
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

ZARR_FORMAT = 2
COMPRESSOR = numcodecs.Blosc(cname="zstd", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
DATASET_CARD_PATH = Path(__file__).with_name("DATASET_CARD.md")


class IncompleteCubeError(RuntimeError):
    """The store exists but its ingest did not finish (re-run the same ingest to complete it)."""


class CubeMismatchError(RuntimeError):
    """A store exists at the path but was made from other inputs or parameters."""


ZARR_FORMAT_REASON = ("Zarr v2: consolidated metadata is standard there (not in the v3 spec), SDOML v2 is v2, "
                      "and every Zarr reader supports it")


@dataclass(frozen=True)
class WriteOptions:
    """How :func:`write_cube` writes.

    ``block``: time steps per call of ``fill_block`` (and per Dask task). ``overwrite``:
    replace a store made from other inputs instead of raising :class:`CubeMismatchError`.
    ``progress``: a tqdm bar. ``on_block(i0, i1)``: called after each block is committed
    (progress reporting, tests). ``scheduler``: ``None`` writes in this process; otherwise
    the blocks run as ``dask.distributed`` tasks (see :func:`dask_client`).
    ``storage_options``: fsspec options for a URL path (credentials, endpoint), also passed
    to the workers.
    """

    block: int = 1
    overwrite: bool = False
    progress: bool = True
    on_block: Callable[[int, int], None] | None = None
    scheduler: object = None
    storage_options: dict | None = None


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
    enc = {}
    for name, var in template.variables.items():
        if var.dtype.kind in "fiub":
            enc[name] = {"compressors": (COMPRESSOR,)}
        if name in streamed:
            enc[name]["chunks"] = (1,) + tuple(var.shape[1:])
        elif "time" in var.dims and var.dtype.kind in "fiub" and var.ndim >= 1:
            enc[name]["chunks"] = var.shape
    enc["ingested"] = {"chunks": (1,), "compressors": (COMPRESSOR,)}
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


def _write_template(path, template: xr.Dataset, streamed: dict[str, tuple],
                    storage_options: dict | None = None) -> None:
    """Write the template: locally under a temporary name, then renamed into place.

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
    if is_url(path):
        ds.to_zarr(_location(path, storage_options), mode="w", zarr_format=ZARR_FORMAT, consolidated=True,
                   compute=False, encoding=_encoding(ds, set(streamed)))
        return
    tmp = path.with_name(path.name + ".template-tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    ds.to_zarr(str(tmp), mode="w", zarr_format=ZARR_FORMAT, consolidated=True, compute=False,
               encoding=_encoding(ds, set(streamed)))
    tmp.rename(path)


def write_cube(
    path: str | Path,
    template: xr.Dataset,
    streamed: dict[str, tuple[tuple[str, ...], tuple[int, ...], str]],
    fill_block: Callable[[int, int], dict[str, np.ndarray]],
    options: WriteOptions = WriteOptions(),
) -> Path | str:
    """Write (or resume) a cube store, serially or on Dask workers, on a disk or on object storage.

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
    fill_block
        ``fill_block(i0, i1)`` returns ``{name: array of shape (i1 - i0, *shape)}``.
    options
        :class:`WriteOptions`. With a ``scheduler``, each Dask task fills one block and
        writes its own chunk-aligned region (chunks hold one time step) plus its
        ``ingested`` flags, so the workers never share a chunk. The store must then be where
        every worker can write: a shared file system or object storage.
    """
    block, overwrite, progress, on_block = options.block, options.overwrite, options.progress, options.on_block
    scheduler, storage_options = options.scheduler, options.storage_options
    path = path if is_url(path) else Path(path)
    fingerprint = template.attrs["input_fingerprint"]
    if is_url(path) and _exists(path, storage_options) and not _exists(path, storage_options, ".zmetadata"):
        log.warning("%s holds a template that was cut off; writing it again", path)
        _remove(path, storage_options)
    if _exists(path, storage_options):
        try:
            attrs = read_attrs(path, storage_options)
        except Exception:  # not a zarr group: never delete what we did not write
            raise CubeMismatchError(f"{path} exists and is not a flarelib cube; remove it yourself") from None
        if attrs.get("input_fingerprint") != fingerprint:
            if not overwrite:
                raise CubeMismatchError(
                    f"{path} was built from other inputs or parameters "
                    f"(fingerprint {str(attrs.get('input_fingerprint'))[:12]} != {fingerprint[:12]}); "
                    "pass overwrite=True to replace it")
            _remove(path, storage_options)
        elif attrs.get("ingest_status") == "complete":
            log.info("%s is complete and up to date", path)
            return path
        else:
            log.info("resuming the incomplete store %s", path)
    if not _exists(path, storage_options):
        _write_template(path, template, streamed, storage_options)

    location = _location(path, storage_options)
    group = zarr.open_group(location, mode="r+", zarr_format=ZARR_FORMAT)
    done = group["ingested"][:].astype(bool)
    todo = np.flatnonzero(~done)
    blocks = [todo[k:k + block] for k in range(0, len(todo), block)]
    # contiguous runs inside a block keep region writes simple
    regions = [(int(run[0]), int(run[-1]) + 1) for idx in blocks
               for run in np.split(idx, np.flatnonzero(np.diff(idx) != 1) + 1)]
    name = path.rsplit("/", 1)[-1] if is_url(path) else path.name
    with tqdm(total=len(todo), desc=f"write {name}", unit="step", disable=not progress) as bar:
        if scheduler is None:
            results = (write_region(group, list(streamed), fill_block, i0, i1) for i0, i1 in regions)
        else:
            target = path if is_url(path) else str(path)
            results = _distributed_regions(scheduler, target, storage_options, list(streamed), fill_block, regions)
        for i0, i1 in results:
            bar.update(i1 - i0)
            if on_block is not None:
                on_block(i0, i1)
    group.attrs["ingest_status"] = "complete"
    zarr.consolidate_metadata(location, zarr_format=ZARR_FORMAT)
    return path


def write_region(group, names: list[str], fill_block: Callable, i0: int, i1: int,
                 storage_options: dict | None = None) -> tuple[int, int]:
    """Fill time steps ``[i0, i1)`` of the streamed variables, then flag them ingested.

    ``group`` is an open Zarr group, or a store path or URL (what a Dask worker receives).
    """
    if not isinstance(group, zarr.Group):
        group = zarr.open_group(_location(group, storage_options), mode="r+", zarr_format=ZARR_FORMAT)
    arrays = fill_block(i0, i1)
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


def _distributed_regions(scheduler, path: str, storage_options, names: list[str], fill_block: Callable, regions):
    from dask.distributed import as_completed  # lazy: distributed takes a second to import

    client, cluster = dask_client(scheduler)
    try:
        shipped = client.scatter(fill_block, broadcast=True, hash=False)  # once per worker, not once per task
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
    """Open a cube (a path, or a URL with ``storage_options``) lazily, refusing incomplete stores.

    Plain ``xr.open_zarr(path)`` opens the same store without flarelib; this wrapper
    adds the completeness check.
    """
    path = path if is_url(path) else Path(path)
    if not _exists(path, storage_options):
        raise FileNotFoundError(f"no cube at {path}; build it first (see data_catalog.yaml / make data)")
    if not _exists(path, storage_options, ".zmetadata"):  # written last by every flarelib writer
        raise IncompleteCubeError(f"{path} has no consolidated metadata: its writer stopped while writing the "
                                  "template; re-run the same ingest")
    ds = xr.open_zarr(_location(path, storage_options), **kwargs)
    status = ds.attrs.get("ingest_status")
    # "complete" is set only after every block has been written and flagged, so the flags (one chunk per step:
    # thousands of small reads) are read only to say what is missing
    if status != "complete":
        ingested = zarr.open_group(_location(path, storage_options), mode="r", zarr_format=ZARR_FORMAT)["ingested"][:]
        missing = int((ingested == 0).sum())
        message = (f"{path} is incomplete ({missing} of {ds.sizes['time']} time steps not written; "
                   "re-run the same ingest to complete it)")
        if not allow_incomplete:
            raise IncompleteCubeError(message)
        log.warning(message)
    return ds


def json_attr(value) -> str:
    """Serialize provenance for a Zarr attr (stable key order, so reruns compare equal)."""
    return json.dumps(value, sort_keys=True, default=str)
