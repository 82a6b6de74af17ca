"""Acquisition: getting input files and proving they are the ones we expect.

* Local files: the embedded data under ``data/real`` and any folder a catalog entry points
  at, verified against sha256 checksum lists.
* Downloads: :func:`download_files` (URLs, e.g. a JSOC export) and :func:`fido_fetch`
  (a ``Fido.search`` result) use parfive, check every file (sha256 where known, else a
  format check such as :func:`verify_aia_fits`), refetch what is missing or corrupt, and
  record what they got in ``SHA256SUMS``.
* AIA through sunpy Fido (:func:`aia_query`) or a JSOC export through drms
  (:func:`jsoc_query`, :func:`jsoc_export`, e-mail from ``$JSOC_EMAIL``).
* GOES XRS through Fido (:func:`goes_query`, :func:`fetch_goes`), keeping the SWPC-scaled
  vs science-quality record.
* Flare events from HEK (:func:`hek_flare_query`, :func:`flare_events`).
* SDOML v2 on S3 lives in :mod:`flarelib.cube.sdoml`.

Everything that talks to a remote archive needs the network; its tests are marked
``remote_data``. Query construction, result handling and downloads are tested offline
against local servers.
"""

from __future__ import annotations

import logging
import os
import socket
import tarfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import xarray as xr
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning

from flarelib.checksums import sha256_of, write_checksums
from flarelib.cube import goes, prep, sdoml

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- downloads

class DownloadError(RuntimeError):
    """Some files could not be fetched and verified after every try; the good ones are kept."""

    def __init__(self, message: str, failed: list[str]):
        super().__init__(message)
        self.failed = failed


def verify_aia_fits(path: str | Path) -> None:
    """Raise ``ValueError`` unless ``path`` is a complete, readable AIA FITS file.

    Uses :func:`flarelib.cube.prep.read_frame_info` (truncation, missing keywords, all-NaN
    data) plus the FITS ``DATASUM``/``CHECKSUM`` cards where the file carries them. The pixel
    :class:`flarelib.cube.prep.SanityRules` are not applied here (a refetch cannot change the
    pixels): the ingest applies them, and skips such frames with a logged reason.
    """
    try:
        prep.read_frame_info(path, sanity=None)
    except prep.BadFrameError as err:
        raise ValueError(str(err)) from err
    with warnings.catch_warnings():
        warnings.simplefilter("error", AstropyUserWarning)
        try:
            with fits.open(path, checksum=True, memmap=False) as hdul:
                for hdu in hdul:
                    _ = hdu.data
        except AstropyUserWarning as warning:
            if "checksum" in str(warning).lower() or "datasum" in str(warning).lower():
                raise ValueError(f"{Path(path).name}: {warning}") from None


def verify_goes_file(path: str | Path) -> None:
    """Raise ``ValueError`` unless ``path`` opens as a GOES XRS file with samples."""
    try:
        goes.load_xrs(path)
    except goes.GOESDataError as err:
        raise ValueError(str(err)) from err


def _passes(path: Path, verify: Callable[[Path], None] | None) -> bool:
    """True when ``verify`` accepts the file; a rejected file is deleted (so it is fetched again)."""
    try:
        if verify is not None:
            verify(path)
    except ValueError as err:
        log.warning("corrupt download %s (%s): removed, will refetch", path.name, err)
        path.unlink(missing_ok=True)
        return False
    return True


def _failed_names(results) -> list[str]:
    return [str(err.url) for err in results.errors]


def download_files(
    requests: Sequence[dict],
    dest: str | Path,
    *,
    verify: Callable[[Path], None] | None = None,
    max_tries: int = 3,
    max_conn: int = 4,
    progress: bool = False,
) -> list[Path]:
    """Fetch URLs with :mod:`parfive`, check every file, refetch what failed; resumable.

    Parameters
    ----------
    requests
        ``{"url": ..., "filename": ..., "sha256": hex or None}`` per file.
    dest
        Download folder. Files already there are kept when they pass the check (their
        sha256 where one is given, else ``verify``; with neither they are fetched again):
        rerunning after an interruption fetches only what is missing or bad. A file cut off mid-transfer fails the
        check and is fetched again from the start (parfive does not resume inside a file).
    verify
        ``verify(path)`` raises ``ValueError`` for a bad file (e.g. :func:`verify_aia_fits`).

    Returns the verified paths in request order and records them in ``dest/SHA256SUMS``.
    Raises :class:`DownloadError` naming the files still bad after ``max_tries`` rounds.
    """
    import parfive  # lazy: only downloads need it

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    done: dict[str, Path] = {}
    for req in requests:  # what an earlier run left: keep it if it checks out, without asking the server
        path = dest / req["filename"]
        if not path.is_file():
            continue
        if req.get("sha256"):
            good = sha256_of(path) == req["sha256"]
        else:  # with nothing to check it against, a file found on disk is fetched again
            good = verify is not None and _passes(path, verify)
        if good:
            done[path.name] = path
        else:
            path.unlink(missing_ok=True)
    pending = [r for r in requests if r["filename"] not in done]
    for attempt in range(1, max_tries + 1):
        if not pending:
            break
        downloader = parfive.Downloader(max_conn=max_conn, progress=progress, overwrite=False)
        for req in pending:
            sha = req.get("sha256")
            downloader.enqueue_file(req["url"], path=dest, filename=req["filename"],
                                    checksum=f"sha256={sha}" if sha else None)
        results = downloader.download()
        for err in results.errors:
            log.warning("download try %d of %s failed: %s", attempt, err.url, err.exception)
        by_name = {r["filename"]: r for r in pending}
        for path in map(Path, results):
            # parfive has checked the sha256 where one was given; the rest get ``verify``
            if by_name[path.name].get("sha256") or _passes(path, verify):
                done[path.name] = path
        pending = [r for r in pending if r["filename"] not in done]
    if pending:
        raise DownloadError(f"{len(pending)} file(s) failed after {max_tries} tries: "
                            f"{[r['filename'] for r in pending][:5]} (the {len(done)} good files are kept in {dest})",
                            [r["filename"] for r in pending])
    paths = [done[r["filename"]] for r in requests]
    write_checksums(dest, paths)
    return paths


def fido_fetch(
    results,
    dest: str | Path,
    *,
    verify: Callable[[Path], None],
    max_tries: int = 3,
    max_conn: int = 4,
    progress: bool = False,
) -> list[Path]:
    """Download a :class:`sunpy.net.fido_factory.UnifiedResponse` with ``Fido.fetch``; verified, resumable.

    Each try fetches the whole result with ``overwrite=False``, so files already in
    ``dest`` are not downloaded again; every file, old or new, must pass ``verify``
    (e.g. :func:`verify_aia_fits`: archives give no checksums), and one that fails is
    deleted and fetched on the next try. Records the good files in ``dest/SHA256SUMS``.
    """
    import parfive  # lazy: only downloads need it
    from sunpy.net import Fido  # lazy: sunpy.net takes seconds to import

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    template = str(dest / "{file}")
    good: dict[str, Path] = {}
    for attempt in range(1, max_tries + 1):
        downloader = parfive.Downloader(max_conn=max_conn, progress=progress, overwrite=False)
        fetched = Fido.fetch(results, path=template, downloader=downloader)
        for err in fetched.errors:
            log.warning("Fido try %d of %s failed: %s", attempt, err.url, err.exception)
        paths = [Path(p) for p in fetched if p]
        ok = [p for p in paths if _passes(p, verify)]
        good.update({p.name: p for p in ok})
        if not fetched.errors and len(ok) == len(paths):
            break
    else:
        raise DownloadError(f"Fido downloads still failing after {max_tries} tries "
                            f"(the {len(good)} good files are kept in {dest})", _failed_names(fetched))
    paths = sorted(good.values())
    write_checksums(dest, paths)
    return paths


# --------------------------------------------------------------------------- AIA: Fido and JSOC

def _times(time_range: Sequence[str]) -> tuple[pd.Timestamp, pd.Timestamp]:
    start, end = (pd.Timestamp(t) for t in time_range)
    if start.tzinfo is not None:
        start, end = (t.tz_convert("UTC").tz_localize(None) for t in (start, end))
    if not start < end:
        raise ValueError(f"time range {list(time_range)}: start must be before end")
    return start, end


def aia_query(time_range: Sequence[str], channels: Sequence[int], cadence: str | None = None) -> tuple:
    """Fido attrs for AIA level-1 EUV images: time (UTC), wavelengths (integer Å), ``a.Sample``.

    >>> from sunpy.net import Fido
    >>> Fido.search(*aia_query(["2011-02-15T01:00", "2011-02-15T02:00"], [94, 131], "12min"))  # doctest: +SKIP
    """
    import astropy.units as u
    from sunpy.net import attrs as a  # lazy: sunpy.net takes seconds to import

    start, end = _times(time_range)
    if not channels:
        raise ValueError("aia_query needs at least one channel")
    wavelengths = a.Wavelength(int(channels[0]) * u.AA)
    for channel in channels[1:]:
        wavelengths = wavelengths | a.Wavelength(int(channel) * u.AA)
    query = [a.Time(start.isoformat(), end.isoformat()), a.Instrument.aia, wavelengths]
    if cadence is not None:
        query.append(a.Sample(pd.Timedelta(cadence).total_seconds() * u.s))
    return tuple(query)


def search_aia(time_range: Sequence[str], channels: Sequence[int], cadence: str | None = None):
    """``Fido.search`` for AIA frames (needs the network)."""
    from sunpy.net import Fido  # lazy: sunpy.net takes seconds to import

    return Fido.search(*aia_query(time_range, channels, cadence))


JSOC_EMAIL_ENV = "JSOC_EMAIL"


def jsoc_email() -> str:
    """The JSOC-registered e-mail from ``$JSOC_EMAIL``; never stored in notebooks, outputs or logs."""
    email = os.environ.get(JSOC_EMAIL_ENV, "").strip()
    if "@" not in email:
        raise RuntimeError(f"JSOC exports need a registered e-mail address in ${JSOC_EMAIL_ENV} "
                           "(register at http://jsoc.stanford.edu/ajax/register_email.html)")
    return email


def _jsoc_duration(delta: pd.Timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        raise ValueError(f"JSOC durations must be positive, got {delta}")
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def jsoc_query(
    time_range: Sequence[str],
    channels: Sequence[int],
    cadence: str = "12min",
    *,
    series: str = "aia.lev1_euv_12s",
    segment: str = "image",
) -> str:
    """A DRMS record-set query, e.g. ``aia.lev1_euv_12s[2011-02-15T00:00:00Z/1h@12m][94,131]{image}``."""
    start, end = _times(time_range)
    channel_list = ",".join(str(int(c)) for c in channels)
    return (f"{series}[{start.strftime('%Y-%m-%dT%H:%M:%SZ')}/{_jsoc_duration(end - start)}"
            f"@{_jsoc_duration(pd.Timedelta(cadence))}][{channel_list}]{{{segment}}}")


def jsoc_requests(urls) -> list[dict]:
    """Download requests from a drms export's ``urls`` table (columns ``filename``, ``url``)."""
    return [{"url": str(row.url), "filename": str(row.filename), "sha256": None} for row in urls.itertuples()]


def jsoc_export(query: str, dest: str | Path, *, method: str = "url", protocol: str = "fits",
                max_tries: int = 3, progress: bool = False) -> list[Path]:
    """Export a record set from JSOC with :mod:`drms`, then download and verify it (needs the network).

    Large requests go through JSOC's export system (``method="url-tar"`` bundles them). The
    e-mail comes from ``$JSOC_EMAIL`` and is passed to drms only.
    """
    import drms  # lazy: only JSOC exports need it

    client = drms.Client(email=jsoc_email())
    log.info("JSOC export of %s", query)
    request = client.export(query, method=method, protocol=protocol)
    request.wait(sleep=10, timeout=3600)
    if method == "url-tar":
        tars = request.download(str(dest))["download"].dropna().map(Path).tolist()
        return unpack_export(tars, dest)
    return download_files(jsoc_requests(request.urls), dest, verify=verify_aia_fits,
                          max_tries=max_tries, progress=progress)


def unpack_export(tars: Sequence[str | Path], dest: str | Path) -> list[Path]:
    """Unpack JSOC ``url-tar`` bundles into ``dest``; verify each FITS inside; record them in ``SHA256SUMS``.

    Members are extracted with tarfile's ``data`` filter (no absolute paths, links or
    devices). A tar that does not open, or a FITS that fails :func:`verify_aia_fits`, raises
    :class:`DownloadError` naming it (delete the tar and rerun the export to fetch it again).
    """
    dest = Path(dest)
    paths, bad = [], []
    for tar in map(Path, tars):
        try:
            with tarfile.open(tar) as bundle:
                names = [m.name for m in bundle.getmembers() if m.isfile() and m.name.endswith(".fits")]
                bundle.extractall(dest, members=[bundle.getmember(n) for n in names], filter="data")
        except (tarfile.TarError, OSError) as err:
            bad.append(f"{tar.name}: {err}")
            continue
        for name in names:
            path = dest / name
            if _passes(path, verify_aia_fits):
                paths.append(path)
            else:
                bad.append(f"{tar.name}:{name}")
    if bad:
        raise DownloadError(f"JSOC export bundles with bad content: {bad[:5]}", bad)
    write_checksums(dest, paths)
    return sorted(paths)


# --------------------------------------------------------------------------- GOES XRS through Fido

def goes_query(time_range: Sequence[str], satellite: int | None = None, resolution: str = "avg1m") -> tuple:
    """Fido attrs for GOES XRS: ``a.Instrument('XRS')``, ``a.Resolution`` (``avg1m`` or ``flx1s``), satellite."""
    from sunpy.net import attrs as a  # lazy: sunpy.net takes seconds to import

    start, end = _times(time_range)
    if resolution not in ("avg1m", "flx1s"):
        raise ValueError(f"GOES XRS resolution {resolution!r}: use 'avg1m' (1-min averages) or 'flx1s'")
    query = [a.Time(start.isoformat(), end.isoformat()), a.Instrument("XRS"), a.Resolution(resolution)]
    if satellite is not None:
        query.append(a.goes.SatelliteNumber(int(satellite)))
    return tuple(query)


def fetch_goes(time_range: Sequence[str], dest: str | Path, *, satellite: int | None = None,
               resolution: str = "avg1m", science_quality: bool = True, results=None) -> xr.Dataset:
    """GOES XRS for a time range through Fido, as one dataset in W/m² (needs the network).

    Each file's scaling (``swpc-scaled`` or ``science-quality``) is read by
    :func:`flarelib.cube.goes.load_xrs`; with ``science_quality`` the SWPC-scaled parts are
    converted before combining, and parts of different scaling are never mixed unconverted.
    ``results`` is a ready Fido search result (then no search is made).
    """
    from sunpy.net import Fido  # lazy: sunpy.net takes seconds to import

    if results is None:
        results = Fido.search(*goes_query(time_range, satellite, resolution))
    paths = fido_fetch(results, dest, verify=verify_goes_file)
    parts = [goes.load_xrs(p) for p in paths]
    if science_quality:
        parts = [goes.to_science_quality(p) for p in parts]
    start, end = _times(time_range)
    return goes.combine_xrs(parts).sel(time=slice(start, end))


# --------------------------------------------------------------------------- HEK flare events

def hek_flare_query(time_range: Sequence[str], observatory: str = "SWPC") -> tuple:
    """Fido attrs for HEK flare events of one feature-recognition method (default NOAA/SWPC)."""
    from sunpy.net import attrs as a  # lazy: sunpy.net takes seconds to import

    start, end = _times(time_range)
    return (a.Time(start.isoformat(), end.isoformat()), a.hek.EventType("FL"), a.hek.FRM.Name == observatory)


def flare_events(table, *, source: str = "HEK (NOAA/SWPC)") -> list[dict]:
    """HEK flare rows -> event dicts for :func:`flarelib.cube.align.events_dataset`, sorted by start.

    Rows without a valid GOES class or times are skipped with a log line (nothing is
    silently lost); exact duplicates (same start, peak and class) are kept once.
    """
    events, seen = [], set()
    for k, row in enumerate(table):
        try:
            label = str(row["fl_goescls"]).strip()
            goes.class_to_flux(label)
            times = [pd.Timestamp(str(getattr(row[key], "isot", row[key]))) for key in
                     ("event_starttime", "event_peaktime", "event_endtime")]
        except (KeyError, ValueError) as err:
            log.warning("skip HEK flare row %d: %s", k, err)
            continue
        if not times[0] <= times[1] <= times[2]:
            log.warning("skip HEK flare row %d: times out of order %s", k, times)
            continue
        key = (times[0], times[1], label)
        if key in seen:
            log.info("skip duplicate HEK flare row %d (%s at %s)", k, label, times[1])
            continue
        seen.add(key)
        ar = row["ar_noaanum"] if "ar_noaanum" in table.colnames else None
        events.append({"start": times[0].isoformat(), "peak": times[1].isoformat(), "end": times[2].isoformat(),
                       "goes_class": label, "noaa_ar": int(ar) if ar not in (None, "") and int(ar) > 0 else -1,
                       "source": source})
    return sorted(events, key=lambda e: e["start"])


def search_flare_events(time_range: Sequence[str], observatory: str = "SWPC") -> list[dict]:
    """Flare events from HEK (needs the network)."""
    from sunpy.net import Fido  # lazy: sunpy.net takes seconds to import

    result = Fido.search(*hek_flare_query(time_range, observatory))
    return flare_events(result["hek"])


# --------------------------------------------------------------------------- what the archives hold

ARCHIVE_HOSTS = {
    "AIA (Fido: VSO/JSOC)": "vso.nascom.nasa.gov",
    "GOES XRS (Fido: NOAA NCEI)": "www.ncei.noaa.gov",
    "flare events (HEK)": "www.lmsal.com",
    "SDOML v2 (S3)": "gov-nasa-hdrl-data1.s3.amazonaws.com",
}


def reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """True when a TCP connection to ``host:port`` opens within ``timeout`` s."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def preview_archives(time_range: Sequence[str], channels: Sequence[int], cadence: str = "12min") -> pd.DataFrame:
    """What each archive holds for a period, one row per archive, without downloading anything.

    Archives that cannot be reached are listed as skipped (offline use is normal: tests,
    Binder without network); a failing call is listed with its error instead of raising.
    """
    searches = {
        "AIA (Fido: VSO/JSOC)": (str(aia_query(time_range, channels, cadence)),
                                 lambda: f"{search_aia(time_range, channels, cadence).file_num} frames"),
        "GOES XRS (Fido: NOAA NCEI)": (str(goes_query(time_range)), lambda: _count_fido(goes_query(time_range))),
        "flare events (HEK)": (str(hek_flare_query(time_range)),
                               lambda: _describe_events(search_flare_events(time_range))),
        "SDOML v2 (S3)": (sdoml.SDOML_V2_URL, lambda: _count_sdoml(time_range, channels)),
    }
    rows = []
    for archive, (query, search) in searches.items():
        if not reachable(ARCHIVE_HOSTS[archive]):
            status = f"skipped: {ARCHIVE_HOSTS[archive]} cannot be reached (offline)"
        else:
            try:
                status = search()
            except Exception as err:  # a preview reports every failure instead of raising
                status = f"error: {type(err).__name__}: {err}"[:200]
        rows.append({"archive": archive, "query": query, "found": status})
    return pd.DataFrame(rows).set_index("archive")


def _count_fido(query) -> str:
    from sunpy.net import Fido  # lazy: sunpy.net takes seconds to import

    return f"{Fido.search(*query).file_num} files"


def _describe_events(events: list[dict]) -> str:
    strongest = max(events, key=lambda e: goes.class_to_flux(e["goes_class"]), default=None)
    return f"{len(events)} flares" + (f", strongest {strongest['goes_class']}" if strongest else "")


def _count_sdoml(time_range: Sequence[str], channels: Sequence[int]) -> str:
    start, end = _times(time_range)
    group = sdoml.open_sdoml()
    infos, _, _ = sdoml.sdoml_frames(group, years=range(start.year, end.year + 1), channels=channels)
    n = sum(start.to_datetime64() <= f.t_obs <= end.to_datetime64() for f in infos)
    return f"{n} frames"
