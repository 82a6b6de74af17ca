"""Skill scores against contingency tables worked out by hand, including degenerate cases."""

import math

import numpy as np
import pytest

from flarelib import metrics

# Six samples, log10 W/m². Worked by hand in the comments.
TRUE = np.array([-4.5, -5.5, -4.8, -6.2, -4.9, -6.0])
PRED = np.array([-4.7, -4.9, -5.3, -6.0, -4.2, -7.0])


def test_contingency_and_scores_at_m_by_hand():
    # >= M1 (-5): events T F T F T F; yes T T F F T F -> TP 2 (0, 4), FP 1 (1), FN 1 (2), TN 2 (3, 5)
    table = metrics.contingency(PRED, TRUE, 1e-5)
    assert table == {"TP": 2, "FP": 1, "FN": 1, "TN": 2}
    s = metrics.scores(table)
    assert s["POD"] == pytest.approx(2 / 3)
    assert s["FAR"] == pytest.approx(1 / 3)
    assert s["POFD"] == pytest.approx(1 / 3)
    assert s["TSS"] == pytest.approx(1 / 3)
    # HSS = 2 (2*2 - 1*1) / ((2+1)(1+2) + (2+1)(1+2)) = 6 / 18
    assert s["HSS"] == pytest.approx(1 / 3)


def test_contingency_at_c_counts_the_threshold_itself_as_an_event():
    # >= C1 (-6): events T T T F T T (-6.0 is C1.0); yes T T T T(-6.0) T F -> TP 4, FP 1, FN 1, TN 0
    table = metrics.contingency(PRED, TRUE, 1e-6)
    assert table == {"TP": 4, "FP": 1, "FN": 1, "TN": 0}
    s = metrics.scores(table)
    assert s["POD"] == pytest.approx(0.8)
    assert s["POFD"] == pytest.approx(1.0)
    assert s["TSS"] == pytest.approx(-0.2)
    # HSS = 2 (4*0 - 1*1) / ((4+1)(1+0) + (4+1)(1+0)) = -2 / 10
    assert s["HSS"] == pytest.approx(-0.2)


def test_mae_in_dex_by_hand():
    # |0.2| + |0.6| + |0.5| + |0.2| + |0.7| + |1.0| = 3.2 over 6
    assert metrics.mae(PRED, TRUE) == pytest.approx(3.2 / 6)


def test_no_events_and_no_alarms_leave_pod_tss_hss_undefined():
    quiet = np.full(5, -7.0)
    table = metrics.contingency(quiet, quiet, 1e-5)
    assert table == {"TP": 0, "FP": 0, "FN": 0, "TN": 5}
    s = metrics.scores(table)
    assert math.isnan(s["POD"]) and math.isnan(s["FAR"]) and math.isnan(s["TSS"]) and math.isnan(s["HSS"])
    assert s["POFD"] == 0.0


def test_false_alarms_without_events():
    table = metrics.contingency(np.array([-4.0, -7.0]), np.array([-7.0, -7.0]), 1e-5)
    assert table == {"TP": 0, "FP": 1, "FN": 0, "TN": 1}
    s = metrics.scores(table)
    assert s["FAR"] == 1.0 and s["POFD"] == 0.5 and math.isnan(s["POD"])
    assert s["HSS"] == 0.0  # 2(0 - 0) / ((0)(1) + (1)(2))


def test_perfect_and_constant_forecasts():
    perfect = metrics.scores(metrics.contingency(TRUE, TRUE, 1e-5))
    assert perfect["TSS"] == 1.0 and perfect["HSS"] == 1.0
    constant = metrics.scores(metrics.contingency(np.full(6, -4.0), TRUE, 1e-5))
    assert constant["TSS"] == 0.0  # any constant forecast has TSS 0


def test_nan_samples_are_dropped_and_shapes_must_match():
    pred = np.array([-4.0, np.nan, -4.0])
    true = np.array([-4.0, -4.0, np.nan])
    assert metrics.contingency(pred, true, 1e-5) == {"TP": 1, "FP": 0, "FN": 0, "TN": 0}
    with pytest.raises(ValueError, match="shape"):
        metrics.contingency(pred, true[:2], 1e-5)


def test_persistence_uses_only_what_is_known_at_issue_time():
    flux_now = np.array([1e-6, 1e-5, 2e-5, 0.0])
    index = np.array([0, 1, 2, 3])
    forecast = metrics.persistence(flux_now, index, nowcast=False)
    np.testing.assert_allclose(forecast[:3], [-6.0, -5.0, np.log10(2e-5)])
    assert np.isnan(forecast[3])  # no flux -> no forecast
    nowcast = metrics.persistence(flux_now, index, nowcast=True)
    assert np.isnan(nowcast[0])  # nothing known before the first step
    np.testing.assert_allclose(nowcast[1:3], [-6.0, -5.0])


def test_climatology_and_linear_calibration():
    assert np.all(metrics.climatology(np.array([-6.0, -5.0, np.nan]), 3) == -5.5)
    a, b = metrics.fit_linear(np.array([1.0, 2.0, 3.0, np.nan]), np.array([-7.0, -6.0, -5.0, 0.0]))
    assert a == pytest.approx(-8.0) and b == pytest.approx(1.0)
    with pytest.raises(ValueError):
        metrics.fit_linear(np.array([1.0]), np.array([1.0]))


def test_skill_table_labels_every_row_with_dataset_and_target():
    table = metrics.skill_table({"model": PRED, "constant": np.full(6, -7.0)}, TRUE,
                                dataset="SYNTHETIC test", target="now")
    assert len(table) == 4
    assert set(table["dataset"]) == {"SYNTHETIC test"}
    row = table.loc[("now", "model", ">=M1")]
    assert (row["TP"], row["FP"], row["FN"], row["TN"]) == (2, 1, 1, 2)
    assert row["events"] == 3 and row["samples"] == 6
    assert table.loc[("now", "constant", ">=M1"), "TSS"] == 0.0
