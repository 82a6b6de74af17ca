"""What the conv filters respond to: activations on regions that will flare against regions that will not
(:func:`survey_filters`), beside the 94 Å image itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from torch import nn

from flarelib.evaluate.scoring import LEVEL, N_RESAMPLES, SEED, auc_interval, weighted_auc
from flarelib.explain.attribution import block_activations
from flarelib.explain.localize import RegionMasks, flaring_regions, pool_mask, region_masks, target_window
from flarelib.learn.data import FlareDataModule


def _weighted_means(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per filter: the mean of ``values`` (T, F, fy, fx) weighted by ``weights`` (T, fy, fx); NaN without weight."""
    total = weights.sum()
    if total <= 0:
        return np.full(values.shape[1], np.nan)
    return np.einsum("tfyx,tyx->f", values, weights) / total


def filters_on_flaring_regions(acts: xr.DataArray, regions: RegionMasks) -> pd.DataFrame:
    """Per filter: mean activation on regions that will flare, on the other regions and on the quiet disk.

    The masks are pooled onto the filter's grid (:func:`pool_mask`) and used as weights, so a cell
    half inside a region counts half. ``flare_ratio`` = will flare / will not (does the filter tell
    the regions apart?); ``region_ratio`` = any region / quiet disk (does it fire on regions at all?).
    Sorted by ``flare_ratio``.
    """
    shape = acts.shape[-2:]
    values = acts.values.astype(np.float64)
    will = _weighted_means(values, pool_mask(regions.will_flare, shape))
    other = _weighted_means(values, pool_mask(regions.will_not, shape))
    quiet = _weighted_means(values, pool_mask(regions.quiet, shape))
    any_region = _weighted_means(values, pool_mask(regions.will_flare | regions.will_not, shape))
    # a floor of 1% of the filter's mean activation keeps a near-silent denominator from giving a huge ratio
    eps = np.maximum(0.01 * values.mean(axis=(0, 2, 3)), 1e-6)
    table = pd.DataFrame({"will_flare": will, "will_not": other, "quiet": quiet,
                          "flare_ratio": will / np.maximum(other, eps),
                          "region_ratio": any_region / np.maximum(quiet, eps)},
                         index=pd.Index(acts["filter"].values, name="filter"))
    return table.sort_values("flare_ratio", ascending=False)


def channel_on_regions(cube: xr.Dataset, regions: RegionMasks, channel: int = 94) -> pd.Series:
    """The same contrasts for an input channel itself (DN/s), the reference a filter must beat: a filter
    whose ``flare_ratio`` is no higher than the 94 Å image's adds nothing to telling the regions apart."""
    frames = cube["aia"].isel(time=regions.index).sel(channel=channel).values.astype(np.float64)[:, None]
    da = xr.DataArray(frames, dims=("time", "filter", "fy", "fx"), coords={"filter": [0]})
    row = filters_on_flaring_regions(da, regions).iloc[0]
    return row.rename(f"{channel} Å input")


@dataclass(frozen=True, eq=False)
class FilterSurvey:
    """Every conv block's activations on some cube steps, and which filters fire on which regions.

    ``activations``: ``{block name: DataArray(time, filter, fy, fx)}`` (:func:`block_activations`);
    ``ranking``: ``{block name:`` :func:`filters_on_flaring_regions` ``table}``; ``summary``: one
    row per block; ``regions``: the :class:`RegionMasks` used; ``reference``: the same contrasts
    for the 94 Å input image.
    """

    activations: dict[str, xr.DataArray]
    ranking: dict[str, pd.DataFrame]
    summary: pd.DataFrame
    regions: RegionMasks
    reference: pd.Series


def survey_filters(model: nn.Module, dm: FlareDataModule, time_index: Sequence[int], regions: RegionMasks | None = None,
                   *, channel: int = 94) -> FilterSurvey:
    """Every conv block's rectified maps on ``time_index``, ranked by how much more they fire on the regions
    that will flare than on the other regions (:func:`filters_on_flaring_regions`).

    The summary counts, per block, the filters that fire on regions (``region_ratio > 2``) and
    those that tell the regions that will flare from the others better than the ``channel`` Å
    input image does (``flare_ratio`` above the image's).
    """
    regions = regions if regions is not None else region_masks(dm, time_index)
    acts = block_activations(model, dm, time_index)
    ranking = {name: filters_on_flaring_regions(a, regions) for name, a in acts.items()}
    reference = channel_on_regions(dm.cube(), regions, channel)
    summary = pd.DataFrame({name: {"filters": len(r),
                                   "fire on regions (region ratio > 2)": int((r["region_ratio"] > 2).sum()),
                                   "best flare ratio": float(r["flare_ratio"].max()),
                                   f"flare ratio above {channel} Å image's": int(
                                       (r["flare_ratio"] > reference["flare_ratio"]).sum())}
                            for name, r in ranking.items()}).T
    summary.index.name = "block"
    summary = summary.astype({c: int for c in summary.columns if c != "best flare ratio"})
    return FilterSurvey(acts, ranking, summary, regions, reference)


def filter_survey_verdict(survey: FilterSurvey) -> str:
    """One computed sentence per block: how many filters single out the regions that will flare."""
    ref = float(survey.reference["flare_ratio"])
    lines = [f"The {survey.reference.name} itself is {ref:.2f}× brighter on regions that will flare in "
             f"{survey.regions.window} than on the other regions."]
    for name, row in survey.summary.iterrows():
        better = int(row.iloc[3])
        lines.append(f"{name}: {better} of {int(row['filters'])} filters separate them more than that "
                     f"(best {row['best flare ratio']:.2f}×); {int(row.iloc[1])} fire on regions at all "
                     "(> 2× the quiet disk).")
    return "\n".join(lines)


#: The columns of :func:`filter_region_auc` (``filters.csv``).
FILTER_AUC_COLUMNS = ["layer", "filter", "auc", "auc_lo", "auc_hi", "n_frames", "n_regions", "n_will_flare"]


@dataclass(frozen=True, eq=False)
class RegionSamples:
    """One sample per (frame, region on the disk): the cube step, the region, its footprint pooled onto a grid
    later, and whether it will flare (>= C1) in the target window."""

    time_index: np.ndarray  #: (n,) cube step of each sample
    frame: np.ndarray  #: (n,) position of the step in the frames asked for
    region: np.ndarray  #: (n,) region index
    will_flare: np.ndarray  #: (n,) bool
    footprints: np.ndarray  #: (n, ny, nx) bool, the region_id footprint at the step
    times: np.ndarray  #: (n,) datetime64[ns] of the step


def region_samples(dm: FlareDataModule, time_index: Sequence[int]) -> RegionSamples:
    """Every region on the disk at each of ``time_index`` (its ``region_id`` footprint is not empty), labelled by
    whether it produces a flare >= C1 in the data module's target window (:func:`flaring_regions`)."""
    index = np.asarray(time_index, np.int64)
    cube = dm.cube()
    if "region_id" not in cube:
        raise ValueError(f"{dm.store_path.name} has no region_id map (a synthetic sun has one)")
    lead, window = target_window(dm)
    flaring = flaring_regions(cube, index, lead, window)
    ids = cube["region_id"].isel(time=index).values.astype(np.int64)
    rows = [(k, r) for k in range(index.size) for r in np.unique(ids[k]) if r > 0]
    frame = np.array([k for k, _ in rows], np.int64)
    region = np.array([r - 1 for _, r in rows], np.int64)
    footprints = ids[frame] == (region + 1)[:, None, None]
    times = cube["time"].values[index][frame].astype("datetime64[ns]")
    return RegionSamples(index[frame], frame, region, flaring[frame, region], footprints, times)


def filter_region_auc(acts: xr.DataArray, samples: RegionSamples, *, n_resamples: int = N_RESAMPLES,
                      seed: int = SEED, level: float = LEVEL) -> pd.DataFrame:
    """Per filter of ``acts`` (time, filter, fy, fx; the frames of ``samples``): how well its mean activation on a
    region (the footprint pooled onto the filter's grid, :func:`pool_mask`) ranks the regions that will flare
    above those that will not, as a ROC AUC over every (frame, region) sample, with its ``level`` interval from a
    bootstrap of the frames' UTC days (frames of one day show the same regions). 0.5 = no better than chance.
    Sorted by AUC; columns :data:`FILTER_AUC_COLUMNS`."""
    values = acts.values.astype(np.float64)
    weights = pool_mask(samples.footprints, values.shape[-2:])  # (n, fy, fx)
    means = np.einsum("nfyx,nyx->nf", values[samples.frame], weights) / np.maximum(weights.sum(axis=(1, 2)), 1e-12)[
        :, None]
    ones = np.ones((1, means.shape[0]))
    rows = []
    for f in range(means.shape[1]):
        auc = float(weighted_auc(means[:, f], samples.will_flare, ones)[0])
        lo, hi = auc_interval(means[:, f], samples.will_flare, samples.times, n_resamples=n_resamples, seed=seed,
                              level=level)
        rows.append({"layer": acts.attrs.get("layer", ""), "filter": int(acts["filter"].values[f]), "auc": auc,
                     "auc_lo": float(lo), "auc_hi": float(hi), "n_frames": int(np.unique(samples.frame).size),
                     "n_regions": int(samples.frame.size), "n_will_flare": int(samples.will_flare.sum())})
    return pd.DataFrame(rows, columns=FILTER_AUC_COLUMNS).sort_values("auc", ascending=False, ignore_index=True)


def channel_region_auc(cube: xr.Dataset, samples: RegionSamples, channel: int = 94, **kwargs) -> pd.DataFrame:
    """:func:`filter_region_auc` of an input channel itself (its mean DN/s on each region): the reference a filter
    must beat to add anything to telling the regions apart."""
    frames = np.unique(samples.time_index)
    image = cube["aia"].isel(time=frames).sel(channel=channel).values.astype(np.float64)[:, None]
    da = xr.DataArray(image, dims=("time", "filter", "fy", "fx"), coords={"filter": [0]},
                      attrs={"layer": f"{channel} Å input"})
    return filter_region_auc(da, samples, **kwargs)


def filter_auc_table(model: nn.Module, dm: FlareDataModule, time_index: Sequence[int], *, block: int = -1,
                     channel: int = 94, **kwargs) -> pd.DataFrame:
    """The per-region AUC of every filter of conv block ``block`` (default the last) on ``time_index``
    (:func:`filter_region_auc`), with the ``channel`` Å image's row first as the reference."""
    samples = region_samples(dm, time_index)
    acts = list(block_activations(model, dm, np.unique(samples.time_index)).values())[block]
    return pd.concat([channel_region_auc(dm.cube(), samples, channel, **kwargs),
                      filter_region_auc(acts, samples, **kwargs)], ignore_index=True)


def filter_auc_verdict(table: pd.DataFrame) -> str:
    """Computed sentences from :func:`filter_auc_table`: the reference image's AUC and how many filters separate the
    regions that will flare better than chance and better than the image (their interval above its AUC)."""
    ref, filters = table.iloc[0], table.iloc[1:]
    above_chance = int((filters["auc_lo"] > 0.5).sum())
    above_image = int((filters["auc_lo"] > ref["auc"]).sum())
    best = filters.iloc[0]
    return (f"On {int(ref['n_frames'])} frames ({int(ref['n_regions'])} region samples, {int(ref['n_will_flare'])} "
            f"that will flare), the {ref['layer']} ranks the regions that will flare with AUC {ref['auc']:.2f} "
            f"[{ref['auc_lo']:.2f}, {ref['auc_hi']:.2f}]. In {best['layer']}, {above_chance} of {len(filters)} "
            f"filters do better than chance (interval above 0.5; about {0.05 * len(filters):.0f} would by chance "
            f"alone, one 90 % interval per filter) and {above_image} better than the image (interval above "
            f"{ref['auc']:.2f}); the best, filter {int(best['filter'])}, reaches {best['auc']:.2f} "
            f"[{best['auc_lo']:.2f}, {best['auc_hi']:.2f}].")
