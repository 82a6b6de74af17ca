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

from flarelib.explain.attribution import block_activations
from flarelib.explain.localize import RegionMasks, pool_mask, region_masks
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
