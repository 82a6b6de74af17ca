"""Where things are: the project root, configs, notebooks, the catalog and the build folders.

Every default location of the suite is defined here once. The project root (``PROJECT_ROOT``: the catalog
``data_catalog.yaml``, ``configs/``, ``notebooks/`` and the embedded real data ``data/real/``) is

1. ``$FLARELIB_ROOT``, if set (a folder with that layout, e.g. your own copy);
2. else the source checkout this package sits in (``flarelib/..``, recognised by its ``pyproject.toml``
   and ``data_catalog.yaml``): ``make``, the tests and the notebooks run from there;
3. else the copy of those files that an installed wheel ships inside the package (``flarelib/project/``,
   the same layout; pyproject.toml's ``[tool.setuptools]`` puts it there).

Build outputs (``BUILD_DIR``: cubes, runs, results, executed notebooks) go to ``$FLARELIB_BUILD_DIR``, else
``build/`` under the project root in cases 1 and 2, else ``build/`` in the current working directory (an
installed package never writes into site-packages). Environment variables override single build locations
(``$FLARELIB_CATALOG``, ``$FLARELIB_DATA_DIR``, ``$FLARELIB_RUNS_DIR``, ``$FLARELIB_RESULTS``,
``$FLARELIB_RESULTS_DIR``). All of these are read once, at import.
:func:`read_config` is the one reader of the YAML training configs that :func:`config_path` finds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from flarelib.settings import ConfigError, load_yaml

PACKAGE_DIR = Path(__file__).resolve().parent
#: The project's files as an installed wheel ships them (absent in a source checkout).
SHIPPED_ROOT = PACKAGE_DIR / "project"


def _is_checkout(folder: Path) -> bool:
    return (folder / "pyproject.toml").is_file() and (folder / "data_catalog.yaml").is_file()


def _project_root() -> tuple[Path, bool]:
    """The project root and whether build outputs go beside it (False: the shipped copy, build in the cwd)."""
    if os.environ.get("FLARELIB_ROOT"):
        return Path(os.environ["FLARELIB_ROOT"]).resolve(), True
    if _is_checkout(PACKAGE_DIR.parent):
        return PACKAGE_DIR.parent, True
    return SHIPPED_ROOT, False


PROJECT_ROOT, _BUILD_BESIDE_ROOT = _project_root()
CONFIG_DIR = PROJECT_ROOT / "configs"
NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
BUILD_DIR = Path(os.environ.get("FLARELIB_BUILD_DIR")
                 or (PROJECT_ROOT if _BUILD_BESIDE_ROOT else Path.cwd()) / "build").resolve()


def default_catalog_path() -> Path:
    """``$FLARELIB_CATALOG`` or the ``data_catalog.yaml`` at the project root."""
    return Path(os.environ.get("FLARELIB_CATALOG", PROJECT_ROOT / "data_catalog.yaml"))


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


#: The suite's sizes: ``small`` (tests, Binder, workshops) and ``default`` (``make demo``).
SIZES = ("small", "default")


def default_size() -> str:
    """The size a notebook runs at when papermill does not set it: ``$FLARELIB_SIZE`` (Binder's ``start`` sets
    ``small``), else ``small``."""
    size = os.environ.get("FLARELIB_SIZE", "small")
    if size not in SIZES:
        raise ValueError(f"FLARELIB_SIZE must be one of {SIZES}, not {size!r}")
    return size


def artifacts_dir() -> Path:
    """Where notebooks put files for readers (animations): beside ``results.json`` (``build/`` by default)."""
    return results_path().parent


def record(key: str, value) -> None:
    """Store one key figure of a notebook run in :func:`results_path` (shown at the end of ``make demo``)."""
    path = results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(path.read_text()) if path.exists() else {}
    results[key] = value
    path.write_text(json.dumps(results, indent=1, default=str))


def config_path(size: str, config: str | Path | None = None) -> Path:
    """The YAML training config of a notebook run: ``config``, or ``configs/<size>.yaml``."""
    path = Path(config) if config is not None else CONFIG_DIR / f"{size}.yaml"
    if not path.is_file():
        shipped = sorted(p.name for p in CONFIG_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"no config {path}; the shipped ones are {shipped}")
    return path


def read_config(path: str | Path) -> dict:
    """The parsed YAML training config at ``path`` (``{}`` for an empty file), sections such as ``model:`` and
    ``data:`` as its keys.

    Raises :class:`ConfigError` with one line ``file:line:col: problem`` for a YAML syntax error or a key given
    twice in one mapping (naming both its lines; :func:`flarelib.settings.load_yaml`), or saying that the top
    level is not a mapping.
    """
    path = Path(path)
    settings = load_yaml(path, error=ConfigError)
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise ConfigError(f"{path}: the top level is a {type(settings).__name__}, not a mapping of sections")
    return settings
