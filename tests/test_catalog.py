"""data_catalog.yaml: validation, checksums, kinds, and opening entries."""

import json
import shutil

import pytest
import yaml

from flarelib.cube.catalog import CatalogError, load_catalog
from tests.conftest import ROOT


def _write(tmp_path, entries, copy_data=False):
    if copy_data:
        shutil.copytree(ROOT / "data", tmp_path / "data")
    path = tmp_path / "data_catalog.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "entries": entries}))
    return path


def _entry(name):
    return yaml.safe_load((ROOT / "data_catalog.yaml").read_text())["entries"][name]


def test_the_project_catalog_is_valid_and_labels_synthetic_data(catalog):
    assert {"sample-flare-2011-02-15", "fulldisk-2014-01-01", "goes15-2011-06-07",
            "synthetic-sun-small", "synthetic-sun-default"} <= set(catalog.names())
    for name in catalog.names():
        entry = catalog[name]
        assert entry.synthetic == ("SYNTHETIC" in entry.spec["description"])
        assert entry.spec["licence"] and entry.spec["citation"]


def test_every_real_file_matches_its_checksum(catalog):
    for name in catalog.names("aia_fits") + catalog.names("goes_xrs"):
        assert catalog.files(name)


def test_unknown_kind_names_entry_and_field(tmp_path):
    bad = dict(_entry("goes15-2011-06-07"), kind="ftp_mirror")
    with pytest.raises(CatalogError, match=r"entry 'x', field kind"):
        load_catalog(_write(tmp_path, {"x": bad}))


def test_missing_required_field_names_it(tmp_path):
    bad = dict(_entry("sample-flare-2011-02-15"))
    del bad["channels"]
    with pytest.raises(CatalogError, match=r"entry 'x', field channels"):
        load_catalog(_write(tmp_path, {"x": bad}))


def test_misspelled_field_and_bad_sha_format(tmp_path):
    bad = dict(_entry("goes15-2011-06-07"), licnese="oops")
    with pytest.raises(CatalogError, match=r"entry 'x', field licnese"):
        load_catalog(_write(tmp_path, {"x": bad}))
    bad = dict(_entry("goes15-2011-06-07"), sha256="abc")
    with pytest.raises(CatalogError, match=r"entry 'x', field sha256"):
        load_catalog(_write(tmp_path, {"x": bad}))


def test_synthetic_entry_must_say_it_is_synthetic(tmp_path):
    bad = dict(_entry("synthetic-sun-small"), synthetic=False)
    entries = {"fulldisk-2014-01-01": _entry("fulldisk-2014-01-01"), "x": bad}
    with pytest.raises(CatalogError, match=r"entry 'x', field synthetic"):
        load_catalog(_write(tmp_path, entries))


def test_checksum_mismatch_names_entry_and_file(tmp_path):
    path = _write(tmp_path, {"flare": _entry("sample-flare-2011-02-15")}, copy_data=True)
    victim = tmp_path / "data/real/aia_flare_2011-02-15/aia_flare_2011-02-15T01-50-02_094.fits"
    data = bytearray(victim.read_bytes())
    data[-10] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(CatalogError, match=r"entry 'flare', field checksums: .*01-50-02_094.fits.*does not match"):
        load_catalog(path).files("flare")


def test_tampered_checksum_list_is_caught(tmp_path):
    path = _write(tmp_path, {"flare": _entry("sample-flare-2011-02-15")}, copy_data=True)
    sums = tmp_path / "data/real/aia_flare_2011-02-15/SHA256SUMS"
    sums.write_text(sums.read_text().replace("aia_flare_2011-02-15T01-44-00_211.fits\n", "", 1))
    with pytest.raises(CatalogError, match=r"entry 'flare', field sha256"):
        load_catalog(path).files("flare")


def test_network_kinds_need_a_query_and_a_time_range_and_have_no_file_list(tmp_path):
    entry = {"kind": "hek_events", "description": "HEK flares, 2011-02", "synthetic": False, "licence": "public",
             "citation": "HEK", "query": {"observatory": "SWPC"}}
    with pytest.raises(CatalogError, match=r"entry 'hek', field time_range"):
        load_catalog(_write(tmp_path, {"hek": entry}))
    entry["time_range"] = ["2011-02-01T00:00", "2011-03-01T00:00"]
    cat = load_catalog(_write(tmp_path, {"hek": entry}))
    with pytest.raises(CatalogError, match="no file list"):
        cat.files("hek")
    with pytest.raises(CatalogError, match="not built into cubes"):
        cat.build("hek", build_dir=tmp_path / "b")


def test_hek_entry_reuses_its_saved_events_offline(tmp_path):
    entry = {"kind": "hek_events", "description": "HEK flares", "synthetic": False, "licence": "public",
             "citation": "HEK", "query": {}, "time_range": ["2011-02-15T00:00", "2011-02-16T00:00"]}
    cat = load_catalog(_write(tmp_path, {"hek": entry}))
    saved = cat.download_dir("hek", tmp_path / "b") / "events.json"
    saved.parent.mkdir(parents=True)
    event = {"start": "2011-02-15T01:44:00", "peak": "2011-02-15T01:56:00", "end": "2011-02-15T02:06:00",
             "goes_class": "X2.2", "noaa_ar": 11158, "source": "HEK (NOAA/SWPC)"}
    saved.write_text(json.dumps({"catalog_spec": cat["hek"].fingerprint, "events": [event]}))
    assert cat.open("hek", build_dir=tmp_path / "b").event_class.values.tolist() == ["X2.2"]


def test_unknown_entry_and_bad_generator(tmp_path, catalog):
    with pytest.raises(CatalogError, match="no catalog entry"):
        catalog["nope"]
    bad = dict(_entry("synthetic-sun-small"), generator={"size": "huge"})
    entries = {"fulldisk-2014-01-01": _entry("fulldisk-2014-01-01"), "x": bad}
    cat = load_catalog(_write(tmp_path, entries, copy_data=True))
    with pytest.raises(CatalogError, match=r"entry 'x', field generator.size"):
        cat.build("x", build_dir=tmp_path / "b")


def test_open_goes_and_real_cube(tmp_path, catalog):
    xrs = catalog.open("goes15-2011-06-07")
    # the file is SWPC-scaled; the catalog hands out science quality, the basis every target uses
    assert xrs.attrs["goes_scaling"] == "science-quality" and "swpc-scaled" in xrs.attrs["converted_from"]
    cube = catalog.open("fulldisk-2014-01-01", build_dir=tmp_path, progress=False)
    assert dict(cube.sizes)["y"] == 256 and cube.attrs["licence"]


def test_a_catalog_with_an_entry_given_twice_or_broken_yaml_is_refused_naming_file_line_and_column(tmp_path):
    path = tmp_path / "data_catalog.yaml"
    path.write_text("version: 1\nentries:\n  flare:\n    kind: aia_fits\n  flare:\n    kind: goes_xrs\n")
    with pytest.raises(CatalogError, match=r"data_catalog.yaml:5:3: key 'flare' is given twice.*lines 3 and 5"):
        load_catalog(path)
    path.write_text("version: 1\nentries:\n  flare: [unclosed\n")
    with pytest.raises(CatalogError, match=r"data_catalog.yaml:\d+:\d+: "):
        load_catalog(path)
