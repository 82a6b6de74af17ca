"""The measured run times: one table (docs/run_times.csv) that the README and every notebook header agree with."""

import math

import nbformat
import pandas as pd
import pytest

from conftest import ROOT
from flarelib import suite


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return pd.read_csv(suite.RUN_TIMES_DOC)


def test_the_table_has_every_notebook_and_the_data_build(table):
    assert list(table.columns) == suite.RUN_TIME_TABLE_COLUMNS
    assert set(table["step"]) == {"data build"} | {p.stem for p in suite.numbered_notebooks()}


def test_the_readme_table_is_generated_from_it(table):
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- run-times:begin -->\n", 1)[1].split("\n<!-- run-times:end -->", 1)[0]
    assert block == suite.run_time_markdown(table), "run python scripts/sync_run_times.py"


@pytest.mark.parametrize("path", suite.numbered_notebooks(), ids=lambda p: p.name)
def test_each_notebook_header_states_its_measured_time(table, path):
    row = table.set_index("step").loc[path.stem]
    header = nbformat.read(path, as_version=4).cells[0].source
    assert suite.notebook_run_time(row) in header, "run python scripts/sync_run_times.py"


@pytest.mark.parametrize("seconds, text", [(21.4, "21 s"), (119, "119 s"), (150, "2.5 min"), (math.nan, "–")])
def test_times_read_as_seconds_or_minutes(seconds, text):
    assert suite.format_seconds(seconds) == text


def test_a_suite_run_writes_its_times_and_memory(tmp_path, monkeypatch):
    monkeypatch.setenv("FLARELIB_RESULTS_DIR", str(tmp_path))
    path = suite.write_run_times({"01_x.ipynb": {"seconds": 3.5, "peak_rss_mb": 400}}, "small", data_seconds=12.0)
    written = pd.read_csv(path)
    assert list(written.columns) == suite.RUN_TIME_COLUMNS
    assert written["step"].tolist() == ["data build", "01_x"] and written["seconds"].tolist() == [12.0, 3.5]
