"""Model stage: FlareNet as a LightningModule, trained through LightningCLI and YAML configs.

FlareNet (McGregor et al. 2017, ``nasa-fdl/flarenet``) reads a stack of AIA channels and
regresses the GOES XRS-B flux. Ours: ``len(widths)`` conv blocks ``[Conv3x3 -> optional
norm -> nn.ReLU -> MaxPool2]`` (the norm is ``"group"``, ``"batch"`` or, in the shipped
configs, ``"none"``), global pooling (``"max"``, ``"avg"`` or the soft ``"lse"``), and a small
dense head that outputs log10 of the target flux (W/m²); optionally a second head with
logits for flux >= C1 and >= M1. Every ReLU is an ``nn.ReLU()`` module (never in place,
never functional) so that every Captum method, Guided Grad-CAM included, can hook it.

Input ``x`` is (B, frames * C, ny, nx), normalized by :class:`flarelib.learn.data.Normalizer`
(``frames`` stacked frames, oldest first). A forecast model may also read GOES inputs
``aux`` (B, aux_inputs) (:attr:`flarelib.learn.data.InputOptions.goes`), joined to the
pooled image features before the head; ``use_images=False`` makes the GOES-only model that
the CNN+GOES model must beat to show that the images add information. The model
is handed the data's :class:`flarelib.learn.data.TrainingStats` (``stats``, linked in by the CLI
from the data module; or :meth:`FlareNet.adopt`): the normalizer fitted on the training
block goes into the model's buffers, so a checkpoint carries it and loads with
``weights_only=True`` (:func:`load_flarenet`).

Command line (LightningCLI)::

    flarelib train fit --config configs/small.yaml        # or: flarelib train fit ...
    flarelib train fit --config configs/default.yaml --data.target lead60min_window1440min
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as L
import torch
from torch import nn

from flarelib.cube.goes import EVENT_CLASSES, FLARE_CLASS_THRESHOLDS
from flarelib.cube.prep import DEFAULT_CHANNELS
from flarelib.learn.data import Normalizer, TrainingStats
from flarelib.settings import merge_settings

#: log10 W/m² thresholds of the optional class head (>= C1 and >= M1).
CLASS_HEAD_THRESHOLDS = {c: float(np.log10(FLARE_CLASS_THRESHOLDS[c])) for c in EVENT_CLASSES}


#: Normalization layers after each conv.
NORMS = {"group": lambda width: nn.GroupNorm(min(8, width), width), "batch": nn.BatchNorm2d, "none": None}


POOLS = ("max", "avg", "lse")


#: Sane bounds of the settings that size FlareNet: a config or a checkpoint beyond them is refused before any layer
#: is built (a damaged or hostile checkpoint must not ask for terabytes). ``channels``: input wavelengths;
#: ``frames``: stacked frames; ``aux_inputs``: GOES inputs; ``depth``: conv blocks; ``width``: filters of one conv
#: block; ``hidden``: the dense head's width.
SIZE_LIMITS = {"channels": 64, "frames": 48, "aux_inputs": 256, "depth": 12, "width": 4096, "hidden": 16384}


def _check_size(name: str, value, low: int, high: int) -> int:
    """``value`` as an int in ``low..high``, else a ValueError naming the setting, its value and the bounds."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name}={value!r} is not a whole number (between {low} and {high})")
    if not low <= value <= high:
        raise ValueError(f"{name}={value} is outside {low}..{high} (flarelib.learn.model.SIZE_LIMITS): choose a "
                         "value in that range")
    return int(value)


class LogMeanExpPool(nn.Module):
    """Soft global pooling ``(1/r) log mean exp(r a)`` over the map, per filter: (B, F, fy, fx) -> (B, F, 1, 1).

    ``r`` is learned (one per filter, kept positive): ``r -> 0`` is average pooling, ``r -> inf`` max
    pooling. If a filter's activation is a log emission measure per location, this is the log of
    the disk-summed emission, the way GOES sums the whole disk.
    """

    def __init__(self, filters: int, r0: float = 4.0):
        super().__init__()
        self.log_r = nn.Parameter(torch.full((filters,), float(np.log(r0))))

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        # ``max + log1p(mean(expm1(r (a - max)))) / r``: the same value as ``(logsumexp(r a) - log n) / r``, but
        # without its float32 rounding of ``log n`` divided by a small ``r`` (1e-3 error at r = e^-8), and without
        # overflow at large ``r`` (every ``r (a - max) <= 0``)
        r = self.log_r.exp()[None, :, None, None]
        peak = a.flatten(2).amax(dim=-1)[..., None, None]
        spread = torch.expm1(r * (a - peak)).flatten(2).mean(dim=-1)[..., None, None]
        return peak + torch.log1p(spread) / r


def _pool(kind: str, filters: int) -> nn.Module:
    if kind == "max":
        return nn.AdaptiveMaxPool2d(1)
    return nn.AdaptiveAvgPool2d(1) if kind == "avg" else LogMeanExpPool(filters)


@dataclass(frozen=True)
class Architecture:
    """The network's shape (``model.architecture.*`` in a config).

    ``widths``: output channels of each conv block (the depth is ``len(widths)``). ``hidden``: width of the
    dense head. ``norm``: normalization after each conv, ``"group"`` (GroupNorm, the default: the same in
    training and evaluation), ``"batch"`` (BatchNorm) or ``"none"``. ``pool``: global pooling before the head,
    ``"max"`` (as FlareNet's ``fdl4``: a flare or an active region is a small bright spot), ``"avg"`` or
    ``"lse"`` (:class:`LogMeanExpPool`). ``dropout``: before the last layer. ``channels_last``: run the
    convolutions in ``torch.channels_last`` memory format.
    """

    widths: tuple[int, ...] = (16, 32, 64, 64)
    hidden: int = 64
    norm: str = "group"
    pool: str = "max"
    dropout: float = 0.1
    channels_last: bool = False

    def __post_init__(self):
        if isinstance(self.widths, str | bytes) or not hasattr(self.widths, "__len__"):
            raise ValueError(f"widths={self.widths!r} is not a list of conv widths such as [16, 32, 64]")
        if not self.widths:
            raise ValueError("FlareNet needs at least one conv block (widths)")
        _check_size("len(widths)", len(self.widths), 1, SIZE_LIMITS["depth"])
        object.__setattr__(self, "widths", tuple(_check_size(f"widths[{i}]", w, 1, SIZE_LIMITS["width"])
                                                 for i, w in enumerate(self.widths)))
        _check_size("hidden", self.hidden, 1, SIZE_LIMITS["hidden"])
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, int | float) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout={self.dropout!r} is not a probability in [0, 1)")
        if self.norm not in NORMS:
            raise ValueError(f"norm {self.norm!r} is not one of {sorted(NORMS)}")
        if self.pool not in POOLS:
            raise ValueError(f"pool {self.pool!r} is not one of {POOLS}")


@dataclass(frozen=True)
class Optimization:
    """How the network is fitted (``model.optimization.*``): AdamW with ``lr`` and ``weight_decay`` on a cosine
    schedule; ``class_loss_weight``: the class-head loss next to the regression MSE; ``flip_augment``: random
    north-south and east-west flips of training batches (a single frame carries no rotation direction; flips
    multiply scarce flaring examples)."""

    lr: float = 2e-3
    weight_decay: float = 1e-4
    class_loss_weight: float = 0.5
    flip_augment: bool = True


#: FlareNet's grouped settings: argument name -> options class.
MODEL_GROUPS = {"architecture": Architecture, "optimization": Optimization}


#: FlareNet's settings outside a group: what the data dictate (:data:`flarelib.learn.data.MODEL_LINKS`) and the heads.
MODEL_TOP = ("channels", "target", "normalization", "frames", "frame_step", "aux_inputs", "use_images",
             "class_head", "stats")


#: Flat names -> (group, field): checkpoints' hyperparameters before the model settings were grouped, and
#: the short names :meth:`FlareNet.from_settings` takes as changes (``pool="lse"``).
MODEL_FLAT = {**{f.name: ("architecture", f.name) for f in dataclasses.fields(Architecture)},
              **{f.name: ("optimization", f.name) for f in dataclasses.fields(Optimization)}}


class FlareNet(L.LightningModule):
    """CNN from AIA channels to log10 GOES XRS-B flux (W/m²).

    Args:
        channels: AIA wavelengths (Å) of the input, in order; linked from the data module
            (default: :data:`flarelib.cube.prep.DEFAULT_CHANNELS`).
        target: the target name (``now`` or a forecast label); linked from the data module.
        class_head: also predict P(flux >= C1) and P(flux >= M1) (logits, BCE loss).
        normalization: the :class:`Normalizer` transform.
        frames: stacked input frames per sample; linked from the data module.
        frame_step: the spacing of those frames, a duration (``"1h"``); linked from the data module and kept in
            the checkpoint, so that the model is explained on frames as far apart as it was trained on.
        aux_inputs: number of GOES inputs joined to the image features; linked from the data module.
        use_images: ``False`` ignores the images (the GOES-only reference model; needs ``aux_inputs``).
        architecture: :class:`Architecture`; optimization: :class:`Optimization`.
        stats: the training data's :class:`flarelib.learn.data.TrainingStats` (normalizer and mean target), or a
            function returning them, adopted when fitting starts; the CLI links in the data module's
            ``training_stats``. Without them, call :meth:`adopt` before fitting.
    """

    def __init__(
        self,
        channels: list[int] | None = None,
        target: str = "now",
        normalization: str = "log",
        frames: int = 1,
        frame_step: str = "1h",
        aux_inputs: int = 0,
        use_images: bool = True,
        class_head: bool = False,
        architecture: Architecture = Architecture(),
        optimization: Optimization = Optimization(),
        stats: TrainingStats | Callable[[], TrainingStats] | None = None,
    ):
        super().__init__()
        channels = [int(c) for c in (DEFAULT_CHANNELS if channels is None else channels)]
        if not channels:
            raise ValueError("FlareNet needs at least one input channel")
        # sizes checked before any layer is built (a damaged checkpoint must not ask for terabytes)
        _check_size("len(channels)", len(channels), 1, SIZE_LIMITS["channels"])
        _check_size("frames", frames, 1, SIZE_LIMITS["frames"])
        _check_size("aux_inputs", aux_inputs, 0, SIZE_LIMITS["aux_inputs"])
        if not use_images and aux_inputs < 1:
            raise ValueError("use_images=False needs GOES inputs (data.inputs.goes): a model needs some input")
        self.architecture, self.optimization = architecture, optimization
        # plain values only, so that checkpoints load with weights_only=True
        self.save_hyperparameters({"channels": channels, "target": target, "normalization": normalization,
                                   "frames": int(frames), "frame_step": frame_step, "aux_inputs": int(aux_inputs),
                                   "use_images": bool(use_images), "class_head": bool(class_head),
                                   "architecture": dataclasses.asdict(architecture),
                                   "optimization": dataclasses.asdict(optimization)})
        norm, hidden, dropout = architecture.norm, architecture.hidden, architecture.dropout
        layers: list[nn.Module] = []
        previous = len(channels) * int(frames)
        for width in architecture.widths:
            layers += [nn.Conv2d(previous, width, 3, padding=1, bias=norm == "none")]
            if norm != "none":
                layers += [NORMS[norm](width)]
            layers += [nn.ReLU(), nn.MaxPool2d(2)]
            previous = width
        self.features = nn.Sequential(*layers)
        self.pool = _pool(architecture.pool, previous)
        n_features = (previous if use_images else 0) + int(aux_inputs)
        if not use_images:
            self.features = nn.Sequential()  # the GOES-only model has no image weights
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(n_features, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.regressor = nn.Linear(hidden, 1)
        self.classifier = nn.Linear(hidden, len(CLASS_HEAD_THRESHOLDS)) if class_head else None
        n = len(channels)
        for name in ("norm_param", "norm_mean", "norm_std"):
            self.register_buffer(name, torch.full((n,), float("nan")))
        if architecture.channels_last:
            self.to(memory_format=torch.channels_last)
        self._stats = stats

    @classmethod
    def from_settings(cls, *layers: Mapping) -> FlareNet:
        """The model of settings layers (a config's ``model:``, a checkpoint's hyperparameters, changes), later
        layers winning field by field; groups as mappings or options, or fields by flat name (``pool="lse"``, as
        checkpoints saved them before the settings were grouped; :data:`MODEL_FLAT`)."""
        return cls(**merge_settings(layers, groups=MODEL_GROUPS, top=MODEL_TOP, flat=MODEL_FLAT,
                                    what="model setting"))

    # -- normalization carried in the checkpoint
    @property
    def normalizer(self) -> Normalizer | None:
        """The training-block normalizer (``None`` before fitting)."""
        if torch.isnan(self.norm_mean).any():
            return None
        values = (tuple(float(v) for v in getattr(self, f"norm_{k}").cpu()) for k in ("param", "mean", "std"))
        return Normalizer(tuple(self.hparams.channels), self.hparams.normalization, *values)

    def set_normalizer(self, normalizer: Normalizer) -> None:
        if list(normalizer.channels) != list(self.hparams.channels):
            raise ValueError(f"normalizer channels {list(normalizer.channels)} != model channels "
                             f"{list(self.hparams.channels)}")
        if normalizer.transform != self.hparams.normalization:
            raise ValueError(f"normalizer transform {normalizer.transform!r} != model's {self.hparams.normalization!r}")
        for k in ("param", "mean", "std"):
            getattr(self, f"norm_{k}").copy_(torch.tensor(getattr(normalizer, k)))

    def adopt(self, stats: TrainingStats) -> None:
        """Take what the training data hand over before fitting: the normalizer (into the buffers,
        so checkpoints carry it) and the mean training target, where the regressor starts."""
        self.set_normalizer(stats.normalizer)
        with torch.no_grad():
            self.regressor.bias.fill_(stats.target_mean)

    def on_fit_start(self) -> None:
        if self._stats is not None and self.current_epoch == 0 and self.global_step == 0:
            self.adopt(self._stats() if callable(self._stats) else self._stats)
        self._stats = None  # adopted: the model keeps no reference to the data
        if self.normalizer is None:
            raise RuntimeError("FlareNet has no normalizer: pass stats=datamodule.training_stats() (the CLI does) "
                               "or call model.adopt(datamodule.training_stats()) before trainer.fit")

    # -- network
    def embed(self, x: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        """(B, frames * C, ny, nx) normalized and GOES inputs (B, aux_inputs) -> (B, hidden) features of the head."""
        parts = []
        if self.hparams.get("use_images", True):
            self._check_images(x)
            if self.architecture.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            parts.append(self.pool(self.features(x)).flatten(1))
        n_aux = int(self.hparams.get("aux_inputs", 0))
        if n_aux:
            if aux is None or aux.shape[-1] != n_aux:
                raise ValueError(f"this FlareNet reads {n_aux} GOES inputs (aux); got "
                                 f"{None if aux is None else tuple(aux.shape)}")
            parts.append(aux.to(dtype=parts[0].dtype if parts else torch.float32))
        return self.head(torch.cat(parts, dim=1) if len(parts) > 1 else parts[0])

    def _check_images(self, x: torch.Tensor) -> None:
        """Refuse an image batch this network cannot read, naming what it reads (else a bare torch error): other
        than ``frames * len(channels)`` input planes, or images too small for ``len(widths)`` halvings."""
        frames = int(self.hparams.get("frames", 1))
        planes = len(self.hparams.channels) * frames
        if x.ndim != 4 or x.shape[1] != planes:
            raise ValueError(f"this FlareNet reads (batch, {planes}, ny, nx) images ({frames} frames x channels "
                             f"{list(self.hparams.channels)}); got {tuple(x.shape)}: use the data module the model "
                             "was trained with (flarelib.learn.load_datamodule)")
        depth = len(self.architecture.widths)
        if min(x.shape[-2:]) < 2 ** depth:
            raise ValueError(f"images of {x.shape[-2]}x{x.shape[-1]} px are too small for {depth} conv blocks (each "
                             f"halves them; they need at least {2 ** depth} px): use at most "
                             f"{max(int(min(x.shape[-2:])).bit_length() - 1, 1)} blocks (model.architecture.widths)")

    def forward(self, x: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        """(B, frames * C, ny, nx) normalized [and (B, aux_inputs) GOES inputs] -> (B,) predicted log10 flux (W/m²)."""
        return self.regressor(self.embed(x, aux)).squeeze(-1)

    def class_logits(self, x: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        """(B, frames * C, ny, nx) [and GOES inputs] -> (B, 2) logits of flux >= C1 and >= M1 (needs ``class_head``)."""
        if self.classifier is None:
            raise RuntimeError("this FlareNet has no class head (class_head=False)")
        return self.classifier(self.embed(x, aux))

    # -- training
    def _step(self, batch, stage: str) -> torch.Tensor:
        x, y, w, _, aux = batch
        features = self.embed(x, aux)
        pred = self.regressor(features).squeeze(-1)
        mse = (w * (pred.float() - y) ** 2).mean()
        loss = mse
        if self.classifier is not None:
            labels = torch.stack([y >= v for v in CLASS_HEAD_THRESHOLDS.values()], dim=-1).float()
            bce = nn.functional.binary_cross_entropy_with_logits(self.classifier(features).float(), labels,
                                                                 weight=w[:, None].expand_as(labels))
            loss = loss + self.optimization.class_loss_weight * bce
            self.log(f"{stage}_bce", bce, on_epoch=True, on_step=False, sync_dist=True)
        # sync_dist: under DDP the epoch values are means over all processes (a no-op on one)
        self.log(f"{stage}_loss", loss, on_epoch=True, on_step=stage == "train", prog_bar=True, sync_dist=True)
        self.log(f"{stage}_mae", (pred.float() - y).abs().mean(), on_epoch=True, on_step=False, sync_dist=True)
        return loss

    def training_step(self, batch, batch_idx):
        if self.optimization.flip_augment:
            x, y, w, t, aux = batch
            flip_y, flip_x = torch.rand(2, x.shape[0], device=x.device) < 0.5
            x = torch.where(flip_y[:, None, None, None], x.flip(-2), x)
            x = torch.where(flip_x[:, None, None, None], x.flip(-1), x)
            batch = (x, y, w, t, aux)
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def predict_step(self, batch, batch_idx):
        x, y, _, t, aux = batch
        features = self.embed(x, aux)
        out = {"pred": self.regressor(features).squeeze(-1).float(), "true": y, "time_index": t}
        if self.classifier is not None:
            out["prob"] = torch.sigmoid(self.classifier(features).float())
        return out

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.optimization.lr,
                                      weight_decay=self.optimization.weight_decay)
        epochs = max(int(self.trainer.max_epochs or 1), 1) if self._trainer is not None else 1
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}


class CheckpointError(ValueError):
    """A checkpoint file that is not a usable FlareNet checkpoint (the message names the file and why)."""


def read_checkpoint(path: str | Path, map_location: str = "cpu") -> dict:
    """The checkpoint's dict, checked: readable with ``weights_only=True``, a Lightning checkpoint (not a bare
    state dict) with FlareNet's hyperparameters, finite weights, and hyperparameters that describe the weights the
    file holds (:func:`check_hyperparameters`, before any model is built)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file {path}; train first (notebook 04 or flarelib train "
                                "fit --config configs/default.yaml)")
    try:
        state = torch.load(str(path), map_location=map_location, weights_only=True)
    except Exception as err:  # empty, truncated, not a torch file, or a pickle that is not plain weights
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path} is not a readable checkpoint ({reason[:160]}); it may be empty or "
                              "truncated: train again or pick another file") from err
    if not isinstance(state, dict) or "state_dict" not in state or "hyper_parameters" not in state:
        kind = "a bare state dict" if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path} is {kind}, not a Lightning checkpoint of FlareNet (with 'state_dict' and "
                              "'hyper_parameters'); save it with the Trainer (ModelCheckpoint)")
    for name, tensor in state["state_dict"].items():
        if name.startswith("norm_"):
            continue  # the normalizer buffers are NaN until fitting: checked by FlareNet.normalizer
        if torch.is_tensor(tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path} holds non-finite weights in {name!r} (a diverged training run?): "
                                  "train again, e.g. with a lower learning rate")
    check_hyperparameters(path, state)
    return state


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def check_hyperparameters(path: str | Path, state: Mapping) -> None:
    """Refuse a checkpoint whose hyperparameters do not describe its weights, before the model is built.

    The sizes are checked against :data:`SIZE_LIMITS`; then the network is built on the ``meta`` device (shapes
    only, no memory) and its weights' shapes and bytes are compared with the file's: a file cannot hold fewer
    bytes than the weights its hyperparameters ask for, and every weight must have the shape they give.
    Raises :class:`CheckpointError` with one line naming the file, the hyperparameter or weight, and a fix.
    """
    path = Path(path)
    fix = "the file is damaged, edited or not FlareNet's: pick another checkpoint or train again"
    settings = {k: v for k, v in dict(state["hyper_parameters"]).items() if not str(k).startswith("_")}
    try:
        with torch.device("meta"):
            shapes = {name: (tuple(t.shape), t.numel() * t.element_size())
                      for name, t in FlareNet.from_settings(settings).state_dict().items()}
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: its hyperparameters do not make a FlareNet ({_first_line(err)}); "
                              f"{fix}") from err
    need, size = sum(n for _, n in shapes.values()), path.stat().st_size
    if need > size:
        raise CheckpointError(f"{path} is {size:,} bytes, but its hyperparameters ask for {need:,} bytes of weights "
                              f"({need / size:.3g} times the file): {fix}")
    weights = state["state_dict"]
    for name, (shape, _) in shapes.items():
        if name not in weights:
            raise CheckpointError(f"{path} lacks the weight {name!r} that its hyperparameters call for; {fix}")
        found = tuple(weights[name].shape) if torch.is_tensor(weights[name]) else type(weights[name]).__name__
        if found != shape:
            raise CheckpointError(f"{path}: its hyperparameters give {name!r} the shape {list(shape)}, but the file "
                                  f"holds {list(found) if isinstance(found, tuple) else found}; {fix}")
    extra = sorted(set(weights) - set(shapes))
    if extra:
        raise CheckpointError(f"{path} holds weights its hyperparameters do not call for ({', '.join(extra[:3])}); "
                              f"{fix}")


def load_flarenet(path: str | Path, map_location: str = "cpu") -> FlareNet:
    """Load a checkpoint safely: ``weights_only=True`` (no arbitrary pickled objects run), checked first
    (:class:`CheckpointError` names the file for an empty, truncated, bare or non-finite one)."""
    state = read_checkpoint(path, map_location)
    settings = {k: v for k, v in state["hyper_parameters"].items() if not k.startswith("_")}
    model = FlareNet.from_settings(settings)  # grouped, or flat as older checkpoints saved them
    model.load_state_dict(state["state_dict"])
    return model.to(map_location).eval()
