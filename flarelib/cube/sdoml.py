"""SDOML v2: the FDL's public AIA Zarr store on S3, read into the flarelib cube.

The store (Zarr v2; see ``../shared/notes`` and the SDOML v2 docs) is laid out as::

    <root>/<year>/<channel>A        e.g. 2011/171A, float32 (N, 512, 512), DN/s
    attrs of each array             header lists, one entry per image: T_OBS, EXPTIME,
                                    WAVELNTH, DEG_COR, QUALITY, CDELT1, CRPIX1, ...

with frames **not sorted by time** and **different N per channel**. :func:`sdoml_frames`
turns the header lists into :class:`flarelib.cube.prep.FrameInfo` records (bad entries become
logged skips), :func:`flarelib.cube.align.plan_slots` sorts and aligns them exactly as it does
FITS files, and :func:`build_sdoml_cube` reads the pixels of a few time steps at a time
(``WriteOptions.steps_per_write``), so a year never sits in memory. The pixels are used as stored: SDOML v2 has
already divided by exposure time and corrected degradation (``DN/s``).

Access is anonymous S3 through fsspec/s3fs by default; ``storage_options`` reaches any
other endpoint (the tests use a local S3 server).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numcodecs
import numpy as np
import pandas as pd
import zarr

from flarelib.checksums import fingerprint
from flarelib.cube import align, ingest, store
from flarelib.cube.prep import FrameInfo, parse_time

log = logging.getLogger(__name__)

SDOML_V2_URL = "s3://gov-nasa-hdrl-data1/contrib/fdl-sdoml/fdl-sdoml-v2/sdomlv2_small.zarr"
SDOML_V2_FULL_URL = "s3://gov-nasa-hdrl-data1/contrib/fdl-sdoml/fdl-sdoml-v2/sdomlv2.zarr"


class SDOMLError(ValueError):
    """The store lacks a year or channel, or its header lists do not fit its arrays."""


def _options(url: str, storage_options: dict | None) -> dict | None:
    if url.startswith("s3://"):
        return {"anon": True, **(storage_options or {})}
    return storage_options


def open_sdoml(url: str = SDOML_V2_URL, *, storage_options: dict | None = None) -> zarr.Group:
    """Open an SDOML v2 store read-only (anonymous S3 unless ``storage_options`` say otherwise)."""
    return zarr.open_group(url, mode="r", zarr_format=2, storage_options=_options(url, storage_options))


def channel_key(channel: int) -> str:
    """``171`` -> ``"171A"`` (the array name in SDOML v2)."""
    return f"{int(channel)}A"


def _header_lists(array: zarr.Array, where: str) -> dict[str, list]:
    attrs = dict(array.attrs)
    n = array.shape[0]
    for key in ("T_OBS", "EXPTIME"):
        if key not in attrs:
            raise SDOMLError(f"{where}: no {key} header list in the array's attrs")
    lists = {k: v for k, v in attrs.items() if isinstance(v, list)}
    bad = {k: len(v) for k, v in lists.items() if len(v) != n}
    if bad:
        raise SDOMLError(f"{where}: header lists of the wrong length for {n} images: {bad}")
    return lists


def sdoml_frames(
    group: zarr.Group, *, years: Sequence[int], channels: Sequence[int], allowed_quality_bits: int = 0,
):
    """Frame records of the chosen years and channels, from the header lists alone.

    Returns ``(infos, skipped, locations)``: :class:`flarelib.cube.prep.FrameInfo` per usable
    image (``path.name`` is ``"<year>_<channel>A_<index>"``), a
    :class:`flarelib.cube.align.Skip` per unusable one (no or bad T_OBS, EXPTIME <= 0,
    QUALITY bits) and ``{name: (year, array name, index)}``.
    """
    infos, skipped, locations = [], [], {}
    for year in years:
        if str(year) not in group:
            raise SDOMLError(f"year {year} is not in the store (it has {sorted(group.group_keys())})")
        ygroup = group[str(year)]
        for channel in channels:
            key = channel_key(channel)
            if key not in ygroup:
                raise SDOMLError(f"{year}/{key} is not in the store (it has {sorted(ygroup.array_keys())})")
            array = ygroup[key]
            lists = _header_lists(array, f"{year}/{key}")
            shape = tuple(int(s) for s in array.shape[1:])
            for i in range(array.shape[0]):
                name = f"{year}_{key}_{i:06d}"
                try:
                    t_obs = parse_time(lists["T_OBS"][i])
                    if np.isnat(t_obs):
                        raise ValueError(f"T_OBS={lists['T_OBS'][i]!r}")
                    exptime = float(lists["EXPTIME"][i])
                    quality = int(lists["QUALITY"][i]) if "QUALITY" in lists else 0
                except (TypeError, ValueError) as err:
                    skipped.append(align.Skip(name, "missing-keyword", f"T_OBS/EXPTIME/QUALITY unusable: {err}"))
                    continue
                if not np.isfinite(exptime) or exptime <= 0:
                    skipped.append(align.Skip(name, "bad-exptime", f"EXPTIME={exptime}"))
                    continue
                if quality & ~allowed_quality_bits:
                    skipped.append(align.Skip(name, "quality", f"QUALITY=0x{quality:08x}"))
                    continue
                wavelength = int(round(float(lists["WAVELNTH"][i]))) if "WAVELNTH" in lists else int(channel)
                if wavelength != int(channel):
                    skipped.append(align.Skip(name, "wrong-channel", f"WAVELNTH={wavelength} in the {key} array"))
                    continue
                level = float(lists["LVL_NUM"][i]) if "LVL_NUM" in lists else 1.5
                infos.append(FrameInfo(path=Path(name), channel=int(channel), t_obs=t_obs, exptime=exptime,
                                       quality=quality, level=level, shape=shape, full_disk=True,
                                       header_notes=("SDOML v2",)))
                locations[name] = (str(year), key, i)
    for skip in skipped:
        log.warning("skip %s: %s %s", skip.source, skip.reason, skip.detail)
    return infos, skipped, locations


class SDOMLReader:
    """``load_rows(rows, shape)`` of a :class:`flarelib.cube.ingest.FrameSource` from an SDOML store.

    Opens the store lazily in each process (so Dask can ship it), reads each channel's
    frames of a block with one orthogonal selection, sorted by index, and block-means
    them to ``shape`` when that divides the stored size.
    """

    def __init__(self, url: str, storage_options: dict | None, locations: dict[str, tuple[str, str, int]]):
        self.url, self.storage_options, self.locations = url, storage_options, locations
        self._group = None

    def __getstate__(self):
        return {**self.__dict__, "_group": None}

    def __call__(self, rows, shape) -> np.ndarray:
        if self._group is None:
            self._group = open_sdoml(self.url, storage_options=self.storage_options)
        ny, nx = shape
        out = np.full((len(rows), len(rows[0]), ny, nx), np.nan, dtype=np.float32)
        for j in range(len(rows[0])):
            picks = {}
            for i, row in enumerate(rows):
                if row[j] is not None:
                    year, key, index = self.locations[row[j].path.name]
                    picks.setdefault((year, key), []).append((index, i))
            for (year, key), pairs in picks.items():
                pairs.sort()
                frames = self._group[year][key].get_orthogonal_selection(([p[0] for p in pairs], slice(None),
                                                                          slice(None)))
                out[[p[1] for p in pairs], j] = block_mean(np.asarray(frames, dtype=np.float32), shape)
        return out


def block_mean(frames: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Mean over ``k x k`` pixel blocks of ``(n, ny*k, nx*k)`` frames -> ``(n, ny, nx)``."""
    n, ny, nx = frames.shape
    fy, fx = ny // shape[0], nx // shape[1]
    if (ny, nx) == tuple(shape):
        return frames
    if fy * shape[0] != ny or fx * shape[1] != nx:
        raise SDOMLError(f"shape {tuple(shape)} does not divide the stored {(ny, nx)}")
    return frames.reshape(n, shape[0], fy, shape[1], fx).mean(axis=(2, 4), dtype=np.float64).astype(np.float32)


def _array_identity(group: zarr.Group, year: int, key: str) -> str:
    array = group[str(year)][key]
    payload = {"shape": list(array.shape), "T_OBS": list(array.attrs["T_OBS"]),
               "EXPTIME": list(array.attrs["EXPTIME"])}
    return fingerprint(payload)


def _reference_header(group, row, locations) -> dict:
    out = {}
    for info in row:
        if info is None:
            continue
        year, key, index = locations[info.path.name]
        attrs = dict(group[year][key].attrs)
        header = {k.lower(): v[index] for k, v in attrs.items() if isinstance(v, list) and k.lower() in ingest.WCS_KEYS}
        header["bunit"] = "DN/s"
        out[str(info.channel)] = header
    return out


def build_sdoml_cube(
    path: str | Path,
    *,
    name: str,
    rules: align.SlotRules,
    url: str = SDOML_V2_URL,
    storage_options: dict | None = None,
    shape: tuple[int, int] | None = None,
    targets: align.Targets = align.Targets(),
    write: store.WriteOptions = store.WriteOptions(steps_per_write=16),
    description: str = "",
    extra_attrs: dict | None = None,
) -> Path:
    """Align the SDOML v2 frames of ``[rules.start, rules.end]`` (UTC) into a flarelib cube at ``path``.

    The same cadence slots, tolerance, duplicate and missing-channel rules as
    :func:`flarelib.cube.ingest.build_fits_cube`; targets likewise. ``storage_options`` reach the
    SDOML store (default: anonymous S3). ``shape`` block-means the stored frames.
    ``write.steps_per_write`` time steps are read at a time (memory: ``steps_per_write x channels x ny x nx x 4``
    bytes). The write is resumable and can run on Dask (``write.scheduler``).
    """
    if rules.start is None or rules.end is None:
        raise SDOMLError("an SDOML v2 cube needs a time range: SlotRules(start=..., end=...)")
    t0, t1 = pd.Timestamp(rules.start), pd.Timestamp(rules.end)
    group = open_sdoml(url, storage_options=storage_options)
    years = list(range(t0.year, t1.year + 1))
    infos, skipped, locations = sdoml_frames(group, years=years, channels=rules.channels,
                                             allowed_quality_bits=rules.allowed_quality_bits)
    margin = align.to_timedelta(rules.cadence)  # a year holds far more frames than the range: drop the rest quietly
    infos = [f for f in infos if t0.to_datetime64() - margin <= f.t_obs <= t1.to_datetime64() + margin]
    plan = rules.plan(infos, skipped)
    stored = next(f for f in plan.frames[0] if f is not None).shape
    shape = tuple(shape) if shape else stored
    steps = [{"step": "sdoml-v2", "source": url,
              "operation": "pixels as stored: SDOML v2 divided by EXPTIME and corrected degradation (DN/s), "
                           "disk rescaled to 976 arcsec"}]
    if shape != stored:
        steps.append({"step": "downsample", "shape": list(shape), "function": "block mean"})
    source = ingest.FrameSource(
        load_rows=SDOMLReader(url, storage_options, locations), shape=shape,
        inputs={f"{url}/{y}/{channel_key(c)}": _array_identity(group, y, channel_key(c)) for y in years
                for c in rules.channels},
        prep_steps=steps,
        fingerprint_params={"sdoml": {"url": url, "shape": list(shape), "cadence": str(rules.cadence),
                                      "allowed_quality_bits": rules.allowed_quality_bits,
                                      "fill_missing": rules.fill_missing}},
        reference_header=_reference_header(group, plan.frames[0], locations))
    return ingest.build_cube_from_plan(
        plan, path, source, name=name, targets=targets, write=write, description=description,
        extra_attrs={"source_store": url, "source_layout": "SDOML v2 (Zarr v2, /<year>/<channel>A)",
                     **(extra_attrs or {})})


def write_sdoml_layout(
    frames: Sequence[tuple[np.ndarray, dict]],
    url: str,
    *,
    storage_options: dict | None = None,
    chunk: int = 4,
    seed: int | None = 0,
) -> None:
    """Write frames as an SDOML v2-style store (Zarr v2): ``/<year>/<channel>A`` plus header lists.

    ``frames`` are ``(data in DN/s, header)`` pairs with at least ``T_OBS``, ``EXPTIME``
    and ``WAVELNTH``. With ``seed`` the order inside each array is shuffled, as in SDOML v2
    ("not ordered by observation time"). Used to make test stores from real FITS frames and
    for small local mirrors; Blosc zstd level 5 with bit-shuffle as the SDOML v2 writer.
    """
    rng = np.random.default_rng(seed)
    groups: dict[tuple[str, str], list[tuple[np.ndarray, dict]]] = {}
    for data, header in frames:
        year = str(parse_time(header["T_OBS"]).astype("datetime64[Y]"))
        groups.setdefault((year, channel_key(int(round(float(header["WAVELNTH"]))))), []).append((data, header))
    root = zarr.open_group(url, mode="w", zarr_format=2, storage_options=storage_options)
    compressor = numcodecs.Blosc(cname="zstd", clevel=5, shuffle=numcodecs.Blosc.BITSHUFFLE)
    for (year, key), items in sorted(groups.items()):
        order = rng.permutation(len(items)) if seed is not None else np.arange(len(items))
        items = [items[k] for k in order]
        stack = np.stack([d for d, _ in items]).astype(np.float32)
        array = root.require_group(year).create_array(key, shape=stack.shape, dtype="float32",
                                                      chunks=(chunk, *stack.shape[1:]), compressors=compressor)
        array[:] = stack
        keys = sorted({k for _, h in items for k in h})
        array.attrs.update({k: [h.get(k) for _, h in items] for k in keys})
    zarr.consolidate_metadata(root.store)
