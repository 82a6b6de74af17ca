"""Where the maps point: the regions that flare (synthetic ground truth), each map scored at its own
resolution against them beside the trivial maps, and the localization table (``localization.csv``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from torch import nn

from flarelib.cube.goes import FLARE_CLASS_THRESHOLDS
from flarelib.evaluate.scoring import DAY, LEVEL, N_RESAMPLES, SEED, block_resample_counts, interval
from flarelib.explain.attribution import CAM_METHODS, METHODS, attribute, check_time_index, conv_blocks, method_maps
from flarelib.labels import data_kind
from flarelib.learn.data import FlareDataModule
from flarelib.paths import results_dir

#: The hot channels of the hot-channel-excess reference map (Å).
HOT_CHANNELS = (94, 131)
#: The reference rows of the localization table.
TRIVIAL_MAPS = ("input image", "random", "brightest pixel", "hot-channel excess")


LOCALIZATION_COLUMNS = ["model", "method", "layer", "map_ny", "map_nx", "mass_inside", "mass_inside_lo",
                        "mass_inside_hi", "mass_upper_bound", "pointing", "pointing_lo", "pointing_hi", "n_frames"]


def pool_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A (T, ny, nx) or (ny, nx) mask on a coarser grid ``shape``: the fraction of each cell's pixels inside it.

    Pixel ``(i, j)`` belongs to cell ``(i * fy // ny, j * fx // nx)``, so the cells tile the
    image exactly when ``ny`` is a multiple of ``fy`` (FlareNet's blocks halve the size).
    """
    m = np.asarray(mask, dtype=np.float64)
    squeeze = m.ndim == 2
    if squeeze:
        m = m[None]
    t, ny, nx = m.shape
    fy, fx = int(shape[0]), int(shape[1])
    if (fy, fx) == (ny, nx):
        out = m.copy()
    else:
        rows = np.arange(ny) * fy // ny
        cols = np.arange(nx) * fx // nx
        cell = (rows[:, None] * fx + cols[None, :]).ravel()
        counts = np.bincount(cell, minlength=fy * fx).astype(np.float64)
        out = np.stack([np.bincount(cell, weights=frame.ravel(), minlength=fy * fx) / np.maximum(counts, 1)
                        for frame in m]).reshape(t, fy, fx)
    return out[0] if squeeze else out


def _events(cube: xr.Dataset) -> pd.DataFrame:
    """The cube's event list (start, peak, peak flux, AR index) as a frame."""
    if "event_peak" not in cube or cube.sizes.get("event", 0) == 0:
        return pd.DataFrame(columns=["start", "peak", "flux", "region"])
    return pd.DataFrame({"start": cube["event_start"].values, "peak": cube["event_peak"].values,
                         "flux": cube["event_peak_flux"].values.astype(float),
                         "region": cube["event_noaa_ar"].values.astype(int)})


def target_window(dm: FlareDataModule) -> tuple[np.timedelta64, np.timedelta64]:
    """(lead, window) of the data module's target; a nowcast uses the last cadence, (t - cadence, t]."""
    dm.setup()
    if dm.plan.target.horizon == np.timedelta64(0, "ns"):
        return -dm.plan.cadence, dm.plan.cadence
    return dm.plan.target.lead, dm.plan.target.window


def flaring_regions(cube: xr.Dataset, time_index: Sequence[int], lead: np.timedelta64, window: np.timedelta64,
                    *, min_flux: float = FLARE_CLASS_THRESHOLDS["C"]) -> np.ndarray:
    """(T, R) bool: region ``r`` has a flare of at least ``min_flux`` W/m² (default C1) peaking in
    ``[t + lead, t + lead + window]`` (the synthetic cube's event list; ``event_noaa_ar`` is the region)."""
    index = np.asarray(time_index, np.int64)
    times = cube["time"].values[index]
    n_regions = cube.sizes.get("region", 0)
    out = np.zeros((index.size, n_regions), bool)
    events = _events(cube)
    events = events[(events["flux"] >= min_flux) & (events["region"] >= 0) & (events["region"] < n_regions)]
    peaks = events["peak"].values
    for k, t in enumerate(times):
        hit = (peaks >= t + lead) & (peaks <= t + lead + window)
        out[k, events["region"].values[hit]] = True
    return out


@dataclass(frozen=True, eq=False)
class RegionMasks:
    """Regions at some cube steps, from the cube's ``region_id`` map: (T, ny, nx) masks of the regions that
    will flare (>= C1) in the window, of the other regions on the disk, and the quiet disk; ``window`` says which."""

    index: np.ndarray
    will_flare: np.ndarray
    will_not: np.ndarray
    quiet: np.ndarray
    window: str


def _hours(delta: np.timedelta64) -> str:
    hours = pd.Timedelta(delta) / pd.Timedelta(hours=1)
    return f"{hours:g} h"


def region_masks(dm: FlareDataModule, time_index: Sequence[int], *,
                 min_flux: float = FLARE_CLASS_THRESHOLDS["C"]) -> RegionMasks:
    """:class:`RegionMasks` for the data module's target window (a nowcast: the last cadence; a forecast:
    ``[t + lead, t + lead + window]``). Needs a synthetic cube with ``region_id``."""
    index = check_time_index(dm, time_index)
    cube = dm.cube()
    if "region_id" not in cube:
        raise ValueError(f"{dm.store_path.name} has no region_id map (a synthetic sun has one)")
    lead, window = target_window(dm)
    flaring = flaring_regions(cube, index, lead, window, min_flux=min_flux)
    ids = cube["region_id"].isel(time=index).values.astype(np.int64)  # AR index + 1, 0 off-region
    will = np.zeros(ids.shape, bool)
    for k in range(index.size):
        regions = np.flatnonzero(flaring[k]) + 1
        will[k] = np.isin(ids[k], regions)
    disk = cube["disk_mask"].values.astype(bool) if "disk_mask" in cube else np.ones(ids.shape[1:], bool)
    label = ("the last cadence" if lead < np.timedelta64(0, "ns")
             else f"[t + {_hours(lead)}, t + {_hours(lead + window)}]")
    return RegionMasks(index, will, (ids > 0) & ~will, (ids == 0) & disk[None], label)


def region_frames(dm: FlareDataModule, split: str = "test", n: int | None = None, *,
                  min_flux: float = FLARE_CLASS_THRESHOLDS["C"]) -> np.ndarray:
    """Steps of ``split`` with at least one region that will flare (>= C1 in the target window) and at
    least one other region on the disk, thinned evenly to ``n``."""
    dm.setup()
    steps = np.sort(dm.plan.index[split])
    masks = region_masks(dm, steps, min_flux=min_flux)
    keep = steps[masks.will_flare.any(axis=(1, 2)) & masks.will_not.any(axis=(1, 2))]
    return _thin(keep, n)


def _thin(steps: np.ndarray, n: int | None) -> np.ndarray:
    if n is not None and steps.size > n:
        steps = steps[np.unique(np.linspace(0, steps.size - 1, n).astype(int))]
    return steps


def steps_around_peak(dm: FlareDataModule, split: str = "test", half: int = 30, *, min_before: int = 0
                      ) -> np.ndarray:
    """The cube steps of ``split`` within ``half`` steps either side of its largest target flux (sorted), among
    the steps with at least ``min_before`` steps of ``split`` right before them (so that a browser opening on the
    peak has something before the flare to show; :class:`ValueError` if no step has)."""
    dm.setup()
    steps = np.sort(dm.plan.index[split])
    inside = np.isin(steps[:, None] - np.arange(min_before + 1)[None, :], steps).all(axis=1)
    if not inside.any():
        raise ValueError(f"no step of {split!r} has {min_before} steps of {split!r} before it")
    flux = np.where(inside, dm.plan.target.log_flux[steps], np.nan)
    peak = int(steps[np.nanargmax(flux)])
    return steps[(steps >= peak - half) & (steps <= peak + half)]


def localization(attr: xr.DataArray, mask: np.ndarray | xr.DataArray) -> pd.DataFrame:
    """Per time step, at the attribution's own (pixel) resolution: the share of positive mass inside
    ``mask`` and the pointing game (:func:`score_map` at full resolution).

    ``mask`` is (time, y, x), 1 on the flaring region. The attribution is summed over channels
    first; steps with an empty mask are left out.
    """
    total = attr.sum(dim="channel").values
    m = np.asarray(mask).astype(bool)
    if m.shape != total.shape:
        raise ValueError(f"mask {m.shape} and attribution {total.shape} differ")
    rows = []
    for k in range(total.shape[0]):
        if not m[k].any():
            continue
        score = score_map(total[k], m[k])
        rows.append({"time": attr.time.values[k], "mass_inside": score["mass_inside"],
                     "pointing_hit": score["pointing"], "mask_fraction": m[k].mean()})
    return pd.DataFrame(rows)


def score_map(values: np.ndarray, mask: np.ndarray) -> dict:
    """Localization of one map ``values`` (my, mx) against a full-resolution ``mask`` (ny, nx), on the map's grid.

    The mask is pooled onto the map's cells: ``f_c`` is the fraction of cell ``c``'s pixels inside
    the mask (:func:`pool_mask`). Negative values are set to 0 (a signed map is scored on its
    positive part: what raises the output). With ``m_c >= 0``:

    * ``mass_inside = sum_c m_c f_c / sum_c m_c``: the share of the map's mass inside the mask if
      each cell's mass is spread evenly over its pixels (at pixel resolution, ``f`` is 0 or 1 and
      this is the energy-based pointing game); NaN for a map with no positive mass;
    * ``mass_upper_bound = max_c f_c``: the best any non-negative map on this grid can score (all
      mass on the cell most covered by the mask); 1 at pixel resolution, 0.2 for a 13 px mask on
      8 px cells;
    * ``pointing``: the map's maximum (first one, in row-major order) falls in a cell that overlaps
      the mask (``f_c > 0``); a map with no positive value misses.
    """
    v = np.asarray(values, dtype=np.float64)
    f = pool_mask(np.asarray(mask), v.shape)
    positive = np.clip(np.nan_to_num(v, nan=0.0), 0, None)
    mass = positive.sum()
    peak = np.unravel_index(int(np.argmax(np.nan_to_num(v, nan=-np.inf))), v.shape)
    return {"mass_inside": float((positive * f).sum() / mass) if mass > 0 else np.nan,
            "mass_upper_bound": float(f.max()),
            "pointing": bool(mass > 0 and f[peak] > 0)}


def saturation_levels(cube: xr.Dataset) -> dict[int, float]:
    """The detector saturation level (DN/s) of each channel of a synthetic cube (its generator's record); empty
    for a cube that does not record one."""
    generator = cube.attrs.get("generator")
    if isinstance(generator, str):
        generator = json.loads(generator)
    levels = (generator or {}).get("saturation_dn_per_s", {})
    return {int(c): float(v) for c, v in levels.items()}


def with_bloom(cube: xr.Dataset, time_index: Sequence[int], masks: np.ndarray) -> np.ndarray:
    """``masks`` (T, ny, nx) grown along the CCD columns (``y``) through the saturated pixels that touch them.

    A saturated flare kernel blooms: its excess charge fills the pixels above and below it to the saturation level
    (:mod:`flarelib.cube.synthetic`), so the bright column is the flare's light, not another structure. A map that
    points into the bloom points at the flare; the mask takes every pixel, in any channel, that reads the
    saturation level and is connected along its column to the mask. Cubes without recorded levels are returned
    unchanged."""
    levels = saturation_levels(cube)
    masks = np.asarray(masks, bool)
    channels = [c for c in (int(c) for c in cube["channel"].values) if c in levels]
    if not channels or not masks.size:
        return masks
    index = np.asarray(time_index, np.int64)
    aia = cube["aia"].isel(time=index).sel(channel=channels).values
    level = np.array([levels[c] for c in channels])[None, :, None, None]
    saturated = (aia >= level * (1 - 1e-6)).any(axis=1)
    grown = masks.copy()
    while True:  # grow one pixel up and down per pass through saturated pixels until nothing changes
        step = grown.copy()
        step[:, 1:] |= grown[:, :-1] & saturated[:, 1:]
        step[:, :-1] |= grown[:, 1:] & saturated[:, :-1]
        if np.array_equal(step, grown):
            return grown
        grown = step


@dataclass(frozen=True, eq=False)
class ScoringFrames:
    """The frames a localization is scored on: cube steps, their (T, ny, nx) masks and the rule that chose them."""

    index: np.ndarray
    masks: np.ndarray
    rule: str
    candidates: int


def scoring_frames(dm: FlareDataModule, split: str = "test", n: int | None = None, *, dominance: float = 2.0,
                   min_flux: float = FLARE_CLASS_THRESHOLDS["C"]) -> ScoringFrames:
    """The frames of ``split`` on which a localization can be scored fairly, and the mask of each.

    * **Nowcast** (the target is the flux now): the mask is the ground-truth ``flare_mask`` at
      t (the kernels of the >= C1 flares in progress) with their bloom columns (:func:`with_bloom`).
      A frame counts when the flare dominates what the model predicts: the target flux is at least
      ``dominance`` times the pre-flare level (the lowest flux of the 6 h before t), so more than
      half of it comes from the flare, not from the regions' background emission.
    * **Forecast**: the mask is the ``region_id`` footprint at t of the region that *will* flare (not grown
      along bloom columns: a saturated column through it at t is another flare's light, not this region's):
      the one with the largest flare of at least ``min_flux`` (C1) peaking in ``[t + lead,
      t + lead + window]``. A frame counts when that flare dominates the target: the target (max
      over the window) is at least ``dominance`` times the flux at t, and the region is on the
      disk (its footprint is not empty).

    Frames are thinned evenly to ``n``. Needs a synthetic cube (its ground truth).
    """
    dm.setup()
    cube = dm.cube()
    steps = np.sort(dm.plan.index[split])
    flux_now = np.asarray(dm.plan.flux_now, float)
    target = np.asarray(dm.plan.target.flux, float)
    if dm.plan.target.horizon == np.timedelta64(0, "ns"):
        if "flare_mask" not in cube:
            raise ValueError(f"{dm.store_path.name} has no flare_mask (a synthetic cube has one)")
        has = cube["flare_mask"].isel(time=steps).any(dim=("y", "x")).values
        cand = steps[has]
        span = max(int(np.timedelta64(6, "h") // dm.plan.cadence), 1)
        level = np.array([np.nanmin(flux_now[max(t - span, 0):t]) if t > 0 else np.nan for t in cand])
        keep = cand[np.isfinite(level) & (target[cand] >= dominance * level)]
        masks = cube["flare_mask"].isel(time=keep).values.astype(bool) if keep.size else np.zeros(
            (0, *dm.frame_shape()), bool)
        rule = (f"flare_mask not empty and target flux >= {dominance:g}x the lowest flux of the 6 h before "
                f"(the flare dominates the nowcast); {keep.size} of {cand.size} flaring frames")
        chosen = _thin(keep, n)
        masks = with_bloom(cube, chosen, masks[np.isin(keep, chosen)])
        return ScoringFrames(chosen, masks, rule + "; grown along the bloom columns", int(cand.size))
    lead, window = target_window(dm)
    events = _events(cube)
    events = events[events["flux"] >= min_flux]
    peaks, fluxes, regions = events["peak"].values, events["flux"].values, events["region"].values
    ids = cube["region_id"]
    keep, masks, n_cand = [], [], 0
    for t in steps:
        when = dm.plan.times[t]
        hit = np.flatnonzero((peaks >= when + lead) & (peaks <= when + lead + window))
        if not hit.size:
            continue
        n_cand += 1
        biggest = hit[np.argmax(fluxes[hit])]
        if not target[t] >= dominance * flux_now[t]:
            continue
        footprint = ids.isel(time=int(t)).values == regions[biggest] + 1
        if footprint.any():
            keep.append(int(t))
            masks.append(footprint)
    keep = np.asarray(keep, np.int64)
    chosen = _thin(keep, n)
    masks = np.asarray(masks, bool).reshape(-1, *dm.frame_shape())[np.isin(keep, chosen)]
    rule = (f"a >= C1 flare peaks in [t + {_hours(lead)}, t + {_hours(lead + window)}], the target is "
            f">= {dominance:g}x the flux at t, and the region of the largest such flare is on the disk (mask: its "
            f"region_id footprint at t); {keep.size} of {n_cand} frames with a flare ahead")
    return ScoringFrames(chosen, masks, rule, n_cand)


def trivial_maps(source: FlareDataModule | xr.Dataset, time_index: Sequence[int], *,
                 channels: Sequence[int] | None = None, bright_channel: int = 94,
                 seed: int = 0) -> dict[str, xr.DataArray]:
    """The reference maps of :data:`TRIVIAL_MAPS` at the input's resolution, ``{name: DataArray(time, y, x)}``:

    * ``input image``: the input channels in DN/s, each divided by its median on the frame (so
      every channel weighs the same), summed: non-negative, brightest where every channel is bright;
    * ``random``: uniform random values (seeded): scores the mask's area on average;
    * ``brightest pixel``: 1 on the brightest pixel(s) of ``bright_channel`` (ties, e.g. saturated
      pixels, share the mass), 0 elsewhere;
    * ``hot-channel excess``: how far the hot channels (94 and 131 Å, those of ``channels``) rise above their
      frame's median, in units of it, summed: ``sum_c max(I_c / median_c - 1, 0)``; where the hot plasma is.
    """
    cube = source.cube() if isinstance(source, FlareDataModule) else source
    if isinstance(source, FlareDataModule) and channels is None:
        channels = source.channels
    channels = list(channels if channels is not None else cube["channel"].values)
    index = check_time_index(source, time_index)
    raw = cube["aia"].isel(time=index).sel(channel=channels).values.astype(np.float64)
    raw = np.nan_to_num(np.clip(raw, 0, None))
    scale = np.median(raw.reshape(*raw.shape[:2], -1), axis=2)[..., None, None]
    image = (raw / np.maximum(scale, 1e-9)).sum(axis=1)
    rng = np.random.default_rng(seed)
    noise = rng.random(image.shape)
    bright = np.nan_to_num(cube["aia"].isel(time=index).sel(channel=bright_channel).values.astype(np.float64),
                           nan=-np.inf)
    top = (bright == bright.max(axis=(1, 2), keepdims=True)).astype(np.float64)
    hot = [k for k, c in enumerate(channels) if int(c) in HOT_CHANNELS]
    excess = np.clip(raw[:, hot] / np.maximum(scale[:, hot], 1e-9) - 1.0, 0, None).sum(axis=1)
    coords = {"time": cube["time"].values[index], "time_index": ("time", index)}
    shape = [int(image.shape[1]), int(image.shape[2])]
    return {name: xr.DataArray(v, dims=("time", "y", "x"), coords=coords, name=name,
                               attrs={"method": name, "layer": "input", "image_shape": shape})
            for name, v in (("input image", image), ("random", noise), ("brightest pixel", top),
                            ("hot-channel excess", excess))}


def pooled_references(reference: Mapping[str, xr.DataArray],
                      maps: Mapping[str, xr.DataArray]) -> dict[str, xr.DataArray]:
    """The trivial maps sum-pooled onto the grid of every coarser map in ``maps`` (each CAM's), so that a CAM is
    compared with the input image at its own resolution: ``{"input image, 8×8": DataArray(time, 8, 8), ...}``
    with ``attrs["layer"] = "input, pooled to 8×8"``."""
    out = {}
    shapes = {tuple(int(n) for n in da.shape[1:]) for da in maps.values()}
    for name, ref in reference.items():
        t, ny, nx = ref.shape
        for my, mx in sorted(shapes - {(ny, nx)}):
            if ny % my or nx % mx:
                continue
            pooled = ref.values.reshape(t, my, ny // my, mx, nx // mx).sum(axis=(2, 4))
            out[f"{name}, {my}×{mx}"] = xr.DataArray(
                pooled, dims=("time", "y", "x"), coords={"time": ref["time"].values},
                attrs={**ref.attrs, "layer": f"input, pooled to {my}×{mx}"})
    return out


#: The fewest distinct days of frames :func:`frame_mean_interval` gives an interval for.
MIN_INTERVAL_DAYS = 5


def frame_mean_interval(values: np.ndarray, times: np.ndarray, *, n_resamples: int = N_RESAMPLES, seed: int = SEED,
                        level: float = LEVEL) -> tuple[float, float]:
    """The ``level`` interval of the mean of per-frame ``values`` (n,) at ``times`` (n,): a bootstrap over the
    frames' UTC days (:func:`flarelib.evaluate.scoring.block_resample_counts`), since frames of the same day show
    the same regions. ``(nan, nan)`` when the frames span fewer than :data:`MIN_INTERVAL_DAYS` days (too few
    blocks to resample; this includes no frames)."""
    values = np.asarray(values, float)
    if np.unique(np.asarray(times, "datetime64[D]")).size < MIN_INTERVAL_DAYS:
        return np.nan, np.nan  # a bootstrap over one or two days says nothing about the spread
    code, counts = block_resample_counts(np.asarray(times), DAY, n_resamples, seed)
    n_days = counts.shape[1]
    sums = counts @ np.bincount(code, weights=values, minlength=n_days)
    sizes = counts @ np.bincount(code, minlength=n_days)
    lo, hi = interval((sums / np.maximum(sizes, 1))[:, None], level)[:, 0]
    return float(lo), float(hi)


def score_maps(maps: Mapping[str, xr.DataArray], masks: np.ndarray, *, model_name: str = "") -> pd.DataFrame:
    """The localization table of ready maps: one row per map (:data:`LOCALIZATION_COLUMNS`), means over frames.

    Each map is ``DataArray(time, y, x)`` at its own resolution with ``attrs["method"]`` and
    ``attrs["layer"]``; ``masks`` (T, ny, nx) are the full-resolution masks of the same frames.
    ``mass_inside`` is averaged over every frame, a frame where the map has no positive mass counting
    0 (an empty map localizes nothing); ``n_frames`` counts the frames scored. ``_lo``/``_hi``: 90 % intervals
    of the mean mass and pointing (:func:`frame_mean_interval`, day blocks of the frames' times).
    """
    masks = np.asarray(masks, bool)
    rows = []
    for label, da in maps.items():
        values = np.asarray(da.values)
        if values.shape[0] != masks.shape[0]:
            raise ValueError(f"map {label!r} has {values.shape[0]} frames, the masks {masks.shape[0]}")
        scores = pd.DataFrame([score_map(v, m) for v, m in zip(values, masks)],
                              columns=["mass_inside", "mass_upper_bound", "pointing"])
        mass, hits = scores["mass_inside"].fillna(0.0).to_numpy(float), scores["pointing"].to_numpy(float)
        times = da["time"].values
        mass_lo, mass_hi = frame_mean_interval(mass, times)
        point_lo, point_hi = frame_mean_interval(hits, times)
        rows.append({"model": model_name, "method": da.attrs.get("method", label),
                     "layer": da.attrs.get("layer", "input"), "map_ny": int(values.shape[1]),
                     "map_nx": int(values.shape[2]),
                     "mass_inside": float(mass.mean()) if mass.size else np.nan,
                     "mass_inside_lo": mass_lo, "mass_inside_hi": mass_hi,
                     "mass_upper_bound": float(scores["mass_upper_bound"].mean()) if len(scores) else np.nan,
                     "pointing": float(hits.mean()) if hits.size else np.nan,
                     "pointing_lo": point_lo, "pointing_hi": point_hi, "n_frames": int(len(scores))})
    return pd.DataFrame(rows, columns=LOCALIZATION_COLUMNS)


def best_localizing_method(table: pd.DataFrame, candidates: Sequence[str] | None = None) -> str:
    """The method that localizes best in a localization table: the highest ``mass_inside`` as a share of
    its resolution's ``mass_upper_bound``, then the pointing game. Trivial maps never win; ``candidates``
    restricts the choice (e.g. the methods a saliency store can hold)."""
    rows = table[~table["method"].isin(TRIVIAL_MAPS)]
    if candidates is not None:
        rows = rows[rows["method"].isin(list(candidates))]
    if rows.empty:
        raise ValueError("the table has no method rows to choose from")
    share = (rows["mass_inside"] / rows["mass_upper_bound"].where(rows["mass_upper_bound"] > 0)).fillna(-1.0)
    order = pd.DataFrame({"share": share, "pointing": rows["pointing"].fillna(-1.0), "method": rows["method"]})
    return str(order.sort_values(["share", "pointing"], ascending=False)["method"].iloc[0])


def localization_verdict(table: pd.DataFrame) -> str:
    """Computed sentences: each method's mass against its resolution's bound and against the input image's
    mass at the same resolution (pooled onto the method's grid), and its pointing game against the input
    image's there."""
    refs = table[table["method"] == "input image"].set_index(["map_ny", "map_nx"])
    lines = []
    for (ny, nx), ref in refs.iterrows():
        lines.append(f"Reference at {ny}×{nx}: the input image puts {ref['mass_inside']:.2f} of its mass inside the "
                     f"mask and points into it on {ref['pointing']:.0%} of the frames.")
    for _, row in table[~table["method"].isin(TRIVIAL_MAPS)].iterrows():
        bound = row["mass_upper_bound"]
        key = (row["map_ny"], row["map_nx"])
        ref_mass = float(refs.loc[key, "mass_inside"]) if key in refs.index else np.nan
        ref_point = float(refs.loc[key, "pointing"]) if key in refs.index else np.nan
        share = f"{row['mass_inside'] / bound:.0%} of the {bound:.2f}" if bound > 0 else "none of the 0"
        versus = (f"{row['mass_inside'] / ref_mass:.1f}× the input image's" if ref_mass > 0
                  else "no input-image mass to compare with")
        pointing = ("cannot be compared with" if not np.isfinite(ref_point) else
                    "ties with" if abs(row["pointing"] - ref_point) < 0.05 else
                    "beats" if row["pointing"] > ref_point else "loses to")
        lines.append(f"{row['method']} ({row['layer']}): mass {row['mass_inside']:.2f} = {share} its resolution "
                     f"allows, {versus} at {key[0]}×{key[1]}; pointing {row['pointing']:.2f} {pointing} the input "
                     "image there.")
    return "\n".join(lines)


def write_localization(table: pd.DataFrame, path: str | Path | None = None) -> Path:
    """Write a localization table (columns exactly :data:`LOCALIZATION_COLUMNS`) to
    ``results_dir()/localization.csv``."""
    return write_table(table, LOCALIZATION_COLUMNS, path or results_dir() / "localization.csv")


def write_table(table: pd.DataFrame, columns: list[str], path: str | Path) -> Path:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"the table lacks the columns {missing}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table[columns].to_csv(path, index=False, float_format="%.4f")
    return path


def localization_table(model: nn.Module, dm: FlareDataModule, frames: ScoringFrames | Sequence[int] | None = None,
                       methods: Sequence[str] = METHODS, *, blocks: Sequence[int | None] | None = None,
                       maps: Mapping[str, xr.DataArray] | None = None, model_name: str | None = None,
                       seed: int = 0, **params) -> pd.DataFrame:
    """The localization table (:data:`LOCALIZATION_COLUMNS`): each method at its own resolution and the
    trivial maps, on ``frames`` (default :func:`scoring_frames` of the test block).

    ``maps`` are ready maps from :func:`method_maps` (so a notebook need not compute them twice);
    otherwise ``methods`` are computed here (the CAM methods at ``blocks``: default the last two).
    ``model_name`` defaults to the data module's target (``now`` or the forecast label).
    """
    if frames is None:
        frames = scoring_frames(dm, "test")
    if not isinstance(frames, ScoringFrames):
        index = check_time_index(dm, frames)
        mask = dm.cube()["flare_mask"].isel(time=index).values.astype(bool)
        frames = ScoringFrames(index, mask, "given steps, mask: flare_mask", int(index.size))
    if maps is None:
        n_blocks = len(conv_blocks(model))
        blocks = blocks if blocks is not None else tuple(dict.fromkeys((max(n_blocks - 1, 1), n_blocks)))
        pixel = [m for m in methods if m not in CAM_METHODS]
        attributions = {m: attribute(model, dm, frames.index, m, **params) for m in pixel}
        maps = method_maps(model, dm, frames.index, attributions,
                           cam_methods=[m for m in methods if m in CAM_METHODS], blocks=blocks)
    reference = trivial_maps(dm, frames.index, seed=seed)
    reference.update(pooled_references(reference, maps))
    name = model_name if model_name is not None else getattr(getattr(dm, "target", None), "name", "")
    table = score_maps({**maps, **reference}, frames.masks, model_name=name)
    table.attrs["dataset"] = f"{data_kind(dm.synthetic)} {dm.cube_attrs.get('name', '')}"
    table.attrs["rule"] = frames.rule
    return table


#: The columns of :func:`pointing_offsets`.
POINTING_COLUMNS = ["method", "peak_x", "peak_y", "offset_px", "offset_arcsec", "random_offset_arcsec"]


def pointing_offsets(maps: Mapping[str, xr.DataArray], x: float, y: float, *, arcsec_per_px: float,
                     step: int = 0, where: np.ndarray | None = None) -> pd.DataFrame:
    """How far each map's maximum lies from a point, e.g. a real flare's position without a mask to score against.

    ``maps``: ``{name: DataArray}`` at the input's resolution, ``(time, [channel,] y, x)`` (summed over channels);
    ``(x, y)``: the point in that grid's pixels (0-based); ``step``: which time. ``offset_arcsec`` is the distance
    of the maximum, ``random_offset_arcsec`` the mean distance of every pixel of the grid (of the pixels ``where``
    is True, bool ``(y, x)``: e.g. the solar disk of a full-disk frame, :func:`flarelib.cube.noaa.disk_pixels`):
    what a map that points anywhere at random there scores. Columns :data:`POINTING_COLUMNS`, closest first.
    """
    rows = []
    for name, da in maps.items():
        values = np.asarray(da.isel(time=step).values, float)
        if values.ndim == 3:
            values = values.sum(axis=0)
        peak_y, peak_x = np.unravel_index(int(np.nanargmax(values)), values.shape)
        yy, xx = np.mgrid[: values.shape[0], : values.shape[1]]
        if where is not None:
            yy, xx = yy[np.asarray(where, bool)], xx[np.asarray(where, bool)]
        rows.append({"method": name, "peak_x": int(peak_x), "peak_y": int(peak_y),
                     "offset_px": float(np.hypot(peak_x - x, peak_y - y)),
                     "offset_arcsec": float(np.hypot(peak_x - x, peak_y - y) * arcsec_per_px),
                     "random_offset_arcsec": float(np.hypot(xx - x, yy - y).mean() * arcsec_per_px)})
    return pd.DataFrame(rows, columns=POINTING_COLUMNS).sort_values("offset_arcsec", ignore_index=True)
