"""The evaluation floor: flare-forecast skill with uncertainty, and the reference forecasts every model is
scored against.

Units: forecasts and truths of flux are log10 GOES XRS-B flux (log10 W/m²); raw fluxes
(``dm.plan.target.flux``, ``dm.plan.flux_now``, ``dm.history_max``) are W/m²; probabilities are in [0, 1].

**Events and yes forecasts.** An *event* is a true flux at or above a class threshold
(``C`` = 1e-6, ``M`` = 1e-5 W/m²). A predictor that gives a flux says *yes* when its flux is at
or above the threshold; a predictor that gives a probability says yes when it is at or above a
probability threshold chosen to maximize TSS on the **validation** block (never on test). From the
2x2 contingency table (TP, FP, FN, TN):

* POD = TP / (TP + FN); FAR = FP / (TP + FP); POFD = FP / (FP + TN)
* TSS = POD - POFD  (true skill statistic; 0 for any constant forecast; the headline score)
* HSS = 2 (TP TN - FN FP) / ((TP + FN)(FN + TN) + (TP + FP)(FP + TN))  (depends on the base rate)
* BSS = 1 - BS / BS_clim, BS = mean (p - o)², BS_clim the Brier score of the training base rate
* MAE = mean |pred - true| in dex (log10 flux)

A score whose denominator is zero (e.g. POD with no events) is NaN: undefined, not zero.

**Uncertainty.** Flares cluster in time, so samples are not independent: intervals come from a
*day-block bootstrap* (:func:`bootstrap_scores`): the calendar days (UTC) of the evaluated samples
are resampled with replacement (``N_RESAMPLES`` = 1000 resamples, seed ``SEED`` = 2017), paired
(every predictor sees the same day draws), and the 5th/95th percentiles give 90 % intervals.
:func:`verdict` calls one predictor better than another only when their intervals do not overlap.

**Reference forecasts**, all on exactly the samples of the model (cube step indices), calibrated on
the training block only and using nothing after the issue time ``t``:

* ``persistence``: nowcast: the flux at exactly ``t - cadence`` (NaN where that step is missing);
  forecast: the flux at ``t`` (``flux_now``).
* ``flare-history persistence 6h`` / ``24h`` (forecasts only): the max XRS-B flux over ``[t - H, t]``
  (the cube's ``flux_history_max``). The 24 h one is the benchmark definition of persistence
  (Leka+ 2019: "a flare above the threshold in the previous 24 h"); the 6 h one is a sharper variant.
* ``climatology``: the training-block mean log flux (regression) and base rate (probability).
* ``brightest pixel N Å``: ``a + b log10(max DN/s)`` of the hot channel that fits the training block best.
* ``region photometry``: the summed hot-channel excess over the frame's median (94, 131, 335 Å),
  log10, as features of a linear fit (flux) and of logistic regressions (P(>=C1), P(>=M1)).
* ``oracle`` (synthetic cubes only): the generator's own noiseless flux and event probabilities.

The model gives two rows: ``FlareNet`` (class-head probabilities with the validation-chosen threshold;
MAE from the regression output) and ``FlareNet regression`` (the log flux thresholded at the class
threshold).

Modules: :mod:`.scoring` (pure NumPy), :mod:`.baselines` (cube reads), :mod:`.skill` (the tables),
:mod:`.summary` (class counts, channel statistics, event rates for notebook 03), :mod:`.real` (the real
Sun's verdict: NOAA flare targets and the McIntosh-Poisson family of references, cycle 23 -> cycle 24) and
:mod:`.real_lessons` (the talk's lessons on the real Sun: long data, training data selection, base rates); this
package re-exports the public names of the first three (``from flarelib.evaluate import real, real_lessons``
for the last two).
"""

from flarelib.evaluate.baselines import (
    BRIGHTEST_PIXEL_CHANNELS,
    EXCESS_FLOOR,
    GOES_HISTORY_MODEL,
    HISTORY_LABELS,
    LATENT_ORACLE,
    OBSERVABLE_ORACLE,
    PHOTOMETRY_CHANNELS,
    RATE_DAYS,
    base_rate,
    baseline_forecasts,
    baseline_predictions,
    baseline_probabilities,
    brightest_pixel,
    brightest_pixel_forecast,
    climatology,
    climatology_forecast,
    distinct_events,
    flare_history_persistence,
    flare_list,
    goes_history_logistic,
    history_features,
    hot_excess,
    log10_flux,
    observable_oracle,
    oracle_forecast,
    persistence,
    persistence_forecast,
    photometry_features,
    recent_flares,
    region_photometry_forecast,
    running_rate_poisson,
)
from flarelib.evaluate.scoring import (
    DAY,
    LEVEL,
    MODEL,
    N_RESAMPLES,
    SEED,
    THRESHOLDS,
    Resampled,
    auc_interval,
    autocorrelation,
    autocorrelation_time,
    block_labels,
    block_resample_counts,
    block_spread,
    bootstrap_scores,
    brier_skill_score,
    choose_threshold,
    contingency,
    contingency_cells,
    describe_target,
    fit_least_squares,
    fit_linear,
    fit_logistic,
    format_interval,
    interval,
    mae,
    memory_block,
    memory_curve,
    paired_difference,
    paired_verdict,
    predict_logistic,
    regular_grid,
    reliability,
    resample_scores,
    roc_auc,
    roc_curve,
    scores,
    skill_per_block,
    threshold_label,
    tss_vs_threshold,
    verdict,
    weighted_auc,
    within_block_auc,
)
from flarelib.evaluate.skill import (
    PAIRED_COLUMNS,
    SKILL_COLUMNS,
    Forecasts,
    SplitForecasts,
    collect_forecasts,
    contingency_table,
    default_pairs,
    forecasts_skill_table,
    paired_table,
    reliability_table,
    roc_table,
    rolling_origin_baselines,
    skill_by_test_block,
    skill_table,
    summary_columns,
    target_memory,
    target_memory_curve,
    tss_threshold_table,
    verdict_sentences,
    write_paired_csv,
    write_skill_csv,
)

__all__ = [
    "THRESHOLDS",
    "SEED",
    "N_RESAMPLES",
    "LEVEL",
    "MODEL",
    "DAY",
    "threshold_label",
    "contingency",
    "scores",
    "mae",
    "contingency_cells",
    "autocorrelation",
    "autocorrelation_time",
    "regular_grid",
    "memory_block",
    "memory_curve",
    "block_resample_counts",
    "Resampled",
    "resample_scores",
    "auc_interval",
    "interval",
    "bootstrap_scores",
    "paired_difference",
    "paired_verdict",
    "verdict",
    "describe_target",
    "format_interval",
    "fit_linear",
    "fit_least_squares",
    "fit_logistic",
    "predict_logistic",
    "tss_vs_threshold",
    "choose_threshold",
    "brier_skill_score",
    "roc_curve",
    "roc_auc",
    "weighted_auc",
    "within_block_auc",
    "reliability",
    "skill_per_block",
    "block_spread",
    "block_labels",
    "PHOTOMETRY_CHANNELS",
    "BRIGHTEST_PIXEL_CHANNELS",
    "HISTORY_LABELS",
    "LATENT_ORACLE",
    "OBSERVABLE_ORACLE",
    "GOES_HISTORY_MODEL",
    "RATE_DAYS",
    "EXCESS_FLOOR",
    "log10_flux",
    "persistence",
    "persistence_forecast",
    "flare_history_persistence",
    "climatology",
    "base_rate",
    "climatology_forecast",
    "flare_list",
    "recent_flares",
    "running_rate_poisson",
    "history_features",
    "goes_history_logistic",
    "observable_oracle",
    "distinct_events",
    "brightest_pixel",
    "brightest_pixel_forecast",
    "hot_excess",
    "photometry_features",
    "region_photometry_forecast",
    "oracle_forecast",
    "baseline_forecasts",
    "baseline_predictions",
    "baseline_probabilities",
    "SKILL_COLUMNS",
    "PAIRED_COLUMNS",
    "SplitForecasts",
    "Forecasts",
    "target_memory",
    "target_memory_curve",
    "collect_forecasts",
    "skill_table",
    "forecasts_skill_table",
    "default_pairs",
    "paired_table",
    "write_paired_csv",
    "verdict_sentences",
    "summary_columns",
    "write_skill_csv",
    "contingency_table",
    "reliability_table",
    "roc_table",
    "tss_threshold_table",
    "skill_by_test_block",
    "rolling_origin_baselines",
]
