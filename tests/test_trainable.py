"""The check before training: one line of what a cube supports, or a refusal naming the cause (no targets, too
short for lead + window, a constant target, too few events), never a raw KeyError or an 'empty split'."""

import dataclasses
import logging
import shutil

import numpy as np
import pytest

from flarelib import learn
from flarelib.cube.catalog import load_catalog, new_entry
from flarelib.learn.data import (
    DataConfigError,
    InputOptions,
    SplitOptions,
    Target,
    check_trainable,
    cube_support,
    plan_samples,
)
from flarelib.paths import CONFIG_DIR
from tests.conftest import FLARE_DIR, ROOT

INPUTS = InputOptions(channels=(94, 131, 171, 193, 211, 335))


@pytest.fixture(scope="module")
def event_cube_path(tmp_path_factory, catalog):
    """The shipped real flare cube: 10 steps of 2 min, targets from one X2.2 event spanning them all."""
    return catalog.build("sample-flare-2011-02-15", build_dir=tmp_path_factory.mktemp("cubes"), progress=False)


@pytest.fixture(scope="module")
def event_cube(event_cube_path):
    from flarelib.cube.store import open_cube

    return open_cube(event_cube_path)


@pytest.fixture(scope="module")
def no_target_cube(tmp_path_factory):
    """The same real frames as an entry written by `catalog new` without --goes-from or --events."""
    root = tmp_path_factory.mktemp("own")
    folder = root / "fits"
    shutil.copytree(FLARE_DIR, folder, ignore=shutil.ignore_patterns("SHA256SUMS", "LICENSE.rst"))
    cat = root / "data_catalog.yaml"
    shutil.copyfile(ROOT / "data_catalog.yaml", cat)
    new_entry("mine", folder, catalog=cat)
    return load_catalog(cat).build("mine", build_dir=root / "cubes", progress=False)


def test_a_cube_without_targets_is_refused_as_such_not_as_an_empty_split(no_target_cube):
    from flarelib.cube.store import open_cube

    with pytest.raises(DataConfigError, match=r"^no targets: .*target_source: none.*cube.goes_from"):
        plan_samples(open_cube(no_target_cube), "now", SplitOptions(), INPUTS)


def test_a_cube_too_short_for_lead_plus_window_says_so(event_cube):
    with pytest.raises(DataConfigError, match=r"^too short: split 'val' is empty .*lead \+ window 0 days 00:10:00"):
        plan_samples(event_cube, "lead0min_window10min", SplitOptions(), INPUTS)


def test_a_constant_target_is_refused_with_the_one_line_of_what_the_cube_supports(event_cube):
    plan = plan_samples(event_cube, "now", SplitOptions(), INPUTS)
    line = cube_support(plan, event_cube)
    assert line.startswith("REAL sample-flare-2011-02-15: 10 steps of 2min (2011-02-15T01:44 to 2011-02-15T02:02)")
    assert line.endswith("usable targets: now, lead0min_window10min")  # 10 min + 10 min is longer than 18 min
    with pytest.raises(DataConfigError, match=r"^constant target: now is 0.00022 W/m² \(X\) at every one of the 7 "):
        check_trainable(plan, event_cube)


def _with_flux(plan, flux):
    return dataclasses.replace(plan, target=Target(plan.target.name, plan.target.lead, plan.target.window,
                                                   np.asarray(flux, float)))


def test_too_few_events_is_refused_and_a_tiny_training_set_warned(event_cube, caplog):
    plan = plan_samples(event_cube, "now", SplitOptions(), INPUTS)
    quiet = _with_flux(plan, np.linspace(1e-7, 5e-7, 10))  # B-class only: not constant, but no event to learn
    with pytest.raises(DataConfigError, match=r"^too few events: no threshold"):
        check_trainable(quiet)
    mixed = _with_flux(plan, [1e-7, 2e-6, 1e-7, 3e-5, 1e-7, 2e-6, 1e-7, 2e-6, 3e-5, 1e-7])
    with caplog.at_level(logging.WARNING):
        line = check_trainable(mixed)
    assert "target now: samples (events >=C1/>=M1) train 7 (3/1)" in line
    assert "only 7 training samples" in caplog.text and "holds no event at >=M1" in caplog.text


def test_training_refuses_before_fitting_naming_the_cause(event_cube_path, no_target_cube, tmp_path, capsys):
    from flarelib import cli

    with pytest.raises(DataConfigError, match="^constant target"):  # notebook 04's way: learn.train
        learn.train(CONFIG_DIR / "small.yaml", out_dir=tmp_path / "run", overrides=[f"--data.cube={event_cube_path}"])
    assert not list((tmp_path / "run").rglob("*.ckpt"))
    status = cli.main(["train", "fit", "--config", str(CONFIG_DIR / "small.yaml"), f"--data.cube={no_target_cube}",
                       f"--trainer.default_root_dir={tmp_path / 'cli-run'}",
                       f"--trainer.logger.init_args.save_dir={tmp_path / 'cli-run'}"])
    assert status == 1
    assert "no targets: cube mine has no now target" in capsys.readouterr().err
    status = cli.main(["train", "fit", "--config", str(CONFIG_DIR / "small.yaml"), f"--data.cube={event_cube_path}",
                       f"--trainer.default_root_dir={tmp_path / 'cli-run'}",
                       f"--trainer.logger.init_args.save_dir={tmp_path / 'cli-run'}"])
    assert status == 1  # FlareCLI.before_fit
    assert "constant target: now is 0.00022" in capsys.readouterr().err
    assert not list((tmp_path / "cli-run").rglob("*.ckpt"))


def test_the_notebooks_targets_parameter_gives_the_cubes_labels_and_refuses_a_bad_mapping():
    assert learn.notebook_targets(None) == learn.NOTEBOOK_TARGETS
    assert learn.notebook_targets({"forecast": "20min/1h", "nowcast": "now"}) == {
        "nowcast": "now", "forecast": "lead20min_window60min"}
    with pytest.raises(DataConfigError, match="keys"):
        learn.notebook_targets({"forecast": "1h/6h"})
    with pytest.raises(DataConfigError, match="needs a lead and a window"):
        learn.notebook_targets({"nowcast": "now", "forecast": "now"})


def test_the_goes_history_model_is_fitted_without_a_history_feature_that_has_no_value_in_training(caplog):
    """A cube shorter than the 24 h history window: that feature is NaN at every training step (it stopped 05
    with 'no finite samples to fit a logistic regression'); the model is fitted on the others, and says so."""
    from types import SimpleNamespace

    from flarelib.evaluate import baselines

    rng = np.random.default_rng(0)
    flux = 10 ** rng.uniform(-7, -5, 40)
    plan = SimpleNamespace(name="short", target=SimpleNamespace(flux=flux), index={"train": np.arange(30)})
    x = np.column_stack([np.log10(flux) + rng.normal(0, 0.1, 40), np.full(40, np.nan)])
    with caplog.at_level(logging.WARNING):
        probs = baselines._logistic_per_class(SimpleNamespace(plan=plan), x[:30], x, {"C": 1e-6})
    assert np.isfinite(probs["C"]).all() and probs["C"].shape == (40,)
    assert "1 of 2 history features have no value in the training block" in caplog.text


@pytest.mark.notebooks
def test_notebook_03_on_a_cube_without_targets_stops_naming_the_cause(no_target_cube, tmp_path, monkeypatch):
    """It stopped with xarray's KeyError "not all values found in index 'forecast'", then a ZeroDivisionError."""
    import papermill

    from flarelib import suite

    monkeypatch.setenv("FLARELIB_RESULTS", str(tmp_path / "results.json"))
    notebook = ROOT / "notebooks" / "03_explore_dataset.ipynb"
    with pytest.raises(papermill.PapermillExecutionError) as stopped:
        suite.run_notebook(notebook, tmp_path, "small", parameters={
            "CUBE": str(no_target_cube), "TARGETS": {"nowcast": "now", "forecast": "2min/2min"}})
    assert stopped.value.ename == "DataConfigError"
    assert stopped.value.evalue.startswith("no targets: cube mine has no now target")
