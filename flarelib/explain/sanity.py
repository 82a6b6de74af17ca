"""The randomization sanity check (Adebayo et al. 2018): cascading model-parameter randomization, Spearman
rho on absolute and on signed maps; a NaN rho is a failure (``randomization.csv``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr
from torch import nn

from flarelib.explain.attribution import CAM_METHODS, attribute, cam_maps, check_time_index, conv_layers
from flarelib.explain.localize import score_map, write_table
from flarelib.learn.data import FlareDataModule
from flarelib.paths import results_dir

RANDOMIZATION_COLUMNS = ["method", "randomized_to", "spearman_abs", "spearman_signed", "mass_inside_original",
                         "mass_inside", "chance"]
#: A randomized model's maps must lose at least this share of the original maps' localization above chance.
LOCALIZATION_DROP = 0.5


def _method_maps(model: nn.Module, source, index, method: str, head: str, params: dict) -> np.ndarray:
    """The maps a randomization compares: CAMs at their own resolution, the others per channel."""
    if method in CAM_METHODS:
        return cam_maps(model, source, index, method, block=params.get("block"), signed=params.get("signed", False),
                        head=head).values
    return attribute(model, source, index, method, head=head, **params).values


def _layer_label(model: nn.Module, name: str) -> str:
    """A layer named for people: ``"block 2 conv"``, ``"dense layer 1"``, ``"output layer"``."""
    convs = list(conv_layers(model))
    if name in convs:
        return f"block {convs.index(name) + 1} conv"
    if name == "regressor":
        return "output layer"
    if name == "classifier":
        return "class head"
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n not in ("regressor", "classifier")]
    if name in linears:
        return f"dense layer {linears.index(name) + 1}"
    return name


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return np.nan  # a constant map: rank correlation undefined
    return float(spearmanr(a.ravel(), b.ravel()).statistic)


def _mass_inside(maps: np.ndarray, masks: np.ndarray | None) -> float:
    """Mean share of the maps' positive mass inside ``masks`` (per-channel maps summed over channels first)."""
    if masks is None:
        return np.nan
    planes = maps.sum(axis=1) if maps.ndim == 4 else maps
    return float(np.mean([np.nan_to_num(score_map(v, m)["mass_inside"]) for v, m in zip(planes, masks)]))


def randomization_test(model: nn.Module, dm: FlareDataModule, time_index: Sequence[int], method: str,
                       *, head: str = "flux", seed: int = 0, masks: np.ndarray | None = None,
                       **params) -> pd.DataFrame:
    """Cascading model-parameter randomization (Adebayo et al. 2018), from the top layer down.

    Re-initializes the layers with parameters one at a time from the output towards the input
    (cumulatively) and reports the Spearman rank correlation between the original and the
    randomized maps, on absolute values (``spearman_abs``) and on signed values
    (``spearman_signed``), the mean over the frames. A map that is constant on a frame (e.g. a
    rectified Grad-CAM that is all zero) has no rank correlation: that frame's rho is NaN and so
    is the mean, and :func:`randomization_verdict` counts NaN as a failure, not a pass.

    With ``masks`` (T, ny, nx, the frames' ground truth, e.g. :func:`~flarelib.explain.scoring_frames`' masks) it
    also scores what matters for an explanation: the share of the maps' mass inside the mask, of the original
    model (``mass_inside_original``) and of each randomized one (``mass_inside``), beside ``chance`` (the masks'
    mean area: what a random map scores); a map that still points at the flare after the weights are random does
    not explain the model. Columns: :data:`RANDOMIZATION_COLUMNS` plus ``layer`` (the module's own name).
    """
    index = check_time_index(dm, time_index)
    masks = None if masks is None else np.asarray(masks, bool)
    if masks is not None and masks.shape[0] != index.size:
        raise ValueError(f"{masks.shape[0]} masks for {index.size} frames")
    original = _method_maps(model, dm, index, method, head, params)
    mass_original = _mass_inside(original, masks)
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))
              and (head == "prob_M" or name != "classifier")]
    randomized = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    modules = dict(randomized.named_modules())
    rows = []
    for name, _ in reversed(layers):
        layer = modules[name]
        with torch.no_grad():
            weight = torch.randn(layer.weight.shape, generator=generator) * layer.weight.std(correction=0)
            layer.weight.copy_(weight.to(layer.weight.device))
            if layer.bias is not None:
                bias = torch.randn(layer.bias.shape, generator=generator) * (layer.bias.std(correction=0) + 1e-3)
                layer.bias.copy_(bias.to(layer.bias.device))
        maps = _method_maps(randomized, dm, index, method, head, params)
        rho_abs = [_spearman(np.abs(a), np.abs(b)) for a, b in zip(original, maps)]
        rho_signed = [_spearman(a, b) for a, b in zip(original, maps)]
        rows.append({"method": method, "randomized_to": _layer_label(model, name),
                     "spearman_abs": float(np.mean(rho_abs)), "spearman_signed": float(np.mean(rho_signed)),
                     "mass_inside_original": mass_original, "mass_inside": _mass_inside(maps, masks),
                     "chance": float(masks.mean()) if masks is not None else np.nan, "layer": name})
    return pd.DataFrame(rows)


def randomization_table(model: nn.Module, dm: FlareDataModule, time_index: Sequence[int],
                        methods: Sequence[str] = ("saliency", "integrated_gradients", "gradcam", "hirescam",
                                                  "guided_gradcam"), **params) -> pd.DataFrame:
    """:func:`randomization_test` for several methods, stacked (one row per method and layer)."""
    return pd.concat([randomization_test(model, dm, time_index, m, **params) for m in methods], ignore_index=True)


def randomization_verdict(table: pd.DataFrame, threshold: float = 0.2, *, drop: float = LOCALIZATION_DROP
                          ) -> pd.DataFrame:
    """Per method, after the last (full) randomization: both rhos, and ``passes_spearman`` when both are finite and
    below ``threshold`` in absolute value (a NaN rho fails: the test could not show the map changed).

    Where the table scored localization (:func:`randomization_test` with masks): ``localization_drop``, the share of
    the original maps' mass inside the mask above chance (the masks' area, column ``chance``) that the
    randomized maps lost, and ``passes_localization`` when it is at least ``drop``; a method whose original maps
    do not beat chance cannot show a drop and fails. ``passes`` needs both (Spearman alone without masks).
    """
    last = table.groupby("method", sort=False).tail(1).set_index("method")
    out = last[["randomized_to", "spearman_abs", "spearman_signed"]].copy()
    finite = np.isfinite(out["spearman_abs"]) & np.isfinite(out["spearman_signed"])
    small = (out["spearman_abs"].abs() < threshold) & (out["spearman_signed"].abs() < threshold)
    out["passes_spearman"] = finite & small
    out["passes"] = out["passes_spearman"]
    if "mass_inside" in last and last["mass_inside"].notna().any():
        above = last["mass_inside_original"] - last["chance"]
        out["mass_inside_original"], out["mass_inside"] = last["mass_inside_original"], last["mass_inside"]
        out["localization_drop"] = ((last["mass_inside_original"] - last["mass_inside"]) / above).where(above > 0)
        out["passes_localization"] = out["localization_drop"].fillna(-np.inf) >= drop
        out["passes"] = out["passes_spearman"] & out["passes_localization"]
    return out


def write_randomization(table: pd.DataFrame, path: str | Path | None = None) -> Path:
    """Write a randomization table (columns exactly :data:`RANDOMIZATION_COLUMNS`) to
    ``results_dir()/randomization.csv``."""
    return write_table(table, RANDOMIZATION_COLUMNS, path or results_dir() / "randomization.csv")
