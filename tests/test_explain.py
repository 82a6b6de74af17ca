"""Explain stage: every method's shape, coordinates and sign; sanity checks; localization; the saliency store."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from flarelib import explain
from flarelib import learn as M
from flarelib.checksums import sha256_of
from flarelib.cube.store import WriteOptions
from flarelib.learn.data import FlareDataModule

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
    assert attr.shape == (len(steps), 6, 64, 64)
    np.testing.assert_array_equal(attr.time.values, dm.plan.times[steps])
    assert attr.channel.values.tolist() == dm.channels
    assert np.isfinite(attr.values).all() and np.abs(attr.values).sum() > 0
    assert attr.attrs["method"] == method and attr.attrs["synthetic"] is True
    if method == "saliency":
        assert (attr.values >= 0).all()  # |gradient|
    if method in explain.CAM_METHODS:
        assert not attr.attrs["per_channel"]
        assert np.all(attr.values == attr.values[:, :1])  # one map, repeated on every channel
        assert (attr.values >= 0).all()  # rectified by default, as in the papers
        assert attr.attrs["layer"] == "block 3, 16×16"  # the last block of the small model on 64 px


def test_integrated_gradients_are_complete_and_signed(setup):
    model, dm, _, steps = setup
    attr = explain.attribute(model, dm, steps[:3], "integrated_gradients", n_steps=128)
    x = torch.from_numpy(dm.model_inputs(steps[:3])[0])
    with torch.no_grad():
        delta = (model(x) - model(torch.zeros_like(x))).numpy()
    # completeness: the attributions add up to f(x) - f(baseline), sign included
    np.testing.assert_allclose(attr.sum(dim=("channel", "y", "x")).values, delta, rtol=0.05, atol=2e-3)


def test_occlusion_is_the_output_drop(setup):
    model, dm, _, steps = setup
    step = steps[:1]
    attr = explain.attribute(model, dm, step, "occlusion", window=64, stride=64)  # occlude everything at once
    x = torch.from_numpy(dm.model_inputs(step)[0])
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
        explain.ExplainedOutput(M.FlareNet(architecture=M.Architecture(widths=(4,))), "prob_M")
    with pytest.raises(ValueError, match="unknown method"):
        explain.attribute(model, dm, steps[:2], "lime")


def test_cascading_randomization_destroys_the_maps(setup):
    model, dm, _, steps = setup
    table = explain.randomization_test(model, dm, steps[:4], "saliency")
    layers = [n for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
              and n != "classifier"]
    assert table["layer"].tolist() == layers[::-1]
    assert table["randomized_to"].iloc[0] == "output layer" and table["randomized_to"].iloc[-1] == "block 1 conv"
    # fully randomized, the map moves far from the original; it keeps some rank correlation (0.55 on the v3 small
    # sun) because |gradient| of any conv net over this input follows the disk's structure, which a whole-image
    # Spearman over mostly quiet pixels rewards: the change, not a fixed level, is what the cascade must show
    assert table["spearman_abs"].iloc[-1] < table["spearman_abs"].iloc[0] - 0.25
    np.testing.assert_allclose(table["spearman_abs"], table["spearman_signed"])  # saliency is |gradient|
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
    kwargs = dict(time_index=steps, checkpoint=checkpoint, n_steps=8)
    writes = WriteOptions(steps_per_write=8, progress=False)
    full = explain.write_saliency_store(tmp_path / "full.zarr", model, dm, ["gradcam", "saliency"], write=writes,
                                       **kwargs)

    class Stop(Exception):
        pass

    def stop_after_first(i0, i1):
        if i0 == 0:
            raise Stop

    with pytest.raises(Stop):
        explain.write_saliency_store(tmp_path / "resumed.zarr", model, dm, ["gradcam", "saliency"],
                                     write=dataclasses.replace(writes, on_written=stop_after_first), **kwargs)
    partial = xr.open_zarr(tmp_path / "resumed.zarr")
    assert partial.attrs["ingest_status"] == "incomplete" and int(partial.ingested.sum()) == 8
    resumed = explain.write_saliency_store(tmp_path / "resumed.zarr", model, dm, ["gradcam", "saliency"],
                                          write=writes, **kwargs)
    a, b = xr.open_zarr(full), xr.open_zarr(resumed)
    xr.testing.assert_identical(a.load(), b.load())
    assert a.saliency.dims == ("time", "attribution", "channel", "y", "x")
    assert a.saliency.encoding["chunks"] == (1, 2, 6, 64, 64)  # one time step per chunk, every method and channel
    provenance = __import__("json").loads(a.attrs["provenance"])
    assert provenance["checkpoint_sha256"] == sha256_of(checkpoint)
    assert provenance["methods"] == ["gradcam", "saliency"]
    np.testing.assert_array_equal(a.time.values, dm.plan.times[steps])


def test_a_real_cube_is_explained_with_the_checkpoint_normalizer(setup, catalog, tmp_path):
    model, _, _, _ = setup
    real = catalog.open("sample-flare-2011-02-15", build_dir=tmp_path, progress=False)
    attr = explain.attribute(model, real, [0, 5], "gradcam")
    assert attr.attrs["synthetic"] is False and attr.attrs["cube"] == "sample-flare-2011-02-15"
    assert attr.shape == (2, 6, real.sizes["y"], real.sizes["x"])
    np.testing.assert_array_equal(attr.time.values, real.time.values[[0, 5]])
    with pytest.raises(ValueError, match="normalizer"):
        explain.attribute(M.FlareNet(architecture=M.Architecture(widths=(4,))), real, [0], "saliency")


def test_occlusion_one_channel_at_a_time_differs_per_channel(setup):
    model, dm, _, steps = setup
    attr = explain.attribute(model, dm, steps[:1], "occlusion", window=16, stride=16, per_channel_occlusion=True)
    values = attr.values[0]
    assert values.shape == (6, 64, 64)
    assert not np.allclose(values[0], values[1])  # each channel occluded on its own
    joint = explain.attribute(model, dm, steps[:1], "occlusion", window=16, stride=16).values[0]
    assert np.allclose(joint[0], joint[1])  # all channels at once: one value per patch


# --------------------------------------------------------------------------- Grad-CAM and HiResCAM by hand

def _tiny(seed=0):
    torch.manual_seed(seed)
    model = M.FlareNet(channels=[94, 131],
                       architecture=M.Architecture(widths=(4, 6), hidden=8, norm="none", dropout=0.0)).eval()
    x = torch.randn(3, 2, 16, 16)
    return model, x


def _by_hand(model, x, block):
    """Rectified feature maps A of ``block`` and d output / d A, with a plain forward hook."""
    relu = explain.block_relu(model, block)
    store = {}

    def keep(module, inputs, output):
        output.retain_grad()
        store["A"] = output

    hook = relu.register_forward_hook(keep)
    try:
        model(x).sum().backward()  # samples are independent in eval mode: the sum's gradient is each sample's
    finally:
        hook.remove()
    return store["A"].detach(), store["A"].grad.detach()


@pytest.mark.parametrize("block", [1, 2])
def test_gradcam_is_the_rectified_maps_weighted_by_mean_gradient(block):
    model, x = _tiny()
    a, g = _by_hand(model, x, block)
    weighted = (g.mean(dim=(2, 3), keepdim=True) * a).sum(dim=1)
    cam = explain.attribute_tensor(model, x, "gradcam", block=block, native=True)[:, 0]
    torch.testing.assert_close(cam, torch.relu(weighted), rtol=1e-4, atol=1e-6)
    signed = explain.attribute_tensor(model, x, "gradcam", block=block, native=True, signed=True)[:, 0]
    torch.testing.assert_close(signed, weighted, rtol=1e-4, atol=1e-6)
    assert (a >= 0).all()  # the hooked tensor is the ReLU's output


@pytest.mark.parametrize("block", [1, 2])
def test_hirescam_is_gradient_times_activation_summed_over_filters(block):
    model, x = _tiny(1)
    a, g = _by_hand(model, x, block)
    summed = (g * a).sum(dim=1)
    cam = explain.attribute_tensor(model, x, "hirescam", block=block, native=True)[:, 0]
    torch.testing.assert_close(cam, torch.relu(summed), rtol=1e-4, atol=1e-6)
    signed = explain.attribute_tensor(model, x, "hirescam", block=block, native=True, signed=True)[:, 0]
    torch.testing.assert_close(signed, summed, rtol=1e-4, atol=1e-6)
    full = explain.attribute_tensor(model, x, "hirescam", block=block)
    assert full.shape == x.shape  # upsampled to the input and repeated on every channel


def test_blocks_are_named_for_people():
    model, _ = _tiny()
    assert explain.block_name(model, None, (16, 16)) == "block 2, 8×8"
    assert explain.block_name(model, 1, (64, 64)) == "block 1, 64×64"
    assert explain.block_shapes(model, (32, 32)) == [(32, 32), (16, 16)]
    with pytest.raises(ValueError, match="block 3 does not exist"):
        explain.block_relu(model, 3)


# --------------------------------------------------------------------------- localization at the map's resolution

def test_pooled_mask_is_the_fraction_of_each_cell():
    mask = np.zeros((64, 64), bool)
    mask[10:14, 20:24] = True  # 16 px, all inside the 8 px cell (1, 2)
    f = explain.pool_mask(mask, (8, 8))
    assert f.shape == (8, 8) and f[1, 2] == pytest.approx(16 / 64) and f.sum() == pytest.approx(16 / 64)
    assert explain.pool_mask(mask, (64, 64)).sum() == 16


def test_the_upper_bound_is_reached_by_an_ideal_map_and_by_no_other():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    mask = (yy - 30.3) ** 2 + (xx - 41.7) ** 2 <= 4.2  # a ~13 px flare kernel
    for shape in [(8, 8), (16, 16), (64, 64)]:
        f = explain.pool_mask(mask, shape)
        ideal = (f == f.max()).astype(float)
        score = explain.score_map(ideal, mask)
        assert score["mass_inside"] == pytest.approx(score["mass_upper_bound"]) and score["pointing"]
        for _ in range(20):
            other = rng.random(shape) ** 4
            assert explain.score_map(other, mask)["mass_inside"] <= score["mass_upper_bound"] + 1e-12
    assert explain.score_map(np.ones((64, 64)), mask)["mass_upper_bound"] == 1.0
    assert explain.score_map(np.ones((8, 8)), mask)["mass_upper_bound"] < 0.3  # coarse cells cap the score
    nothing = explain.score_map(-np.ones((8, 8)), mask)  # no positive mass: no score, and no hit
    assert np.isnan(nothing["mass_inside"]) and not nothing["pointing"]


def test_best_localizing_method_uses_the_share_of_the_bound():
    table = pd.DataFrame({"model": "now", "method": ["gradcam", "hirescam", "saliency", "input image"],
                          "layer": ["block 3, 8×8", "block 3, 8×8", "input", "input"], "map_ny": [8, 8, 32, 32],
                          "map_nx": [8, 8, 32, 32], "mass_inside": [0.05, 0.15, 0.3, 0.9],
                          "mass_upper_bound": [0.2, 0.2, 1.0, 1.0], "pointing": [0.5, 0.9, 0.9, 1.0],
                          "n_frames": 5})
    assert explain.best_localizing_method(table) == "hirescam"  # 0.75 of its bound; the input image never wins
    assert explain.best_localizing_method(table, candidates=["gradcam", "saliency"]) == "saliency"
    assert "hirescam (block 3, 8×8): mass 0.15 = 75%" in explain.localization_verdict(table)
    pooled = pd.concat([table, table.iloc[[3]].assign(map_ny=8, map_nx=8, layer="input, pooled to 8×8",
                                                       mass_inside=0.1, pointing=0.8)], ignore_index=True)
    verdict = explain.localization_verdict(pooled)
    assert "1.5× the input image's at 8×8; pointing 0.90 beats the input image there" in verdict


def test_an_empty_map_counts_zero_mass_on_its_frame():
    mask = np.zeros((2, 8, 8), bool)
    mask[:, 2, 2] = True
    values = np.zeros((2, 8, 8))
    values[0, 2, 2] = 1.0  # all of its mass inside on frame 0; nothing on frame 1
    table = explain.score_maps({"m": xr.DataArray(values, dims=("time", "y", "x"), attrs={"method": "m"})}, mask)
    assert table["mass_inside"].iloc[0] == pytest.approx(0.5) and table["pointing"].iloc[0] == pytest.approx(0.5)


def test_nan_correlation_is_a_failure():
    assert np.isnan(explain.sanity._spearman(np.zeros((4, 4)), np.arange(16.0).reshape(4, 4)))
    table = pd.DataFrame({"method": ["gradcam", "gradcam", "saliency"],
                          "randomized_to": ["output layer", "block 1 conv", "block 1 conv"],
                          "spearman_abs": [0.9, np.nan, 0.05], "spearman_signed": [0.9, 0.01, -0.1]})
    verdict = explain.randomization_verdict(table)
    assert not verdict.loc["gradcam", "passes"] and verdict.loc["saliency", "passes"]


def test_tables_are_written_with_exactly_the_columns(setup, tmp_path, monkeypatch):
    model, dm, _, _ = setup
    monkeypatch.setenv("FLARELIB_RESULTS_DIR", str(tmp_path / "results"))
    frames = explain.scoring_frames(dm, "test", n=3)
    assert len(frames.index) and frames.masks.shape == (len(frames.index), 64, 64)
    assert frames.masks.any(axis=(1, 2)).all()
    table = explain.localization_table(model, dm, frames, methods=("saliency", "gradcam", "hirescam"))
    path = explain.write_localization(table)
    assert path == tmp_path / "results" / "localization.csv"
    written = pd.read_csv(path)
    assert list(written.columns) == explain.LOCALIZATION_COLUMNS
    assert set(explain.TRIVIAL_MAPS) <= set(written["method"])
    image = written[written["method"] == "input image"]  # the input image also at each CAM's resolution
    assert sorted(image["map_ny"]) == [16, 32, 64] and image["layer"].str.contains("pooled to 16×16").any()
    cams = written[written["method"].isin(explain.CAM_METHODS)]
    assert sorted(cams["map_ny"]) == [16, 16, 32, 32]  # each CAM at its own resolution, the last two blocks
    assert (written["mass_inside"].dropna() <= written["mass_upper_bound"][written["mass_inside"].notna()] + 1e-9).all()
    assert (written.loc[written["map_ny"] == 64, "mass_upper_bound"] == 1).all()
    rand = explain.randomization_table(model, dm, frames.index[:2], methods=("gradcam",))
    written = pd.read_csv(explain.write_randomization(rand))
    assert list(written.columns) == explain.RANDOMIZATION_COLUMNS
    assert not written["randomized_to"].str.contains("features").any()  # layers named for people


def test_out_of_range_and_non_finite_steps_are_refused_clearly(setup):
    model, dm, _, _ = setup
    n = dm.plan.times.size
    with pytest.raises(IndexError, match=rf"time index {n + 5} outside the cube: it has {n} time steps"):
        explain.attribute(model, dm, [0, n + 5], "saliency")
    with pytest.raises(IndexError, match="outside the cube"):
        explain.cam_maps(model, dm, [-1])



def test_non_finite_goes_inputs_are_refused_naming_the_step(setup, monkeypatch):
    _, dm, _, _ = setup
    model = _AuxModel(dm.channels, dm.normalizer).eval()
    # the normalizer maps missing pixels to the channel mean; a GOES-history input can still be missing
    aux = np.ones((dm.plan.times.size, 2), np.float32)
    aux[101] = np.nan
    monkeypatch.setattr(dm, "_plan", dataclasses.replace(dm.plan, aux=aux))
    explain.attribute(model, dm, [100], "saliency")
    with pytest.raises(ValueError, match=r"GOES input at time step 101 \(2031-01-0.T..:..\) is not finite"):
        explain.attribute(model, dm, [100, 101], "saliency")


def test_infinite_pixels_are_refused_on_every_input_path(setup):
    model, dm, _, steps = setup
    cube = dm.cube().load()
    cube["aia"][int(steps[0]), 2, 10, 10] = np.inf
    with pytest.raises(ValueError, match="infinite pixels, no finite pixel"):
        explain.attribute(model, cube, steps[:1], "saliency")
    explain.attribute(model, cube, steps[1:2], "saliency")  # the other steps are still explained


class _AuxModel(torch.nn.Module):
    """A model with an auxiliary input and several frames, like FlareNet may have."""

    def __init__(self, channels, normalizer, frames=1, n_aux=2, frame_step="1h"):
        super().__init__()
        self.hparams = {"aux_inputs": n_aux, "frames": frames, "frame_step": frame_step}
        self.normalizer = normalizer
        self.features = torch.nn.Sequential(torch.nn.Conv2d(len(channels) * frames, 4, 3, padding=1),
                                            torch.nn.ReLU(), torch.nn.MaxPool2d(2))
        self.out = torch.nn.Linear(4 + n_aux, 1)

    def forward(self, x, aux=None):
        pooled = self.features(x).amax(dim=(2, 3))
        if self.hparams["aux_inputs"] and aux is None:
            raise TypeError("aux is required")
        return self.out(pooled if aux is None else torch.cat([pooled, aux], dim=1)).squeeze(-1)


def test_a_model_with_goes_inputs_and_frames_is_explained_on_its_data_module(setup, small_cube_path):
    _, trained, _, steps = setup
    dm = FlareDataModule.from_settings({"cube": str(small_cube_path), "target": "lead60min_window360min",
                                        "inputs": {"frames": 2, "frame_step": "2h", "goes": ["now", "6h"]},
                                        "split": {"fractions": (0.6, 0.2, 0.2)}})
    dm.normalizer = trained.normalizer
    dm.setup()
    steps = dm.plan.index["test"][:2]
    model = _AuxModel(dm.channels, dm.normalizer, frames=2, frame_step="2h").eval()
    with pytest.raises(ValueError, match="GOES inputs"):
        explain.attribute(model, dm.cube(), steps, "saliency")  # a bare cube has no GOES inputs
    got = explain.model_inputs(model, dm, steps)
    x, aux = dm.model_inputs(steps)
    np.testing.assert_array_equal(got.x.numpy(), x)
    np.testing.assert_array_equal(got.aux.numpy(), aux)
    np.testing.assert_array_equal(got.x[:, :6].numpy(), dm.model_inputs(steps - 2)[0][:, 6:])  # 2 h = 2 steps back
    with pytest.raises(ValueError, match="the data module gives 2 frames per sample, the model reads 1"):
        explain.attribute(_AuxModel(dm.channels, dm.normalizer).eval(), dm, steps, "saliency")
    with pytest.raises(ValueError, match="frames 2h apart, the model was trained on frames 1h apart"):
        explain.attribute(_AuxModel(dm.channels, dm.normalizer, frames=2).eval(), dm, steps, "saliency")
    for method in ("saliency", "integrated_gradients", "gradcam", "hirescam", "occlusion"):
        attr = explain.attribute(model, dm, steps, method, n_steps=4, window=16, stride=16)
        assert attr.shape == (2, 6, 64, 64)  # the current frame's channels
        if method not in explain.CAM_METHODS:
            share = json.loads(attr.attrs["earlier_frames_share"])
            assert len(share) == 2 and all(0 <= s <= 1 for s in share)


# --------------------------------------------------------------------------- filters and regions

def test_filters_on_flaring_regions_by_hand():
    acts = np.ones((2, 3, 8, 8), np.float32)
    will = np.zeros((2, 16, 16), bool)
    will[:, 0:4, 0:4] = True
    other = np.zeros((2, 16, 16), bool)
    other[:, 8:12, 8:12] = True
    acts[:, 1, 0:2, 0:2] = 6.0  # filter 1 fires on the region that will flare
    acts[:, 2, 4:6, 4:6] = 3.0  # filter 2 on the other region
    regions = explain.RegionMasks(np.arange(2), will, other, ~(will | other), "test window")
    da = xr.DataArray(acts, dims=("time", "filter", "fy", "fx"), coords={"filter": np.arange(3)})
    table = explain.filters_on_flaring_regions(da, regions)
    assert table.index[0] == 1 and table["flare_ratio"].iloc[0] == pytest.approx(6.0)
    assert table.loc[2, "flare_ratio"] == pytest.approx(1 / 3)
    assert table.loc[0, "region_ratio"] == pytest.approx(1.0)


def test_survey_relates_filters_to_regions_that_will_flare(setup):
    model, dm, _, _ = setup
    steps = explain.region_frames(dm, "test", n=4)
    assert len(steps)
    regions = explain.region_masks(dm, steps)
    assert regions.will_flare.any(axis=(1, 2)).all() and not (regions.will_flare & regions.will_not).any()
    survey = explain.survey_filters(model, dm, steps, regions)
    assert list(survey.activations) == ["block 1, 64×64", "block 2, 32×32", "block 3, 16×16"]
    assert list(survey.summary.index) == list(survey.activations)
    assert "94 Å input" in explain.filter_survey_verdict(survey)


def _cube_with_bloom() -> xr.Dataset:
    aia = np.ones((2, 2, 8, 6), np.float32)  # (time, channel, y, x)
    aia[0, 1, 2:6, 3] = 500.0  # a saturated column in channel 131 through the kernel at y=3
    aia[0, 1, 7, 0] = 500.0  # a saturated pixel far from the mask
    generator = json.dumps({"saturation_dn_per_s": {"94": 1000.0, "131": 500.0}})
    return xr.Dataset({"aia": (("time", "channel", "y", "x"), aia)}, coords={"channel": [94, 131]},
                      attrs={"generator": generator})


def test_the_mask_grows_along_the_bloom_columns_that_touch_it():
    cube = _cube_with_bloom()
    mask = np.zeros((2, 8, 6), bool)
    mask[:, 3, 3] = True
    grown = explain.with_bloom(cube, [0, 1], mask)
    assert grown[0, 2:6, 3].all() and grown[0].sum() == 4  # the column, not the far saturated pixel
    np.testing.assert_array_equal(grown[1], mask[1])  # nothing saturated on frame 1
    no_levels = cube.assign_attrs(generator="{}")
    np.testing.assert_array_equal(explain.with_bloom(no_levels, [0, 1], mask), mask)


def test_the_hot_channel_excess_map_is_where_the_hot_channels_rise_above_their_median():
    cube = _cube_with_bloom().assign_coords(time=np.array(["2031-01-01T00", "2031-01-01T01"], "datetime64[ns]"))
    cube["aia"][0, 0, 1, 1] = 5.0  # 94 Å five times its median
    maps = explain.trivial_maps(cube, [0, 1], channels=[94, 131])
    excess = maps["hot-channel excess"].values
    assert excess[0, 1, 1] == pytest.approx(4.0) and excess[0, 3, 3] == pytest.approx(499.0)
    assert excess[1].max() == 0 and (excess >= 0).all()


def test_localization_means_come_with_day_block_intervals():
    times = np.datetime64("2031-01-01T00", "ns") + np.arange(12) * np.timedelta64(12, "h")  # 6 days, 2 frames each
    values = np.tile([1.0, 0.0], 6)
    values[:4] = 1.0
    lo, hi = explain.frame_mean_interval(values, times, n_resamples=500)
    assert 0 <= lo < values.mean() < hi <= 1
    assert explain.frame_mean_interval(np.ones(12), times) == (1.0, 1.0)
    few = times[:6]  # three days: too few blocks for an interval
    assert all(np.isnan(explain.frame_mean_interval(values[:6], few)))
    assert all(np.isnan(explain.frame_mean_interval(np.array([]), times[:0])))


def test_randomization_passes_only_when_the_maps_also_stop_pointing_at_the_flare():
    rows = {"method": ["gradcam", "saliency", "hirescam"], "randomized_to": "block 1 conv",
            "spearman_abs": [0.05, 0.05, 0.05], "spearman_signed": [0.05, 0.05, 0.05],
            "mass_inside_original": [0.6, 0.6, 0.04], "mass_inside": [0.1, 0.55, 0.01], "chance": 0.05}
    verdict = explain.randomization_verdict(pd.DataFrame(rows))
    assert verdict["passes_spearman"].all()
    assert verdict.loc["gradcam", "passes"]  # lost (0.6 - 0.1) / (0.6 - 0.05) = 91% of its localization
    assert not verdict.loc["saliency", "passes"]  # still points at the flare with random weights
    assert not verdict.loc["hirescam", "passes"]  # never beat chance: cannot show a drop
    assert verdict.loc["gradcam", "localization_drop"] == pytest.approx(0.5 / 0.55)


def test_the_weighted_auc_matches_pairs_counted_by_hand():
    from flarelib.evaluate.scoring import roc_auc, weighted_auc

    rng = np.random.default_rng(3)
    scores, labels = rng.integers(0, 6, 80).astype(float), rng.random(80) < 0.3
    weights = rng.integers(0, 3, (3, 80)).astype(float)
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    for w, auc in zip(weights, weighted_auc(scores, labels, weights)):
        pairs = sum(w[i] * w[j] * ((scores[i] > scores[j]) + 0.5 * (scores[i] == scores[j])) for i in pos for j in neg)
        assert auc == pytest.approx(pairs / (w[pos].sum() * w[neg].sum()))
    assert weighted_auc(scores, labels, np.ones((1, 80)))[0] == pytest.approx(roc_auc(scores, labels))
    assert np.isnan(weighted_auc(scores, np.zeros(80), np.ones((1, 80)))[0])


def test_filters_are_ranked_by_their_per_region_auc_with_intervals():
    from flarelib.explain.filters import RegionSamples, filter_region_auc

    rng = np.random.default_rng(0)
    n_frames, ny = 40, 8
    footprints = np.zeros((2 * n_frames, ny, ny), bool)
    footprints[0::2, :4], footprints[1::2, 4:] = True, True  # two regions per frame: top and bottom half
    will = np.tile([True, False], n_frames) & (rng.random(2 * n_frames) < 0.8)
    acts = rng.random((n_frames, 2, ny, ny))  # filter 1 fires on the regions that will flare
    acts[:, 0] = 0.5  # filter 0 is the same everywhere: it cannot tell the regions apart
    for k in range(2 * n_frames):
        if will[k]:
            acts[k // 2, 1][footprints[k]] += 1.0
    times = np.datetime64("2031-01-01T00", "ns") + np.arange(n_frames).repeat(2) * np.timedelta64(6, "h")
    samples = RegionSamples(np.arange(2 * n_frames) // 2, np.arange(2 * n_frames) // 2, np.tile([0, 1], n_frames),
                            will, footprints, times)
    da = xr.DataArray(acts, dims=("time", "filter", "fy", "fx"), coords={"filter": [0, 1]}, attrs={"layer": "b"})
    table = filter_region_auc(da, samples, n_resamples=300)
    assert list(table.columns) == explain.FILTER_AUC_COLUMNS and table["filter"].tolist() == [1, 0]
    best, noise = table.iloc[0], table.iloc[1]
    assert best["auc"] > 0.95 and best["auc_lo"] > 0.5
    assert noise["auc"] == 0.5 and noise["auc_lo"] <= 0.5 <= noise["auc_hi"]
    assert best["n_frames"] == n_frames and best["n_will_flare"] == will.sum()


def test_a_misspelled_attribution_setting_is_an_error_not_a_silent_default(setup):
    model, dm, _, steps = setup
    with pytest.raises(TypeError, match=r"unknown attribution settings \['n_step'\]"):
        explain.attribute(model, dm, steps[:1], "integrated_gradients", n_step=16)
