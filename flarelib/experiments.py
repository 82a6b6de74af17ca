"""Experiments stage: model variants compared on validation, and the talk's lessons measured.

Every run here trains FlareNet on a :class:`flarelib.learn.data.FlareDataModule` whose training steps
were chosen by the experiment (:meth:`~flarelib.learn.data.FlareDataModule.use_split`, normalizer refitted
on them), with early stopping on the validation loss (:class:`Recipe`), and is scored by the
evaluation protocol of :mod:`flarelib.evaluate` (validation-chosen probability thresholds,
day-block bootstrap 90 % intervals, every baseline on the same samples).

* :func:`compare_models`: model variants (pooling, frame history, GOES inputs, norm layers, ...)
  scored on the **validation** block, so the test block stays for the final numbers.
* :func:`long_vs_big`: "data shouldn't only be big, it should also be long": at a fixed number of
  training samples, a short densely sampled span against longer sparsely sampled ones, and the
  learning curve of skill against span at full cadence. Same validation and test blocks for all.
* :func:`imbalance`: class imbalance: no weighting, loss weighting, a weighted sampler (each at
  the probability threshold 0.5) and threshold moving (the threshold chosen on validation).
* :func:`selection`: training data selection: FlareNet's original sampling (a frame 12 h before each
  >= C1 flare peak plus as many random quiet steps), split at random as in the original, against the
  same sampling split in time blocks and scored on the untouched blocked test block.
* :func:`batchnorm_diagnosis`: why BatchNorm made evaluation-mode outputs swing: the running
  statistics against the statistics of each evaluation batch, per block.

Results are tables (pandas) with the column names of ``build/results/*.csv``;
:func:`write_result` writes them. ``python -m flarelib.experiments`` runs the full versions
(``make experiments``).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as L
import torch
import xarray as xr
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from tqdm.auto import tqdm

from flarelib import evaluate
from flarelib.cube.goes import FLARE_CLASS_THRESHOLDS
from flarelib.learn import GOES_ONLY_INPUTS, GOES_ONLY_NAME, FlareNet, load_flarenet, predict, quiet_lightning
from flarelib.learn.data import FlareDataModule, model_settings
from flarelib.learn.model import CheckpointError, read_checkpoint
from flarelib.paths import CONFIG_DIR, PROJECT_ROOT, read_config, results_dir

log = logging.getLogger(__name__)

#: Seeds of the full experiments (``make experiments``); the demo runs the first.
SEEDS = (2017, 2018, 2019)
#: The class whose TSS the lessons report (>= M1).
LETTER = "M"
#: Experiments' nowcast and forecast targets (as notebooks 04-08).
NOWCAST, FORECAST = "now", "lead60min_window1440min"


@dataclass(frozen=True)
class Recipe:
    """How one run trains: AdamW with a cosine schedule over ``max_epochs`` (the model's), stopped early
    when the validation loss has not improved for ``patience`` epochs; the best epoch is kept."""

    max_epochs: int = 12
    patience: int = 3
    val_every: int = 1  #: the lessons validate (early stopping, thresholds) on every k-th validation step


@dataclass(frozen=True)
class Variant:
    """A model variant: a name and its model and data settings on top of a config's."""

    name: str
    model: Mapping = field(default_factory=dict)
    data: Mapping = field(default_factory=dict)


def config_settings(config: str | Path = CONFIG_DIR / "default.yaml") -> tuple[dict, dict]:
    """(model settings, data settings) of a YAML config, as its ``model:`` and ``data:`` sections
    (:func:`flarelib.paths.read_config`)."""
    settings = read_config(config)
    return dict(settings.get("model", {})), dict(settings.get("data", {}))


def data_module(data: Mapping, **changes) -> FlareDataModule:
    """A set-up data module from data settings (a config's ``data:``) with ``changes``; the frames are cached in
    memory (``cache="memory"``, falling back to Zarr reads above ``cache_max_gb``) because every experiment
    trains many models on them."""
    dm = FlareDataModule.from_settings(data, {"cache": "memory"}, changes)
    dm.setup()
    return dm


def fit(dm: FlareDataModule, model: Mapping, *, seed: int, recipe: Recipe = Recipe(),
        out_dir: str | Path | None = None, keep: str | Path | None = None) -> FlareNet:
    """Train FlareNet (``model`` settings) on ``dm``'s training steps; return the best-validation model (eval mode).

    The model reads what the data module gives (channels, target, frames, GOES inputs). ``keep``: a file to which
    the best checkpoint is copied (otherwise it is deleted with the run's temporary folder).
    """
    L.seed_everything(seed, workers=True, verbose=False)
    net = FlareNet.from_settings(model, model_settings(dm))
    net.adopt(dm.training_stats())
    with quiet_lightning():
        return _fit(net, dm, recipe, out_dir, keep)


def _fit(net: FlareNet, dm: FlareDataModule, recipe: Recipe, out_dir: str | Path | None,
         keep: str | Path | None = None) -> FlareNet:
    with tempfile.TemporaryDirectory(dir=out_dir) as folder:
        best = ModelCheckpoint(dirpath=folder, monitor="val_loss", mode="min", save_top_k=1)
        # CUDA has no deterministic max-pool backward: warn there instead of stopping
        trainer = L.Trainer(max_epochs=recipe.max_epochs, accelerator="auto", devices=1,
                            deterministic=True if not torch.cuda.is_available() else "warn",
                            logger=False, enable_progress_bar=False, enable_model_summary=False,
                            callbacks=[best, EarlyStopping(monitor="val_loss", patience=recipe.patience)])
        trainer.fit(net, datamodule=dm)
        best_net = load_flarenet(best.best_model_path)
        best_net.epochs_trained = trainer.current_epoch
        best_net.best_epoch = int(read_checkpoint(best.best_model_path).get("epoch", -1)) + 1
        if keep is not None:
            Path(keep).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(best.best_model_path, keep)
    return best_net


def forecasts(net: FlareNet, dm: FlareDataModule, *, test_split: str = "test") -> evaluate.Forecasts:
    """The model and every baseline on ``dm``'s validation and ``test_split`` steps (thresholds chosen on
    validation)."""
    return evaluate.collect_forecasts(predict(net, dm, "val"), predict(net, dm, test_split), dm)


def scores(f: evaluate.Forecasts, *, letter: str = LETTER, n_resamples: int = evaluate.N_RESAMPLES,
           predictors: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per predictor at class ``letter``: TSS with its 90 % interval, HSS, BSS and MAE_dex, on f's
    test split."""
    table = evaluate.skill_table(None, None, None, n_resamples=n_resamples, forecasts=f)
    table = table[table["threshold"] == evaluate.threshold_label(letter)].set_index("predictor")
    keep = list(predictors) if predictors is not None else list(table.index)
    return table.loc[keep, ["target", "n_samples", "n_events", "TSS", "TSS_lo", "TSS_hi", "HSS", "HSS_lo", "HSS_hi",
                            "BSS", "MAE_dex"]]


def on_validation(f: evaluate.Forecasts) -> evaluate.Forecasts:
    """``f`` scored on its validation split (model selection; thresholds are chosen there too, so these
    scores are optimistic, equally for every variant)."""
    return evaluate.Forecasts(f.dataset, f.synthetic, f.target, f.thresholds, f.base_rate, f.val, f.val,
                             dict(f.prob_threshold))


# --------------------------------------------------------------------------- model comparison

#: The variants :func:`compare_models` trains by default, on top of ``configs/default.yaml``.
VARIANTS = (
    Variant("max pool (config)"),
    Variant("avg pool", model={"pool": "avg"}),
    Variant("soft pool (log-mean-exp)", model={"pool": "lse"}),
    Variant("3 frames (t, t-1h, t-2h)", data={"frames": 3, "frame_step": "1h"}),
    Variant("GroupNorm", model={"norm": "group"}),
    Variant("BatchNorm", model={"norm": "batch"}),
)
#: Variants with GOES inputs (forecast targets only).
GOES_VARIANTS = (
    Variant("CNN + GOES history", data={"goes_inputs": ["now", "6h", "24h"]}),
    Variant("GOES history only", model={"use_images": False}, data={"goes_inputs": ["now", "6h", "24h"]}),
    Variant("soft pool + GOES history", model={"pool": "lse"}, data={"goes_inputs": ["now", "6h", "24h"]}),
)


#: The comparison's recipe: the shipped configs' 4 epochs (cosine schedule), the best validation epoch kept.
COMPARISON_RECIPE = Recipe(max_epochs=4, patience=2)


def compare_models(targets: Iterable[str] = (NOWCAST, FORECAST), variants: Sequence[Variant] = VARIANTS,
                   goes_variants: Sequence[Variant] = GOES_VARIANTS, *,
                   config: str | Path = CONFIG_DIR / "default.yaml", seeds: Sequence[int] = SEEDS[:1],
                   recipe: Recipe = COMPARISON_RECIPE, n_resamples: int = 200, cube: str | Path | None = None,
                   progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each variant trained on ``config``'s data (its cube, or ``cube``) and scored on the **validation** block,
    every variant and baseline on the same validation steps (those every variant predicted), each variant compared
    **paired** with the first of ``variants`` (the shipped config).

    Returns the comparison, columns :data:`COMPARISON_COLUMNS`: TSS (interval), HSS, BSS and MAE_dex at >= M1
    on the common steps, ``dTSS``/``dTSS_lo``/``dTSS_hi``/``p_not_better`` of the variant minus the config (a
    paired block bootstrap, :func:`flarelib.evaluate.paired_table`, blocks of the target's memory), its
    ``seeds`` (their predictions averaged) and mean ``epochs`` and training ``seconds``; the baselines' rows
    (``seeds`` empty) on the same steps; and :func:`batchnorm_diagnosis` of every BatchNorm variant (empty
    without one).
    """
    model0, data0 = config_settings(config)
    if cube is not None:
        data0["cube"] = str(cube)
    rows, diagnoses = [], []
    for target in targets:
        chosen = (*variants, *(goes_variants if target != NOWCAST else ()))
        runs: dict[str, list[xr.Dataset]] = {}
        info: dict[str, dict] = {}
        modules: dict[tuple, FlareDataModule] = {}
        for variant, seed in tqdm([(v, s) for v in chosen for s in seeds], desc=f"model variants ({target})",
                                  disable=not progress, unit="run"):
            key = tuple(sorted((k, str(v)) for k, v in variant.data.items()))
            if key not in modules:
                modules[key] = data_module(data0, target=target, **variant.data)
            dm = modules[key]
            start = time.perf_counter()
            net = fit(dm, {**model0, **variant.model}, seed=seed, recipe=recipe)
            runs.setdefault(variant.name, []).append(predict(net, dm, "val"))
            seconds = time.perf_counter() - start
            entry = info.setdefault(variant.name, {"seeds": [], "epochs": [], "seconds": 0.0})
            entry["seeds"].append(seed)
            entry["epochs"].append(net.epochs_trained)
            entry["seconds"] += seconds
            if net.architecture.norm == "batch":
                diagnoses.append(batchnorm_diagnosis(net, dm).assign(target=target, variant=variant.name, seed=seed))
        config_name = chosen[0].name
        val = {name: seed_mean(r) for name, r in runs.items()}
        common = np.array(sorted(set.intersection(*(set(v["time_index"].values.tolist()) for v in val.values()))))
        val = {name: v.isel(time=np.isin(v["time_index"].values, common)) for name, v in val.items()}
        dm = modules[tuple(sorted((k, str(v)) for k, v in chosen[0].data.items()))]
        others = {name: (v, v) for name, v in val.items() if name != config_name}
        f = evaluate.collect_forecasts(val[config_name], val[config_name], dm, others=others)
        pairs = [(name, evaluate.MODEL) for name in others]
        paired = evaluate.paired_table(f, pairs, n_resamples=n_resamples)
        paired = paired[paired["threshold"] == evaluate.threshold_label(LETTER)].set_index("predictor")
        table = scores(f, n_resamples=n_resamples)
        for name in [config_name, *others]:
            r = table.loc[evaluate.MODEL if name == config_name else name]
            d = paired.loc[name] if name in paired.index else {k: 0.0 for k in ("dTSS", "dTSS_lo", "dTSS_hi")}
            rows.append({"target": target, "variant": name, "n_samples": r["n_samples"], "n_events": r["n_events"],
                         **{k: r[k] for k in ("TSS", "TSS_lo", "TSS_hi", "HSS", "BSS", "MAE_dex")},
                         "dTSS": d["dTSS"], "dTSS_lo": d["dTSS_lo"], "dTSS_hi": d["dTSS_hi"],
                         "p_not_better": d.get("p_not_better", np.nan), "block_hours": f.block_hours(LETTER),
                         "seeds": " ".join(map(str, info[name]["seeds"])),
                         "epochs": float(np.mean(info[name]["epochs"])), "seconds": info[name]["seconds"]})
        for name in table.index.difference([evaluate.MODEL, f"{evaluate.MODEL} regression", *others]):
            r = table.loc[name]
            rows.append({"target": target, "variant": f"baseline: {name}", "n_samples": r["n_samples"],
                         "n_events": r["n_events"],
                         **{k: r[k] for k in ("TSS", "TSS_lo", "TSS_hi", "HSS", "BSS", "MAE_dex")},
                         "block_hours": f.block_hours(LETTER), "seeds": "", "epochs": 0.0, "seconds": 0.0})
    table = pd.DataFrame(rows).reindex(columns=COMPARISON_COLUMNS)
    return table, (pd.concat(diagnoses, ignore_index=True) if diagnoses else pd.DataFrame())


#: Columns of :func:`compare_models` (``model_comparison.csv``), in order.
COMPARISON_COLUMNS = ["target", "variant", "n_samples", "n_events", "TSS", "TSS_lo", "TSS_hi", "HSS", "BSS", "MAE_dex",
                      "dTSS", "dTSS_lo", "dTSS_hi", "p_not_better", "block_hours", "seeds", "epochs", "seconds"]


def choose_variant(table: pd.DataFrame, target: str, config: str = "max pool (config)") -> str:
    """The variant a config should take for ``target`` from a :func:`compare_models` table: the shipped config,
    unless another variant beats it, paired (the interval of its ``dTSS`` against the config lies wholly above
    0, :func:`flarelib.evaluate.paired_verdict`); among several that do, the one with the largest ``dTSS``."""
    rows = table[(table["target"] == target) & ~table["variant"].str.startswith("baseline")].set_index("variant")
    if config not in rows.index:
        raise ValueError(f"no {config!r} row for {target!r} in the comparison")
    missing = [c for c in ("dTSS", "dTSS_lo", "dTSS_hi") if c not in rows.columns]
    if missing:
        raise ValueError(f"the comparison has no paired columns {missing}: it predates the paired comparison; "
                         "make experiments writes a new one")
    better = [name for name, r in rows.iterrows()
              if name != config and evaluate.paired_verdict(r["dTSS_lo"], r["dTSS_hi"]) == "beats"]
    return max(better, key=lambda name: rows.loc[name, "dTSS"]) if better else config


# --------------------------------------------------------------------------- do the images add to GOES?

#: The converged recipe of :func:`images_over_goes`: up to 30 epochs, stopped 5 epochs after the best validation loss.
CONVERGED_RECIPE = Recipe(max_epochs=30, patience=5)
#: The name of the seed-mean CNN + GOES model in :func:`images_over_goes`' tables.
CNN_GOES = "CNN + GOES history"
#: The committed checkpoints of :func:`images_over_goes` on the default synthetic sun (``make images
#: IMAGES_ARGS="--keep models/forecast-cnn-goes"`` retrains them; ``models/forecast-cnn-goes/README.md``).
FORECAST_MODELS = PROJECT_ROOT / "models" / "forecast-cnn-goes"


def fit_or_load(dm: FlareDataModule, model: Mapping, *, seed: int, recipe: Recipe, path: Path | None,
                load: bool) -> FlareNet:
    """With ``load``: the model at ``path``, checked (trained on ``dm``'s cube, for its target and GOES inputs, else
    :class:`~flarelib.learn.model.CheckpointError` naming both and the fix; a missing file is an error, never
    trained and written into a committed folder). Without: :func:`fit` (saved to ``path`` when given). The loaded
    model's normalizer is the data module's from then on."""
    if load and path is not None:
        if not path.exists():
            raise FileNotFoundError(f"no checkpoint {path}; make images IMAGES_ARGS=\"--keep {path.parent}\" trains "
                                    "the models and writes them there")
        state = read_checkpoint(path)
        trained_on = (state.get(type(dm).__qualname__) or {}).get("cube_fingerprint")
        saved = state.get("datamodule_hyper_parameters", {})
        wanted = {"target": dm.plan.target.name, "goes": list(dm.inputs.goes)}
        found = {"target": saved.get("target"), "goes": list((saved.get("inputs") or {}).get("goes") or [])}
        if found != wanted:
            raise CheckpointError(f"{path} was trained for {found}, not {wanted}: retrain it with make images "
                                  f"IMAGES_ARGS=\"--keep {path.parent}\"")
        if trained_on != dm.cube_fingerprint:
            raise CheckpointError(f"{path} was trained on a cube with fingerprint {str(trained_on)[:12]}, but "
                                  f"{dm.store_path.name} has {str(dm.cube_fingerprint)[:12]}: retrain it with make "
                                  f"images IMAGES_ARGS=\"--keep {path.parent}\"")
        net = load_flarenet(path).eval()
        net.best_epoch = int(state.get("epoch", -1)) + 1
        dm.normalizer = net.normalizer
        return net
    return fit(dm, model, seed=seed, recipe=recipe, keep=path)


def seed_mean(runs: Sequence[xr.Dataset]) -> xr.Dataset:
    """The mean of several models' :func:`~flarelib.learn.predict` outputs on the same steps (log10 W/m² and
    probabilities averaged): the seed ensemble."""
    first = runs[0]
    for other in runs[1:]:
        if not np.array_equal(other["time_index"].values, first["time_index"].values):
            raise ValueError("the runs predicted different steps; a seed mean needs the same ones")
    out = first.copy()
    for name in first.data_vars:
        if name != "true":
            out[name] = sum(r[name] for r in runs) / len(runs)
    return out


def images_over_goes(data: Mapping, model: Mapping, *, seeds: Sequence[int] = SEEDS,
                     recipe: Recipe = CONVERGED_RECIPE, target: str = FORECAST, keep: str | Path | None = None,
                     load: bool = False, n_resamples: int = evaluate.N_RESAMPLES, progress: bool = True
                     ) -> tuple[pd.DataFrame, evaluate.Forecasts]:
    """Do the images add information to the GOES history? FlareNet reading the images **and** the GOES flux known
    at t (:data:`flarelib.learn.GOES_ONLY_INPUTS`) against the same network reading only the GOES flux, both
    trained with early stopping (``recipe``) for each of ``seeds`` on the same data module and scored on the same
    test steps.

    Returns the paired comparisons (:data:`flarelib.evaluate.PAIRED_COLUMNS` plus ``seed`` and ``epochs``): each
    seed's CNN + GOES against its GOES-only model, and the seed means (``seed`` = ``"mean"``, the ensemble of the
    seeds' probabilities) against the GOES-only mean, the GOES + flare-history logistic model and the observable
    oracle, with the observable oracle's own margins for scale; and the seed-mean forecasts (the model is
    :data:`CNN_GOES`, stored under :data:`flarelib.evaluate.MODEL`). ``keep``: a folder for the checkpoints
    (``cnn-goes-seed{seed}.ckpt``, ``goes-only-seed{seed}.ckpt``); with ``load``, those already there are
    loaded instead of trained (:func:`fit_or_load`: e.g. the committed :data:`FORECAST_MODELS`).
    """
    dm = data_module(data, target=target, goes_inputs=list(GOES_ONLY_INPUTS))
    runs: dict[str, list[tuple[xr.Dataset, xr.Dataset]]] = {"cnn": [], "goes": []}
    epochs: dict[str, list[int]] = {"cnn": [], "goes": []}
    rows = []
    for seed in tqdm(seeds, desc="CNN + GOES vs GOES-only", disable=not progress, unit="seed"):
        for kind, settings in (("cnn", model), ("goes", {**model, "use_images": False})):
            path = Path(keep) / f"{'cnn-goes' if kind == 'cnn' else 'goes-only'}-seed{seed}.ckpt" if keep else None
            net = fit_or_load(dm, settings, seed=seed, recipe=recipe, path=path, load=load)
            runs[kind].append((predict(net, dm, "val"), predict(net, dm, "test")))
            epochs[kind].append(net.best_epoch)
        (cv, ct), (gv, gt) = runs["cnn"][-1], runs["goes"][-1]
        f = evaluate.collect_forecasts(cv, ct, dm, others={GOES_ONLY_NAME: (gv, gt)})
        rows.append(evaluate.paired_table(f, [(evaluate.MODEL, GOES_ONLY_NAME)], n_resamples=n_resamples)
                    .assign(seed=str(seed), epochs=epochs["cnn"][-1]))
    mean = {kind: (seed_mean([v for v, _ in r]), seed_mean([t for _, t in r])) for kind, r in runs.items()}
    f = evaluate.collect_forecasts(*mean["cnn"], dm, others={GOES_ONLY_NAME: mean["goes"]})
    pairs = [(evaluate.MODEL, GOES_ONLY_NAME), (evaluate.MODEL, evaluate.GOES_HISTORY_MODEL),
             (evaluate.MODEL, evaluate.OBSERVABLE_ORACLE), (evaluate.OBSERVABLE_ORACLE, GOES_ONLY_NAME),
             (evaluate.OBSERVABLE_ORACLE, evaluate.GOES_HISTORY_MODEL), (GOES_ONLY_NAME, evaluate.GOES_HISTORY_MODEL)]
    rows.append(evaluate.paired_table(f, pairs, n_resamples=n_resamples)
                .assign(seed="mean", epochs=float(np.mean(epochs["cnn"]))))
    table = pd.concat(rows, ignore_index=True)
    table["predictor"] = table["predictor"].replace({evaluate.MODEL: CNN_GOES})
    return table, f


def images_margin(table: pd.DataFrame, *, letter: str = LETTER, share: float = 0.7) -> str:
    """The computed verdict of :func:`images_over_goes`: the seed-mean CNN + GOES against the GOES-only model at
    class ``letter``, paired, beside the observable oracle's margin over the same model, and whether the goal
    (interval above 0 and at least ``share`` of the oracle's margin) is met."""
    rows = table[(table["seed"] == "mean") & (table["threshold"] == evaluate.threshold_label(letter))]
    pick = rows.set_index(["predictor", "reference"])
    model, oracle = pick.loc[(CNN_GOES, GOES_ONLY_NAME)], pick.loc[(evaluate.OBSERVABLE_ORACLE, GOES_ONLY_NAME)]
    per_seed = table[(table["seed"] != "mean") & (table["threshold"] == evaluate.threshold_label(letter))]
    ratio = model["dTSS"] / oracle["dTSS"] if oracle["dTSS"] > 0 else np.nan
    met = model["dTSS_lo"] > 0 and ratio >= share

    def signed(value: float) -> str:
        return f"{value:+.3f}" if np.isfinite(value) else "undefined"

    return (f"{model['dataset']}: CNN + GOES - GOES-only model, dTSS>={letter}1 {signed(model['dTSS'])} "
            f"[{signed(model['dTSS_lo'])}, {signed(model['dTSS_hi'])}] (mean of {per_seed['seed'].nunique()} seeds; "
            f"each seed {', '.join(signed(v) for v in per_seed['dTSS'])}); the observable oracle's margin over the "
            f"same model {signed(oracle['dTSS'])} [{signed(oracle['dTSS_lo'])}, {signed(oracle['dTSS_hi'])}]; "
            + (f"the model reaches {ratio:.2f} of it" if np.isfinite(ratio) else
               "the oracle has no margin to share here")
            + f" (goal: interval above 0 and >= {share:.1f} of the oracle's margin): "
            f"{'met' if met else 'not met'} ({model['n_events_distinct']} distinct events, "
            f"{model['block_hours']:.0f} h blocks).")


# --------------------------------------------------------------------------- lessons
#
# Each lesson trains a few designs on the same data module, predicts the same validation and test steps with each
# (the seed mean of their probabilities), and compares them with the paired block bootstrap of the difference
# (:func:`flarelib.evaluate.paired_table`) beside the baselines on the same steps. Every lesson returns
# ``(runs, paired)``: one skill row per design and reference (the columns of ``skill.csv`` plus the lesson's own),
# and the paired comparisons (the columns of ``paired.csv`` plus ``lesson``).

#: Reference forecasts shown beside every lesson's designs (name prefixes of
#: :func:`flarelib.evaluate.baseline_forecasts`).
LESSON_REFERENCES = ("climatology", "brightest pixel", evaluate.GOES_HISTORY_MODEL)


def training_span(dm: FlareDataModule, span_days: float, n_train: int | None = None, *,
                  train: np.ndarray | None = None, start: np.datetime64 | None = None) -> np.ndarray:
    """The training steps (``train``, default ``dm``'s) within ``span_days`` from ``start`` (default: the cube's
    first time), thinned evenly to ``n_train`` (all if None)."""
    train = dm.plan.index["train"] if train is None else np.asarray(train)
    first = dm.plan.times[0] if start is None else np.datetime64(start, "ns")
    times = dm.plan.times[train]
    inside = train[(times >= first) & (times < first + np.timedelta64(int(round(span_days * 86400)), "s"))]
    if n_train is None or n_train >= inside.size:
        return inside
    return inside[np.unique(np.linspace(0, inside.size - 1, n_train).round().astype(int))]


def window_starts(dm: FlareDataModule, span_days: float, windows: int, train: np.ndarray) -> list[np.datetime64]:
    """``windows`` start times spread evenly over the training steps' extent for a span of ``span_days`` (one
    window when the span covers it all), so that short spans sample the whole activity range, not one season."""
    first, last = dm.plan.times[train[0]], dm.plan.times[train[-1]]
    room = (last - first) - np.timedelta64(int(round(span_days * 86400)), "s")
    if windows <= 1 or room <= np.timedelta64(0, "s"):
        return [first]
    return [first + room * k // (windows - 1) for k in range(windows)]


def is_event(dm: FlareDataModule, steps: np.ndarray, letter: str = LETTER) -> np.ndarray:
    """Whether the target at cube ``steps`` reaches class ``letter`` (bool, one per step)."""
    return np.asarray(dm.plan.target.flux[steps] >= FLARE_CLASS_THRESHOLDS[letter])


def region_disjoint(dm: FlareDataModule, train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """The training steps during which no region of the test steps was on the disk (a region-disjoint split: no
    region is seen in training and scored in test). Cubes without region identities return ``train``."""
    cube = dm.cube()
    if "region_on_disk" not in cube:
        log.warning("%s has no region identities (region_on_disk): the split is not made region-disjoint",
                    dm.store_path)
        return np.asarray(train)
    on = cube["region_on_disk"].values.astype(bool)
    tested = on[np.asarray(test)].any(axis=0)
    return np.asarray(train)[~on[np.asarray(train)][:, tested].any(axis=1)]


def balanced(dm: FlareDataModule, steps: np.ndarray, n_events: int, n_quiet: int) -> np.ndarray:
    """``steps`` thinned evenly to ``n_events`` steps with a >= :data:`LETTER` target and ``n_quiet`` without."""
    steps = np.asarray(steps)
    event = is_event(dm, steps)

    def thin(pool: np.ndarray, n: int) -> np.ndarray:
        if n > pool.size:
            raise ValueError(f"asked for {n} steps of a pool of {pool.size}")
        return pool[np.unique(np.linspace(0, pool.size - 1, n).round().astype(int))] if n else pool[:0]

    return np.sort(np.concatenate([thin(steps[event], n_events), thin(steps[~event], n_quiet)]))


def seed_runs(dm: FlareDataModule, model: Mapping, seeds: Sequence[int], recipe: Recipe
              ) -> tuple[xr.Dataset, xr.Dataset]:
    """FlareNet trained on ``dm``'s current split for each of ``seeds``: the seed mean (:func:`seed_mean`) of its
    predictions on the validation and test steps."""
    runs = []
    for seed in seeds:
        net = fit(dm, model, seed=seed, recipe=recipe)
        runs.append((predict(net, dm, "val"), predict(net, dm, "test")))
    return seed_mean([v for v, _ in runs]), seed_mean([t for _, t in runs])


def lesson_forecasts(dm: FlareDataModule, runs: Mapping[str, tuple[xr.Dataset, xr.Dataset]]) -> evaluate.Forecasts:
    """Several designs' predictions on the same validation and test steps as one
    :class:`~flarelib.evaluate.Forecasts`, each under its own name, beside every baseline on those steps (fit on
    ``dm``'s training steps; yes/no thresholds chosen on the validation steps)."""
    (first, (val, test)), *others = runs.items()
    f = evaluate.collect_forecasts(val, test, dm, others=dict(others))
    for split in (f.val, f.test):
        split.log.pop(f"{evaluate.MODEL} regression", None)
        for table in (split.log, split.prob):
            if evaluate.MODEL in table:
                table[first] = table.pop(evaluate.MODEL)
    f.prob_threshold = {(first if name == evaluate.MODEL else name, letter): value
                        for (name, letter), value in f.prob_threshold.items()}
    return f


def lesson_tables(f: evaluate.Forecasts, lesson: str, designs: Sequence[str], pairs: Sequence[tuple[str, str]], *,
                  n_resamples: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The skill rows (at >= :data:`LETTER`) of ``designs`` and :data:`LESSON_REFERENCES`, and the paired
    comparisons ``pairs``, both tagged with ``lesson``."""
    label = evaluate.threshold_label(LETTER)
    references = [p for p in f.predictors if p.startswith(LESSON_REFERENCES) and p not in designs]
    skill = evaluate.skill_table(None, None, None, n_resamples=n_resamples, forecasts=f)
    skill = skill[(skill["threshold"] == label) & skill["predictor"].isin([*designs, *references])]
    paired = evaluate.paired_table(f, pairs, n_resamples=n_resamples)
    return (skill.assign(lesson=lesson).reset_index(drop=True),
            paired[paired["threshold"] == label].assign(lesson=lesson).reset_index(drop=True))


def short_windows(dm: FlareDataModule, short_days: float, windows: int, train: np.ndarray, min_events: int
                  ) -> list[np.datetime64]:
    """``windows`` start times of ``short_days`` spans of the ``train`` steps that each hold at least ``min_events``
    steps with a >= :data:`LETTER` target and as many without, spread evenly among 4 x ``windows`` candidates
    through the training span (a window without events, or without quiet steps, cannot be thinned to the others'
    counts; each one left out is logged with its counts)."""
    usable = []
    for start in window_starts(dm, short_days, 4 * windows, train):
        event = is_event(dm, training_span(dm, short_days, train=train, start=start))
        if min(event.sum(), (~event).sum()) >= min_events:
            usable.append(start)
        else:
            log.warning("long vs big: the %g-day window from %s holds %d training steps >= %s1 and %d below "
                        "(fewer than %d of either): left out", short_days, np.datetime64(start, "D"), event.sum(),
                        LETTER, (~event).sum(), min_events)
    if not usable:
        raise ValueError(f"long vs big: no {short_days:g}-day window of the training steps holds {min_events} "
                         f"steps >= {LETTER}1 and {min_events} below; use a longer cube or a longer short span")
    return [usable[k] for k in np.unique(np.linspace(0, len(usable) - 1, windows).round().astype(int))]


def long_vs_big(dm: FlareDataModule, model: Mapping, *, short_days: float = 30, windows: int = 2,
                seeds: Sequence[int] = SEEDS, recipe: Recipe = Recipe(), n_resamples: int = evaluate.N_RESAMPLES,
                min_events: int = 5, progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """"Data should be long, not only big": every training block against ``short_days`` of it (at ``windows``
    places through the training span), each thinned to **the same number of event and quiet steps**, so the
    designs differ only in how long a stretch of the Sun they saw.

    The training steps are region-disjoint from the test block (:func:`region_disjoint`): no design has seen a
    region it is scored on, so "long" cannot win by memorizing regions; and each short window holds at least
    ``min_events`` event steps (:func:`short_windows`), so "short" cannot lose by lacking events altogether.
    Returns ``(runs, paired)``; ``runs`` adds ``design, span_days, window_start, n_train, n_train_events`` and the
    paired rows compare the long design with each short window.
    """
    full = {name: idx.copy() for name, idx in dm.plan.index.items()}
    normalizer = dm.normalizer
    train = region_disjoint(dm, full["train"], full["test"])
    designs = {"long: every training block": train}
    for start in short_windows(dm, short_days, windows, train, min_events):
        designs[f"short: {short_days:g} d from {np.datetime64(start, 'D')}"] = training_span(
            dm, short_days, train=train, start=start)
    n_events = min(int(is_event(dm, steps).sum()) for steps in designs.values())
    n_quiet = min(int((~is_event(dm, steps)).sum()) for steps in designs.values())
    designs = {name: balanced(dm, steps, n_events, n_quiet) for name, steps in designs.items()}
    runs = {}
    try:
        for name, steps in tqdm(designs.items(), desc="long vs big", disable=not progress, unit="design"):
            dm.use_split({"train": steps, "val": full["val"][::recipe.val_every], "test": full["test"]})
            runs[name] = seed_runs(dm, model, seeds, recipe)
    finally:
        _restore(dm, full, normalizer)
    f = lesson_forecasts(dm, runs)
    long, *short = designs
    skill, paired = lesson_tables(f, "long vs big", list(designs), [(long, s) for s in short], n_resamples=n_resamples)
    times = dm.plan.times
    facts = pd.DataFrame([{"predictor": name, "span_days": (times[s[-1]] - times[s[0]]) / np.timedelta64(1, "D"),
                           "window_start": str(np.datetime64(times[s[0]], "D")), "n_train": s.size,
                           "n_train_events": int(is_event(dm, s).sum()), "seeds": len(seeds)}
                          for name, s in designs.items()])
    return skill.merge(facts, on="predictor", how="left"), paired


def _restore(dm: FlareDataModule, split: dict[str, np.ndarray], normalizer) -> None:
    """Give a data module its split and normalizer back (e.g. a checkpoint's) after an experiment."""
    dm.normalizer = normalizer
    dm.use_split(split, refit_normalizer=False)


WEIGHTINGS = ("no weighting", "loss weighting")
RULES = ("P >= 0.5", "threshold chosen on validation")


def imbalance(dm: FlareDataModule, model: Mapping, *, seeds: Sequence[int] = SEEDS, train: np.ndarray | None = None,
              recipe: Recipe = Recipe(), n_resamples: int = evaluate.N_RESAMPLES,
              progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Class imbalance as a 2 x 2: loss weighting or none (:func:`flarelib.learn.data.class_weights`) x saying
    yes at P >= 0.5 or at the threshold that maximizes TSS on validation, at >= :data:`LETTER` on ``dm``'s test
    block, scored by TSS (which the rule moves), AUC and BSS (which it cannot), beside the brightest-pixel and
    GOES-history references. ``train`` restricts the training steps (default: all).

    Returns ``(runs, paired)``; the paired rows are each factor at fixed other factor, and no weighting with the
    validation-chosen threshold (the protocol of notebook 05) against the GOES + flare-history model.
    """
    full = {name: idx.copy() for name, idx in dm.plan.index.items()}
    scheme = {"no weighting": "none", "loss weighting": "loss"}
    before, normalizer = dm.class_weighting.scheme, dm.normalizer
    trained = {}
    try:
        dm.use_split({"train": full["train"] if train is None else train, "val": full["val"][::recipe.val_every],
                      "test": full["test"]})
        for weighting in tqdm(WEIGHTINGS, desc="imbalance", disable=not progress, unit="design"):
            dm.reweight(scheme[weighting])
            trained[weighting] = seed_runs(dm, {**model, "class_head": True}, seeds, recipe)
    finally:
        dm.reweight(before)
        _restore(dm, full, normalizer)
    runs = {f"{w}, {r}": trained[w] for w in WEIGHTINGS for r in RULES}
    f = lesson_forecasts(dm, runs)
    for w in WEIGHTINGS:  # the fixed rule; the other keeps its validation-chosen threshold
        f.prob_threshold[(f"{w}, {RULES[0]}", LETTER)] = 0.5
    (none_half, none_val), (loss_half, loss_val) = [(f"{w}, {RULES[0]}", f"{w}, {RULES[1]}") for w in WEIGHTINGS]
    pairs = [(loss_half, none_half), (loss_val, none_val), (none_val, none_half), (loss_val, loss_half),
             (none_val, evaluate.GOES_HISTORY_MODEL)]
    skill, paired = lesson_tables(f, "imbalance", list(runs), pairs, n_resamples=n_resamples)
    skill["prob_threshold"] = [f.prob_threshold.get((name, LETTER), np.nan) for name in skill["predictor"]]
    return skill.assign(n_train=int(full["train"].size if train is None else np.asarray(train).size)), paired


def original_sampling(dm: FlareDataModule, *, before: str = "12h", letter: str = "C", seed: int = 0) -> np.ndarray:
    """FlareNet's original sampling: the usable step at or just before ``before`` ahead of each flare peak
    >= ``letter`` 1 of the cube's event list, plus as many random usable steps whose target is below C1."""
    events = dm.cube()
    peaks = events["event_peak"].values[events["event_peak_flux"].values >= FLARE_CLASS_THRESHOLDS[letter]]
    issue = peaks - pd.Timedelta(before).to_timedelta64()
    step = np.searchsorted(dm.plan.times, issue, side="right") - 1
    flare = np.intersect1d(step[step >= 0], dm.plan.usable)
    quiet_pool = np.setdiff1d(dm.plan.usable[dm.plan.target.flux[dm.plan.usable] < FLARE_CLASS_THRESHOLDS["C"]], flare)
    rng = np.random.default_rng(seed)
    quiet = rng.choice(quiet_pool, size=min(flare.size, quiet_pool.size), replace=False)
    return np.sort(np.concatenate([flare, quiet]))


RANDOM_SPLIT = "original sampling, random split"
BLOCKED_SPLIT = "original sampling, blocked split"


def selection(dm: FlareDataModule, model: Mapping, *, seeds: Sequence[int] = SEEDS, recipe: Recipe = Recipe(),
              fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), n_resamples: int = evaluate.N_RESAMPLES,
              progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training data selection: does FlareNet's random split leak? FlareNet's original sampling
    (:func:`original_sampling`) split at random (``fractions``, as the original) or in ``dm``'s time blocks, with
    the same number of training steps, and both models scored **on the same steps**: the sampled steps of the test
    block that neither trained or validated on.

    The random split's model has seen their neighbours: steps hours away, in the same regions and the same flare
    clusters (the synthetic sun's regions live for days and its flares excite each other); the blocked model has
    not. Their paired difference is what that leak is worth on unseen steps; it can come out either way. The runs
    also give the score the random split reports on its own random test set (``test_on``), the number a paper
    built that way would publish. Thresholds are chosen for both on the blocked validation block's steps that the
    random split did not train on (otherwise its threshold would be chosen in sample).
    """
    full = {name: idx.copy() for name, idx in dm.plan.index.items()}
    normalizer = dm.normalizer
    val = full["val"][::recipe.val_every]
    picked = original_sampling(dm, seed=0)
    shuffled = np.random.default_rng(0).permutation(picked)
    a, b = (np.cumsum(fractions)[:2] * shuffled.size).astype(int)
    random = {"train": np.sort(shuffled[:a]), "val": np.sort(shuffled[a:b]), "test": np.sort(shuffled[b:])}
    blocked_train = np.intersect1d(picked, full["train"])
    if random["train"].size > blocked_train.size:  # the same number of training steps
        random["train"] = np.sort(np.random.default_rng(1).choice(random["train"], blocked_train.size, replace=False))
    common = np.setdiff1d(np.intersect1d(picked, full["test"]), np.concatenate([random["train"], random["val"]]))
    unseen_val = np.setdiff1d(val, random["train"])  # thresholds on validation steps neither model trained on
    runs, own = {}, {}
    try:
        for name, split in tqdm([(RANDOM_SPLIT, random), (BLOCKED_SPLIT, {"train": blocked_train, "val": val})],
                                desc="selection", disable=not progress, unit="design"):
            preds = []
            for seed in seeds:
                dm.use_split({**split, "test": split.get("test", common)})
                net = fit(dm, model, seed=seed, recipe=recipe)
                if name == RANDOM_SPLIT:
                    own.setdefault(name, []).append(predict(net, dm, "test"))
                dm.use_split({"train": split["train"], "val": unseen_val, "test": common}, refit_normalizer=False)
                preds.append((predict(net, dm, "val"), predict(net, dm, "test")))
            runs[name] = (seed_mean([v for v, _ in preds]), seed_mean([t for _, t in preds]))
    finally:
        _restore(dm, full, normalizer)
    f = lesson_forecasts(dm, runs)
    skill, paired = lesson_tables(f, "selection", list(runs), [(RANDOM_SPLIT, BLOCKED_SPLIT)],
                                  n_resamples=n_resamples)
    skill["test_on"] = "unseen sampled steps of the test block"
    reported = lesson_forecasts(dm, {RANDOM_SPLIT: (runs[RANDOM_SPLIT][0], seed_mean(own[RANDOM_SPLIT]))})
    as_reported, _ = lesson_tables(reported, "selection", [RANDOM_SPLIT], [], n_resamples=n_resamples)
    as_reported = as_reported[as_reported["predictor"] == RANDOM_SPLIT].assign(test_on="its own random test set")
    n_train = {RANDOM_SPLIT: random["train"].size, BLOCKED_SPLIT: blocked_train.size}
    table = pd.concat([skill, as_reported], ignore_index=True)
    table["n_train"] = table["predictor"].map(n_train)
    return table, paired


def lesson_sentences(paired: pd.DataFrame, *, score: str = "TSS") -> list[str]:
    """One computed sentence per paired comparison of a lesson: the verdict of the paired interval of
    ``d{score}`` (:func:`flarelib.evaluate.paired_verdict`), the difference, its interval and P(not better),
    with the distinct events and the bootstrap block; says so when the difference is undefined."""
    lines = []
    for _, row in paired.iterrows():
        d, lo, hi = row[f"d{score}"], row[f"d{score}_lo"], row[f"d{score}_hi"]
        word = evaluate.paired_verdict(lo, hi)
        head = f"{row['dataset']}, {row['lesson']}: {row['predictor']}"
        if word == "undefined" or not np.isfinite(d):
            lines.append(f"{head} cannot be compared with {row['reference']} on {score}>={LETTER}1: the difference "
                         f"is undefined on these {row['n_samples']} test samples ({row['n_events_distinct']} distinct "
                         "events).")
            continue
        verb = {"beats": "beats", "ties": "ties", "loses": "loses to"}[word]
        lines.append(f"{head} {verb} {row['reference']} on {score}>={LETTER}1: Δ{score} {d:+.2f} [{lo:+.2f}, "
                     f"{hi:+.2f}], P(not better) {row['p_not_better']:.2f} ({row['n_samples']} test samples, "
                     f"{row['n_events_distinct']} distinct events; paired 90% block bootstrap, "
                     f"{row['block_hours'] / 24:.0f}-day blocks).")
    return lines


@dataclass(frozen=True)
class LessonSettings:
    """How big notebook 09's lessons are: the short span (days) and its windows, the seeds, the recipe, the
    thinning of the imbalance runs' training steps (every k-th), and the fewest event and quiet training steps
    a short window must hold (:func:`short_windows`)."""

    short_days: float
    windows: int
    seeds: tuple[int, ...]
    recipe: Recipe
    imbalance_every: int
    min_events: int


def lesson_settings(size: str, *, full: bool = False, seeds: int = 1) -> LessonSettings:
    """The lessons' settings for a suite size (``"small"``: the 35-day cube; ``"default"``: the year);
    ``full`` is ``make experiments`` (three short windows, every training step of the imbalance runs, 30 epochs)."""
    chosen = SEEDS[:max(1, min(int(seeds), len(SEEDS)))]
    if size == "small":
        return LessonSettings(4.0, 2, chosen, Recipe(max_epochs=4, patience=2), 1, 5)
    if full:
        return LessonSettings(30.0, 3, chosen, Recipe(max_epochs=30, patience=5), 1, 40)
    # make lessons: a thinned validation block and an eighth of the training steps for the imbalance runs;
    # enough epochs that a few hundred samples are seen many times
    return LessonSettings(30.0, 2, chosen, Recipe(max_epochs=20, patience=4, val_every=3), 8, 40)


# --------------------------------------------------------------------------- BatchNorm

def batchnorm_diagnosis(net: FlareNet, dm: FlareDataModule, split: str = "val", batches: int = 8) -> pd.DataFrame:
    """Per BatchNorm layer: the running (evaluation) mean/variance against those of evaluation batches,
    and how much the output moves between evaluation mode and batch-statistics mode.

    Returns one row per layer: ``layer, running_var, batch_var_median, batch_var_max_over_running,
    batch_mean_shift`` (in running standard deviations, median over channels and batches) and the
    median |eval - train-mode| output difference (dex) over the batches.
    """
    layers = {name: m for name, m in net.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    if not layers:
        raise ValueError("this FlareNet has no BatchNorm layer (norm='batch')")
    seen: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: seen[name].append(inp[0].detach()))
             for name, m in layers.items()]
    diffs = []
    net.eval()
    try:
        with torch.no_grad():
            for k, batch in enumerate(dm.loader(split)):
                if k >= batches:
                    break
                x, _, _, _, aux = dm.gather(batch)
                evaluated = net(x, aux)
                for m in layers.values():
                    m.train()
                    m.momentum, saved = 0.0, m.momentum  # batch statistics, running stats untouched
                batch_mode = net(x, aux)
                for m in layers.values():
                    m.eval()
                    m.momentum = saved
                diffs.append((evaluated - batch_mode).abs().median().item())
    finally:
        for h in hooks:
            h.remove()
    rows = []
    for name, m in layers.items():
        inputs = seen[name][::2]  # the evaluation-mode pass of each batch
        var = torch.stack([a.var(dim=(0, 2, 3)) for a in inputs])
        mean = torch.stack([a.mean(dim=(0, 2, 3)) for a in inputs])
        running_sd = m.running_var.sqrt()
        rows.append({"layer": name, "running_var": float(m.running_var.median()),
                     "batch_var_median": float(var.median()),
                     "batch_var_max_over_running": float((var / m.running_var).max()),
                     "batch_mean_shift_sd": float(((mean - m.running_mean) / running_sd).abs().median())})
    out = pd.DataFrame(rows)
    out["eval_vs_batch_mode_dex"] = float(np.median(diffs))
    return out


# --------------------------------------------------------------------------- results

def write_result(table: pd.DataFrame, name: str) -> Path:
    """Write ``table`` to ``results_dir() / f"{name}.csv"``; returns the path."""
    path = results_dir() / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return path


def main(argv: list[str] | None = None) -> int:
    """The model comparison (``make experiments`` runs it, then notebook 09 with every seed and span)."""
    parser = argparse.ArgumentParser(prog="python -m flarelib.experiments", description=main.__doc__)
    parser.add_argument("--config", default=str(CONFIG_DIR / "default.yaml"))
    parser.add_argument("--only", nargs="*", default=["models"], choices=["models", "images"],
                        help="which experiments to run: the model comparison, and/or the converged CNN + GOES "
                             "against the GOES-only model (the lessons run in notebook 09)")
    parser.add_argument("--keep", default=None,
                        help=f"with 'images': keep its checkpoints in this folder (e.g. {FORECAST_MODELS})")
    parser.add_argument("--seeds", type=int, default=1, help="how many of SEEDS to run per variant (default 1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    start = time.perf_counter()
    if "images" in args.only:
        model, data = config_settings(args.config)
        paired, _ = images_over_goes(data, model, seeds=SEEDS[:args.seeds], keep=args.keep)
        print(images_margin(paired))
        print(f"wrote {write_result(paired, 'images_over_goes')} in {(time.perf_counter() - start) / 60:.1f} min")
    if "models" not in args.only:
        return 0
    table, batchnorm = compare_models(config=args.config, seeds=SEEDS[:args.seeds])
    print(table.round(3).to_string(index=False))
    print(f"wrote {write_result(table, 'model_comparison')} in {(time.perf_counter() - start) / 60:.1f} min")
    if not batchnorm.empty:
        print(batchnorm.round(3).to_string(index=False))
        print(f"wrote {write_result(batchnorm, 'batchnorm')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
