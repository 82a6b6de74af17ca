"""The talk's lessons on the real Sun (flarelib.evaluate.real_lessons): long data, training data selection and
class imbalance with the McIntosh references, on the real NOAA files (>= M1 only, 200 resamples, to stay fast)."""

import numpy as np
import pandas as pd
import pytest

from flarelib.cube import noaa
from flarelib.evaluate import real
from flarelib.evaluate import real_lessons as L
from flarelib.evaluate.scoring import contingency_cells, scores
from flarelib.evaluate.skill import forecasts_skill_table
from tests.test_real_sun import EVENTS, REGIONS

M1 = {"M": 1e-5}
RESAMPLES = 200


@pytest.fixture(scope="module")
def lessons():
    history = real.RealHistory(noaa.read_event_list(EVENTS)[0], noaa.read_region_days(REGIONS)[0])
    reference = real.real_forecasts(history, thresholds=M1)
    long_data = L.real_long_data(history, thresholds=M1, reference=reference, n_resamples=RESAMPLES)
    protocols = L.real_split_protocols(history, thresholds=M1, reference=reference, n_resamples=RESAMPLES)
    return history, reference, long_data, protocols


def _bounded(table, value, lo, hi):
    """lo <= value <= hi wherever the three are defined, and at least one row defines them."""
    v, low, high = (table[c].to_numpy(float) for c in (value, lo, hi))
    ok = np.isfinite(v) & np.isfinite(low) & np.isfinite(high)
    assert ok.any()
    assert np.all(low[ok] <= v[ok] + 1e-12) and np.all(v[ok] <= high[ok] + 1e-12)


def test_a_callable_selection_gives_the_same_forecasts_as_its_span(lessons):
    history, reference, _, _ = lessons
    split = real.RealSplit(train=lambda t: real.in_span(t, real.TRAIN_SPAN), val=real.VAL_SPAN)
    again = real.real_forecasts(history, thresholds=M1, split=split).full_disk
    f = reference.full_disk
    assert np.array_equal(again.test.times, f.test.times)
    for name in L.LESSON_PREDICTORS:
        assert np.array_equal(again.test.prob[name]["M"], f.test.prob[name]["M"])
        assert again.prob_threshold[(name, "M")] == f.prob_threshold[(name, "M")]


def test_training_spans_end_before_the_test_and_have_their_lengths(lessons):
    history, _, long_data, _ = lessons
    assert L.months_before(150) == ("1998-07-01", "2010-12-31 23:59")
    times = real.history_issue_times(history)
    for m in L.SPAN_MONTHS:
        start, end = L.months_before(m)
        assert end == "2010-12-31 23:59" and pd.Timestamp(start).day == 1
        assert len(pd.period_range(start, end, freq="M")) == m
        rows = long_data[long_data["span_months"] == m]
        assert (rows["train_start"] == start).all() and (rows["train_end"] == end).all()
        assert (rows["n_train_days"] == len(pd.date_range(start, "2010-12-31"))).all()
        assert (rows["n_train_days"] == real.in_span(times, (start, end)).sum()).all()
    assert pd.Timestamp(L.LONG_VAL_SPAN[1]) < pd.Timestamp(L.months_before(max(L.SPAN_MONTHS))[0])


def test_every_span_is_scored_on_the_same_test_rows(lessons):
    _, reference, long_data, _ = lessons
    assert list(long_data.columns) == L.LONG_DATA_COLUMNS
    assert len(long_data) == len(L.SPAN_MONTHS) * len(L.LESSON_PREDICTORS)
    f = reference.full_disk
    assert (long_data["n_samples"] == f.test.times.size).all()
    assert (long_data["n_events"] == f.test.event(1e-5).sum()).all()
    longest = long_data[long_data["span_months"] == max(L.SPAN_MONTHS)]
    assert (longest["dTSS_vs_longest"] == 0).all()
    for value in ("TSS", "BSS", "AUC"):
        _bounded(long_data, value, f"{value}_lo", f"{value}_hi")
    _bounded(long_data, "dTSS_vs_longest", "dTSS_lo", "dTSS_hi")
    assert np.isfinite(long_data[["TSS", "BSS", "AUC", "prob_threshold"]].to_numpy(float)).all()


def test_training_events_are_counted_from_the_event_list(lessons):
    history, _, long_data, _ = lessons
    events = history.events
    for m in (1, 12):
        start, end = L.months_before(m)
        count = 0
        for day in pd.date_range(start, pd.Timestamp(end).normalize()):
            t = day + pd.Timedelta("30min")
            window = events[(events["peak"] > t) & (events["peak"] <= t + pd.Timedelta("24h"))]
            count += bool((window["peak_flux"] >= 1e-5).any())
        assert (long_data.loc[long_data["span_months"] == m, "n_train_events"] == count).all()
    # a span without a training event is reported, not an error (the Poisson rates are then 0: TSS 0)
    quiet = long_data[long_data["n_train_events"] == 0]
    if len(quiet):
        assert (quiet["months_without_events"] == quiet["span_months"]).all()


def test_tri_monthly_folds_are_disjoint_and_interleaved(lessons):
    history, reference, _, _ = lessons
    times = real.history_issue_times(history)
    month = pd.DatetimeIndex(times).to_period("M")
    test_days = np.zeros(reference.full_disk.test.times.size, int)
    for k in range(L.N_FOLDS[L.TRI_MONTHLY]):
        masks = L.fold_split(L.TRI_MONTHLY, k).masks(times)
        train, test = set(month[masks["train"]]), set(month[masks["test"]])
        assert train and test and not train & test and not set(month[masks["val"]]) & train
        assert {m.year for m in test} == set(range(2011, 2019))
        assert all(m - 1 in train and m + 1 in train for m in test if m.year < 2018)  # neighbours train
        test_days += L.MonthFold(L.TRI_MONTHLY, k)(reference.full_disk.test.times)
    assert (test_days == 1).all()  # every test day in exactly one fold


def test_the_seasonal_split_tests_one_quarter_of_each_test_year(lessons):
    history, _, _, protocols = lessons
    times = real.history_issue_times(history)
    stamps = pd.DatetimeIndex(times)
    for k in range(L.N_FOLDS[L.SEASONAL]):
        masks = L.fold_split(L.SEASONAL, k).masks(times)
        tested = stamps[masks["test"]]
        assert set(tested.quarter) == {k + 1} and set(tested.year) == set(range(2011, 2019))
        for year in range(2011, 2019):
            quarter = (stamps.year == year) & (stamps.quarter == k + 1)
            assert (masks["test"] == quarter)[stamps.year == year].all()  # the whole quarter, nothing else
        assert not (masks["train"] & masks["test"]).any()
        assert set(stamps[masks["train"]].quarter) == {1, 2, 3, 4} - {k + 1}
        row = protocols[(protocols["protocol"] == f"seasonal fold {k}")]
        assert (row["n_test"] == masks["test"].sum()).all()


def test_split_protocols_are_scored_on_the_chronological_rows(lessons):
    _, reference, _, protocols = lessons
    assert list(protocols.columns) == L.SPLIT_PROTOCOL_COLUMNS
    f = reference.full_disk
    pooled = protocols[protocols["protocol"].isin([L.CHRONOLOGICAL, L.TRI_MONTHLY, L.SEASONAL, L.VAL_RISING,
                                                   L.VAL_MINIMUM])]
    assert len(pooled) == 5 * len(L.LESSON_PREDICTORS) and (pooled["n_test"] == f.test.times.size).all()
    # the chronological row is the real_skill row of the same reference
    skill = forecasts_skill_table(f, n_resamples=RESAMPLES).set_index("predictor")
    for name in L.LESSON_PREDICTORS:
        row = pooled[(pooled["predictor"] == name) & (pooled["protocol"] == L.CHRONOLOGICAL)].iloc[0]
        for column in ("TSS", "TSS_lo", "TSS_hi", "BSS", "AUC"):
            assert row[column] == pytest.approx(skill.loc[name, column], abs=1e-12)
        assert row["prob_threshold"] == f.prob_threshold[(name, "M")]
        for scheme in (L.TRI_MONTHLY, L.SEASONAL):  # the folds cover the test days once
            folds = protocols[(protocols["predictor"] == name)
                              & protocols["protocol"].str.fullmatch(f"{scheme} fold \\d")]
            assert len(folds) == L.N_FOLDS[scheme] and folds["n_test"].sum() == f.test.times.size
            assert folds["n_test_events"].sum() == f.test.event(1e-5).sum()
            same_days = protocols[(protocols["predictor"] == name)
                                  & protocols["protocol"].str.startswith(f"{L.CHRONOLOGICAL} on the days of {scheme}")]
            assert sorted(same_days["n_test"]) == sorted(folds["n_test"])
    others = protocols[~protocols["protocol"].str.startswith(L.CHRONOLOGICAL)]
    assert others["dTSS_vs_chronological"].notna().all()
    _bounded(others, "dTSS_vs_chronological", "dTSS_lo", "dTSS_hi")
    _bounded(protocols, "TSS", "TSS_lo", "TSS_hi")
    minimum = protocols[protocols["protocol"] == L.VAL_MINIMUM]
    _bounded(minimum, "dTSS_vs_rising_phase", "dTSS_vs_rising_phase_lo", "dTSS_vs_rising_phase_hi")
    assert protocols["prob_threshold"].between(0, 1).all()


def test_base_rate_per_year_is_counted_from_the_event_list(lessons):
    history, _, _, _ = lessons
    table = L.base_rate_by_year(history)
    assert list(table.columns) == L.BASE_RATE_COLUMNS
    assert set(table["year"]) == set(range(1996, 2019)) and set(table["threshold"]) == {">=C1", ">=M1", ">=X1"}
    events = history.events
    row = table[(table["year"] == 2014) & (table["threshold"] == ">=M1")].iloc[0]
    days = pd.date_range("2014-01-01", "2014-12-31") + pd.Timedelta("30min")
    major = np.sort(events.loc[events["peak_flux"] >= 1e-5, "peak"].to_numpy("datetime64[ns]"))
    counted = sum(bool(np.any((major > d.to_datetime64()) & (major <= (d + pd.Timedelta("24h")).to_datetime64())))
                  for d in days)
    assert row["n_days"] == 365 and row["n_event_days"] == counted
    assert row["base_rate"] == pytest.approx(counted / 365)
    for _, group in table.groupby("threshold"):
        assert group["n_days"].sum() == real.history_issue_times(history).size
    wide = table.pivot(index="year", columns="threshold", values="base_rate")
    assert (wide[">=C1"] >= wide[">=M1"]).all() and (wide[">=M1"] >= wide[">=X1"]).all()


def test_one_fixed_forecast_scored_per_test_year(lessons):
    _, reference, _, _ = lessons
    f = reference.full_disk
    table = L.skill_by_year(f, n_resamples=RESAMPLES)
    assert list(table.columns) == L.SKILL_BY_YEAR_COLUMNS
    assert table["year"].tolist() == list(range(2011, 2019)) and table["n_days"].sum() == f.test.times.size
    assert (table["prob_threshold"] == f.prob_threshold[(real.MCINTOSH_POISSON, "M")]).all()
    year = pd.DatetimeIndex(f.test.times).year
    yes, event = f.yes("test", real.MCINTOSH_POISSON, "M"), f.test.event(1e-5)
    for _, row in table.iterrows():
        at = year == row["year"]
        cells = contingency_cells(yes[at][:, None], event[at]).sum(axis=0)[:, 0]
        s = scores(dict(zip(("TP", "FP", "FN", "TN"), (int(c) for c in cells))))
        assert row["HSS"] == pytest.approx(s["HSS"], nan_ok=True) and row["TSS"] == pytest.approx(s["TSS"], nan_ok=True)
        assert row["base_rate"] == pytest.approx(event[at].mean())
    _bounded(table, "TSS", "TSS_lo", "TSS_hi")
    _bounded(table, "HSS", "HSS_lo", "HSS_hi")


def test_write_real_lessons(lessons, monkeypatch, tmp_path):
    _, _, long_data, protocols = lessons
    monkeypatch.setenv("FLARELIB_RESULTS_DIR", str(tmp_path))
    long_csv, protocols_csv = L.write_real_lessons(long_data, protocols)
    assert long_csv == tmp_path / "real_long_data.csv" and protocols_csv == tmp_path / "real_split_protocols.csv"
    assert list(pd.read_csv(long_csv).columns) == L.LONG_DATA_COLUMNS and len(pd.read_csv(long_csv)) == len(long_data)
    assert list(pd.read_csv(protocols_csv).columns) == L.SPLIT_PROTOCOL_COLUMNS
    assert len(pd.read_csv(protocols_csv)) == len(protocols)


def test_lesson_sentences_come_from_the_paired_intervals():
    from flarelib.evaluate import real_lessons as L

    long = pd.DataFrame({"threshold": ">=M1", "predictor": "P", "span_months": [1, 150], "n_train_events": [0, 800],
                         "TSS": [0.0, 0.4], "TSS_lo": [0.0, 0.35], "TSS_hi": [0.0, 0.45], "n_samples": 2907,
                         "dTSS_vs_longest": [-0.4, 0.0], "dTSS_lo": [-0.45, 0.0], "dTSS_hi": [-0.35, 0.0]})
    protocols = pd.DataFrame({"threshold": ">=M1", "predictor": "P", "protocol": [L.CHRONOLOGICAL, L.TRI_MONTHLY],
                              "TSS": [0.5, 0.49], "TSS_lo": [0.45, 0.44], "TSS_hi": [0.55, 0.53],
                              "prob_threshold": [0.14, 0.09], "n_test": 2907, "dTSS_vs_chronological": [np.nan, -0.01],
                              "dTSS_lo": [np.nan, -0.03], "dTSS_hi": [np.nan, 0.02]})
    first, second = L.lesson_sentences(long, protocols)
    assert "150 months of training score 0.40 [0.35, 0.45]" in first and "1 months (0 event days) -0.40" in first
    assert first.rstrip(".").endswith("worse") and second.rstrip(".").endswith("no different")
