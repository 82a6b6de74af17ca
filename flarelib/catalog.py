"""``data_catalog.yaml``: every dataset the suite knows, validated, verified and openable.

>>> from flarelib.catalog import load_catalog
>>> cat = load_catalog()
>>> cat.names()                                   # doctest: +SKIP
>>> cube = cat.open("sample-flare-2011-02-15")    # builds the Zarr cube once, then opens it

Local kinds: ``aia_fits`` (a folder of AIA FITS files, built into a cube), ``goes_xrs``
(GOES XRS files, opened as one XRS dataset) and ``synthetic`` (the synthetic sun,
generated into a cube).

Network kinds (:mod:`flarelib.acquire`, :mod:`flarelib.sdoml`; they need the network the
first time): ``fido_aia`` and ``jsoc_export`` download AIA FITS into
``<build dir>/downloads/<entry>`` and build the same cube as ``aia_fits``; ``sdoml_v2``
reads the SDOML v2 Zarr store on S3 into that cube; ``fido_goes`` opens GOES XRS like
``goes_xrs``; ``hek_events`` opens a HEK flare list (kept as JSON once fetched). A cube's
``goes_from`` / ``events_from`` name the entry its targets come from. Once built, a cube
whose entry has not changed is reused without touching the network.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import xarray as xr
import yaml

from flarelib import acquire

LOCAL_KINDS = ("aia_fits", "goes_xrs", "synthetic")
NETWORK_KINDS = ("fido_aia", "jsoc_export", "sdoml_v2", "fido_goes", "hek_events")
REPO_ROOT = Path(__file__).resolve().parents[1]

_COMMON = {
    "kind": {"enum": list(LOCAL_KINDS + NETWORK_KINDS)},
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
ENTRY_SCHEMA = {
    "type": "object",
    "required": ["kind", "description", "synthetic", "licence", "citation"],
    "properties": _COMMON,
    "additionalProperties": False,
    "allOf": [
        {"if": {"properties": {"kind": {"enum": ["aia_fits", "goes_xrs"]}}},
         "then": {"required": ["path", "sha256", "time_range"]}},
        {"if": {"properties": {"kind": {"const": "aia_fits"}}}, "then": {"required": ["channels", "cube"]}},
        {"if": {"properties": {"kind": {"const": "synthetic"}}},
         "then": {"required": ["generator", "disk_from", "channels"], "properties": {"synthetic": {"const": True}}}},
        {"if": {"properties": {"kind": {"enum": list(NETWORK_KINDS)}}}, "then": {"required": ["query", "time_range"]}},
        {"if": {"properties": {"kind": {"enum": ["fido_aia", "jsoc_export", "sdoml_v2"]}}},
         "then": {"required": ["channels", "cube"]}},
    ],
}
CATALOG_SCHEMA = {
    "type": "object",
    "required": ["version", "entries"],
    "properties": {"version": {"const": 1}, "entries": {"type": "object", "minProperties": 1}},
    "additionalProperties": False,
}


class CatalogError(ValueError):
    """A catalog entry is invalid or its files do not match; the message names entry and field."""


def default_catalog_path() -> Path:
    """``$FLARELIB_CATALOG`` or the ``data_catalog.yaml`` at the project root."""
    return Path(os.environ.get("FLARELIB_CATALOG", REPO_ROOT / "data_catalog.yaml"))


def default_build_dir() -> Path:
    """Where cubes are built: ``$FLARELIB_DATA_DIR`` or ``build/data`` at the project root."""
    return Path(os.environ.get("FLARELIB_DATA_DIR", REPO_ROOT / "build" / "data"))


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

    def summary(self, network: bool | None = None):
        """A pandas table of the entries (name, kind, synthetic, channels, time range, description).

        ``network=True`` lists only the entries fetched from archives, ``False`` only local ones.
        """
        import pandas as pd

        entries = [e for e in self.entries.values() if network is None or (e.kind in NETWORK_KINDS) == network]
        rows = [{"name": e.name, "kind": e.kind, "synthetic": e.synthetic,
                 "channels": e.spec.get("channels", ""), "time_range": " to ".join(e.spec.get("time_range", [])),
                 "description": e.spec["description"]} for e in entries]
        return pd.DataFrame(rows).set_index("name")

    def files(self, name: str, *, verify: bool = True, build_dir: str | Path | None = None) -> list[Path]:
        """The files of an entry, checked: a local entry's against its sha256 (and its checksum list);
        a ``fido_aia``/``jsoc_export`` entry's are downloaded (resumably) and verified first."""
        entry = self[name]
        if entry.kind in ("fido_aia", "jsoc_export"):
            return self._download_aia(entry, build_dir)
        if entry.kind in NETWORK_KINDS:
            raise CatalogError(f"entry {name!r}, field kind: {entry.kind!r} entries have no file list; use open()")
        if entry.kind == "synthetic":
            raise CatalogError(f"entry {name!r}, field kind: a synthetic entry has no files; use open()")
        path = entry.path
        if not path.exists():
            raise CatalogError(f"entry {name!r}, field path: {path} does not exist")
        if path.is_file():
            if verify and acquire.sha256_of(path) != entry.spec["sha256"]:
                raise CatalogError(f"entry {name!r}, field sha256: {path.name} does not match the recorded checksum")
            return [path]
        sums_name = entry.spec.get("checksums")
        if not sums_name:
            raise CatalogError(f"entry {name!r}, field checksums: a folder entry needs a checksum list")
        sums_file = path / sums_name
        if verify:
            if not sums_file.is_file():
                raise CatalogError(f"entry {name!r}, field checksums: {sums_file} is missing")
            if acquire.sha256_of(sums_file) != entry.spec["sha256"]:
                raise CatalogError(f"entry {name!r}, field sha256: {sums_file.name} does not match the recorded "
                                   "checksum (the checksum list itself changed)")
        sums = acquire.read_checksums(sums_file)
        pattern = entry.spec.get("pattern", "*")
        selected = {n: h for n, h in sums.items() if Path(n).match(pattern)}
        if not selected:
            raise CatalogError(f"entry {name!r}, field pattern: {pattern!r} matches no listed file")
        if not verify:
            return [path / n for n in sorted(selected)]
        try:
            return acquire.verify_files(path, selected)
        except acquire.ChecksumError as err:
            raise CatalogError(f"entry {name!r}, field checksums: {err}") from err

    def download_dir(self, name: str, build_dir: str | Path | None = None) -> Path:
        """Where a network entry's downloads go: ``<build dir>/downloads/<name>``."""
        return Path(build_dir or default_build_dir()) / "downloads" / name

    def _download_aia(self, entry: Entry, build_dir: str | Path | None = None) -> list[Path]:
        query = entry.spec["query"]
        dest = self.download_dir(entry.name, build_dir)
        time_range, channels = entry.spec["time_range"], entry.spec["channels"]
        if entry.kind == "jsoc_export":
            q = acquire.jsoc_query(time_range, channels, query.get("cadence", "12min"),
                                   series=query.get("series", "aia.lev1_euv_12s"), segment=query.get("segment", "image"))
            return acquire.jsoc_export(q, dest, method=query.get("method", "url"))
        results = acquire.search_aia(time_range, channels, query.get("cadence"))
        return acquire.fido_fetch(results, dest, verify=acquire.verify_aia_fits)

    def events(self, name: str, *, build_dir: str | Path | None = None) -> list[dict]:
        """Flare events of a ``hek_events`` entry (fetched once, then read from ``events.json``)."""
        entry = self[name]
        if entry.kind != "hek_events":
            raise CatalogError(f"entry {name!r}, field kind: {entry.kind!r} is not a flare event list")
        cached = self.download_dir(name, build_dir) / "events.json"
        if cached.is_file():
            saved = json.loads(cached.read_text())
            if saved.get("catalog_spec") == _spec_hash(entry):
                return saved["events"]
        events = acquire.search_flare_events(entry.spec["time_range"], entry.spec["query"].get("observatory", "SWPC"))
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        tmp.write_text(json.dumps({"catalog_spec": _spec_hash(entry), "events": events}, indent=1))
        tmp.replace(cached)
        return events

    def cube_path(self, name: str, build_dir: str | Path | None = None) -> Path:
        return Path(build_dir or default_build_dir()) / f"{name}.zarr"

    def build(self, name: str, *, build_dir: str | Path | None = None, overwrite: bool = False,
              progress: bool = True, scheduler=None) -> Path:
        """Build (or resume, or reuse) the cube of an entry (``aia_fits``, ``synthetic`` or a network AIA kind).

        ``scheduler`` (or the entry's ``cube.scheduler``) runs the frame preparation and the
        writes on Dask (see :func:`flarelib.store.dask_client`); ``None`` builds serially.
        """
        entry = self[name]
        out = self.cube_path(name, build_dir)
        out.parent.mkdir(parents=True, exist_ok=True)
        if entry.kind in ("fido_aia", "jsoc_export", "sdoml_v2"):
            if _is_current(out, entry):
                return out
            overwrite = True  # the entry changed (or the cube is new): what is there is not this entry's cube
        if entry.kind in ("aia_fits", "fido_aia", "jsoc_export", "sdoml_v2"):
            cube = dict(entry.spec.get("cube", {}))
            goes = self.open(cube.pop("goes_from"), build_dir=build_dir) if "goes_from" in cube else None
            if "events_from" in cube:
                cube["events"] = self.events(cube.pop("events_from"), build_dir=build_dir)
            forecasts = [tuple(f) for f in cube.pop("forecasts", [["0min", "12min"]])]
            shape = tuple(cube.pop("shape")) if "shape" in cube else None
            cube["scheduler"] = scheduler or cube.get("scheduler")
            attrs = {"licence": entry.spec["licence"], "citation": entry.spec["citation"],
                     "catalog_spec": _spec_hash(entry)}
            common = dict(name=name, channels=entry.spec["channels"], goes=goes, forecasts=forecasts, shape=shape,
                          description=entry.spec["description"], overwrite=overwrite, progress=progress,
                          extra_attrs=attrs, **cube)
            try:
                if entry.kind == "sdoml_v2":
                    from flarelib.sdoml import SDOML_V2_URL, build_sdoml_cube

                    query = entry.spec["query"]
                    start, end = entry.spec["time_range"]
                    return build_sdoml_cube(out, url=query.get("url", SDOML_V2_URL),
                                            storage_options=query.get("storage_options"), start=start, end=end,
                                            **common)
                from flarelib.store import build_fits_cube

                return build_fits_cube(self.files(name, build_dir=build_dir), out, **common)
            except TypeError as err:
                raise CatalogError(f"entry {name!r}, field cube: {err}") from err
        if entry.kind == "synthetic":
            from flarelib import synthetic

            params = dict(entry.spec["generator"])
            size = params.pop("size", "default")
            if size not in synthetic.SIZES:
                raise CatalogError(f"entry {name!r}, field generator.size: {size!r} is not one of "
                                   f"{sorted(synthetic.SIZES)}")
            try:
                config = dataclasses.replace(synthetic.SIZES[size], **params)
            except TypeError as err:
                raise CatalogError(f"entry {name!r}, field generator: {err}") from err
            if list(config.channels) != list(entry.spec["channels"]):
                raise CatalogError(f"entry {name!r}, field channels: {entry.spec['channels']} differ from the "
                                   f"generator's {list(config.channels)}")
            return synthetic.build_synthetic_cube(out, config, self.files(entry.spec["disk_from"]), name=name,
                                                  overwrite=overwrite, progress=progress)
        raise CatalogError(f"entry {name!r}, field kind: {entry.kind!r} entries are not built into cubes")

    def open(self, name: str, *, build_dir: str | Path | None = None, progress: bool = True) -> xr.Dataset:
        """Open an entry: a cube (built on first use) or, for ``goes_xrs``, the XRS dataset."""
        entry = self[name]
        if entry.kind == "goes_xrs":
            from flarelib.goes import combine_xrs, load_xrs

            return combine_xrs([load_xrs(f) for f in self.files(name)])
        if entry.kind == "fido_goes":
            from flarelib.acquire import fetch_goes

            query = entry.spec["query"]
            return fetch_goes(entry.spec["time_range"], self.download_dir(name, build_dir),
                              satellite=query.get("satellite"), resolution=query.get("resolution", "avg1m"),
                              science_quality=query.get("science_quality", True))
        if entry.kind == "hek_events":
            from flarelib.align import events_dataset

            return events_dataset(self.events(name, build_dir=build_dir))
        from flarelib.store import open_cube

        return open_cube(self.build(name, build_dir=build_dir, progress=progress))


def _spec_hash(entry: Entry) -> str:
    return hashlib.sha256(json.dumps(entry.spec, sort_keys=True, default=str).encode()).hexdigest()


def _is_current(out: Path, entry: Entry) -> bool:
    """A complete cube built from exactly this entry (so no network is needed to reuse it)."""
    from flarelib.store import read_attrs, cube_status

    if not (out / ".zattrs").exists():
        return False
    try:
        return (read_attrs(out).get("catalog_spec") == _spec_hash(entry)
                and cube_status(out)["status"] == "complete")
    except Exception:  # unreadable: build it again (write_cube refuses to delete what is not a cube)
        return False


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Read and validate a catalog (``yaml.safe_load`` + JSON schema).

    Raises :class:`CatalogError` naming the entry and field of the first problem.
    """
    path = Path(path) if path else default_catalog_path()
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise CatalogError(f"{path}: not valid YAML: {err}") from err
    try:
        jsonschema.validate(raw, CATALOG_SCHEMA)
    except jsonschema.ValidationError as err:
        raise CatalogError(f"{path}: {'/'.join(map(str, err.absolute_path)) or 'top level'}: {err.message}") from err
    entries = {}
    validator = jsonschema.Draft202012Validator(ENTRY_SCHEMA)
    for name, spec in raw["entries"].items():
        errors = sorted(validator.iter_errors(spec or {}), key=lambda e: list(e.absolute_path))
        if errors:
            err = errors[0]
            field = ".".join(map(str, err.absolute_path)) or _missing_field(err) or "(entry)"
            raise CatalogError(f"entry {name!r}, field {field}: {err.message}")
        entries[name] = Entry(name, spec["kind"], spec, path.parent)
    for entry in entries.values():
        if entry.kind == "synthetic" and entry.spec["disk_from"] not in entries:
            raise CatalogError(f"entry {entry.name!r}, field disk_from: no entry {entry.spec['disk_from']!r}")
    return Catalog(entries, path)


def _missing_field(err: jsonschema.ValidationError) -> str | None:
    if err.validator == "required":
        return err.message.split("'")[1]
    if err.validator == "additionalProperties":
        return err.message.split("'")[1] if "'" in err.message else None
    return None


def main(argv: list[str] | None = None) -> int:
    """``python -m flarelib.catalog [list | build NAME ... | verify]``."""
    import argparse

    parser = argparse.ArgumentParser(description="flarelib data catalog")
    parser.add_argument("command", choices=["list", "build", "verify"])
    parser.add_argument("names", nargs="*")
    parser.add_argument("--scheduler", default=None,
                        help="build on Dask: 'local', 'local:N' (N worker processes) or a scheduler address")
    args = parser.parse_args(argv)
    cat = load_catalog()
    if args.command == "list":
        print(cat.summary().to_string())
    elif args.command == "verify":
        for name in cat.names("aia_fits") + cat.names("goes_xrs"):
            print(f"{name}: {len(cat.files(name))} files OK")
    else:
        for name in args.names or cat.names("aia_fits") + cat.names("synthetic"):
            print(f"{name}: {cat.build(name, scheduler=args.scheduler)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
