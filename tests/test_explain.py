"""Explain stage: every method's shape, coordinates and sign; sanity checks; localization; the saliency store."""

import numpy as np
import pytest
import torch
import xarray as xr

from flarelib import explain
from flarelib import flarenet as M
from flarelib.checksums import sha256_of

pytestmark = pytest.mark.slow  # trains or explains FlareNet


@pytest.fixture(scope="module")
def setup(trained_small):
    out, cli = trained_small
    model = M.load_flarenet(M.best_checkpoint(out))
    dm = M.load_datamodule(M.best_checkpoint(out), model)
    mask = xr.open_zarr(str(dm.store_path))["flare_mask"].values
    flaring = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    return model, dm, mask, flaring[:: max(1, len(flaring) // 6)][:6]


@pytest.mark.parametrize("method", explain.METHODS)
def test_each_method_returns_cube_aligned_maps(setup, method):
    model, dm, _, steps = setup
    attr = explain.attribute(model, dm, steps, method, batch_size=4, nt_samples=2, n_steps=8, window=8, stride=8)
    assert attr.dims == ("time", "channel", "y", "x")
    assert attr.shape == (len(steps), 6, 32, 32)
    np.testing.assert_array_equal(attr.time.values, dm.times[steps])
    assert attr.channel.values.tolist() == dm.channels
    assert np.isfinite(attr.values).all() and np.abs(attr.values).sum() > 0
    assert attr.attrs["method"] == method and attr.attrs["synthetic"] is True
    if method == "saliency":
        assert (attr.values >= 0).all()  # |gradient|
    if method == "gradcam":
        assert not attr.attrs["per_channel"]
        assert np.all(attr.values == attr.values[:, :1])  # one map, repeated on every channel
        assert (attr.values < 0).any() or (attr.values > 0).all()  # sign kept, not ReLU-ed


def test_integrated_gradients_are_complete_and_signed(setup):
    model, dm, _, steps = setup
    attr = explain.attribute(model, dm, steps[:3], "integrated_gradients", n_steps=128)
    x = explain.normalized_frames(dm, steps[:3])
    with torch.no_grad():
        delta = (model(x) - model(torch.zeros_like(x))).numpy()
    # completeness: the attributions add up to f(x) - f(baseline), sign included
    np.testing.assert_allclose(attr.sum(dim=("channel", "y", "x")).values, delta, rtol=0.05, atol=2e-3)


def test_occlusion_is_the_output_drop(setup):
    model, dm, _, steps = setup
    step = steps[:1]
    attr = explain.attribute(model, dm, step, "occlusion", window=32, stride=32)  # occlude everything at once
    x = explain.normalized_frames(dm, step)
    with torch.no_grad():
        drop = float(model(x) - model(torch.zeros_like(x)))
    assert float(attr.values[0, 0, 0, 0]) == pytest.approx(drop, rel=1e-4, abs=1e-6)


def test_probability_head_and_its_errors(setup):
    model, dm, _, steps = setup
    attr = explain.attribute(model, dm, steps[:2], "saliency", head="prob_M")
    assert attr.attrs["head"] == "prob_M"
    with pytest.raises(ValueError, match="head"):
        explain.attribute(model, dm, steps[:2], "saliency", head="prob_X")
    with pytest.raises(ValueError, match="class_head"):
        explain.ExplainedOutput(M.FlareNet(widths=[4]), "prob_M")
    with pytest.raises(ValueError, match="unknown method"):
        explain.attribute(model, dm, steps[:2], "lime")


def test_cascading_randomization_destroys_the_maps(setup):
    model, dm, _, steps = setup
    table = explain.randomization_test(model, dm, steps[:4], "saliency")
    layers = [n for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
              and n != "classifier"]
    assert table["randomized_down_to"].tolist() == layers[::-1]
    assert table["spearman_rho"].iloc[-1] < 0.5  # fully randomized: the map no longer resembles the original
    before = explain.attribute(model, dm, steps[:2], "saliency").values
    after = explain.attribute(model, dm, steps[:2], "saliency").values
    np.testing.assert_array_equal(before, after)  # the test worked on a copy


def test_localization_scores_by_hand():
    attr = np.zeros((2, 2, 4, 4), np.float32)
    attr[0, 0, 1, 1] = 3.0  # inside the mask, the peak
    attr[0, 1, 3, 3] = 1.0  # outside
    attr[0, 1, 0, 0] = -5.0  # negative mass is not counted
    attr[1, 0, 3, 3] = 2.0  # the peak is outside the mask
    mask = np.zeros((2, 4, 4), np.uint8)
    mask[:, 1:3, 1:3] = 1
    da = xr.DataArray(attr, dims=("time", "channel", "y", "x"),
                      coords={"time": np.array(["2031-01-01T00:00", "2031-01-01T00:12"], dtype="datetime64[ns]")})
    table = explain.localization(da, mask)
    assert table["mass_inside"].tolist() == [0.75, 0.0]
    assert table["pointing_hit"].tolist() == [True, False]
    mask[1] = 0
    assert len(explain.localization(da, mask)) == 1  # no mask, no score
    with pytest.raises(ValueError, match="differ"):
        explain.localization(da, mask[:, :2])


def test_localization_on_the_trained_model_is_a_fraction(setup):
    model, dm, mask, steps = setup
    attr = explain.attribute(model, dm, steps, "gradcam")
    table = explain.localization(attr, mask[steps])
    assert len(table) == len(steps)
    assert table["mass_inside"].between(0, 1).all()


def test_channel_importance_sums_to_one(setup):
    model, dm, _, steps = setup
    share = explain.channel_importance(explain.attribute(model, dm, steps[:3], "integrated_gradients", n_steps=8))
    assert share.dims == ("time", "channel")
    np.testing.assert_allclose(share.sum("channel").values, 1.0, rtol=1e-5)


def test_filters_on_regions_ranks_the_filter_that_fires_in_the_mask():
    acts = np.ones((3, 4, 8, 8), np.float32)
    mask = np.zeros((3, 16, 16), np.uint8)
    mask[:, 4:8, 4:8] = 1
    acts[:, 2, 2:4, 2:4] = 10.0  # filter 2 lights up where the (2x downsampled) mask is
    da = xr.DataArray(acts, dims=("time", "filter", "fy", "fx"), coords={"filter": np.arange(4)})
    table = explain.filters_on_regions(da, mask)
    assert table.index[0] == 2 and table["ratio"].iloc[0] == pytest.approx(10.0)


def test_layer_activations_after_relu_are_non_negative(setup):
    model, dm, _, steps = setup
    names = list(explain.conv_layers(model))
    acts = explain.layer_activations(model, dm, steps[:2], names[0])
    assert acts.dims == ("time", "filter", "fy", "fx") and acts.sizes["filter"] == 8
    assert float(acts.min()) >= 0
    with pytest.raises(ValueError, match="no conv layer"):
        explain.layer_activations(model, dm, steps[:2], "head.9")


def test_saliency_store_is_resumable_and_carries_provenance(setup, trained_small, tmp_path):
    model, dm, _, _ = setup
    out, _ = trained_small
    checkpoint = M.best_checkpoint(out)
    steps = np.arange(100, 124)
    kwargs = dict(time_index=steps, checkpoint=checkpoint, block=8, progress=False, n_steps=8)
    full = explain.write_saliency_store(tmp_path / "full.zarr", model, dm, ["gradcam", "saliency"], **kwargs)

    class Stop(Exception):
        pass

    def stop_after_first(i0, i1):
        if i0 == 0:
            raise Stop

    with pytest.raises(Stop):
        explain.write_saliency_store(tmp_path / "resumed.zarr", model, dm, ["gradcam", "saliency"],
                                     on_block=stop_after_first, **kwargs)
    partial = xr.open_zarr(tmp_path / "resumed.zarr")
    assert partial.attrs["ingest_status"] == "incomplete" and int(partial.ingested.sum()) == 8
    resumed = explain.write_saliency_store(tmp_path / "resumed.zarr", model, dm, ["gradcam", "saliency"], **kwargs)
    a, b = xr.open_zarr(full), xr.open_zarr(resumed)
    xr.testing.assert_identical(a.load(), b.load())
    assert a.saliency.dims == ("time", "method", "channel", "y", "x")
    assert a.saliency.encoding["chunks"] == (1, 2, 6, 32, 32)  # one time step per chunk: one read per slider step
    provenance = __import__("json").loads(a.attrs["provenance"])
    assert provenance["checkpoint_sha256"] == sha256_of(checkpoint)
    assert provenance["methods"] == ["gradcam", "saliency"]
    np.testing.assert_array_equal(a.time.values, dm.times[steps])


def test_a_real_cube_is_explained_with_the_checkpoint_normalizer(setup, catalog, tmp_path):
    model, _, _, _ = setup
    real = catalog.open("sample-flare-2011-02-15", build_dir=tmp_path, progress=False)
    attr = explain.attribute(model, real, [0, 5], "gradcam")
    assert attr.attrs["synthetic"] is False and attr.attrs["cube"] == "sample-flare-2011-02-15"
    assert attr.shape == (2, 6, real.sizes["y"], real.sizes["x"])
    np.testing.assert_array_equal(attr.time.values, real.time.values[[0, 5]])
    with pytest.raises(ValueError, match="normalizer"):
        explain.attribute(M.FlareNet(widths=[4]), real, [0], "saliency")


def test_flaring_steps_and_bright_regions(setup):
    model, dm, mask, _ = setup
    steps = explain.flaring_steps(dm, "test", n=5)
    assert len(steps) <= 5 and np.isin(steps, dm.split_index["test"]).all()
    assert all(mask[s].any() for s in steps)
    cube = xr.open_zarr(str(dm.store_path))
    bright = explain.bright_region_mask(cube, steps, 94, 99.0)
    assert bright.shape == (len(steps), 32, 32) and 0 < bright.mean() < 0.05


def test_occlusion_one_channel_at_a_time_differs_per_channel(setup):
    model, dm, _, steps = setup
    attr = explain.attribute(model, dm, steps[:1], "occlusion", window=16, stride=16, per_channel_occlusion=True)
    values = attr.values[0]
    assert values.shape == (6, 32, 32)
    assert not np.allclose(values[0], values[1])  # each channel occluded on its own
    joint = explain.attribute(model, dm, steps[:1], "occlusion", window=16, stride=16).values[0]
    assert np.allclose(joint[0], joint[1])  # all channels at once: one value per patch
