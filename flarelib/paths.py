"""Where things are: the project root, configs, notebooks, the catalog and the build folders.

Every default location of the suite is defined here once; environment variables
override the build locations (``$FLARELIB_CATALOG``, ``$FLARELIB_DATA_DIR``,
``$FLARELIB_RUNS_DIR``, ``$FLARELIB_RESULTS``, ``$FLARELIB_RESULTS_DIR``).
:func:`read_config` is the one reader of the YAML training configs that :func:`config_path` finds.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

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


class ConfigError(ValueError):
    """A training config that is not valid YAML, repeats a key or is not a mapping; the message names the file
    (and the line and column of the problem)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (``yaml.safe_load`` keeps the last)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # keys merged in with << may be overridden: only keys written in this mapping count
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, (str, int, float, bool)) or key is None:
            if key in seen:
                raise yaml.constructor.ConstructorError("while constructing a mapping", node.start_mark,
                                                        f"found duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def read_config(path: str | Path) -> dict:
    """The parsed YAML training config at ``path`` (``{}`` for an empty file), sections such as ``model:`` and
    ``data:`` as its keys.

    Raises :class:`ConfigError` with one line naming the file and the line and column of a YAML syntax error or
    of a key given twice in one mapping, or saying that the top level is not a mapping.
    """
    path = Path(path)
    try:
        settings = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # a SafeLoader
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(err.problem or err.context or "not valid YAML").split())
        raise ConfigError(f"{path}{where}: {problem}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: {' '.join(str(err).split())}") from err
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise ConfigError(f"{path}: the top level is a {type(settings).__name__}, not a mapping of sections")
    return settings
