"""The skill tables: a model's predictions and every baseline on the same samples (:func:`skill_table`,
``skill.csv``), the paired comparisons behind every verdict (:func:`paired_table`, ``paired.csv``), the
contingency, reliability, ROC and TSS-vs-threshold tables, skill per test block and the rolling-origin
baselines.

Evaluation protocol v3: intervals come from a circular block bootstrap whose block is the target's measured
memory (:func:`flarelib.evaluate.scoring.memory_block` on every usable step of the cube); a verdict between two
predictors comes from the paired bootstrap of their difference on the same samples
(:func:`flarelib.evaluate.scoring.paired_difference`), never from overlapping marginal intervals.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from flarelib.evaluate.baselines import (
    GOES_HISTORY_MODEL,
    LATENT_ORACLE,
    OBSERVABLE_ORACLE,
    base_rate,
    baseline_forecasts,
    distinct_events,
    log10_flux,
)
from flarelib.evaluate.scoring import (
    DAY,
    LEVEL,
    MODEL,
    N_RESAMPLES,
    SEED,
    THRESHOLDS,
    block_labels,
    choose_threshold,
    contingency_cells,
    describe_target,
    format_interval,
    interval,
    mae,
    memory_block,
    memory_curve,
    paired_difference,
    paired_verdict,
    reliability,
    resample_scores,
    roc_auc,
    roc_curve,
    scores,
    skill_per_block,
    threshold_label,
    tss_vs_threshold,
    within_block_auc,
)
from flarelib.labels import data_kind
from flarelib.learn.data import FlareDataModule
from flarelib.paths import results_dir

#: Columns of :func:`skill_table`, in order.
SKILL_COLUMNS = ["dataset", "synthetic", "split", "target", "predictor", "threshold", "n_samples", "n_events",
                 "n_events_distinct", "TSS", "TSS_lo", "TSS_hi", "HSS", "HSS_lo", "HSS_hi", "BSS", "BSS_lo", "BSS_hi",
                 "AUC", "AUC_within", "MAE_dex", "block_hours"]

#: Columns of :func:`paired_table` (``paired.csv``), in order.
PAIRED_COLUMNS = ["dataset", "synthetic", "target", "threshold", "predictor", "reference", "n_samples",
                  "n_events_distinct", "dTSS", "dTSS_lo", "dTSS_hi", "p_not_better", "dBSS", "dBSS_lo", "dBSS_hi",
                  "block_hours"]


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
    block: dict[str, np.timedelta64] = field(default_factory=dict)  #: class letter -> bootstrap block (memory)
    distinct: dict[str, int] = field(default_factory=dict)  #: class letter -> distinct test events
    cadence: np.timedelta64 | None = None  #: the cube's, for the test blocks of :func:`within_block_auc`

    def block_of(self, letter: str) -> np.timedelta64:
        """The bootstrap block of class ``letter``'s events: their measured memory (one day when not measured)."""
        return self.block.get(letter, np.timedelta64(DAY, "h"))

    def block_hours(self, letter: str) -> float:
        return float(self.block_of(letter) / np.timedelta64(1, "h"))

    def score(self, split: str, predictor: str, letter: str) -> np.ndarray:
        """What ranks ``predictor``'s samples for class ``letter`` (ROC, AUC): its probability, else its flux."""
        s = self.split(split)
        prob = s.prob.get(predictor, {}).get(letter)
        return np.asarray(prob if prob is not None else s.log[predictor], float)

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

    def choose_prob_thresholds(self) -> None:
        """Fill :attr:`prob_threshold`: for each probability predictor and class, the threshold that maximizes
        TSS on the validation split (:func:`choose_threshold`), never on test."""
        for name, probs in self.test.prob.items():
            for letter in (k for k in probs if k in self.thresholds):
                self.prob_threshold[(name, letter)] = choose_threshold(self.val.prob[name][letter],
                                                                       self.val.event(self.thresholds[letter]))

    def frame(self, rows: list[dict]) -> pd.DataFrame:
        head = {"dataset": self.dataset, "synthetic": self.synthetic, "target": self.target}
        return pd.DataFrame([{**head, **row} for row in rows])


def _dataset_name(dm: FlareDataModule) -> str:
    attrs = getattr(dm, "cube_attrs", {}) or {}
    return f"{data_kind(bool(dm.synthetic))} {attrs.get('name', Path(dm.store_path).name)}"


def _model_outputs(ds: xr.Dataset, thresholds: Mapping[str, float]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(log10 flux, {class letter: P(event)}) of a model's predictions (:func:`flarelib.learn.predict`)."""
    head = {letter: np.asarray(ds[f"prob_{letter}"].values, float) for letter in thresholds if f"prob_{letter}" in ds}
    return np.asarray(ds["pred"].values, float), head


def _split_forecasts(ds: xr.Dataset, dm: FlareDataModule, thresholds: Mapping[str, float],
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


def _target_events(dm: FlareDataModule, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(times, 0/1 event or NaN) of ``dm``'s target at ``threshold`` over every usable step of the cube."""
    steps = np.asarray(dm.plan.usable, np.int64)
    flux = np.asarray(dm.plan.target.flux, float)[steps]
    return (np.asarray(dm.plan.times, "datetime64[ns]")[steps],
            np.where(np.isfinite(flux), (flux >= threshold).astype(float), np.nan))


def target_memory(dm: FlareDataModule, thresholds: Mapping[str, float] = THRESHOLDS) -> dict[str, np.timedelta64]:
    """The bootstrap block of each class threshold for ``dm``'s target: the :func:`memory_block` of its event
    series over every usable step of the cube, so that blocks span that series' memory wherever the test
    samples lie. Each threshold has its own: on a sun whose activity rises through the year, "a flare >= C1 in
    the next 24 h" stays on for weeks, while the >= M1 series forgets in days."""
    return {letter: memory_block(*_target_events(dm, t)) for letter, t in thresholds.items()}


def target_memory_curve(dm: FlareDataModule, threshold: float, *,
                        max_days: float = 30.0) -> tuple[np.ndarray, np.ndarray, float]:
    """``(lags in hours, autocorrelation, tau in hours)`` of ``dm``'s target event series at ``threshold``
    (W/m²) over every usable step, lags up to ``max_days``: what notebook 05 plots beside the block it
    chose (:func:`target_memory`)."""
    times, event = _target_events(dm, threshold)
    return memory_curve(times, event, max_days=max_days)


def collect_forecasts(val: xr.Dataset, test: xr.Dataset, dm: FlareDataModule, *,
                      thresholds: Mapping[str, float] = THRESHOLDS,
                      others: Mapping[str, tuple[xr.Dataset, xr.Dataset]] | None = None) -> Forecasts:
    """The model's predictions on ``val`` and ``test`` (from :func:`flarelib.learn.predict`) and every
    baseline on exactly the same cube steps, with each probability predictor's yes/no threshold chosen
    on ``val`` (:func:`choose_threshold`), the bootstrap block (:func:`target_memory`) and the distinct
    test events per class (:func:`flarelib.evaluate.baselines.distinct_events`).

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
                  _split_forecasts(test, dm, thresholds, {k: v[1] for k, v in others.items()}),
                  block=target_memory(dm, thresholds), cadence=dm.plan.cadence)
    f.distinct.update({letter: distinct_events(dm, f.test.time_index, t) for letter, t in thresholds.items()})
    f.choose_prob_thresholds()
    return f


def skill_table(val: xr.Dataset, test: xr.Dataset, dm: FlareDataModule, *, thresholds: Mapping[str, float] = THRESHOLDS,
                n_resamples: int = N_RESAMPLES, seed: int = SEED, level: float = LEVEL,
                forecasts: Forecasts | None = None) -> pd.DataFrame:
    """The skill table of the model and every baseline on the test samples, with bootstrap intervals.

    Args:
        val, test: the model's predictions (:func:`flarelib.learn.predict` on ``"val"`` and ``"test"``).
        dm: the set-up data module they were made on.
        thresholds: class letter -> W/m².
        n_resamples, seed, level: of the block bootstrap (:func:`resample_scores`, blocks of the target's memory).
        forecasts: a :func:`collect_forecasts` result to reuse (computed if None).

    Returns one row per (dataset, target, predictor, threshold) with exactly :data:`SKILL_COLUMNS`:
    ``n_samples`` / ``n_events`` are the test samples with a forecast and a truth / the events among them, and
    ``n_events_distinct`` the distinct flares behind those events; TSS, HSS and BSS (against the training base
    rate; NaN for a predictor without probabilities) with their ``level`` intervals; ``AUC`` of its probability
    (else its flux) and ``AUC_within`` the same over pairs inside one test block (:func:`within_block_auc`);
    MAE_dex of its log10 flux (log10 W/m²); ``block_hours``, the bootstrap block.
    """
    f = forecasts if forecasts is not None else collect_forecasts(val, test, dm, thresholds=thresholds)
    return forecasts_skill_table(f, n_resamples=n_resamples, seed=seed, level=level)


def forecasts_skill_table(forecasts: Forecasts, *, n_resamples: int = N_RESAMPLES, seed: int = SEED,
                          level: float = LEVEL) -> pd.DataFrame:
    """The skill table (:data:`SKILL_COLUMNS`) of every predictor of ``forecasts`` on its test samples: the body of
    :func:`skill_table`, for forecasts made without a data module (e.g. :mod:`flarelib.evaluate.real`)."""
    f = forecasts
    blocks = block_labels(f.test.times, f.cadence) if f.cadence is not None else np.zeros(f.test.times.size)
    rows = []
    for letter, threshold in f.thresholds.items():
        event = f.test.event(threshold)
        yes = {name: f.yes("test", name, letter) for name in f.predictors}
        probs = {name: p[letter] for name, p in f.test.prob.items() if letter in p}
        r = resample_scores(f.test.times, event, yes, probs=probs, reference_rate=f.base_rate[letter],
                            block=f.block_of(letter), n_resamples=n_resamples, seed=seed)
        intervals = {score: interval(draws, level) for score, draws in
                     (("TSS", r.tss_r), ("HSS", r.hss_r), ("BSS", r.bss_r))}
        for j, name in enumerate(f.predictors):
            valid = np.isfinite(yes[name]) & np.isfinite(event)
            score = f.score("test", name, letter)
            rows.append({"split": "test", "predictor": name, "threshold": threshold_label(letter),
                         "n_samples": int(valid.sum()), "n_events": int(np.sum(event[valid] == 1)),
                         "n_events_distinct": f.distinct.get(letter, -1),
                         **{key: value for s, point in (("TSS", r.tss), ("HSS", r.hss), ("BSS", r.bss))
                            for key, value in ((s, point[j]), (f"{s}_lo", intervals[s][0, j]),
                                               (f"{s}_hi", intervals[s][1, j]))},
                         "AUC": roc_auc(score, event), "AUC_within": within_block_auc(score, event, blocks),
                         "MAE_dex": mae(f.test.log[name], f.test.true_log),
                         "block_hours": f.block_hours(letter)})
    return f.frame(rows)[SKILL_COLUMNS]


def default_pairs(predictors: Sequence[str], model: str = MODEL) -> list[tuple[str, str]]:
    """The comparisons a skill table's verdicts need: ``model`` against every other predictor (its own variants
    such as ``FlareNet regression`` left out), and on the synthetic sun the latent oracle against 24 h
    flare-history persistence (how much headroom the data leave) and the observable oracle against the GOES +
    flare-history model (how much the images can add at best to what a forecaster knows without them)."""
    names = list(predictors)
    pairs = []
    if model in names:
        pairs += [(model, name) for name in names if name != model and not name.startswith(model + " ")]
    for oracle, reference in ((LATENT_ORACLE, "flare-history persistence 24h"),
                              (OBSERVABLE_ORACLE, GOES_HISTORY_MODEL)):
        if oracle in names and reference in names:
            pairs.append((oracle, reference))
    return pairs


def paired_table(forecasts: Forecasts, pairs: Sequence[tuple[str, str]] | None = None, *,
                 n_resamples: int = N_RESAMPLES, seed: int = SEED, level: float = LEVEL) -> pd.DataFrame:
    """The paired block bootstrap of every ``(predictor, reference)`` pair on the test samples both forecast:
    one row per pair and class threshold with exactly :data:`PAIRED_COLUMNS` (``paired.csv``).

    ``dTSS`` = TSS(predictor) - TSS(reference) with its ``level`` interval and ``p_not_better`` (the share of
    resamples where the predictor does not beat the reference); ``dBSS`` likewise where both give
    probabilities. Pairs default to :func:`default_pairs`. Verdicts (:func:`verdict_sentences`) read this
    table.
    """
    f = forecasts
    pairs = default_pairs(f.predictors) if pairs is None else list(pairs)
    unknown = sorted({name for pair in pairs for name in pair} - set(f.predictors))
    if unknown:
        raise ValueError(f"no predictor {unknown} in these forecasts; they have {f.predictors}")
    rows = []
    for letter, threshold in f.thresholds.items():
        event = f.test.event(threshold)
        for a, b in pairs:
            prob_a, prob_b = (f.test.prob.get(name, {}).get(letter) for name in (a, b))
            both_prob = prob_a is not None and prob_b is not None
            d = paired_difference(f.test.times, event, f.yes("test", a, letter), f.yes("test", b, letter),
                                  prob_a=prob_a if both_prob else None, prob_b=prob_b if both_prob else None,
                                  reference_rate=f.base_rate[letter], block=f.block_of(letter),
                                  n_resamples=n_resamples,
                                  seed=seed, level=level)
            rows.append({"threshold": threshold_label(letter), "predictor": a, "reference": b,
                         "n_events_distinct": f.distinct.get(letter, -1), **d,
                         "block_hours": f.block_hours(letter)})
    return f.frame(rows).reindex(columns=PAIRED_COLUMNS)


def write_paired_csv(table: pd.DataFrame | Sequence[pd.DataFrame], path: str | Path | None = None) -> Path:
    """Write one or several :func:`paired_table` results as one CSV (default ``results_dir() / "paired.csv"``)."""
    tables = [table] if isinstance(table, pd.DataFrame) else list(table)
    out = pd.concat(tables, ignore_index=True)[PAIRED_COLUMNS]
    path = Path(path) if path is not None else results_dir() / "paired.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False)
    return path


def verdict_sentences(paired: pd.DataFrame, *, model: str = MODEL, level: float = LEVEL) -> list[str]:
    """One sentence per (dataset, target, threshold) of a :func:`paired_table`: ``model`` against every
    reference, each verdict from the paired interval of ΔTSS (:func:`paired_verdict`).

    Example: ``"SYNTHETIC synthetic-sun-default, ≥M1, 1h/24h forecast: FlareNet beats climatology (ΔTSS +0.41
    [+0.30, +0.52]), ties flare-history persistence 24h (ΔTSS +0.03 [-0.10, +0.15]) (1290 test samples, 23
    distinct events; paired 90% block bootstrap, 9-day blocks)."``
    """
    lines = []
    keys = ["dataset", "target", "threshold"]
    for (dataset, target, threshold), group in paired.groupby(keys, sort=False):
        own = group[group["predictor"] == model]
        if own.empty:
            continue
        parts = []
        for _, row in own.iterrows():
            said = paired_verdict(row["dTSS_lo"], row["dTSS_hi"])
            delta = ("ΔTSS undefined" if not np.isfinite(row["dTSS"])
                     else f"ΔTSS {row['dTSS']:+.2f} [{row['dTSS_lo']:+.2f}, {row['dTSS_hi']:+.2f}]")
            parts.append({"beats": f"beats {row['reference']} ({delta})", "ties": f"ties {row['reference']} ({delta})",
                          "loses": f"loses to {row['reference']} ({delta})",
                          "undefined": f"cannot be compared with {row['reference']} ({delta})"}[said])
        first = own.iloc[0]
        n_events = int(first["n_events_distinct"])
        # each pair is scored on the samples both forecast: the model's own are the most any pair has
        tail = (f" ({int(own['n_samples'].max())} test samples, {n_events} distinct events; paired "
                f"{100 * level:.0f}% block bootstrap, {first['block_hours'] / 24:.0f}-day blocks)")
        if n_events == 0:
            tail += "; no events, so TSS is undefined"
        elif n_events < 20:
            tail += "; fewer than 20 distinct events, so the intervals are wide"
        head = f"{dataset}, {str(threshold).replace('>=', '≥')}, {describe_target(str(target))}: "
        lines.append(head + f"{model} " + ", ".join(parts) + tail + ".")
    return lines


def summary_columns(table: pd.DataFrame) -> pd.DataFrame:
    """A :func:`skill_table` for reading: TSS, HSS and BSS as ``"0.41 [0.30, 0.52]"``, AUC (pooled and within
    test blocks) and MAE rounded, indexed by (target, threshold, predictor)."""
    out = table.set_index(["target", "threshold", "predictor"])
    shown = pd.DataFrame(index=out.index)
    for column in ("n_samples", "n_events", "n_events_distinct"):
        shown[column] = out[column]
    for score in ("TSS", "HSS", "BSS"):
        shown[score] = [format_interval(v, lo, hi)
                        for v, lo, hi in zip(out[score], out[f"{score}_lo"], out[f"{score}_hi"])]
    for column in ("AUC", "AUC_within", "MAE_dex"):
        shown[column] = out[column].round(3)
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


def rolling_origin_baselines(dm: FlareDataModule, folds: Sequence[dict[str, np.ndarray]], *,
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
