"""The acquisition stage's network boundary: downloads against a real local HTTP server, Fido result
handling, query construction for Fido/JSOC/HEK offline, and the live calls marked ``remote_data``."""

import logging
import shutil

import numpy as np
import pytest
from astropy.table import Table

from conftest import FLARE_DIR, GOES_DIR
from flarelib.checksums import read_checksums, sha256_of
from flarelib.cube import acquire

AIA = sorted(FLARE_DIR.glob("*_171.fits"))[:3]
GOES_FILE = GOES_DIR / "sci_xrsf-l2-avg1m_g16_d20210101_truncated.nc"


def serve(server, paths):
    for p in paths:
        shutil.copyfile(p, server.root / p.name)
    return [{"url": f"{server.url}/{p.name}", "filename": p.name, "sha256": None} for p in paths]


def test_download_verifies_records_and_skips_what_it_has(file_server, tmp_path):
    requests = serve(file_server, AIA)
    paths = acquire.download_files(requests, tmp_path / "dl", verify=acquire.verify_aia_fits)
    assert [p.name for p in paths] == [p.name for p in AIA]
    assert all(p.read_bytes() == src.read_bytes() for p, src in zip(paths, AIA))
    sums = read_checksums(tmp_path / "dl" / "SHA256SUMS")
    assert sums == {p.name: sha256_of(p) for p in AIA}
    hits = dict(file_server.hits)
    acquire.download_files(requests, tmp_path / "dl", verify=acquire.verify_aia_fits)
    assert file_server.hits == hits  # complete, verified files are not fetched again


def test_a_transfer_cut_off_mid_file_is_fetched_again(file_server, tmp_path):
    requests = serve(file_server, AIA)
    file_server.faults[AIA[1].name] = ("truncate", 2)
    paths = acquire.download_files(requests, tmp_path / "dl", verify=acquire.verify_aia_fits)
    assert paths[1].read_bytes() == AIA[1].read_bytes()
    assert file_server.hits[AIA[1].name] > 2 == file_server.hits[AIA[0].name]  # fetched again after the cut


def test_a_partial_file_left_by_a_killed_run_is_detected_and_refetched(file_server, tmp_path):
    requests = serve(file_server, AIA)
    dest = tmp_path / "dl"
    dest.mkdir()
    (dest / AIA[0].name).write_bytes(AIA[0].read_bytes()[:5000])  # what a SIGKILL mid-transfer leaves
    paths = acquire.download_files(requests, dest, verify=acquire.verify_aia_fits)
    assert paths[0].read_bytes() == AIA[0].read_bytes()
    assert file_server.hits[AIA[0].name] == file_server.hits[AIA[1].name]


def test_a_corrupt_download_is_caught_by_its_checksum_and_refetched(file_server, tmp_path):
    requests = serve(file_server, AIA)
    for r, p in zip(requests, AIA):
        r["sha256"] = sha256_of(p)
    file_server.faults[AIA[2].name] = ("corrupt", 2)
    paths = acquire.download_files(requests, tmp_path / "dl")
    assert sha256_of(paths[2]) == requests[2]["sha256"]
    assert file_server.hits[AIA[2].name] > 2 == file_server.hits[AIA[0].name]


def test_a_corrupt_download_without_checksum_is_caught_by_the_format_check(file_server, tmp_path):
    requests = serve(file_server, [GOES_FILE])
    file_server.faults[GOES_FILE.name] = ("corrupt", 2)
    (path,) = acquire.download_files(requests, tmp_path / "dl", verify=acquire.verify_goes_file)
    assert path.read_bytes() == GOES_FILE.read_bytes()
    assert file_server.hits[GOES_FILE.name] > 2  # the corrupt copy was served, caught and replaced


def test_persistent_failures_raise_and_keep_the_good_files(file_server, tmp_path):
    requests = serve(file_server, AIA[:2])
    file_server.faults[AIA[1].name] = ("corrupt", 99)
    with pytest.raises(acquire.DownloadError, match="1 file") as err:
        acquire.download_files(requests, tmp_path / "dl", verify=acquire.verify_aia_fits, max_tries=2)
    assert err.value.failed == [AIA[1].name]
    assert (tmp_path / "dl" / AIA[0].name).read_bytes() == AIA[0].read_bytes()
    assert not (tmp_path / "dl" / AIA[1].name).exists()


def xrs_results(server, names):
    """A real sunpy XRSClient result table whose URLs point at the local server."""
    from astropy.time import Time
    from sunpy.net.dataretriever import XRSClient
    from sunpy.net.dataretriever.client import QueryResponse
    from sunpy.net.fido_factory import UnifiedResponse

    rows = {"Start Time": Time(["2021-01-01T00:00"] * len(names)), "End Time": Time(["2021-01-01T23:59"] * len(names)),
            "Instrument": ["XRS"] * len(names), "Resolution": ["avg1m"] * len(names),
            "url": [f"{server.url}/{n}" for n in names]}
    return UnifiedResponse(QueryResponse(Table(rows), client=XRSClient()))


def test_fido_fetch_of_goes_results_is_verified_and_loads_as_science_quality(file_server, tmp_path):
    serve(file_server, [GOES_FILE])
    file_server.faults[GOES_FILE.name] = ("truncate", 2)
    xrs = acquire.fetch_goes(["2021-01-01T22:00", "2021-01-02T00:00"], tmp_path / "goes",
                             results=xrs_results(file_server, [GOES_FILE.name]))
    assert xrs.attrs["goes_scaling"] == "science-quality"
    assert xrs.attrs["goes_satellite"] == "GOES-16"
    assert xrs.sizes["time"] == 100 and np.nanmax(xrs.xrsb.values) > 0
    assert file_server.hits[GOES_FILE.name] > 2
    assert GOES_FILE.name in read_checksums(tmp_path / "goes" / "SHA256SUMS")


def test_swpc_scaled_goes_is_converted_before_it_meets_science_quality(file_server, tmp_path):
    scaled = GOES_DIR / "go1520110607.fits"
    serve(file_server, [scaled])
    xrs = acquire.fetch_goes(["2011-06-07T00:00", "2011-06-07T23:59"], tmp_path / "goes",
                             results=xrs_results(file_server, [scaled.name]))
    assert xrs.attrs["goes_scaling"] == "science-quality"
    assert "swpc-scaled" in xrs.attrs["converted_from"]
    assert 3.6e-5 < float(xrs.xrsb.max()) < 3.7e-5  # M2.6 in SWPC units is 2.56e-5 / 0.7


def test_aia_query_names_instrument_wavelengths_and_sample():
    import astropy.units as u
    from sunpy.net import attrs as a

    query = acquire.aia_query(["2011-02-15T01:00", "2011-02-15T02:00"], [94, 171], "12min")
    time, instrument, wavelengths, sample = query
    assert time.start.isot == "2011-02-15T01:00:00.000" and time.end.isot == "2011-02-15T02:00:00.000"
    assert instrument.value == "AIA"
    assert [w.min.to_value(u.AA) for w in wavelengths.attrs] == [94, 171]
    assert isinstance(sample, a.Sample) and sample.value == 720
    assert len(acquire.aia_query(["2011-02-15T01:00", "2011-02-15T02:00"], [94])) == 3
    with pytest.raises(ValueError, match="start must be before end"):
        acquire.aia_query(["2011-02-15T02:00", "2011-02-15T01:00"], [94])


def test_goes_and_hek_queries():
    query = acquire.goes_query(["2011-02-15", "2011-02-16"], satellite=15)
    assert [type(q).__name__ for q in query] == ["Time", "Instrument", "Resolution", "SatelliteNumber"]
    assert query[2].value == "avg1m" and query[3].value == 15
    with pytest.raises(ValueError, match="avg1m"):
        acquire.goes_query(["2011-02-15", "2011-02-16"], resolution="1m")
    time, event_type, frm = acquire.hek_flare_query(["2011-02-15", "2011-02-16"])
    assert event_type.item == "FL" and frm.value == "SWPC"


def test_jsoc_query_and_email_handling(monkeypatch, caplog):
    assert (acquire.jsoc_query(["2011-02-15T00:00", "2011-02-15T06:00"], [94, 131], "12min")
            == "aia.lev1_euv_12s[2011-02-15T00:00:00Z/6h@12m][94,131]{image}")
    assert (acquire.jsoc_query(["2011-02-15T00:00", "2011-02-15T00:30"], [171], "45s", series="aia.lev1_uv_24s")
            == "aia.lev1_uv_24s[2011-02-15T00:00:00Z/30m@45s][171]{image}")
    monkeypatch.delenv(acquire.JSOC_EMAIL_ENV, raising=False)
    with pytest.raises(RuntimeError, match="JSOC_EMAIL"):
        acquire.jsoc_email()
    monkeypatch.setenv(acquire.JSOC_EMAIL_ENV, "someone@example.org")
    with caplog.at_level(logging.DEBUG):
        assert acquire.jsoc_email() == "someone@example.org"
    assert "someone@example.org" not in caplog.text


def test_jsoc_export_table_is_downloaded_and_verified(file_server, tmp_path):
    import pandas as pd

    serve(file_server, AIA)
    urls = pd.DataFrame({"record": [f"aia.lev1_euv_12s[{k}]" for k in range(3)], "filename": [p.name for p in AIA],
                         "url": [f"{file_server.url}/{p.name}" for p in AIA]})
    file_server.faults[AIA[0].name] = ("truncate", 2)
    paths = acquire.download_files(acquire.jsoc_requests(urls), tmp_path / "jsoc", verify=acquire.verify_aia_fits)
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in AIA]


def test_hek_rows_become_events_with_bad_rows_skipped(caplog):
    from astropy.time import Time

    # rows shaped like a HEK result (columns as sunpy's HEKTable has them); values hand-made for the test
    table = Table({
        "event_starttime": Time(["2011-02-15T01:44", "2011-02-14T17:20", "2011-02-15T01:44", "2011-02-15T04:00"]),
        "event_peaktime": Time(["2011-02-15T01:56", "2011-02-14T17:26", "2011-02-15T01:56", "2011-02-15T04:10"]),
        "event_endtime": Time(["2011-02-15T02:06", "2011-02-14T17:32", "2011-02-15T02:06", "2011-02-15T04:20"]),
        "fl_goescls": ["X2.2", "M2.2", "X2.2", ""],
        "ar_noaanum": [11158, 11158, 11158, 0],
    })
    with caplog.at_level(logging.INFO):
        events = acquire.flare_events(table)
    assert [e["goes_class"] for e in events] == ["M2.2", "X2.2"]
    assert events[1]["noaa_ar"] == 11158 and events[1]["peak"].startswith("2011-02-15T01:56")
    assert "skip HEK flare row 3" in caplog.text and "duplicate" in caplog.text
    from flarelib.cube.align import events_dataset

    assert events_dataset(events).event_class.values.tolist() == ["M2.2", "X2.2"]


# ----------------------------------------------------------------------------- live archives

@pytest.mark.remote_data
def test_live_fido_aia_search_finds_the_x22_flare_frames():
    results = acquire.search_aia(["2011-02-15T01:50", "2011-02-15T02:00"], [171], "12min")
    assert results.file_num >= 1


@pytest.mark.remote_data
def test_live_goes_fetch(tmp_path):
    xrs = acquire.fetch_goes(["2011-02-15T00:00", "2011-02-15T03:00"], tmp_path, satellite=15)
    assert float(xrs.xrsb.max()) > 1e-4  # the X2.2 flare


@pytest.mark.remote_data
def test_live_hek_lists_the_x22_flare():
    events = acquire.search_flare_events(["2011-02-15T00:00", "2011-02-15T03:00"])
    assert "X2.2" in [e["goes_class"] for e in events]


@pytest.mark.remote_data
def test_live_sdoml_v2_has_the_documented_layout():
    from flarelib.cube import sdoml

    group = sdoml.open_sdoml()
    assert "171A" in group["2011"]
    assert "T_OBS" in group["2011"]["171A"].attrs


def test_preview_lists_every_archive_and_skips_unreachable_ones(monkeypatch):
    monkeypatch.setattr(acquire, "reachable", lambda host, **kw: host == "www.lmsal.com")
    monkeypatch.setattr(acquire, "search_flare_events", lambda tr: [
        {"goes_class": "M6.6"}, {"goes_class": "X2.2"}, {"goes_class": "C1.0"}])
    table = acquire.preview_archives(["2011-02-15T00:00", "2011-02-15T06:00"], [171])
    assert list(table.index) == list(acquire.ARCHIVE_HOSTS)
    assert table.loc["flare events (HEK)", "found"] == "3 flares, strongest X2.2"
    assert table.loc["AIA (Fido: VSO/JSOC)", "found"].startswith("skipped: vso.nascom.nasa.gov")
    assert "Wavelength(171.0" in table.loc["AIA (Fido: VSO/JSOC)", "query"]
    monkeypatch.setattr(acquire, "reachable", lambda host, **kw: True)
    monkeypatch.setattr(acquire, "search_aia", lambda *a: (_ for _ in ()).throw(ConnectionError("refused")))
    monkeypatch.setattr(acquire, "_count_fido", lambda q: "2 files")
    monkeypatch.setattr(acquire, "_count_sdoml", lambda tr, ch: "9 frames")
    table = acquire.preview_archives(["2011-02-15T00:00", "2011-02-15T06:00"], [171])
    assert table.loc["AIA (Fido: VSO/JSOC)", "found"] == "error: ConnectionError: refused"
    assert table.loc["SDOML v2 (S3)", "found"] == "9 frames"


def test_a_jsoc_tar_bundle_is_unpacked_verified_and_recorded(tmp_path):
    import tarfile

    bundle = tmp_path / "export.tar"
    with tarfile.open(bundle, "w") as tar:
        for p in AIA:
            tar.add(p, arcname=p.name)
    paths = acquire.unpack_export([bundle], tmp_path / "out")
    assert [p.name for p in paths] == [p.name for p in AIA]
    assert set(read_checksums(tmp_path / "out" / "SHA256SUMS")) == {p.name for p in AIA}
    broken = tmp_path / "broken.tar"
    with tarfile.open(broken, "w") as tar:
        cut = tmp_path / AIA[0].name
        cut.write_bytes(AIA[0].read_bytes()[:6000])
        tar.add(cut, arcname="cut.fits")
    with pytest.raises(acquire.DownloadError, match="broken.tar:cut.fits"):
        acquire.unpack_export([broken], tmp_path / "out2")


def test_hek_events_mark_the_goes_plot(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from flarelib.cube.align import events_dataset
    from flarelib.cube.goes import load_xrs
    from flarelib.show import plotting

    xrs = load_xrs(GOES_DIR / "go1520110607.fits")
    events = events_dataset([
        {"start": "2011-06-07T06:16", "peak": "2011-06-07T06:41", "end": "2011-06-07T06:59", "goes_class": "M2.5"},
        {"start": "2011-06-08T03:00", "peak": "2011-06-08T03:10", "end": "2011-06-08T03:20", "goes_class": "C1.0"}])
    ax = plotting.plot_goes(xrs, events=events)
    labels = [t.get_text() for t in ax.texts]
    assert "M2.5" in labels and "C1.0" not in labels  # only events inside the light curve's span


@pytest.mark.remote_data
def test_live_jsoc_export_of_one_frame(tmp_path):
    if not acquire.os.environ.get(acquire.JSOC_EMAIL_ENV):
        pytest.skip("set JSOC_EMAIL to a registered address to run the live JSOC export")
    query = acquire.jsoc_query(["2011-02-15T01:56", "2011-02-15T01:57"], [171], "1min")
    paths = acquire.jsoc_export(query, tmp_path)
    assert paths and all(p.suffix == ".fits" for p in paths)


def test_a_leftover_file_that_cannot_be_checked_is_not_trusted(file_server, tmp_path):
    requests = serve(file_server, AIA[:1])
    dest = tmp_path / "dl"
    dest.mkdir()
    (dest / AIA[0].name).write_bytes(b"half a file")
    (path,) = acquire.download_files(requests, dest)  # no sha256, no verify
    assert path.read_bytes() == AIA[0].read_bytes()
