"""Metrics stage: flare-forecast skill scores and the baselines every model is scored against.

Forecasts and truths are log10 GOES XRS-B flux (W/m²). An *event* is a true flux at or
above a class threshold (``C`` = 1e-6, ``M`` = 1e-5 W/m²); a *yes forecast* is a predicted
flux at or above it. From the 2x2 contingency table (TP, FP, FN, TN):

* POD = TP / (TP + FN)  (probability of detection, recall)
* FAR = FP / (TP + FP)  (false-alarm ratio)
* TSS = POD - FP / (FP + TN)  (true skill statistic; 0 for any constant forecast)
* HSS = 2 (TP TN - FN FP) / ((TP + FN)(FN + TN) + (TP + FP)(FP + TN))  (Heidke; depends on the base rate)
* MAE = mean |pred - true| in dex (log10 flux)

A score whose denominator is zero (e.g. POD with no events) is NaN: undefined, not zero.

Baselines, computed on the same samples as the model:

* **persistence**: the latest GOES flux at issue time predicts the target
  (for a forecast the flux at ``t``; for a nowcast the flux one cadence earlier);
* **climatology**: the mean training-block log flux, a constant (so TSS = 0 by construction);
* **brightest pixel**: ``a + b log10(max DN/s of a hot channel)``, fitted on the training
  block; the idea of FlareNet's ``fdl4`` network (1x1 conv + global max pool).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import zarr

from flarelib.data import read_frames
from flarelib.goes import EVENT_CLASSES, FLARE_CLASS_THRESHOLDS
from flarelib.labels import data_kind

#: Event thresholds in W/m² (>= C1, >= M1).
THRESHOLDS = {c: FLARE_CLASS_THRESHOLDS[c] for c in EVENT_CLASSES}


def contingency(pred_log: np.ndarray, true_log: np.ndarray, threshold: float) -> dict[str, int]:
    """TP, FP, FN, TN of ``pred >= log10(threshold)`` against ``true >= log10(threshold)``.

    NaN in either array drops the sample.
    """
    pred_log, true_log = np.asarray(pred_log, float), np.asarray(true_log, float)
    if pred_log.shape != true_log.shape:
        raise ValueError(f"pred {pred_log.shape} and true {true_log.shape} differ in shape")
    ok = np.isfinite(pred_log) & np.isfinite(true_log)
    level = np.log10(threshold)
    yes, event = pred_log[ok] >= level, true_log[ok] >= level
    return {"TP": int(np.sum(yes & event)), "FP": int(np.sum(yes & ~event)),
            "FN": int(np.sum(~yes & event)), "TN": int(np.sum(~yes & ~event))}


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else float("nan")


def scores(table: Mapping[str, int]) -> dict[str, float]:
    """POD, FAR, POFD, TSS and HSS of a contingency table (NaN where undefined)."""
    tp, fp, fn, tn = (table[k] for k in ("TP", "FP", "FN", "TN"))
    pod = _ratio(tp, tp + fn)
    pofd = _ratio(fp, fp + tn)
    hss_den = (tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)
    return {"POD": pod, "FAR": _ratio(fp, tp + fp), "POFD": pofd, "TSS": pod - pofd,
            "HSS": _ratio(2 * (tp * tn - fn * fp), hss_den)}


def mae(pred_log: np.ndarray, true_log: np.ndarray) -> float:
    """Mean absolute error in dex over samples where both are finite."""
    pred_log, true_log = np.asarray(pred_log, float), np.asarray(true_log, float)
    ok = np.isfinite(pred_log) & np.isfinite(true_log)
    return float(np.mean(np.abs(pred_log[ok] - true_log[ok]))) if ok.any() else float("nan")


def skill_table(predictions: Mapping[str, np.ndarray], true_log: np.ndarray, *, dataset: str, target: str,
                thresholds: Mapping[str, float] = THRESHOLDS) -> pd.DataFrame:
    """One row per (predictor, threshold): contingency counts, POD, FAR, TSS, HSS, MAE, events.

    ``predictions`` maps a predictor name (the model and each baseline) to log10 flux on the
    same samples as ``true_log``. ``dataset`` (e.g. ``"SYNTHETIC synthetic-sun-default, test
    block"``) and ``target`` go into every row so the table never travels without them.
    """
    rows = []
    for name, pred in predictions.items():
        for label, threshold in thresholds.items():
            table = contingency(pred, true_log, threshold)
            rows.append({"dataset": dataset, "target": target, "predictor": name, "threshold": f">={label}1",
                         **table, **scores(table), "MAE_dex": mae(pred, true_log),
                         "events": table["TP"] + table["FN"], "samples": sum(table.values())})
    return pd.DataFrame(rows).set_index(["target", "predictor", "threshold"])


# --------------------------------------------------------------------------- baselines

def persistence(flux_now: np.ndarray, time_index: np.ndarray, *, nowcast: bool) -> np.ndarray:
    """log10 of the latest flux known at issue time for the samples at ``time_index``.

    ``flux_now`` is the cube's (time,) W/m². A nowcast cannot use the flux it predicts, so
    its persistence is the previous time step's flux (NaN for the first step).
    """
    flux_now = np.asarray(flux_now, float)
    index = np.asarray(time_index) - (1 if nowcast else 0)
    value = np.where(index >= 0, flux_now[np.clip(index, 0, None)], np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(value > 0, np.log10(value), np.nan)


def climatology(train_log: np.ndarray, n: int) -> np.ndarray:
    """The training-block mean log10 flux, repeated ``n`` times."""
    return np.full(n, np.nanmean(np.asarray(train_log, float)))


@functools.lru_cache(maxsize=8)
def _brightest_pixel_series(store: str, channel_index: int, mtime: float) -> np.ndarray:
    n = zarr.open_group(store, mode="r")["aia"].shape[0]
    out = np.full(n, np.nan)
    for pos, frames in read_frames(store, np.arange(n), np.array([channel_index]), batch=512):
        peak = np.nanmax(frames[:, 0].reshape(len(pos), -1), axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[pos] = np.where(peak > 0, np.log10(peak), np.nan)
    out.flags.writeable = False
    return out


def brightest_pixel(store: str | Path, time_index: np.ndarray, channel_index: int) -> np.ndarray:
    """log10 of the maximum DN/s of one channel at the time steps ``time_index`` (NaN-safe).

    The whole series of the channel is read once, in contiguous batches, and memoized per store.
    """
    store = str(store)
    mtime = (Path(store) / ".zmetadata").stat().st_mtime if (Path(store) / ".zmetadata").exists() else 0.0
    return _brightest_pixel_series(store, int(channel_index), mtime)[np.asarray(time_index)]


def fit_linear(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``y = a + b x`` over finite pairs; returns ``(a, b)``."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2:
        raise ValueError("need at least two finite samples to calibrate a baseline")
    b, a = np.polyfit(x[ok], y[ok], 1)
    return float(a), float(b)


def baseline_predictions(dm, test: np.ndarray, *, hot_channels: tuple[int, ...] = (94, 131)) -> dict[str, np.ndarray]:
    """Persistence, climatology and brightest-pixel predictions for the cube time steps ``test``.

    ``dm`` is a set-up :class:`flarelib.data.FlareDataModule`; everything calibrated is
    calibrated on its training block. The brightest-pixel channel is whichever of
    ``hot_channels`` (present in the cube) fits the training block best.
    """
    train = dm.split_index["train"]
    train_log = dm.target.log_flux[train]
    nowcast = dm.target.horizon == np.timedelta64(0, "ns")
    out = {"persistence": persistence(dm.flux_now, test, nowcast=nowcast),
           "climatology": climatology(train_log, len(test))}
    best = None
    for channel in hot_channels:
        if channel not in dm.cube_channels:
            continue
        k = dm.cube_channels.index(channel)
        x_train = brightest_pixel(dm.store_path, train, k)
        a, b = fit_linear(x_train, train_log)
        residual = mae(a + b * x_train, train_log)
        if best is None or residual < best[0]:
            best = (residual, channel, k, a, b)
    if best is not None:
        _, channel, k, a, b = best
        out[f"brightest pixel {channel} Å"] = a + b * brightest_pixel(dm.store_path, test, k)
    return out


def evaluate(predictions: xr.Dataset, dm, *, thresholds: Mapping[str, float] = THRESHOLDS) -> pd.DataFrame:
    """Skill table of a model's ``predictions`` (from :func:`flarelib.flarenet.predict`) and the baselines.

    All predictors are scored on exactly the samples of ``predictions`` (one split of ``dm``).
    """
    test = predictions["time_index"].values
    preds = {"FlareNet": predictions["pred"].values.astype(float), **baseline_predictions(dm, test)}
    name = dm.cube_attrs.get("name", dm.store_path.name)
    dataset = f"{data_kind(dm.synthetic)} {name}, {predictions.attrs.get('split', '?')} block"
    return skill_table(preds, predictions["true"].values.astype(float), dataset=dataset,
                       target=predictions.attrs.get("target", dm.target.name), thresholds=thresholds)


def compare_to_persistence(table: pd.DataFrame, model: str = "FlareNet") -> str:
    """One sentence per threshold saying whether ``model`` beats persistence (TSS and MAE), from the numbers."""
    target = table.index.get_level_values("target")[0]
    lines = []
    for threshold in dict.fromkeys(table.index.get_level_values("threshold")):
        m, p = table.loc[(target, model, threshold)], table.loc[(target, "persistence", threshold)]
        if np.isnan(m["TSS"]) or np.isnan(p["TSS"]):
            verdict = "TSS is undefined (no events of this class in the test block)"
        elif m["TSS"] > p["TSS"]:
            verdict = f"{model} beats persistence on TSS ({m['TSS']:.2f} vs {p['TSS']:.2f})"
        else:
            verdict = f"{model} does NOT beat persistence on TSS ({m['TSS']:.2f} vs {p['TSS']:.2f})"
        lines.append(f"{target}, {threshold}: {verdict}; events in test: {int(m['events'])}.")
    m_mae = table.loc[(target, model), "MAE_dex"].iloc[0]
    p_mae = table.loc[(target, "persistence"), "MAE_dex"].iloc[0]
    better = "lower" if m_mae < p_mae else "NOT lower"
    lines.append(f"{target}: {model} MAE {m_mae:.3f} dex is {better} than persistence's {p_mae:.3f} dex.")
    return "\n".join(lines)


def summary_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The columns a reader needs (counts, POD, FAR, TSS, HSS, MAE), rounded for display."""
    columns = ["TP", "FP", "FN", "TN", "POD", "FAR", "TSS", "HSS", "MAE_dex"]
    return table[columns].round(3)
