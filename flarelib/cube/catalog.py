"""``data_catalog.yaml``: every dataset the suite knows, validated, verified and openable.

>>> from flarelib.cube.catalog import load_catalog
>>> cat = load_catalog()
>>> cat.names()                                   # doctest: +SKIP
>>> cube = cat.open("sample-flare-2011-02-15")    # builds the Zarr cube once, then opens it

Local kinds: ``aia_fits`` (a folder of AIA FITS files, built into a cube), ``goes_xrs``
(GOES XRS files, opened as one XRS dataset), ``synthetic`` (the synthetic sun,
generated into a cube), ``flare_list`` (a NOAA flare list, opened as a pandas table of flares) and
``region_summary`` (NOAA region-days, opened as a pandas table): see :mod:`flarelib.cube.noaa`.

Network kinds (:mod:`flarelib.cube.acquire`, :mod:`flarelib.cube.sdoml`; they need the network the
first time): ``fido_aia`` and ``jsoc_export`` download AIA FITS into
``<build dir>/downloads/<entry>`` and build the same cube as ``aia_fits``; ``sdoml_v2``
reads the SDOML v2 Zarr store on S3 into that cube; ``fido_goes`` opens GOES XRS like
``goes_xrs``; ``hek_events`` opens a HEK flare list (kept as JSON once fetched). A cube's
``goes_from`` / ``events_from`` name the entry its targets come from. Once built, a cube
whose entry has not changed is reused without touching the network.

Each kind is one registered :class:`Kind` (its name, the fields it requires, and its
``files``/``build``/``open`` functions); :func:`register_kind` adds one. See "How to
extend" in ``docs/architecture.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pandas as pd
import xarray as xr
import yaml
import zarr

from flarelib.checksums import ChecksumError, fingerprint, read_checksums, sha256_of, verify_files
from flarelib.cube import align, goes, noaa, prep, store
from flarelib.labels import duration_label
from flarelib.paths import default_build_dir, default_catalog_path
from flarelib.runner import DEBUG_HELP, run_command
from flarelib.settings import load_yaml

log = logging.getLogger(__name__)

_COMMON = {
    "description": {"type": "string", "minLength": 1},
    "synthetic": {"type": "boolean"},
    "licence": {"type": "string", "minLength": 1},
    "citation": {"type": "string", "minLength": 1},
    "time_range": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2},
    "channels": {"type": "array", "items": {"type": "integer", "minimum": 1}},
    "path": {"type": "string"},
    "pattern": {"type": "string"},
    "checksums": {"type": "string"},
    "sha256": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"},
    "cube": {"type": "object"},
    "generator": {"type": "object"},
    "disk_from": {"type": "string"},
    "query": {"type": "object"},
}
CATALOG_SCHEMA = {
    "type": "object",
    "required": ["version", "entries"],
    "properties": {"version": {"const": 1}, "entries": {"type": "object", "minProperties": 1}},
    "additionalProperties": False,
}


class CatalogError(ValueError):
    """A catalog entry is invalid or its files do not match; the message names entry and field."""


@dataclass(frozen=True)
class Entry:
    """One validated catalog entry."""

    name: str
    kind: str
    spec: dict
    root: Path

    @property
    def synthetic(self) -> bool:
        return bool(self.spec["synthetic"])

    @property
    def path(self) -> Path:
        return (self.root / self.spec["path"]).resolve()

    @property
    def fingerprint(self) -> str:
        """sha256 of the entry's specification: a cube built from it records this (``catalog_spec``)."""
        return fingerprint(self.spec)

    def error(self, field: str, message: str) -> CatalogError:
        """A :class:`CatalogError` naming this entry and ``field``."""
        return CatalogError(f"entry {self.name!r}, field {field}: {message}")


@dataclass(frozen=True)
class BuildRequest:
    """What :meth:`Catalog.build` passes to a kind's ``build`` function."""

    out: Path
    build_dir: Path | None
    overwrite: bool
    progress: bool
    scheduler: object


@dataclass(frozen=True)
class Kind:
    """One kind of catalog entry.

    ``required``: the fields its entries must have (beyond the common ones); ``schema``:
    further JSON-schema constraints on them. ``network``: its data come from an archive
    (a built cube is reused while the entry is unchanged). ``files(catalog, entry,
    build_dir, verify)`` lists its files, ``build(catalog, entry, request)`` builds its
    cube, and ``open(catalog, entry, build_dir, progress)`` opens it (default: build, then
    :func:`flarelib.cube.store.open_cube`). A missing function means the kind has no such thing.
    """

    name: str
    required: tuple[str, ...] = ()
    schema: dict = dataclasses.field(default_factory=dict)
    network: bool = False
    files: Callable | None = None
    build: Callable | None = None
    open: Callable | None = None


#: The registered kinds, by name (see :func:`register_kind`).
KINDS: dict[str, Kind] = {}


def register_kind(kind: Kind) -> Kind:
    """Make ``kind`` known to every catalog loaded from now on (replacing one of the same name)."""
    KINDS[kind.name] = kind
    return kind


def entry_schema() -> dict:
    """The JSON schema of one entry: the common fields plus what each registered kind requires."""
    return {
        "type": "object",
        "required": ["kind", "description", "synthetic", "licence", "citation"],
        "properties": {"kind": {"enum": list(KINDS)}, **_COMMON},
        "additionalProperties": False,
        "allOf": [{"if": {"properties": {"kind": {"const": k.name}}},
                   "then": {"required": list(k.required), **k.schema}} for k in KINDS.values()],
    }


class Catalog:
    """The datasets of ``data_catalog.yaml`` (see the module docstring)."""

    def __init__(self, entries: dict[str, Entry], source: Path):
        self.entries = entries
        self.source = source

    def __repr__(self) -> str:
        return f"Catalog({self.source}, {len(self.entries)} entries)"

    def __getitem__(self, name: str) -> Entry:
        if name not in self.entries:
            raise CatalogError(f"no catalog entry {name!r}; known: {sorted(self.entries)}")
        return self.entries[name]

    def names(self, kind: str | None = None) -> list[str]:
        return [n for n, e in self.entries.items() if kind is None or e.kind == kind]

    def summary(self, network: bool | None = None) -> pd.DataFrame:
        """A pandas table of the entries (name, kind, synthetic, channels, time range, description).

        ``network=True`` lists only the entries fetched from archives, ``False`` only local ones.
        """
        entries = [e for e in self.entries.values() if network is None or KINDS[e.kind].network == network]
        rows = [{"name": e.name, "kind": e.kind, "synthetic": e.synthetic,
                 "channels": e.spec.get("channels", ""), "time_range": " to ".join(e.spec.get("time_range", [])),
                 "description": e.spec["description"]} for e in entries]
        return pd.DataFrame(rows).set_index("name")

    def files(self, name: str, *, verify: bool = True, build_dir: str | Path | None = None) -> list[Path]:
        """The files of an entry, checked: a local entry's against its sha256 (and its checksum list);
        a ``fido_aia``/``jsoc_export`` entry's are downloaded (resumably) and verified first."""
        entry = self[name]
        kind = KINDS[entry.kind]
        if kind.files is None:
            raise entry.error("kind", f"{entry.kind!r} entries have no file list; use open()")
        return kind.files(self, entry, build_dir, verify)

    def download_dir(self, name: str, build_dir: str | Path | None = None) -> Path:
        """Where a network entry's downloads go: ``<build dir>/downloads/<name>``."""
        return Path(build_dir or default_build_dir()) / "downloads" / name

    def events(self, name: str, *, build_dir: str | Path | None = None) -> list[dict]:
        """Flare events of a ``hek_events`` entry (fetched once, then read from ``events.json``)."""
        from flarelib.cube import acquire  # lazy: loaded only when this kind builds
        entry = self[name]
        if entry.kind != "hek_events":
            raise entry.error("kind", f"{entry.kind!r} is not a flare event list")
        cached = self.download_dir(name, build_dir) / "events.json"
        if cached.is_file():
            saved = json.loads(cached.read_text())
            if saved.get("catalog_spec") == entry.fingerprint:
                return saved["events"]
        events = acquire.search_flare_events(entry.spec["time_range"], entry.spec["query"].get("observatory", "SWPC"))
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        tmp.write_text(json.dumps({"catalog_spec": entry.fingerprint, "events": events}, indent=1))
        tmp.replace(cached)
        return events

    def cube_path(self, name: str, build_dir: str | Path | None = None) -> Path:
        return Path(build_dir or default_build_dir()) / f"{name}.zarr"

    def _request(self, name: str, build_dir: str | Path | None, *, overwrite: bool = False, progress: bool = True,
                 scheduler=None) -> BuildRequest:
        return BuildRequest(self.cube_path(name, build_dir), Path(build_dir) if build_dir else None, overwrite,
                            progress, scheduler)

    def cube_options(self, name: str, *, build_dir: str | Path | None = None, progress: bool = True) -> CubeOptions:
        """The slot rules, prep, targets and write options an AIA entry's cube is built with."""
        entry = self[name]
        if "cube" not in entry.spec:
            raise entry.error("cube", "this entry has no cube settings")
        return _cube_options(self, entry, self._request(name, build_dir, progress=progress))

    def build(self, name: str, *, build_dir: str | Path | None = None, overwrite: bool = False,
              progress: bool = True, scheduler=None, verify: bool = False) -> Path:
        """Build (or resume, or reuse) the cube of an entry (``aia_fits``, ``synthetic`` or a network AIA kind).

        ``scheduler`` (or the entry's ``cube.scheduler``) runs the frame preparation and the
        writes on Dask (see :func:`flarelib.cube.store.dask_client`); ``None`` builds serially.
        ``verify``: first check every chunk of an existing cube (:func:`flarelib.cube.store.verify_cube`)
        and flag its damaged steps for re-ingest (what ``flarelib catalog build`` does);
        damage outside the re-ingestable steps needs ``overwrite`` (the cube is then built anew).
        ``overwrite``: replace a cube built from other inputs or parameters.
        """
        entry = self[name]
        kind = KINDS[entry.kind]
        if kind.build is None:
            raise entry.error("kind", f"{entry.kind!r} entries are not built into cubes")
        out = self.cube_path(name, build_dir)
        out.parent.mkdir(parents=True, exist_ok=True)
        if verify and out.exists():
            _repair(out, overwrite)
        if kind.network:
            if _is_current(out, entry):
                return out
            overwrite = True  # the entry changed (or the cube is new): what is there is not this entry's cube
        return kind.build(self, entry, self._request(name, build_dir, overwrite=overwrite, progress=progress,
                                                     scheduler=scheduler))

    def open(self, name: str, *, build_dir: str | Path | None = None,
             progress: bool = True) -> xr.Dataset | pd.DataFrame:
        """Open an entry: a cube (built on first use), an XRS dataset, an event list, or (``flare_list``,
        ``region_summary``) a pandas table."""
        entry = self[name]
        kind = KINDS[entry.kind]
        if kind.open is not None:
            return kind.open(self, entry, build_dir, progress)
        return store.open_cube(self.build(name, build_dir=build_dir, progress=progress))


def _repair(out: Path, overwrite: bool) -> None:
    """Verify an existing cube and flag its damaged steps for re-ingest (under the store's write lock)."""
    with store.store_lock(out):
        try:
            schema = store.read_attrs(out).get("store_schema", 1)
        except (OSError, ValueError, KeyError, zarr.errors.BaseZarrError):  # unreadable metadata: verify says why
            schema = store.STORE_SCHEMA
        if schema != store.STORE_SCHEMA:  # an older layout: the writer rebuilds it whole
            log.warning("%s was written with store schema %s; rebuilding it with schema %s", out, schema,
                        store.STORE_SCHEMA)
            return
        report = store.verify_cube(out)
        for note in report.notes:
            log.warning("%s: %s", out, note)
        if report.ok or report.foreign is not None or any(p.key == ".zmetadata" for p in report.problems):
            return  # the writer says what a foreign store is (and consolidates a deleted .zmetadata again)
        for line in report.lines()[:20]:
            log.warning("damaged: %s", line)
        if report.repairable:
            store.mark_damaged(out, report)
        elif overwrite:
            log.warning("%s: the damage is not re-ingestable step by step; deleting the store%s and building it anew "
                        "(--overwrite)", out, f" (with {list(report.added)}, not written by flarelib)"
                        if report.added else "")
            shutil.rmtree(out)
        else:
            raise store.DamagedCubeError(f"{report.lines()[0]}; this is not re-ingestable step by step: "
                                         f"{report.fix('build NAME')}")


def _is_current(out: Path, entry: Entry) -> bool:
    """A complete cube built from exactly this entry (so no network is needed to reuse it)."""
    if not (out / ".zattrs").exists():
        return False
    try:
        return (store.read_attrs(out).get("catalog_spec") == entry.fingerprint
                and store.cube_status(out)["status"] == "complete")
    except Exception:  # unreadable: build it again (write_cube refuses to delete what is not a cube)
        return False


# --------------------------------------------------------------------------- files

def _local_files(catalog: Catalog, entry: Entry, build_dir, verify: bool) -> list[Path]:
    """A local entry's file (checked by its sha256) or folder (checked by its checksum list)."""
    path = entry.path
    if not path.exists():
        raise entry.error("path", f"{path} does not exist")
    if path.is_file():
        if verify and sha256_of(path) != entry.spec["sha256"]:
            raise entry.error("sha256", f"{path.name} does not match the recorded checksum")
        return [path]
    sums_name = entry.spec.get("checksums")
    if not sums_name:
        raise entry.error("checksums", "a folder entry needs a checksum list")
    sums_file = path / sums_name
    if verify:
        if not sums_file.is_file():
            raise entry.error("checksums", f"{sums_file} is missing")
        if sha256_of(sums_file) != entry.spec["sha256"]:
            raise entry.error("sha256", f"{sums_file.name} does not match the recorded checksum "
                                        "(the checksum list itself changed)")
    sums = read_checksums(sums_file)
    pattern = entry.spec.get("pattern", "*")
    selected = {n: h for n, h in sums.items() if Path(n).match(pattern)}
    if not selected:
        raise entry.error("pattern", f"{pattern!r} matches no listed file")
    if not verify:
        return [path / n for n in sorted(selected)]
    try:
        return verify_files(path, selected)
    except ChecksumError as err:
        raise entry.error("checksums", str(err)) from err


def unlisted_files(entry: Entry) -> list[align.Skip]:
    """Files in a folder entry's folder that match its pattern but are not in its checksum list: each a logged
    :class:`flarelib.cube.align.Skip` (reason ``not-listed``) naming the file, as a build records its other
    skips. (Add them with ``sha256sum``, or ``flarelib catalog new NAME --from FOLDER --force``.)"""
    path = entry.path
    sums_name = entry.spec.get("checksums")
    if not path.is_dir() or not sums_name or not (path / sums_name).is_file():
        return []
    listed = set(read_checksums(path / sums_name))
    pattern = entry.spec.get("pattern", "*")
    skips = []
    for f in sorted(path.rglob("*")):
        name = f.relative_to(path).as_posix()
        if f.is_file() and f.name != sums_name and name not in listed and Path(name).match(pattern):
            detail = f"not listed in {sums_name}; add its sha256 there (and the list's sha256 to the entry) to use it"
            log.warning("skip %s: %s", name, detail)
            skips.append(align.Skip(name, "not-listed", detail))
    return skips


def _downloaded_aia(catalog: Catalog, entry: Entry, build_dir, verify: bool) -> list[Path]:
    """A ``fido_aia`` or ``jsoc_export`` entry's AIA files, downloaded and verified (needs the network once)."""
    from flarelib.cube import acquire  # lazy: loaded only when this kind builds
    query = entry.spec["query"]
    dest = catalog.download_dir(entry.name, build_dir)
    time_range, channels = entry.spec["time_range"], entry.spec["channels"]
    if entry.kind == "jsoc_export":
        q = acquire.jsoc_query(time_range, channels, query.get("cadence", "12min"),
                               series=query.get("series", "aia.lev1_euv_12s"), segment=query.get("segment", "image"))
        return acquire.jsoc_export(q, dest, method=query.get("method", "url"))
    results = acquire.search_aia(time_range, channels, query.get("cadence"))
    return acquire.fido_fetch(results, dest, verify=acquire.verify_aia_fits)


# --------------------------------------------------------------------------- cubes

#: ``cube`` settings that an entry may not set, and what sets them instead.
_SET_ELSEWHERE = {"channels": "the entry's channels", "goes": "cube.goes_from", "overwrite": "the build command",
                  "progress": "the build command", "on_written": "the build command",
                  "storage_options": "the build directory"}
_CUBE_OPTION_TYPES = (align.SlotRules, align.Targets, store.WriteOptions, prep.PrepOptions)


def _take(cls, spec: dict) -> dict:
    """Remove from ``spec`` and return the keys that are fields of the dataclass ``cls``."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: spec.pop(k) for k in list(spec) if k in names}


@dataclass(frozen=True, eq=False)
class CubeOptions:
    """An AIA entry's ``cube`` field as the ingest's parameter objects."""

    rules: align.SlotRules
    prep: prep.PrepOptions
    targets: align.Targets
    write: store.WriteOptions


def _cube_options(catalog: Catalog, entry: Entry, request: BuildRequest) -> CubeOptions:
    """An AIA entry's ``cube`` field as :class:`CubeOptions`; a bad key is an error naming it."""
    spec = dict(entry.spec.get("cube", {}))
    for key in spec:
        if key in _SET_ELSEWHERE:
            raise entry.error(f"cube.{key}", f"is set by {_SET_ELSEWHERE[key]}, not here")
    goes_xrs = catalog.open(spec.pop("goes_from"), build_dir=request.build_dir) if "goes_from" in spec else None
    if "events_from" in spec:
        spec["events"] = catalog.events(spec.pop("events_from"), build_dir=request.build_dir)
    rules, targets, write, prep_fields = (_take(cls, spec) for cls in _CUBE_OPTION_TYPES)
    if spec:
        known = {f.name for cls in _CUBE_OPTION_TYPES for f in dataclasses.fields(cls)} - set(_SET_ELSEWHERE)
        known |= {"goes_from", "events_from"}
        raise entry.error(f"cube.{sorted(spec)[0]}", f"unknown setting; known: {sorted(known)}")
    if "shape" in prep_fields:
        prep_fields["shape"] = tuple(prep_fields["shape"])
    if "forecasts" in targets:
        targets["forecasts"] = [tuple(f) for f in targets["forecasts"]]
    write["scheduler"] = request.scheduler or write.get("scheduler")
    return CubeOptions(rules=align.SlotRules(channels=tuple(entry.spec["channels"]), **rules),
                       prep=prep.PrepOptions(**prep_fields), targets=align.Targets(goes=goes_xrs, **targets),
                       write=store.WriteOptions(overwrite=request.overwrite, progress=request.progress, **write))


def _provenance(entry: Entry) -> dict:
    return {"licence": entry.spec["licence"], "citation": entry.spec["citation"], "catalog_spec": entry.fingerprint}


def _build_aia_cube(catalog: Catalog, entry: Entry, request: BuildRequest) -> Path:
    """The cube of an entry whose AIA frames are FITS files (local or downloaded)."""
    from flarelib.cube import ingest  # lazy: loaded only when this kind builds
    options = _cube_options(catalog, entry, request)
    rules = options.rules
    if "time_range" in entry.spec:  # the entry's time range cuts the slots (cube.start / cube.end override it)
        start, end = entry.spec["time_range"]
        rules = dataclasses.replace(rules, start=rules.start or start, end=rules.end or end)
    local = KINDS[entry.kind].files is _local_files
    return ingest.build_fits_cube(catalog.files(entry.name, build_dir=request.build_dir), request.out,
                                  name=entry.name, rules=rules, prep_options=options.prep,
                                  targets=options.targets, write=options.write,
                                  description=entry.spec["description"], extra_attrs=_provenance(entry),
                                  skipped=unlisted_files(entry) if local else ())


def _build_sdoml_cube(catalog: Catalog, entry: Entry, request: BuildRequest) -> Path:
    """The cube of an ``sdoml_v2`` entry, read from the S3 store (needs the network once)."""
    from flarelib.cube import sdoml  # lazy: loaded only when this kind builds
    options = _cube_options(catalog, entry, request)
    shape = options.prep.shape
    if options.prep != prep.PrepOptions(shape=shape):
        raise entry.error("cube", "SDOML v2 frames are already calibrated: only the shape of the prep settings applies")
    start, end = entry.spec["time_range"]
    query = entry.spec["query"]
    return sdoml.build_sdoml_cube(
        request.out, name=entry.name, rules=dataclasses.replace(options.rules, start=start, end=end),
        url=query.get("url", sdoml.SDOML_V2_URL), storage_options=query.get("storage_options"),
        shape=shape, targets=options.targets, write=options.write,
        description=entry.spec["description"], extra_attrs=_provenance(entry))


def _build_synthetic_cube(catalog: Catalog, entry: Entry, request: BuildRequest) -> Path:
    """The synthetic sun of a ``synthetic`` entry (generator settings over a named size)."""
    from flarelib.cube import synthetic  # lazy: loaded only when this kind builds
    params = dict(entry.spec["generator"])
    size = params.pop("size", "default")
    if size not in synthetic.SIZES:
        raise entry.error("generator.size", f"{size!r} is not one of {sorted(synthetic.SIZES)}")
    unknown = sorted(set(params) - {f.name for f in dataclasses.fields(synthetic.SyntheticConfig)})
    if unknown:
        raise entry.error(f"generator.{unknown[0]}", "is not a generator setting")
    config = dataclasses.replace(synthetic.SIZES[size], **params)
    if list(config.channels) != list(entry.spec["channels"]):
        raise entry.error("channels", f"{entry.spec['channels']} differ from the generator's {list(config.channels)}")
    # a generated cube is derived data: one made by another generator version or setting is replaced, not refused
    return synthetic.build_synthetic_cube(request.out, config, catalog.files(entry.spec["disk_from"]), name=entry.name,
                                          overwrite=True, progress=request.progress)


# --------------------------------------------------------------------------- other entries

def _open_goes_xrs(catalog: Catalog, entry: Entry, build_dir, progress: bool) -> xr.Dataset:
    """The entry's XRS files as one dataset in W/m², converted to science quality (targets use this basis),
    cut to the entry's ``time_range`` (inclusive, UTC)."""
    xrs = goes.combine_xrs([goes.to_science_quality(goes.load_xrs(f)) for f in catalog.files(entry.name)])
    if "time_range" not in entry.spec:
        return xrs
    start, end = (pd.Timestamp(t).tz_localize(None) if pd.Timestamp(t).tzinfo is None
                  else pd.Timestamp(t).tz_convert("UTC").tz_localize(None) for t in entry.spec["time_range"])
    cut = xrs.sel(time=slice(start, end))
    if cut.sizes["time"] == 0:
        first, last = (str(xrs.time.values[i])[:19] for i in (0, -1))
        raise entry.error("time_range", f"{entry.spec['time_range']} holds no sample of the files "
                                        f"(they cover {first} to {last}); fix the time range")
    return cut


def _open_fido_goes(catalog: Catalog, entry: Entry, build_dir, progress: bool) -> xr.Dataset:
    from flarelib.cube import acquire  # lazy: loaded only when this kind builds
    query = entry.spec["query"]
    return acquire.fetch_goes(entry.spec["time_range"], catalog.download_dir(entry.name, build_dir),
                              satellite=query.get("satellite"), resolution=query.get("resolution", "avg1m"),
                              science_quality=query.get("science_quality", True))


def _open_hek_events(catalog: Catalog, entry: Entry, build_dir, progress: bool) -> xr.Dataset:
    return align.events_dataset(catalog.events(entry.name, build_dir=build_dir))


def _open_noaa_table(catalog: Catalog, entry: Entry, build_dir, progress: bool) -> pd.DataFrame:
    """The entry's NOAA table (:mod:`flarelib.cube.noaa`; its file checked by sha256), cut to the entry's
    ``time_range`` (inclusive, UTC; by flare start or SRS issue time). ``attrs["skips"]`` holds the reader's
    counts of dropped and repaired rows by reason (each also logged)."""
    (path,) = catalog.files(entry.name)
    table, skips = noaa.read_table(path)
    expected = {"flare_list": ("start", "flares"), "region_summary": ("issue", "region-days")}[entry.kind]
    if expected[0] not in table.columns:
        raise entry.error("path", f"{path.name} does not hold {expected[1]}")
    start, end = (pd.Timestamp(t).tz_localize(None) if pd.Timestamp(t).tzinfo is None
                  else pd.Timestamp(t).tz_convert("UTC").tz_localize(None) for t in entry.spec["time_range"])
    times = table[expected[0]]
    cut = table[(times >= start) & (times <= end)].reset_index(drop=True)
    if cut.empty:
        raise entry.error("time_range", f"{entry.spec['time_range']} holds no row of {path.name} (it covers "
                                        f"{times.min()} to {times.max()}); fix the time range")
    cut.attrs["skips"] = skips.counts()
    cut.attrs["source"] = path.name
    return cut


_AIA_CUBE = ("channels", "cube")
_ARCHIVE = ("query", "time_range")
register_kind(Kind("aia_fits", required=("path", "sha256", "time_range", *_AIA_CUBE), files=_local_files,
                   build=_build_aia_cube))
register_kind(Kind("goes_xrs", required=("path", "sha256", "time_range"), files=_local_files, open=_open_goes_xrs))
_REAL_ONLY = {"properties": {"synthetic": {"const": False}}}
register_kind(Kind("flare_list", required=("path", "sha256", "time_range"), schema=_REAL_ONLY, files=_local_files,
                   open=_open_noaa_table))
register_kind(Kind("region_summary", required=("path", "sha256", "time_range"), schema=_REAL_ONLY,
                   files=_local_files, open=_open_noaa_table))
register_kind(Kind("synthetic", required=("generator", "disk_from", "channels"),
                   schema={"properties": {"synthetic": {"const": True}}}, build=_build_synthetic_cube))
register_kind(Kind("fido_aia", required=(*_ARCHIVE, *_AIA_CUBE), network=True, files=_downloaded_aia,
                   build=_build_aia_cube))
register_kind(Kind("jsoc_export", required=(*_ARCHIVE, *_AIA_CUBE), network=True, files=_downloaded_aia,
                   build=_build_aia_cube))
register_kind(Kind("sdoml_v2", required=(*_ARCHIVE, *_AIA_CUBE), network=True, build=_build_sdoml_cube))
register_kind(Kind("fido_goes", required=_ARCHIVE, network=True, open=_open_fido_goes))
register_kind(Kind("hek_events", required=_ARCHIVE, network=True, open=_open_hek_events))


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Read and validate a catalog (``yaml.safe_load`` + JSON schema).

    Raises :class:`CatalogError` naming the entry and field of the first problem.
    """
    path = Path(path) if path else default_catalog_path()
    raw = load_yaml(path, error=CatalogError)  # a repeated entry or key, or a syntax error, names path:line:col
    try:
        jsonschema.validate(raw, CATALOG_SCHEMA)
    except jsonschema.ValidationError as err:
        raise CatalogError(f"{path}: {'/'.join(map(str, err.absolute_path)) or 'top level'}: {err.message}") from err
    entries = {}
    validator = jsonschema.Draft202012Validator(entry_schema())
    for name, spec in raw["entries"].items():
        errors = sorted(validator.iter_errors(spec or {}), key=lambda e: list(e.absolute_path))
        if errors:
            err = errors[0]
            field = ".".join(map(str, err.absolute_path)) or _missing_field(err) or "(entry)"
            raise CatalogError(f"entry {name!r}, field {field}: {err.message}")
        entries[name] = Entry(name, spec["kind"], spec, path.parent)
    for entry in entries.values():
        _check_values(entry)
        if entry.kind == "synthetic" and entry.spec["disk_from"] not in entries:
            raise CatalogError(f"entry {entry.name!r}, field disk_from: no entry {entry.spec['disk_from']!r}")
    return Catalog(entries, path)


def _duration(entry: Entry, field: str, value, *, allow_zero: bool = False) -> pd.Timedelta:
    """A catalog duration (``"12min"``, ``"1h"``, ``"60s"``): parsed, and positive (or >= 0 with ``allow_zero``)."""
    bound = "zero or positive" if allow_zero else "positive"
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise entry.error(field, f"{value!r} is not a duration; write a {bound} one such as '12min' or '1h'")
    try:
        delta = pd.Timedelta(value)
    except (ValueError, TypeError):
        raise entry.error(field, f"{value!r} is not a duration; write a {bound} one such as '12min' or '1h'") from None
    if pd.isna(delta) or delta < pd.Timedelta(0) or (delta == pd.Timedelta(0) and not allow_zero):
        raise entry.error(field, f"{value!r} is not {bound}; write a {bound} duration such as '12min' or '1h'")
    return delta


def _check_values(entry: Entry) -> None:
    """The checks JSON schema cannot express: durations, time ranges, a required sha256 that is null."""
    spec = entry.spec
    if "sha256" in KINDS[entry.kind].required and spec.get("sha256") is None:
        raise entry.error("sha256", "is null; a local entry needs the sha256 of its file or checksum list "
                                    "(sha256sum <file>)")
    if "time_range" in spec:
        try:
            start, end = (pd.Timestamp(t) for t in spec["time_range"])
        except (ValueError, TypeError):
            raise entry.error("time_range", f"{spec['time_range']} are not two ISO times "
                                            "(e.g. ['2011-02-15T00:00', '2011-02-15T06:00'])") from None
        if pd.isna(start) or pd.isna(end) or start > end:
            raise entry.error("time_range", f"{spec['time_range']}: the start must not be after the end")
    channels = spec.get("channels")
    if channels is not None and (not channels or len(set(channels)) != len(channels)):
        raise entry.error("channels", f"{channels} must list at least one channel, each once")
    cube = spec.get("cube", {})
    if "cadence" in cube:
        _duration(entry, "cube.cadence", cube["cadence"])
    if cube.get("tolerance") is not None:
        _duration(entry, "cube.tolerance", cube["tolerance"], allow_zero=True)
    if "forecasts" in cube:
        forecasts = cube["forecasts"]
        if not isinstance(forecasts, list) or not all(isinstance(f, list | tuple) and len(f) == 2 for f in forecasts):
            raise entry.error("cube.forecasts", f"{forecasts!r} is not a list of [lead, window] pairs "
                                                "(e.g. [['0min', '12min'], ['1h', '6h']])")
        for k, (lead, window) in enumerate(forecasts):
            _duration(entry, f"cube.forecasts[{k}].lead", lead, allow_zero=True)
            _duration(entry, f"cube.forecasts[{k}].window", window)
    query = spec.get("query") or {}
    if query.get("cadence") is not None:
        _duration(entry, "query.cadence", query["cadence"])


def _missing_field(err: jsonschema.ValidationError) -> str | None:
    if err.validator == "required":
        return err.message.split("'")[1]
    if err.validator == "additionalProperties":
        return err.message.split("'")[1] if "'" in err.message else None
    return None


# --------------------------------------------------------------------------- a new entry from a folder

#: Written where a field cannot be read from the files: ``catalog build`` warns while one is left.
FILL_IN = "FILL IN"


@dataclass(frozen=True)
class NewEntry:
    """What :func:`new_entry` wrote: the entry, and what it guessed or could not guess (one line each)."""

    name: str
    spec: dict
    guessed: tuple[str, ...]
    fill_in: tuple[str, ...]
    catalog: Path

    def report(self) -> str:
        """The lines ``flarelib catalog new`` prints: where the entry went, what was guessed, what to fill in."""
        lines = [f"wrote entry {self.name!r} to {self.catalog} ({self.spec['path']}, "
                 f"sha256 of {self.spec['checksums']} {self.spec['sha256'][:12]}...)"]
        lines += [f"  guessed: {g}" for g in self.guessed]
        lines += [f"  fill in: {f}" for f in self.fill_in]
        if not self.fill_in:
            lines.append("  nothing to fill in")
        return "\n".join(lines)


def _guess_cadence(times: list[pd.Timestamp]) -> pd.Timedelta | None:
    """The median spacing of distinct observation times (frames within 30 s are one step), rounded to the
    minute (to the second below a minute); ``None`` for a single step."""
    steps = sorted(times)
    distinct = [steps[0]] if steps else []
    for t in steps[1:]:
        if t - distinct[-1] > pd.Timedelta("30s"):
            distinct.append(t)
    if len(distinct) < 2:
        return None
    median = pd.Series(distinct).diff().dropna().median()
    unit = "min" if median >= pd.Timedelta("1min") else "s"
    return max(median.round(unit), pd.Timedelta(1, unit))


def _read_events(path: Path) -> list[dict]:
    """A flare event list from a YAML or JSON file (a list of ``{start, peak, end, goes_class}``), checked."""
    try:
        events = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise CatalogError(f"{path}: not a readable YAML/JSON event list: {err}") from err
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise CatalogError(f"{path}: must be a list of events, each {{start, peak, end, goes_class}}")
    try:
        align.events_dataset(events)
    except ValueError as err:
        raise CatalogError(f"{path}: {err}; each event needs start, peak, end (UTC) and goes_class") from err
    return [{k: (str(v) if k in ("start", "peak", "end") else v) for k, v in e.items()} for e in events]


def _entry_block(name: str, spec: dict) -> str:
    """The YAML text of one entry, indented as under ``entries:``."""
    text = yaml.safe_dump({name: spec}, sort_keys=False, default_flow_style=None, width=110, allow_unicode=True)
    return "".join(f"  {line}\n" if line else "\n" for line in text.splitlines())


def _without_entry(text: str, name: str) -> str:
    """``text`` (a catalog file) without the block of entry ``name`` (indented 2 under ``entries:``)."""
    lines = text.splitlines(keepends=True)
    out, skipping = [], False
    for line in lines:
        if line.startswith(f"  {name}:"):
            skipping = True
            continue
        if skipping and line.strip() and not line.startswith("   ") and not line.lstrip().startswith("#"):
            skipping = False
        if not skipping:
            out.append(line)
    return "".join(out)


def new_entry(name: str, folder: str | Path, *, catalog: str | Path | None = None, goes_from: str | None = None,
              events: str | Path | None = None, cadence: str | None = None,
              forecasts: list[tuple[str, str]] | None = None, pattern: str = "*.fits",
              force: bool = False) -> NewEntry:
    """Write an ``aia_fits`` entry ``name`` for ``folder``'s AIA level-1 FITS files into the catalog.

    Reads each file's header (:func:`flarelib.cube.prep.read_frame_info`, no pixels): the channels (Å) and the
    time range (UTC) of the frames that read; writes ``folder/SHA256SUMS`` of every file matching ``pattern``
    (refusing to replace one that lists other files or sums, unless ``force``) and the entry's ``sha256`` of it.
    ``cadence`` (default: the median spacing of the frames), ``forecasts`` ``[(lead, window), ...]`` (default: one
    cadence ahead, over one cadence), targets from ``goes_from`` (a ``goes_xrs`` entry, which must overlap the
    frames' time range) or ``events`` (a YAML/JSON list of flares). Fields it cannot know (licence, citation)
    get a ``FILL IN`` text that ``flarelib catalog build`` warns about; an entry without targets is written, and the
    report says it cannot train a model. Refuses an existing entry unless ``force``. The catalog is re-read
    after writing, and restored when the new entry does not validate.
    """
    cat_path = Path(catalog) if catalog else default_catalog_path()
    cat = load_catalog(cat_path)
    if name in cat.entries and not force:
        raise CatalogError(f"entry {name!r} already exists in {cat_path}; pick another name or pass --force "
                           "to replace it")
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise CatalogError(f"--from {folder}: not a folder; give the folder of your AIA FITS files")
    files = sorted(p for p in folder.glob(pattern) if p.is_file())
    if not files:
        raise CatalogError(f"--from {folder}: no file matches {pattern!r}; put your AIA FITS files there "
                           "(or pass --pattern)")
    infos, unreadable = [], []
    for f in files:
        try:
            infos.append(prep.read_frame_info(f, check_data=False, sanity=None, allowed_quality_bits=~0))
        except Exception as err:  # a bad file is a skip at build time too; here it only cannot inform the guesses
            unreadable.append(f"{f.name} ({getattr(err, 'reason', type(err).__name__)})")
    if not infos:
        raise CatalogError(f"--from {folder}: none of the {len(files)} files has a readable AIA header "
                           f"(first: {unreadable[0]}); are these SDO/AIA level-1 FITS files?")
    times = [pd.Timestamp(i.t_obs) for i in infos]
    channels = sorted({int(i.channel) for i in infos})
    guessed = [f"channels {channels} (WAVELNTH of the headers)",
               f"time_range {min(times):%Y-%m-%dT%H:%M:%S} to {max(times):%Y-%m-%dT%H:%M:%S} (T_OBS of the headers)"]
    if unreadable:
        guessed.append(f"{len(unreadable)} files have no readable AIA header and will be logged skips at build: "
                       + ", ".join(unreadable[:3]))
    if cadence is None:
        step = _guess_cadence(times)
        if step is None:
            raise CatalogError(f"--from {folder}: the frames are one time step ({min(times)}); a cube needs at "
                               "least two, or pass --cadence")
        cadence = duration_label(step)
        guessed.append(f"cube.cadence {cadence} (the median spacing of the frames; pass --cadence to set it)")
    cadence_delta = _duration(Entry(name, "aia_fits", {}, folder), "cube.cadence", cadence)
    if forecasts is None:
        forecasts = [(cadence, cadence)]
        guessed.append(f"cube.forecasts [[{cadence}, {cadence}]] (the next step; pass --forecast LEAD/WINDOW)")
    start = min(times).floor("min")
    end = (max(times) + cadence_delta / 2).ceil("s")
    cube: dict = {"cadence": cadence, "forecasts": [[str(lead), str(window)] for lead, window in forecasts]}
    fill_in = [f"licence and citation: '{FILL_IN} ...' texts in {cat_path.name}; say where the files come "
               "from and their terms (catalog build warns until you do)"]
    if goes_from and events:
        raise CatalogError("--goes-from and --events: give one source of targets, not both")
    if goes_from:
        source = cat[goes_from]
        if source.kind not in ("goes_xrs", "fido_goes"):
            raise CatalogError(f"--goes-from {goes_from}: a {source.kind} entry, not GOES XRS; name a goes_xrs "
                               f"entry ({', '.join(cat.names('goes_xrs'))})")
        g0, g1 = (pd.Timestamp(t) for t in source.spec["time_range"])
        if g1 < start or g0 > end:
            raise CatalogError(f"--goes-from {goes_from}: covers {g0} to {g1}, not the frames' {start} to {end}; "
                               "name a GOES entry of the same days (or give --events)")
        cube["goes_from"] = goes_from
        target_line = f"targets from GOES entry {goes_from}"
    elif events:
        cube["events"] = _read_events(Path(events))
        target_line = f"targets from {len(cube['events'])} listed flare events ({Path(events).name})"
    else:
        target_line = None
        fill_in.append("targets: none (no --goes-from or --events): the cube can be explored but not trained; "
                       "add cube.goes_from (a goes_xrs entry) or cube.events")
    if target_line:
        guessed.append(target_line)
    try:
        path_field = folder.relative_to(cat_path.resolve().parent).as_posix()
    except ValueError:
        path_field = str(folder)
    sums_file = folder / "SHA256SUMS"
    sums = {f.name: sha256_of(f) for f in files if f.name != sums_file.name}
    if sums_file.is_file() and read_checksums(sums_file) != sums and not force:
        raise CatalogError(f"{sums_file} exists and lists other files or sums than the folder holds; "
                           "check the folder, or pass --force to write it anew")
    sums_file.write_text("".join(f"{digest}  {n}\n" for n, digest in sorted(sums.items())))
    spec = {
        "kind": "aia_fits",
        "description": (f"REAL. {len(files)} SDO/AIA FITS files, {len(channels)} channels, {start} to {end} "
                        f"(written by flarelib catalog new from {folder.name})"),
        "synthetic": False,
        "path": path_field,
        "pattern": pattern,
        "checksums": sums_file.name,
        "sha256": sha256_of(sums_file),
        "time_range": [start.isoformat(), end.isoformat()],
        "channels": channels,
        "licence": f"NASA/SDO public data (AIA); {FILL_IN} where these copies come from and their terms",
        "citation": f"Lemen et al. 2012, Sol. Phys. 275, 17 (AIA); {FILL_IN} the source of these files",
        "cube": cube,
    }
    guessed.append("synthetic: false (the headers say SDO/AIA; set true if you made these files)")
    old = cat_path.read_text()
    text = _without_entry(old, name) if name in cat.entries else old
    cat_path.write_text(text.rstrip("\n") + "\n\n" + _entry_block(name, spec))
    try:
        load_catalog(cat_path)
    except CatalogError:
        cat_path.write_text(old)
        raise
    return NewEntry(name, spec, tuple(guessed), tuple(fill_in), cat_path)


def _verify_cube(cat: Catalog, name: str, build_dir) -> bool:
    """Print the verification of an entry's built cube; True when it is intact."""
    out = cat.cube_path(name, build_dir)
    if not out.exists():
        print(f"{name}: no cube at {out}; build it with `flarelib catalog build {name}`")
        return False
    try:
        report = store.verify_cube(out)  # under a read lock: a build in progress is said, not reported as damage
    except store.CubeLockedError as err:
        print(f"{name}: not verified: {err}")
        return False
    if report.ok:
        print(f"{name}: {out} OK ({report.n_ingested} of {report.n_steps} time steps ingested, status {report.status})")
        for note in report.notes:
            print(f"  note: {note}")
        return True
    what = "is NOT A FLARELIB CUBE" if report.foreign is not None else "is DAMAGED"
    print(f"{name}: {out} {what}: {len(report.problems)} problems, damaged time steps {list(report.damaged_steps)}")
    for line in report.lines():
        print(f"  {line}")
    for note in report.notes:
        print(f"  note: {note}")
    print(f"  fix: {report.fix(f'flarelib catalog build {name}')}")
    return False


def _forecast_pair(text: str) -> tuple[str, str]:
    """``--forecast LEAD/WINDOW`` (``1h/6h``) -> ``(lead, window)``."""
    lead, sep, window = text.partition("/")
    if not sep or not lead or not window:
        raise CatalogError(f"--forecast {text!r}: write LEAD/WINDOW, e.g. 1h/6h or 0min/12min")
    return lead, window


def _run(args: argparse.Namespace) -> int:
    if args.command == "new":
        if len(args.names) != 1 or not args.from_folder:
            raise CatalogError("usage: flarelib catalog new NAME --from FOLDER [--goes-from ENTRY | --events FILE] "
                               "[--cadence 12min] [--forecast LEAD/WINDOW ...] [--force]")
        made = new_entry(args.names[0], args.from_folder, catalog=args.catalog, goes_from=args.goes_from,
                         events=args.events, cadence=args.cadence, pattern=args.pattern, force=args.force,
                         forecasts=[_forecast_pair(f) for f in args.forecast] if args.forecast else None)
        print(made.report())
        return 0
    cat = load_catalog(args.catalog)
    if args.command == "list":
        print(cat.summary().to_string())
        return 0
    if args.command == "verify":
        ok = True
        for name in args.names or cat.names("aia_fits") + cat.names("goes_xrs"):
            entry = cat[name]
            if KINDS[entry.kind].files is not None and not KINDS[entry.kind].network:
                print(f"{name}: {len(cat.files(name))} files OK")
            if KINDS[entry.kind].build is not None and (args.names or cat.cube_path(name, args.build_dir).exists()):
                ok = _verify_cube(cat, name, args.build_dir) and ok
        return 0 if ok else 1
    for name in args.names or cat.names("aia_fits") + cat.names("synthetic"):
        unfilled = [field for field in ("licence", "citation") if FILL_IN in str(cat[name].spec.get(field, ""))]
        if unfilled:
            log.warning("entry %r: %s still say %r; write where the files come from in %s", name,
                        " and ".join(unfilled), FILL_IN, cat.source.name)
        out = cat.build(name, build_dir=args.build_dir, scheduler=args.scheduler, overwrite=args.overwrite, verify=True)
        print(f"{name}: {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``flarelib catalog`` / ``flarelib catalog``: ``[list | build NAME ... [--overwrite] |
    verify [NAME ...] | new NAME --from FOLDER [--goes-from ENTRY | --events FILE]] [--debug]``.

    ``new`` writes an ``aia_fits`` entry for a folder of AIA FITS files (:func:`new_entry`) and prints what it
    guessed and what is left to fill in.

    ``build`` checks an existing cube's chunks first and re-ingests its damaged steps;
    ``verify`` checks the files of local entries and, for entries with a cube, every chunk of
    the built cube (exit status 1 when one is damaged or missing). Failures are reported by
    :func:`flarelib.runner.run_command` (one line, status 1; ``--debug`` shows the traceback).
    """
    return run_command(_parse_and_run, sys.argv[1:] if argv is None else argv,
                       interrupted="interrupted; run the same command again to resume")


def _parse_and_run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="flarelib catalog", description="flarelib data catalog", epilog=DEBUG_HELP)
    parser.add_argument("command", choices=["list", "build", "verify", "new"])
    parser.add_argument("names", nargs="*")
    new = parser.add_argument_group("new NAME --from FOLDER: write an aia_fits entry for a folder of AIA FITS files")
    new.add_argument("--from", dest="from_folder", default=None, metavar="FOLDER",
                     help="the folder of AIA level-1 FITS files")
    new.add_argument("--goes-from", default=None, metavar="ENTRY",
                     help="a goes_xrs entry covering the same days (GOES targets)")
    new.add_argument("--events", default=None, metavar="FILE",
                     help="a YAML/JSON list of flares {start, peak, end, goes_class}")
    new.add_argument("--cadence", default=None, help="the cube's cadence, e.g. 12min (default: the frames' spacing)")
    new.add_argument("--forecast", action="append", default=None, metavar="LEAD/WINDOW",
                     help="a forecast target, e.g. 1h/6h (repeatable; default: the next step)")
    new.add_argument("--pattern", default="*.fits", help="which files of the folder (default *.fits)")
    new.add_argument("--force", action="store_true", help="replace an existing entry and SHA256SUMS")
    parser.add_argument("--scheduler", default=None,
                        help="build on Dask: 'local', 'local:N' (N worker processes) or a scheduler address")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a cube built from other inputs or parameters, or damaged beyond its time steps")
    parser.add_argument("--build-dir", default=None, help="where cubes are built (default: $FLARELIB_DATA_DIR or "
                                                          "build/data)")
    parser.add_argument("--catalog", default=None, help="the catalog file (default: $FLARELIB_CATALOG or "
                                                        "data_catalog.yaml)")
    return _run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
