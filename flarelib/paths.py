"""Where things are: the project root, configs, notebooks, the catalog and the build folders.

Every default location of the suite is defined here once; environment variables
override the build locations (``$FLARELIB_CATALOG``, ``$FLARELIB_DATA_DIR``,
``$FLARELIB_RUNS_DIR``, ``$FLARELIB_RESULTS``, ``$FLARELIB_RESULTS_DIR``).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "configs"
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
BUILD_DIR = REPO_ROOT / "build"


def default_catalog_path() -> Path:
    """``$FLARELIB_CATALOG`` or the ``data_catalog.yaml`` at the project root."""
    return Path(os.environ.get("FLARELIB_CATALOG", REPO_ROOT / "data_catalog.yaml"))


def default_build_dir() -> Path:
    """Where cubes are built: ``$FLARELIB_DATA_DIR`` or ``build/data`` at the project root."""
    return Path(os.environ.get("FLARELIB_DATA_DIR", BUILD_DIR / "data"))


def default_runs_dir() -> Path:
    """Where training runs write logs and checkpoints: ``$FLARELIB_RUNS_DIR`` or ``build/runs``."""
    return Path(os.environ.get("FLARELIB_RUNS_DIR", BUILD_DIR / "runs"))


def results_dir() -> Path:
    """Where notebooks write their machine-readable tables (CSV): ``$FLARELIB_RESULTS_DIR`` or ``build/results``."""
    return Path(os.environ.get("FLARELIB_RESULTS_DIR", BUILD_DIR / "results"))


def results_path() -> Path:
    """The key-figures file of a suite run: ``$FLARELIB_RESULTS`` or ``build/results.json``."""
    return Path(os.environ.get("FLARELIB_RESULTS", BUILD_DIR / "results.json"))


def config_path(size: str, config: str | Path | None = None) -> Path:
    """The YAML training config of a notebook run: ``config``, or ``configs/<size>.yaml``."""
    path = Path(config) if config is not None else CONFIG_DIR / f"{size}.yaml"
    if not path.is_file():
        shipped = sorted(p.name for p in CONFIG_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"no config {path}; the shipped ones are {shipped}")
    return path
