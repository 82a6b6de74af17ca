"""AIA frame preparation: validate a level-1 FITS file and calibrate it to DN/s.

The steps, in aiapy's recommended order, each recorded with its parameters:

1. **register** (:func:`aiapy.calibrate.register`) - only for full-disk level-1 input;
   level-1.5 and cutouts are already on their final grid. Pointing updates
   (``update_pointing``) need the JSOC and are not applied offline; this is recorded.
2. **degradation** (:func:`aiapy.calibrate.correct_degradation`) with the correction table
   that ships inside aiapy, so that it works without a network.
3. **exposure normalization**: divide by ``EXPTIME``. Mandatory - flare-mode (AEC) frames
   have exposures down to 0.005 s, 600 times shorter than the nominal 2.9 s.
4. **downsampling** (optional): :meth:`sunpy.map.GenericMap.superpixel` (mean) when the
   factor is an integer, :meth:`~sunpy.map.GenericMap.resample` otherwise.

Frames that cannot be used raise :class:`BadFrameError` with a short ``reason`` code;
the ingest (:mod:`flarelib.align`, :mod:`flarelib.ingest`) turns these into logged, counted skips.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import astropy.units as u
import numpy as np
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


@contextlib.contextmanager
def _known_fits_warnings_quiet():
    """Silence the one FITS warning every AIA file gives (a BLANK card on float data); others still show."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Invalid 'BLANK' keyword in header", category=VerifyWarning)
        yield


def _image_hdu(hdul: fits.HDUList) -> fits.hdu.base.ExtensionHDU | fits.PrimaryHDU:
    for hdu in hdul:
        if hdu.header.get("NAXIS", 0) == 2 or isinstance(hdu, fits.CompImageHDU):
            return hdu
    raise KeyError("no 2-D image HDU")


def parse_time(value: str) -> np.datetime64:
    """An AIA time keyword (``T_OBS``/``DATE-OBS``: ISO, trailing ``Z``, ``_TAI``/``_UTC``) as ``datetime64[ns]``."""
    text = str(value).strip().rstrip("Z").replace("_TAI", "").replace("_UTC", "")
    return np.datetime64(text, "ns")


def read_frame_info(path: str | Path, *, check_data: bool = True, allowed_quality_bits: int = 0) -> FrameInfo:
    """Read and validate the header of one AIA FITS file.

    Checks, each raising :class:`BadFrameError` with the ``reason`` in brackets: the file
    is complete and readable [``unreadable``], it is SDO/AIA [``not-aia``], it has
    WAVELNTH, EXPTIME and T_OBS/DATE-OBS [``missing-keyword``], EXPTIME > 0
    [``bad-exptime``], QUALITY has no bits outside ``allowed_quality_bits``
    [``quality``], and (with ``check_data``) the image is not entirely NaN [``all-nan``].
    """
    path = Path(path)
    try:
        with _known_fits_warnings_quiet():
            with fits.open(path, memmap=False) as hdul:
                hdu = _image_hdu(hdul)
                header = hdu.header.copy()
                if not isinstance(hdu, fits.CompImageHDU):
                    expected = hdu._data_offset + hdu._data_size
                    actual = path.stat().st_size
                    if actual < expected:
                        raise BadFrameError(path, "unreadable", f"truncated: {actual} of {expected} bytes")
                data = hdu.data if check_data else None
    except BadFrameError:
        raise
    except Exception as exc:  # astropy raises OSError, ValueError, TypeError, KeyError...
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
        raise BadFrameError(path, "missing-keyword", f"{time_key}={header[time_key]!r} is not a time") from exc
    exptime = float(header["EXPTIME"])
    if not np.isfinite(exptime) or exptime <= 0:
        raise BadFrameError(path, "bad-exptime", f"EXPTIME={header['EXPTIME']}")
    quality = int(header["QUALITY"])
    if quality & ~allowed_quality_bits:
        raise BadFrameError(path, "quality", f"QUALITY=0x{quality:08x}")
    if check_data:
        if data is None or data.ndim != 2:
            raise BadFrameError(path, "unreadable", "no 2-D image data")
        if not np.isfinite(data).any():
            raise BadFrameError(path, "all-nan", "no finite pixel")
    ny, nx = int(header.get("ZNAXIS2", header["NAXIS2"])), int(header.get("ZNAXIS1", header["NAXIS1"]))
    notes = []
    if time_key != "T_OBS":
        notes.append("T_OBS missing; DATE-OBS used")
    return FrameInfo(
        path=path,
        channel=int(round(float(header["WAVELNTH"]))),
        t_obs=t_obs,
        exptime=exptime,
        quality=quality,
        level=float(header.get("LVL_NUM", 1.0)),
        shape=(ny, nx),
        full_disk=_is_full_disk(header, ny, nx),
        aectype=int(header.get("AECTYPE", 0) or 0),
        header_notes=tuple(notes),
    )


def _is_full_disk(header: fits.Header, ny: int, nx: int) -> bool:
    """True when the field of view (arcsec) contains the whole disk (R_SUN in pixels)."""
    rsun_arcsec, cdelt = header.get("RSUN_OBS"), header.get("CDELT1")
    if not rsun_arcsec or not cdelt:
        return False
    r_sun_px = float(rsun_arcsec) / abs(float(cdelt))  # R_SUN may refer to the unbinned grid
    crpix1, crpix2 = header.get("CRPIX1", 0), header.get("CRPIX2", 0)
    return bool(
        crpix1 - r_sun_px >= 0 and crpix1 + r_sun_px <= nx + 1
        and crpix2 - r_sun_px >= 0 and crpix2 + r_sun_px <= ny + 1
    )


def aiapy_correction_table_path() -> Path:
    """The degradation correction table that ships inside the aiapy package (offline)."""
    folder = resources.files("aiapy") / "tests" / "data"
    tables = sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith("_response_table.txt"))
    if not tables:
        raise FileNotFoundError(
            "aiapy ships no aia_V*_response_table.txt in this version; pass correction_table=<path> "
            "(an SSW $SSW/sdo/aia/response/ table) or correction_table=None to skip the correction"
        )
    return tables[-1]


@functools.lru_cache(maxsize=4)
def load_correction_table(path: str | None = None):
    """Read a degradation correction table (default: the one inside aiapy)."""
    from aiapy.calibrate.util import get_correction_table

    return get_correction_table(Path(path) if path else aiapy_correction_table_path())


@dataclass(frozen=True)
class PrepOptions:
    """How AIA frames are calibrated (see the module docstring for the steps).

    ``degradation``: apply the time-dependent degradation correction, with the table at
    ``correction_table`` (default: the one inside aiapy). ``register``: ``"auto"`` registers
    full-disk level-1 input only, ``True`` demands it (error for cutouts), ``False`` never.
    ``shape``: target ``(ny, nx)`` in pixels, or ``None`` to keep the frame's.
    """

    degradation: bool = True
    correction_table: str | Path | None = None
    register: bool | str = "auto"
    shape: tuple[int, int] | None = None

    def table_path(self) -> Path | None:
        """The degradation table used (``None`` without degradation)."""
        if not self.degradation:
            return None
        return Path(self.correction_table) if self.correction_table else aiapy_correction_table_path()

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
                          "table_source": "given" if self.correction_table else "shipped inside aiapy"})
        steps.append({"step": "exposure", "operation": "divide by EXPTIME", "units_after": "DN/s"})
        if self.shape is not None:
            steps.append({"step": "downsample", "shape": list(self.shape),
                          "function": "sunpy superpixel (mean) for integer factors, else resample (linear)"})
        return steps


def prep_frame(
    source: str | Path | FrameInfo,
    *,
    degradation: bool = True,
    correction_table: str | Path | None = None,
    register: bool | str = "auto",
    shape: tuple[int, int] | None = None,
):
    """Calibrate one AIA level-1(.5) FITS file to a float32 map in DN/s.

    Parameters
    ----------
    source
        Path of an AIA FITS file (validated with :func:`read_frame_info` first), or the
        :class:`FrameInfo` of a file already validated (the ingest passes these, so a file is
        not validated twice and its ``allowed_quality_bits`` decision stands).
    degradation, correction_table, register, shape
        The calibration, as in :class:`PrepOptions` (an ingest passes ``**asdict(options)``);
        its :meth:`PrepOptions.steps` are applied in order.

    Returns
    -------
    (sunpy.map.GenericMap, list[dict])
        The calibrated map (``unit`` DN/s, data float32, shape ``shape`` or unchanged) and the
        steps applied: those of :meth:`PrepOptions.steps` with the values used.
    """
    import sunpy.map  # lazy: sunpy.map takes seconds to import

    options = PrepOptions(degradation, correction_table, register, None if shape is None else tuple(shape))
    info = source if isinstance(source, FrameInfo) else read_frame_info(source)
    if options.register is True and not info.full_disk:
        raise BadFrameError(info.path, "not-full-disk", "register=True needs a full-disk image")
    with _known_fits_warnings_quiet():
        smap = sunpy.map.Map(str(info.path))
    applied: list[dict] = []
    if smap.unit is None:
        smap.meta["bunit"] = "DN"
        applied.append({"step": "assume-unit", "bunit": "DN", "why": "BUNIT missing in header"})
    smap = sunpy.map.Map(smap.data.astype(np.float64), smap.meta)
    for step in options.steps(info):
        smap, values = _APPLY[step["step"]](smap, options)
        if values is not None:
            applied.append({**step, **values})
    return sunpy.map.Map(smap.data.astype(np.float32), smap.meta), applied


def _register(smap, options: PrepOptions):
    import aiapy.calibrate  # lazy: aiapy pulls in sunpy.map

    return aiapy.calibrate.register(smap), {}


def _degradation(smap, options: PrepOptions):
    import aiapy.calibrate  # lazy: aiapy pulls in sunpy.map
    import sunpy.map  # lazy: sunpy.map takes seconds to import

    table = load_correction_table(str(options.table_path()))
    factor = float(aiapy.calibrate.degradation(smap.wavelength, smap.date, correction_table=table)[0])
    return sunpy.map.Map(smap.data / factor, smap.meta), {"divided_by": round(factor, 6)}


def _exposure(smap, options: PrepOptions):
    import sunpy.map  # lazy: sunpy.map takes seconds to import

    exptime = smap.exposure_time.to_value(u.s)
    smap = sunpy.map.Map(smap.data / exptime, smap.meta)
    smap.meta["bunit"] = "DN/s"
    return smap, {"divided_by_exptime_s": float(exptime)}


def _downsample(smap, options: PrepOptions):
    shape = tuple(options.shape)
    if shape == smap.data.shape:
        return smap, None  # already at the target size: nothing applied
    ny, nx = smap.data.shape
    if ny % shape[0] == 0 and nx % shape[1] == 0 and ny // shape[0] == nx // shape[1]:
        factor = ny // shape[0]
        return (smap.superpixel([factor, factor] * u.pix, func=np.mean),
                {"function": "superpixel", "factor": factor, "func": "mean"})
    return (smap.resample([shape[1], shape[0]] * u.pix, method="linear"),
            {"function": "resample", "method": "linear"})


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
        raw = fits.getdata(info.path).astype(float)
        smap, _ = prep_frame(info, degradation=False)
        rows.append({"t_obs": info.t_obs, "exptime_s": info.exptime, "aectype": info.aectype,
                     "median_dn": float(np.nanmedian(raw)), "median_dn_per_s": float(np.nanmedian(smap.data))})
    if not rows:
        raise ValueError(f"no valid {channel} Å frame among {len(list(files))} files")
    return pd.DataFrame(rows).set_index("t_obs").sort_index()
