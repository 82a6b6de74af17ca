"""Captum attributions of FlareNet on cube steps, as xarray: one :func:`attribute` for every method.

The model-input path (:func:`model_inputs`), the conv blocks the CAM methods read, and the activations of
those blocks (:func:`layer_activations`, :func:`block_activations`) live here; the package docstring
(:mod:`flarelib.explain`) describes each method.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
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
from torch import nn
from tqdm.auto import tqdm

from flarelib.cube import store
from flarelib.cube.align import to_timedelta
from flarelib.labels import method_label
from flarelib.learn.data import FlareDataModule, frame_offsets, stack_inputs

METHODS = ("saliency", "integrated_gradients", "smoothgrad", "gradcam", "hirescam", "guided_gradcam", "occlusion")


CAM_METHODS = ("gradcam", "hirescam")  #: methods that read a conv block's rectified feature maps


HEADS = ("flux", "prob_M")


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
                         "use the data module of the model's checkpoint (flarelib.learn.load_datamodule)")
    if frames > 1 and step is not None and to_timedelta(step) != to_timedelta(dm.inputs.frame_step):
        raise ValueError(f"the data module stacks frames {dm.inputs.frame_step} apart, the model was trained on "
                         f"frames {step} apart: use the data module of the model's checkpoint")
    channels = getattr(getattr(model, "normalizer", None), "channels", None)
    if channels is not None and list(channels) != list(dm.channels):
        raise ValueError(f"the model reads channels {list(channels)}, the data module gives {dm.channels}")


def model_inputs(model: nn.Module, source: FlareDataModule | xr.Dataset, time_index: Sequence[int]) -> ModelInputs:
    """The normalized input (and the GOES inputs, if the model reads them) of cube steps ``time_index``.

    ``source`` is the model's data module (its :meth:`~flarelib.learn.data.FlareDataModule.model_inputs`, as in
    training), or any cube with the model's channels, normalized with the normalizer the model carries
    (e.g. the REAL flare cutouts). Either way the frames come from :func:`flarelib.learn.data.stack_inputs`: a
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
                             "it with its data module (flarelib.learn.load_datamodule), which knows the spacing")
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


#: The settings the methods read (:func:`attribute`); any other keyword is refused, so a misspelled one
#: (``n_step=``) is an error, not a silent default.
METHOD_PARAMS = ("n_steps", "internal_batch_size", "nt_samples", "stdevs", "window", "stride",
                 "per_channel_occlusion", "block", "layer", "signed", "native")


def check_params(params: dict) -> None:
    """Refuse keywords that no method reads (:data:`METHOD_PARAMS`), naming them and the valid ones."""
    unknown = sorted(set(params) - set(METHOD_PARAMS))
    if unknown:
        raise TypeError(f"unknown attribution settings {unknown}; the methods read {list(METHOD_PARAMS)}")


def attribute_tensor(model: nn.Module, inputs: torch.Tensor, method: str, *, head: str = "flux",
                     aux: torch.Tensor | None = None, batch_size: int = 32,
                     device: str | torch.device | None = None, progress: bool = False, **params) -> torch.Tensor:
    """Attributions (N, C, ny, nx) on the CPU for normalized model inputs (N, C, ny, nx), in batches.

    ``aux`` (N, n_aux) is the auxiliary input of a model that has one. With ``native=True``
    a CAM method returns its map at the block's own resolution, (N, 1, fy, fx).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    check_params(params)
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


def current_frame(values: np.ndarray, n_channels: int) -> tuple[np.ndarray, list[float] | None]:
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
    check_params(params)
    params.pop("native", None)
    got = model_inputs(model, source, time_index)
    values = attribute_tensor(model, got.x, method, head=head, aux=got.aux, batch_size=batch_size, device=device,
                              progress=progress, **params).numpy()
    values, earlier = current_frame(values, len(got.channels))
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


def channel_importance(attr: xr.DataArray) -> xr.DataArray:
    """Share of |attribution| per channel at each time: ``(time, channel)``, summing to 1."""
    mass = np.abs(attr).sum(dim=("y", "x"))
    return (mass / mass.sum(dim="channel")).rename("channel_importance")


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
