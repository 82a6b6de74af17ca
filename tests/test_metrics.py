"""Skill scores, bootstrap intervals, verdicts, baselines and the skill table, against values worked out by hand."""

import math
import time
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from flarelib import evaluate
from flarelib.cube import store  # noqa: E402
from flarelib.learn.data import Target  # noqa: E402
from flarelib.show import plotting

# Six samples, log10 W/m². Worked by hand in the comments.
TRUE = np.array([-4.5, -5.5, -4.8, -6.2, -4.9, -6.0])
PRED = np.array([-4.7, -4.9, -5.3, -6.0, -4.2, -7.0])
DAY = np.timedelta64(1, "D")
T0 = np.datetime64("2020-01-01T00:00", "ns")


# --------------------------------------------------------------------------- contingency scores

def test_contingency_and_scores_at_m_by_hand():
    # >= M1 (-5): events T F T F T F; yes T T F F T F -> TP 2 (0, 4), FP 1 (1), FN 1 (2), TN 2 (3, 5)
    table = evaluate.contingency(PRED, TRUE, 1e-5)
    assert table == {"TP": 2, "FP": 1, "FN": 1, "TN": 2}
    s = evaluate.scores(table)
    assert s["POD"] == pytest.approx(2 / 3)
    assert s["FAR"] == pytest.approx(1 / 3)
    assert s["POFD"] == pytest.approx(1 / 3)
    assert s["TSS"] == pytest.approx(1 / 3)
    # HSS = 2 (2*2 - 1*1) / ((2+1)(1+2) + (2+1)(1+2)) = 6 / 18
    assert s["HSS"] == pytest.approx(1 / 3)


def test_contingency_at_c_counts_the_threshold_itself_as_an_event():
    # >= C1 (-6): events T T T F T T (-6.0 is C1.0); yes T T T T(-6.0) T F -> TP 4, FP 1, FN 1, TN 0
    table = evaluate.contingency(PRED, TRUE, 1e-6)
    assert table == {"TP": 4, "FP": 1, "FN": 1, "TN": 0}
    s = evaluate.scores(table)
    assert s["POD"] == pytest.approx(0.8)
    assert s["POFD"] == pytest.approx(1.0)
    assert s["TSS"] == pytest.approx(-0.2)
    # HSS = 2 (4*0 - 1*1) / ((4+1)(1+0) + (4+1)(1+0)) = -2 / 10
    assert s["HSS"] == pytest.approx(-0.2)


def test_mae_in_dex_by_hand():
    # |0.2| + |0.6| + |0.5| + |0.2| + |0.7| + |1.0| = 3.2 over 6
    assert evaluate.mae(PRED, TRUE) == pytest.approx(3.2 / 6)


def test_no_events_and_no_alarms_leave_pod_tss_hss_undefined():
    quiet = np.full(5, -7.0)
    table = evaluate.contingency(quiet, quiet, 1e-5)
    assert table == {"TP": 0, "FP": 0, "FN": 0, "TN": 5}
    s = evaluate.scores(table)
    assert math.isnan(s["POD"]) and math.isnan(s["FAR"]) and math.isnan(s["TSS"]) and math.isnan(s["HSS"])
    assert s["POFD"] == 0.0


def test_false_alarms_without_events():
    table = evaluate.contingency(np.array([-4.0, -7.0]), np.array([-7.0, -7.0]), 1e-5)
    assert table == {"TP": 0, "FP": 1, "FN": 0, "TN": 1}
    s = evaluate.scores(table)
    assert s["FAR"] == 1.0 and s["POFD"] == 0.5 and math.isnan(s["POD"])
    assert s["HSS"] == 0.0  # 2(0 - 0) / ((0)(1) + (1)(2))


def test_perfect_and_constant_forecasts():
    perfect = evaluate.scores(evaluate.contingency(TRUE, TRUE, 1e-5))
    assert perfect["TSS"] == 1.0 and perfect["HSS"] == 1.0
    constant = evaluate.scores(evaluate.contingency(np.full(6, -4.0), TRUE, 1e-5))
    assert constant["TSS"] == 0.0  # any constant forecast has TSS 0


def test_nan_samples_are_dropped_and_shapes_must_match():
    pred = np.array([-4.0, np.nan, -4.0])
    true = np.array([-4.0, -4.0, np.nan])
    assert evaluate.contingency(pred, true, 1e-5) == {"TP": 1, "FP": 0, "FN": 0, "TN": 0}
    with pytest.raises(ValueError, match="shape"):
        evaluate.contingency(pred, true[:2], 1e-5)


# --------------------------------------------------------------------------- bootstrap

# Two days of four samples. Day A: perfect (TP 2, TN 2): TSS 1, HSS 1.
# Day B: TP 0, FN 1, FP 1, TN 2: POD 0, POFD 1/3 -> TSS -1/3; HSS 2(0 - 1)/((1)(3) + (1)(3)) = -1/3.
# Both days: TP 2, FN 1, FP 1, TN 4: POD 2/3, POFD 1/5 -> TSS 7/15; HSS 2(8 - 1)/(3*5 + 3*5) = 7/15.
TWO_DAYS = T0 + np.array([0, 1, 2, 3, 24, 25, 26, 27]) * np.timedelta64(1, "h")
TWO_EVENTS = np.array([1, 1, 0, 0, 1, 0, 0, 0], bool)
TWO_YES = np.array([1, 1, 0, 0, 0, 1, 0, 0], bool)


def test_bootstrap_over_two_days_by_hand():
    # resamples are AA (TSS 1), AB/BA (7/15), BB (-1/3), each AA and BB with probability 1/4 >> 5 %,
    # so the 90 % interval runs from BB's score to AA's.
    out = evaluate.bootstrap_scores(TWO_DAYS, TWO_EVENTS, {"model": TWO_YES})
    row = out.loc["model"]
    assert row["TSS"] == pytest.approx(7 / 15) and row["HSS"] == pytest.approx(7 / 15)
    assert row["TSS_lo"] == pytest.approx(-1 / 3) and row["TSS_hi"] == pytest.approx(1.0)
    assert row["HSS_lo"] == pytest.approx(-1 / 3) and row["HSS_hi"] == pytest.approx(1.0)
    assert list(out.columns) == ["TSS", "TSS_lo", "TSS_hi", "HSS", "HSS_lo", "HSS_hi"]


def test_bootstrap_on_one_day_has_no_spread_and_days_are_utc_calendar_days():
    # all eight samples on one day: every resample is that day
    one_day = T0 + np.arange(8) * np.timedelta64(1, "h")
    row = evaluate.bootstrap_scores(one_day, TWO_EVENTS, {"m": TWO_YES}).loc["m"]
    assert row["TSS_lo"] == row["TSS_hi"] == pytest.approx(7 / 15)
    code, counts = evaluate.block_resample_counts(TWO_DAYS, n_resamples=50, seed=1)
    assert code.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert counts.shape == (50, 2) and (counts.sum(axis=1) == 2).all()


def test_bootstrap_draws_are_seeded_and_paired():
    rng = np.random.default_rng(0)
    times = T0 + np.sort(rng.integers(0, 20 * 24, 300)) * np.timedelta64(1, "h")
    event = rng.random(300) < 0.3
    a = np.where(rng.random(300) < 0.8, event, ~event)
    b = rng.random(300) < 0.3
    both = evaluate.bootstrap_scores(times, event, {"a": a, "b": b})
    alone = evaluate.bootstrap_scores(times, event, {"a": a})
    pd.testing.assert_series_equal(both.loc["a"], alone.loc["a"])  # same day draws whatever else is scored
    twin = evaluate.bootstrap_scores(times, event, {"a": a, "a again": a.copy()})
    assert (twin.loc["a"].to_numpy() == twin.loc["a again"].to_numpy()).all()
    other_seed = evaluate.bootstrap_scores(times, event, {"a": a}, seed=1)
    assert other_seed.loc["a", "TSS_lo"] != alone.loc["a", "TSS_lo"]
    assert evaluate.SEED == 2017 and evaluate.N_RESAMPLES == 1000 and evaluate.LEVEL == 0.9


def test_vectorized_bootstrap_equals_a_loop_over_resamples():
    rng = np.random.default_rng(3)
    times = T0 + np.sort(rng.integers(0, 7 * 24, 120)) * np.timedelta64(1, "h")
    event = (rng.random(120) < 0.4).astype(float)
    event[5] = np.nan  # no truth: dropped
    yes = (rng.random(120) < 0.5).astype(float)
    yes[7] = np.nan  # no forecast: dropped
    out = evaluate.bootstrap_scores(times, event, {"p": yes}, n_resamples=200, seed=11).loc["p"]
    code, counts = evaluate.block_resample_counts(times, evaluate.DAY, 200, 11)
    tss = []
    for r in range(200):
        w = counts[r, code] * (np.isfinite(event) & np.isfinite(yes))
        tp, fp = np.sum(w * (yes == 1) * (event == 1)), np.sum(w * (yes == 1) * (event == 0))
        fn, tn = np.sum(w * (yes == 0) * (event == 1)), np.sum(w * (yes == 0) * (event == 0))
        tss.append(evaluate.scores({"TP": tp, "FP": fp, "FN": fn, "TN": tn})["TSS"])
    lo, hi = np.nanpercentile(tss, [5, 95])
    assert out["TSS_lo"] == pytest.approx(lo) and out["TSS_hi"] == pytest.approx(hi)
    ok = np.isfinite(event) & np.isfinite(yes)
    point = evaluate.scores(evaluate.contingency(np.where(ok, yes, np.nan) - 5.5, event - 5.5, 10 ** -5.0))
    assert out["TSS"] == pytest.approx(point["TSS"])


def test_bootstrap_is_fast_enough():
    rng = np.random.default_rng(0)
    times = T0 + np.sort(rng.integers(0, 60 * 24 * 60, 1500)) * np.timedelta64(1, "m")
    event = rng.random(1500) < 0.1
    forecasts = {f"p{k}": rng.random(1500) < 0.1 for k in range(8)}
    start = time.perf_counter()
    out = evaluate.bootstrap_scores(times, event, forecasts, n_resamples=1000)
    assert time.perf_counter() - start < 2.0  # well under the 10 s budget
    assert len(out) == 8 and np.isfinite(out["TSS_lo"]).all()


def test_bootstrap_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="length"):
        evaluate.bootstrap_scores(TWO_DAYS, TWO_EVENTS[:-1], {"m": TWO_YES[:-1]})


# --------------------------------------------------------------------------- verdicts

def test_verdict_from_intervals():
    assert evaluate.verdict(0.3, 0.5, 0.1, 0.2) == "beats"
    assert evaluate.verdict(0.1, 0.2, 0.3, 0.5) == "loses"
    assert evaluate.verdict(0.3, 0.5, 0.1, 0.3) == "ties"  # touching intervals overlap
    assert evaluate.verdict(0.1, 0.9, 0.4, 0.5) == "ties"
    assert evaluate.verdict(np.nan, 0.5, 0.1, 0.2) == "undefined"


def _pair(reference, d, lo, hi, events=12, samples=1440):
    return {"dataset": "SYNTHETIC sun", "synthetic": True, "target": "lead60min_window1440min", "threshold": ">=M1",
            "predictor": "FlareNet", "reference": reference, "n_samples": samples, "n_events_distinct": events,
            "dTSS": d, "dTSS_lo": lo, "dTSS_hi": hi, "p_not_better": 0.5, "dBSS": np.nan, "dBSS_lo": np.nan,
            "dBSS_hi": np.nan, "block_hours": 216.0}


def test_verdict_sentence_reads_the_paired_intervals():
    paired = pd.DataFrame([_pair("climatology", 0.41, 0.30, 0.52),
                           _pair("flare-history persistence 24h", 0.03, -0.1, 0.15),
                           _pair("latent oracle", -0.39, -0.5, -0.2),
                           _pair("brightest pixel 94 Å", np.nan, np.nan, np.nan)])
    (line,) = evaluate.verdict_sentences(paired)
    assert line == ("SYNTHETIC sun, ≥M1, 1h/24h forecast: FlareNet beats climatology (ΔTSS +0.41 [+0.30, +0.52]), "
                    "ties flare-history persistence 24h (ΔTSS +0.03 [-0.10, +0.15]), loses to latent oracle "
                    "(ΔTSS -0.39 [-0.50, -0.20]), cannot be compared with brightest pixel 94 Å (ΔTSS undefined) "
                    "(1440 test samples, 12 distinct events; paired 90% block bootstrap, 9-day blocks); fewer than 20 "
                    "distinct events, so the intervals are wide.")
    assert evaluate.paired_verdict(0.01, 0.2) == "beats" and evaluate.paired_verdict(-0.2, -0.01) == "loses"
    assert evaluate.paired_verdict(0.0, 0.2) == "ties" and evaluate.paired_verdict(np.nan, 0.2) == "undefined"
    assert evaluate.describe_target("now") == "nowcast"
    assert evaluate.describe_target("lead90min_window360min") == "90min/6h forecast"


# --------------------------------------------------------------------------- reference forecasts

def test_nowcast_persistence_looks_up_t_minus_cadence_by_time():
    # 12-min cadence with a gap: 00:00 00:12 00:24 [00:36 missing] 00:48 01:00
    times = T0 + np.array([0, 12, 24, 48, 60]) * np.timedelta64(1, "m")
    flux_now = np.array([1e-6, 1e-5, 2e-5, 1e-7, 3e-6])
    twelve = np.timedelta64(12, "m")
    now = evaluate.persistence(flux_now, times, np.arange(5), nowcast=True, cadence=twelve)
    assert np.isnan(now[0])  # nothing before the first step
    np.testing.assert_allclose(now[1:3], [-6.0, -5.0])
    assert np.isnan(now[3])  # 00:36 is missing: not the flux of 00:24
    assert now[4] == pytest.approx(-7.0)
    forecast = evaluate.persistence(flux_now, times, np.array([3, 0]), nowcast=False, cadence=twelve)
    np.testing.assert_allclose(forecast, [-7.0, -6.0])
    assert np.isnan(evaluate.persistence(np.array([0.0, 1e-6]), times[:2], np.array([0]), nowcast=False,
                                        cadence=twelve)[0])


def _fake_dm(flux, *, nowcast=False, train=None, history=None, store=None, channels=(94, 131, 171),
             synthetic=True, cadence_h=2, name="tiny-sun", events=None):
    n = len(flux)
    zero = np.timedelta64(0, "ns")
    lead = zero if nowcast else np.timedelta64(2, "h").astype("timedelta64[ns]")
    window = zero if nowcast else np.timedelta64(6, "h").astype("timedelta64[ns]")
    target = Target("now" if nowcast else "lead120min_window360min", lead, window, np.asarray(flux, np.float64))
    train = np.arange(n) if train is None else train
    cadence = np.timedelta64(cadence_h, "h")
    plan = SimpleNamespace(times=T0 + np.arange(n) * cadence, cadence=cadence, target=target,
                           index={"train": train, "val": np.array([], int), "test": np.array([], int)},
                           flux_now=np.asarray(flux, np.float64), usable=np.arange(n))
    return SimpleNamespace(plan=plan, store_path=store,
                           cube_channels=list(channels), synthetic=synthetic, cube_attrs={"name": name},
                           history_max=lambda label: history[label], cube=lambda: events or xr.Dataset())


def test_flare_history_persistence_reads_the_history_and_is_not_for_nowcasts():
    history = {"6h": np.array([1e-6, 1e-4, 2e-6]), "24h": np.array([1e-5, 1e-4, 1e-5])}
    dm = _fake_dm([1e-7, 1e-7, 1e-7], history=history)
    np.testing.assert_allclose(evaluate.flare_history_persistence(dm, np.array([0, 2]), "6h"),
                               [-6.0, np.log10(2e-6)])
    np.testing.assert_allclose(evaluate.flare_history_persistence(dm, np.array([1]), "24h"), [-4.0])
    with pytest.raises(ValueError, match="nowcast"):
        evaluate.flare_history_persistence(_fake_dm([1e-7] * 3, nowcast=True, history=history), np.array([0]))


def test_climatology_base_rate_and_mean_from_the_training_block_only():
    dm = _fake_dm([1e-7, 2e-6, 1e-5, 5e-5, 1e-3], train=np.arange(4))
    assert evaluate.base_rate(dm, 1e-6) == 0.75
    assert evaluate.base_rate(dm, 1e-5) == 0.5  # M1.0 exactly is an event
    expected = (-7 + np.log10(2e-6) - 5 + np.log10(5e-5)) / 4
    np.testing.assert_allclose(evaluate.climatology_forecast(dm, np.array([4, 0])), [expected, expected], rtol=1e-6)
    assert np.all(evaluate.climatology(np.array([-6.0, -5.0, np.nan]), 3) == -5.5)


def test_linear_and_least_squares_calibration():
    a, b = evaluate.fit_linear(np.array([1.0, 2.0, 3.0, np.nan]), np.array([-7.0, -6.0, -5.0, 0.0]))
    assert a == pytest.approx(-8.0) and b == pytest.approx(1.0)
    with pytest.raises(ValueError):
        evaluate.fit_linear(np.array([1.0]), np.array([1.0]))
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [2.0, 3.0], [np.nan, 1.0]])
    coef = evaluate.fit_least_squares(x, 1 + 2 * x[:, 0] - x[:, 1])
    np.testing.assert_allclose(coef, [1.0, 2.0, -1.0], atol=1e-12)


def test_logistic_fit_reproduces_group_frequencies():
    # x = 0: y 0, 1 -> P 1/2; x = 1: y 0, 1, 1, 1 -> P 3/4. The MLE: c0 = logit(1/2) = 0, c1 = logit(3/4) = log 3
    x = np.array([0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    y = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    coef = evaluate.fit_logistic(x[:, None], y, l2=0.0)
    np.testing.assert_allclose(coef, [0.0, np.log(3.0)], atol=1e-8)
    np.testing.assert_allclose(evaluate.predict_logistic(coef, np.array([[0.0], [1.0]])), [0.5, 0.75])
    # separable data stay finite with the default ridge, and increase with x
    sep = evaluate.fit_logistic(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0.0, 0.0, 1.0, 1.0]))
    assert np.isfinite(sep).all() and sep[1] > 0
    # one class only: the constant rate
    const = evaluate.fit_logistic(np.array([[0.0], [1.0]]), np.array([0.0, 0.0]))
    assert const[1] == 0.0 and evaluate.predict_logistic(const, np.array([[5.0]]))[0] == pytest.approx(1e-6)


def test_hot_excess_over_the_frame_median_by_hand():
    frames = np.array([[[1.0, 2.0], [3.0, 10.0]],  # median 2.5 -> 0 + 0 + 0.5 + 7.5 = 8
                       [[1.0, np.nan], [3.0, 10.0]],  # median 3 -> 7
                       [[np.nan, np.nan], [np.nan, np.nan]]])
    out = evaluate.hot_excess(frames)
    np.testing.assert_allclose(out[:2], [8.0, 7.0])
    assert np.isnan(out[2])


# --------------------------------------------------------------------------- probabilistic scores

def test_threshold_is_the_one_that_maximizes_tss():
    # events at 0.2, 0.5, 0.9; non-events at 0.1, 0.3, 0.4. Yes if p >= 0.45: TP 2, FP 0 -> TSS 2/3 (the best:
    # >= 0.15: 1 - 2/3; >= 0.25: 2/3 - 2/3; >= 0.35: 2/3 - 1/3; >= 0.7: 1/3)
    prob = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.9])
    event = np.array([0, 1, 0, 0, 1, 1])
    assert evaluate.choose_threshold(prob, event) == pytest.approx(0.45)
    curve = evaluate.tss_vs_threshold(prob, event, np.array([0.15, 0.45, 0.7, 1.0]))
    np.testing.assert_allclose(curve["TSS"], [1 / 3, 2 / 3, 1 / 3, 0.0])
    np.testing.assert_allclose(curve["POD"], [1.0, 2 / 3, 1 / 3, 0.0])
    assert evaluate.choose_threshold(np.full(4, 0.2), np.array([0, 1, 0, 1])) == pytest.approx(0.2)
    assert evaluate.choose_threshold(np.array([0.1, 0.9]), np.array([0, 0])) == 0.5  # no events: the default


def test_brier_skill_score_roc_auc_and_reliability_by_hand():
    # BS = (0.2² + 0.2²)/2 = 0.04; BS of 0.5 = 0.25 -> BSS 1 - 0.16 = 0.84
    assert evaluate.brier_skill_score(np.array([0.2, 0.8]), np.array([0, 1]), 0.5) == pytest.approx(0.84)
    assert evaluate.brier_skill_score(np.full(4, 0.25), np.array([0, 0, 0, 1]), 0.25) == pytest.approx(0.0)
    # pairs (event, non-event): (0.35, 0.1) yes, (0.35, 0.4) no, (0.8, 0.1) yes, (0.8, 0.4) yes -> 3/4
    assert evaluate.roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    assert evaluate.roc_auc(np.array([0.5, 0.5]), np.array([0, 1])) == pytest.approx(0.5)  # a tie counts half
    assert np.isnan(evaluate.roc_auc(np.array([0.5, 0.6]), np.array([1, 1])))
    roc = evaluate.roc_curve(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    np.testing.assert_allclose(roc["POFD"], [0, 0, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(roc["POD"], [0, 0.5, 0.5, 1.0, 1.0])
    rel = evaluate.reliability(np.array([0.05, 0.15, 0.12, 0.95, 1.0]), np.array([0, 1, 0, 1, 1]), bins=10)
    assert rel["count"].tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    np.testing.assert_allclose(rel["mean_forecast"].iloc[[0, 1, 9]], [0.05, 0.135, 0.975])
    np.testing.assert_allclose(rel["observed_frequency"].iloc[[0, 1, 9]], [0.0, 0.5, 1.0])
    assert rel["mean_forecast"].iloc[2:9].isna().all()


# --------------------------------------------------------------------------- the skill table, end to end

N_STEPS = 120  # 10 days at 2 h
TRAIN, VAL, TEST = np.arange(0, 60), np.arange(60, 84), np.arange(84, 120)


def _cube(path: Path, flux: np.ndarray, flux_now: np.ndarray, *, oracle: bool, label: str) -> Path:
    """A tiny cube: 94 Å's only bright pixel is 10 + 1e9 flux_now DN/s over a flat 10 DN/s, so its summed excess
    is exactly 1e9 flux_now; 131 Å is flat with noise; 171 Å is flat."""
    rng = np.random.default_rng(5)
    aia = np.full((N_STEPS, 3, 4, 4), 10.0, np.float32)
    aia[:, 0, 0, 0] += (1e9 * flux_now).astype(np.float32)
    aia[:, 1] += rng.normal(0, 1, (N_STEPS, 4, 4)).astype(np.float32)
    ds = xr.Dataset(coords={"time": T0 + np.arange(N_STEPS) * np.timedelta64(2, "h"), "channel": [94, 131, 171]},
                    attrs={"input_fingerprint": "metrics-tiny"})
    if oracle:
        events = np.stack([flux >= 1e-6, flux >= 1e-5], axis=-1).astype(float)
        ds["oracle_flux_max"] = (("time", "forecast"), flux[:, None])
        ds["oracle_prob"] = (("time", "forecast", "event_class"), events[:, None, :])
        ds = ds.assign_coords(forecast=[label], event_class=["C", "M"])
    # through the cube writer, so the store carries its chunk checksums like every flarelib cube
    store.write_cube(path, ds, {"aia": (("channel", "y", "x"), (3, 4, 4), "float32")},
                     lambda i0, i1: {"aia": aia[i0:i1]}, store.WriteOptions(progress=False))
    return path


@pytest.fixture
def scenario(tmp_path):
    rng = np.random.default_rng(42)
    log_flux = rng.uniform(-7.5, -4.2, N_STEPS)
    log_flux[[70, 75, 100, 110]] = [-4.5, -6.8, -4.4, -6.9]  # val and test both have M events and quiet steps
    flux = 10.0 ** log_flux
    flux_now = 10.0 ** (log_flux + rng.normal(0, 0.3, N_STEPS))
    history = {"6h": flux_now * 1.5, "24h": flux_now * 3.0}
    dm = _fake_dm(flux, train=TRAIN, history=history, synthetic=True)
    dm.plan.flux_now = flux_now
    dm.plan.index.update(val=VAL, test=TEST)
    dm.store_path = _cube(tmp_path / "tiny.zarr", flux, flux_now, oracle=True, label=dm.plan.target.name)
    # the model's class head: on val, events get 0.6 and quiet steps 0.4 (threshold chosen: 0.5);
    # on test, events get 0.45 and quiet 0.3, so the val threshold says no everywhere -> TSS 0 on test,
    # though a threshold chosen on test (0.375) would score TSS 1.
    def predictions(split, index):
        true = np.log10(flux[index]).astype(np.float32)
        hi, lo = (0.6, 0.4) if split == "val" else (0.45, 0.3)
        ds = xr.Dataset({"pred": ("time", (true + 0.2).astype(np.float32)), "true": ("time", true)},
                        coords={"time": dm.plan.times[index], "time_index": ("time", index)},
                        attrs={"split": split, "target": dm.plan.target.name, "synthetic": True, "cube": "tiny-sun"})
        for letter, threshold in evaluate.THRESHOLDS.items():
            ds[f"prob_{letter}"] = ("time", np.where(flux[index] >= threshold, hi, lo).astype(np.float32))
        return ds
    return dm, predictions("val", VAL), predictions("test", TEST), flux


def test_skill_table_has_the_exact_columns_and_every_predictor(scenario):
    dm, val, test, flux = scenario
    table = evaluate.skill_table(val, test, dm, n_resamples=300)
    assert list(table.columns) == evaluate.SKILL_COLUMNS
    common = {"FlareNet", "FlareNet regression", "persistence", "flare-history persistence 6h",
              "flare-history persistence 24h", "climatology", "GOES + flare-history logistic", "region photometry",
              "latent oracle"}  # no running-rate Poisson forecast: this cube has no flare list
    assert set(table["predictor"]) in (common | {"brightest pixel 94 Å"}, common | {"brightest pixel 131 Å"})
    assert len(table) == 2 * 10
    assert (table["n_events_distinct"] >= 1).all() and (table["block_hours"] >= 24).all()
    assert table["AUC"].between(0, 1).all()
    assert set(table["threshold"]) == {">=C1", ">=M1"}
    assert (table["dataset"] == "SYNTHETIC tiny-sun").all() and table["synthetic"].all()
    assert (table["split"] == "test").all() and (table["target"] == "lead120min_window360min").all()
    assert (table["n_samples"] == TEST.size).all()
    m = table[table["threshold"] == ">=M1"].set_index("predictor")
    assert (m["n_events"] == int(np.sum(flux[TEST] >= 1e-5))).all()
    # the interval contains the point score
    ok = m["TSS"].notna()
    assert (m.loc[ok, "TSS_lo"] <= m.loc[ok, "TSS"] + 1e-12).all()
    assert (m.loc[ok, "TSS"] <= m.loc[ok, "TSS_hi"] + 1e-12).all()


def test_skill_table_values_by_hand(scenario):
    dm, val, test, flux = scenario
    table = evaluate.skill_table(val, test, dm, n_resamples=300).set_index(["predictor", "threshold"])
    true_log = np.log10(flux[TEST])
    # the oracle is the truth: perfect, with no spread, and its probabilities are perfectly sharp
    for threshold in (">=C1", ">=M1"):
        oracle = table.loc[("latent oracle", threshold)]
        assert oracle["TSS"] == oracle["TSS_lo"] == oracle["TSS_hi"] == 1.0
        assert oracle["BSS"] == pytest.approx(1.0) and oracle["MAE_dex"] == pytest.approx(0.0, abs=1e-12)
        # climatology: a constant, TSS 0, and BSS 0 against itself
        clim = table.loc[("climatology", threshold)]
        assert clim["TSS"] == 0.0 and clim["BSS"] == pytest.approx(0.0, abs=1e-12)
        assert clim["MAE_dex"] == pytest.approx(np.mean(np.abs(np.mean(np.log10(flux[TRAIN])) - true_log)))
        # persistence: the flux at t, thresholded at the class threshold
        level = 1e-6 if threshold == ">=C1" else 1e-5
        expected = evaluate.scores(evaluate.contingency(np.log10(dm.plan.flux_now[TEST]), true_log, level))
        assert table.loc[("persistence", threshold), "TSS"] == pytest.approx(expected["TSS"])
        assert np.isnan(table.loc[("persistence", threshold), "BSS"])
        history = evaluate.scores(evaluate.contingency(np.log10(3 * dm.plan.flux_now[TEST]), true_log, level))
        assert table.loc[("flare-history persistence 24h", threshold), "TSS"] == pytest.approx(history["TSS"])
        # FlareNet: the class head with the VALIDATION threshold (0.5) says no on test -> TSS 0, not 1
        assert table.loc[("FlareNet", threshold), "TSS"] == 0.0
        assert table.loc[("FlareNet", threshold), "MAE_dex"] == pytest.approx(0.2, abs=1e-6)
        # FlareNet regression: pred = true + 0.2 dex -> misses nothing, false alarms within 0.2 dex below
        reg = evaluate.scores(evaluate.contingency(true_log + 0.2, true_log, level))
        assert table.loc[("FlareNet regression", threshold), "TSS"] == pytest.approx(reg["TSS"], abs=1e-6)
        assert np.isnan(table.loc[("FlareNet regression", threshold), "BSS"])
    # region photometry: log10(94 Å excess) = log10(flux_now) + 9 exactly, so the linear fit on the training block
    # reproduces a regression on flux_now; its MAE equals that of the best linear map of log flux_now
    x = np.log10(dm.plan.flux_now)
    a, b = evaluate.fit_linear(x[TRAIN], np.log10(flux[TRAIN]))
    assert table.loc[("region photometry", ">=M1"), "MAE_dex"] == pytest.approx(
        evaluate.mae(a + b * x[TEST], true_log), abs=0.01)


def test_baselines_for_a_real_nowcast_cube_have_no_oracle_and_no_flare_history(scenario, tmp_path):
    _, _, _, flux = scenario
    dm = _fake_dm(flux, nowcast=True, train=TRAIN, synthetic=False, name="real-cube")
    dm.plan.index.update(val=VAL, test=TEST)
    dm.store_path = _cube(tmp_path / "real.zarr", flux, flux, oracle=False, label="x")
    preds = evaluate.baseline_predictions(dm, TEST)
    assert "latent oracle" not in preds and not any(k.startswith("flare-history") for k in preds)
    # nowcast persistence: the flux one cadence (2 h) earlier
    np.testing.assert_allclose(preds["persistence"], np.log10(flux[TEST - 1]))
    # region photometry: log10 excess = log10 flux + 9 exactly, so the fit reproduces the truth
    np.testing.assert_allclose(preds["region photometry"], np.log10(flux[TEST]), atol=1e-4)
    probs = evaluate.baseline_probabilities(dm, TEST)
    assert set(probs) == {"climatology", "region photometry"} and set(probs["climatology"]) == {"C", "M"}
    assert np.all(probs["climatology"]["M"] == np.mean(flux[TRAIN] >= 1e-5))


def test_skill_table_refuses_predictions_of_another_target(scenario):
    dm, val, test, _ = scenario
    wrong = test.copy()
    wrong["true"] = wrong["true"] + 1
    with pytest.raises(ValueError, match="do not match"):
        evaluate.skill_table(val, wrong, dm, n_resamples=10)


def test_verdicts_csv_and_figures_from_a_skill_table(scenario, tmp_path, monkeypatch):
    dm, val, test, _ = scenario
    forecasts = evaluate.collect_forecasts(val, test, dm)
    assert forecasts.prob_threshold[("FlareNet", "M")] == pytest.approx(0.5)  # chosen on val
    table = evaluate.skill_table(val, test, dm, forecasts=forecasts, n_resamples=200)
    paired = evaluate.paired_table(forecasts, n_resamples=200)
    assert list(paired.columns) == evaluate.PAIRED_COLUMNS
    assert set(paired["reference"]) >= {"climatology", "latent oracle", "flare-history persistence 24h"}
    assert ("latent oracle", "flare-history persistence 24h") in set(zip(paired["predictor"], paired["reference"]))
    lines = evaluate.verdict_sentences(paired)
    assert len(lines) == 2 and all(line.startswith("SYNTHETIC tiny-sun, ≥") for line in lines)
    # the model says no everywhere on test at >= M1 (threshold chosen on val): TSS 0 against the oracle's 1
    assert "loses to latent oracle (ΔTSS -1.00 [-1.00, -1.00])" in lines[1]
    monkeypatch.setenv("FLARELIB_RESULTS_DIR", str(tmp_path / "results"))
    assert list(pd.read_csv(evaluate.write_paired_csv(paired)).columns) == evaluate.PAIRED_COLUMNS
    shown = evaluate.summary_columns(table)
    assert shown.loc[("lead120min_window360min", ">=M1", "latent oracle"), "TSS"] == "1.00 [1.00, 1.00]"
    monkeypatch.setenv("FLARELIB_RESULTS_DIR", str(tmp_path / "results"))
    path = evaluate.write_skill_csv([table, table.assign(target="now")])
    assert path == tmp_path / "results" / "skill.csv"
    back = pd.read_csv(path)
    assert list(back.columns) == evaluate.SKILL_COLUMNS and len(back) == 2 * len(table)
    evaluate.write_skill_csv(table, append=True)  # replaces that target's rows, keeps the other's
    assert len(pd.read_csv(path)) == 2 * len(table)
    counts = evaluate.contingency_table(forecasts)
    assert counts.loc[("lead120min_window360min", "latent oracle", ">=M1"), "FP"] == 0
    titles = [plotting.plot_reliability(evaluate.reliability_table(forecasts))[0].get_title(),
              plotting.plot_roc(evaluate.roc_table(forecasts)).get_title(),
              plotting.plot_tss_vs_threshold(evaluate.tss_threshold_table(forecasts)).get_title(),
              plotting.plot_skill_intervals(table)[0].figure._suptitle.get_text()]
    assert all(t.startswith("SYNTHETIC tiny-sun") for t in titles)
    plt.close("all")
    tss_curve = evaluate.tss_threshold_table(forecasts)
    assert set(tss_curve["split"]) == {"val"} and {"chosen", "TSS", "prob_threshold"} <= set(tss_curve.columns)


# --------------------------------------------------------------------------- skill per block

def test_skill_per_block_and_spread_by_hand():
    # block 1: the TWO_DAYS day A (perfect); block 2: day B (TSS -1/3). Pooled: 7/15.
    true_log = np.where(TWO_EVENTS, -4.5, -6.5)
    pred = np.where(TWO_YES, -4.5, -6.5)
    blocks = np.array([1, 1, 1, 1, 2, 2, 2, 2])
    per_block = evaluate.skill_per_block(true_log, {"m": pred}, blocks, thresholds={"M": 1e-5})
    rows = per_block.set_index("block")
    assert rows.loc[1, "TSS"] == pytest.approx(1.0) and rows.loc[2, "TSS"] == pytest.approx(-1 / 3)
    assert rows.loc["pooled", "TSS"] == pytest.approx(7 / 15)
    assert rows.loc[2, "n_events"] == 1 and rows.loc[2, "n_samples"] == 4
    assert rows.loc[1, "MAE_dex"] == 0.0 and rows.loc[2, "MAE_dex"] == pytest.approx(1.0)  # 2 misses of 2 dex / 4
    spread = evaluate.block_spread(per_block).loc[("m", ">=M1")]
    assert spread["n_blocks"] == 2
    assert spread["TSS_mean"] == pytest.approx(1 / 3) and spread["TSS_min"] == pytest.approx(-1 / 3)
    assert spread["TSS_std"] == pytest.approx(np.std([1.0, -1 / 3], ddof=1))
    assert spread["TSS_pooled"] == pytest.approx(7 / 15)
    # yes forecasts from elsewhere (a probability with its threshold) replace the thresholded flux
    always = evaluate.skill_per_block(true_log, {"m": pred}, blocks, thresholds={"M": 1e-5},
                                     yes={"m": {"M": np.ones(8)}}, pooled=False)
    assert (always["TSS"] == 0.0).all() and len(always) == 2


def test_a_reference_model_is_scored_beside_the_model_on_the_same_steps(scenario):
    dm, val, test, _ = scenario
    goes_only = (val.copy(), test.copy())
    goes_only[1]["pred"] = goes_only[1]["pred"] - 1.0  # a worse flux forecast
    forecasts = evaluate.collect_forecasts(val, test, dm, others={"GOES-only model": goes_only})
    assert "GOES-only model" in forecasts.predictors and ("GOES-only model", "M") in forecasts.prob_threshold
    table = evaluate.skill_table(val, test, dm, forecasts=forecasts, n_resamples=50)
    mae = table.groupby("predictor")["MAE_dex"].first()
    assert mae["GOES-only model"] > mae["FlareNet"]
    assert all("GOES-only model" in line for line in evaluate.verdict_sentences(evaluate.paired_table(forecasts,
                                                                                                     n_resamples=50)))
    shifted = (val.copy(), test.isel(time=slice(1, None)))
    with pytest.raises(ValueError, match="predicted other steps"):
        evaluate.collect_forecasts(val, test, dm, others={"GOES-only model": shifted})


# --------------------------------------------------------------------------- evaluation protocol v3

def test_logistic_fit_does_not_diverge_on_heavy_tailed_rare_events():
    # the shape of the nowcast >= M1 region photometry: three strongly correlated, heavy-tailed features and 24
    # events in 3000; undamped Newton steps sent the coefficients to ~5e5 and every probability to 0 here
    rng = np.random.default_rng(0)
    base = rng.normal(size=3000) * rng.uniform(0.3, 2)
    x = np.exp(np.column_stack([base + rng.normal(size=3000) * s for s in rng.uniform(0.01, 0.3, 3)]))
    y = (base > np.quantile(base, rng.uniform(0.95, 0.999))).astype(float)
    assert y.sum() == 24
    coef = evaluate.fit_logistic(x, y)
    p = evaluate.predict_logistic(coef, x)
    assert np.isfinite(coef).all() and np.abs(coef).max() < 1e3
    assert evaluate.roc_auc(p, y) >= 0.99
    # at the optimum the penalized gradient vanishes (standardized features, ridge on the slopes)
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    beta = np.r_[coef[0] + coef[1:] @ x.mean(axis=0), coef[1:] * x.std(axis=0)]
    grad = np.column_stack([np.ones(len(y)), z]).T @ (y - p) - np.r_[0.0, beta[1:]]
    assert np.abs(grad).max() < 1e-4


def test_autocorrelation_time_of_an_ar1_series_and_the_memory_block():
    # AR(1) with phi: tau = (1 + phi) / (1 - phi) = 9 for phi = 0.8
    rng = np.random.default_rng(1)
    x = np.zeros(40000)
    noise = rng.normal(size=x.size)
    for k in range(1, x.size):
        x[k] = 0.8 * x[k - 1] + noise[k]
    assert evaluate.autocorrelation_time(x) == pytest.approx(9.0, rel=0.15)
    assert evaluate.autocorrelation_time(rng.normal(size=5000)) == pytest.approx(1.0, abs=0.1)
    assert evaluate.autocorrelation_time(np.ones(10)) == 1.0
    # hourly "an event in the next 24 h" of rare isolated events: about a day of memory at least
    times = T0 + np.arange(24 * 200) * np.timedelta64(1, "h")
    peaks = np.sort(rng.choice(times.size, 20, replace=False))
    event = np.zeros(times.size)
    for k in peaks:
        event[max(k - 24, 0):k] = 1
    block = evaluate.memory_block(times, event)
    assert np.timedelta64(1, "D") <= block <= np.timedelta64(3, "D") and block % np.timedelta64(24, "h") == 0
    # clustered episodes (events on for ~10 days at a time) need longer blocks than isolated flares
    slow = np.repeat(rng.random(20) < 0.3, 240).astype(float)
    assert evaluate.memory_block(times, slow) >= np.timedelta64(5, "D")
    assert evaluate.memory_block(times[:2], event[:2]) == np.timedelta64(24, "h")


def test_block_bootstrap_draws_runs_of_consecutive_days():
    times = T0 + np.arange(10 * 24) * np.timedelta64(1, "h")
    code, one = evaluate.block_resample_counts(times, evaluate.DAY, n_resamples=200, seed=5)
    # one-day blocks: the day bootstrap, n_days days drawn with replacement (the draws of the earlier protocol)
    draws = np.random.default_rng(5).integers(0, 10, size=(200, 10))
    assert (one == np.stack([np.bincount(d, minlength=10) for d in draws])).all()
    _, three = evaluate.block_resample_counts(times, np.timedelta64(3, "D"), n_resamples=200, seed=5)
    assert three.shape == (200, 10) and (three.sum(axis=1) == 10).all()
    starts = np.random.default_rng(5).integers(0, 10, size=(200, 4))
    days = ((starts[:, :, None] + np.arange(3)) % 10).reshape(200, -1)[:, :10]
    assert (three == np.stack([np.bincount(d, minlength=10) for d in days])).all()
    assert code.tolist() == list(np.repeat(np.arange(10), 24))


def test_paired_difference_sees_what_overlapping_intervals_miss():
    rng = np.random.default_rng(7)
    n = 60 * 24
    times = T0 + np.arange(n) * np.timedelta64(1, "h")
    event = np.repeat(rng.random(60) < 0.3, 24)
    base = np.where(rng.random(n) < 0.75, event, ~event)
    better = np.where(rng.random(n) < 0.08, event, base)  # the same forecast, right on 8% more hours
    marginal = evaluate.bootstrap_scores(times, event, {"a": better, "b": base}, block=np.timedelta64(3, "D"))
    assert marginal.loc["a", "TSS_lo"] < marginal.loc["b", "TSS_hi"]  # the marginal intervals overlap
    d = evaluate.paired_difference(times, event, better, base, block=np.timedelta64(3, "D"))
    assert d["dTSS"] > 0 and d["dTSS_lo"] > 0 and d["p_not_better"] < 0.05 and d["n_samples"] == n
    same = evaluate.paired_difference(times, event, base, base.copy())
    assert same["dTSS"] == same["dTSS_lo"] == same["dTSS_hi"] == 0.0 and same["p_not_better"] == 1.0
    # BSS of the difference where both give probabilities; samples one of them lacks are left out of both
    prob_a, prob_b = np.where(better, 0.8, 0.1), np.where(base, 0.7, 0.2)
    prob_b[:48] = np.nan
    d = evaluate.paired_difference(times, event, better, base, prob_a=prob_a, prob_b=prob_b, reference_rate=0.3)
    assert d["n_samples"] == n - 48 and d["dBSS_lo"] <= d["dBSS"] <= d["dBSS_hi"]
    ok = np.isfinite(prob_b)
    e = event[ok].astype(float)
    reference = np.mean((0.3 - e) ** 2)
    expected = (1 - np.mean((prob_a[ok] - e) ** 2) / reference) - (1 - np.mean((prob_b[ok] - e) ** 2) / reference)
    assert d["dBSS"] == pytest.approx(expected)


def test_within_block_auc_removes_what_the_activity_level_alone_gives():
    rng = np.random.default_rng(3)
    blocks = np.repeat(np.arange(6), 200)
    rate = np.repeat([0.02, 0.5, 0.1, 0.6, 0.05, 0.3], 200)
    event = rng.random(blocks.size) < rate
    level_only = rate + rng.normal(0, 1e-6, blocks.size)  # knows each block's base rate, nothing else
    assert evaluate.roc_auc(level_only, event) > 0.75
    assert evaluate.within_block_auc(level_only, event, blocks) == pytest.approx(0.5, abs=0.06)
    sharp = event + rng.normal(0, 0.3, blocks.size)
    assert evaluate.within_block_auc(sharp, event, blocks) > 0.9
    assert np.isnan(evaluate.within_block_auc(sharp, np.zeros(blocks.size), blocks))


def _flare_events(peaks, fluxes, duration_h=1):
    peak = np.asarray(peaks, "datetime64[ns]")
    return xr.Dataset({"event_peak": ("event", peak),
                       "event_start": ("event", peak - np.timedelta64(duration_h, "h")),
                       "event_end": ("event", peak + np.timedelta64(duration_h, "h")),
                       "event_peak_flux": ("event", np.asarray(fluxes, float))})


def test_running_rate_poisson_counts_only_flares_already_peaked():
    n = 24 * 40
    flux = np.full(n, 1e-7)
    events = _flare_events([T0 + np.timedelta64(h, "h") for h in (10, 30, 24 * 20)], [2e-6, 3e-5, 2e-6])
    dm = _fake_dm(flux, cadence_h=1, events=events)  # a 2 h lead, 6 h window forecast
    index = np.array([9, 10, 31, 24 * 20 + 5, 24 * 38])
    probs = evaluate.running_rate_poisson(dm, index)
    window = 6 / 24
    expected_c = 1 - np.exp(-np.array([0, 1, 2, 3, 1]) / 27 * window)  # the t = 38 d window: only day 20
    np.testing.assert_allclose(probs["C"], expected_c)
    np.testing.assert_allclose(probs["M"], 1 - np.exp(-np.array([0, 0, 1, 1, 0]) / 27 * window))
    assert evaluate.running_rate_poisson(_fake_dm(flux, cadence_h=1, events=events, nowcast=True), index) is None
    assert evaluate.running_rate_poisson(_fake_dm(flux, cadence_h=1), index) is None  # no flare list


def test_distinct_events_count_flares_not_hours():
    n = 24 * 10
    peaks = [T0 + np.timedelta64(h, "h") for h in (50, 52, 150)]
    events = _flare_events(peaks, [2e-5, 3e-6, 4e-5])
    lead, window = np.timedelta64(2, "h"), np.timedelta64(6, "h")
    times = T0 + np.arange(n) * np.timedelta64(1, "h")
    target = np.array([max([f for p, f in zip(peaks, (2e-5, 3e-6, 4e-5)) if t + lead < p <= t + lead + window],
                           default=1e-7) for t in times])
    dm = _fake_dm(target, cadence_h=1, events=events)
    everything = np.arange(n)
    assert evaluate.distinct_events(dm, everything, 1e-5) == 2  # 12 event hours, two M flares
    assert evaluate.distinct_events(dm, everything, 1e-6) == 3
    assert evaluate.distinct_events(dm, np.arange(100), 1e-5) == 1
    # without a flare list: runs of consecutive event samples
    assert evaluate.distinct_events(_fake_dm(target, cadence_h=1), everything, 1e-5) == 2
