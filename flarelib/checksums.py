"""Checksums and fingerprints: proving that files and parameters are the ones we expect.

* :func:`sha256_of` hashes a file; :func:`read_checksums`, :func:`verify_files` and
  :func:`write_checksums` handle ``sha256sum``-style lists (``<hex>  <name>`` per line).
* :func:`fingerprint` hashes any JSON-able description (inputs, parameters, a catalog
  entry): every store's ``input_fingerprint`` and every "is this still the same?" check.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
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


def fingerprint(obj) -> str:
    """Hex sha256 of ``obj`` as canonical JSON (sorted keys; other types by ``str``)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


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


def write_checksums(folder: str | Path, paths: Sequence[str | Path], name: str = "SHA256SUMS") -> Path:
    """Merge the sha256 of ``paths`` into ``folder/name`` (``sha256sum`` format, sorted)."""
    folder = Path(folder)
    sums_file = folder / name
    sums = read_checksums(sums_file) if sums_file.is_file() else {}
    for path in paths:
        path = Path(path)
        sums[path.relative_to(folder).as_posix()] = sha256_of(path)
    tmp = sums_file.with_name(sums_file.name + ".tmp")
    tmp.write_text("".join(f"{digest}  {n}\n" for n, digest in sorted(sums.items())))
    tmp.replace(sums_file)
    return sums_file
