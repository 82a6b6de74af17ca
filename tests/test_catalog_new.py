"""``flarelib catalog new NAME --from FOLDER``: a complete entry for a folder of AIA files; unlisted files and
cubes without targets are said, not silent."""

import json
import logging
import shutil

import pytest
import yaml

from flarelib import cli
from flarelib.checksums import read_checksums, sha256_of
from flarelib.cube import catalog as catalog_mod
from flarelib.cube.catalog import FILL_IN, CatalogError, load_catalog, new_entry
from flarelib.cube.store import read_attrs
from tests.conftest import FLARE_DIR, FLARE_EVENT, ROOT


@pytest.fixture
def own(tmp_path):
    """A catalog copy and a folder of 18 real AIA frames (3 steps x 6 channels, 2 min apart)."""
    folder = tmp_path / "my_fits"
    folder.mkdir()
    for f in sorted(FLARE_DIR.glob("*.fits"))[:18]:
        shutil.copyfile(f, folder / f.name)
    cat = tmp_path / "data_catalog.yaml"
    shutil.copyfile(ROOT / "data_catalog.yaml", cat)
    return folder, cat


def test_new_writes_a_complete_valid_entry_and_says_what_it_could_not_guess(own, capsys):
    folder, cat = own
    assert cli.main(["catalog", "new", "mine", "--from", str(folder), "--catalog", str(cat)]) == 0
    out = capsys.readouterr().out
    entry = load_catalog(cat)["mine"]
    spec = entry.spec
    assert spec["kind"] == "aia_fits" and spec["synthetic"] is False
    assert spec["channels"] == [94, 131, 171, 193, 211, 335]
    assert spec["time_range"][0] == "2011-02-15T01:44:00" and spec["time_range"][1] > "2011-02-15T01:48:14"
    assert spec["cube"]["cadence"] == "2min"
    assert sha256_of(folder / "SHA256SUMS") == spec["sha256"]
    assert set(read_checksums(folder / "SHA256SUMS")) == {f.name for f in folder.glob("*.fits")}
    assert FILL_IN in spec["licence"] and FILL_IN in spec["citation"]
    assert "fill in: licence and citation" in out and "targets: none" in out and "guessed: cube.cadence 2min" in out
    assert len(load_catalog(cat).entries) == len(load_catalog(ROOT / "data_catalog.yaml").entries) + 1
    assert cli.main(["catalog", "new", "mine", "--from", str(folder), "--catalog", str(cat)]) == 1
    assert "already exists" in capsys.readouterr().err
    # --force replaces it (one entry, now with the event list and a forecast of our choosing)
    events = folder.parent / "events.yaml"
    events.write_text(yaml.safe_dump([FLARE_EVENT]))
    assert cli.main(["catalog", "new", "mine", "--from", str(folder), "--catalog", str(cat), "--events", str(events),
                     "--forecast", "2min/4min", "--force"]) == 0
    assert cat.read_text().count("\n  mine:") == 1
    spec = load_catalog(cat)["mine"].spec
    assert spec["cube"]["forecasts"] == [["2min", "4min"]] and spec["cube"]["events"][0]["goes_class"] == "X2.2"


def test_new_refuses_goes_data_of_other_days_and_a_checksum_list_that_disagrees(own):
    folder, cat = own
    with pytest.raises(CatalogError, match="goes15-2011-06-07: covers 2011-06-07"):
        new_entry("mine", folder, catalog=cat, goes_from="goes15-2011-06-07")
    with pytest.raises(CatalogError, match="not GOES XRS"):
        new_entry("mine", folder, catalog=cat, goes_from="fulldisk-2014-01-01")
    (folder / "SHA256SUMS").write_text(f"{'0' * 64}  other.fits\n")
    with pytest.raises(CatalogError, match="lists other files"):
        new_entry("mine", folder, catalog=cat)
    assert "mine" not in load_catalog(cat).entries
    with pytest.raises(CatalogError, match="no file matches"):
        new_entry("mine", folder, catalog=cat, pattern="*.fts")


def test_a_file_not_in_the_checksum_list_is_a_logged_skip_and_no_targets_warn(own, tmp_path, caplog):
    folder, cat = own
    new_entry("mine", folder, catalog=cat)
    shutil.copyfile(folder / sorted(p.name for p in folder.glob("*.fits"))[0], folder / "late_arrival.fits")
    with caplog.at_level(logging.WARNING):
        status = cli.main(["catalog", "build", "mine", "--catalog", str(cat), "--build-dir", str(tmp_path / "cubes")])
    assert status == 0
    out = load_catalog(cat).cube_path("mine", tmp_path / "cubes")
    skipped = [s for s in json.loads(read_attrs(out)["skipped_inputs"]) if s["source"] == "late_arrival.fits"]
    assert len(skipped) == 1 and skipped[0]["reason"] == "not-listed"
    assert "not listed in SHA256SUMS" in skipped[0]["detail"]
    assert "skip late_arrival.fits: not listed in SHA256SUMS" in caplog.text
    assert "NO TARGETS" in caplog.text and "target_source: none" in caplog.text
    assert "still say 'FILL IN'" in caplog.text
    assert [s.source for s in catalog_mod.unlisted_files(load_catalog(cat)["mine"])] == ["late_arrival.fits"]
