"""AIA frame preparation: validate a level-1 FITS file and calibrate it to DN/s.

The steps, in aiapy's recommended order, each recorded with its parameters:

1. **register** (:func:`aiapy.calibrate.register`) - only for full-disk level-1 input;
   level-1.5 and cutouts are already on their final grid. Pointing updates
   (``update_pointing``) need the JSOC and are not applied offline; this is recorded.
2. **degradation** (:func:`aiapy.calibrate.degradation`) with the JSOC AIA response table (V8) that ships
   with flarelib (:data:`SHIPPED_CORRECTION_TABLE`, read by :func:`load_correction_table`), so that it works
   without a network.
3. **exposure normalization**: divide by ``EXPTIME``. Mandatory - flare-mode (AEC) frames
   have exposures down to 0.005 s, 600 times shorter than the nominal 2.9 s. Only frames in
   DN are divided: ``BUNIT`` is parsed with :mod:`astropy.units`; a frame already in DN/s
   (level 1.5 products, SDOML) is taken as it is, a missing ``BUNIT`` means DN (recorded),
   and any other unit is a skip [``unknown-unit``].
4. **downsampling** (optional): :meth:`sunpy.map.GenericMap.superpixel` (mean) when the
   factor is an integer, :meth:`~sunpy.map.GenericMap.resample` otherwise.

Frames that cannot be used raise :class:`BadFrameError` with a short ``reason`` code;
the ingest (:mod:`flarelib.cube.align`, :mod:`flarelib.cube.ingest`) turns these into logged, counted skips.
Besides the header checks, every frame's pixels meet the :class:`SanityRules` (finite
fraction, a physical range per channel in DN/s, negative fraction, not all zero), and its date
lies inside the degradation table (:attr:`PrepOptions.outside_degradation_table` says whether
a date outside is a skip or a warning).

Times: ``T_OBS`` (mid-exposure) is used, ``DATE-OBS`` (exposure start) when it is missing (logged);
values ending in ``_TAI`` are converted from TAI to UTC with astropy's leap-second table
(TAI - UTC = 34 s in 2011, 37 s since 2017); explicit offsets (``+02:00``) are converted to UTC.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import astropy.units as u
import numpy as np
import pandas as pd
from astropy.io import fits
from astropy.io.fits.verify import VerifyWarning

log = logging.getLogger(__name__)

#: The six EUV channels of the embedded data and of the synthetic sun, in Å.
DEFAULT_CHANNELS: tuple[int, ...] = (94, 131, 171, 193, 211, 335)
AIA_EUV_CHANNELS: tuple[int, ...] = (94, 131, 171, 193, 211, 304, 335)
AIA_CHANNELS: tuple[int, ...] = AIA_EUV_CHANNELS + (1600, 1700, 4500)


class BadFrameError(ValueError):
    """An AIA file that cannot go into a cube. ``reason`` is a short machine-readable code."""

    def __init__(self, path: str | Path, reason: str, detail: str = ""):
        self.path = Path(path)
        self.reason = reason
        self.detail = detail
        super().__init__(f"{self.path.name}: {reason}" + (f" ({detail})" if detail else ""))


#: Units a frame may be in (parsed ``BUNIT``): DN are divided by EXPTIME, DN/s are taken as they are.
UNIT_DN, UNIT_DN_PER_S = "DN", "DN/s"


def _default_max_dn_per_s() -> dict[int, float]:
    return {channel: 2e8 for channel in AIA_CHANNELS}


@dataclass(frozen=True)
class SanityRules:
    """Per-frame pixel rules, in DN/s (the frame's data divided by EXPTIME when it is in DN).

    A frame breaks them, and is skipped with the ``reason`` in brackets, when:

    * fewer than ``min_finite_fraction`` of its pixels are finite [``non-finite``];
    * more than ``max_out_of_range_fraction`` of its pixels (``+inf`` and ``-inf`` included) lie
      outside ``[min_dn_per_s, max_dn_per_s[channel]]`` [``out-of-range``]. The default upper
      bound, 2e8 DN/s for every channel, is a saturated pixel (16383 DN) at a 1 ms exposure
      divided by a degradation factor of 0.08: no real pixel exceeds it (the real flare cutouts
      peak at 3.1e6 DN/s, 193 Å at 0.005 s). The lower bound, -1e4 DN/s, allows read noise of a
      few DN at the shortest exposures (the real level-1 frames reach -0.9 DN);
    * more than ``max_negative_fraction`` of its finite pixels are negative [``negative``]
      (real full-disk frames: at most 4 %);
    * all its finite pixels are zero [``all-zero``].

    Channels missing from ``max_dn_per_s`` use the largest bound given. The defaults pass
    every real file in ``data/real`` (a test checks this).
    """

    min_finite_fraction: float = 0.5
    min_dn_per_s: float = -1e4
    max_dn_per_s: dict = field(default_factory=_default_max_dn_per_s)
    max_out_of_range_fraction: float = 0.0
    max_negative_fraction: float = 0.5

    def __post_init__(self):
        object.__setattr__(self, "max_dn_per_s", {int(k): float(v) for k, v in dict(self.max_dn_per_s).items()})
        for name in ("min_finite_fraction", "max_out_of_range_fraction", "max_negative_fraction"):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"SanityRules.{name}={value!r}: a fraction between 0 and 1")

    def upper(self, channel: int) -> float:
        """The largest plausible pixel value of ``channel`` (Å), in DN/s."""
        return self.max_dn_per_s.get(int(channel), max(self.max_dn_per_s.values(), default=np.inf))

    def check(self, path: str | Path, channel: int, dn_per_s: np.ndarray) -> None:
        """Raise :class:`BadFrameError` when the frame ``dn_per_s`` (2-D, DN/s) breaks a rule."""
        values = np.asarray(dn_per_s)
        n = values.size
        if n == 0:
            raise BadFrameError(path, "unreadable", "empty image")
        finite = np.isfinite(values)
        n_finite = int(finite.sum())
        if n_finite == 0:
            raise BadFrameError(path, "all-nan", "no finite pixel")
        if n_finite < self.min_finite_fraction * n:
            raise BadFrameError(path, "non-finite", f"{n_finite / n:.1%} finite pixels, below "
                                f"min_finite_fraction={self.min_finite_fraction:.0%}")
        upper = self.upper(channel)
        nan = np.isnan(values)
        with np.errstate(invalid="ignore"):
            outside = ~nan & ((values > upper) | (values < self.min_dn_per_s))
        n_out = int(outside.sum())
        if n_out > self.max_out_of_range_fraction * n:
            worst = values[outside]
            raise BadFrameError(path, "out-of-range", f"{n_out} pixels outside [{self.min_dn_per_s:g}, {upper:g}] "
                                f"DN/s for {channel} Å (min {worst.min():g}, max {worst.max():g})")
        good = values[finite]
        n_negative = int((good < 0).sum())
        if n_negative > self.max_negative_fraction * n_finite:
            raise BadFrameError(path, "negative", f"{n_negative / n_finite:.1%} negative pixels, above "
                                f"max_negative_fraction={self.max_negative_fraction:.0%}")
        if not good.any():
            raise BadFrameError(path, "all-zero", "every finite pixel is 0")


DEFAULT_SANITY = SanityRules()


@dataclass(frozen=True)
class FrameInfo:
    """What the header says about one AIA frame (no pixel data)."""

    path: Path
    channel: int  #: WAVELNTH, Å
    t_obs: np.datetime64  #: T_OBS (or DATE-OBS), UTC, ns precision
    exptime: float  #: EXPTIME, s
    quality: int  #: QUALITY bit field (0 = good)
    level: float  #: LVL_NUM
    shape: tuple[int, int]  #: (ny, nx)
    full_disk: bool  #: True when the solar disk fits in the field of view
    aectype: int = 0  #: AECTYPE; flare-mode automatic exposure control shortens EXPTIME
    header_notes: tuple[str, ...] = field(default=())
    unit: str = UNIT_DN  #: pixel unit from BUNIT: ``"DN"`` (divided by EXPTIME) or ``"DN/s"`` (taken as it is)


@contextlib.contextmanager
def _known_fits_warnings_quiet():
    """Silence the one FITS warning every AIA file gives (a BLANK card on float data); others still show."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Invalid 'BLANK' keyword in header", category=VerifyWarning)
        yield


def _image_hdu(hdul: fits.HDUList) -> fits.hdu.base.ExtensionHDU | fits.PrimaryHDU:
    """The one 2-D image HDU of a file (a RICE tile-compressed image counts once); ``KeyError`` if none.

    A file with more than one image HDU is ambiguous and raises :class:`ValueError`.
    """
    images = [hdu for hdu in hdul
              if isinstance(hdu, fits.CompImageHDU) or (hdu.header.get("NAXIS", 0) == 2 and hdu.is_image)]
    if not images:
        raise KeyError("no 2-D image HDU")
    if len(images) > 1:
        raise ValueError(f"{len(images)} image HDUs (at {[hdul.index(h) for h in images]}): which one is AIA?")
    return images[0]


def parse_time(value: str) -> np.datetime64:
    """An AIA time keyword (``T_OBS``/``DATE-OBS``) as UTC ``datetime64[ns]``.

    Accepts ISO times with a trailing ``Z`` or ``_UTC`` (UTC), ``_TAI`` (International Atomic
    Time: converted to UTC with astropy's leap-second table, 37 s since 2017, 34 s in 2011) and
    explicit offsets such as ``+02:00`` (converted to UTC). Raises ``ValueError`` otherwise.
    """
    text = str(value).strip()
    if text.upper().endswith("_TAI"):
        from astropy.time import Time

        utc = Time(np.datetime64(text[:-4].rstrip("Z"), "ns"), scale="tai", precision=9).utc
        return np.datetime64(utc.to_value("isot", subfmt="date_hms"), "ns")
    text = text.removesuffix("_UTC").removesuffix("_utc")
    if re.search(r"[+-]\d\d:?\d\d$", text) and "T" in text:
        stamp = pd.Timestamp(text)
        return np.datetime64(stamp.tz_convert("UTC").tz_localize(None).to_datetime64(), "ns")
    return np.datetime64(text.rstrip("Z"), "ns")


def parse_unit(bunit) -> str:
    """``BUNIT`` as :data:`UNIT_DN` or :data:`UNIT_DN_PER_S`, parsed with :mod:`astropy.units`.

    A missing or blank ``BUNIT`` is DN (level-1 AIA files often lack it). Raises ``ValueError``
    for any other unit (``"DN/S"`` parses as DN per siemens, and is refused too).
    """
    if bunit is None or not str(bunit).strip():
        return UNIT_DN
    unit = u.Unit(str(bunit).strip(), parse_strict="raise")
    if unit == u.DN:
        return UNIT_DN
    if unit == u.DN / u.s:
        return UNIT_DN_PER_S
    raise ValueError(f"BUNIT={bunit!r} ({unit}) is neither DN nor DN/s")


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _number(header, key: str, path: Path, reason: str = "bad-keyword") -> float:
    try:
        return float(header[key])
    except (TypeError, ValueError) as exc:
        raise BadFrameError(path, reason, f"{key}={header[key]!r} is not a number") from exc


def read_frame_info(
    path: str | Path,
    *,
    check_data: bool = True,
    allowed_quality_bits: int = 0,
    sanity: SanityRules | None = DEFAULT_SANITY,
) -> FrameInfo:
    """Read and validate the header (and, with ``check_data``, the pixels) of one AIA FITS file.

    Checks, each raising :class:`BadFrameError` with the ``reason`` in brackets: the file
    is complete and readable, plain, gzip (``.fits.gz``) or RICE tile-compressed
    [``unreadable``], it holds exactly one image HDU [``extra-image-hdu``], it is SDO/AIA
    [``not-aia``], it has WAVELNTH, EXPTIME, QUALITY and T_OBS/DATE-OBS [``missing-keyword``],
    they are numbers and times [``bad-keyword``], EXPTIME > 0 and finite [``bad-exptime``],
    BUNIT is DN or DN/s [``unknown-unit``], QUALITY has no bits outside
    ``allowed_quality_bits`` [``quality``], and (with ``check_data``) the image is not
    entirely NaN [``all-nan``] and meets ``sanity`` (:class:`SanityRules`, in DN/s; ``None``
    skips these rules). A missing T_OBS is logged (DATE-OBS, the exposure start, is used).
    """
    path = Path(path)
    try:
        with _known_fits_warnings_quiet():
            gzipped = _is_gzip(path)
            with fits.open(path, memmap=False) as hdul:
                try:
                    hdu = _image_hdu(hdul)
                except ValueError as exc:
                    raise BadFrameError(path, "extra-image-hdu", str(exc)) from exc
                header = hdu.header.copy()
                if gzipped:  # sizes on disk say nothing: decompressing the pixels finds a truncated file
                    data = hdu.data
                else:
                    if not isinstance(hdu, fits.CompImageHDU):
                        expected = hdu._data_offset + hdu._data_size
                        actual = path.stat().st_size
                        if actual < expected:
                            raise BadFrameError(path, "unreadable", f"truncated: {actual} of {expected} bytes")
                    data = hdu.data if check_data else None
                if data is not None:
                    data = np.asarray(data)
    except BadFrameError:
        raise
    except Exception as exc:  # astropy raises OSError, ValueError, TypeError, KeyError, EOFError...
        raise BadFrameError(path, "unreadable", f"{type(exc).__name__}: {exc}") from exc

    telescope = str(header.get("TELESCOP", "")).upper()
    instrument = str(header.get("INSTRUME", "")).upper()
    if "AIA" not in telescope and not instrument.startswith("AIA"):
        raise BadFrameError(path, "not-aia", f"TELESCOP={telescope!r}, INSTRUME={instrument!r}")
    for key in ("WAVELNTH", "EXPTIME", "QUALITY"):
        if header.get(key) is None:
            raise BadFrameError(path, "missing-keyword", key)
    time_key = "T_OBS" if header.get("T_OBS") else "DATE-OBS"
    if not header.get(time_key):
        raise BadFrameError(path, "missing-keyword", "T_OBS and DATE-OBS")
    try:
        t_obs = parse_time(header[time_key])
    except ValueError as exc:
        raise BadFrameError(path, "bad-keyword", f"{time_key}={header[time_key]!r} is not a time") from exc
    exptime = _number(header, "EXPTIME", path, "bad-exptime")
    if not np.isfinite(exptime) or exptime <= 0:
        raise BadFrameError(path, "bad-exptime", f"EXPTIME={header['EXPTIME']}")
    wavelength = _number(header, "WAVELNTH", path)
    quality_value = _number(header, "QUALITY", path)
    if not np.isfinite(wavelength) or not np.isfinite(quality_value) or quality_value != int(quality_value):
        raise BadFrameError(path, "bad-keyword", f"WAVELNTH={header['WAVELNTH']!r}, QUALITY={header['QUALITY']!r}")
    quality = int(quality_value)
    if quality & ~allowed_quality_bits:
        raise BadFrameError(path, "quality", f"QUALITY=0x{quality:08x}")
    try:
        unit = parse_unit(header.get("BUNIT"))
    except ValueError as exc:
        raise BadFrameError(path, "unknown-unit", str(exc)) from exc
    channel = int(round(wavelength))
    if check_data:
        if data is None or data.ndim != 2:
            raise BadFrameError(path, "unreadable", "no 2-D image data")
        if not np.isfinite(data).any():
            raise BadFrameError(path, "all-nan", "no finite pixel")
        if sanity is not None:
            values = data.astype(np.float64)
            sanity.check(path, channel, values / exptime if unit == UNIT_DN else values)
    try:
        ny, nx = int(header.get("ZNAXIS2", header["NAXIS2"])), int(header.get("ZNAXIS1", header["NAXIS1"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise BadFrameError(path, "unreadable", f"image size: {exc}") from exc
    full_disk = _is_full_disk(header, ny, nx)
    roll = _roll_degrees(header)
    if not full_disk and abs(roll) > MAX_CUTOUT_ROLL_DEG:
        raise BadFrameError(path, "rotated-cutout",
                            f"the image is rolled by {roll:.1f} deg (CROTA2 / PC matrix) and only full-disk frames "
                            "are registered; a cube's frames must all be north-up: rotate it north-up first, or use "
                            "the full-disk frame")
    notes = []
    if time_key != "T_OBS":
        notes.append("T_OBS missing; DATE-OBS used")
        log.warning("%s: T_OBS missing; DATE-OBS (exposure start) %s used as the observation time",
                    path.name, header[time_key])
    try:
        aectype = int(header.get("AECTYPE", 0) or 0)
    except (TypeError, ValueError):
        aectype = 0
        notes.append(f"AECTYPE={header.get('AECTYPE')!r} not a number; 0 used")
    return FrameInfo(
        path=path,
        channel=channel,
        t_obs=t_obs,
        exptime=exptime,
        quality=quality,
        level=_level(header),
        shape=(ny, nx),
        full_disk=full_disk,
        aectype=aectype,
        header_notes=tuple(notes),
        unit=unit,
    )


#: Degrees a cutout may be rolled from solar north and still be stacked as it is (AIA level 1 rolls by < 0.2 deg).
MAX_CUTOUT_ROLL_DEG = 1.0


def _roll_degrees(header: fits.Header) -> float:
    """The image's roll from solar north in degrees, in (-180, 180]: from the PC matrix where the header has one
    (as sunpy reads it first), else CROTA2; 0 when neither is given or readable."""
    try:
        if header.get("PC1_1") is not None and header.get("PC2_1") is not None:
            angle = np.degrees(np.arctan2(float(header["PC2_1"]), float(header["PC1_1"])))
        else:
            angle = float(header.get("CROTA2", 0.0) or 0.0)
    except (TypeError, ValueError):
        return 0.0
    return float(-((-angle + 180.0) % 360.0 - 180.0))


def _level(header) -> float:
    try:
        return float(header.get("LVL_NUM", 1.0))
    except (TypeError, ValueError):
        return 1.0


def _is_full_disk(header: fits.Header, ny: int, nx: int) -> bool:
    """True when the field of view (arcsec) contains the whole disk (R_SUN in pixels)."""
    try:
        rsun_arcsec, cdelt = float(header.get("RSUN_OBS") or 0), float(header.get("CDELT1") or 0)
        crpix1, crpix2 = float(header.get("CRPIX1", 0)), float(header.get("CRPIX2", 0))
    except (TypeError, ValueError):
        return False
    if not rsun_arcsec or not cdelt:
        return False
    r_sun_px = rsun_arcsec / abs(cdelt)  # R_SUN may refer to the unbinned grid
    return bool(
        crpix1 - r_sun_px >= 0 and crpix1 + r_sun_px <= nx + 1
        and crpix2 - r_sun_px >= 0 and crpix2 + r_sun_px <= ny + 1
    )


#: The degradation correction table that ships with flarelib: the JSOC ``aia.response`` table, version 8 (V8,
#: 2017-12-10), as aiapy 0.10.2 ships it; provenance and licence in ``AIA_RESPONSE_TABLE.md`` beside it.
SHIPPED_CORRECTION_TABLE = Path(__file__).with_name("aia_V8_20171210_050627_response_table.txt")


@functools.lru_cache(maxsize=4)
def load_correction_table(path: str | None = None):
    """Read a degradation correction table (an SSW/JSOC ``aia_V*_response_table.txt``; default: the shipped one)
    into the ``astropy.table.QTable`` that ``aiapy.calibrate.degradation(correction_table=...)`` takes.

    The columns are parsed as aiapy parses a table file: ``T_START``/``T_STOP`` as UTC times, ``WAVELNTH`` and
    ``EFF_WVLN`` in Å, ``EFF_AREA`` in cm².
    """
    from astropy.io import ascii
    from astropy.table import QTable
    from astropy.time import Time
    from erfa import ErfaWarning

    table = QTable(ascii.read(Path(path) if path else SHIPPED_CORRECTION_TABLE))
    table = table[["DATE", "VER_NUM", "WAVE_STR", "WAVELNTH", "T_START", "T_STOP", "EFFA_P1", "EFFA_P2", "EFFA_P3",
                   "EFF_AREA", "EFF_WVLN"]]
    with warnings.catch_warnings():  # the table's last epoch ends in 2030, past the leap-second table
        warnings.filterwarnings("ignore", message=".*dubious year", category=ErfaWarning)
        table["T_START"] = Time(table["T_START"], scale="utc")
        table["T_STOP"] = Time(table["T_STOP"], scale="utc")
    table["WAVELNTH"].unit = u.AA
    table["EFF_WVLN"].unit = u.AA
    table["EFF_AREA"].unit = u.cm**2
    return table


@dataclass(frozen=True)
class PrepOptions:
    """How AIA frames are calibrated (see the module docstring for the steps).

    ``degradation``: apply the time-dependent degradation correction, with the table at
    ``correction_table`` (default: :data:`SHIPPED_CORRECTION_TABLE`). ``register``: ``"auto"`` registers
    full-disk level-1 input only, ``True`` demands it (error for cutouts), ``False`` never.
    ``shape``: target ``(ny, nx)`` in pixels, or ``None`` to keep the frame's.
    ``sanity``: the per-frame pixel rules (:class:`SanityRules`, in DN/s; a mapping of its
    fields is accepted, e.g. from the catalog). ``outside_degradation_table``: what happens to
    a frame whose date lies outside the degradation table's epochs (aiapy cannot correct it):
    ``"skip"`` (default; a logged skip, reason ``outside-degradation-table``) or ``"warn"``
    (a logged warning, and the correction of the nearest epoch in the table is applied).
    """

    degradation: bool = True
    correction_table: str | Path | None = None
    register: bool | str = "auto"
    shape: tuple[int, int] | None = None
    sanity: SanityRules = DEFAULT_SANITY
    outside_degradation_table: str = "skip"

    def __post_init__(self):
        if isinstance(self.sanity, dict):
            object.__setattr__(self, "sanity", SanityRules(**self.sanity))
        if self.outside_degradation_table not in ("skip", "warn"):
            raise ValueError(f"PrepOptions.outside_degradation_table={self.outside_degradation_table!r}: "
                             "use 'skip' or 'warn'")

    def table_path(self) -> Path | None:
        """The degradation table used (``None`` without degradation)."""
        if not self.degradation:
            return None
        return Path(self.correction_table) if self.correction_table else SHIPPED_CORRECTION_TABLE

    def steps(self, info: FrameInfo | None = None) -> list[dict]:
        """The calibration steps, in order: what :func:`prep_frame` applies, and what a cube records.

        With ``info`` the steps of that frame (registration only where it applies); without,
        the steps of a whole ingest. This list is the only description of the prep steps.
        """
        steps = []
        if self.register is True or (self.register == "auto" and (info is None
                                                                   or (info.full_disk and info.level < 1.5))):
            steps.append({"step": "register", "function": "aiapy.calibrate.register", "when": str(self.register),
                          "applies_to": "full-disk level-1 input", "order": 3,
                          "pointing_update": "not applied (needs JSOC)"})
        if self.degradation:
            steps.append({"step": "degradation", "function": "aiapy.calibrate.degradation",
                          "table": self.table_path().name,
                          "table_source": "given" if self.correction_table else "shipped with flarelib"})
        if info is None or info.unit == UNIT_DN:
            steps.append({"step": "exposure", "operation": "divide by EXPTIME (frames in DN; DN/s taken as they are)",
                          "units_after": "DN/s"})
        else:
            steps.append({"step": "exposure", "operation": "none: BUNIT is already DN/s", "units_after": "DN/s"})
        if self.shape is not None:
            steps.append({"step": "downsample", "shape": list(self.shape),
                          "function": "sunpy superpixel (mean) for integer factors, else resample (linear)"})
        return steps


def degradation_epochs(table_path: str | Path | None, channel: int) -> tuple[np.datetime64, np.datetime64] | None:
    """First start and last stop (UTC) of the degradation table's epochs for ``channel`` (Å); ``None`` if absent."""
    return _degradation_epochs(str(table_path) if table_path else None, int(channel))


@functools.lru_cache(maxsize=64)
def _degradation_epochs(table_path: str | None, channel: int) -> tuple[np.datetime64, np.datetime64] | None:
    from erfa import ErfaWarning

    table = load_correction_table(table_path)
    rows = table[np.asarray(table["WAVELNTH"]).astype(int) == channel]
    if len(rows) == 0:
        return None
    with warnings.catch_warnings():  # the table's last epoch ends in 2030, past the leap-second table
        warnings.filterwarnings("ignore", message=".*dubious year", category=ErfaWarning)
        return (np.datetime64(rows["T_START"].min().isot, "ns"), np.datetime64(rows["T_STOP"].max().isot, "ns"))


def check_calibration(info: FrameInfo, options: PrepOptions) -> FrameInfo:
    """The checks of a calibration that need no pixels, made when a file is scanned.

    With the degradation step, a date outside the table's epochs for the frame's channel is a
    :class:`BadFrameError` [``outside-degradation-table``] when
    ``options.outside_degradation_table == "skip"``, or a logged warning (``"warn"``: the
    nearest epoch is used; recorded in the frame's ``header_notes``). ``register=True`` needs a
    full-disk frame [``not-full-disk``]. Returns ``info`` (with the note, if any).
    """
    if options.register is True and not info.full_disk:
        raise BadFrameError(info.path, "not-full-disk", "register=True needs a full-disk image")
    if not options.degradation:
        return info
    epochs = degradation_epochs(options.table_path(), info.channel)
    if epochs is not None and epochs[0] <= info.t_obs <= epochs[1]:
        return info
    span = f"{epochs[0]} to {epochs[1]}" if epochs else "no epoch at all"
    detail = (f"{info.t_obs} is outside the degradation table {options.table_path().name} "
              f"({info.channel} \u00c5: {span})")
    if options.outside_degradation_table == "skip" or epochs is None:
        raise BadFrameError(info.path, "outside-degradation-table",
                            detail + "; pass outside_degradation_table='warn' to use the nearest epoch")
    log.warning("%s: %s; the nearest epoch's correction is used (outside_degradation_table='warn')",
                info.path.name, detail)
    return dataclasses.replace(info, header_notes=info.header_notes + ("degradation: nearest epoch used",))


def prep_frame(
    source: str | Path | FrameInfo,
    *,
    degradation: bool = True,
    correction_table: str | Path | None = None,
    register: bool | str = "auto",
    shape: tuple[int, int] | None = None,
    sanity: SanityRules | dict | None = DEFAULT_SANITY,
    outside_degradation_table: str = "skip",
):
    """Calibrate one AIA level-1(.5) FITS file to a float32 map in DN/s.

    Parameters
    ----------
    source
        Path of an AIA FITS file (validated with :func:`read_frame_info` first), or the
        :class:`FrameInfo` of a file already validated (the ingest passes these, so a file is
        not validated twice and its ``allowed_quality_bits`` decision stands).
    degradation, correction_table, register, shape, sanity, outside_degradation_table
        The calibration, as in :class:`PrepOptions` (an ingest passes ``**asdict(options)``);
        its :meth:`PrepOptions.steps` are applied in order. The calibrated frame must meet
        ``sanity`` (``None``: no check).

    Returns
    -------
    (sunpy.map.GenericMap, list[dict])
        The calibrated map (``unit`` DN/s, data float32, shape ``shape`` or unchanged) and the
        steps applied: those of :meth:`PrepOptions.steps` with the values used.

    Raises
    ------
    BadFrameError
        Naming the file and the reason, for any frame that cannot be calibrated.
    """
    import sunpy.map  # lazy: sunpy.map takes seconds to import

    rules = sanity if sanity is None or isinstance(sanity, SanityRules) else SanityRules(**sanity)
    options = PrepOptions(degradation, correction_table, register, None if shape is None else tuple(shape),
                          rules or DEFAULT_SANITY, outside_degradation_table)
    info = source if isinstance(source, FrameInfo) else read_frame_info(source, sanity=rules)
    info = check_calibration(info, options)
    try:
        with _known_fits_warnings_quiet():
            with fits.open(info.path, memmap=False) as hdul:
                hdu = _image_hdu(hdul)
                data, header = np.asarray(hdu.data, dtype=np.float64), hdu.header.copy()
        for key in ("BLANK", "BSCALE", "BZERO"):  # the data are already scaled floats
            header.remove(key, ignore_missing=True)
        with _known_fits_warnings_quiet():
            smap = sunpy.map.Map(data, header)
        applied: list[dict] = []
        if smap.unit is None:  # sunpy's AIA source already reads a missing BUNIT as DN
            smap.meta["bunit"] = "DN"
            applied.append({"step": "assume-unit", "bunit": "DN", "why": "BUNIT missing in header"})
        for step in options.steps(info):
            smap, values = _APPLY[step["step"]](smap, options, info)
            if values is not None:
                applied.append({**step, **values})
        out = np.asarray(smap.data, dtype=np.float32)
    except BadFrameError:
        raise
    except Exception as exc:  # sunpy/aiapy raise many types; the frame is named either way
        raise BadFrameError(info.path, "calibration-failed", f"{type(exc).__name__}: {exc}") from exc
    if rules is not None:
        rules.check(info.path, info.channel, out)
    return sunpy.map.Map(out, smap.meta), applied


def _register(smap, options: PrepOptions, info: FrameInfo):
    import aiapy.calibrate  # lazy: aiapy pulls in sunpy.map

    return aiapy.calibrate.register(smap), {}


def _degradation(smap, options: PrepOptions, info: FrameInfo):
    import aiapy.calibrate  # lazy: aiapy pulls in sunpy.map
    import sunpy.map  # lazy: sunpy.map takes seconds to import
    from astropy.time import Time

    table = load_correction_table(str(options.table_path()))
    # the frame's time as the scan read it (T_OBS, or DATE-OBS when T_OBS is missing), never the map's own DATE-OBS:
    # the date the scan checked against the table is the date the correction uses
    date, values = Time(str(info.t_obs), scale="utc"), {}
    epochs = degradation_epochs(options.table_path(), info.channel)
    if epochs is not None and not epochs[0] <= info.t_obs <= epochs[1]:  # allowed by check_calibration ("warn")
        nearest = epochs[0] if info.t_obs < epochs[0] else epochs[1] - np.timedelta64(1, "s")
        date, values = Time(str(nearest), scale="utc"), {"date_used": str(nearest), "why": "outside the table"}
    factor = float(aiapy.calibrate.degradation(smap.wavelength, date, correction_table=table)[0])
    return sunpy.map.Map(smap.data / factor, smap.meta), {"divided_by": round(factor, 6), **values}


def _exposure(smap, options: PrepOptions, info: FrameInfo):
    import sunpy.map  # lazy: sunpy.map takes seconds to import

    if info.unit == UNIT_DN_PER_S:
        smap.meta["bunit"] = "DN/s"
        return smap, {"divided_by_exptime_s": None}
    exptime = float(info.exptime)
    smap = sunpy.map.Map(smap.data / exptime, smap.meta)
    smap.meta["bunit"] = "DN/s"
    return smap, {"divided_by_exptime_s": exptime}


def _downsample(smap, options: PrepOptions, info: FrameInfo):
    shape = tuple(options.shape)
    if shape == smap.data.shape:
        return smap, None  # already at the target size: nothing applied
    ny, nx = smap.data.shape
    if ny % shape[0] == 0 and nx % shape[1] == 0 and ny // shape[0] == nx // shape[1]:
        factor = ny // shape[0]
        return (smap.superpixel([factor, factor] * u.pix, func=np.mean),
                {"function": "superpixel", "factor": factor, "func": "mean"})
    values = {"function": "resample", "method": "linear"}
    if abs((ny / shape[0]) / (nx / shape[1]) - 1) > 0.01:  # another aspect ratio: the image is stretched
        values.update(stretched=True, scale_y=round(shape[0] / ny, 6), scale_x=round(shape[1] / nx, 6))
    return smap.resample([shape[1], shape[0]] * u.pix, method="linear"), values


_APPLY = {"register": _register, "degradation": _degradation, "exposure": _exposure, "downsample": _downsample}


def exposure_table(files, channel: int):
    """Per frame of one channel: exposure, median raw DN and median DN/s (a pandas table by T_OBS).

    Shows why exposure normalization is mandatory on flare-mode (AEC) frames.
    """
    import pandas as pd

    rows = []
    for f in files:
        info = read_frame_info(f)
        if info.channel != channel:
            continue
        with _known_fits_warnings_quiet():
            raw = fits.getdata(info.path).astype(float)
        smap, _ = prep_frame(info, degradation=False)
        rows.append({"t_obs": info.t_obs, "exptime_s": info.exptime, "aectype": info.aectype,
                     "median_dn": float(np.nanmedian(raw)), "median_dn_per_s": float(np.nanmedian(smap.data))})
    if not rows:
        raise ValueError(f"no valid {channel} Å frame among {len(list(files))} files")
    return pd.DataFrame(rows).set_index("t_obs").sort_index()
