"""The skill tables: a model's predictions and every baseline on the same samples (:func:`skill_table`,
``skill.csv``), the contingency, reliability, ROC and TSS-vs-threshold tables, skill per test block and the
rolling-origin baselines.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from flarelib.evaluate.baselines import base_rate, baseline_forecasts, log10_flux
from flarelib.evaluate.scoring import (
    LEVEL,
    MODEL,
    N_RESAMPLES,
    SEED,
    THRESHOLDS,
    block_labels,
    bootstrap_scores,
    brier_skill_score,
    choose_threshold,
    contingency_cells,
    format_interval,
    mae,
    reliability,
    roc_auc,
    roc_curve,
    scores,
    skill_per_block,
    threshold_label,
    tss_vs_threshold,
)
from flarelib.labels import data_kind
from flarelib.paths import results_dir

#: Columns of :func:`skill_table`, in order.
SKILL_COLUMNS = ["dataset", "synthetic", "split", "target", "predictor", "threshold", "n_samples", "n_events",
                 "TSS", "TSS_lo", "TSS_hi", "HSS", "HSS_lo", "HSS_hi", "BSS", "MAE_dex"]


@dataclass
class SplitForecasts:
    """Every predictor on one split's samples (cube steps ``time_index``)."""

    split: str
    time_index: np.ndarray
    times: np.ndarray  #: datetime64[ns]
    flux: np.ndarray  #: true target flux, W/m²
    log: dict[str, np.ndarray] = field(default_factory=dict)  #: predictor -> log10 W/m²
    prob: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  #: predictor -> {letter: P(event)}

    @property
    def true_log(self) -> np.ndarray:
        return log10_flux(self.flux)

    def event(self, threshold: float) -> np.ndarray:
        """1 where the true flux >= ``threshold`` (W/m²), 0 below, NaN without truth."""
        return np.where(np.isfinite(self.flux), (self.flux >= threshold).astype(float), np.nan)


@dataclass
class Forecasts:
    """The model and every baseline on the validation and test samples, with the validation-chosen
    probability thresholds. Made by :func:`collect_forecasts`; read by :func:`skill_table` and the
    diagnostic tables."""

    dataset: str
    synthetic: bool
    target: str
    thresholds: dict[str, float]  #: class letter -> W/m²
    base_rate: dict[str, float]  #: class letter -> training base rate
    val: SplitForecasts
    test: SplitForecasts
    prob_threshold: dict[tuple[str, str], float] = field(default_factory=dict)  #: (predictor, letter) -> chosen

    @property
    def predictors(self) -> list[str]:
        return list(dict.fromkeys([*self.test.log, *self.test.prob]))

    def split(self, split: str) -> SplitForecasts:
        return {"val": self.val, "test": self.test}[split]

    def yes(self, split: str, predictor: str, letter: str) -> np.ndarray:
        """Yes forecasts (1/0, NaN = none) of ``predictor`` at class ``letter`` on ``split``: its probability
        against the validation-chosen threshold, or else its flux against the class threshold."""
        s = self.split(split)
        probs = s.prob.get(predictor, {})
        if letter in probs:
            p = np.asarray(probs[letter], float)
            return np.where(np.isfinite(p), (p >= self.prob_threshold[(predictor, letter)]).astype(float), np.nan)
        log = np.asarray(s.log[predictor], float)
        return np.where(np.isfinite(log), (log >= np.log10(self.thresholds[letter])).astype(float), np.nan)

    def frame(self, rows: list[dict]) -> pd.DataFrame:
        head = {"dataset": self.dataset, "synthetic": self.synthetic, "target": self.target}
        return pd.DataFrame([{**head, **row} for row in rows])


def _dataset_name(dm) -> str:
    attrs = getattr(dm, "cube_attrs", {}) or {}
    return f"{data_kind(bool(dm.synthetic))} {attrs.get('name', Path(dm.store_path).name)}"


def _model_outputs(ds: xr.Dataset, thresholds: Mapping[str, float]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(log10 flux, {class letter: P(event)}) of a model's predictions (:func:`flarelib.learn.predict`)."""
    head = {letter: np.asarray(ds[f"prob_{letter}"].values, float) for letter in thresholds if f"prob_{letter}" in ds}
    return np.asarray(ds["pred"].values, float), head


def _split_forecasts(ds: xr.Dataset, dm, thresholds: Mapping[str, float],
                     others: Mapping[str, xr.Dataset] | None = None) -> SplitForecasts:
    index = np.asarray(ds["time_index"].values, np.int64)
    flux = np.asarray(dm.plan.target.flux, float)[index]
    true = np.asarray(ds["true"].values, float)
    expected = log10_flux(flux)
    if true.shape != expected.shape or not np.allclose(true, expected, atol=1e-4, equal_nan=True):
        raise ValueError(f"predictions of split {ds.attrs.get('split', '?')!r} do not match the data module's "
                         f"target {dm.plan.target.name!r} at their time_index (another cube or target?)")
    pred, head = _model_outputs(ds, thresholds)
    times = np.asarray(dm.plan.times)[index].astype("datetime64[ns]")
    out = SplitForecasts(str(ds.attrs.get("split", "?")), index, times, flux)
    out.log[MODEL] = pred
    if head:
        out.prob[MODEL] = head
        out.log[f"{MODEL} regression"] = pred
    for name, other in (others or {}).items():
        if not np.array_equal(np.asarray(other["time_index"].values, np.int64), index):
            raise ValueError(f"{name!r} predicted other steps than the model on split {out.split!r}")
        out.log[name], probs = _model_outputs(other, thresholds)
        if probs:
            out.prob[name] = probs
    for name, (log, probs) in baseline_forecasts(dm, index, thresholds).items():
        out.log[name] = log if log is not None else np.full(index.size, np.nan)
        if probs:
            out.prob[name] = probs
    return out


def collect_forecasts(val: xr.Dataset, test: xr.Dataset, dm, *,
                      thresholds: Mapping[str, float] = THRESHOLDS,
                      others: Mapping[str, tuple[xr.Dataset, xr.Dataset]] | None = None) -> Forecasts:
    """The model's predictions on ``val`` and ``test`` (from :func:`flarelib.learn.predict`) and every
    baseline on exactly the same cube steps, with each probability predictor's yes/no threshold chosen
    on ``val`` (:func:`choose_threshold`).

    ``dm`` is the set-up :class:`flarelib.learn.data.FlareDataModule` the predictions were made on (checked:
    their ``true`` must equal its target at their ``time_index``). ``others`` are reference models scored
    beside it, ``{name: (val predictions, test predictions)}`` on the same steps: e.g. the GOES-only model
    that a CNN with GOES inputs must beat to show that its images add information.
    """
    thresholds = dict(thresholds)
    others = dict(others or {})
    f = Forecasts(_dataset_name(dm), bool(dm.synthetic), str(test.attrs.get("target", dm.plan.target.name)), thresholds,
                  {letter: base_rate(dm, t) for letter, t in thresholds.items()},
                  _split_forecasts(val, dm, thresholds, {k: v[0] for k, v in others.items()}),
                  _split_forecasts(test, dm, thresholds, {k: v[1] for k, v in others.items()}))
    for name, probs in f.test.prob.items():
        for letter in (k for k in probs if k in thresholds):
            f.prob_threshold[(name, letter)] = choose_threshold(f.val.prob[name][letter],
                                                                f.val.event(thresholds[letter]))
    return f


def skill_table(val: xr.Dataset, test: xr.Dataset, dm, *, thresholds: Mapping[str, float] = THRESHOLDS,
                n_resamples: int = N_RESAMPLES, seed: int = SEED, level: float = LEVEL,
                forecasts: Forecasts | None = None) -> pd.DataFrame:
    """The skill table of the model and every baseline on the test samples, with bootstrap intervals.

    Args:
        val, test: the model's predictions (:func:`flarelib.learn.predict` on ``"val"`` and ``"test"``).
        dm: the set-up data module they were made on.
        thresholds: class letter -> W/m².
        n_resamples, seed, level: of the paired day-block bootstrap (:func:`bootstrap_scores`).
        forecasts: a :func:`collect_forecasts` result to reuse (computed if None).

    Returns one row per (dataset, target, predictor, threshold) with exactly :data:`SKILL_COLUMNS`:
    ``n_samples`` / ``n_events`` are the test samples with a forecast and a truth / the events among them;
    TSS and HSS with their ``level`` intervals; BSS against the training base rate (NaN for a predictor
    without probabilities); MAE_dex of its log10 flux (log10 W/m²).
    """
    f = forecasts if forecasts is not None else collect_forecasts(val, test, dm, thresholds=thresholds)
    rows = []
    for letter, threshold in f.thresholds.items():
        event = f.test.event(threshold)
        yes = {name: f.yes("test", name, letter) for name in f.predictors}
        boot = bootstrap_scores(f.test.times, event, yes, n_resamples=n_resamples, seed=seed, level=level)
        for name in f.predictors:
            valid = np.isfinite(yes[name]) & np.isfinite(event)
            prob = f.test.prob.get(name, {}).get(letter)
            rows.append({"split": "test", "predictor": name, "threshold": threshold_label(letter),
                         "n_samples": int(valid.sum()), "n_events": int(np.sum(event[valid] == 1)),
                         **boot.loc[name].to_dict(),
                         "BSS": np.nan if prob is None else brier_skill_score(prob, event, f.base_rate[letter]),
                         "MAE_dex": mae(f.test.log[name], f.test.true_log)})
    return f.frame(rows)[SKILL_COLUMNS]


def summary_columns(table: pd.DataFrame) -> pd.DataFrame:
    """A :func:`skill_table` for reading: TSS and HSS as ``"0.41 [0.30, 0.52]"``, BSS and MAE rounded,
    indexed by (target, threshold, predictor)."""
    out = table.set_index(["target", "threshold", "predictor"])
    shown = pd.DataFrame(index=out.index)
    shown["n_events"] = out["n_events"]
    shown["n_samples"] = out["n_samples"]
    for score in ("TSS", "HSS"):
        shown[score] = [format_interval(v, lo, hi)
                        for v, lo, hi in zip(out[score], out[f"{score}_lo"], out[f"{score}_hi"])]
    shown["BSS"] = out["BSS"].round(3)
    shown["MAE_dex"] = out["MAE_dex"].round(3)
    return shown


def write_skill_csv(table: pd.DataFrame | Sequence[pd.DataFrame], path: str | Path | None = None, *,
                    append: bool = False) -> Path:
    """Write one or several skill tables (e.g. one per target) as one CSV; returns its path.

    ``path`` defaults to ``flarelib.paths.results_dir() / "skill.csv"`` (the folder is created). With
    ``append``, rows already in the file for other (dataset, target, split) are kept and those for the
    same ones are replaced, so that notebooks for different targets can add to one file.
    """
    tables = [table] if isinstance(table, pd.DataFrame) else list(table)
    out = pd.concat(tables, ignore_index=True)[SKILL_COLUMNS]
    path = Path(path) if path is not None else results_dir() / "skill.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    if append and path.exists():
        old = pd.read_csv(path)
        keys = ["dataset", "target", "split"]
        new_keys = set(map(tuple, out[keys].astype(str).to_numpy()))
        keep = [tuple(k) not in new_keys for k in old[keys].astype(str).to_numpy()]
        out = pd.concat([old[keep], out], ignore_index=True)[SKILL_COLUMNS]
    out.to_csv(path, index=False)
    return path


def contingency_table(forecasts: Forecasts) -> pd.DataFrame:
    """TP, FP, FN, TN, TSS and HSS of every predictor on the test samples with the yes forecasts of
    :func:`skill_table`, indexed by (target, predictor, threshold) (the input of
    :func:`flarelib.show.plotting.plot_confusion`)."""
    f = forecasts
    rows = []
    for letter, threshold in f.thresholds.items():
        event = f.test.event(threshold)
        for name in f.predictors:
            cells = contingency_cells(f.yes("test", name, letter)[:, None], event).sum(axis=0)[:, 0]
            counts = dict(zip(("TP", "FP", "FN", "TN"), (int(c) for c in cells)))
            s = scores(counts)
            rows.append({"predictor": name, "threshold": threshold_label(letter), **counts,
                         "TSS": s["TSS"], "HSS": s["HSS"]})
    return f.frame(rows).set_index(["target", "predictor", "threshold"])


def _probability_rows(f: Forecasts, split: str, make: Callable[[np.ndarray, np.ndarray, str, str], pd.DataFrame]
                      ) -> pd.DataFrame:
    s = f.split(split)
    parts = []
    for name, probs in s.prob.items():
        for letter, prob in probs.items():
            if letter not in f.thresholds:
                continue
            part = make(prob, s.event(f.thresholds[letter]), name, letter)
            part.insert(0, "threshold", threshold_label(letter))
            part.insert(0, "predictor", name)
            part.insert(0, "split", split)
            parts.append(part)
    head = {"dataset": f.dataset, "synthetic": f.synthetic, "target": f.target}
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    for k, (column, value) in enumerate(head.items()):
        out.insert(k, column, value)
    return out


def reliability_table(forecasts: Forecasts, *, split: str = "test", bins: int = 10) -> pd.DataFrame:
    """:func:`reliability` of every probability predictor and class on ``split``, labelled with dataset,
    synthetic, target, split, predictor and threshold."""
    return _probability_rows(forecasts, split, lambda p, e, name, letter: reliability(p, e, bins))


def roc_table(forecasts: Forecasts, *, split: str = "test") -> pd.DataFrame:
    """:func:`roc_curve` of every probability predictor and class on ``split``, with its ``AUC``."""
    def make(p, e, name, letter):
        curve = roc_curve(p, e)
        curve["AUC"] = roc_auc(p, e)
        return curve
    return _probability_rows(forecasts, split, make)


def tss_threshold_table(forecasts: Forecasts, *, split: str = "val",
                        grid: np.ndarray | None = None) -> pd.DataFrame:
    """:func:`tss_vs_threshold` of every probability predictor and class on ``split`` (default the
    validation block, where the threshold is chosen), with the ``chosen`` threshold of each."""
    def make(p, e, name, letter):
        curve = tss_vs_threshold(p, e, grid)
        curve["chosen"] = forecasts.prob_threshold[(name, letter)]
        return curve
    return _probability_rows(forecasts, split, make)


def skill_by_test_block(forecasts: Forecasts, cadence: np.timedelta64) -> pd.DataFrame:
    """:func:`skill_per_block` of the model and every baseline over the test blocks of a blocked split
    (probabilistic predictors with their validation-chosen thresholds)."""
    test = forecasts.test
    names = [n for n in forecasts.predictors if n in test.log]
    yes = {n: {letter: forecasts.yes("test", n, letter) for letter in forecasts.thresholds}
           for n in names if n in test.prob}
    return skill_per_block(test.true_log, {n: test.log[n] for n in names}, block_labels(test.times, cadence),
                           thresholds=forecasts.thresholds, yes=yes)


def rolling_origin_baselines(dm, folds: Sequence[dict[str, np.ndarray]], *,
                             thresholds: Mapping[str, float] = THRESHOLDS) -> pd.DataFrame:
    """Rolling-origin evaluation of the reference forecasts: for each fold (``{"train", "val", "test"}`` cube
    step indices, e.g. :func:`flarelib.learn.data.rolling_origin`), every baseline is calibrated on that fold's
    training steps and scored on its test block. Returns :func:`skill_per_block` rows, block = fold number.

    The model is not retrained per fold here (that is an experiment, not a notebook run).
    """
    per_fold = []
    for fold in folds:
        # a view whose split is this fold's: the baselines calibrate on its train
        view = dm.viewed_with(dataclasses.replace(dm.plan, index={name: idx[np.isfinite(dm.plan.target.log_flux[idx])]
                                                                  for name, idx in fold.items()}))
        test = view.plan.index["test"]
        logs = {name: np.asarray(log, float) for name, (log, _) in baseline_forecasts(view, test, thresholds).items()
                if log is not None}
        per_fold.append((test, logs))
    names = list(dict.fromkeys(n for _, logs in per_fold for n in logs))
    trues = [dm.plan.target.log_flux[test].astype(float) for test, _ in per_fold]
    preds = {n: [logs.get(n, np.full(test.size, np.nan)) for test, logs in per_fold] for n in names}
    blocks = [np.full(test.size, f"fold {k + 1}") for k, (test, _) in enumerate(per_fold)]
    return skill_per_block(np.concatenate(trues), {n: np.concatenate(v) for n, v in preds.items()},
                           np.concatenate(blocks), thresholds=thresholds)
