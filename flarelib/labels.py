"""How every table, title and figure names its data: REAL or SYNTHETIC.

Synthetic data must say so wherever a number or a picture of it appears; this is the one
function that decides the word.
"""

from __future__ import annotations

from collections.abc import Mapping


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
