"""The notebooks: committed clean, one parameters cell, and every one runs top to bottom in small mode."""

import json

import nbformat
import pytest

from flarelib import suite

NOTEBOOKS = suite.numbered_notebooks()


def test_there_are_numbered_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07", "08"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs_with_one_parameters_cell_and_stated_cost(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "strip outputs before committing"
    assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1
    first = nb.cells[0].source
    assert "Run time" in first and "Data" in first


@pytest.mark.notebooks
def test_the_suite_runs_in_small_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("FLARELIB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FLARELIB_RESULTS", str(tmp_path / "results.json"))
    monkeypatch.setenv("FLARELIB_RUNS_DIR", str(tmp_path / "runs"))
    timings = suite.run_suite("small", out_dir=tmp_path / "out")
    assert set(timings) == {p.name for p in NOTEBOOKS}
    for path in NOTEBOOKS:
        executed = nbformat.read(tmp_path / "out" / path.name, as_version=4)
        errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        assert not errors
        assert (tmp_path / "out" / path.name).with_suffix(".html").exists()
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["01 GOES-15 2011-06-07 peak"] == "M2.6"
    assert (tmp_path / "data" / "synthetic-sun-small.zarr").exists()
    table = results["05 skill table (test block)"]
    for predictor in ("FlareNet", "persistence", "climatology", "brightest pixel"):
        assert predictor in table
    assert results["05 dataset"].startswith("SYNTHETIC")
    assert (tmp_path / "runs" / "small" / "now").is_dir()
    assert set(results["06 localization (mass inside mask, pointing game)"]) == {
        "saliency", "integrated_gradients", "smoothgrad", "gradcam", "guided_gradcam", "occlusion"}
    assert (tmp_path / "animations" / "saliency-small.gif").stat().st_size > 0
    assert (tmp_path / "data" / "saliency-small.zarr").is_dir()
