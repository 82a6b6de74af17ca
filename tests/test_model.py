"""FlareNet: training through LightningCLI, determinism, checkpoints, Captum-friendly modules, bad configs."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from flarelib import evaluate
from flarelib import learn as M
from flarelib.learn.data import DataConfigError
from flarelib.paths import CONFIG_DIR

SMALL = str(CONFIG_DIR / "small.yaml")


def _cli(tmp_path, *extra, cube):
    args = ["--config", SMALL, f"--data.cube={cube}", f"--trainer.default_root_dir={tmp_path}",
            f"--trainer.logger.init_args.save_dir={tmp_path}", *extra]
    return M.make_cli(args, run=False)


@pytest.mark.slow
def test_fast_dev_run_on_the_small_synthetic_cube(tmp_path, small_cube_path):
    cli = _cli(tmp_path, "--trainer.fast_dev_run=true", cube=small_cube_path)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.state.finished
    assert cli.model.normalizer == cli.datamodule.normalizer  # copied from the train block at fit start
    assert cli.model.hparams.channels == cli.datamodule.channels  # linked by the CLI


@pytest.mark.slow
def test_training_from_the_frame_cache_matches_training_from_zarr(tmp_path, small_cube_path):
    runs = []
    for cache in ("none", "memory"):
        cli = _cli(tmp_path / cache, "--trainer.max_epochs=1", f"--data.loader.cache={cache}",
                   "--data.loader.cache_dtype=float32", cube=small_cube_path)
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        runs.append(cli)
    assert runs[1].datamodule.frame_cache is not None
    for a, b in zip(runs[0].model.parameters(), runs[1].model.parameters()):
        torch.testing.assert_close(a, b)


@pytest.mark.slow
def test_bf16_and_channels_last_options_train(tmp_path, small_cube_path):
    cli = _cli(tmp_path, "--trainer.fast_dev_run=true", "--trainer.precision=bf16-mixed",
               "--model.architecture.channels_last=true", cube=small_cube_path)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.state.finished
    assert cli.model.features[0].weight.is_contiguous(memory_format=torch.channels_last)


@pytest.fixture
def trained(trained_small):
    return trained_small


@pytest.mark.slow
def test_training_writes_metrics_csv_and_a_checkpoint(trained):
    out, _ = trained
    curves = M.metrics_frame(out)
    assert len(curves) == 2 and {"train_loss_epoch", "val_loss", "val_mae"} <= set(curves.columns)
    assert np.isfinite(curves["val_loss"]).all()
    assert M.best_checkpoint(out).suffix == ".ckpt"


@pytest.mark.slow
def test_two_runs_with_the_same_seed_give_identical_metrics(trained, tmp_path, small_cube_path):
    out, first = trained
    second = M.train(SMALL, out_dir=tmp_path, overrides=[f"--data.cube={small_cube_path}", "--trainer.max_epochs=2"])
    a, b = M.metrics_frame(out), M.metrics_frame(tmp_path)
    assert a.equals(b)
    pa, pb = M.predict(first.model, first.datamodule), M.predict(second.model, second.datamodule)
    np.testing.assert_array_equal(pa["pred"].values, pb["pred"].values)


@pytest.mark.slow
def test_checkpoint_round_trip_with_weights_only(trained):
    out, cli = trained
    loaded = M.load_flarenet(M.best_checkpoint(out))
    assert loaded.normalizer == cli.datamodule.normalizer
    assert loaded.hparams.channels == cli.datamodule.channels and loaded.hparams.target == "now"
    state = torch.load(M.best_checkpoint(out), weights_only=True, map_location="cpu")
    reference = M.FlareNet.from_settings(state["hyper_parameters"])
    reference.load_state_dict(state["state_dict"])
    reference.eval()
    x = torch.randn(3, 6, 32, 32)
    torch.testing.assert_close(loaded(x), reference(x))


#: A data module's settings as checkpoints saved them before they were grouped (flat names).
FLAT_SETTINGS = {"channels": [94, 131, 171, 193, 211, 335], "target": "now", "split_block": None,
                 "split_fractions": [0.5, 0.25, 0.25], "split_pattern": ["train", "train", "train", "val", "test"],
                 "gap": None, "normalization": "log", "norm_frames": 200, "class_weighting": "loss",
                 "class_weight_power": 0.5, "batch_size": 32, "num_workers": 0, "multiprocessing_context": None,
                 "cache": "none", "cache_dtype": "float16", "cache_max_gb": 4.0, "build_dir": None, "seed": 0,
                 "region_split": False, "frames": 1, "frame_step": "1h", "goes_inputs": None, "images": True}


@pytest.mark.slow
def test_a_checkpoint_with_flat_settings_still_loads(trained, tmp_path):
    out, cli = trained
    state = torch.load(M.best_checkpoint(out), weights_only=True, map_location="cpu")
    grouped = state["datamodule_hyper_parameters"]
    assert grouped["split"]["fractions"] == (0.5, 0.25, 0.25) and grouped["class_weighting"]["scheme"] == "loss"
    state["datamodule_hyper_parameters"] = {**FLAT_SETTINGS, "cube": grouped["cube"]}
    model = state["hyper_parameters"]
    assert model["architecture"]["widths"] == (8, 16, 32) and model["optimization"]["lr"] == 0.003
    state["hyper_parameters"] = {**{k: v for k, v in model.items() if k not in M.MODEL_GROUPS},
                                 **model["architecture"], **model["optimization"]}  # flat, as saved before
    old = tmp_path / "flat.ckpt"
    torch.save(state, old)
    dm = M.load_datamodule(old)
    assert dm.hparams == cli.datamodule.hparams
    np.testing.assert_array_equal(dm.plan.index["test"], cli.datamodule.plan.index["test"])
    loaded, new = M.load_flarenet(old), M.load_flarenet(M.best_checkpoint(out))
    assert loaded.hparams == new.hparams and loaded.architecture == new.architecture
    x = torch.randn(2, 6, 64, 64)
    torch.testing.assert_close(loaded(x), new(x))


class _Payload:
    """Unpickling this touches a file: what a malicious checkpoint could do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_an_untrusted_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"x": _Payload(marker)}}, bad)
    with pytest.raises(M.CheckpointError, match="bad.ckpt is not a readable checkpoint") as err:
        M.load_flarenet(bad)
    assert isinstance(err.value.__cause__, pickle.UnpicklingError)
    assert not marker.exists()


def _damaged_checkpoints(good: Path, folder: Path) -> dict[str, tuple[Path, str]]:
    raw = good.read_bytes()
    state = torch.load(good, weights_only=True)
    cases = {"empty": (b"", "not a readable checkpoint"), "truncated": (raw[: len(raw) // 2], "not a readable"),
             "text": (b"hello", "not a readable checkpoint")}
    out = {}
    for name, (data, message) in cases.items():
        (folder / f"{name}.ckpt").write_bytes(data)
        out[name] = (folder / f"{name}.ckpt", message)
    torch.save(state["state_dict"], folder / "bare.ckpt")
    out["bare state dict"] = (folder / "bare.ckpt", "bare state dict, not a Lightning checkpoint")
    nan = dict(state, state_dict={k: (v * float("nan") if k == "regressor.weight" else v)
                                  for k, v in state["state_dict"].items()})
    torch.save(nan, folder / "nan.ckpt")
    out["NaN weights"] = (folder / "nan.ckpt", "non-finite weights in 'regressor.weight'")
    out["missing"] = (folder / "nope.ckpt", "no checkpoint file")
    return out


def test_damaged_checkpoints_give_a_clear_error_naming_the_file(trained, tmp_path):
    good = M.best_checkpoint(trained[0])
    for name, (path, message) in _damaged_checkpoints(good, tmp_path).items():
        with pytest.raises((M.CheckpointError, FileNotFoundError), match=message) as err:
            M.load_flarenet(path)
        assert path.name in str(err.value), name
        with pytest.raises((M.CheckpointError, FileNotFoundError), match=message):
            M.load_datamodule(path)


def test_the_training_command_prints_one_line_and_debug_shows_the_traceback(capsys, monkeypatch, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(SMALL).read_text().replace("cube: synthetic-sun-small", "cube: no-such-entry"))
    monkeypatch.delenv("FLARELIB_DEBUG", raising=False)
    assert M.main(["fit", "--config", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no-such-entry" in err[0] and "--debug" in err[0]
    assert M.main(["fit", "--config", str(bad), "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_relus_are_modules_for_captum():
    net = M.FlareNet(architecture=M.Architecture(widths=(4, 8), hidden=8))
    relus = [m for m in net.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == 3 and not any(m.inplace for m in relus)
    from captum.attr import GuidedBackprop

    x = torch.randn(2, 6, 16, 16)
    net.eval()
    attr = GuidedBackprop(net).attribute(x, target=None)
    assert attr.shape == x.shape and torch.isfinite(attr).all()


def test_class_head_outputs_two_logits_and_is_absent_when_off():
    with_head = M.FlareNet(class_head=True, architecture=M.Architecture(widths=(4,), hidden=8))
    assert with_head.class_logits(torch.randn(2, 6, 8, 8)).shape == (2, 2)
    with pytest.raises(RuntimeError, match="no class head"):
        M.FlareNet(architecture=M.Architecture(widths=(4,), hidden=8)).class_logits(torch.randn(2, 6, 8, 8))


@pytest.mark.slow
def test_skill_table_has_the_model_and_every_baseline_on_the_same_samples(trained):
    _, cli = trained
    dm = cli.datamodule
    val, test = (M.predict(cli.model, dm, split) for split in ("val", "test"))
    table = evaluate.skill_table(val, test, dm, n_resamples=200)
    assert list(table.columns) == evaluate.SKILL_COLUMNS
    predictors = set(table["predictor"])
    bright = {p for p in predictors if p.startswith("brightest pixel")}
    assert bright in ({"brightest pixel 94 Å"}, {"brightest pixel 131 Å"})
    assert predictors == {"FlareNet", "FlareNet regression", "persistence", "climatology", "region photometry",
                          "latent oracle"} | bright  # a nowcast: no flare-history rows
    assert table["dataset"].str.startswith("SYNTHETIC").all() and table["synthetic"].all()
    assert (table["n_samples"] <= len(test.time)).all()
    assert (table.loc[table["predictor"] != "persistence", "n_samples"] == len(test.time)).all()
    has_prob = table["predictor"].isin(["FlareNet", "climatology", "region photometry", "latent oracle"])
    assert table.loc[~has_prob, "BSS"].isna().all()
    assert ((table["TSS_lo"] <= table["TSS"]) | table["TSS"].isna()).all()


@pytest.mark.parametrize("extra, error, match", [
    (["--data.inputs.channels=[94,1600]"], DataConfigError, "not in cube"),
    (["--data.target=40D/10D"], DataConfigError, "longer than the data"),
    (["--data.split.fractions=[1.0,0.0,0.0]"], DataConfigError, "is empty"),
])
@pytest.mark.slow
def test_bad_config_values_give_clear_errors(tmp_path, small_cube_path, extra, error, match):
    with pytest.raises(error, match=match):  # raised when the CLI links the training data into the model
        cli = _cli(tmp_path, "--trainer.fast_dev_run=true", *extra, cube=small_cube_path)
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)


def test_unknown_config_key_is_rejected_by_the_cli(tmp_path, small_cube_path):
    with pytest.raises(SystemExit):
        _cli(tmp_path, "--model.wdiths=[4]", cube=small_cube_path)


def _log_mean_exp64(a: torch.Tensor, r: float) -> torch.Tensor:
    """The pool's definition in float64: (logsumexp(r a) - log n) / r per map."""
    flat = a.double().flatten(2)
    return (torch.logsumexp(r * flat, dim=-1) - np.log(flat.shape[-1])) / r


@pytest.mark.parametrize("log_r", [np.log(4.0), 2.0, -8.0, -16.0])
def test_soft_pooling_is_its_definition_between_average_and_max(log_r):
    pool = M.LogMeanExpPool(3)
    with torch.no_grad():
        pool.log_r.fill_(log_r)
    a = torch.randn(64, 3, 8, 8)
    soft = pool(a).flatten(1)
    r = float(np.exp(log_r))
    # the float32 pool against its float64 definition: rounding only, at every r (it was 1.5e-3 at r = e^-8)
    torch.testing.assert_close(soft.double(), _log_mean_exp64(a, r), atol=2e-6, rtol=0)
    mean, peak = a.mean(dim=(-2, -1)), a.amax(dim=(-2, -1))
    assert torch.all(soft <= peak + 1e-6) and torch.all(soft >= mean - 1e-6)
    # r -> 0 is the average: log mean exp(r a) / r = mean + r var / 2 + O(r^2)
    spread = (a - mean[..., None, None]).abs().amax(dim=(-2, -1))
    assert torch.all(soft - mean <= r * spread**2 / 2 * np.exp(r * spread.double().numpy().max()) + 1e-6)


def test_soft_pooling_does_not_overflow_at_large_r():
    pool = M.LogMeanExpPool(2)
    with torch.no_grad():
        pool.log_r.fill_(6.0)  # r = 403: exp(r a) overflows float32 for a > 0.22
    a = torch.randn(4, 2, 8, 8) * 10
    soft = pool(a).flatten(1)
    assert torch.isfinite(soft).all()
    torch.testing.assert_close(soft.double(), _log_mean_exp64(a, float(np.exp(6.0))), atol=1e-5, rtol=0)


def test_an_unknown_pool_is_refused():
    with pytest.raises(ValueError, match="pool 'sum' is not one of"):
        M.Architecture(pool="sum")


def test_goes_inputs_join_the_image_features_and_a_goes_only_model_ignores_images():
    x = torch.randn(4, 12, 16, 16)
    aux = torch.randn(4, 2)
    both = M.FlareNet(frames=2, aux_inputs=2, architecture=M.Architecture(widths=(4, 8), pool="lse"))
    assert both(x, aux).shape == (4,)
    with pytest.raises(ValueError, match="reads 2 GOES inputs"):
        both(x)
    goes_only = M.FlareNet(aux_inputs=2, use_images=False, architecture=M.Architecture(widths=(4, 8)))
    assert len(list(goes_only.features.parameters())) == 0
    torch.testing.assert_close(goes_only.eval()(x[:, :6], aux), goes_only(torch.zeros(4, 6, 16, 16), aux))
    with pytest.raises(ValueError, match="use_images=False needs GOES inputs"):
        M.FlareNet(use_images=False)


@pytest.mark.slow
def test_the_cli_links_frames_and_goes_inputs_into_the_model(tmp_path, small_cube_path):
    cli = _cli(tmp_path, "--trainer.fast_dev_run=true", "--data.inputs.frames=2", "--data.inputs.frame_step=2h",
               "--data.inputs.goes=[now, 6h]", "--data.target=lead60min_window360min", cube=small_cube_path)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.model.hparams.frames == 2 and cli.model.hparams.aux_inputs == 2
    assert cli.model.hparams.frame_step == "2h"  # saved, so the model is explained on frames as far apart
    assert cli.model.features[0].in_channels == 12


@pytest.mark.slow
def test_runs_are_keyed_by_the_cube_content_and_a_checkpoint_refuses_another_cube(trained, small_cube_path, tmp_path):
    """A second cube with the same file name, or the same path rebuilt with other data, is never scored with a model
    trained on the first: its run folder differs, and loading the old checkpoint on it is refused."""
    import dataclasses
    import shutil

    from flarelib.cube import synthetic
    from tests.conftest import REAL

    out, _ = trained
    checkpoint = M.best_checkpoint(out)
    copy = tmp_path / "a" / "cube.zarr"
    shutil.copytree(small_cube_path, copy)
    assert M.load_datamodule(checkpoint, cube=str(copy)).store_path == copy  # the same content elsewhere: fine
    other = tmp_path / "b" / "cube.zarr"
    config = dataclasses.replace(synthetic.SIZES["small"], days=2.0, seed=5)
    synthetic.build_synthetic_cube(other, config, sorted((REAL / "aia_fulldisk_2014-01-01").glob("*.fits")),
                                   progress=False)
    first, second = (M.run_dir("small", "now", tmp_path / "runs", cube=c) for c in (copy, other))
    assert first.parent.name.startswith("small-cube-") and first != second
    with pytest.raises(M.CheckpointError, match="trained on a cube with fingerprint"):
        M.load_datamodule(checkpoint, cube=str(other))
