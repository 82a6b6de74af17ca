"""The experiments of notebook 09 and the model comparison: sample choices, computed verdicts, result columns."""

import numpy as np
import pandas as pd
import pytest
import torch

from flarelib import experiments as E
from flarelib.cube.goes import FLARE_CLASS_THRESHOLDS
from flarelib.paths import CONFIG_DIR, read_config

#: The columns each lesson's CSV must have (named in the lessons' specification; more may follow).
LONG_VS_BIG = ["span_days", "cadence", "n_train", "seed", "target", "TSS", "TSS_lo", "TSS_hi", "BSS", "MAE_dex"]
IMBALANCE = ["strategy", "seed", "target", "TSS", "TSS_lo", "TSS_hi", "HSS", "BSS"]
SELECTION = ["sampling", "split", "seed", "target", "n_train", "n_test", "TSS", "TSS_lo", "TSS_hi", "BSS"]
TINY = E.Recipe(max_epochs=1, patience=1)


@pytest.fixture(scope="module")
def small(small_cube_path):
    model, data = E.config_settings(CONFIG_DIR / "small.yaml")
    return model, {**data, "cube": str(small_cube_path)}


@pytest.fixture(scope="module")
def nowcast(small):
    return E.data_module(small[1], target=E.NOWCAST)


def test_a_training_span_keeps_training_steps_of_the_span_thinned_evenly(nowcast):
    train = nowcast.plan.index["train"]
    span = E.training_span(nowcast, 4)
    assert np.isin(span, train).all()
    assert (nowcast.plan.times[span] < nowcast.plan.times[0] + np.timedelta64(4, "D")).all()
    thin = E.training_span(nowcast, 12, n_train=span.size)
    assert thin.size == span.size and np.isin(thin, train).all()
    times = nowcast.plan.times
    assert times[thin[-1]] - times[thin[0]] > times[span[-1]] - times[span[0]]


def test_the_original_sampling_takes_12_h_before_each_c_flare_and_as_many_quiet_steps(small):
    dm = E.data_module(small[1], target="lead60min_window360min")
    picked = E.original_sampling(dm, seed=1)
    cube = dm.cube()
    peaks = cube["event_peak"].values[cube["event_peak_flux"].values >= FLARE_CLASS_THRESHOLDS["C"]]
    before = np.searchsorted(dm.plan.times, peaks - np.timedelta64(12, "h"), side="right") - 1
    flare = np.intersect1d(before, dm.plan.usable)
    assert np.isin(flare, picked).all()
    quiet = np.setdiff1d(picked, flare)
    assert quiet.size == min(flare.size, quiet.size)
    assert (dm.plan.target.flux[quiet] < FLARE_CLASS_THRESHOLDS["C"]).all()
    assert np.array_equal(picked, E.original_sampling(dm, seed=1))


def _runs(a: tuple[float, float, float], b: tuple[float, float, float]) -> pd.DataFrame:
    rows = [{"design": name, "seed": 1, "dataset": "SYNTHETIC x", "TSS": v, "TSS_lo": lo, "TSS_hi": hi}
            for name, (v, lo, hi) in (("long", a), ("short", b))]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("a, b, word", [((0.6, 0.5, 0.7), (0.3, 0.2, 0.4), "beats"),
                                        ((0.3, 0.2, 0.4), (0.6, 0.5, 0.7), "loses"),
                                        ((0.5, 0.3, 0.6), (0.45, 0.4, 0.5), "ties")])
def test_lesson_sentences_take_their_verdict_from_the_intervals(a, b, word):
    sentence = E.compare(_runs(a, b), {"design": "long"}, {"design": "short"})
    assert sentence.startswith("SYNTHETIC x: long " + word + " short") and "90% intervals" in sentence
    with pytest.raises(ValueError, match="no rows"):
        E.compare(_runs(a, b), {"design": "medium"}, {"design": "short"})


def test_the_inflation_sentence_is_random_minus_blocked_on_the_same_kind_of_test_set():
    o, p, b = E.ORIGINAL, E.POOL_TEST, E.BLOCK_TEST
    table = pd.DataFrame({"sampling": [o, o, o, o, o, o, "every step"],
                          "split": ["random split", "blocked split", "blocked split"] * 2 + ["blocked split"],
                          "test_on": [p, p, b, p, p, b, b], "seed": [1, 1, 1, 2, 2, 2, 1],
                          "TSS": [0.9, 0.4, 0.2, 0.8, 0.5, 0.3, 0.45], "dataset": "SYNTHETIC x"})
    sentence = E.inflation(table)
    assert "inflated by +0.40 (per seed: +0.50, +0.30)" in sentence and "the blocked model scores 0.25" in sentence


def test_lesson_settings_shrink_the_demo_and_keep_the_full_run():
    demo, full = E.lesson_settings("default"), E.lesson_settings("default", full=True, seeds=3)
    assert demo.seeds == E.SEEDS[:1] and len(full.seeds) >= 3 and full.curve and not demo.curve
    assert set(demo.spans) < set(full.spans) and E.lesson_settings("small").spans[-1] <= 14


def test_the_batchnorm_diagnosis_compares_running_and_batch_statistics(nowcast):
    from flarelib.learn import Architecture, FlareNet

    net = FlareNet.from_settings({"channels": nowcast.channels, "widths": (4, 8), "norm": "batch", "hidden": 8})
    net.adopt(nowcast.training_stats())
    with torch.no_grad():  # running statistics far from any batch's: the diagnosis must see the mismatch
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.fill_(1e-4)
    table = E.batchnorm_diagnosis(net, nowcast, batches=2)
    assert list(table["layer"]) == ["features.1", "features.5"]
    assert (table["batch_var_max_over_running"] > 10).all() and (table["eval_vs_batch_mode_dex"] > 0).all()
    with pytest.raises(ValueError, match="no BatchNorm"):
        unnormed = FlareNet(channels=nowcast.channels, architecture=Architecture(widths=(4,), norm="none"))
        E.batchnorm_diagnosis(unnormed, nowcast)


@pytest.mark.slow
def test_each_lesson_runs_and_has_its_named_columns(small, nowcast):
    model, data = small
    before = nowcast.normalizer
    long_big = E.long_vs_big(nowcast, model, spans=(4, 12), windows=2, seeds=(1,), recipe=TINY, n_resamples=20,
                             progress=False)
    assert LONG_VS_BIG == [c for c in long_big.columns if c in LONG_VS_BIG]
    assert len(long_big) == 8  # 2 spans x 2 windows x 2 designs
    assert set(long_big["design"]) == {"fixed n", "all steps"}
    fixed = long_big[long_big["design"] == "fixed n"]
    assert fixed["n_train"].nunique() == 1  # every window thinned to the same number of samples
    assert (fixed.groupby("span_days")["window_start"].nunique() == 2).all()  # two windows per span
    assert fixed["cadence"].iloc[-1] > fixed["cadence"].iloc[0]  # the longer span is sampled more sparsely
    assert nowcast.normalizer == before  # the data module is given back as it was
    imbalance = E.imbalance(nowcast, model, seeds=(1,), recipe=TINY, n_resamples=20, progress=False)
    assert IMBALANCE == [c for c in imbalance.columns if c in IMBALANCE]
    assert list(imbalance["strategy"]) == list(E.STRATEGIES)
    moved = imbalance.set_index("strategy")["threshold"]
    assert (moved.drop("threshold moving") == 0.5).all()
    assert nowcast.class_weighting.scheme == data["class_weighting"]["scheme"]  # restored
    forecast = E.data_module(data, target="lead60min_window360min")
    selection = E.selection(forecast, model, seeds=(1,), recipe=TINY, n_resamples=20, progress=False)
    assert SELECTION == [c for c in selection.columns if c in SELECTION] and len(selection) == 4
    whole = selection[selection["test_on"] == E.BLOCK_TEST]
    assert whole["n_test"].nunique() == 1 and len(whole) == 2  # the same untouched test block
    assert "inflated by" in E.inflation(selection)


def test_the_shipped_configs_are_what_the_recorded_comparison_chooses():
    """docs/model_comparison.csv is the validation comparison the configs come from (make experiments redoes it)."""
    from conftest import ROOT

    table = pd.read_csv(ROOT / "docs" / "model_comparison.csv")
    config = read_config(CONFIG_DIR / "default.yaml")["model"]["architecture"]
    for target in (E.NOWCAST, E.FORECAST):
        assert E.choose_variant(table, target) == "max pool (config)"
    assert config["pool"] == "max" and config["norm"] == "none"
    fake = table.copy()
    fake.loc[(fake["target"] == E.FORECAST) & (fake["variant"] == "soft pool (log-mean-exp)"), "TSS_lo"] = 0.49
    assert E.choose_variant(fake, E.FORECAST) == "soft pool (log-mean-exp)"  # a variant that beats it is taken
