"""The talk's lessons on the real Sun: how long the training data are (:func:`real_long_data`), how they are
selected (:func:`real_split_protocols`), and what the base rate does to the scores (:func:`base_rate_by_year`,
:func:`skill_by_year`), with the McIntosh-Poisson and McIntosh logistic references of :mod:`.real` (full disk,
daily 00:30 UT issue times, "a flare at or above C1 / M1 / X1 peaks in the next 24 h").

Every comparison scores its variants on the **same test rows** (the cycle-24 days of :data:`.real.TEST_SPAN`),
with the intervals of :func:`.skill.forecasts_skill_table` (circular block bootstrap, blocks of the measured
memory of the test days' event series, 90 %) and the paired differences of :func:`.skill.paired_table`. BSS is
always against one reference for all rows: the climatology of the default training span (that of
``real_skill``), so that BSS differences are differences of Brier scores.

**Data should be long** (:func:`real_long_data`): fits on the last 1, 3, 12, 36 and 150 months before the
test period (ending 2010-12-31; 150 months start 1998-07-01). The yes/no thresholds of every span are chosen
on the same validation days, :data:`LONG_VAL_SPAN` (1996-08-01 to 1998-06-30: every day before the longest
span), each span with its own model. Why there: the days must lie outside every training span (2005-2008,
the default validation span, lies inside the 36- and 150-month spans, so their thresholds would be chosen
in-sample and flatter the long spans), and they must be the same days for every span (each span's own last
months would hand the 1-month span a threshold chosen on 6 days without a flare, and tie the threshold's
quality to the span's length, which is the thing measured). AUC and BSS need no threshold at all.

**Training data selection is critical** (:func:`real_split_protocols`):

* ``chronological``: fit cycle 23 (1996-08 to 2004-12), thresholds on 2005-2008, test cycle 24 (the default).
* ``tri-monthly`` (as the issue describes Pandey et al. 2023's tri-monthly folds): calendar months dealt
  round-robin into 3 folds (January, April, July, October in fold 0, ...), so train and test share years
  and neighbouring months. Fold ``k``'s model is fitted on every month of 1996-2018 not in fold ``k``; it
  forecasts fold ``k``'s months. The out-of-fold forecasts cover every validation and test day once: the
  threshold is chosen on the out-of-fold 2005-2008 forecasts (the chronological validation days) and the
  pooled out-of-fold forecasts are scored on exactly the chronological test rows. Rows ``tri-monthly fold
  k`` score fold ``k``'s model alone on its test months, with the threshold chosen on its own 2005-2008
  months, beside the chronological model on the same rows.
* ``seasonal`` (as Surya 2025): the same with the four quarters of the year as folds (test = one quarter of
  every year 2011-2018, train = the other three quarters of every year 1996-2018).
* The validation phase: one model fitted on 2000-2008 (the maximum and decline of cycle 23), its thresholds
  chosen either on the rising phase 1997-1999 or on the minimum 2009-2010 (both outside the fit), scored on
  cycle 24: what the choice of validation days does to the threshold and to test TSS.

``dTSS_vs_chronological`` is the paired difference (protocol - chronological) on the protocol's test rows: how
much the protocol flatters the score against an honest forecast of the same days.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from flarelib.evaluate.real import (
    MCINTOSH_LOGISTIC,
    MCINTOSH_POISSON,
    REAL_THRESHOLDS,
    TEST_SPAN,
    VAL_SPAN,
    RealForecasts,
    RealHistory,
    RealSplit,
    history_issue_times,
    in_span,
    real_forecasts,
    window_flares,
)
from flarelib.evaluate.scoring import (
    LEVEL,
    N_RESAMPLES,
    SEED,
    auc_interval,
    choose_threshold,
    interval,
    paired_verdict,
    resample_scores,
    threshold_label,
)
from flarelib.evaluate.skill import Forecasts, SplitForecasts, forecasts_skill_table, paired_table
from flarelib.paths import results_dir

log = logging.getLogger(__name__)

#: The references the lessons fit again and again.
LESSON_PREDICTORS = (MCINTOSH_POISSON, MCINTOSH_LOGISTIC)
#: Lengths of the training spans of :func:`real_long_data`, in months, and the day they end.
SPAN_MONTHS = (1, 3, 12, 36, 150)
LONG_END = "2010-12-31 23:59"
#: The validation days of every span of :func:`real_long_data`: all days before the 150-month span.
LONG_VAL_SPAN = ("1996-08-01", "1998-06-30 23:59")
#: Fit and validation spans of the validation-phase comparison of :func:`real_split_protocols`.
PHASE_TRAIN_SPAN = ("2000-01-01", "2008-12-31 23:59")
RISING_VAL_SPAN = ("1997-01-01", "1999-12-31 23:59")
MINIMUM_VAL_SPAN = ("2009-01-01", "2010-12-31 23:59")

CHRONOLOGICAL = "chronological"
TRI_MONTHLY = "tri-monthly"
SEASONAL = "seasonal"
VAL_RISING = "fit 2000-2008, thresholds on rising phase 1997-1999"
VAL_MINIMUM = "fit 2000-2008, thresholds on minimum 2009-2010"
#: Folds of each interleaved scheme.
N_FOLDS = {TRI_MONTHLY: 3, SEASONAL: 4}

LONG_DATA_COLUMNS = ["dataset", "synthetic", "target", "threshold", "predictor", "span_months", "train_start",
                     "train_end", "n_train_days", "n_train_region_days", "n_train_events", "months_without_data",
                     "months_without_events", "prob_threshold", "n_samples", "n_events", "TSS", "TSS_lo", "TSS_hi",
                     "BSS", "BSS_lo", "BSS_hi", "AUC", "AUC_lo", "AUC_hi", "dTSS_vs_longest", "dTSS_lo", "dTSS_hi",
                     "dBSS_vs_longest", "dBSS_lo", "dBSS_hi", "block_hours"]
SPLIT_PROTOCOL_COLUMNS = ["dataset", "synthetic", "target", "threshold", "predictor", "protocol", "n_train",
                          "n_test", "n_test_events", "TSS", "TSS_lo", "TSS_hi", "BSS", "BSS_lo", "BSS_hi", "AUC",
                          "prob_threshold", "dTSS_vs_chronological", "dTSS_lo", "dTSS_hi", "dTSS_vs_rising_phase",
                          "dTSS_vs_rising_phase_lo", "dTSS_vs_rising_phase_hi", "block_hours"]
BASE_RATE_COLUMNS = ["year", "threshold", "base_rate", "n_days", "n_event_days"]
SKILL_BY_YEAR_COLUMNS = ["year", "predictor", "threshold", "prob_threshold", "base_rate", "n_days", "n_event_days",
                         "TSS", "TSS_lo", "TSS_hi", "HSS", "HSS_lo", "HSS_hi"]


def months_before(months: int, end: str = LONG_END) -> tuple[str, str]:
    """The inclusive span of the last ``months`` calendar months up to ``end`` (a month's last minute):
    ``months_before(150)`` is ``("1998-07-01", "2010-12-31 23:59")``."""
    stop = pd.Timestamp(end)
    start = (stop.normalize() + pd.Timedelta(days=1)) - pd.DateOffset(months=int(months))
    return start.strftime("%Y-%m-%d"), stop.strftime("%Y-%m-%d %H:%M")


def month_fold(times: np.ndarray, scheme: str) -> np.ndarray:
    """The fold of each issue time's calendar month: ``tri-monthly`` deals months round-robin into 3 folds
    (months since 1970-01 mod 3: January, April, July and October in fold 0), ``seasonal`` gives the quarter
    (0 = January-March). ``times`` datetime64 (n,) -> int64 (n,)."""
    months = np.asarray(times, "datetime64[M]").astype(np.int64)  # months since 1970-01
    if scheme == TRI_MONTHLY:
        return months % 3
    if scheme == SEASONAL:
        return (months % 12) // 3
    raise ValueError(f"unknown fold scheme {scheme!r}; expected {TRI_MONTHLY!r} or {SEASONAL!r}")


@dataclass(frozen=True)
class MonthFold:
    """A :data:`flarelib.evaluate.real.Selection`: the issue times in fold ``fold`` of ``scheme``
    (:func:`month_fold`) (or not in it, ``inside=False``), within ``span`` when given."""

    scheme: str
    fold: int
    inside: bool = True
    span: tuple[str, str] | None = None

    def __call__(self, times: np.ndarray) -> np.ndarray:
        mask = (month_fold(times, self.scheme) == self.fold) == self.inside
        return mask & in_span(times, self.span) if self.span is not None else mask


def fold_split(scheme: str, fold: int) -> RealSplit:
    """Fold ``fold`` of an interleaved scheme: fit on every month not in the fold, thresholds on the fold's
    months of :data:`.real.VAL_SPAN`, test on its months of :data:`.real.TEST_SPAN`."""
    return RealSplit(train=MonthFold(scheme, fold, inside=False), val=MonthFold(scheme, fold, span=VAL_SPAN),
                     test=MonthFold(scheme, fold, span=TEST_SPAN))


@dataclass(frozen=True, eq=False)
class Variant:
    """One predictor fitted one way, on the reference's test rows: ``prob`` class letter -> P(event) (n,)
    (NaN where it does not forecast) and ``threshold`` class letter -> its yes/no probability threshold."""

    prob: dict[str, np.ndarray]
    threshold: dict[str, float]


def variant_forecasts(reference: Forecasts, variants: Mapping[str, Variant],
                      rows: np.ndarray | None = None) -> Forecasts:
    """A :class:`Forecasts` whose predictors are ``variants`` on ``reference``'s test rows (all, or the bool
    mask ``rows``), with ``reference``'s targets, BSS reference rate, bootstrap blocks and distinct events, and
    each variant's own thresholds: what :func:`forecasts_skill_table` and :func:`paired_table` score."""
    keep = np.ones(reference.test.times.size, bool) if rows is None else np.asarray(rows, bool)
    t = reference.test
    test = SplitForecasts("test", t.time_index[keep], t.times[keep], t.flux[keep])
    for name, variant in variants.items():
        test.log[name] = np.full(int(keep.sum()), np.nan)
        test.prob[name] = {letter: np.asarray(p, np.float64)[keep] for letter, p in variant.prob.items()}
    empty = SplitForecasts("val", t.time_index[:0], t.times[:0], t.flux[:0])
    return Forecasts(reference.dataset, reference.synthetic, reference.target, dict(reference.thresholds),
                     dict(reference.base_rate), empty, test,
                     prob_threshold={(name, letter): float(value) for name, v in variants.items()
                                     for letter, value in v.threshold.items()},
                     block=dict(reference.block), distinct=dict(reference.distinct) if rows is None else {},
                     cadence=reference.cadence)


def _variant(f: Forecasts, name: str, reference: Forecasts) -> Variant:
    """``name`` of ``f`` as a :class:`Variant` on ``reference``'s test rows (checked to be the same)."""
    if not np.array_equal(f.test.times, reference.test.times):
        raise ValueError(f"{name!r} was tested on other rows than the reference")
    return Variant(dict(f.test.prob[name]), {letter: f.prob_threshold[(name, letter)] for letter in f.thresholds})


def _auc_interval(f: Forecasts, name: str, letter: str, n_resamples: int, seed: int,
                  level: float) -> tuple[float, float]:
    """The ``level`` interval of ``name``'s test AUC at ``letter`` on the block bootstrap draws of the skill table."""
    prob = np.asarray(f.test.prob[name][letter], float)
    event = f.test.event(f.thresholds[letter])
    ok = np.isfinite(prob) & np.isfinite(event)
    if not ok.any():
        return float("nan"), float("nan")
    return auc_interval(prob[ok], event[ok] == 1, f.test.times[ok], block=f.block_of(letter), n_resamples=n_resamples,
                        seed=seed, level=level)


def _monthly_gaps(times: np.ndarray, flags: np.ndarray, span: tuple[str, str]) -> int:
    """How many calendar months of ``span`` have no ``times`` with a true flag."""
    months = pd.period_range(pd.Timestamp(span[0]), pd.Timestamp(span[1]), freq="M")
    seen = set(pd.DatetimeIndex(np.asarray(times)[np.asarray(flags, bool)]).to_period("M"))
    return int(sum(month not in seen for month in months))


def real_long_data(history: RealHistory, *, months: Sequence[int] = SPAN_MONTHS,
                   predictors: Sequence[str] = LESSON_PREDICTORS, thresholds: Mapping[str, float] = REAL_THRESHOLDS,
                   reference: RealForecasts | None = None, n_resamples: int = N_RESAMPLES, seed: int = SEED,
                   level: float = LEVEL) -> pd.DataFrame:
    """The ``real_long_data`` table (:data:`LONG_DATA_COLUMNS`): each of ``predictors`` fitted on the last
    ``months`` months before the test period (:func:`months_before`), thresholds chosen on
    :data:`LONG_VAL_SPAN`, scored full disk on the same cycle-24 test rows for every class of ``thresholds``.

    One row per (threshold, predictor, span): ``n_train_days`` issue days and ``n_train_region_days`` SRS
    region-days in the span, ``n_train_events`` its days followed by a flare at or above the threshold,
    ``months_without_data`` / ``months_without_events`` its calendar months without a region-day / without
    such a day (a span without events fits rates of 0: TSS 0 or undefined, never an error);
    ``prob_threshold``; TSS, BSS and AUC with ``level`` intervals; ``dTSS_vs_longest`` / ``dBSS_vs_longest``,
    the paired difference against the longest span of the same predictor (0 for the longest itself).
    ``reference``: a default :func:`real_forecasts` result to reuse (its test rows, blocks and BSS reference).
    """
    thresholds = dict(thresholds)
    ref = (reference or real_forecasts(history, thresholds=thresholds)).full_disk
    times = history_issue_times(history)
    _, truth = window_flares(history.events["peak"].to_numpy("datetime64[ns]"),
                             history.events["peak_flux"].to_numpy(np.float64), times)
    issue = history.regions["issue"].to_numpy("datetime64[ns]")
    longest = max(months)
    variants, info = {}, {}
    for m in months:
        span = months_before(m)
        fitted = real_forecasts(history, thresholds=thresholds,
                                split=RealSplit(train=span, val=LONG_VAL_SPAN, test=TEST_SPAN)).full_disk
        train, region_train = in_span(times, span), in_span(issue, span)
        for name in predictors:
            variants[f"{name} | {m} months"] = _variant(fitted, name, ref)
        info[m] = {"train_start": span[0], "train_end": span[1], "n_train_days": int(train.sum()),
                   "n_train_region_days": int(region_train.sum()),
                   "months_without_data": _monthly_gaps(issue, region_train, span),
                   **{letter: {"n_train_events": int(np.sum(truth[train] >= t)),
                               "months_without_events": _monthly_gaps(times, train & (truth >= t), span)}
                      for letter, t in thresholds.items()}}
        log.info("long data: %d months from %s, %d issue days", m, span[0], info[m]["n_train_days"])
    f = variant_forecasts(ref, variants)
    pairs = [(f"{name} | {m} months", f"{name} | {longest} months") for name in predictors for m in months]
    skill = forecasts_skill_table(f, n_resamples=n_resamples, seed=seed, level=level).set_index(
        ["threshold", "predictor"])
    paired = paired_table(f, pairs, n_resamples=n_resamples, seed=seed, level=level).set_index(
        ["threshold", "predictor"])
    rows = []
    for letter in thresholds:
        label = threshold_label(letter)
        for name in predictors:
            for m in months:
                variant = f"{name} | {m} months"
                s, d = skill.loc[(label, variant)], paired.loc[(label, variant)]
                auc_lo, auc_hi = _auc_interval(f, variant, letter, n_resamples, seed, level)
                general = {k: v for k, v in info[m].items() if k not in thresholds}
                rows.append({"threshold": label, "predictor": name, "span_months": m, **general,
                             **info[m][letter], "prob_threshold": f.prob_threshold[(variant, letter)],
                             "n_samples": s["n_samples"], "n_events": s["n_events"],
                             **{k: s[k] for k in ("TSS", "TSS_lo", "TSS_hi", "BSS", "BSS_lo", "BSS_hi", "AUC")},
                             "AUC_lo": auc_lo, "AUC_hi": auc_hi, "dTSS_vs_longest": d["dTSS"],
                             "dTSS_lo": d["dTSS_lo"], "dTSS_hi": d["dTSS_hi"], "dBSS_vs_longest": d["dBSS"],
                             "dBSS_lo": d["dBSS_lo"], "dBSS_hi": d["dBSS_hi"], "block_hours": s["block_hours"]})
    return f.frame(rows)[LONG_DATA_COLUMNS]


def _pooled(history: RealHistory, scheme: str, ref: RealForecasts, thresholds: dict[str, float],
            predictors: Sequence[str]) -> tuple[dict[str, Variant], dict[int, dict[str, Variant]], int]:
    """The out-of-fold forecasts of ``scheme`` on the reference's validation and test rows: the pooled
    :class:`Variant` per predictor (threshold chosen on the pooled validation forecasts), per fold the fold's
    own variant (threshold chosen on its validation months), and the mean training issue days per fold."""
    full = ref.full_disk
    val_prob = {name: {k: np.full(full.val.times.size, np.nan) for k in thresholds} for name in predictors}
    test_prob = {name: {k: np.full(full.test.times.size, np.nan) for k in thresholds} for name in predictors}
    per_fold, n_train = {}, []
    times = history_issue_times(history)
    for k in range(N_FOLDS[scheme]):
        split = fold_split(scheme, k)
        fitted = real_forecasts(history, thresholds=thresholds, split=split).full_disk
        n_train.append(int(split.masks(times)["train"].sum()))
        at_val = np.searchsorted(full.val.times, fitted.val.times)
        at_test = np.searchsorted(full.test.times, fitted.test.times)
        if not (np.array_equal(full.val.times[at_val], fitted.val.times)
                and np.array_equal(full.test.times[at_test], fitted.test.times)):
            raise ValueError(f"{scheme} fold {k} forecasts days outside the reference's validation and test days")
        for name in predictors:
            for letter in thresholds:
                val_prob[name][letter][at_val] = fitted.val.prob[name][letter]
                test_prob[name][letter][at_test] = fitted.test.prob[name][letter]
            own = {letter: fitted.prob_threshold[(name, letter)] for letter in thresholds}
            per_fold.setdefault(k, {})[name] = Variant(test_prob[name], own)  # filled by the end of the loop
        log.info("%s fold %d: %d training issue days", scheme, k, n_train[-1])
    pooled = {name: Variant(test_prob[name], {letter: choose_threshold(val_prob[name][letter],
                                                                       full.val.event(t))
                                              for letter, t in thresholds.items()})
              for name in predictors}
    return pooled, per_fold, int(round(float(np.mean(n_train))))


def real_split_protocols(history: RealHistory, *, predictors: Sequence[str] = LESSON_PREDICTORS,
                         thresholds: Mapping[str, float] = REAL_THRESHOLDS, reference: RealForecasts | None = None,
                         n_resamples: int = N_RESAMPLES, seed: int = SEED, level: float = LEVEL) -> pd.DataFrame:
    """The ``real_split_protocols`` table (:data:`SPLIT_PROTOCOL_COLUMNS`): each of ``predictors`` under the
    protocols of the module docstring, full disk, every class of ``thresholds``.

    Rows per (threshold, predictor): ``chronological``; ``tri-monthly`` and ``seasonal`` (pooled out-of-fold
    forecasts on all the chronological test rows); ``tri-monthly fold k`` and ``seasonal fold k`` (the fold's
    model on its own test months, threshold from its own validation months; fold ``k`` of ``seasonal`` is
    quarter ``k + 1``); the two validation phases. ``n_train`` is the model's training issue days (mean over
    folds for pooled rows), ``n_test`` / ``n_test_events`` the scored days / event days. ``dTSS_vs_chronological``
    (with ``dTSS_lo``, ``dTSS_hi``) pairs the row against the chronological model on the row's own test days;
    ``dTSS_vs_rising_phase`` pairs the minimum-validated thresholds against the rising-phase ones (same model).
    ``reference``: the default :func:`real_forecasts` result to reuse (it is the chronological protocol).
    """
    thresholds = dict(thresholds)
    ref = reference or real_forecasts(history, thresholds=thresholds)
    full = ref.full_disk
    times = history_issue_times(history)
    n_train = {CHRONOLOGICAL: int(RealSplit().masks(times)["train"].sum())}
    variants = {(name, CHRONOLOGICAL): _variant(full, name, full) for name in predictors}
    folds = {}
    for scheme in (TRI_MONTHLY, SEASONAL):
        pooled, per_fold, n_train[scheme] = _pooled(history, scheme, ref, thresholds, predictors)
        variants.update({(name, scheme): v for name, v in pooled.items()})
        folds[scheme] = per_fold
    for protocol, val in ((VAL_RISING, RISING_VAL_SPAN), (VAL_MINIMUM, MINIMUM_VAL_SPAN)):
        split = RealSplit(train=PHASE_TRAIN_SPAN, val=val, test=TEST_SPAN)
        fitted = real_forecasts(history, thresholds=thresholds, split=split).full_disk
        n_train[protocol] = int(split.masks(times)["train"].sum())
        variants.update({(name, protocol): _variant(fitted, name, full) for name in predictors})

    def scored(chosen: dict[tuple[str, str], Variant], rows: np.ndarray | None,
               extra_pairs: Sequence[tuple[str, str]] = ()) -> tuple[pd.DataFrame, pd.DataFrame, Forecasts]:
        f = variant_forecasts(full, {f"{name} | {protocol}": v for (name, protocol), v in chosen.items()}, rows)
        pairs = [(f"{name} | {protocol}", f"{name} | {CHRONOLOGICAL}") for name, protocol in chosen
                 if protocol != CHRONOLOGICAL] + list(extra_pairs)
        skill = forecasts_skill_table(f, n_resamples=n_resamples, seed=seed, level=level)
        paired = paired_table(f, pairs, n_resamples=n_resamples, seed=seed, level=level)
        return skill.set_index(["threshold", "predictor"]), paired.set_index(["threshold", "predictor", "reference"]), f

    rising = [(f"{name} | {VAL_MINIMUM}", f"{name} | {VAL_RISING}") for name in predictors]
    tables = [(scored(variants, None, rising), n_train, {})]
    for scheme, per_fold in folds.items():
        for k, fold_variants in per_fold.items():
            protocol = f"{scheme} fold {k}"
            chosen = {**{(name, CHRONOLOGICAL): variants[(name, CHRONOLOGICAL)] for name in predictors},
                      **{(name, protocol): v for name, v in fold_variants.items()}}
            trained = {CHRONOLOGICAL: n_train[CHRONOLOGICAL],
                       protocol: int(fold_split(scheme, k).masks(times)["train"].sum())}
            tables.append((scored(chosen, MonthFold(scheme, k)(full.test.times)), trained,
                           {CHRONOLOGICAL: f"{CHRONOLOGICAL} on the days of {protocol}"}))
    out = []
    for (skill, paired, f), trained, renamed in tables:
        for letter in thresholds:
            label = threshold_label(letter)
            for predictor in f.predictors:
                name, protocol = predictor.split(" | ", 1)
                s = skill.loc[(label, predictor)]
                row = {"threshold": label, "predictor": name, "protocol": renamed.get(protocol, protocol),
                       "n_train": trained[protocol], "n_test": s["n_samples"], "n_test_events": s["n_events"],
                       **{k: s[k] for k in ("TSS", "TSS_lo", "TSS_hi", "BSS", "BSS_lo", "BSS_hi", "AUC")},
                       "prob_threshold": f.prob_threshold[(predictor, letter)], "block_hours": s["block_hours"]}
                for column, lo, hi, reference_protocol in (
                        ("dTSS_vs_chronological", "dTSS_lo", "dTSS_hi", CHRONOLOGICAL),
                        ("dTSS_vs_rising_phase", "dTSS_vs_rising_phase_lo", "dTSS_vs_rising_phase_hi", VAL_RISING)):
                    key = (label, predictor, f"{name} | {reference_protocol}")
                    if key in paired.index:
                        d = paired.loc[key]
                        row.update({column: d["dTSS"], lo: d["dTSS_lo"], hi: d["dTSS_hi"]})
                out.append(row)
    return full.frame(out).reindex(columns=SPLIT_PROTOCOL_COLUMNS)


def base_rate_by_year(history: RealHistory, thresholds: Mapping[str, float] = REAL_THRESHOLDS) -> pd.DataFrame:
    """Per calendar year of the daily issue times (:func:`.real.history_issue_times`, 1996-08-01 to
    2018-12-16) and class: ``n_days`` issue days, ``n_event_days`` those followed by a flare at or above the
    class in ``(t, t + 24 h]`` and ``base_rate`` their fraction (:data:`BASE_RATE_COLUMNS`)."""
    times = history_issue_times(history)
    _, truth = window_flares(history.events["peak"].to_numpy("datetime64[ns]"),
                             history.events["peak_flux"].to_numpy(np.float64), times)
    year = pd.DatetimeIndex(times).year
    rows = []
    for letter, threshold in thresholds.items():
        event = pd.Series(truth >= threshold).groupby(year)
        for y, n_days, n_events in zip(event.size().index, event.size(), event.sum()):
            rows.append({"year": int(y), "threshold": threshold_label(letter), "base_rate": n_events / n_days,
                         "n_days": int(n_days), "n_event_days": int(n_events)})
    return pd.DataFrame(rows, columns=BASE_RATE_COLUMNS)


def skill_by_year(forecasts: Forecasts, predictor: str = MCINTOSH_POISSON, letter: str = "M", *,
                  n_resamples: int = N_RESAMPLES, seed: int = SEED, level: float = LEVEL) -> pd.DataFrame:
    """TSS and HSS (with ``level`` block bootstrap intervals) of one fixed forecast, ``predictor`` of
    ``forecasts`` at class ``letter`` with its validation-chosen threshold, per calendar year of the test rows
    (:data:`SKILL_BY_YEAR_COLUMNS`): the same forecast rule, years of different base rates, so HSS moves with
    the base rate while TSS need not."""
    test = forecasts.test
    event, yes = test.event(forecasts.thresholds[letter]), forecasts.yes("test", predictor, letter)
    year = pd.DatetimeIndex(test.times).year.to_numpy()
    rows = []
    for y in np.unique(year):
        at = year == y
        r = resample_scores(test.times[at], event[at], {predictor: yes[at]}, block=forecasts.block_of(letter),
                            n_resamples=n_resamples, seed=seed)
        (tss_lo, hss_lo), (tss_hi, hss_hi) = interval(np.column_stack([r.tss_r[:, 0], r.hss_r[:, 0]]), level)
        rows.append({"year": int(y), "predictor": predictor, "threshold": threshold_label(letter),
                     "prob_threshold": forecasts.prob_threshold.get((predictor, letter), np.nan),
                     "base_rate": float(np.nanmean(event[at])), "n_days": int(at.sum()),
                     "n_event_days": int(np.nansum(event[at])), "TSS": float(r.tss[0]), "TSS_lo": float(tss_lo),
                     "TSS_hi": float(tss_hi), "HSS": float(r.hss[0]), "HSS_lo": float(hss_lo),
                     "HSS_hi": float(hss_hi)})
    return pd.DataFrame(rows, columns=SKILL_BY_YEAR_COLUMNS)


def write_real_lessons(long_data: pd.DataFrame, split_protocols: pd.DataFrame,
                       folder: str | Path | None = None) -> tuple[Path, Path]:
    """Write ``real_long_data.csv`` and ``real_split_protocols.csv`` into ``folder`` (default
    :func:`flarelib.paths.results_dir`, i.e. ``build/results``); returns their paths."""
    folder = Path(folder) if folder is not None else results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "real_long_data.csv", folder / "real_split_protocols.csv"
    long_data[LONG_DATA_COLUMNS].to_csv(paths[0], index=False)
    split_protocols.reindex(columns=SPLIT_PROTOCOL_COLUMNS).to_csv(paths[1], index=False)
    return paths


def _delta(d: float, lo: float, hi: float) -> str:
    word = paired_verdict(lo, hi)
    said = {"beats": "better", "loses": "worse", "ties": "no different", "undefined": "undefined"}[word]
    return f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}], {said}"


def lesson_sentences(long_data: pd.DataFrame, split_protocols: pd.DataFrame, *, letter: str = "M") -> list[str]:
    """Computed sentences of the real lessons at class ``letter``: each predictor's longest span against every
    shorter one, each pooled interleaved protocol and each validation phase against the chronological split, all
    from the paired intervals of ΔTSS on the same test days."""
    label = threshold_label(letter)
    lines = []
    long = long_data[long_data["threshold"] == label]
    for predictor, rows in long.groupby("predictor", sort=False):
        rows = rows.sort_values("span_months")
        top = rows.iloc[-1]
        parts = [f"{int(r['span_months'])} months ({int(r['n_train_events'])} event days) "
                 f"{_delta(r['dTSS_vs_longest'], r['dTSS_lo'], r['dTSS_hi'])}" for _, r in rows.iloc[:-1].iterrows()]
        lines.append(f"REAL, long data, {predictor}, TSS{label}: {int(top['span_months'])} months of training "
                     f"score {top['TSS']:.2f} [{top['TSS_lo']:.2f}, {top['TSS_hi']:.2f}]; shorter spans, paired on the "
                     f"same {int(top['n_samples'])} test days: " + "; ".join(parts) + ".")
    splits = split_protocols[(split_protocols["threshold"] == label)
                             & split_protocols["protocol"].isin([TRI_MONTHLY, SEASONAL, VAL_RISING, VAL_MINIMUM])]
    for _, r in splits.iterrows():
        lines.append(f"REAL, split protocols, {r['predictor']}, TSS{label}: {r['protocol']} scores {r['TSS']:.2f} "
                     f"[{r['TSS_lo']:.2f}, {r['TSS_hi']:.2f}] with threshold {r['prob_threshold']:.3f}; against the "
                     f"chronological split on the same {int(r['n_test'])} days "
                     f"{_delta(r['dTSS_vs_chronological'], r['dTSS_lo'], r['dTSS_hi'])}.")
    return lines
