"""Ambiguous or hostile training input refused with one line (issue 22): a YAML key given twice, a YAML syntax
error (file:line:col), an endless ``max_epochs=-1``, a checkpoint whose hyperparameters do not describe its
weights (checked before the model is built), and a checkpoint whose inputs are not the data module's."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping

from flarelib import learn as M
from flarelib.learn.data import FlareDataModule
from flarelib.learn.model import SIZE_LIMITS, check_hyperparameters
from flarelib.learn.runs import FlareCLI, check_training_ends
from flarelib.paths import CONFIG_DIR
from flarelib.settings import ConfigError, check_yaml, load_yaml

SMALL = CONFIG_DIR / "small.yaml"


# --------------------------------------------------------------------------- YAML


class OtherError(ValueError):
    pass


def test_a_key_twice_anywhere_is_refused_naming_the_file_the_key_and_both_lines(tmp_path):
    path = tmp_path / "cat.yaml"
    path.write_text("entries:\n  a:\n    kind: x\n  b:\n    kind: y\n  a:\n    kind: z\n")  # an entry twice
    with pytest.raises(OtherError, match=rf"^{path}:6:3: key 'a' is given twice in one mapping, at lines 2 and 6"):
        load_yaml(path, error=OtherError)  # the caller's error class (a catalog's)
    nested = "callbacks:\n  - class_path: A\n    init_args: {monitor: val_loss, mode: min, monitor: x}\n"
    with pytest.raises(ConfigError, match=r"^c\.yaml:3:47: key 'monitor' .* on line 3 \(columns 17 and 47\)"):
        check_yaml(nested, "c.yaml")  # inside a list, in flow style


def test_keys_merged_in_may_be_overridden_and_repeated_keys_in_other_mappings_are_fine(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("base: &b {lr: 1, wd: 2}\nmodel:\n  <<: *b\n  lr: 3\ndata:\n  lr: 4\n")
    assert load_yaml(path) == {"base": {"lr": 1, "wd": 2}, "model": {"lr": 3, "wd": 2}, "data": {"lr": 4}}


def test_a_value_that_does_not_construct_names_its_place(tmp_path):
    path = tmp_path / "tag.yaml"
    path.write_text("model:\n  x: !!python/object/apply:os.system [echo]\n")
    with pytest.raises(ConfigError, match=rf"^{path}:2:6: "):
        load_yaml(path)


def _config_with(tmp_path, old: str, new: str) -> Path:
    text = SMALL.read_text()
    assert old in text
    path = tmp_path / "edited.yaml"
    path.write_text(text.replace(old, new))
    return path


def test_the_training_command_refuses_a_repeated_key_and_a_syntax_error_with_file_line_col(tmp_path, capsys):
    twice = _config_with(tmp_path, "  target: now\n", "  target: now\n  target: lead60min_window1440min\n")
    assert M.main(["fit", "--config", str(twice)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    line = SMALL.read_text().splitlines().index("  target: now") + 1
    assert len(err) == 1 and f"{twice}:{line + 1}:3: key 'target' is given twice" in err[0]
    assert f"at lines {line} and {line + 1}" in err[0]
    broken = _config_with(tmp_path, "  target: now\n", "  target: [now\n")
    assert M.main(["fit", f"--config={broken}"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{broken}:{line + 1}:" in err[0] and f"at line {line}, column 11" in err[0]


@pytest.mark.filterwarnings("ignore:LightningCLI.s args parameter")
def test_the_cli_parser_itself_refuses_a_repeated_key(tmp_path, capsys):
    """LightningCLI's own YAML loader (any file or value it reads, not only --config on the command line)."""
    twice = _config_with(tmp_path, "model:\n", "model:\n  class_head: false\n")
    with pytest.raises(SystemExit):
        FlareCLI(M.FlareNet, FlareDataModule, args=["--config", str(twice)], run=False)
    err = capsys.readouterr().err
    assert "edited.yaml:" in err and "key 'class_head' is given twice" in err


# --------------------------------------------------------------------------- max_epochs=-1


def _trainer(**kwargs) -> pl.Trainer:
    return pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, accelerator="cpu", **kwargs)


def test_endless_training_is_refused_unless_something_ends_it(caplog):
    with pytest.raises(ConfigError, match=r"trainer\.max_epochs=-1 trains without end .*--trainer\.max_epochs=4"):
        check_training_ends(_trainer(max_epochs=-1))
    check_training_ends(_trainer(max_epochs=3))
    check_training_ends(_trainer(max_epochs=-1, max_steps=100))  # bounded by steps
    check_training_ends(_trainer(max_epochs=-1, max_time="00:00:01:00"))  # bounded by time
    with caplog.at_level(logging.WARNING, logger="flarelib.learn.runs"):
        check_training_ends(_trainer(max_epochs=-1, callbacks=[EarlyStopping(monitor="val_loss")]))
    assert "ends only when early stopping on val_loss stops it" in caplog.text


def test_the_training_cli_refuses_max_epochs_minus_one(tmp_path, small_cube_path):
    args = ["--config", str(SMALL), f"--data.cube={small_cube_path}", f"--trainer.default_root_dir={tmp_path}",
            f"--trainer.logger.init_args.save_dir={tmp_path}", "--trainer.max_epochs=-1"]
    with pytest.raises(ConfigError, match="trains without end"):
        M.make_cli(args, run=False)


# --------------------------------------------------------------------------- checkpoints


def _checkpoint(path: Path, net: M.FlareNet, data: dict | None = None, **hparams) -> Path:
    state = {"state_dict": net.state_dict(), "hyper_parameters": {**dict(net.hparams), **hparams}}
    if data is not None:
        state["datamodule_hyper_parameters"] = data
    torch.save(state, path)
    return path


def _tiny() -> M.FlareNet:
    return M.FlareNet(architecture=M.Architecture(widths=(4, 8), hidden=8), class_head=True)


def test_checkpoint_hyperparameters_are_checked_before_the_model_is_built(tmp_path, monkeypatch):
    net = _tiny()
    good = _checkpoint(tmp_path / "good.ckpt", net)
    assert isinstance(M.load_flarenet(good), M.FlareNet)
    wide = dict(net.hparams["architecture"], widths=[SIZE_LIMITS["width"]] * 8)
    cases = {
        "asks for more than the file": (dict(architecture=wide), r"is [\d,]+ bytes, but its hyperparameters ask for"),
        "absurd width": (dict(architecture=dict(wide, widths=[10**9])), r"widths\[0\]=1000000000 is outside 1\.\.4096"),
        "absurd frames": (dict(frames=10**7), r"frames=10000000 is outside"),
        "not a number": (dict(frames="many"), r"frames='many' is not a whole number"),
        "other frames": (dict(frames=2), r"'features\.0\.weight' the shape \[4, 12, 3, 3\], but the file holds "
                                         r"\[4, 6, 3, 3\]"),
        "no class head": (dict(class_head=False), r"holds weights its hyperparameters do not call for \(classifier"),
    }
    built = []
    monkeypatch.setattr(M.FlareNet, "load_state_dict", lambda *a, **k: built.append(a))
    for name, (change, message) in cases.items():
        path = _checkpoint(tmp_path / f"{name}.ckpt", net, **change)
        with pytest.raises(M.CheckpointError, match=message) as err:
            M.load_flarenet(path)
        assert str(err.value).startswith(str(path)) and "\n" not in str(err.value), name
    assert not built  # load_flarenet never got past the check to load weights into a model


def test_absurd_sizes_are_refused_by_the_settings_themselves():
    with pytest.raises(ValueError, match=r"hidden=100000 is outside 1\.\.16384"):
        M.Architecture(hidden=100_000)
    with pytest.raises(ValueError, match=r"len\(channels\)=65 is outside"):
        M.FlareNet(channels=list(range(65)))
    with pytest.raises(ValueError, match=r"dropout=1\.5 is not a probability"):
        M.Architecture(dropout=1.5)


def test_the_model_refuses_images_it_cannot_read_naming_what_it_reads():
    net = M.FlareNet(architecture=M.Architecture(widths=(4, 8, 8, 8), hidden=8)).eval()
    assert net(torch.randn(2, 6, 16, 16)).shape == (2,)
    with pytest.raises(ValueError, match=r"reads \(batch, 6, ny, nx\) images \(1 frames x channels .*got "
                                         r"\(2, 12, 16, 16\)"):
        net(torch.randn(2, 12, 16, 16))  # two frames for a one-frame model: not a bare conv error
    with pytest.raises(ValueError, match=r"8x8 px are too small for 4 conv blocks .*use at most 3 blocks"):
        net(torch.randn(2, 6, 8, 8))


def test_a_checkpoint_state_is_checked_directly(tmp_path):
    net = _tiny()
    path = _checkpoint(tmp_path / "x.ckpt", net)
    state = torch.load(path, weights_only=True)
    check_hyperparameters(path, state)
    state["state_dict"].pop("regressor.bias")
    with pytest.raises(M.CheckpointError, match="lacks the weight 'regressor.bias'"):
        check_hyperparameters(path, state)


def test_a_checkpoint_whose_inputs_are_not_the_data_modules_is_refused_before_the_cube_is_read(tmp_path):
    net = _tiny()
    data = {"cube": str(tmp_path / "no-such.zarr"), "target": "now", "inputs": {"frames": 1}}
    path = _checkpoint(tmp_path / "run.ckpt", net, data=data)
    with pytest.raises(M.CheckpointError, match=r"run\.ckpt was trained with frames=1, but the data module gives "
                                                r"frames=2 \(data\.inputs\.frames\): drop the change frames="):
        M.load_datamodule(path, inputs={"frames": 2})
    with pytest.raises(M.CheckpointError, match=r"trained with channels=\[94, .*\], but the data module gives "
                                                r"channels=\[94, 131\]"):
        M.load_datamodule(path, channels=[94, 131])
    edited = _checkpoint(tmp_path / "edited.ckpt", net, data={**data, "inputs": {"frames": 3}})
    with pytest.raises(M.CheckpointError, match="the file's data settings disagree with its model's"):
        M.load_datamodule(edited)


def test_resuming_a_checkpoint_on_other_inputs_is_refused_naming_the_file(tmp_path, small_cube_path):
    path = _checkpoint(tmp_path / "resume.ckpt", _tiny())
    args = ["fit", "--config", str(SMALL), f"--data.cube={small_cube_path}", f"--trainer.default_root_dir={tmp_path}",
            f"--trainer.logger.init_args.save_dir={tmp_path}", f"--ckpt_path={path}", "--data.inputs.frames=2"]
    with pytest.raises(M.CheckpointError, match=r"resume\.ckpt was trained with frames=1, but the data module gives "
                                                r"frames=2 .*give data\.inputs\.frames the checkpoint's setting"):
        M.make_cli(args)
    hostile = _checkpoint(tmp_path / "hostile.ckpt", _tiny(), frames=10**7)
    with pytest.raises(M.CheckpointError, match=r"hostile\.ckpt: its hyperparameters do not make a FlareNet"):
        M.make_cli([*args[:-2], f"--ckpt_path={hostile}"])
