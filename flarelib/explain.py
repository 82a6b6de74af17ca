"""Explain stage: Captum attributions of FlareNet as xarray, their sanity checks, and saliency over time.

* :func:`attribute` runs one method (:data:`METHODS`) on time steps of a cube and returns an
  ``xr.DataArray(time, channel, y, x)`` on the cube's coordinates. Methods:

  - ``saliency``: |d output / d input| (Simonyan et al. 2014), >= 0;
  - ``integrated_gradients``: IG from the all-zero input (= every channel at its training
    mean, since inputs are standardized), signed; ``smoothgrad`` is IG averaged over noisy
    copies (Captum's NoiseTunnel);
  - ``gradcam``: LayerGradCam on the last conv block, upsampled with
    ``LayerAttribution.interpolate``, sign kept (regression: negative = lowers the flux);
    Grad-CAM has no channel axis, so the map is repeated on every channel
    (``attrs["per_channel"] = False``);
  - ``guided_gradcam``: Guided Backprop x Grad-CAM, per channel;
  - ``occlusion``: drop in output when a ``window`` px patch is set to 0 (the mean), all
    channels at once (``per_channel_occlusion=False``) or one channel at a time.

  The explained output is the model's log10 flux (``head="flux"``, Captum ``target=None``)
  or, when the model has the class head, P(flux >= M1) (``head="prob_M"``).
  Captum runs outside Lightning's ``inference_mode`` with gradients on.
* :func:`layer_activations` and :func:`filters_on_regions`: what each conv filter responds to.
* :func:`channel_importance`: the share of attribution mass per wavelength over time.
* :func:`randomization_test` (Adebayo et al. 2018): cascading model-parameter randomization.
* :func:`localization`: mass inside the ground-truth flare mask and the pointing game.
* :func:`write_saliency_store`: a method over a time range written beside the cube as
  ``saliency(time, method, channel, y, x)`` in Zarr, resumable like the ingest.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr
from captum.attr import (
    GuidedGradCam,
    IntegratedGradients,
    LayerActivation,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from scipy.stats import spearmanr
from torch import nn
from tqdm.auto import tqdm

from flarelib import store
from flarelib.checksums import fingerprint, sha256_of
from flarelib.data import FlareDataModule, read_frames
from flarelib.labels import data_kind

METHODS = ("saliency", "integrated_gradients", "smoothgrad", "gradcam", "guided_gradcam", "occlusion")
HEADS = ("flux", "prob_M")


class ExplainedOutput(nn.Module):
    """The scalar FlareNet output a method explains: (B,) log10 flux or P(flux >= M1)."""

    def __init__(self, model: nn.Module, head: str = "flux"):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head {head!r} is not one of {HEADS}")
        if head == "prob_M" and getattr(model, "classifier", None) is None:
            raise ValueError("head 'prob_M' needs a model trained with class_head=True")
        self.model = model
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.head == "flux":
            return self.model(x)
        return torch.sigmoid(self.model.class_logits(x)[:, 1])


def last_conv(model: nn.Module) -> nn.Conv2d:
    """The last ``nn.Conv2d`` of the model (Grad-CAM's default layer)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("the model has no Conv2d layer")
    return convs[-1]


def conv_layers(model: nn.Module) -> dict[str, nn.Conv2d]:
    """``{name: layer}`` of every Conv2d, e.g. ``{"features.0": ..., "features.3": ...}``."""
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def normalized_frames(dm: FlareDataModule, time_index: Sequence[int]) -> torch.Tensor:
    """Model input for cube steps ``time_index``: (T, C, ny, nx) float32, normalized as in training."""
    dm.setup()
    index = np.asarray(time_index, np.int64)
    out = np.empty((index.size, len(dm.channels), *dm.frame_shape()), np.float32)
    for pos, frames in read_frames(dm.store_path, index, dm.channel_index):
        out[pos] = dm.normalizer.apply(frames)
    return torch.from_numpy(out)


def _inputs(model: nn.Module, source: FlareDataModule | xr.Dataset, index: np.ndarray):
    """(inputs, times, channels, synthetic, name) of cube steps ``index`` from a data module or a cube.

    A cube that did not train the model (e.g. the REAL flare cutouts) is normalized with the
    normalizer stored in the model's checkpoint.
    """
    if isinstance(source, FlareDataModule):
        return (normalized_frames(source, index), source.times[index], source.channels, source.synthetic,
                source.cube_attrs.get("name", ""))
    normalizer = getattr(model, "normalizer", None)
    if normalizer is None:
        raise ValueError("explaining a cube needs a trained model that carries its normalizer")
    channels = list(normalizer.channels)
    missing = [c for c in channels if c not in source["channel"].values]
    if missing:
        raise ValueError(f"the cube lacks the model's channels {missing}")
    raw = source["aia"].isel(time=index).sel(channel=channels).values
    return (torch.from_numpy(normalizer.apply(raw)), source["time"].values[index], channels,
            bool(source.attrs.get("synthetic", False)), source.attrs.get("name", ""))


def _attribute_batch(forward: ExplainedOutput, x: torch.Tensor, method: str, params: dict) -> torch.Tensor:
    model = forward.model
    if method == "saliency":
        return Saliency(forward).attribute(x, abs=True)
    if method == "integrated_gradients":
        return IntegratedGradients(forward).attribute(x, baselines=torch.zeros_like(x),
                                                      n_steps=params.get("n_steps", 32),
                                                      internal_batch_size=params.get("internal_batch_size", 64))
    if method == "smoothgrad":
        tunnel = NoiseTunnel(IntegratedGradients(forward))
        return tunnel.attribute(x, baselines=torch.zeros_like(x), nt_type="smoothgrad",
                                nt_samples=params.get("nt_samples", 8), stdevs=params.get("stdevs", 0.2),
                                n_steps=params.get("n_steps", 16),
                                internal_batch_size=params.get("internal_batch_size", 64))
    layer = params.get("layer") or last_conv(model)
    if method == "gradcam":
        cam = LayerGradCam(forward, layer).attribute(x, relu_attributions=False)
        cam = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear")
        return cam.expand(-1, x.shape[1], -1, -1)
    if method == "guided_gradcam":
        return GuidedGradCam(forward, layer).attribute(x, interpolate_mode="bilinear")
    if method == "occlusion":
        w, s = params.get("window", 8), params.get("stride", 4)
        c = 1 if params.get("per_channel_occlusion", False) else x.shape[1]
        return Occlusion(forward).attribute(x, sliding_window_shapes=(c, w, w), strides=(c, s, s), baselines=0.0)
    raise ValueError(f"unknown method {method!r}; choose from {METHODS}")


def attribute_tensor(model: nn.Module, inputs: torch.Tensor, method: str, *, head: str = "flux",
                     batch_size: int = 32, device: str | torch.device | None = None, progress: bool = False,
                     **params) -> torch.Tensor:
    """Attributions (N, C, ny, nx) on the CPU for normalized model inputs (N, C, ny, nx), in batches."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(device).eval()
    forward = ExplainedOutput(model, head)
    parts = []
    with torch.inference_mode(False), torch.enable_grad():
        for k in tqdm(range(0, len(inputs), batch_size), desc=method, disable=not progress, unit="batch"):
            x = inputs[k:k + batch_size].to(device).requires_grad_(True)
            parts.append(_attribute_batch(forward, x, method, params).detach().float().cpu())
    return torch.cat(parts) if parts else torch.zeros((0, *inputs.shape[1:]))


def attribute(
    model: nn.Module,
    source: FlareDataModule | xr.Dataset,
    time_index: Sequence[int],
    method: str = "gradcam",
    *,
    head: str = "flux",
    batch_size: int = 32,
    device: str | torch.device | None = None,
    progress: bool = False,
    **params,
) -> xr.DataArray:
    """Attributions of ``method`` for the cube steps ``time_index``: ``DataArray(time, channel, y, x)``.

    ``source`` is the model's data module, or any cube (``xr.Dataset``) with the model's
    channels, normalized with the normalizer the model carries.

    ``params`` go to the method (``n_steps``, ``nt_samples``, ``stdevs``, ``window``,
    ``stride``, ``per_channel_occlusion``, ``layer``). Units: output units (dex for
    ``head="flux"``) per normalized input unit (gradients) or output units (IG, occlusion).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    index = np.asarray(time_index, np.int64)
    inputs, times, channels, synthetic, name = _inputs(model, source, index)
    values = attribute_tensor(model, inputs, method, head=head, batch_size=batch_size, device=device,
                              progress=progress, **params).numpy()
    return xr.DataArray(
        values, dims=("time", "channel", "y", "x"),
        coords={"time": times, "channel": channels, "time_index": ("time", index),
                "y": np.arange(values.shape[2]), "x": np.arange(values.shape[3])},
        name=method,
        attrs={"method": method, "head": head, "per_channel": method != "gradcam",
               "params": json.dumps({k: v for k, v in params.items() if k != "layer"}, default=str),
               "units": "log10 W m-2 per normalized unit" if method in ("saliency", "gradcam", "guided_gradcam")
               else "log10 W m-2", "synthetic": synthetic, "cube": name},
    )


# --------------------------------------------------------------------------- activations

def layer_activations(model: nn.Module, source: FlareDataModule | xr.Dataset, time_index: Sequence[int], layer: str,
                      *, after_relu: bool = True) -> xr.DataArray:
    """Activations of conv layer ``layer`` (a name from :func:`conv_layers`): ``(time, filter, fy, fx)``.

    ``after_relu`` takes the activation after the block's ReLU (what the next block sees).
    """
    layers = conv_layers(model)
    if layer not in layers:
        raise ValueError(f"no conv layer {layer!r}; the model has {list(layers)}")
    target = layers[layer]
    if after_relu:
        modules = dict(model.named_modules())
        prefix, _, pos = layer.rpartition(".")
        parent = modules[prefix] if prefix else model
        children = list(parent.children())
        start = int(pos) if pos.isdigit() else children.index(target)
        target = next((m for m in children[start:] if isinstance(m, nn.ReLU)), target)
    model = model.eval()
    index = np.asarray(time_index, np.int64)
    x, times, _, _, _ = _inputs(model, source, index)
    with torch.no_grad():
        acts = LayerActivation(model, target).attribute(x.to(next(model.parameters()).device)).float().cpu().numpy()
    return xr.DataArray(acts, dims=("time", "filter", "fy", "fx"),
                        coords={"time": times, "time_index": ("time", index),
                                "filter": np.arange(acts.shape[1])},
                        name=f"activation {layer}", attrs={"layer": layer, "after_relu": after_relu})


def _resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Block-max a (T, ny, nx) mask down to (T, fy, fx) (a feature pixel touches the mask)."""
    t, ny, nx = mask.shape
    fy, fx = shape
    if (ny, nx) == (fy, fx):
        return mask.astype(bool)
    return mask[:, : fy * (ny // fy), : fx * (nx // fx)].reshape(t, fy, ny // fy, fx, nx // fx).max(axis=(2, 4)) > 0


def filters_on_regions(acts: xr.DataArray, mask: np.ndarray) -> pd.DataFrame:
    """Rank filters by mean activation inside ``mask`` (T, ny, nx) over the mean outside.

    Returns one row per filter: ``inside``, ``outside`` and ``ratio``, sorted by ratio.
    """
    small = _resize_mask(np.asarray(mask), acts.shape[-2:])
    values = acts.values
    inside = np.array([values[:, f][small].mean() if small.any() else np.nan for f in range(values.shape[1])])
    outside = np.array([values[:, f][~small].mean() for f in range(values.shape[1])])
    table = pd.DataFrame({"inside": inside, "outside": outside,
                          "ratio": inside / np.maximum(outside, 1e-6)}, index=pd.Index(acts["filter"].values,
                                                                                       name="filter"))
    return table.sort_values("ratio", ascending=False)


# --------------------------------------------------------------------------- summaries and scores

def flaring_steps(dm: FlareDataModule, split: str = "test", n: int | None = None) -> np.ndarray:
    """Cube steps of ``split`` whose ground-truth ``flare_mask`` is not empty (synthetic cubes), thinned to ``n``."""
    dm.setup()
    mask = xr.open_zarr(str(dm.store_path))["flare_mask"]
    idx = np.sort(dm.split_index[split])
    hits = idx[mask.isel(time=idx).any(dim=("y", "x")).values]
    if n is not None and hits.size > n:
        hits = hits[np.unique(np.linspace(0, hits.size - 1, n).astype(int))]
    return hits


def bright_region_mask(cube: xr.Dataset, time_index: Sequence[int], channel: int = 94,
                       percentile: float = 99.0) -> np.ndarray:
    """(T, ny, nx) mask of the pixels above the on-disk ``percentile`` of a hot channel: active regions and flares."""
    frames = cube["aia"].isel(time=np.asarray(time_index)).sel(channel=channel).values
    out = np.zeros(frames.shape, bool)
    for k, frame in enumerate(frames):
        finite = frame[np.isfinite(frame)]
        if finite.size:
            out[k] = frame > np.percentile(finite, percentile)
    return out


def region_mask(cube: xr.Dataset, time_index: Sequence[int], channel: int = 94, percentile: float = 99.0) -> np.ndarray:
    """(T, ny, nx) mask of active regions and flares: :func:`bright_region_mask` or, on a synthetic
    cube, the ground-truth ``flare_mask``."""
    index = np.asarray(time_index)
    mask = bright_region_mask(cube, index, channel=channel, percentile=percentile)
    if "flare_mask" in cube:
        mask |= cube["flare_mask"].isel(time=index).values.astype(bool)
    return mask


@dataclass(frozen=True, eq=False)
class FilterSurvey:
    """Every conv layer's activations on some cube steps, and which filters fire on regions.

    ``activations``: ``{layer: DataArray(time, filter, fy, fx)}``; ``ranking``: ``{layer:``
    :func:`filters_on_regions` ``table}``; ``summary``: one row per layer (filters, best
    inside/outside ratio, filters with a ratio above 2); ``regions``: the (T, ny, nx) mask used.
    """

    activations: dict[str, xr.DataArray]
    ranking: dict[str, pd.DataFrame]
    summary: pd.DataFrame
    regions: np.ndarray


def survey_filters(model: nn.Module, source: FlareDataModule | xr.Dataset, time_index: Sequence[int],
                   regions: np.ndarray) -> FilterSurvey:
    """Activations of every conv layer (after its ReLU) on ``time_index``, ranked against ``regions``."""
    acts = {name: layer_activations(model, source, time_index, name) for name in conv_layers(model)}
    ranking = {name: filters_on_regions(a, regions) for name, a in acts.items()}
    summary = pd.DataFrame({name: {"filters": len(r), "best ratio": r["ratio"].iloc[0],
                                   "filters with ratio > 2": int((r["ratio"] > 2).sum())}
                            for name, r in ranking.items()}).T
    summary.index.name = "layer"
    return FilterSurvey(acts, ranking, summary, regions)


def steps_around_peak(dm: FlareDataModule, split: str = "test", half: int = 30) -> np.ndarray:
    """The cube steps of ``split`` within ``half`` steps either side of its largest target flux (sorted)."""
    dm.setup()
    steps = np.sort(dm.split_index[split])
    peak = int(steps[np.nanargmax(dm.target.log_flux[steps])])
    return steps[(steps >= peak - half) & (steps <= peak + half)]


def channel_importance(attr: xr.DataArray) -> xr.DataArray:
    """Share of |attribution| per channel at each time: ``(time, channel)``, summing to 1."""
    mass = np.abs(attr).sum(dim=("y", "x"))
    return (mass / mass.sum(dim="channel")).rename("channel_importance")


def localization(attr: xr.DataArray, mask: np.ndarray | xr.DataArray) -> pd.DataFrame:
    """Per time step: fraction of positive attribution mass inside ``mask`` and the pointing game.

    ``mask`` is (time, y, x), 1 on the flaring region (the synthetic sun's ``flare_mask``).
    The attribution is summed over channels first; steps with an empty mask are left out.
    """
    total = attr.sum(dim="channel").values
    m = np.asarray(mask).astype(bool)
    if m.shape != total.shape:
        raise ValueError(f"mask {m.shape} and attribution {total.shape} differ")
    rows = []
    for k in range(total.shape[0]):
        if not m[k].any():
            continue
        positive = np.clip(total[k], 0, None)
        mass = positive.sum()
        peak = np.unravel_index(np.argmax(total[k]), total[k].shape)
        rows.append({"time": attr.time.values[k], "mass_inside": positive[m[k]].sum() / mass if mass > 0 else np.nan,
                     "pointing_hit": bool(m[k][peak]), "mask_fraction": m[k].mean()})
    return pd.DataFrame(rows)


def randomization_test(model: nn.Module, dm: FlareDataModule, time_index: Sequence[int], method: str,
                       *, head: str = "flux", seed: int = 0, **params) -> pd.DataFrame:
    """Cascading model-parameter randomization (Adebayo et al. 2018), from the top layer down.

    Re-initializes the layers with parameters one at a time from the output towards the input
    (cumulatively) and reports the Spearman rank correlation between the original and the
    randomized |attribution| maps (mean over samples and channels). A method whose maps
    don't change when the weights are destroyed is not explaining the model.
    """
    original = attribute(model, dm, time_index, method, head=head, **params).values
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))
              and (head == "prob_M" or name != "classifier")]
    randomized = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    modules = dict(randomized.named_modules())
    rows = []
    for name, _ in reversed(layers):
        layer = modules[name]
        with torch.no_grad():
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * layer.weight.std())
            if layer.bias is not None:
                layer.bias.copy_(torch.randn(layer.bias.shape, generator=generator) * (layer.bias.std() + 1e-3))
        maps = attribute(randomized, dm, time_index, method, head=head, **params).values
        rhos = []
        for a, b in zip(np.abs(original), np.abs(maps)):
            rho = spearmanr(a.ravel(), b.ravel()).statistic
            rhos.append(0.0 if np.isnan(rho) else rho)
        rows.append({"method": method, "randomized_down_to": name, "spearman_rho": float(np.mean(rhos))})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- saliency over time

def write_saliency_store(
    path: str | Path,
    model: nn.Module,
    dm: FlareDataModule,
    methods: Sequence[str] = ("gradcam",),
    *,
    time_index: Sequence[int] | None = None,
    checkpoint: str | Path | None = None,
    head: str = "flux",
    batch_size: int = 32,
    block: int = 64,
    dtype: str = "float32",
    progress: bool = True,
    on_block=None,
    **params,
) -> Path:
    """Compute ``methods`` over cube steps ``time_index`` (default: all) and write them to Zarr.

    The store holds ``saliency(time, method, channel, y, x)`` (one chunk per time step:
    a slider step reads one chunk, switching method is free), the explained ``prediction``
    (log10 W/m²) and provenance attrs (checkpoint sha256, methods and parameters, cube name).
    It is written with :func:`flarelib.store.write_cube`: an interrupted run leaves
    ``ingest_status = "incomplete"`` and re-running completes it; a store made from other inputs
    (e.g. a retrained checkpoint) is replaced.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {METHODS}")
    dm.setup()
    index = np.arange(dm.times.size) if time_index is None else np.asarray(time_index, np.int64)
    ny, nx = dm.frame_shape()
    provenance = {"checkpoint_sha256": sha256_of(checkpoint) if checkpoint else "in-memory model",
                  "methods": list(methods), "params": {k: v for k, v in params.items() if k != "layer"},
                  "head": head, "cube": dm.cube_attrs.get("name", ""),
                  "cube_fingerprint": dm.cube_attrs.get("input_fingerprint", ""), "channels": dm.channels,
                  "time_index": [int(index[0]), int(index[-1]), int(index.size)]}
    template = xr.Dataset(
        coords={"time": dm.times[index], "time_index": ("time", index), "method": list(methods),
                "channel": dm.channels, "y": np.arange(ny), "x": np.arange(nx)},
        attrs={"title": f"FlareNet saliency over time on {data_kind(dm.synthetic)} {provenance['cube']}",
               "synthetic": dm.synthetic, "provenance": json.dumps(provenance, default=str),
               "input_fingerprint": fingerprint(provenance),
               "software_versions": json.dumps(store.software_versions())},
    )
    model = model.eval()

    def fill_block(i0: int, i1: int) -> dict[str, np.ndarray]:
        x = normalized_frames(dm, index[i0:i1])  # read once, for every method and the prediction
        maps = np.stack([attribute_tensor(model, x, m, head=head, batch_size=batch_size, **params).numpy()
                         for m in methods], axis=1)
        with torch.no_grad():
            pred = ExplainedOutput(model, head)(x.to(next(model.parameters()).device)).float().cpu().numpy()
        return {"saliency": maps.astype(dtype), "prediction": pred.astype(np.float32)}

    streamed = {"saliency": (("method", "channel", "y", "x"), (len(methods), len(dm.channels), ny, nx), dtype),
                "prediction": ((), (), "float32")}
    # derived data: a store made from another checkpoint, cube or method set is replaced, not refused
    return store.write_cube(path, template, streamed, fill_block,
                            store.WriteOptions(block=block, overwrite=True, progress=progress, on_block=on_block))


def localization_table(model: nn.Module, dm: FlareDataModule, time_index: Sequence[int],
                       methods: Sequence[str] = METHODS, **params) -> pd.DataFrame:
    """Mean positive-mass fraction inside the ground-truth mask and pointing-game score, one row per method."""
    mask = xr.open_zarr(str(dm.store_path))["flare_mask"].isel(time=np.asarray(time_index)).values
    rows = []
    for method in methods:
        scores = localization(attribute(model, dm, time_index, method, **params), mask)
        rows.append({"method": method, "mass_inside_mask": scores["mass_inside"].mean(),
                     "pointing_game": scores["pointing_hit"].mean(),
                     "mask_area_fraction": scores["mask_fraction"].mean(), "frames": len(scores)})
    table = pd.DataFrame(rows).set_index("method")
    table.attrs["dataset"] = f"{data_kind(dm.synthetic)} {dm.cube_attrs.get('name', '')}"
    return table


def sanity_table(model: nn.Module, dm: FlareDataModule, time_index: Sequence[int],
                 methods: Sequence[str] = ("saliency", "integrated_gradients", "gradcam", "guided_gradcam"),
                 **params) -> pd.DataFrame:
    """:func:`randomization_test` for several methods, stacked (one row per method and layer)."""
    return pd.concat([randomization_test(model, dm, time_index, m, **params) for m in methods], ignore_index=True)
