"""The experiments of notebook 09 and the model comparison: sample choices, computed verdicts, result columns."""

import numpy as np
import pandas as pd
import pytest
import torch

from flarelib import experiments as E
from flarelib.cube.goes import FLARE_CLASS_THRESHOLDS
from flarelib.paths import CONFIG_DIR, read_config

#: The columns each lesson's CSV must have (named in the lessons' specification; more may follow).
SKILL = ["dataset", "synthetic", "target", "predictor", "n_samples", "n_events", "TSS", "TSS_lo", "TSS_hi", "AUC",
         "BSS", "BSS_lo", "BSS_hi", "lesson"]
LONG_VS_BIG = [*SKILL, "span_days", "window_start", "n_train", "n_train_events"]
IMBALANCE = [*SKILL, "prob_threshold", "n_train"]
SELECTION = [*SKILL, "test_on", "n_train"]
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


def _paired(lo: float, hi: float, d: float) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": "SYNTHETIC x", "lesson": "long vs big", "predictor": "long", "reference": "short",
                          "dTSS": d, "dTSS_lo": lo, "dTSS_hi": hi, "p_not_better": 0.5, "n_samples": 100,
                          "n_events_distinct": 12, "block_hours": 72.0}])


@pytest.mark.parametrize("lo, hi, word", [(0.1, 0.3, "beats"), (-0.3, -0.1, "loses to"), (-0.1, 0.2, "ties")])
def test_lesson_sentences_take_their_verdict_from_the_paired_interval(lo, hi, word):
    sentence, = E.lesson_sentences(_paired(lo, hi, (lo + hi) / 2))
    assert sentence.startswith(f"SYNTHETIC x, long vs big: long {word} short on TSS>=M1")
    assert f"[{lo:+.2f}, {hi:+.2f}]" in sentence and "3-day blocks" in sentence


def test_an_undefined_difference_says_so_instead_of_printing_nan():
    sentence, = E.lesson_sentences(_paired(np.nan, np.nan, np.nan))
    assert "cannot be compared" in sentence and "nan" not in sentence.lower()


def test_a_region_disjoint_split_drops_training_steps_that_share_a_region_with_the_test_steps(nowcast):
    on = nowcast.cube()["region_on_disk"].values.astype(bool)
    # the validation block follows the training block, so regions live across the boundary (the small sun's test
    # block is already region-disjoint from its training block)
    train, test = nowcast.plan.index["train"], nowcast.plan.index["val"]
    kept = E.region_disjoint(nowcast, train, test)
    assert np.isin(kept, train).all() and kept.size < train.size
    assert not (on[kept][:, on[test].any(axis=0)]).any()  # no kept step sees a test region
    dropped = np.setdiff1d(train, kept)
    assert on[dropped][:, on[test].any(axis=0)].any(axis=1).all()  # and every dropped step does


def test_balanced_thinning_keeps_the_asked_events_and_quiet_steps(nowcast):
    train = nowcast.plan.index["train"]
    event = E.is_event(nowcast, train)
    n = max(1, int(event.sum()) // 2)
    picked = E.balanced(nowcast, train, n, 3 * n)
    assert E.is_event(nowcast, picked).sum() == n and (~E.is_event(nowcast, picked)).sum() == 3 * n
    with pytest.raises(ValueError, match="pool"):
        E.balanced(nowcast, train, int(event.sum()) + 1, 0)


def test_lesson_settings_shrink_the_demo_and_keep_the_full_run():
    demo, full = E.lesson_settings("default"), E.lesson_settings("default", full=True, seeds=3)
    assert demo.seeds == E.SEEDS[:1] and len(full.seeds) >= 3 and full.windows > demo.windows
    assert full.imbalance_every == 1 < demo.imbalance_every and E.lesson_settings("small").short_days <= 7


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
def test_each_lesson_runs_pairs_its_designs_on_the_same_steps_and_has_its_named_columns(small):
    model, data = small
    forecast = E.data_module(data, target=E.FORECAST)
    before = forecast.normalizer
    long_big, paired = E.long_vs_big(forecast, model, short_days=4, windows=2, seeds=(1,), recipe=TINY,
                                     n_resamples=20, progress=False)
    assert set(LONG_VS_BIG) <= set(long_big.columns)
    designs = long_big.dropna(subset=["n_train"])
    assert len(designs) == 3 and designs["n_train"].nunique() == 1 and designs["n_train_events"].nunique() == 1
    assert designs["span_days"].max() > 2 * designs["span_days"].min()  # same samples, a longer stretch
    assert list(paired["reference"].str.startswith("short")) == [True, True]
    assert (paired["lesson"] == "long vs big").all()
    assert long_big["n_samples"].nunique() == 1  # every design and reference on the same test steps
    assert forecast.normalizer == before  # the data module is given back as it was
    imbalance, paired = E.imbalance(forecast, model, seeds=(1,), recipe=TINY, n_resamples=20, progress=False)
    assert set(IMBALANCE) <= set(imbalance.columns)
    rows = imbalance.set_index("predictor")
    for weighting in E.WEIGHTINGS:  # the rule moves the decision only: same AUC and BSS, threshold 0.5 or chosen
        half, chosen = rows.loc[f"{weighting}, {E.RULES[0]}"], rows.loc[f"{weighting}, {E.RULES[1]}"]
        assert half["AUC"] == chosen["AUC"] and half["BSS"] == chosen["BSS"] and half["prob_threshold"] == 0.5
    assert any(name.startswith("brightest pixel") for name in rows.index)
    assert "GOES + flare-history logistic" in rows.index
    assert forecast.class_weighting.scheme == data["class_weighting"]["scheme"]  # restored
    assert len(paired) == 5
    selection, paired = E.selection(forecast, model, seeds=(1,), recipe=TINY, n_resamples=20, progress=False)
    assert set(SELECTION) <= set(selection.columns)
    ours = selection[selection["predictor"].isin([E.RANDOM_SPLIT, E.BLOCKED_SPLIT])]
    same = ours[ours["test_on"] != "its own random test set"]
    assert len(same) == 2 and same["n_samples"].nunique() == 1 and ours["n_train"].nunique() == 1
    assert paired[["predictor", "reference"]].values.tolist() == [[E.RANDOM_SPLIT, E.BLOCKED_SPLIT]]


def test_the_shipped_configs_are_what_the_recorded_comparison_chooses():
    """docs/model_comparison.csv is the validation comparison the configs come from (make experiments redoes it)."""
    from conftest import ROOT

    table = pd.read_csv(ROOT / "docs" / "model_comparison.csv")
    assert list(table.columns) == E.COMPARISON_COLUMNS
    config = read_config(CONFIG_DIR / "default.yaml")["model"]["architecture"]
    for target in (E.NOWCAST, E.FORECAST):
        assert E.choose_variant(table, target) == "max pool (config)"
        rows = table[table["target"] == target]
        assert rows["n_samples"].nunique() == 1  # every variant and baseline on the same validation steps
    assert config["pool"] == "max" and config["norm"] == "none"
    fake = table.copy()
    lse = (fake["target"] == E.FORECAST) & (fake["variant"] == "soft pool (log-mean-exp)")
    fake.loc[lse, ["dTSS", "dTSS_lo", "dTSS_hi"]] = [0.2, 0.01, 0.4]
    assert E.choose_variant(fake, E.FORECAST) == "soft pool (log-mean-exp)"  # a variant that beats it, paired
    fake.loc[lse, "dTSS_lo"] = -0.01
    assert E.choose_variant(fake, E.FORECAST) == "max pool (config)"  # a paired tie keeps the config
    with pytest.raises(ValueError, match="paired"):
        E.choose_variant(table.drop(columns=["dTSS_lo"]), E.FORECAST)


def test_the_model_comparison_scores_every_variant_paired_on_the_same_validation_steps(small):
    model, data = small
    variants = (E.Variant("max pool (config)"), E.Variant("3 frames", data={"frames": 2, "frame_step": "1h"}))
    table, batchnorm = E.compare_models((E.FORECAST,), variants, (), config=CONFIG_DIR / "small.yaml", seeds=(1,),
                                        recipe=TINY, n_resamples=20, cube=data["cube"], progress=False)
    assert list(table.columns) == E.COMPARISON_COLUMNS and batchnorm.empty
    assert table["n_samples"].nunique() == 1 and table["n_samples"].iloc[0] > 0
    rows = table.set_index("variant")
    assert rows.loc["max pool (config)", "dTSS"] == 0.0
    two = rows.loc["3 frames"]
    assert two["dTSS_lo"] <= two["dTSS"] <= two["dTSS_hi"]
    assert np.isclose(two["dTSS"], two["TSS"] - rows.loc["max pool (config)", "TSS"])
    assert any(v.startswith("baseline: ") for v in rows.index)


def test_the_seed_mean_averages_predictions_on_the_same_steps_only():
    import xarray as xr

    def run(value: float, steps=(3, 4, 5)) -> xr.Dataset:
        n = len(steps)
        return xr.Dataset({"pred": ("time", np.full(n, value)), "true": ("time", np.zeros(n)),
                           "prob_M": ("time", np.full(n, value / 10))},
                          coords={"time": np.arange(n), "time_index": ("time", np.array(steps))})

    mean = E.seed_mean([run(-6.0), run(-5.0)])
    assert np.allclose(mean["pred"], -5.5) and np.allclose(mean["prob_M"], -0.55) and np.allclose(mean["true"], 0)
    with pytest.raises(ValueError, match="same ones"):
        E.seed_mean([run(-6.0), run(-5.0, steps=(3, 4, 6))])


def _margin_table(model: tuple[float, float, float], oracle: tuple[float, float, float]) -> pd.DataFrame:
    rows = [{"seed": "mean", "predictor": name, "reference": "GOES-only model", "dTSS": d, "dTSS_lo": lo,
             "dTSS_hi": hi} for name, (d, lo, hi) in ((E.CNN_GOES, model), ("observable oracle", oracle))]
    rows += [{"seed": str(s), "predictor": E.CNN_GOES, "reference": "GOES-only model", "dTSS": model[0] + k / 100,
              "dTSS_lo": 0.0, "dTSS_hi": 0.0} for k, s in enumerate(E.SEEDS)]
    table = pd.DataFrame(rows)
    return table.assign(threshold=">=M1", dataset="SYNTHETIC x", n_events_distinct=50, block_hours=192.0)


@pytest.mark.parametrize("model, oracle, goal", [((0.10, 0.02, 0.2), (0.12, 0.03, 0.2), "met"),
                                                 ((0.10, -0.01, 0.2), (0.12, 0.03, 0.2), "not met"),
                                                 ((0.05, 0.01, 0.1), (0.12, 0.03, 0.2), "not met")])
def test_the_images_verdict_needs_an_interval_above_zero_and_most_of_the_oracles_margin(model, oracle, goal):
    sentence = E.images_margin(_margin_table(model, oracle))
    assert sentence.endswith(f"{goal} (50 distinct events, 192 h blocks).")
    assert f"reaches {model[0] / oracle[0]:.2f} of it" in sentence and "mean of 3 seeds" in sentence


def test_the_images_verdict_says_so_when_the_oracle_has_no_margin():
    sentence = E.images_margin(_margin_table((0.05, 0.01, 0.1), (-0.1, -0.3, 0.1)))
    assert "no margin" in sentence and "not met" in sentence and "nan" not in sentence.lower()


def test_loading_the_committed_models_refuses_a_missing_file_instead_of_training_into_it(tmp_path, small):
    forecast = E.data_module(small[1], target=E.FORECAST, goes_inputs=["now", "6h", "24h"])
    with pytest.raises(FileNotFoundError, match="make images"):
        E.fit_or_load(forecast, small[0], seed=1, recipe=TINY, path=tmp_path / "missing.ckpt", load=True)
    assert not (tmp_path / "missing.ckpt").exists()


def test_training_quietly_holds_back_lightnings_seed_line(caplog):
    import logging

    import pytorch_lightning as L

    from flarelib.learn.runs import quiet_lightning

    caplog.set_level(logging.INFO)
    L.seed_everything(3)
    assert "Seed set to 3" in caplog.text  # what notebook 04 printed once per model
    caplog.clear()
    with quiet_lightning():
        L.seed_everything(3)
    assert "Seed set" not in caplog.text
