"""flarelib: a thin library behind the FlareNet notebook suite.

The pipeline stages are one module each::

    acquire -> prep -> align -> store -> (data -> model -> metrics -> explain -> widgets)

``goes`` loads GOES/XRS light curves, ``synthetic`` generates the labelled synthetic
sun, ``catalog`` reads ``data_catalog.yaml`` and ``plotting`` holds the notebook plots.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("flarelib")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = ["__version__"]
