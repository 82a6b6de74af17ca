"""Acquisition: getting input files and proving they are the ones we expect.

This version covers local files: the embedded data under ``data/real`` and any folder a
researcher points a catalog entry at, verified against sha256 checksums. The network
sources (sunpy Fido/JSOC for AIA, SDOML v2 on S3, GOES XRS through Fido, HEK flare lists)
are catalog kinds reserved for the acquisition stage and are not implemented yet.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


class ChecksumError(ValueError):
    """A file is missing or its sha256 differs from the recorded one."""


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_checksums(sums_file: str | Path) -> dict[str, str]:
    """Parse a ``sha256sum``-style file (``<hex>  <name>`` per line) into ``{name: hex}``."""
    sums = {}
    for number, line in enumerate(Path(sums_file).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise ChecksumError(f"{sums_file}:{number}: not a '<sha256>  <file>' line: {line!r}")
        sums[parts[1].strip().lstrip("*")] = parts[0].lower()
    return sums


def verify_files(folder: str | Path, checksums: dict[str, str]) -> list[Path]:
    """Check every listed file under ``folder``; return their paths in name order.

    Raises :class:`ChecksumError` naming the first file that is missing or differs.
    """
    folder = Path(folder)
    paths = []
    for name, expected in sorted(checksums.items()):
        path = folder / name
        if not path.is_file():
            raise ChecksumError(f"{path}: listed in the checksums but missing")
        actual = sha256_of(path)
        if actual != expected.lower():
            raise ChecksumError(f"{path}: sha256 {actual[:16]}... does not match the recorded {expected[:16]}...")
        paths.append(path)
    return paths
