"""Model stage: FlareNet as a LightningModule, trained through LightningCLI and YAML configs.

FlareNet (McGregor et al. 2017, ``nasa-fdl/flarenet``) reads a stack of AIA channels and
regresses the GOES XRS-B flux. Ours: ``len(widths)`` conv blocks ``[Conv3x3 -> optional
norm -> nn.ReLU -> MaxPool2]`` (the norm is ``"group"``, ``"batch"`` or, in the shipped
configs, ``"none"``), global pooling (``"max"``, ``"avg"`` or the soft ``"lse"``), and a small
dense head that outputs log10 of the target flux (W/m²); optionally a second head with
logits for flux >= C1 and >= M1. Every ReLU is an ``nn.ReLU()`` module (never in place,
never functional) so that every Captum method, Guided Grad-CAM included, can hook it.

Input ``x`` is (B, frames * C, ny, nx), normalized by :class:`flarelib.data.Normalizer`
(``frames`` stacked frames, oldest first). A forecast model may also read GOES inputs
``aux`` (B, aux_inputs) (:attr:`flarelib.data.InputOptions.goes`), joined to the
pooled image features before the head; ``use_images=False`` makes the GOES-only model that
the CNN+GOES model must beat to show that the images add information. The model
is handed the data's :class:`flarelib.data.TrainingStats` (``stats``, linked in by the CLI
from the data module; or :meth:`FlareNet.adopt`): the normalizer fitted on the training
block goes into the model's buffers, so a checkpoint carries it and loads with
``weights_only=True`` (:func:`load_flarenet`).

Command line (LightningCLI)::

    flarelib train fit --config configs/small.yaml        # or: python -m flarelib.flarenet fit ...
    flarelib train fit --config configs/default.yaml --data.target lead60min_window1440min
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as L
import torch
import xarray as xr
from pytorch_lightning.cli import LightningCLI
from torch import nn

from flarelib.data import MODEL_LINKS, FlareDataModule, Normalizer, TrainingStats, model_setting
from flarelib.goes import EVENT_CLASSES, FLARE_CLASS_THRESHOLDS
from flarelib.paths import config_path, default_runs_dir
from flarelib.prep import DEFAULT_CHANNELS
from flarelib.runner import run_command
from flarelib.settings import merge_settings

#: log10 W/m² thresholds of the optional class head (>= C1 and >= M1).
CLASS_HEAD_THRESHOLDS = {c: float(np.log10(FLARE_CLASS_THRESHOLDS[c])) for c in EVENT_CLASSES}
#: Normalization layers after each conv.
NORMS = {"group": lambda width: nn.GroupNorm(min(8, width), width), "batch": nn.BatchNorm2d, "none": None}
POOLS = ("max", "avg", "lse")


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
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if not self.widths:
            raise ValueError("FlareNet needs at least one conv block (widths)")
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
#: FlareNet's settings outside a group: what the data dictate (:data:`flarelib.data.MODEL_LINKS`) and the heads.
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
            (default: :data:`flarelib.prep.DEFAULT_CHANNELS`).
        target: the target name (``now`` or a forecast label); linked from the data module.
        class_head: also predict P(flux >= C1) and P(flux >= M1) (logits, BCE loss).
        normalization: the :class:`Normalizer` transform.
        frames: stacked input frames per sample; linked from the data module.
        frame_step: the spacing of those frames, a duration (``"1h"``); linked from the data module and kept in
            the checkpoint, so that the model is explained on frames as far apart as it was trained on.
        aux_inputs: number of GOES inputs joined to the image features; linked from the data module.
        use_images: ``False`` ignores the images (the GOES-only reference model; needs ``aux_inputs``).
        architecture: :class:`Architecture`; optimization: :class:`Optimization`.
        stats: the training data's :class:`flarelib.data.TrainingStats` (normalizer and mean target), or a
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


# --------------------------------------------------------------------------- CLI and helpers

def training_stats_of(dm: FlareDataModule) -> Callable[[], TrainingStats]:
    """What the CLI links into the model: the data module's :meth:`~flarelib.data.FlareDataModule.training_stats`,
    called when fitting starts (so a bad data setting fails there, as the data module's own error)."""
    return dm.training_stats


class FlareCLI(LightningCLI):
    """LightningCLI with the data module's settings linked into the model (:data:`flarelib.data.MODEL_LINKS`,
    the one data -> model contract) and, once the data module exists (``apply_on="instantiate"``), its
    training statistics."""

    def add_arguments_to_parser(self, parser) -> None:
        for name, source in MODEL_LINKS.items():
            parser.link_arguments(f"data.{source}", f"model.{name}", compute_fn=functools.partial(model_setting, name))
        parser.link_arguments("data", "model.stats", compute_fn=training_stats_of, apply_on="instantiate")


def make_cli(args: list[str] | None = None, *, run: bool = True) -> FlareCLI:
    """The LightningCLI of FlareNet + FlareDataModule (``args=None`` reads ``sys.argv``).

    ``sys.argv`` is never changed: DDP launchers re-run it in their child processes. Given ``args``,
    LightningCLI parses only those; its warning that ``sys.argv`` holds arguments too (a notebook kernel's,
    pytest's, or ``flarelib train``'s own) is silenced, with the rest of :func:`lightning_noise_filtered`.
    """
    with lightning_noise_filtered(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended to run from within")
        return FlareCLI(FlareNet, FlareDataModule, args=args, run=run, save_config_kwargs={"overwrite": True})


class _DropAdvert(logging.Filter):
    """Drop Lightning's "try installing litlogger" advert, printed at every Trainer start (not a diagnostic)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


@contextlib.contextmanager
def lightning_noise_filtered():
    """While training: without Lightning's litlogger advert and the torch deprecation that Lightning's own pytree
    helper triggers (``isinstance(treespec, LeafSpec)``, torch 2.13; nothing a user can act on). Nothing is
    filtered outside this block."""
    advert, chatty = _DropAdvert(), logging.getLogger("pytorch_lightning.utilities.rank_zero")
    chatty.addFilter(advert)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
            yield
    finally:
        chatty.removeFilter(advert)


NOTEBOOK_TARGETS = {"nowcast": "now", "forecast": "lead60min_window1440min"}  #: what notebooks 04-08 train and use
#: The reference model trained beside the forecast: the same network reading only the GOES flux known at t
#: (``goes_inputs``), without the images; a forecast must beat it to show that the images add information.
GOES_ONLY = "goes-only"
GOES_ONLY_NAME = "GOES-only model"
GOES_ONLY_INPUTS = ("now", "6h", "24h")


def run_dir(size: str, target: str, root: str | Path | None = None, *, cube: str | Path | None = None,
            variant: str | None = None) -> Path:
    """Where a notebook training run of ``size`` (small/default) for ``target`` writes its logs and checkpoints;
    runs on another ``cube`` (a catalog entry or a ``.zarr`` path) go to a folder named after it, and a
    ``variant`` (:data:`GOES_ONLY`) beside its target's."""
    folder = size if cube is None else f"{size}-{Path(str(cube)).stem}"
    return Path(root or default_runs_dir()) / folder / (target if variant is None else f"{target}-{variant}")


def train(config: str | Path, *, out_dir: str | Path, overrides: list[str] | None = None):
    """Fit FlareNet from a YAML config (as ``python -m flarelib.flarenet fit`` does) and test it.

    ``overrides`` are CLI-style arguments such as ``["--data.target=lead60min_window1440min"]``.
    Logs (``metrics.csv``) and checkpoints go under ``out_dir``. Returns the LightningCLI
    object (``.model``, ``.datamodule``, ``.trainer``). Lightning's progress bar shows unless
    ``$FLARELIB_PROGRESS`` is ``0`` (the suite sets it: papermill logs stay clean).
    """
    out_dir = Path(out_dir)
    progress = os.environ.get("FLARELIB_PROGRESS", "1") not in ("0", "")
    args = ["--config", str(config), f"--trainer.default_root_dir={out_dir}",
            f"--trainer.logger.init_args.save_dir={out_dir}", f"--trainer.enable_progress_bar={str(progress).lower()}",
            *(overrides or [])]
    with quiet_lightning():
        cli = make_cli(args, run=False)
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return cli


@contextlib.contextmanager
def quiet_lightning():
    """Lightning's per-run information lines ("Seed set to", "GPU available", "fit stopped") at WARNING only:
    notebooks and experiments train many models and say what matters themselves (and
    :func:`lightning_noise_filtered`)."""
    chatty = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    level = chatty.level
    chatty.setLevel(logging.WARNING)
    try:
        with lightning_noise_filtered():
            yield
    finally:
        chatty.setLevel(level)


def train_for_notebook(size: str, target: str, *, config: str | Path | None = None,
                       cube: str | Path | None = None, variant: str | None = None):
    """Notebook 04's training of ``target``: :func:`flarelib.paths.config_path` (``config``), on ``cube`` if given
    (a catalog entry or a ``.zarr`` path; default: the config's), into :func:`run_dir`; ``variant=GOES_ONLY``
    trains the GOES-only reference model."""
    if variant not in (None, GOES_ONLY):
        raise ValueError(f"variant {variant!r} is not None or {GOES_ONLY!r}")
    overrides = [f"--data.target={target}"] + ([f"--data.cube={cube}"] if cube is not None else [])
    if variant == GOES_ONLY:
        overrides += ["--model.use_images=false", "--data.inputs.images=false",
                      f"--data.inputs.goes=[{', '.join(GOES_ONLY_INPUTS)}]"]
    return train(config_path(size, config), out_dir=run_dir(size, target, cube=cube, variant=variant),
                 overrides=overrides)


def train_references(size: str, *, config: str | Path | None = None, cube: str | Path | None = None) -> dict:
    """The GOES-only reference model of every notebook forecast target: ``{target: LightningCLI}``."""
    return {target: train_for_notebook(size, target, config=config, cube=cube, variant=GOES_ONLY)
            for target in NOTEBOOK_TARGETS.values() if target != "now"}


def best_checkpoint(out_dir: str | Path) -> Path:
    """The checkpoint ModelCheckpoint kept under ``out_dir`` (the best by validation loss)."""
    found = sorted(Path(out_dir).rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    best = [p for p in found if p.name != "last.ckpt"]
    if not best:
        raise FileNotFoundError(f"no checkpoint under {out_dir}; train first (notebook 04)")
    return best[-1]


def ensure_trained(size: str, target: str, *, config: str | Path | None = None,
                   cube: str | Path | None = None, variant: str | None = None) -> Path:
    """The best checkpoint of notebook 04's run for ``size`` and ``target`` (on ``cube``; ``variant``), training it
    first if missing."""
    out = run_dir(size, target, cube=cube, variant=variant)
    try:
        return best_checkpoint(out)
    except FileNotFoundError:
        train_for_notebook(size, target, config=config, cube=cube, variant=variant)
        return best_checkpoint(out)


def metrics_frame(out_dir: str | Path) -> pd.DataFrame:
    """The CSVLogger's ``metrics.csv`` of the latest run under ``out_dir``, one row per epoch."""
    files = sorted(Path(out_dir).rglob("metrics.csv"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise FileNotFoundError(f"no metrics.csv under {out_dir}")
    table = pd.read_csv(files[-1])
    return table.groupby("epoch").mean(numeric_only=True).drop(columns=["step"], errors="ignore")


class CheckpointError(ValueError):
    """A checkpoint file that is not a usable FlareNet checkpoint (the message names the file and why)."""


def _read_checkpoint(path: str | Path, map_location: str = "cpu") -> dict:
    """The checkpoint's dict, checked: readable with ``weights_only=True``, a Lightning checkpoint (not a bare
    state dict) with FlareNet's hyperparameters, and finite weights."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file {path}; train first (notebook 04 or python -m flarelib.flarenet "
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
    return state


def load_flarenet(path: str | Path, map_location: str = "cpu") -> FlareNet:
    """Load a checkpoint safely: ``weights_only=True`` (no arbitrary pickled objects run), checked first
    (:class:`CheckpointError` names the file for an empty, truncated, bare or non-finite one)."""
    state = _read_checkpoint(path, map_location)
    settings = {k: v for k, v in state["hyper_parameters"].items() if not k.startswith("_")}
    model = FlareNet.from_settings(settings)  # grouped, or flat as older checkpoints saved them
    model.load_state_dict(state["state_dict"])
    return model.to(map_location).eval()


def open_run(size: str, target: str, *, config: str | Path | None = None,
             cube: str | Path | None = None) -> tuple[FlareDataModule, FlareNet, Path]:
    """Notebook 04's run of ``size`` for ``target`` (on ``cube``; trained first if missing):
    ``(data module, model, checkpoint)``.

    The model is in eval mode; the data module is set up with the checkpoint's settings and
    the normalizer the model carries.
    """
    checkpoint = ensure_trained(size, target, config=config, cube=cube)
    model = load_flarenet(checkpoint)
    # cache="none": explaining and scoring read a few thousand steps, not worth caching the whole cube
    return load_datamodule(checkpoint, model, cache="none"), model, checkpoint


def load_datamodule(path: str | Path, model: FlareNet | None = None, **overrides) -> FlareDataModule:
    """The data module a checkpoint was trained with (its saved settings), using the model's normalizer.

    ``overrides`` replace saved settings, e.g. ``cache="none"`` or ``num_workers=0``.
    """
    state = _read_checkpoint(path)
    settings = {k: v for k, v in state.get("datamodule_hyper_parameters", {}).items() if not k.startswith("_")}
    if not settings:
        raise ValueError(f"{path} has no data-module settings (was it trained with FlareDataModule?)")
    dm = FlareDataModule.from_settings(settings, overrides)
    model = model or load_flarenet(path)
    dm.normalizer = model.normalizer
    dm.setup()
    return dm


def reference_predictions(size: str, dm: FlareDataModule, *, config: str | Path | None = None,
                          cube: str | Path | None = None) -> dict[str, tuple[xr.Dataset, xr.Dataset]]:
    """``{name: (val, test predictions)}`` of the reference models of ``dm``'s target on ``dm``'s steps: the
    GOES-only model for a forecast (trained first if missing; NaN on a step where it has no GOES input), nothing
    for a nowcast. For :func:`flarelib.metrics.collect_forecasts` (``others``)."""
    if dm.plan.target.name == "now":
        return {}
    checkpoint = ensure_trained(size, dm.plan.target.name, config=config, cube=cube, variant=GOES_ONLY)
    model = load_flarenet(checkpoint)
    own = load_datamodule(checkpoint, model, cache="none")  # with its GOES inputs
    out = []
    for split in ("val", "test"):
        pred = predict(model, own, split).swap_dims({"time": "time_index"}).drop_vars("time")
        steps = dm.plan.index[split]
        aligned = pred.reindex(time_index=steps).assign_coords(time=("time_index", dm.plan.times[steps]))
        out.append(aligned.swap_dims({"time_index": "time"}))
    return {GOES_ONLY_NAME: tuple(out)}


@torch.no_grad()
def predict(model: FlareNet, dm: FlareDataModule, split: str = "test") -> xr.Dataset:
    """Predictions of ``model`` on one split: a Dataset on the cube's ``time`` (log10 W/m²).

    Runs in plain eval mode on the model's device (no Trainer needed).
    """
    dm.setup()
    model.eval()
    device = model.device
    preds, trues, index, probs = [], [], [], []
    for batch in dm.loader(split):
        x, y, _, t, aux = dm.gather(batch)
        features = model.embed(x.to(device), aux.to(device))
        preds.append(model.regressor(features).squeeze(-1).float().cpu())
        if model.classifier is not None:
            probs.append(torch.sigmoid(model.classifier(features).float()).cpu())
        trues.append(y)
        index.append(t)
    t = torch.cat(index).numpy()
    ds = xr.Dataset(
        {"pred": ("time", torch.cat(preds).numpy(), {"units": "log10 W m-2"}),
         "true": ("time", torch.cat(trues).numpy(), {"units": "log10 W m-2"})},
        coords={"time": dm.plan.times[t], "time_index": ("time", t)},
        attrs={"split": split, "target": dm.plan.target.name, "synthetic": dm.synthetic,
               "cube": dm.cube_attrs.get("name", str(dm.store_path))},
    )
    if probs:
        p = torch.cat(probs).numpy()
        for k, name in enumerate(CLASS_HEAD_THRESHOLDS):
            ds[f"prob_{name}"] = ("time", p[:, k], {"long_name": f"P(flux >= {name}1)"})
    return ds


def main(argv: list[str] | None = None) -> int:
    """``python -m flarelib.flarenet fit --config ...`` / ``flarelib train fit --config ...`` (LightningCLI), run by
    :func:`flarelib.runner.run_command` (a failure is one line, status 1; ``--debug`` shows the traceback).

    Only the arguments after the command are parsed; ``sys.argv`` stays as it is, because DDP launchers re-run it
    in their child processes (which then parse the same arguments again)."""
    def fit(args: list[str]) -> None:
        make_cli(args)

    return run_command(fit, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
