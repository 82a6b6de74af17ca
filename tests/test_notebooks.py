"""The notebooks: committed clean, one parameters cell, and every one runs top to bottom in small mode."""

import json

import nbformat
import pandas as pd
import pytest

from conftest import ROOT
from flarelib import evaluate, explain, paths, suite

NOTEBOOKS = suite.numbered_notebooks()


def test_there_are_numbered_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07", "08", "09", "10"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs_with_one_parameters_cell_and_stated_cost(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "strip outputs before committing"
    assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1
    first = nb.cells[0].source
    assert "Run time" in first and "Data" in first
    # papermill must read every parameter (an "=" in a comment makes it skip the line with a warning)
    from papermill.translators import PythonTranslator

    cell = next(c for c in code if "parameters" in c.metadata.get("tags", []))
    declared = [line.split("=")[0].strip() for line in cell.source.splitlines() if line[:1].isupper() and " = " in line]
    assert [p.name for p in PythonTranslator.inspect(cell)] == declared


#: Columns notebook 09 must write (the skill columns of each design and reference, and the lesson's own).
_LESSON_SKILL = ["dataset", "synthetic", "target", "predictor", "n_samples", "n_events", "TSS", "TSS_lo", "TSS_hi",
                 "AUC", "BSS", "lesson"]
LESSON_COLUMNS = {
    "long_vs_big": [*_LESSON_SKILL, "span_days", "window_start", "n_train", "n_train_events"],
    "imbalance": [*_LESSON_SKILL, "prob_threshold", "n_train"],
    "selection": [*_LESSON_SKILL, "test_on", "n_train"],
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_prose_has_no_internal_names(path):
    """Students read prose and titles: no layer names like ``features.9`` and no tracker jargon."""
    import re

    nb = nbformat.read(path, as_version=4)
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert not re.search(r"features\.\d", prose)
    assert not re.search(r"\bissues?\b(?!\s+time)", prose, re.I)  # "issue time" is the forecast term


BINDER_MEMORY_BYTES = 2 * 10**9  # mybinder.org: about 2 GB per user session


@pytest.mark.notebooks
def test_binder_like_run_prepare_then_every_notebook_in_small_mode_under_2_gb(tmp_path, monkeypatch):
    """What Binder does: postBuild's prepare step, then each notebook in small mode, each kernel's peak memory."""
    monkeypatch.setenv("FLARELIB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FLARELIB_RESULTS", str(tmp_path / "results.json"))
    monkeypatch.setenv("FLARELIB_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("FLARELIB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("FLARELIB_SIZE", "small")
    suite.prepare("small")
    assert (len(list((tmp_path / "runs").glob("small-synthetic-sun-small-*/now"))) == 1
            and (tmp_path / "data" / "synthetic-sun-small.zarr").exists())  # runs keyed by the cube's content
    runs = suite.run_suite("small", out_dir=tmp_path / "out")
    assert set(runs) == {p.name for p in NOTEBOOKS}
    print("\nBinder-like run, small mode (kernel peak RSS):")
    for name, run in runs.items():
        print(f"  {name}: {run['seconds']} s, {run['peak_rss_mb']} MiB")
    for name, run in runs.items():
        assert 50 < run["peak_rss_mb"], f"{name}: no kernel memory measured"
        assert run["peak_rss_mb"] * 2**20 < BINDER_MEMORY_BYTES, f"{name} needs {run['peak_rss_mb']} MiB"
    artifacts = ROOT / "build" / "test-artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "binder-like-run.json").write_text(json.dumps(runs, indent=1))  # the figures CI keeps
    # the small column of the README's run-time table: python scripts/sync_run_times.py <this file>
    (artifacts / "run_times-small.csv").write_bytes(suite.write_run_times(runs, "small").read_bytes())
    for path in NOTEBOOKS:
        executed = nbformat.read(tmp_path / "out" / path.name, as_version=4)
        errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        assert not errors
        html = (tmp_path / "out" / path.name).with_suffix(".html").read_text()
        assert "jupyter-js-widgets" not in html, "the HTML must not load the widget manager from a CDN"
    results = json.loads((tmp_path / "results.json").read_text())
    import re

    said = {key: value for key, value in results.items() if isinstance(value, str)}
    assert not [key for key, value in said.items() if re.search(r"\bnan\b", value, re.I)], "a sentence says nan"
    assert results["01 GOES-15 2011-06-07 peak"] == "M3.7"  # the SWPC-scaled M2.6 file, opened as science quality
    skill = pd.read_csv(tmp_path / "results" / "skill.csv")  # notebook 05's machine-readable table
    assert list(skill.columns) == evaluate.SKILL_COLUMNS
    assert {"FlareNet", "persistence", "flare-history persistence 24h", "climatology", "region photometry",
            "latent oracle"} <= set(skill["predictor"])
    assert set(skill["target"]) == {"now", "lead60min_window1440min"} and skill["synthetic"].all()
    assert "SYNTHETIC" in results["05 verdicts (paired ΔTSS, 90% intervals)"]
    paired = pd.read_csv(tmp_path / "results" / "paired.csv")  # notebook 05's verdicts, one row per pair
    assert list(paired.columns) == evaluate.PAIRED_COLUMNS and (paired["block_hours"] >= 24).all()
    assert {"climatology", "flare-history persistence 24h"} <= set(paired["reference"])
    localization = pd.read_csv(tmp_path / "results" / "localization.csv")  # notebook 06
    assert list(localization.columns) == explain.LOCALIZATION_COLUMNS
    assert {"gradcam", "hirescam", *explain.TRIVIAL_MAPS} <= set(localization["method"])
    assert (localization["mass_inside"] <= localization["mass_upper_bound"] + 1e-9).all()
    randomization = pd.read_csv(tmp_path / "results" / "randomization.csv")
    assert list(randomization.columns) == explain.RANDOMIZATION_COLUMNS
    for name, columns in LESSON_COLUMNS.items():  # notebook 09
        table = pd.read_csv(tmp_path / "results" / f"{name}.csv")
        assert set(columns) <= set(table.columns), name
        assert table["dataset"].str.startswith("SYNTHETIC").all()
    lessons = pd.read_csv(tmp_path / "results" / "lessons_paired.csv")
    assert set(evaluate.PAIRED_COLUMNS) <= set(lessons.columns) and set(lessons["lesson"]) == {
        "long vs big", "imbalance", "selection"}
    real_skill = pd.read_csv(tmp_path / "results" / "real_skill.csv")  # notebook 10
    assert list(real_skill.columns) == evaluate.SKILL_COLUMNS and not real_skill["synthetic"].any()
    assert {"McIntosh-Poisson", "climatology", "flare-history persistence 24h"} <= set(real_skill["predictor"])
    real_paired = pd.read_csv(tmp_path / "results" / "real_paired.csv")
    assert list(real_paired.columns) == evaluate.PAIRED_COLUMNS
    assert (tmp_path / "animations" / "saliency-small.gif").stat().st_size > 0
    assert (tmp_path / "data" / "saliency-small.zarr").is_dir()

    # running everything twice must work: the second run finds every store, checkpoint and result in place
    again = suite.run_suite("small", out_dir=tmp_path / "out-again")
    for path in NOTEBOOKS:
        executed = nbformat.read(tmp_path / "out-again" / path.name, as_version=4)
        assert not [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    print("second run:", {name: run["seconds"] for name, run in again.items()})


@pytest.mark.slow
def test_peak_memory_sees_a_child_process_allocate():
    import subprocess
    import sys

    with suite.PeakMemory() as memory:
        subprocess.run([sys.executable, "-c", "import time; b = bytearray(300 * 2**20); "
                        "b[::4096] = b'x' * len(b[::4096]); time.sleep(0.5)"], check=True)
    assert 300 * 2**20 < memory.peak_bytes < 600 * 2**20


def test_notebook_size_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("FLARELIB_SIZE", raising=False)
    assert paths.default_size() == "small"
    monkeypatch.setenv("FLARELIB_SIZE", "default")
    assert paths.default_size() == "default"
    monkeypatch.setenv("FLARELIB_SIZE", "huge")
    with pytest.raises(ValueError, match="FLARELIB_SIZE"):
        paths.default_size()


def test_notebooks_do_not_import_the_suite_that_runs_them():
    for path in suite.numbered_notebooks():
        code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        assert "flarelib.suite" not in code and "import suite" not in code, path.name


@pytest.mark.notebooks
def test_notebooks_03_to_05_run_on_another_cube(tmp_path, monkeypatch, catalog):
    """A researcher's own cube through the CUBE parameter: here a small synthetic sun with another seed."""
    import dataclasses

    from flarelib.cube import synthetic

    for name in ("DATA_DIR", "RUNS_DIR", "RESULTS_DIR"):
        monkeypatch.setenv(f"FLARELIB_{name}", str(tmp_path / name.lower()))
    monkeypatch.setenv("FLARELIB_RESULTS", str(tmp_path / "results.json"))
    cube = synthetic.build_synthetic_cube(tmp_path / "own-sun.zarr",
                                          dataclasses.replace(synthetic.SIZES["small"], seed=7),
                                          catalog.files("fulldisk-2014-01-01"), name="own-sun", progress=False)
    for path in NOTEBOOKS:
        if path.name[:2] in ("03", "04", "05"):
            executed, _ = suite.run_notebook(path, tmp_path / "out", "small", parameters={"CUBE": str(cube)})
            assert str(cube) in executed.read_text() or "own-sun" in executed.read_text()
    # its own checkpoints, not the shipped cube's: the run folder is keyed by the cube's name and content
    assert len(list((tmp_path / "runs_dir").glob("small-own-sun-*/now"))) == 1
    skill = pd.read_csv(tmp_path / "results_dir" / "skill.csv")
    assert skill["dataset"].str.contains("own-sun").all()
