"""Data stage: the leakage-safe split (property test), normalization, weights, caching and config errors."""

import numpy as np
import pytest
import torch
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flarelib.cube import store
from flarelib.cube.catalog import CatalogError
from flarelib.cube.store import cube_cadence
from flarelib.learn import data
from flarelib.learn.data import DataConfigError, FlareDataModule, Normalizer, blocked_split

START = np.datetime64("2031-01-25T00:00", "ns")
MINUTE = np.timedelta64(1, "m")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(st.integers(1, 180), min_size=1, max_size=250),
    horizon=st.integers(0, 24 * 60),
    extra_gap=st.integers(0, 12 * 60),
    history=st.integers(0, 120),
    block=st.sampled_from([None, "D", "2D", "7D", "MS"]),
    fractions=st.sampled_from([(0.7, 0.15, 0.15), (0.5, 0.25, 0.25), (0.34, 0.33, 0.33), (1.0, 0.0, 0.0)]),
    pattern=st.lists(st.sampled_from(data.SPLITS), min_size=1, max_size=6),
)
def test_no_sample_input_or_target_window_overlaps_another_split(steps, horizon, extra_gap, history, block,
                                                                 fractions, pattern):
    times = START + np.cumsum(steps).astype("timedelta64[m]")
    gap = (horizon + extra_gap) * MINUTE
    split = blocked_split(times, horizon * MINUTE, block=block, fractions=fractions, pattern=pattern, gap=gap,
                          history=history * MINUTE)
    assert set(split) == set(data.SPLITS)
    everything = np.concatenate(list(split.values()))
    assert len(np.unique(everything)) == len(everything), "a sample is in two splits"
    assert np.all((everything >= 0) & (everything < len(times)))
    t = np.concatenate([times[split[s]] for s in data.SPLITS])
    who = np.concatenate([np.full(len(split[s]), k) for k, s in enumerate(data.SPLITS)])
    lo = t - history * MINUTE  # earliest frame an input may use
    hi = t + horizon * MINUTE  # end of the target window
    different = who[:, None] != who[None, :]
    overlap = (lo[:, None] <= hi[None, :]) & (lo[None, :] <= hi[:, None])
    assert not np.any(different & overlap), "an input or target window is shared by two splits"
    separation = np.abs(t[:, None] - t[None, :])
    assert not np.any(different & (separation <= gap)), "samples of different splits closer than the gap"


def test_fraction_split_keeps_everything_without_horizon_and_is_in_time_order():
    times = START + np.arange(100) * 12 * MINUTE
    split = blocked_split(times, "0min", fractions=(0.6, 0.2, 0.2))
    assert sum(len(v) for v in split.values()) == 100
    assert split["train"].max() < split["val"].min() < split["val"].max() < split["test"].min()
    purged = blocked_split(times, "1h", fractions=(0.6, 0.2, 0.2))
    # one hour (5 steps of 12 min, the 5th strictly) is purged before each of the two boundaries
    assert sum(len(v) for v in purged.values()) == 100 - 2 * 5


def test_split_rejects_bad_settings():
    times = START + np.arange(10) * MINUTE
    with pytest.raises(DataConfigError, match="shorter than lead"):
        blocked_split(times, "1h", gap="10min")
    with pytest.raises(DataConfigError, match="summing to 1"):
        blocked_split(times, fractions=(0.5, 0.2, 0.2))
    with pytest.raises(DataConfigError, match="pandas frequency"):
        blocked_split(times, block="fortnightly")
    with pytest.raises(DataConfigError, match="split_pattern"):
        blocked_split(times, block="D", pattern=["train", "holdout"])
    with pytest.raises(DataConfigError, match="increasing"):
        blocked_split(times[::-1])


def test_normalizer_log_and_asinh_standardize_the_training_frames():
    rng = np.random.default_rng(0)
    frames = rng.lognormal(3.0, 1.0, size=(20, 2, 8, 8)).astype(np.float32)
    for transform in Normalizer.TRANSFORMS:
        norm = Normalizer.fit(frames, [94, 131], transform)
        out = norm.apply(frames)
        assert out.dtype == np.float32 and out.shape == frames.shape
        np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-4)
        np.testing.assert_allclose(out.std(axis=(0, 2, 3)), 1, atol=1e-3)
        assert Normalizer.from_dict(norm.to_dict()) == norm
    bad = frames.copy()
    bad[0, 0, 0, 0] = np.nan
    assert np.isfinite(norm.apply(bad)).all()  # NaN pixels become 0 = the channel mean
    with pytest.raises(DataConfigError, match="normalization"):
        Normalizer.fit(frames, [94, 131], "sqrt")
    with pytest.raises(DataConfigError, match="no positive"):
        Normalizer.fit(-frames, [94, 131], "log")


def test_class_weights_favour_rare_classes_with_mean_one():
    labels = np.array(["B"] * 90 + ["C"] * 9 + ["M"])
    w = data.class_weights(labels, power=1.0)
    assert w.mean() == pytest.approx(1.0)
    assert w[-1] > w[90] > w[0]
    assert w[-1] / w[0] == pytest.approx(90.0)
    assert data.class_weights(labels, power=0.0).tolist() == [1.0] * 100


def _dm(cube_path, **kw):
    dm = FlareDataModule.from_settings({"cube": str(cube_path)}, kw)
    dm.setup()
    return dm


def test_data_module_reports_split_counts_and_fits_the_normalizer_on_train_only(small_cube_path):
    dm = _dm(small_cube_path, target="lead60min_window360min", split_fractions=[0.6, 0.2, 0.2])
    counts = data.samples_per_class(dm.plan)
    assert list(counts.index) == ["train", "val", "test"]
    assert (counts["total"] == [len(dm.plan.index[s]) for s in data.SPLITS]).all()
    assert dm.plan.index["train"].max() < dm.plan.index["val"].min()
    # the normalizer is the fit of training frames, not of all frames
    train_fit = dm._fit_normalizer(dm.plan)
    assert dm.normalizer == train_fit
    x, y, w, t, aux = dm.samples["train"][0]
    assert x.shape == (6, 64, 64) and x.dtype == torch.float32 and aux.shape == (0,)
    assert float(y) == pytest.approx(float(dm.plan.target.log_flux[int(t)]))


@pytest.mark.slow
def test_selected_channels_come_in_the_requested_order(small_cube_path):
    dm = _dm(small_cube_path, channels=[131, 94])
    full = _dm(small_cube_path)
    assert dm.plan.channel_index.tolist() == [1, 0]
    assert dm.normalizer.channels == (131, 94)
    assert dm.normalizer.mean == (full.normalizer.mean[1], full.normalizer.mean[0])


@pytest.mark.slow
def test_memory_cache_gives_the_same_batches_as_zarr_reads(small_cube_path):
    zarr_dm = _dm(small_cube_path, batch_size=16)
    cache_dm = _dm(small_cube_path, batch_size=16, cache="memory", cache_dtype="float32")
    half_dm = _dm(small_cube_path, batch_size=16, cache="memory", cache_dtype="float16")
    for split in data.SPLITS:
        a = next(iter(zarr_dm.loader(split)))
        b = cache_dm.gather(next(iter(cache_dm.loader(split))))
        c = half_dm.gather(next(iter(half_dm.loader(split))))
        torch.testing.assert_close(a[0], b[0])
        torch.testing.assert_close(a[0], c[0], atol=0.01, rtol=0.002)
        for k in (1, 2, 3):
            assert torch.equal(a[k], b[k])


@pytest.mark.slow
def test_cache_too_big_falls_back_to_zarr(small_cube_path, caplog):
    dm = _dm(small_cube_path, cache="memory", cache_max_gb=1e-6)
    assert dm.frame_cache is None and not dm.samples["train"].cached
    assert "exceeds cache_max_gb" in caplog.text


@pytest.mark.slow
def test_weighted_sampler_draws_rare_classes_more_often(small_cube_path):
    dm = _dm(small_cube_path, class_weighting="sampler", class_weight_power=1.0, batch_size=64)
    labels = dm.plan.labels[dm.plan.index["train"]]
    drawn = np.concatenate([dm.plan.labels[b[3].numpy()] for _ in range(5) for b in dm.train_dataloader()])
    common = max(set(labels), key=list(labels).count)
    assert np.mean(drawn == common) < np.mean(labels == common)
    # oversampled, so not weighted a second time in the loss
    assert all(bool((b[2] == 1).all()) for b in dm.train_dataloader())
    torch.manual_seed(1)
    first = np.concatenate([b[3].numpy() for b in dm.train_dataloader()])
    torch.manual_seed(2)
    assert not np.array_equal(first, np.concatenate([b[3].numpy() for b in dm.train_dataloader()]))  # per seed


@pytest.mark.slow
def test_workers_open_the_store_lazily_under_spawn(small_cube_path):
    dm = _dm(small_cube_path, num_workers=1, multiprocessing_context="spawn", batch_size=8)
    reference = _dm(small_cube_path, batch_size=8)
    spawned = next(iter(dm.val_dataloader()))
    torch.testing.assert_close(spawned[0], next(iter(reference.val_dataloader()))[0])


@pytest.mark.parametrize("kwargs, match", [
    ({"channels": [94, 999]}, r"channels \[999\] not in cube"),
    ({"channels": [94, 94]}, "repeat"),
    ({"target": "40D/10D"}, "longer than the data"),
    ({"target": "1h/2h"}, "no forecast with lead"),
    ({"target": "tomorrow"}, "use 'now'"),
    ({"split_fractions": [1.0, 0.0, 0.0]}, "split 'val' is empty"),
    ({"target": "lead60min_window360min", "gap": "10min"}, "shorter than lead"),
])
@pytest.mark.slow
def test_bad_settings_give_clear_errors(small_cube_path, kwargs, match):
    with pytest.raises(DataConfigError, match=match):
        _dm(small_cube_path, **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"class_weighting": "focal"}, "class_weighting"),
    ({"cache": "disk"}, "cache"),
    ({"cache_dtype": "int4"}, "cache_dtype"),
    ({"normalization": "sqrt"}, "normalization"),
])
def test_bad_options_fail_at_construction(kwargs, match):
    with pytest.raises(DataConfigError, match=match):
        FlareDataModule.from_settings({"cube": "x.zarr"}, kwargs)


def test_settings_are_the_same_grouped_flat_or_as_options():
    grouped = data.data_settings({"cube": "x.zarr", "split": {"block": "MS"}, "inputs": {"goes": ["now"]},
                                  "class_weighting": {"scheme": "loss"}, "loader": {"cache": "memory"}})
    flat = data.data_settings({"cube": "x.zarr", "split_block": "MS", "goes_inputs": ["now"],
                               "class_weighting": "loss", "cache": "memory"})
    options = data.data_settings({"cube": "x.zarr", "split": data.SplitOptions(block="MS"),
                                  "inputs": data.InputOptions(goes=("now",)),
                                  "class_weighting": data.ClassWeighting("loss"),
                                  "loader": data.LoaderOptions(cache="memory")})
    assert grouped == flat == options
    assert grouped["inputs"].goes == ("now",) and grouped["inputs"].channels == data.DEFAULT_CHANNELS
    later = data.data_settings(grouped, {"cache": "none", "split": {"fractions": [0.5, 0.25, 0.25]}})
    assert later["loader"].cache == "none" and later["split"] == data.SplitOptions("MS", (0.5, 0.25, 0.25))
    with pytest.raises(DataConfigError, match="unknown data setting 'split_blok'"):
        data.data_settings({"split_blok": "MS"})
    with pytest.raises(DataConfigError, match="unknown data setting 'blok' in split"):
        data.data_settings({"split": {"blok": "MS"}})


def test_unknown_catalog_entry_is_named():
    with pytest.raises(CatalogError, match="no catalog entry 'no-such-cube'"):
        FlareDataModule(cube="no-such-cube")


def test_describe_names_the_data_set_as_synthetic(small_cube_path):
    text = _dm(small_cube_path, channels=[94, 131]).describe()
    assert text.startswith("SYNTHETIC synthetic-sun-small: target now, channels [94, 131]")


def test_read_frames_reads_sparse_picks_in_bounded_slices(small_cube_path, monkeypatch):
    import zarr as zarr_module

    picks = np.array([200, 3, 150, 0, 239, 120])
    aia = zarr_module.open_group(str(small_cube_path), mode="r")["aia"]
    got = np.empty((len(picks), 2, *aia.shape[-2:]), np.float32)
    largest = []
    real_getitem = type(aia).__getitem__

    def spy(self, key):
        out = real_getitem(self, key)
        largest.append(out.shape[0])
        return out

    monkeypatch.setattr(type(aia), "__getitem__", spy)
    for pos, frames in data.read_frames(small_cube_path, picks, np.array([0, 1]), batch=8):
        got[pos] = frames
    monkeypatch.undo()
    np.testing.assert_array_equal(got, aia[:][picks][:, [0, 1]])
    assert max(largest) <= 16  # never the whole 0..239 span


def test_cadence_is_the_recorded_one_or_the_most_common_step_even_with_gaps():
    t = np.datetime64("2031-01-01", "ns") + np.array([0, 60, 120, 300, 360], dtype="timedelta64[m]")
    cube = xr.Dataset(coords={"time": t})
    assert cube_cadence(cube) == np.timedelta64(60, "m")
    cube.attrs["alignment"] = '{"cadence": "0 days 00:30:00"}'  # as the FITS builder records it
    assert cube_cadence(cube) == np.timedelta64(30, "m")


def test_region_aware_split_keeps_test_regions_out_of_train_and_val():
    on_disk = np.zeros((10, 3), bool)
    on_disk[0:4, 0] = True  # region 0: train only
    on_disk[3:9, 1] = True  # region 1: train, val and test
    on_disk[8:10, 2] = True  # region 2: test only
    split = {"train": np.arange(0, 5), "val": np.arange(5, 7), "test": np.arange(8, 10)}
    out = data.region_aware(split, on_disk)
    assert out["train"].tolist() == [0, 1, 2] and out["val"].size == 0 and out["test"].tolist() == [8, 9]
    assert not on_disk[out["train"]][:, on_disk[out["test"]].any(axis=0)].any()


def test_rolling_origin_folds_are_purged_and_move_forward():
    t = np.datetime64("2031-01-01", "ns") + np.arange(24 * 120).astype("timedelta64[h]")
    folds = data.rolling_origin(t, "25h", folds=3, test_days=20, val_days=10)
    assert len(folds) == 3
    starts = [t[f["test"][0]] for f in folds]
    assert starts == sorted(starts) and (np.diff(starts) == np.timedelta64(20, "D")).all()
    for f in folds:
        horizon = np.timedelta64(25, "h")
        assert t[f["train"]].max() + horizon < t[f["val"]].min()
        assert t[f["val"]].max() + horizon < t[f["test"]].min()
    with pytest.raises(data.DataConfigError, match="need more data"):
        data.rolling_origin(t, folds=10, test_days=20)


def test_event_fractions_and_flares_per_split_add_up(small_cube_path):
    dm = _dm(small_cube_path, target="lead60min_window360min", split_fractions=[0.6, 0.2, 0.2])
    fractions = data.event_fractions(dm.plan)
    for name, idx in dm.plan.index.items():
        assert fractions.loc[name, "samples"] == idx.size
        assert fractions.loc[name, ">=M1"] == pytest.approx(np.mean(dm.plan.target.flux[idx] >= 1e-5))
    flares = data.flares_per_split(dm.plan, dm.cube())
    assert int(flares.values.sum()) == dm.cube().sizes["event"]  # every listed flare is counted once


def test_frame_history_stacks_earlier_frames_oldest_first_and_never_across_splits(small_cube_path):
    dm = _dm(small_cube_path, frames=3, frame_step="2h", split_fractions=[0.6, 0.2, 0.2])
    one = _dm(small_cube_path, split_fractions=[0.6, 0.2, 0.2])
    one.normalizer = dm.normalizer
    assert dm.plan.offsets.tolist() == [4, 2, 0]  # 2 h at the small cube's 1 h cadence
    x, _, _, t, _ = dm.samples["train"][5]
    t = int(t)
    expected = np.concatenate([one.model_inputs([t - k])[0][0] for k in (4, 2, 0)])
    np.testing.assert_allclose(x.numpy(), expected, atol=1e-6)
    owner = np.full(dm.plan.times.size, -1)
    for k, idx in enumerate(dm.plan.index.values()):
        owner[idx] = k
    for k, idx in enumerate(dm.plan.index.values()):
        earlier = owner[idx[:, None] - dm.plan.offsets]
        assert np.all((earlier == k) | (earlier == -1))
    with pytest.raises(data.DataConfigError, match="multiple of the cube's cadence"):
        _dm(small_cube_path, frames=2, frame_step="90min").setup()


def test_goes_inputs_are_causal_features_and_refused_for_a_nowcast(small_cube_path):
    dm = _dm(small_cube_path, target="lead60min_window360min", goes_inputs=["now", "6h"],
             split_fractions=[0.6, 0.2, 0.2])
    t = dm.plan.index["test"][:10]
    aux = dm.plan.aux[t]
    np.testing.assert_allclose(aux[:, 0], np.log10(dm.plan.flux_now[t]) + 6, rtol=1e-5)
    np.testing.assert_allclose(aux[:, 1], np.log10(dm.history_max("6h")[t]) + 6, rtol=1e-5)
    with pytest.raises(data.DataConfigError, match="nowcast target is the GOES flux at t"):
        _dm(small_cube_path, goes_inputs=["6h"]).setup()
    with pytest.raises(data.DataConfigError, match="not in"):
        _dm(small_cube_path, target="lead60min_window360min", goes_inputs=["3h"]).setup()


def test_the_purge_keeps_each_sample_input_history_inside_its_own_block(small_cube_path):
    """A sample's GOES window and its stacked frames reach back before t: no test sample may read history from
    the validation block before it (whose target windows a model was tuned on), and the other way round."""
    hour = np.timedelta64(1, "h")
    assert data.input_history(data.InputOptions(frames=3, frame_step="2h"), np.array([4, 2, 0]), hour) == 4 * hour
    assert data.input_history(data.InputOptions(goes=("now", "24h")), np.array([0]), hour) == 24 * hour
    assert data.input_history(data.InputOptions(goes=("now",)), np.array([0]), hour) == 0 * hour
    dm = _dm(small_cube_path, target="lead60min_window360min", goes_inputs=["now", "6h"],
             split_fractions=[0.6, 0.2, 0.2])
    plain = _dm(small_cube_path, target="lead60min_window360min", split_fractions=[0.6, 0.2, 0.2])
    times = dm.plan.times
    for name in ("val", "test"):
        first_plain, first = times[plain.plan.index[name][0]], times[dm.plan.index[name][0]]
        assert first - first_plain >= np.timedelta64(6, "h")  # the 6 h GOES window starts inside the block
    val_end = times[dm.plan.index["val"][-1]]
    assert (times[dm.plan.index["test"]] - np.timedelta64(6, "h") > val_end).all()


def test_infinite_frames_are_refused_naming_the_time(small_cube_path, tmp_path):
    import shutil

    import zarr

    copy = tmp_path / "cube.zarr"
    shutil.copytree(small_cube_path, copy)
    aia = zarr.open_group(str(copy), mode="r+")["aia"]
    frame = aia[7]
    frame[0, 3, 3] = np.inf
    aia[7] = frame
    with pytest.raises(store.DamagedCubeError, match="holds other bytes than were written there"):
        _dm(copy, cache="memory")  # a chunk changed behind the writer's back: the chunk manifest says so
    (copy / store.MANIFEST_KEY).unlink()  # as if a writer had stored the infinite pixel itself
    with pytest.raises(data.DataConfigError, match="infinite pixels"):
        _dm(copy, cache="memory")
    with pytest.raises(IndexError, match="out of range"):
        _dm(small_cube_path).model_inputs([10**6])


def test_use_split_trains_on_other_steps_and_refits_the_normalizer(small_cube_path):
    dm = _dm(small_cube_path, split_fractions=[0.6, 0.2, 0.2], cache="memory", cache_dtype="float32")
    train, val, test = (dm.plan.index[s] for s in data.SPLITS)
    before = dm.normalizer
    dm.use_split({"train": train[::4], "val": val, "test": test})
    assert len(dm.samples["train"]) == train[::4].size and dm.normalizer != before
    x, *_ = dm.gather(next(iter(dm.loader("test"))))
    np.testing.assert_allclose(x[0].numpy(), dm.model_inputs(test[:1])[0][0], atol=1e-6)
    with pytest.raises(data.DataConfigError, match="split 'val' is empty"):
        dm.use_split({"train": train, "val": [], "test": test})
    missing = np.setdiff1d(np.arange(dm.plan.times.size), dm.plan.usable)
    if missing.size:
        with pytest.raises(data.DataConfigError, match="not usable"):
            dm.use_split({"train": missing, "val": val, "test": test})
