"""The words and colours readers see: REAL or SYNTHETIC, the attribution methods' names, the class colours.

Synthetic data must say so wherever a number or a picture of it appears; :func:`data_kind` is the one
function that decides the word. :data:`METHOD_LABELS` (through :func:`method_label`) names the attribution
methods in every title and menu, and :data:`CLASS_COLOURS` colours the GOES classes in every figure.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

#: How each attribution method (:data:`flarelib.explain.METHODS` and the CAM methods) is named to readers.
METHOD_LABELS = {"gradcam": "Grad-CAM", "hirescam": "HiResCAM", "integrated_gradients": "Integrated Gradients",
                 "saliency": "gradient saliency", "smoothgrad": "SmoothGrad", "guided_gradcam": "Guided Grad-CAM",
                 "occlusion": "occlusion"}
#: One colour per GOES class (weakest grey, strongest red; M orange, so that M and X differ).
CLASS_COLOURS = {"<A": "0.8", "A": "0.6", "B": "tab:blue", "C": "tab:green", "M": "tab:orange", "X": "tab:red"}


def data_kind(source) -> str:
    """``"SYNTHETIC"`` or ``"REAL"``.

    ``source`` is a flag, an attrs mapping, an object with ``.attrs`` (a cube, an XRS
    dataset, a saliency store) or with a ``.synthetic`` flag (a data module). Attrs count
    as synthetic when ``synthetic`` is true or the GOES scaling is ``"synthetic"``.
    """
    if isinstance(source, bool):
        return "SYNTHETIC" if source else "REAL"
    if hasattr(source, "attrs"):  # before the Mapping test: an xarray Dataset is a Mapping of its variables
        source = source.attrs
    elif not isinstance(source, Mapping):
        return data_kind(bool(source.synthetic))
    synthetic = bool(source.get("synthetic", False)) or source.get("goes_scaling") == "synthetic"
    return "SYNTHETIC" if synthetic else "REAL"


def method_label(method: str) -> str:
    """How a method is named to readers (``gradcam`` -> ``Grad-CAM``; an unlisted one with spaces for ``_``)."""
    return METHOD_LABELS.get(method, method.replace("_", " "))


def duration_label(delta) -> str:
    """A duration as the catalog writes it and messages say it: ``15min``, ``1h``, ``24h``, ``30s`` (whole hours, else
    whole minutes, else seconds; ``delta`` anything ``pandas.Timedelta`` takes)."""
    seconds = int(round(pd.Timedelta(delta).total_seconds()))
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}min"
    return f"{seconds}s"
