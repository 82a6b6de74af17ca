"""Ingest: AIA frames (FITS files or an SDOML v2 store) plus targets -> a flarelib cube.

The one plan->cube builder is :func:`build_cube_from_plan`: whatever the frames come from
(a :class:`FrameSource`), a :class:`flarelib.cube.align.SlotPlan` and its
:class:`flarelib.cube.align.Targets` become one store schema, written by the resumable
:func:`flarelib.cube.store.write_cube`. :func:`build_fits_cube` is the FITS path
(:func:`flarelib.cube.align.scan_frames` -> :class:`flarelib.cube.align.SlotRules` ->
:func:`flarelib.cube.prep.prep_frame` per frame); :func:`flarelib.cube.sdoml.build_sdoml_cube` is the
SDOML v2 path. :func:`frame_map` rebuilds a sunpy Map of one cube frame from the WCS
keywords the builders record.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from flarelib.checksums import sha256_of
from flarelib.cube import align, prep, store

log = logging.getLogger(__name__)

#: Header keywords kept per channel (``attrs["reference_header"]``) to rebuild sunpy Maps of cube frames.
WCS_KEYS = ("ctype1", "ctype2", "cunit1", "cunit2", "crpix1", "crpix2", "crval1", "crval2", "cdelt1", "cdelt2",
            "crota2", "date-obs", "t_obs", "rsun_obs", "rsun_ref", "dsun_obs", "hgln_obs", "hglt_obs", "crln_obs",
            "crlt_obs", "wavelnth", "waveunit", "telescop", "instrume", "detector", "bunit", "lvl_num")


@dataclass(frozen=True, eq=False)
class FrameSource:
    """Where the pixels of a slot plan come from, and how they were made.

    ``load_rows(rows, shape)`` turns plan rows (``plan.frames[i0:i1]``) into a float32 array
    ``(i1 - i0, C, ny, nx)`` in DN/s (NaN where a row has no frame); it must pickle (Dask
    ships it to workers). ``shape`` is ``(ny, nx)`` in pixels. ``inputs`` maps each input's
    name to its sha256 (or another stable identity); with ``fingerprint_params`` it makes
    the store's ``input_fingerprint``. ``prep_steps`` and ``reference_header`` (WCS
    keywords per channel) are recorded in the store's attrs.
    """

    load_rows: Callable[[list, tuple[int, int]], np.ndarray]
    shape: tuple[int, int]
    inputs: dict[str, str]
    prep_steps: list[dict]
    fingerprint_params: dict
    reference_header: dict


def build_fits_cube(
    files,
    path: str | Path,
    *,
    name: str,
    rules: align.SlotRules = align.SlotRules(),
    prep_options: prep.PrepOptions = prep.PrepOptions(),
    targets: align.Targets = align.Targets(),
    write: store.WriteOptions = store.WriteOptions(),
    description: str = "",
    extra_attrs: dict | None = None,
    skipped: Sequence[align.Skip] = (),
) -> Path | str:
    """Validate, align, calibrate and write AIA FITS files (plus GOES or events) as a cube.

    ``skipped``: inputs left out before the scan (e.g. a folder's files missing from its checksum list,
    :func:`flarelib.cube.catalog.unlisted_files`), recorded with the scan's skips in ``skipped_inputs``.

    The steps: :func:`flarelib.cube.align.scan_frames` (every bad file, whatever its fault, becomes
    a logged skip naming it; the build stops with :class:`flarelib.cube.align.TooManySkipsError`
    before writing anything when more than ``rules.max_skipped_fraction`` of the files are
    bad), ``rules.plan`` (cadence slots, duplicates, missing channels), ``targets`` (GOES or an
    event list; :class:`flarelib.cube.align.GOESCoverageError` when GOES targets would be mostly NaN),
    then :func:`flarelib.cube.prep.prep_frame` with ``prep_options`` per frame inside the resumable
    :func:`flarelib.cube.store.write_cube` (serially, or on Dask workers with ``write.scheduler``,
    ``write.steps_per_write`` time steps per task). A frame whose calibration still fails there is left
    NaN, with a logged skip naming the file, and is listed in the cube's ``skipped_inputs`` (with its
    ``time_step`` and ``channel``). Returns the store path. See ``DATASET_CARD.md``
    for the schema.
    """
    files = [Path(f) for f in files]
    skipped_before = list(skipped)
    if not files:
        raise align.EmptySelectionError(f"{name}: no input files")
    infos, skipped = align.scan_frames(files, allowed_quality_bits=rules.allowed_quality_bits, progress=write.progress,
                                       prep_options=prep_options)
    align.check_skipped_fraction(len(files), skipped, rules.max_skipped_fraction, name=name)
    plan = rules.plan(infos, [*skipped_before, *skipped], shape=prep_options.shape)
    table = prep_options.table_path()
    prep_params = {"degradation": prep_options.degradation, "register": prep_options.register,
                   "shape": list(prep_options.shape) if prep_options.shape else None,
                   "correction_table": table.name if table else None,
                   "allowed_quality_bits": rules.allowed_quality_bits, "fill_missing": rules.fill_missing}
    if prep_options.outside_degradation_table != "skip":  # changes the calibration of the frames it lets in
        prep_params["outside_degradation_table"] = prep_options.outside_degradation_table
    first = next(f for f in plan.frames[0] if f is not None)
    source = FrameSource(
        load_rows=_FrameReader(functools.partial(_prepped_frame, options=dataclasses.asdict(prep_options))),
        shape=prep_options.shape or first.shape,
        inputs={f.name: sha256_of(f) for f in files if f.exists()},
        prep_steps=prep_options.steps(),
        fingerprint_params={"prep": prep_params, "cadence": str(rules.cadence)},
        reference_header=_reference_headers(plan.frames[0], plan.channels, prep_options))
    return build_cube_from_plan(plan, path, source, name=name, targets=targets, write=write,
                                description=description, extra_attrs=extra_attrs)


def _prepped_frame(info: prep.FrameInfo, options: dict) -> np.ndarray:
    smap, _ = prep.prep_frame(info, **options)
    return smap.data


class _FrameReader:
    """``load_rows(rows, shape) -> (n, C, ny, nx)`` from a one-frame reader (picklable for Dask workers).

    A frame whose reader fails (a :class:`flarelib.cube.prep.BadFrameError` or anything else) is
    left NaN, and the failure is a logged skip naming the file and the reason, appended to
    ``skipped`` (which :class:`_PlanBlocks` hands to the writer: the cube's ``skipped_inputs``
    lists it): one bad file never stops a build. (The scan catches the known faults first, so
    this is rare.)
    """

    reports_skips = True

    def __init__(self, read_frame: Callable):
        self.read_frame = read_frame

    def __call__(self, rows, shape, skipped: list[dict] | None = None) -> np.ndarray:
        out = np.full((len(rows), len(rows[0]), *shape), np.nan, dtype=np.float32)
        for i, row in enumerate(rows):
            for j, info in enumerate(row):
                if info is not None:
                    try:
                        out[i, j] = self.read_frame(info)
                    except Exception as exc:  # one frame's failure must not stop the build
                        if isinstance(exc, prep.BadFrameError):
                            reason, detail = exc.reason, exc.detail
                        else:
                            reason, detail = "calibration-failed", f"{type(exc).__name__}: {exc}"
                        log.warning("skip %s: %s %s (at write time: left NaN in the cube, listed in its "
                                    "skipped_inputs)", info.path.name, reason, detail)
                        if skipped is not None:
                            skipped.append({"source": info.path.name, "reason": reason, "row": i,
                                            "channel": int(info.channel),
                                            "detail": f"{detail} (at write time: left NaN in the cube)"})
        return out


def build_cube_from_plan(
    plan: align.SlotPlan,
    path: str | Path,
    source: FrameSource,
    *,
    name: str,
    targets: align.Targets = align.Targets(),
    write: store.WriteOptions = store.WriteOptions(),
    description: str = "",
    extra_attrs: dict | None = None,
) -> Path | str:
    """Write the cube of a :class:`flarelib.cube.align.SlotPlan`, whatever the frames come from.

    FITS files (:func:`build_fits_cube`) and SDOML v2 stores
    (:func:`flarelib.cube.sdoml.build_sdoml_cube`) both come through here, so their cubes have one
    schema. ``write`` as in :func:`flarelib.cube.store.write_cube` (a URL ``path`` needs
    ``write.storage_options``).
    """
    channels = plan.channels
    ny, nx = source.shape
    fingerprint = align.plan_fingerprint(plan, source.inputs, {**source.fingerprint_params,
                                                                "targets": targets.identity(), "name": name})
    target_ds, target_attrs = targets.dataset(plan.times, plan.cadence)
    template = xr.Dataset(
        coords={"time": ("time", plan.times, {"long_name": "nominal cadence slot", "timezone": "UTC"}),
                "channel": ("channel", np.array(channels, dtype=np.int32), {"units": "angstrom"}),
                "y": ("y", np.arange(ny, dtype=np.int32), {"long_name": "pixel row"}),
                "x": ("x", np.arange(nx, dtype=np.int32), {"long_name": "pixel column"}),
                **plan.frame_coords()},
    )
    template = xr.merge([template, target_ds], combine_attrs="drop_conflicts")
    template.attrs = {
        "title": f"{name}: aligned SDO/AIA cube" + (" with GOES/XRS" if targets.goes is not None else ""),
        "name": name,
        "description": description,
        "synthetic": False,
        "aia_units": "DN/s",
        "inputs": store.json_attr([{"file": k, "sha256": v} for k, v in sorted(source.inputs.items())]),
        "prep_steps": store.json_attr(source.prep_steps),
        "alignment": store.json_attr(plan.describe()),
        "skipped_inputs": store.json_attr([s.as_dict() for s in plan.skipped]),
        "n_skipped": len(plan.skipped),
        "input_fingerprint": fingerprint,
        **store.provenance_attrs(),
        **target_attrs,
        **(extra_attrs or {}),
        "reference_header": store.json_attr(source.reference_header),
    }
    fill_steps = _PlanBlocks(plan.frames, source.load_rows, (ny, nx))
    return store.write_cube(path, template, {"aia": (("channel", "y", "x"), (len(channels), ny, nx), "float32")},
                            fill_steps, write)


class _PlanBlocks:
    """``fill_steps(i0, i1)`` of a slot plan (a class, so Dask can ship it to workers)."""

    def __init__(self, frames, load_rows: Callable, shape: tuple[int, int]):
        self.frames, self.load_rows, self.shape = frames, load_rows, shape

    def __call__(self, i0: int, i1: int) -> dict:
        if not getattr(self.load_rows, "reports_skips", False):
            return {"aia": self.load_rows(self.frames[i0:i1], self.shape)}
        skipped: list[dict] = []
        aia = self.load_rows(self.frames[i0:i1], self.shape, skipped)
        for skip in skipped:
            skip["time_step"] = i0 + skip.pop("row")
        return {"aia": aia, store.SKIPPED_KEY: skipped}


def _reference_headers(row, channels, options: prep.PrepOptions) -> dict:
    """WCS keywords of the first time step's calibrated frames (for sunpy.map.Map rebuilds)."""
    out = {}
    geometry = dataclasses.replace(options, degradation=False)  # the WCS does not depend on the degradation
    for channel, info in zip(channels, row):
        if info is None:
            continue
        try:
            smap, _ = prep.prep_frame(info, **dataclasses.asdict(geometry))
        except prep.BadFrameError as err:
            log.warning("no reference header for %s \u00c5 from %s: %s %s", channel, err.path.name, err.reason,
                        err.detail)
            continue
        out[str(channel)] = {k: smap.meta.get(k) for k in WCS_KEYS if k in smap.meta}
    return out


def frame_map(cube: xr.Dataset, time_index: int, channel: int):
    """A :class:`sunpy.map.Map` of one cube frame, with the reference WCS of its channel.

    The header is that of the cube's first time step (exact for full-disk cubes; cutouts
    that track a region drift by a few pixels over an hour).
    """
    import sunpy.map  # lazy: sunpy.map takes seconds to import

    headers = json.loads(cube.attrs.get("reference_header", "{}"))
    if str(channel) not in headers:
        raise KeyError(f"no reference header for channel {channel} in this cube")
    meta = dict(headers[str(channel)])
    meta["bunit"] = "DN/s"
    meta["date-obs"] = str(cube.t_obs.sel(channel=channel).values[time_index])
    data = cube.aia.sel(channel=channel).isel(time=time_index).values
    return sunpy.map.Map(data, meta)
