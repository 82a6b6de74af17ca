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
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from tqdm.auto import tqdm

from flarelib import evaluate
from flarelib.cube.goes import FLARE_CLASS_THRESHOLDS
from flarelib.learn import FlareNet, load_flarenet, predict, quiet_lightning
from flarelib.learn.data import FlareDataModule, model_settings
from flarelib.paths import CONFIG_DIR, read_config, results_dir

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
        out_dir: str | Path | None = None) -> FlareNet:
    """Train FlareNet (``model`` settings) on ``dm``'s training steps; return the best-validation model (eval mode).

    The model reads what the data module gives (channels, target, frames, GOES inputs).
    """
    L.seed_everything(seed, workers=True, verbose=False)
    net = FlareNet.from_settings(model, model_settings(dm))
    net.adopt(dm.training_stats())
    with quiet_lightning():
        return _fit(net, dm, recipe, out_dir)


def _fit(net: FlareNet, dm: FlareDataModule, recipe: Recipe, out_dir: str | Path | None) -> FlareNet:
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
                   recipe: Recipe = COMPARISON_RECIPE, n_resamples: int = 200,
                   progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each variant trained on ``config``'s data and scored on the **validation** block.

    Returns the comparison, columns ``target, variant, seed, epochs, TSS, TSS_lo, TSS_hi, HSS, BSS, MAE_dex,
    seconds`` (TSS and HSS at >= M1) plus the baselines' rows (``seed`` -1) on the same validation samples, and
    :func:`batchnorm_diagnosis` of every BatchNorm variant (empty without one).
    """
    model0, data0 = config_settings(config)
    rows, diagnoses = [], []
    runs = [(t, v, s) for t in targets for v in (*variants, *(goes_variants if t != NOWCAST else ())) for s in seeds]
    modules: dict[tuple, FlareDataModule] = {}
    for target, variant, seed in tqdm(runs, desc="model variants", disable=not progress, unit="run"):
        key = (target, tuple(sorted((k, str(v)) for k, v in variant.data.items())))
        if key not in modules:
            modules[key] = data_module(data0, target=target, **variant.data)
        dm = modules[key]
        start = time.perf_counter()
        net = fit(dm, {**model0, **variant.model}, seed=seed, recipe=recipe)
        f = on_validation(forecasts(net, dm))
        table = scores(f, n_resamples=n_resamples)
        seconds = time.perf_counter() - start
        if net.architecture.norm == "batch":
            diagnoses.append(batchnorm_diagnosis(net, dm).assign(target=target, variant=variant.name, seed=seed))
        row = table.loc[evaluate.MODEL]
        rows.append({"target": target, "variant": variant.name, "seed": seed, "epochs": net.epochs_trained,
                     **{k: row[k] for k in ("TSS", "TSS_lo", "TSS_hi", "HSS", "BSS", "MAE_dex")}, "seconds": seconds})
        if variants and variant is variants[0] and seed == seeds[0]:
            for name in table.index.difference([evaluate.MODEL, f"{evaluate.MODEL} regression"]):
                b = table.loc[name]
                rows.append({"target": target, "variant": f"baseline: {name}", "seed": -1, "epochs": 0,
                             **{k: b[k] for k in ("TSS", "TSS_lo", "TSS_hi", "HSS", "BSS", "MAE_dex")}, "seconds": 0.0})
    return pd.DataFrame(rows), (pd.concat(diagnoses, ignore_index=True) if diagnoses else pd.DataFrame())


def choose_variant(table: pd.DataFrame, target: str, config: str = "max pool (config)") -> str:
    """The variant a config should take for ``target`` from a :func:`compare_models` table: the shipped config,
    unless another variant beats it (its validation TSS interval lies wholly above the config's,
    :func:`flarelib.evaluate.verdict`); among several that do, the one with the highest TSS."""
    rows = table[(table["target"] == target) & ~table["variant"].str.startswith("baseline")].set_index("variant")
    if config not in rows.index:
        raise ValueError(f"no {config!r} row for {target!r} in the comparison")
    base = rows.loc[config]
    better = [name for name, r in rows.iterrows() if name != config and
              evaluate.verdict(r["TSS_lo"], r["TSS_hi"], base["TSS_lo"], base["TSS_hi"]) == "beats"]
    return max(better, key=lambda name: rows.loc[name, "TSS"]) if better else config


# --------------------------------------------------------------------------- lessons

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


def _lesson_row(f: evaluate.Forecasts, n_resamples: int) -> dict:
    row = scores(f, n_resamples=n_resamples).loc[evaluate.MODEL]
    return {**{k: row[k] for k in ("TSS", "TSS_lo", "TSS_hi", "HSS", "BSS", "MAE_dex")}, "dataset": f.dataset}


def long_vs_big(dm: FlareDataModule, model: Mapping, *, spans: Sequence[float] = (30, 90, 180, 365),
                windows: int = 3, n_train: int | None = None, curve: bool = True, seeds: Sequence[int] = SEEDS,
                recipe: Recipe = Recipe(), n_resamples: int = evaluate.N_RESAMPLES,
                progress: bool = True) -> pd.DataFrame:
    """Skill against the span of the training data, on ``dm``'s validation and test blocks.

    Each span shorter than the training data is placed at ``windows`` positions through the year
    (:func:`window_starts`): the synthetic activity rises through the year, and a single window at the start would
    compare a quiet Sun with the whole cycle rather than short with long.

    * ``design="fixed n"``: every window thinned to the same ``n_train`` samples (default: the fewest training
      steps of any window of the shortest span), so only the span and the cadence change;
    * ``design="all steps"`` (with ``curve``): every training step of the window (the learning curve).

    Returns columns ``design, span_days, window_start, cadence, n_train, n_train_events, seed, target, TSS, TSS_lo,
    TSS_hi, HSS, BSS, MAE_dex, seen_regions`` (TSS, HSS at >= M1; ``cadence`` is the mean spacing of the training
    samples; ``n_train_events`` their >= M1 targets; ``seen_regions`` the share of the test block's region-time
    from regions on the disk during the training samples, NaN without region identities).
    """
    full = {name: idx.copy() for name, idx in dm.plan.index.items()}
    normalizer = dm.normalizer
    starts = {span: window_starts(dm, span, windows, full["train"]) for span in spans}
    n_fixed = n_train or min(training_span(dm, min(spans), train=full["train"], start=t).size
                             for t in starts[min(spans)])
    designs = [("fixed n", n_fixed)] + ([("all steps", None)] if curve else [])
    runs = [(d, n, span, start, seed) for d, n in designs for span in spans for start in starts[span] for seed in seeds]
    on_disk = dm.cube()["region_on_disk"].values.astype(bool) if "region_on_disk" in dm.cube() else None
    rows = []
    try:
        for design, n, span, start, seed in tqdm(runs, desc="long vs big", disable=not progress, unit="run"):
            train = training_span(dm, span, n, train=full["train"], start=start)
            dm.use_split({"train": train, "val": full["val"][::recipe.val_every], "test": full["test"]})
            net = fit(dm, model, seed=seed, recipe=recipe)
            spacing = pd.Timedelta(np.diff(dm.plan.times[train]).mean()) if train.size > 1 else pd.NaT
            seen = np.nan
            if on_disk is not None:
                test_time = on_disk[full["test"]]
                seen = float(test_time[:, on_disk[train].any(axis=0)].sum() / max(test_time.sum(), 1))
            rows.append({"design": design, "span_days": span, "window_start": str(np.datetime64(start, "D")),
                         "cadence": spacing.round("min"), "n_train": train.size,
                         "n_train_events": int(np.sum(dm.plan.target.flux[train] >= FLARE_CLASS_THRESHOLDS[LETTER])),
                         "seed": seed, "target": dm.plan.target.name, **_lesson_row(forecasts(net, dm), n_resamples),
                         "seen_regions": seen})
    finally:
        _restore(dm, full, normalizer)
    return pd.DataFrame(rows)


def _restore(dm: FlareDataModule, split: dict[str, np.ndarray], normalizer) -> None:
    """Give a data module its split and normalizer back (e.g. a checkpoint's) after an experiment."""
    dm.normalizer = normalizer
    dm.use_split(split, refit_normalizer=False)


STRATEGIES = ("no weighting", "loss weighting", "weighted sampler", "threshold moving")


def imbalance(dm: FlareDataModule, model: Mapping, *, strategies: Sequence[str] = STRATEGIES,
              seeds: Sequence[int] = SEEDS, train: np.ndarray | None = None, recipe: Recipe = Recipe(),
              n_resamples: int = evaluate.N_RESAMPLES, progress: bool = True) -> pd.DataFrame:
    """Class-imbalance strategies at >= M1 on ``dm``'s test block.

    ``no weighting``, ``loss weighting`` (:func:`flarelib.learn.data.class_weights` in the loss) and ``weighted
    sampler`` say yes at P >= 0.5; ``threshold moving`` is no weighting with the probability threshold
    chosen on validation to maximize TSS. ``train`` restricts the training steps (default: all).

    Returns columns ``strategy, seed, target, n_train, threshold, TSS, TSS_lo, TSS_hi, HSS, BSS, MAE_dex``.
    """
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; choose from {STRATEGIES}")
    full = {name: idx.copy() for name, idx in dm.plan.index.items()}
    weighting = {"no weighting": "none", "loss weighting": "loss", "weighted sampler": "sampler",
                 "threshold moving": "none"}
    before, normalizer = dm.class_weighting.scheme, dm.normalizer
    rows = []
    try:
        dm.use_split({"train": full["train"] if train is None else train, "val": full["val"][::recipe.val_every],
                      "test": full["test"]})
        for strategy, seed in tqdm([(s, k) for s in strategies for k in seeds], desc="imbalance",
                                   disable=not progress, unit="run"):
            dm.reweight(weighting[strategy])
            net = fit(dm, {**model, "class_head": True}, seed=seed, recipe=recipe)
            f = forecasts(net, dm)
            if strategy != "threshold moving":
                f.prob_threshold[(evaluate.MODEL, LETTER)] = 0.5
            rows.append({"strategy": strategy, "seed": seed, "target": dm.plan.target.name,
                         "n_train": dm.plan.index["train"].size,
                         "threshold": f.prob_threshold[(evaluate.MODEL, LETTER)], **_lesson_row(f, n_resamples)})
    finally:
        dm.reweight(before)
        _restore(dm, full, normalizer)
    return pd.DataFrame(rows)


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


ORIGINAL = "FlareNet original (12 h before each >=C1 flare + quiet)"
POOL_TEST, BLOCK_TEST = "sampled steps", "every step of the test block"


def selection(dm: FlareDataModule, model: Mapping, *, seeds: Sequence[int] = SEEDS, recipe: Recipe = Recipe(),
              fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), every_step: bool = True,
              n_resamples: int = evaluate.N_RESAMPLES, progress: bool = True) -> pd.DataFrame:
    """FlareNet's original sampling (:func:`original_sampling`), split two ways, at >= M1.

    * ``random split``: the sampled steps shuffled into train/val/test (``fractions``) as in the original,
      scored on its random test set (``test_on`` = sampled steps);
    * ``blocked split``: the sampled steps of ``dm``'s training blocks, validated on the validation block, and
      scored twice: on the sampled steps of the test block (the same kind of test set as the random split's, so
      the two differ only by the split) and on every step of the test block (what a forecaster meets);
    * ``every step``, blocked (with ``every_step``): the protocol of notebooks 04-05, on every step of the test
      block.

    Returns columns ``sampling, split, test_on, seed, target, n_train, n_test, n_test_events, TSS, TSS_lo, TSS_hi,
    HSS, BSS, MAE_dex`` (BSS against each training set's own base rate).
    """
    full = {name: idx.copy() for name, idx in dm.plan.index.items()}
    normalizer = dm.normalizer
    val = full["val"][::recipe.val_every]
    rows = []

    def score(net: FlareNet, sampling: str, split: str, test_on: str, index: dict, seed: int) -> None:
        dm.use_split(index, refit_normalizer=False)
        f = forecasts(net, dm)
        rows.append({"sampling": sampling, "split": split, "test_on": test_on, "seed": seed,
                     "target": dm.plan.target.name, "n_train": index["train"].size, "n_test": index["test"].size,
                     "n_test_events": int(np.nansum(f.test.event(FLARE_CLASS_THRESHOLDS[LETTER]))),
                     **_lesson_row(f, n_resamples)})

    try:
        for seed in tqdm(seeds, desc="selection", disable=not progress, unit="seed"):
            picked = original_sampling(dm, seed=seed)
            shuffled = np.random.default_rng(seed).permutation(picked)
            a, b = (np.cumsum(fractions)[:2] * shuffled.size).astype(int)
            random = {"train": shuffled[:a], "val": shuffled[a:b], "test": shuffled[b:]}
            dm.use_split(random)
            score(fit(dm, model, seed=seed, recipe=recipe), ORIGINAL, "random split", POOL_TEST, random, seed)
            blocked = {"train": np.intersect1d(picked, full["train"]), "val": val, "test": full["test"]}
            dm.use_split(blocked)
            net = fit(dm, model, seed=seed, recipe=recipe)
            score(net, ORIGINAL, "blocked split", POOL_TEST, {**blocked, "test": np.intersect1d(picked, full["test"])},
                  seed)
            score(net, ORIGINAL, "blocked split", BLOCK_TEST, blocked, seed)
            if every_step:
                every = {**full, "val": val}
                dm.use_split(every)
                score(fit(dm, model, seed=seed, recipe=recipe), "every step", "blocked split", BLOCK_TEST, every,
                      seed)
    finally:
        _restore(dm, full, normalizer)
    return pd.DataFrame(rows)


def inflation(table: pd.DataFrame, score: str = "TSS") -> str:
    """How much the random split inflates ``score`` over the blocked split, both scored on sampled steps (a
    :func:`selection` table), and how far the blocked split's score moves on every step of the test block."""
    original = table[table["sampling"] == ORIGINAL]

    def pick(split: str, test_on: str) -> pd.Series:
        rows = original[(original["split"] == split) & (original["test_on"] == test_on)]
        return rows.set_index("seed")[score]

    random, blocked, forecaster = pick("random split", POOL_TEST), pick("blocked split", POOL_TEST), pick(
        "blocked split", BLOCK_TEST)
    diff = (random - blocked).dropna()
    return (f"{table['dataset'].iloc[0]}: on sampled steps, the random split reports {score}>=M1 {random.mean():.2f} "
            f"and the blocked split {blocked.mean():.2f}: inflated by {diff.mean():+.2f} (per seed: "
            f"{', '.join(f'{v:+.2f}' for v in diff)}); on every step of the test block the blocked model scores "
            f"{forecaster.mean():.2f}.")


@dataclass(frozen=True)
class LessonSettings:
    """How big notebook 09's lessons are: the spans (days), the windows per short span, the learning curve or not,
    the seeds, the recipe, the thinning of the imbalance runs' training steps (every k-th), and whether the
    selection lesson also trains on every step."""

    spans: tuple[float, ...]
    windows: int
    curve: bool
    seeds: tuple[int, ...]
    recipe: Recipe
    imbalance_every: int
    every_step: bool  #: also train on every step for the selection lesson (the protocol of notebooks 04-05)


def lesson_settings(size: str, *, full: bool = False, seeds: int = 1) -> LessonSettings:
    """The lessons' settings for a suite size (``"small"``: the 14-day cube; ``"default"``: the year);
    ``full`` is ``make experiments`` (every span, the learning curve, every training step)."""
    chosen = SEEDS[:max(1, min(int(seeds), len(SEEDS)))]
    if size == "small":
        return LessonSettings((4.0, 12.0), 2, full, chosen, Recipe(max_epochs=4, patience=2), 1, full)
    if full:
        return LessonSettings((30.0, 90.0, 180.0, 365.0), 3, True, chosen, Recipe(max_epochs=30, patience=5), 1, True)
    # make lessons: the same questions with one seed, two spans, an eighth of the training steps for the imbalance
    # runs and a thinned validation block; enough epochs that a few hundred samples are seen many times
    return LessonSettings((30.0, 365.0), 2, False, chosen, Recipe(max_epochs=20, patience=4, val_every=3), 8, False)


def compare(table: pd.DataFrame, a: Mapping, b: Mapping, *, score: str = "TSS") -> str:
    """One computed sentence: the seed-mean ``score`` of the rows matching ``a`` against those matching ``b``
    (column -> value), with the verdict of their mean 90 % intervals (:func:`flarelib.evaluate.verdict`)."""
    def pick(where: Mapping) -> pd.DataFrame:
        rows = table
        for column, value in where.items():
            rows = rows[rows[column] == value]
        if rows.empty:
            raise ValueError(f"no rows with {dict(where)}")
        return rows

    ra, rb = pick(a), pick(b)
    mean = {name: rows[[score, f"{score}_lo", f"{score}_hi"]].mean() for name, rows in (("a", ra), ("b", rb))}
    word = evaluate.verdict(mean["a"][f"{score}_lo"], mean["a"][f"{score}_hi"], mean["b"][f"{score}_lo"],
                           mean["b"][f"{score}_hi"])
    def name(where: Mapping) -> str:
        return ", ".join(str(v) for v in where.values())

    def _fmt(m: pd.Series) -> str:
        return f"{m[score]:.2f} [{m[f'{score}_lo']:.2f}, {m[f'{score}_hi']:.2f}]"

    seeds = f"mean of {ra['seed'].nunique()} seed(s)" if "seed" in ra else ""
    return (f"{table['dataset'].iloc[0] if 'dataset' in table else ''}: {name(a)} {word} {name(b)} on "
            f"{score}>=M1: {_fmt(mean['a'])} vs {_fmt(mean['b'])} ({seeds}, 90% intervals).")


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
    parser.add_argument("--only", nargs="*", default=["models"], choices=["models"],
                        help="which experiments to run (the lessons run in notebook 09)")
    parser.add_argument("--seeds", type=int, default=1, help="how many of SEEDS to run per variant (default 1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    start = time.perf_counter()
    table, batchnorm = compare_models(config=args.config, seeds=SEEDS[:args.seeds])
    print(table.round(3).to_string(index=False))
    print(f"wrote {write_result(table, 'model_comparison')} in {(time.perf_counter() - start) / 60:.1f} min")
    if not batchnorm.empty:
        print(batchnorm.round(3).to_string(index=False))
        print(f"wrote {write_result(batchnorm, 'batchnorm')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
