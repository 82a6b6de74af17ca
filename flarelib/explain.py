"""Explain stage: Captum attributions of FlareNet as xarray, their sanity checks, and saliency over time.

* :func:`attribute` runs one method (:data:`METHODS`) on time steps of a cube and returns an
  ``xr.DataArray(time, channel, y, x)`` on the cube's coordinates. Methods:

  - ``saliency``: |d output / d input| (Simonyan et al. 2014), >= 0;
  - ``integrated_gradients``: IG from the all-zero input (= every channel at its training
    mean, since inputs are standardized), signed; ``smoothgrad`` is IG averaged over noisy
    copies (Captum's NoiseTunnel);
  - ``gradcam``: Grad-CAM (Selvaraju et al. 2017) on the *rectified* feature maps of a conv
    block (the output of the block's ``nn.ReLU``, before its pooling): each map weighted by
    its spatially averaged gradient, summed, then a ReLU (``relu_attributions=True``, as in
    the paper); ``signed=True`` keeps the sign of the weighted sum;
  - ``hirescam``: HiResCAM (Draelos & Carin 2020, arXiv 2011.08891): gradient x activation
    on the same rectified maps, element by element (Captum's ``LayerGradientXActivation``),
    summed over filters, rectified unless ``signed=True``. Unlike Grad-CAM it does not average
    the gradient over the map, so it shows only locations the output actually depends on;
  - ``guided_gradcam``: Guided Backprop x Grad-CAM, per channel;
  - ``occlusion``: drop in output when a ``window`` px patch is set to 0 (the mean), all
    channels at once (``per_channel_occlusion=False``) or one channel at a time.

  The CAM methods (:data:`CAM_METHODS`) read the conv block ``block`` (1 = first; default the
  last; :func:`block_name` names it for people, e.g. "block 4, 8×8" on a 64 px input); their
  map is upsampled bilinearly to the input and repeated on every channel
  (``attrs["per_channel"] = False``); :func:`cam_maps` gives them at their own resolution.

  The explained output is the model's log10 flux (``head="flux"``, Captum ``target=None``)
  or, when the model has the class head, P(flux >= M1) (``head="prob_M"``).
  Captum runs outside Lightning's ``inference_mode`` with gradients on. Models with an
  auxiliary input (``hparams["aux_inputs"] > 0``: standardized GOES-history features) get
  it from the data module (:meth:`~flarelib.data.FlareDataModule.model_inputs`); models with several input frames
  (``hparams["frames"] > 1``) are explained on all of them and :func:`attribute` returns the
  current frame's slice (the share of |attribution| on earlier frames is in its attrs).
* :func:`layer_activations`, :func:`block_activations` and :func:`survey_filters`: what
  each conv filter responds to, on regions that will flare and on regions that will not.
* :func:`channel_importance`: the share of attribution mass per wavelength over time.
* :func:`randomization_table` (Adebayo et al. 2018): cascading model-parameter randomization,
  Spearman rho on absolute and on signed values; a NaN rho is a failure.
* :func:`localization_table`: each map scored at its own resolution against the region that
  flares (:func:`scoring_frames`), with the upper bound that resolution allows, beside the
  trivial maps (:func:`trivial_maps`); written by :func:`write_localization`.
* :func:`write_saliency_store`: a method over a time range written beside the cube as
  ``saliency(time, method, channel, y, x)`` in Zarr, resumable like the ingest.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import warnings
from collections.abc import Mapping, Sequence
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
    LayerGradientXActivation,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from scipy.stats import spearmanr
from torch import nn
from tqdm.auto import tqdm

from flarelib import store
from flarelib.align import to_timedelta
from flarelib.checksums import fingerprint, sha256_of
from flarelib.data import FlareDataModule, frame_offsets, stack_inputs
from flarelib.goes import FLARE_CLASS_THRESHOLDS
from flarelib.labels import data_kind, method_label
from flarelib.paths import results_dir

METHODS = ("saliency", "integrated_gradients", "smoothgrad", "gradcam", "hirescam", "guided_gradcam", "occlusion")
CAM_METHODS = ("gradcam", "hirescam")  #: methods that read a conv block's rectified feature maps
HEADS = ("flux", "prob_M")
TRIVIAL_MAPS = ("input image", "random", "brightest pixel")  #: the reference rows of the localization table
LOCALIZATION_COLUMNS = ["model", "method", "layer", "map_ny", "map_nx", "mass_inside", "mass_upper_bound",
                        "pointing", "n_frames"]
RANDOMIZATION_COLUMNS = ["method", "randomized_to", "spearman_abs", "spearman_signed"]


def _hparam(model: nn.Module, key: str, default):
    """``model.hparams[key]`` where the model has it, else ``default`` (plain modules, older checkpoints)."""
    hparams = getattr(model, "hparams", None)
    if hparams is None:
        return default
    try:
        value = hparams.get(key, default)
    except AttributeError:
        value = getattr(hparams, key, default)
    return default if value is None else value


def needs_aux(model: nn.Module) -> int:
    """How many auxiliary (GOES-history) features the model's ``forward(x, aux)`` needs (0: none)."""
    return int(_hparam(model, "aux_inputs", 0) or 0)


def n_frames(model: nn.Module) -> int:
    """How many input frames the model reads (``hparams["frames"]``, default 1)."""
    return max(int(_hparam(model, "frames", 1) or 1), 1)


class ExplainedOutput(nn.Module):
    """The scalar FlareNet output a method explains: (B,) log10 flux or P(flux >= M1).

    ``forward(x, aux=None)`` passes ``aux`` (the model's auxiliary input, if it has one) through.
    """

    def __init__(self, model: nn.Module, head: str = "flux"):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head {head!r} is not one of {HEADS}")
        if head == "prob_M" and getattr(model, "classifier", None) is None:
            raise ValueError("head 'prob_M' needs a model trained with class_head=True")
        self.model = model
        self.head = head

    def forward(self, x: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        args = (x,) if aux is None else (x, aux)
        if self.head == "flux":
            return self.model(*args)
        return torch.sigmoid(self.model.class_logits(*args)[:, 1])


# --------------------------------------------------------------------------- conv blocks

def conv_layers(model: nn.Module) -> dict[str, nn.Conv2d]:
    """``{name: layer}`` of every Conv2d, e.g. ``{"features.0": ..., "features.3": ...}``."""
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def _relu_after(model: nn.Module, name: str) -> nn.Module:
    """The ``nn.ReLU`` that follows conv ``name`` in its parent (before the parent's next conv)."""
    modules = dict(model.named_modules())
    prefix, _, _ = name.rpartition(".")
    parent = modules[prefix] if prefix else model
    children = list(parent.children())
    conv = modules[name]
    start = next(k for k, m in enumerate(children) if m is conv)
    for m in children[start + 1:]:
        if isinstance(m, nn.Conv2d):
            break
        if isinstance(m, nn.ReLU):
            return m
    raise ValueError(f"conv layer {name!r} has no nn.ReLU module after it in its block")


def conv_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``[(conv name, ReLU module)]`` of the model's conv blocks in forward order.

    FlareNet's ``features`` are ``[Conv2d, (norm), nn.ReLU, MaxPool2d]`` per block; a block's
    rectified feature maps are the output of its ReLU (what Grad-CAM and HiResCAM read).
    """
    return [(name, _relu_after(model, name)) for name in conv_layers(model)]


def block_relu(model: nn.Module, block: int | None = None) -> nn.Module:
    """The ReLU module of conv block ``block`` (1-based; ``None`` or ``-1``: the last)."""
    blocks = conv_blocks(model)
    if not blocks:
        raise ValueError("the model has no conv block")
    if block is None or block == -1:
        return blocks[-1][1]
    if not 1 <= int(block) <= len(blocks):
        raise ValueError(f"block {block} does not exist: the model has blocks 1..{len(blocks)}")
    return blocks[int(block) - 1][1]


def _block_number(model: nn.Module, block: int | None) -> int:
    n = len(conv_blocks(model))
    if block is None or block == -1:
        return n
    block_relu(model, block)  # range check
    return int(block)


def block_shapes(model: nn.Module, input_shape: tuple[int, int]) -> list[tuple[int, int]]:
    """The (ny, nx) of each block's rectified feature maps for an input of ``input_shape`` (a dry run)."""
    blocks = conv_blocks(model)
    first = conv_layers(model)[blocks[0][0]]
    shapes: dict[int, tuple[int, int]] = {}
    hooks = [relu.register_forward_hook(lambda m, i, o, k=k: shapes.__setitem__(k, tuple(o.shape[-2:])))
             for k, (_, relu) in enumerate(blocks)]
    device = next(model.parameters()).device
    x = torch.zeros((1, first.in_channels, *input_shape), device=device)
    aux = torch.zeros((1, needs_aux(model)), device=device) if needs_aux(model) else None
    try:
        with torch.no_grad():
            ExplainedOutput(model)(x, aux)
    finally:
        for hook in hooks:
            hook.remove()
    return [shapes[k] for k in range(len(blocks))]


def block_name(model: nn.Module, block: int | None = None, input_shape: tuple[int, int] = (64, 64)) -> str:
    """A block named for people: ``"block 4, 8×8"`` (its number and the size of its maps for ``input_shape``)."""
    number = _block_number(model, block)
    fy, fx = block_shapes(model, tuple(input_shape))[number - 1]
    return f"block {number}, {fy}×{fx}"


# --------------------------------------------------------------------------- model inputs

@dataclass(frozen=True, eq=False)
class ModelInputs:
    """What a model reads at some cube steps: ``x`` (N, frames*C, ny, nx) normalized, ``aux`` (N, n_aux) or None."""

    x: torch.Tensor
    aux: torch.Tensor | None
    index: np.ndarray
    times: np.ndarray
    channels: list[int]
    synthetic: bool
    name: str


def _n_steps(source) -> int:
    if isinstance(source, FlareDataModule):
        return int(source.plan.times.size)
    return int(source.sizes["time"])


def check_time_index(source, time_index: Sequence[int]) -> np.ndarray:
    """``time_index`` as int64, or a one-line ``IndexError`` naming the steps outside the cube."""
    index = np.atleast_1d(np.asarray(time_index)).astype(np.int64)
    n = _n_steps(source)
    bad = index[(index < 0) | (index >= n)]
    if bad.size:
        shown = ", ".join(str(int(b)) for b in bad[:5]) + (" ..." if bad.size > 5 else "")
        raise IndexError(f"time index {shown} outside the cube: it has {n} time steps (0..{n - 1})")
    return index


def frame_step(model: nn.Module) -> str | None:
    """The spacing of the model's input frames (``hparams["frame_step"]``, a duration such as ``"1h"``), or
    ``None`` where its checkpoint records none (trained before flarelib recorded it)."""
    return _hparam(model, "frame_step", None)


def _check_model_reads(model: nn.Module, dm: FlareDataModule) -> None:
    """Refuse a data module whose inputs are not the model's: other frames, frame spacing or channels."""
    frames, step = n_frames(model), frame_step(model)
    if frames != len(dm.plan.offsets):
        raise ValueError(f"the data module gives {len(dm.plan.offsets)} frames per sample, the model reads {frames}: "
                         "use the data module of the model's checkpoint (flarenet.load_datamodule)")
    if frames > 1 and step is not None and to_timedelta(step) != to_timedelta(dm.inputs.frame_step):
        raise ValueError(f"the data module stacks frames {dm.inputs.frame_step} apart, the model was trained on "
                         f"frames {step} apart: use the data module of the model's checkpoint")
    channels = getattr(getattr(model, "normalizer", None), "channels", None)
    if channels is not None and list(channels) != list(dm.channels):
        raise ValueError(f"the model reads channels {list(channels)}, the data module gives {dm.channels}")


def model_inputs(model: nn.Module, source: FlareDataModule | xr.Dataset, time_index: Sequence[int]) -> ModelInputs:
    """The normalized input (and the GOES inputs, if the model reads them) of cube steps ``time_index``.

    ``source`` is the model's data module (its :meth:`~flarelib.data.FlareDataModule.model_inputs`, as in
    training), or any cube with the model's channels, normalized with the normalizer the model carries
    (e.g. the REAL flare cutouts). Either way the frames come from :func:`flarelib.data.stack_inputs`: a
    model with several frames gets them ``frame_step`` apart (a duration, so on a 12-min cube a 1 h step is 5
    cube steps). Refuses non-finite inputs, and steps without their earlier frames, naming the step.
    """
    index = check_time_index(source, time_index)
    aux = None
    if isinstance(source, FlareDataModule):
        _check_model_reads(model, source)
        x, aux = source.model_inputs(index)
        times, channels, synthetic, name = (source.plan.times[index], source.channels, source.synthetic,
                                            source.cube_attrs.get("name", ""))
    else:
        normalizer = getattr(model, "normalizer", None)
        if normalizer is None:
            raise ValueError("explaining a cube needs a trained model that carries its normalizer")
        frames, step = n_frames(model), frame_step(model)
        if frames > 1 and step is None:
            raise ValueError(f"this model reads {frames} frames but its checkpoint records no frame_step: explain "
                             "it with its data module (flarenet.load_datamodule), which knows the spacing")
        if needs_aux(model):
            raise ValueError(f"this model needs {needs_aux(model)} GOES inputs (aux_inputs); explain it with its "
                             "data module, which provides them, not a bare cube")
        x = stack_inputs(source, normalizer, index, frame_offsets(frames, step or "0min", store.cube_cadence(source)))
        channels, times = list(normalizer.channels), source["time"].values[index]
        synthetic, name = bool(source.attrs.get("synthetic", False)), source.attrs.get("name", "")
    x = torch.from_numpy(np.ascontiguousarray(x, np.float32))
    if aux is not None and np.asarray(aux).shape[-1] == 0:
        aux = None
    if aux is not None:
        aux = torch.as_tensor(np.asarray(aux), dtype=torch.float32)
        finite = torch.isfinite(aux).all(dim=1)
        if not bool(finite.all()):
            k = int(np.flatnonzero(~finite.numpy())[0])
            raise ValueError(f"the GOES input at time step {int(index[k])} "
                             f"({np.datetime_as_string(np.asarray(times)[k], unit='m')}) is not finite (a GOES gap); "
                             "explain steps of the data module's splits, which leave such steps out")
    return ModelInputs(x, aux, index, np.asarray(times), list(channels), synthetic, name)


# --------------------------------------------------------------------------- attribution

def _forward_args(aux: torch.Tensor | None):
    return None if aux is None else (aux,)


def _cam_batch(forward: ExplainedOutput, x: torch.Tensor, aux, method: str, params: dict) -> torch.Tensor:
    """(B, 1, fy, fx) Grad-CAM or HiResCAM of the block's rectified maps, at the block's own resolution."""
    layer = params.get("layer") or block_relu(forward.model, params.get("block"))
    signed = bool(params.get("signed", False))
    if method == "gradcam":
        return LayerGradCam(forward, layer).attribute(x, additional_forward_args=_forward_args(aux),
                                                      relu_attributions=not signed)
    if method == "hirescam":
        grad_act = LayerGradientXActivation(forward, layer).attribute(x, additional_forward_args=_forward_args(aux))
        cam = grad_act.sum(dim=1, keepdim=True)
        return cam if signed else torch.relu(cam)
    raise ValueError(f"{method!r} is not one of {CAM_METHODS}")


def _attribute_batch(forward: ExplainedOutput, x: torch.Tensor, aux, method: str, params: dict) -> torch.Tensor:
    args = _forward_args(aux)
    model = forward.model
    if method == "saliency":
        return Saliency(forward).attribute(x, abs=True, additional_forward_args=args)
    if method == "integrated_gradients":
        return IntegratedGradients(forward).attribute(x, baselines=torch.zeros_like(x), additional_forward_args=args,
                                                      n_steps=params.get("n_steps", 32),
                                                      internal_batch_size=max(params.get("internal_batch_size", 64),
                                                                              x.shape[0]))
    if method == "smoothgrad":
        tunnel = NoiseTunnel(IntegratedGradients(forward))
        return tunnel.attribute(x, baselines=torch.zeros_like(x), nt_type="smoothgrad", additional_forward_args=args,
                                nt_samples=params.get("nt_samples", 8), stdevs=params.get("stdevs", 0.2),
                                n_steps=params.get("n_steps", 16),
                                internal_batch_size=max(params.get("internal_batch_size", 64), x.shape[0]))
    if method in CAM_METHODS:
        cam = _cam_batch(forward, x, aux, method, params)
        if params.get("native", False):
            return cam
        cam = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear")
        return cam.expand(-1, x.shape[1], -1, -1)
    if method == "guided_gradcam":
        layer = params.get("layer") or block_relu(model, params.get("block"))
        with warnings.catch_warnings():  # Captum announces the ReLU hooks it sets and removes on every call
            warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU", category=UserWarning)
            return GuidedGradCam(forward, layer).attribute(x, additional_forward_args=args,
                                                           interpolate_mode="bilinear")
    if method == "occlusion":
        w, s = params.get("window", 8), params.get("stride", 4)
        c = 1 if params.get("per_channel_occlusion", False) else x.shape[1]
        return Occlusion(forward).attribute(x, sliding_window_shapes=(c, w, w), strides=(c, s, s), baselines=0.0,
                                            additional_forward_args=args)
    raise ValueError(f"unknown method {method!r}; choose from {METHODS}")


def attribute_tensor(model: nn.Module, inputs: torch.Tensor, method: str, *, head: str = "flux",
                     aux: torch.Tensor | None = None, batch_size: int = 32,
                     device: str | torch.device | None = None, progress: bool = False, **params) -> torch.Tensor:
    """Attributions (N, C, ny, nx) on the CPU for normalized model inputs (N, C, ny, nx), in batches.

    ``aux`` (N, n_aux) is the auxiliary input of a model that has one. With ``native=True``
    a CAM method returns its map at the block's own resolution, (N, 1, fy, fx).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    if needs_aux(model) and aux is None:
        raise ValueError(f"this model needs its auxiliary input (aux_inputs={needs_aux(model)}): pass aux=")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(device).eval()
    forward = ExplainedOutput(model, head)
    parts = []
    with torch.inference_mode(False), torch.enable_grad():
        for k in tqdm(range(0, len(inputs), batch_size), desc=method, disable=not progress, unit="batch"):
            x = inputs[k:k + batch_size].to(device).requires_grad_(True)
            a = None if aux is None else aux[k:k + batch_size].to(device)
            parts.append(_attribute_batch(forward, x, a, method, params).detach().float().cpu())
    if parts:
        return torch.cat(parts)
    return torch.zeros((0, *inputs.shape[1:]))


def _current_frame(values: np.ndarray, n_channels: int) -> tuple[np.ndarray, list[float] | None]:
    """The current frame's channels of a frame-major attribution, and the share of |attribution| on earlier frames."""
    if values.shape[1] == n_channels:
        return values, None
    total = np.abs(values).sum(axis=(1, 2, 3))
    earlier = np.abs(values[:, :-n_channels]).sum(axis=(1, 2, 3))
    share = np.where(total > 0, earlier / np.where(total > 0, total, 1), np.nan)
    return values[:, -n_channels:], [float(s) for s in share]


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
    ``stride``, ``per_channel_occlusion``; for the CAM methods and Guided Grad-CAM ``block``
    (1-based, default the last) and ``signed``). Units: output units (dex for
    ``head="flux"``) per normalized input unit (saliency, Guided Grad-CAM) or output units
    (IG, occlusion, the CAMs). A model with several input frames is attributed on all of them;
    the current frame's slice is returned and ``attrs["earlier_frames_share"]`` holds the share
    of |attribution| on the earlier frames at each step.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    params.pop("native", None)
    got = model_inputs(model, source, time_index)
    values = attribute_tensor(model, got.x, method, head=head, aux=got.aux, batch_size=batch_size, device=device,
                              progress=progress, **params).numpy()
    values, earlier = _current_frame(values, len(got.channels))
    attrs = {"method": method, "head": head, "per_channel": method not in CAM_METHODS,
             "params": json.dumps({k: v for k, v in params.items() if k != "layer"}, default=str),
             "units": "log10 W m-2 per normalized unit" if method in ("saliency", "guided_gradcam")
             else "log10 W m-2", "synthetic": got.synthetic, "cube": got.name}
    if method in CAM_METHODS or method == "guided_gradcam":
        attrs["layer"] = block_name(model, params.get("block"), tuple(got.x.shape[-2:]))
        attrs["signed"] = bool(params.get("signed", False)) or method == "guided_gradcam"
    if earlier is not None:
        attrs["earlier_frames_share"] = json.dumps(earlier)
    return xr.DataArray(
        values, dims=("time", "channel", "y", "x"),
        coords={"time": got.times, "channel": got.channels, "time_index": ("time", got.index),
                "y": np.arange(values.shape[2]), "x": np.arange(values.shape[3])},
        name=method, attrs=attrs,
    )


def _map_coords(n_map: int, n_image: int) -> np.ndarray:
    """Cell centres of an ``n_map``-cell axis in the pixel coordinates of an ``n_image``-pixel axis."""
    return (np.arange(n_map) + 0.5) * n_image / n_map - 0.5


def cam_maps(model: nn.Module, source: FlareDataModule | xr.Dataset, time_index: Sequence[int],
             method: str = "gradcam", *, block: int | None = None, signed: bool = False, head: str = "flux",
             batch_size: int = 32, device: str | torch.device | None = None) -> xr.DataArray:
    """Grad-CAM or HiResCAM at the block's own resolution: ``DataArray(time, y, x)`` with ``y``/``x`` the
    cell centres in input pixels (e.g. an 8×8 map of a 64 px input), ``attrs["layer"]`` the block's name."""
    if method not in CAM_METHODS:
        raise ValueError(f"{method!r} is not one of {CAM_METHODS}")
    got = model_inputs(model, source, time_index)
    cam = attribute_tensor(model, got.x, method, head=head, aux=got.aux, batch_size=batch_size, device=device,
                           block=block, signed=signed, native=True).numpy()[:, 0]
    ny, nx = got.x.shape[-2:]
    return xr.DataArray(cam, dims=("time", "y", "x"),
                        coords={"time": got.times, "time_index": ("time", got.index),
                                "y": _map_coords(cam.shape[1], ny), "x": _map_coords(cam.shape[2], nx)},
                        name=method, attrs={"method": method, "layer": block_name(model, block, (ny, nx)),
                                            "signed": signed, "head": head, "synthetic": got.synthetic,
                                            "cube": got.name, "image_shape": [int(ny), int(nx)]})


def native_map(attr: xr.DataArray) -> xr.DataArray:
    """A per-channel attribution summed over channels: ``DataArray(time, y, x)`` at the input's resolution
    (a CAM from :func:`attribute`, repeated on every channel, gives its one map)."""
    if "channel" not in attr.dims:
        return attr
    out = attr.sum("channel") if attr.attrs.get("per_channel", True) else attr.isel(channel=0, drop=True)
    out.attrs = {**attr.attrs, "layer": attr.attrs.get("layer", "input"),
                 "image_shape": [int(attr.sizes["y"]), int(attr.sizes["x"])]}
    return out.rename(attr.name)


# --------------------------------------------------------------------------- activations

def _activations(model: nn.Module, got: ModelInputs, module: nn.Module) -> np.ndarray:
    model = model.eval()
    device = next(model.parameters()).device
    aux = None if got.aux is None else got.aux.to(device)
    with torch.no_grad():
        return LayerActivation(ExplainedOutput(model), module).attribute(
            got.x.to(device), additional_forward_args=_forward_args(aux)).float().cpu().numpy()


def layer_activations(model: nn.Module, source: FlareDataModule | xr.Dataset, time_index: Sequence[int], layer: str,
                      *, after_relu: bool = True) -> xr.DataArray:
    """Activations of conv layer ``layer`` (a name from :func:`conv_layers`): ``(time, filter, fy, fx)``.

    ``after_relu`` takes the activation after the block's ReLU (what the next block sees).
    """
    layers = conv_layers(model)
    if layer not in layers:
        raise ValueError(f"no conv layer {layer!r}; the model has {list(layers)}")
    target = _relu_after(model, layer) if after_relu else layers[layer]
    got = model_inputs(model, source, time_index)
    acts = _activations(model, got, target)
    return xr.DataArray(acts, dims=("time", "filter", "fy", "fx"),
                        coords={"time": got.times, "time_index": ("time", got.index),
                                "filter": np.arange(acts.shape[1])},
                        name=f"activation {layer}", attrs={"layer": layer, "after_relu": after_relu})


def block_activations(model: nn.Module, source: FlareDataModule | xr.Dataset,
                      time_index: Sequence[int]) -> dict[str, xr.DataArray]:
    """Every conv block's rectified feature maps: ``{"block 1, 64×64": DataArray(time, filter, fy, fx), ...}``."""
    got = model_inputs(model, source, time_index)
    shape = tuple(got.x.shape[-2:])
    out = {}
    for number, (_, relu) in enumerate(conv_blocks(model), start=1):
        acts = _activations(model, got, relu)
        label = f"block {number}, {acts.shape[2]}×{acts.shape[3]}"
        out[label] = xr.DataArray(acts, dims=("time", "filter", "fy", "fx"),
                                  coords={"time": got.times, "time_index": ("time", got.index),
                                          "filter": np.arange(acts.shape[1])},
                                  name=f"activation {label}",
                                  attrs={"layer": label, "block": number, "after_relu": True,
                                         "image_shape": list(shape)})
    return out


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


# --------------------------------------------------------------------------- regions that will flare

def _events(cube: xr.Dataset) -> pd.DataFrame:
    """The cube's event list (start, peak, peak flux, AR index) as a frame."""
    if "event_peak" not in cube or cube.sizes.get("event", 0) == 0:
        return pd.DataFrame(columns=["start", "peak", "flux", "region"])
    return pd.DataFrame({"start": cube["event_start"].values, "peak": cube["event_peak"].values,
                         "flux": cube["event_peak_flux"].values.astype(float),
                         "region": cube["event_noaa_ar"].values.astype(int)})


def _window_of(dm: FlareDataModule) -> tuple[np.timedelta64, np.timedelta64]:
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
        raise ValueError(f"{dm.store_path.name} has no region_id map (a synthetic sun v2 has one)")
    lead, window = _window_of(dm)
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


# --------------------------------------------------------------------------- summaries and scores

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


def steps_around_peak(dm: FlareDataModule, split: str = "test", half: int = 30) -> np.ndarray:
    """The cube steps of ``split`` within ``half`` steps either side of its largest target flux (sorted)."""
    dm.setup()
    steps = np.sort(dm.plan.index[split])
    peak = int(steps[np.nanargmax(dm.plan.target.log_flux[steps])])
    return steps[(steps >= peak - half) & (steps <= peak + half)]


def channel_importance(attr: xr.DataArray) -> xr.DataArray:
    """Share of |attribution| per channel at each time: ``(time, channel)``, summing to 1."""
    mass = np.abs(attr).sum(dim=("y", "x"))
    return (mass / mass.sum(dim="channel")).rename("channel_importance")


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


# --------------------------------------------------------------------------- localization at each map's resolution

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
      t (the kernels of the >= C1 flares in progress). A frame counts when the flare dominates
      what the model predicts: the target flux is at least ``dominance`` times the pre-flare level
      (the lowest flux of the 6 h before t), so more than half of it comes from the flare, not
      from the regions' background emission.
    * **Forecast**: the mask is the ``region_id`` footprint at t of the region that *will* flare:
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
        masks = masks[np.isin(keep, chosen)]
        return ScoringFrames(chosen, masks, rule, int(cand.size))
    lead, window = _window_of(dm)
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
      pixels, share the mass), 0 elsewhere.
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
    coords = {"time": cube["time"].values[index], "time_index": ("time", index)}
    shape = [int(image.shape[1]), int(image.shape[2])]
    return {name: xr.DataArray(v, dims=("time", "y", "x"), coords=coords, name=name,
                               attrs={"method": name, "layer": "input", "image_shape": shape})
            for name, v in (("input image", image), ("random", noise), ("brightest pixel", top))}


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


def score_maps(maps: Mapping[str, xr.DataArray], masks: np.ndarray, *, model_name: str = "") -> pd.DataFrame:
    """The localization table of ready maps: one row per map (:data:`LOCALIZATION_COLUMNS`), means over frames.

    Each map is ``DataArray(time, y, x)`` at its own resolution with ``attrs["method"]`` and
    ``attrs["layer"]``; ``masks`` (T, ny, nx) are the full-resolution masks of the same frames.
    ``mass_inside`` is averaged over every frame, a frame where the map has no positive mass counting
    0 (an empty map localizes nothing); ``n_frames`` counts the frames scored.
    """
    masks = np.asarray(masks, bool)
    rows = []
    for label, da in maps.items():
        values = np.asarray(da.values)
        if values.shape[0] != masks.shape[0]:
            raise ValueError(f"map {label!r} has {values.shape[0]} frames, the masks {masks.shape[0]}")
        scores = pd.DataFrame([score_map(v, m) for v, m in zip(values, masks)])
        rows.append({"model": model_name, "method": da.attrs.get("method", label),
                     "layer": da.attrs.get("layer", "input"), "map_ny": int(values.shape[1]),
                     "map_nx": int(values.shape[2]),
                     "mass_inside": float(scores["mass_inside"].fillna(0.0).mean()) if len(scores) else np.nan,
                     "mass_upper_bound": float(scores["mass_upper_bound"].mean()) if len(scores) else np.nan,
                     "pointing": float(scores["pointing"].mean()) if len(scores) else np.nan,
                     "n_frames": int(len(scores))})
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
        share = row["mass_inside"] / bound if bound > 0 else np.nan
        key = (row["map_ny"], row["map_nx"])
        ref_mass = float(refs.loc[key, "mass_inside"]) if key in refs.index else np.nan
        ref_point = float(refs.loc[key, "pointing"]) if key in refs.index else np.nan
        versus = row["mass_inside"] / ref_mass if ref_mass > 0 else np.nan
        pointing = ("ties with" if abs(row["pointing"] - ref_point) < 0.05 else
                    "beats" if row["pointing"] > ref_point else "loses to")
        lines.append(f"{row['method']} ({row['layer']}): mass {row['mass_inside']:.2f} = {share:.0%} of the "
                     f"{bound:.2f} its resolution allows, {versus:.1f}× the input image's at {key[0]}×{key[1]}; "
                     f"pointing {row['pointing']:.2f} {pointing} the input image there.")
    return "\n".join(lines)


def write_localization(table: pd.DataFrame, path: str | Path | None = None) -> Path:
    """Write a localization table (columns exactly :data:`LOCALIZATION_COLUMNS`) to
    ``results_dir()/localization.csv``."""
    return _write_table(table, LOCALIZATION_COLUMNS, path or results_dir() / "localization.csv")


def _write_table(table: pd.DataFrame, columns: list[str], path: str | Path) -> Path:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"the table lacks the columns {missing}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table[columns].to_csv(path, index=False, float_format="%.4f")
    return path


# --------------------------------------------------------------------------- randomization

def _layer_label(model: nn.Module, name: str) -> str:
    """A layer named for people: ``"block 2 conv"``, ``"dense layer 1"``, ``"output layer"``."""
    convs = list(conv_layers(model))
    if name in convs:
        return f"block {convs.index(name) + 1} conv"
    if name == "regressor":
        return "output layer"
    if name == "classifier":
        return "class head"
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n not in ("regressor", "classifier")]
    if name in linears:
        return f"dense layer {linears.index(name) + 1}"
    return name


def _method_maps(model: nn.Module, source, index, method: str, head: str, params: dict) -> np.ndarray:
    """The maps a randomization compares: CAMs at their own resolution, the others per channel."""
    if method in CAM_METHODS:
        return cam_maps(model, source, index, method, block=params.get("block"), signed=params.get("signed", False),
                        head=head).values
    return attribute(model, source, index, method, head=head, **params).values


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return np.nan  # a constant map: rank correlation undefined
    return float(spearmanr(a.ravel(), b.ravel()).statistic)


def randomization_test(model: nn.Module, dm: FlareDataModule, time_index: Sequence[int], method: str,
                       *, head: str = "flux", seed: int = 0, **params) -> pd.DataFrame:
    """Cascading model-parameter randomization (Adebayo et al. 2018), from the top layer down.

    Re-initializes the layers with parameters one at a time from the output towards the input
    (cumulatively) and reports the Spearman rank correlation between the original and the
    randomized maps, on absolute values (``spearman_abs``) and on signed values
    (``spearman_signed``), the mean over the frames. A map that is constant on a frame (e.g. a
    rectified Grad-CAM that is all zero) has no rank correlation: that frame's rho is NaN and so
    is the mean, and :func:`randomization_verdict` counts NaN as a failure, not a pass.
    Columns: :data:`RANDOMIZATION_COLUMNS` plus ``layer`` (the module's own name).
    """
    index = check_time_index(dm, time_index)
    original = _method_maps(model, dm, index, method, head, params)
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))
              and (head == "prob_M" or name != "classifier")]
    randomized = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    modules = dict(randomized.named_modules())
    rows = []
    for name, _ in reversed(layers):
        layer = modules[name]
        with torch.no_grad():
            weight = torch.randn(layer.weight.shape, generator=generator) * layer.weight.std(correction=0)
            layer.weight.copy_(weight.to(layer.weight.device))
            if layer.bias is not None:
                bias = torch.randn(layer.bias.shape, generator=generator) * (layer.bias.std(correction=0) + 1e-3)
                layer.bias.copy_(bias.to(layer.bias.device))
        maps = _method_maps(randomized, dm, index, method, head, params)
        rho_abs = [_spearman(np.abs(a), np.abs(b)) for a, b in zip(original, maps)]
        rho_signed = [_spearman(a, b) for a, b in zip(original, maps)]
        rows.append({"method": method, "randomized_to": _layer_label(model, name),
                     "spearman_abs": float(np.mean(rho_abs)), "spearman_signed": float(np.mean(rho_signed)),
                     "layer": name})
    return pd.DataFrame(rows)


def randomization_table(model: nn.Module, dm: FlareDataModule, time_index: Sequence[int],
                        methods: Sequence[str] = ("saliency", "integrated_gradients", "gradcam", "hirescam",
                                                  "guided_gradcam"), **params) -> pd.DataFrame:
    """:func:`randomization_test` for several methods, stacked (one row per method and layer)."""
    return pd.concat([randomization_test(model, dm, time_index, m, **params) for m in methods], ignore_index=True)




def randomization_verdict(table: pd.DataFrame, threshold: float = 0.2) -> pd.DataFrame:
    """Per method, after the last (full) randomization: both rhos, and ``passes`` when both are finite and
    below ``threshold`` in absolute value (a NaN rho fails: the test could not show the map changed)."""
    last = table.groupby("method", sort=False).tail(1).set_index("method")
    out = last[["randomized_to", "spearman_abs", "spearman_signed"]].copy()
    finite = np.isfinite(out["spearman_abs"]) & np.isfinite(out["spearman_signed"])
    out["passes"] = finite & (out["spearman_abs"].abs() < threshold) & (out["spearman_signed"].abs() < threshold)
    return out


def write_randomization(table: pd.DataFrame, path: str | Path | None = None) -> Path:
    """Write a randomization table (columns exactly :data:`RANDOMIZATION_COLUMNS`) to
    ``results_dir()/randomization.csv``."""
    return _write_table(table, RANDOMIZATION_COLUMNS, path or results_dir() / "randomization.csv")


# --------------------------------------------------------------------------- saliency over time

#: How :func:`write_saliency_store` writes by default: 64 time steps per write, with a progress bar.
SALIENCY_WRITES = store.WriteOptions(steps_per_write=64)


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
    dtype: str = "float32",
    write: store.WriteOptions = SALIENCY_WRITES,
    **params,
) -> Path:
    """Compute ``methods`` over cube steps ``time_index`` (default: all) and write them to Zarr.

    The store holds ``saliency(time, method, channel, y, x)`` (one chunk per time step, with
    every method and channel), the explained ``prediction``
    (log10 W/m²) and provenance attrs (checkpoint sha256, methods and parameters, cube name).
    It is written with :func:`flarelib.store.write_cube`: an interrupted run leaves
    ``ingest_status = "incomplete"`` and re-running completes it; a store made from other inputs
    (e.g. a retrained checkpoint) is replaced. ``write`` says how (``steps_per_write`` time steps per write,
    ``progress``, ``on_written``; ``overwrite`` is always on). ``params`` go to every method (:func:`attribute`),
    e.g. ``block=`` for the conv block the CAM methods read (default the last) or ``n_steps=`` for Integrated
    Gradients. ``batch_size`` is the number of maps computed at once, in units of time steps.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {METHODS}")
    dm.setup()
    index = np.arange(dm.plan.times.size) if time_index is None else np.asarray(time_index, np.int64)
    ny, nx = dm.frame_shape()
    index = check_time_index(dm, index)
    provenance = {"checkpoint_sha256": sha256_of(checkpoint) if checkpoint else "in-memory model",
                  "methods": list(methods), "params": {k: v for k, v in params.items() if k != "layer"},
                  "head": head, "cube": dm.cube_attrs.get("name", ""),
                  "cube_fingerprint": dm.cube_attrs.get("input_fingerprint", ""), "channels": dm.channels,
                  "time_index": [int(index[0]), int(index[-1]), int(index.size)]}
    template = xr.Dataset(
        coords={"time": dm.plan.times[index], "time_index": ("time", index), "method": list(methods),
                "channel": dm.channels, "y": np.arange(ny), "x": np.arange(nx)},
        attrs={"title": f"FlareNet saliency over time on {data_kind(dm.synthetic)} {provenance['cube']}",
               "synthetic": dm.synthetic, "provenance": json.dumps(provenance, default=str),
               "input_fingerprint": fingerprint(provenance),
               "software_versions": json.dumps(store.software_versions())},
    )
    model = model.eval()

    def fill_steps(i0: int, i1: int) -> dict[str, np.ndarray]:
        got = model_inputs(model, dm, index[i0:i1])  # read once, for every method and the prediction
        maps = np.stack([_current_frame(attribute_tensor(model, got.x, m, head=head, aux=got.aux,
                                                         batch_size=batch_size, **params).numpy(),
                                        len(dm.channels))[0] for m in methods], axis=1)
        device = next(model.parameters()).device
        with torch.no_grad():
            pred = ExplainedOutput(model, head)(got.x.to(device), None if got.aux is None else got.aux.to(device))
            pred = pred.float().cpu().numpy()
        return {"saliency": maps.astype(dtype), "prediction": pred.astype(np.float32)}

    streamed = {"saliency": (("method", "channel", "y", "x"), (len(methods), len(dm.channels), ny, nx), dtype),
                "prediction": ((), (), "float32")}
    # derived data: a store made from another checkpoint, cube or method set is replaced, not refused
    return store.write_cube(path, template, streamed, fill_steps, dataclasses.replace(write, overwrite=True))


def method_maps(model: nn.Module, dm: FlareDataModule | xr.Dataset, time_index: Sequence[int],
                attributions: Mapping[str, xr.DataArray] | None = None, *,
                cam_methods: Sequence[str] = CAM_METHODS, blocks: Sequence[int | None] = (None,),
                head: str = "flux") -> dict[str, xr.DataArray]:
    """Every method's map at its own resolution, ``{label: DataArray(time, y, x)}``, ready for :func:`score_maps`.

    ``attributions`` (from :func:`attribute`, same steps) are summed over channels
    (:func:`native_map`); the CAM methods are computed at each of ``blocks`` (1-based, ``None``:
    the last) with :func:`cam_maps`. Labels are ``"saliency"`` or ``"Grad-CAM, block 4, 8×8"``.
    """
    out = {}
    for name, attr in (attributions or {}).items():
        if attr.attrs.get("method") in CAM_METHODS:
            continue  # upsampled: scored at its own resolution below
        out[name] = native_map(attr)
    for method in cam_methods:
        for block in blocks:
            cam = cam_maps(model, dm, time_index, method, block=block, head=head)
            out[f"{method_label(method)}, {cam.attrs['layer']}"] = cam
    return out


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
