"""Training runs: the LightningCLI command (``flarelib train``), training for the notebooks
(:func:`ensure_trained`, :func:`open_run`, keyed run folders under ``build/runs/``), the reference models, and
predictions on a split.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import jsonargparse
import pandas as pd
import pytorch_lightning as L
import torch
import xarray as xr
import yaml
from pytorch_lightning.callbacks import Timer
from pytorch_lightning.cli import LightningCLI

from flarelib.cube.align import forecast_coords
from flarelib.cube.store import read_attrs
from flarelib.learn.data import (
    MODEL_LINKS,
    NOWCAST,
    DataConfigError,
    FlareDataModule,
    TrainingStats,
    model_setting,
    model_settings,
    open_source,
    parse_target,
)
from flarelib.learn.model import CLASS_HEAD_THRESHOLDS, CheckpointError, FlareNet, load_flarenet, read_checkpoint
from flarelib.paths import config_path, default_runs_dir, read_config
from flarelib.runner import DropMessages, run_command
from flarelib.settings import ConfigError, check_yaml

log = logging.getLogger(__name__)


def training_stats_of(dm: FlareDataModule) -> Callable[[], TrainingStats]:
    """What the CLI links into the model: the data module's :meth:`~flarelib.learn.data.FlareDataModule.training_stats`,
    called when fitting starts (so a bad data setting fails there, as the data module's own error)."""
    return dm.training_stats


#: The jsonargparse parser mode of the training CLI: its YAML loader, with every YAML it reads (a ``--config`` file,
#: a value) checked first by :func:`flarelib.settings.check_yaml` (a key given twice is refused, not the last kept).
STRICT_YAML_MODE = "flarelib_yaml"
_JSONARGPARSE_YAML = jsonargparse.get_loader("yaml")


def _strict_yaml_load(value: str, path: str | os.PathLike = ""):
    """jsonargparse's YAML loader after :func:`~flarelib.settings.check_yaml` (``path``: the file, for the message;
    jsonargparse passes its base name)."""
    check_yaml(value, str(path) or "<command-line value>")
    return _JSONARGPARSE_YAML(value)


jsonargparse.set_loader(STRICT_YAML_MODE, _strict_yaml_load, exceptions=(yaml.YAMLError, ConfigError))


def check_config_files(args: list[str]) -> None:
    """Check the YAML files given to the CLI with ``--config``/``-c`` before LightningCLI reads them: a syntax error
    or a key given twice raises :class:`~flarelib.settings.ConfigError` naming ``file:line:col`` (the full path;
    the CLI's own loader also checks, but knows only the file's base name)."""
    for i, arg in enumerate(args):
        if arg in ("--config", "-c") and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--config="):
            value = arg.partition("=")[2]
        else:
            continue
        path = Path(value)
        if path.is_file():
            check_yaml(path.read_text(), path)


def check_training_ends(trainer: L.Trainer, *, source: str = "trainer.max_epochs") -> None:
    """Refuse a fit that would never end: ``max_epochs=-1`` is Lightning's "no epoch limit", so without
    ``max_steps``, ``max_time`` or an :class:`~pytorch_lightning.callbacks.EarlyStopping` callback training runs
    until killed. With early stopping it is allowed, and a warning says that only early stopping (or Ctrl-C) ends
    it; with ``max_steps`` or ``max_time`` those bound it."""
    if trainer.max_epochs is None or trainer.max_epochs >= 0:
        return
    if (trainer.max_steps or -1) > 0 or any(isinstance(cb, Timer) for cb in trainer.callbacks):
        return  # bounded by steps or time
    if trainer.early_stopping_callbacks:
        monitors = ", ".join(cb.monitor for cb in trainer.early_stopping_callbacks)
        log.warning("%s=%s: no epoch limit; training ends only when early stopping on %s stops it (or Ctrl-C)",
                    source, trainer.max_epochs, monitors)
        return
    raise ConfigError(f"{source}={trainer.max_epochs} trains without end (Lightning's -1 means no epoch limit) and "
                      "nothing else stops it: set a finite number of epochs (e.g. --trainer.max_epochs=4), or bound "
                      "the run with --trainer.max_steps / --trainer.max_time, or add an EarlyStopping callback")


def input_mismatch(hparams: Mapping, dm: FlareDataModule) -> tuple[str, object, object] | None:
    """The first model input setting (:data:`flarelib.learn.data.MODEL_LINKS`: channels, target, normalization,
    frames, frame spacing, GOES inputs) where a model's hyperparameters ``hparams`` differ from what data module
    ``dm`` gives: ``(name, the model's value, the data module's)``, or ``None`` when the model reads ``dm``'s
    inputs. A setting the hyperparameters lack (an older checkpoint) is not compared."""
    for name, value in model_settings(dm).items():
        if name not in hparams:
            continue
        found = hparams[name]
        if name == "frame_step":
            if int(hparams.get("frames", 1)) <= 1 or pd.Timedelta(str(found)) == pd.Timedelta(str(value)):
                continue
        elif name == "channels":
            if [int(c) for c in found] == list(value):
                continue
        elif found == value:
            continue
        return name, found, value
    return None


def check_checkpoint_reads_data(checkpoint: str | Path, hparams: Mapping, dm: FlareDataModule, *,
                                fix: Callable[[str, object], str]) -> None:
    """Refuse a checkpoint (its model hyperparameters ``hparams``) whose inputs are not data module ``dm``'s
    (:func:`input_mismatch`) before any batch reaches it, else a bare torch shape error: one line
    :class:`~flarelib.learn.model.CheckpointError` naming the file, the setting, both values and ``fix(data
    setting, the checkpoint's value)``."""
    mismatch = input_mismatch(hparams, dm)
    if mismatch is not None:
        name, found, value = mismatch
        source = f"data.{MODEL_LINKS[name]}"
        raise CheckpointError(f"{checkpoint} was trained with {name}={found!r}, but the data module gives "
                              f"{name}={value!r} ({source}): {fix(source, found)}")


class FlareCLI(LightningCLI):
    """LightningCLI with the data module's settings linked into the model (:data:`flarelib.learn.data.MODEL_LINKS`,
    the one data -> model contract) and, once the data module exists (``apply_on="instantiate"``), its
    training statistics.

    Checked before training: every YAML it reads (:data:`STRICT_YAML_MODE`: a key given twice is refused), a
    ``--ckpt_path`` checkpoint (:func:`~flarelib.learn.model.read_checkpoint`: its hyperparameters, before the
    model is built from them), the model's inputs against the data module's (:func:`check_checkpoint_reads_data`),
    and that fitting ends (:func:`check_training_ends`)."""

    def init_parser(self, **kwargs):
        kwargs.setdefault("parser_mode", STRICT_YAML_MODE)
        return super().init_parser(**kwargs)

    def add_arguments_to_parser(self, parser) -> None:
        for name, source in MODEL_LINKS.items():
            parser.link_arguments(f"data.{source}", f"model.{name}", compute_fn=functools.partial(model_setting, name))
        parser.link_arguments("data", "model.stats", compute_fn=training_stats_of, apply_on="instantiate")

    def _ckpt_path(self) -> str | None:
        subcommand = self.config.get("subcommand")
        return self.config[subcommand].get("ckpt_path") if subcommand else None

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        ckpt_path = self._ckpt_path()
        if ckpt_path:  # checked before LightningCLI builds the model from its hyperparameters
            read_checkpoint(ckpt_path)

    def after_instantiate_classes(self) -> None:
        super().after_instantiate_classes()
        ckpt_path = self._ckpt_path()
        if ckpt_path:  # resuming or scoring a checkpoint: its inputs must be this data module's
            check_checkpoint_reads_data(
                ckpt_path, read_checkpoint(ckpt_path)["hyper_parameters"], self.datamodule,
                fix=lambda source, found: f"give {source} the checkpoint's setting ({found!r}"
                                          f"{' GOES inputs' if source.endswith('goes') else ''}), or train anew "
                                          "without --ckpt_path")
        if self.subcommand in (None, "fit"):
            check_training_ends(self.trainer)

    def before_fit(self) -> None:
        """Before ``fit``: what the cube supports, in one line, or a refusal naming why no model can learn from it
        (:func:`flarelib.learn.data.check_trainable`)."""
        print(self.datamodule.check_trainable(), flush=True)


def make_cli(args: list[str] | None = None, *, run: bool = True) -> FlareCLI:
    """The LightningCLI of FlareNet + FlareDataModule (``args=None`` reads ``sys.argv``).

    ``sys.argv`` is never changed: DDP launchers re-run it in their child processes. Given ``args``,
    LightningCLI parses only those; its warning that ``sys.argv`` holds arguments too (a notebook kernel's,
    pytest's, or ``flarelib train``'s own) is silenced, with the rest of :func:`lightning_noise_filtered`.
    """
    check_config_files(list(sys.argv[1:] if args is None else args))
    with lightning_noise_filtered(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended to run from within")
        return FlareCLI(FlareNet, FlareDataModule, args=args, run=run, save_config_kwargs={"overwrite": True})


@contextlib.contextmanager
def lightning_noise_filtered():
    """While training: without Lightning's litlogger advert and the torch deprecation that Lightning's own pytree
    helper triggers (``isinstance(treespec, LeafSpec)``, torch 2.13; nothing a user can act on). Nothing is
    filtered outside this block."""
    advert, chatty = DropMessages("litlogger"), logging.getLogger("pytorch_lightning.utilities.rank_zero")
    chatty.addFilter(advert)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
            yield
    finally:
        chatty.removeFilter(advert)


NOTEBOOK_TARGETS = {"nowcast": "now", "forecast": "lead60min_window1440min"}  #: what notebooks 04-08 train and use


def notebook_targets(targets: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``TARGETS`` parameter of notebooks 03-05: ``{"nowcast": ..., "forecast": ...}``, each ``"now"``, a
    forecast label (``lead60min_window1440min``) or ``"LEAD/WINDOW"`` (``"15min/1h"``), returned as the cube's
    labels (``lead15min_window60min``: run folders are named by them). ``None``: :data:`NOTEBOOK_TARGETS`."""
    if targets is None:
        return dict(NOTEBOOK_TARGETS)
    if not isinstance(targets, Mapping) or set(targets) != set(NOTEBOOK_TARGETS):
        raise DataConfigError(f"TARGETS={targets!r}: give a mapping with the keys {sorted(NOTEBOOK_TARGETS)}, e.g. "
                              "{'nowcast': 'now', 'forecast': '1h/24h'} (papermill: -y \"TARGETS: {...}\")")
    out = {}
    for kind, target in targets.items():
        parsed = parse_target(str(target))
        if kind == "forecast" and parsed is None:
            raise DataConfigError(f"TARGETS['forecast']={target!r}: a forecast needs a lead and a window, e.g. '1h/6h'")
        out[kind] = NOWCAST if parsed is None else str(forecast_coords([parsed])["forecast"][1][0])
    return {kind: out[kind] for kind in NOTEBOOK_TARGETS}


#: The reference model trained beside the forecast: the same network reading only the GOES flux known at t
#: (``goes_inputs``), without the images; a forecast must beat it to show that the images add information.
GOES_ONLY = "goes-only"


GOES_ONLY_NAME = "GOES-only model"


GOES_ONLY_INPUTS = ("now", "6h", "24h")


def cube_identity(size: str, *, config: str | Path | None = None, cube: str | Path | None = None) -> str:
    """``"<name>-<fingerprint>"`` of the cube a notebook run of ``size`` trains on: ``cube`` (a catalog entry or a
    ``.zarr`` path), else the config's ``data.cube``; built first if missing. The fingerprint (the first 12 hex
    digits of the store's ``input_fingerprint``: its inputs and parameters) changes whenever the cube's content
    does, whatever its file name."""
    name = cube if cube is not None else (read_config(config_path(size, config)).get("data") or {}).get("cube")
    if name is None:
        raise ValueError(f"{config_path(size, config)} names no data.cube; pass cube=")
    fingerprint = str(open_source(name).attrs.get("input_fingerprint") or "")
    if not fingerprint:
        raise ValueError(f"cube {name} records no input_fingerprint (not written by flarelib?): rebuild it with "
                         "`flarelib catalog build`")
    return f"{Path(str(name)).stem}-{fingerprint[:12]}"


def run_dir(size: str, target: str, root: str | Path | None = None, *, cube: str | Path | None = None,
            variant: str | None = None, config: str | Path | None = None) -> Path:
    """Where a notebook training run of ``size`` (small/default) for ``target`` writes its logs and checkpoints:
    ``<runs>/<size>-<cube identity>/<target>`` (:func:`cube_identity`: a cube rebuilt with other data, or another
    cube of the same name, gets its own folder and its own training), a ``variant`` (:data:`GOES_ONLY`) beside
    its target's."""
    folder = f"{size}-{cube_identity(size, config=config, cube=cube)}"
    return Path(root or default_runs_dir()) / folder / (target if variant is None else f"{target}-{variant}")


def train(config: str | Path, *, out_dir: str | Path, overrides: list[str] | None = None):
    """Fit FlareNet from a YAML config (as ``flarelib train fit`` does) and test it, after
    :meth:`FlareCLI.before_fit`'s check of what the cube supports (a refusal names the cause).

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
        cli.before_fit()
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return cli


#: Loggers whose INFO lines :func:`quiet_lightning` holds back: Lightning's run information, and "Seed set to"
#: (``lightning_fabric``'s ``seed_everything``, which LightningCLI calls).
CHATTY_LOGGERS = ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.seed")


@contextlib.contextmanager
def quiet_lightning():
    """Lightning's per-run information lines ("Seed set to", "GPU available", "fit stopped") at WARNING only:
    notebooks and experiments train many models and say what matters themselves (and
    :func:`lightning_noise_filtered`)."""
    chatty = [logging.getLogger(name) for name in CHATTY_LOGGERS]
    levels = [logger.level for logger in chatty]
    for logger in chatty:
        logger.setLevel(logging.WARNING)
    try:
        with lightning_noise_filtered():
            yield
    finally:
        for logger, level in zip(chatty, levels):
            logger.setLevel(level)


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
    return train(config_path(size, config), out_dir=run_dir(size, target, cube=cube, variant=variant, config=config),
                 overrides=overrides)


def train_references(size: str, *, config: str | Path | None = None, cube: str | Path | None = None,
                     targets: Mapping[str, str] | None = None) -> dict:
    """The GOES-only reference model of every notebook forecast target (``targets``, default
    :data:`NOTEBOOK_TARGETS`): ``{target: LightningCLI}``. A cube that cannot train one (too short for its 24 h
    GOES history, ...) gets none, with a logged warning naming the cause."""
    out = {}
    for target in notebook_targets(targets).values():
        if target == NOWCAST:
            continue
        try:
            out[target] = train_for_notebook(size, target, config=config, cube=cube, variant=GOES_ONLY)
        except DataConfigError as err:
            log.warning("no %s for %s on this cube: %s", GOES_ONLY_NAME, target, err)
    return out


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
    out = run_dir(size, target, cube=cube, variant=variant, config=config)
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


def open_run(size: str, target: str, *, config: str | Path | None = None,
             cube: str | Path | None = None) -> tuple[FlareDataModule, FlareNet, Path]:
    """Notebook 04's run of ``size`` for ``target`` (on ``cube``; trained first if missing):
    ``(data module, model, checkpoint)``.

    The model is in eval mode; the data module is set up with the checkpoint's settings and
    the normalizer the model carries.
    """
    checkpoint = ensure_trained(size, target, config=config, cube=cube)
    model = load_flarenet(checkpoint)
    # cache="none": explaining and scoring read a few thousand steps, not worth caching the whole cube; the
    # cube the caller named, not only the one the checkpoint recorded (load_datamodule checks they are the same)
    opened = {"cube": str(cube)} if cube is not None else {}
    return load_datamodule(checkpoint, model, cache="none", **opened), model, checkpoint


def load_datamodule(path: str | Path, model: FlareNet | None = None, **overrides) -> FlareDataModule:
    """The data module a checkpoint was trained with (its saved settings), using the model's normalizer.

    ``overrides`` replace saved settings, e.g. ``cache="none"``, ``num_workers=0`` or ``cube=`` (open that cube).
    The cube opened must be the one the model was trained on: a checkpoint records its cube's fingerprint, and
    another fingerprint (another cube, or the same path rebuilt with other data) is refused, naming both. The data
    module's inputs must be the model's (frames, channels, GOES inputs, ...: :func:`check_checkpoint_reads_data`),
    checked before the cube is opened: :class:`~flarelib.learn.model.CheckpointError` names the file, the setting
    and both values.
    """
    state = read_checkpoint(path)
    settings = {k: v for k, v in state.get("datamodule_hyper_parameters", {}).items() if not k.startswith("_")}
    if not settings:
        raise ValueError(f"{path} has no data-module settings (was it trained with FlareDataModule?)")
    dm = FlareDataModule.from_settings(settings, overrides)
    model = model or load_flarenet(path)
    changed = set(overrides) | _leaf_names(overrides)

    def fix(source: str, found) -> str:
        field = source.rpartition(".")[2]
        if field in changed:
            return f"drop the change {field}= to use the checkpoint's ({found!r}), or train a model on these settings"
        return ("the file's data settings disagree with its model's (edited or damaged?): pick another checkpoint "
                "or train again")

    check_checkpoint_reads_data(path, dict(model.hparams), dm, fix=fix)
    trained_on = (state.get(type(dm).__qualname__) or {}).get("cube_fingerprint")
    if trained_on is not None:
        dm.prepare_data()
        found = str(read_attrs(dm.store_path).get("input_fingerprint"))
        if found != trained_on:
            raise CheckpointError(f"{path} was trained on a cube with fingerprint {trained_on[:12]}, but "
                                  f"{dm.store_path} has {found[:12]} (another cube, or rebuilt with other data): "
                                  "train a model on this cube (notebook 04) instead of scoring that one")
    dm.normalizer = model.normalizer
    dm.setup()
    return dm


def _leaf_names(settings: dict) -> set[str]:
    """The field names inside grouped settings (``inputs={"frames": 2}`` -> ``{"frames"}``)."""
    names = set()
    for value in settings.values():
        if isinstance(value, dict):
            names |= set(value) | _leaf_names(value)
    return names


def reference_predictions(size: str, dm: FlareDataModule, *, config: str | Path | None = None,
                          cube: str | Path | None = None) -> dict[str, tuple[xr.Dataset, xr.Dataset]]:
    """``{name: (val, test predictions)}`` of the reference models of ``dm``'s target on ``dm``'s steps: the
    GOES-only model for a forecast (trained first if missing; NaN on a step where it has no GOES input), nothing
    for a nowcast or where the cube cannot train it (a logged warning names the cause).
    For :func:`flarelib.evaluate.collect_forecasts` (``others``)."""
    if dm.plan.target.name == "now":
        return {}
    try:
        checkpoint = ensure_trained(size, dm.plan.target.name, config=config, cube=cube, variant=GOES_ONLY)
    except DataConfigError as err:  # a cube too short for its GOES history inputs, ...: scored without it
        log.warning("no %s for %s on this cube: %s", GOES_ONLY_NAME, dm.plan.target.name, err)
        return {}
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
    """``flarelib train fit --config ...`` / ``flarelib train fit --config ...`` (LightningCLI), run by
    :func:`flarelib.runner.run_command` (a failure is one line, status 1; ``--debug`` shows the traceback).

    Only the arguments after the command are parsed; ``sys.argv`` stays as it is, because DDP launchers re-run it
    in their child processes (which then parse the same arguments again)."""
    def fit(args: list[str]) -> None:
        make_cli(args)

    return run_command(fit, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
