"""Make the embedded real data under data/real/ from the shared, read-only originals.

Run once by a maintainer (the project never reads ../shared at run time):

    python scripts/curate_embedded_data.py --source ../shared/data/real

What it does:
* copies the 60 AIA level-1 cutouts of the X2.2 flare of 2011-02-15 byte for byte;
* downsamples the six 1024x1024 full-disk frames of 2014-01-01 to 256x256 float32 with
  sunpy's ``superpixel`` (4x4 mean), which keeps a valid WCS header; BUNIT, absent in the
  originals, is set to DN and a HISTORY card names the original and its sha256;
* copies the 128x128 full-disk level-1 AIA 171 frame (used to exercise registration);
* copies the GOES XRS files (GOES-15 SDAC FITS days, NOAA netCDF excerpts);
* copies the NOAA flare and active-region history (GOES event list 1996-2018, cycle-24 flare
  positions, region-days with their flares) compiled by hayesla/flare_forecast_proj, byte for byte;
* copies each source repository's licence and writes a SHA256SUMS per folder and the
  provenance table in data/real/PROVENANCE.md.

``--only noaa`` does the NOAA step alone and replaces only its rows of PROVENANCE.md (the other
folders and rows are left as they are).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from flarelib.checksums import sha256_of  # noqa: E402

DEMREGPY = "alasdairwilson__demregpy"
SUNPY = "sunpy__sunpy"
HAYES = "hayesla__flare_forecast_proj"
NOAA_DIR = "noaa_flare_history"
NOAA_FILES = [
    "swpc_flarelist_19960731_20181231.csv",
    "final_flare_list_sc24.csv",
    "AR_flare_ml_23_24.csv",
]
GOES_FILES = [
    "go1520110607.fits",
    "go1520120601.fits.gz",
    "sci_xrsf-l2-avg1m_g15_d20190102_truncated.nc",
    "sci_xrsf-l2-avg1m_g16_d20210101_truncated.nc",
    "sci_xrsf-l2-flx1s_g17_d20201016_truncated.nc",
    "sci_gxrs-l2-irrad_g13_d20170901_truncated.nc",
    "sci_gxrs-l2-irrad_g15_d20131028_truncated.nc",
]
ORIGINS = {
    DEMREGPY: ("demregpy 1.0.0 (PyPI wheel; github alasdairwilson/demregpy), tests/data/",
               "MIT (repository); AIA data: NASA/SDO public data, JSOC marks aia.lev1_euv_12s CC0 1.0"),
    SUNPY: ("sunpy test data (github sunpy/sunpy, sunpy/data/test/)",
            "BSD-2-Clause (repository); GOES data: NOAA public data; AIA data: NASA/SDO public data"),
    HAYES: ("GitHub hayesla/flare_forecast_proj @ 39d9ecc5b498, databases/",
            "MIT (c) 2021 Laura Hayes (repository); underlying NOAA/SWPC event reports and SRS: public data"),
}
PROVENANCE_HEAD = [
    "# Provenance of the embedded real data",
    "",
    "Written by `scripts/curate_embedded_data.py` from the shared originals (see the data README).",
    "",
    "| file (under data/real) | original | origin | licence | processing | sha256 |",
    "|---|---|---|---|---|---|",
]


def write_sums(folder: Path) -> None:
    lines = [f"{sha256_of(p)}  {p.name}" for p in sorted(folder.iterdir()) if p.is_file() and p.name != "SHA256SUMS"
             and p.name != "LICENSE.rst"]
    (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def copy_noaa_history(src: Path, dest: Path) -> list[tuple[str, str, str, str]]:
    """Copy the NOAA flare/region tables and their licence into ``dest/noaa_flare_history``; provenance rows."""
    folder = dest / NOAA_DIR
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in NOAA_FILES:
        shutil.copyfile(src / HAYES / name, folder / name)
        rows.append((f"{NOAA_DIR}/{name}", f"{HAYES}/{name}", HAYES, "copied"))
    shutil.copyfile(src / HAYES / "LICENSE", folder / "LICENSE")
    write_sums(folder)
    return rows


def provenance_line(dest: Path, rel: str, original: str, origin: str, processing: str) -> str:
    where, licence = ORIGINS[origin]
    return f"| `{rel}` | `{original}` | {where} | {licence} | {processing} | `{sha256_of(dest / rel)}` |"


def replace_provenance_rows(dest: Path, prefix: str, rows: list[tuple[str, str, str, str]]) -> None:
    """Rewrite PROVENANCE.md with the rows of files under ``prefix`` replaced by ``rows`` (others kept)."""
    path = dest / "PROVENANCE.md"
    old = path.read_text().splitlines() if path.exists() else list(PROVENANCE_HEAD)
    kept = [line for line in old if not line.startswith(f"| `{prefix}")]
    path.write_text("\n".join(kept + [provenance_line(dest, *row) for row in rows]) + "\n")


def downsample_full_disk(src: Path, dst: Path, size: int = 256) -> None:
    import sunpy.map

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        smap = sunpy.map.Map(str(src))
        factor = smap.data.shape[0] // size
        small = smap.superpixel([factor, factor] * u.pix, func=np.mean)
        small = sunpy.map.Map(small.data.astype(np.float32), small.meta)
        small.meta["bunit"] = "DN"
        small.meta["history"] = (f"flarelib curate: {factor}x{factor} mean superpixel of {src.name} "
                                 f"(sha256 {sha256_of(src)}); BUNIT=DN added (absent in original)")
        small.save(str(dst), overwrite=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/real")
    parser.add_argument("--dest", type=Path, default=Path(__file__).resolve().parents[1] / "data/real")
    parser.add_argument("--only", choices=["all", "noaa"], default="all",
                        help="noaa: copy only the NOAA flare/region history and replace only its provenance rows")
    args = parser.parse_args(argv)
    src, dest = args.source, args.dest
    if args.only == "noaa":
        rows = copy_noaa_history(src, dest)
        replace_provenance_rows(dest, NOAA_DIR + "/", rows)
        print(f"wrote {len(rows)} files under {dest / NOAA_DIR}")
        return 0
    rows = []

    flare = dest / "aia_flare_2011-02-15"
    flare.mkdir(parents=True, exist_ok=True)
    for f in sorted((src / DEMREGPY / "aia_flare").glob("*.fits")):
        shutil.copyfile(f, flare / f.name)
        rows.append((f"{flare.name}/{f.name}", f"{DEMREGPY}/aia_flare/{f.name}", DEMREGPY, "copied"))
    shutil.copyfile(src / DEMREGPY / "LICENSE.rst", flare / "LICENSE.rst")

    disk = dest / "aia_fulldisk_2014-01-01"
    disk.mkdir(parents=True, exist_ok=True)
    for f in sorted((src / DEMREGPY / "aia").glob("*.fits")):
        out = disk / f.name.replace(".fits", "_256.fits")
        downsample_full_disk(f, out)
        rows.append((f"{disk.name}/{out.name}", f"{DEMREGPY}/aia/{f.name}", DEMREGPY,
                     f"4x4 mean superpixel to 256x256 float32 (original sha256 {sha256_of(f)[:16]}...)"))
    shutil.copyfile(src / DEMREGPY / "LICENSE.rst", disk / "LICENSE.rst")

    level1 = dest / "aia_fulldisk_level1_2011-02-15"
    level1.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / SUNPY / "aia_171_level1.fits", level1 / "aia_171_level1.fits")
    shutil.copyfile(src / SUNPY / "LICENSE.rst", level1 / "LICENSE.rst")
    rows.append((f"{level1.name}/aia_171_level1.fits", f"{SUNPY}/aia_171_level1.fits", SUNPY, "copied"))

    goes = dest / "goes_xrs"
    goes.mkdir(parents=True, exist_ok=True)
    for name in GOES_FILES:
        shutil.copyfile(src / SUNPY / name, goes / name)
        rows.append((f"{goes.name}/{name}", f"{SUNPY}/{name}", SUNPY, "copied"))
    shutil.copyfile(src / SUNPY / "LICENSE.rst", goes / "LICENSE.rst")

    for folder in (flare, disk, level1, goes):
        write_sums(folder)
    rows += copy_noaa_history(src, dest)

    lines = list(PROVENANCE_HEAD) + [provenance_line(dest, *row) for row in rows]
    (dest / "PROVENANCE.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {len(rows)} files under {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
