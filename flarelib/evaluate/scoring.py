"""Skill scores on arrays (pure NumPy): contingency tables, TSS/HSS/BSS/MAE, ROC and reliability, the
validation-chosen probability threshold, the paired day-block bootstrap and its verdicts, and the small
fits (least squares, logistic regression) the baselines use. The package docstring
(:mod:`flarelib.evaluate`) defines every score.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd

from flarelib.cube.goes import EVENT_CLASSES, FLARE_CLASS_THRESHOLDS

#: Event thresholds in W/m² (>= C1, >= M1).
THRESHOLDS = {c: FLARE_CLASS_THRESHOLDS[c] for c in EVENT_CLASSES}


#: Default bootstrap seed, number of resamples and interval level.
SEED = 2017


N_RESAMPLES = 1000


LEVEL = 0.9


MODEL = "FlareNet"


def threshold_label(letter: str) -> str:
    """``"C"`` -> ``">=C1"``: how a threshold is written in every table."""
    return f">={letter}1"


def contingency(pred_log: np.ndarray, true_log: np.ndarray, threshold: float) -> dict[str, int]:
    """TP, FP, FN, TN of ``pred >= log10(threshold)`` against ``true >= log10(threshold)`` (log10 W/m²).

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
    """Mean absolute error in dex (log10 W/m²) over samples where both are finite."""
    pred_log, true_log = np.asarray(pred_log, float), np.asarray(true_log, float)
    ok = np.isfinite(pred_log) & np.isfinite(true_log)
    return float(np.mean(np.abs(pred_log[ok] - true_log[ok]))) if ok.any() else float("nan")


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, float), np.asarray(den, float)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _tss_hss(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TSS and HSS of arrays of counts (any shape; NaN where undefined)."""
    tss = _safe_div(tp, tp + fn) - _safe_div(fp, fp + tn)
    hss = _safe_div(2 * (tp * tn - fn * fp), (tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))
    return tss, hss


def _as_flags(values: np.ndarray) -> np.ndarray:
    """Bool or 0/1 (NaN = missing) -> float 1/0/NaN."""
    values = np.asarray(values)
    if values.dtype == bool:
        return values.astype(float)
    values = values.astype(float)
    return np.where(np.isfinite(values), (values > 0.5).astype(float), np.nan)


def contingency_cells(yes: np.ndarray, event: np.ndarray) -> np.ndarray:
    """Per-sample indicator of TP, FP, FN, TN: ``yes`` (n, P) and ``event`` (n,) as 1/0/NaN -> (n, 4, P) float."""
    valid = np.isfinite(yes) & np.isfinite(event)[:, None]
    y = (yes == 1) & valid
    n = (yes == 0) & valid
    e = (event == 1)[:, None]
    q = (event == 0)[:, None]
    return np.stack([y & e, y & q, n & e, n & q], axis=1).astype(float)


def day_resample_counts(times: np.ndarray, n_resamples: int = N_RESAMPLES,
                        seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Day-block bootstrap draws: ``(day_code, counts)``.

    ``day_code`` (n,) numbers the calendar day (UTC) of each sample time; ``counts``
    (n_resamples, n_days) says how often each day is drawn in each resample (n_days draws with
    replacement from ``numpy.random.default_rng(seed)``).
    """
    times = np.asarray(times, dtype="datetime64[ns]")
    if np.isnat(times).any():
        raise ValueError("sample times must not be NaT")
    _, code = np.unique(times.astype("datetime64[D]"), return_inverse=True)
    n_days = int(code.max()) + 1 if code.size else 0
    draws = np.random.default_rng(seed).integers(0, max(n_days, 1), size=(n_resamples, n_days))
    flat = (draws + n_days * np.arange(n_resamples)[:, None]).ravel()
    counts = np.bincount(flat, minlength=n_resamples * n_days).reshape(n_resamples, n_days)
    return code.ravel(), counts


def bootstrap_scores(times: np.ndarray, event: np.ndarray, forecasts: Mapping[str, np.ndarray], *,
                     n_resamples: int = N_RESAMPLES, seed: int = SEED, level: float = LEVEL) -> pd.DataFrame:
    """TSS and HSS of yes/no ``forecasts`` with paired day-block bootstrap percentile intervals.

    Args:
        times: sample times (datetime64), one per sample; their UTC calendar days are the blocks.
        event: observed event per sample (bool, or 1/0 with NaN = no truth).
        forecasts: predictor name -> yes forecast per sample (bool, or 1/0 with NaN = no forecast).
            A sample missing in a predictor's forecast or in ``event`` is left out of that predictor.
        n_resamples, seed, level: ``n_resamples`` resamples of the days with replacement from
            ``default_rng(seed)``; the interval is the ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles.

    All predictors are scored on the same day draws (paired). Resamples where a score is undefined
    (no events drawn) are left out of its percentiles. Returns a DataFrame indexed by predictor with
    ``TSS, TSS_lo, TSS_hi, HSS, HSS_lo, HSS_hi`` (the point scores are on all samples).
    """
    names = list(forecasts)
    event = _as_flags(event).ravel()
    yes = np.stack([_as_flags(forecasts[k]).ravel() for k in names], axis=1) if names else np.empty((event.size, 0))
    if yes.shape[0] != event.size or np.asarray(times).size != event.size:
        raise ValueError(f"times ({np.asarray(times).size}), event ({event.size}) and forecasts ({yes.shape[0]}) "
                         "differ in length")
    cells = contingency_cells(yes, event)  # (n, 4, P)
    code, counts = day_resample_counts(times, n_resamples, seed)
    per_day = np.zeros((counts.shape[1], *cells.shape[1:]))
    np.add.at(per_day, code, cells)
    point = per_day.sum(axis=0)  # (4, P)
    drawn = np.tensordot(counts.astype(float), per_day, axes=1)  # (R, 4, P)
    tss, hss = _tss_hss(*point)
    tss_r, hss_r = _tss_hss(*np.moveaxis(drawn, 1, 0))
    q = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (no events ever) stay NaN
        tss_q = np.nanpercentile(tss_r, q, axis=0) if n_resamples else np.full((2, len(names)), np.nan)
        hss_q = np.nanpercentile(hss_r, q, axis=0) if n_resamples else np.full((2, len(names)), np.nan)
    return pd.DataFrame({"TSS": tss, "TSS_lo": tss_q[0], "TSS_hi": tss_q[1],
                         "HSS": hss, "HSS_lo": hss_q[0], "HSS_hi": hss_q[1]},
                        index=pd.Index(names, name="predictor"))


def verdict(a_lo: float, a_hi: float, b_lo: float, b_hi: float) -> str:
    """``"beats"`` if interval a lies wholly above b, ``"loses"`` if wholly below, else ``"ties"``.

    Overlapping (or touching) intervals are a tie. ``"undefined"`` if any bound is NaN.
    """
    bounds = np.array([a_lo, a_hi, b_lo, b_hi], float)
    if not np.isfinite(bounds).all():
        return "undefined"
    if a_lo > b_hi:
        return "beats"
    if a_hi < b_lo:
        return "loses"
    return "ties"


def describe_target(target: str) -> str:
    """``"now"`` -> ``"nowcast"``; ``"lead60min_window1440min"`` -> ``"1h/24h forecast"``."""
    if target in ("now", "nowcast"):
        return "nowcast"
    if target.startswith("lead") and "_window" in target:
        parts = target[4:].split("_window", 1)
        try:
            deltas = [pd.Timedelta(p) for p in parts]
        except ValueError:
            return f"{target} forecast"
        text = [f"{int(d / pd.Timedelta('1h'))}h" if d % pd.Timedelta("1h") == pd.Timedelta(0)
                else f"{int(d / pd.Timedelta('1min'))}min" for d in deltas]
        return f"{text[0]}/{text[1]} forecast"
    return f"{target} forecast"


def format_interval(value: float, lo: float, hi: float) -> str:
    return "undefined" if not np.isfinite(value) else f"{value:.2f} [{lo:.2f}, {hi:.2f}]"


def verdict_sentences(table: pd.DataFrame, *, model: str = MODEL, score: str = "TSS",
                      level: float = LEVEL) -> list[str]:
    """One sentence per (dataset, target, threshold) of a :func:`skill_table`, comparing ``model`` with every
    baseline by :func:`verdict` on the ``score`` intervals.

    Rows whose predictor starts with ``model`` (``FlareNet regression``) are the model's own variants and
    are not compared. Example: ``"SYNTHETIC synthetic-sun-default, ≥M1, 1h/24h forecast: FlareNet TSS 0.41
    [0.30, 0.52] beats climatology 0.00 [0.00, 0.00], ties flare-history persistence 24h 0.38 [0.25, 0.49],
    loses to oracle 0.80 [0.71, 0.88] (12 events in 1440 test samples; 90% day-block bootstrap intervals)."``
    """
    lines = []
    lo, hi = f"{score}_lo", f"{score}_hi"
    for (dataset, target, threshold), group in table.groupby(["dataset", "target", "threshold"], sort=False):
        own = group[group["predictor"] == model]
        if own.empty:
            continue
        m = own.iloc[0]
        parts = []
        for _, b in group.iterrows():
            name = str(b["predictor"])
            if name == model or name.startswith(model + " "):
                continue
            said = verdict(m[lo], m[hi], b[lo], b[hi])
            number = format_interval(b[score], b[lo], b[hi])
            parts.append({"beats": f"beats {name} {number}", "ties": f"ties {name} {number}",
                          "loses": f"loses to {name} {number}",
                          "undefined": f"cannot be compared with {name} ({number})"}[said])
        head = f"{dataset}, {str(threshold).replace('>=', '≥')}, {describe_target(str(target))}: "
        body = f"{model} {score} {format_interval(m[score], m[lo], m[hi])} " + ", ".join(parts)
        n_events, n_samples = int(m["n_events"]), int(m["n_samples"])
        tail = (f" ({n_events} events in {n_samples} {m.get('split', 'test')} samples; "
                f"{100 * level:.0f}% day-block bootstrap intervals)")
        if n_events == 0:
            tail += "; no events, so TSS is undefined"
        elif n_events < 20:
            tail += "; fewer than 20 events, so the intervals are wide"
        lines.append(head + body + tail + ".")
    return lines


def fit_linear(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``y = a + b x`` over finite pairs; returns ``(a, b)`` (:func:`fit_least_squares`
    with one feature)."""
    a, b = fit_least_squares(np.asarray(x, float), y)
    return float(a), float(b)


def fit_least_squares(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares ``y = c0 + x @ c[1:]`` over rows where ``x`` (n, k) and ``y`` (n,) are finite."""
    x, y = np.atleast_2d(np.asarray(x, float).T).T, np.asarray(y, float)
    ok = np.isfinite(x).all(axis=1) & np.isfinite(y)
    if ok.sum() < x.shape[1] + 1:
        raise ValueError("need more finite samples than features to calibrate a baseline")
    design = np.column_stack([np.ones(ok.sum()), x[ok]])
    coef, *_ = np.linalg.lstsq(design, y[ok], rcond=None)
    return coef


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, float)))


def fit_logistic(x: np.ndarray, y: np.ndarray, *, l2: float = 1.0, max_iter: int = 100,
                 tol: float = 1e-10) -> np.ndarray:
    """Logistic regression ``P(y=1) = sigmoid(c0 + x @ c[1:])`` by Newton's method (IRLS).

    ``x`` (n, k) features, ``y`` (n,) 0/1; rows with a non-finite value are left out. ``l2`` is a ridge
    penalty ``l2/2 |c[1:]|²`` on the slopes of the standardized features (as scikit-learn's default
    ``C=1``), which keeps separable data finite; the intercept is not penalized. With only one class
    in ``y`` the fit is the constant rate (clipped to [1e-6, 1 - 1e-6]) with zero slopes.
    """
    x, y = np.atleast_2d(np.asarray(x, float).T).T, np.asarray(y, float)
    ok = np.isfinite(x).all(axis=1) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if y.size == 0:
        raise ValueError("no finite samples to fit a logistic regression")
    k = x.shape[1]
    rate = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
    if y.min() == y.max():
        return np.r_[np.log(rate / (1 - rate)), np.zeros(k)]
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    design = np.column_stack([np.ones(y.size), (x - mean) / std])
    penalty = np.diag(np.r_[0.0, np.full(k, float(l2))])
    beta = np.r_[np.log(rate / (1 - rate)), np.zeros(k)]
    for _ in range(max_iter):
        p = _sigmoid(design @ beta)
        grad = design.T @ (y - p) - penalty @ beta
        hess = design.T @ (design * (p * (1 - p))[:, None]) + penalty
        step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            break
    slopes = beta[1:] / std
    return np.r_[beta[0] - np.sum(slopes * mean), slopes]


def predict_logistic(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Probabilities of a :func:`fit_logistic` fit at ``x`` (n, k); NaN where a feature is NaN."""
    x = np.atleast_2d(np.asarray(x, float).T).T
    return _sigmoid(coef[0] + x @ np.asarray(coef[1:], float))


def _prob_event(prob: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    prob, event = np.asarray(prob, float).ravel(), _as_flags(event).ravel()
    ok = np.isfinite(prob) & np.isfinite(event)
    return prob[ok], event[ok] == 1


def _threshold_counts(prob: np.ndarray, event: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, ...]:
    """TP, FP, FN, TN of ``prob >= t`` for every ``t`` of ``thresholds`` (vectorized by sorting)."""
    p, e = _prob_event(prob, event)
    order = np.argsort(p, kind="stable")
    p, e = p[order], e[order]
    below = np.searchsorted(p, np.asarray(thresholds, float), side="left")  # samples with p < t
    events_below = np.r_[0, np.cumsum(e)][below]
    n_events = int(e.sum())
    tp = n_events - events_below
    fp = (p.size - below) - tp
    return tp, fp, events_below, (p.size - n_events) - fp


def tss_vs_threshold(prob: np.ndarray, event: np.ndarray, thresholds: np.ndarray | None = None) -> pd.DataFrame:
    """TSS, HSS, POD and POFD of the yes forecast ``prob >= threshold`` for each probability threshold
    (default 0, 0.01, ..., 1). Samples with NaN probability or event are left out."""
    thresholds = np.linspace(0, 1, 101) if thresholds is None else np.asarray(thresholds, float)
    tp, fp, fn, tn = _threshold_counts(prob, event, thresholds)
    tss, hss = _tss_hss(tp, fp, fn, tn)
    return pd.DataFrame({"prob_threshold": thresholds, "TSS": tss, "HSS": hss,
                         "POD": _safe_div(tp, tp + fn), "POFD": _safe_div(fp, fp + tn)})


def choose_threshold(prob: np.ndarray, event: np.ndarray, *, default: float = 0.5) -> float:
    """The probability threshold that maximizes TSS of ``prob >= threshold`` on (validation) data.

    Candidates are the lowest probability and the midpoints between consecutive distinct probabilities,
    so every distinct yes/no split is tried; ties go to the lowest threshold. ``default`` if TSS is
    undefined for all (no events or no non-events).
    """
    p, _ = _prob_event(prob, event)
    unique = np.unique(p)
    if unique.size == 0:
        return float(default)
    candidates = np.r_[unique[:1], 0.5 * (unique[1:] + unique[:-1])]
    tss = tss_vs_threshold(prob, event, candidates)["TSS"].to_numpy()
    if not np.isfinite(tss).any():
        return float(default)
    return float(candidates[int(np.nanargmax(tss))])


def _brier(p, e: np.ndarray) -> float:
    """The Brier score ``mean (p - o)²`` of probabilities ``p`` (or one constant probability) for events ``e``."""
    return float(np.mean((p - e) ** 2))


def brier_skill_score(prob: np.ndarray, event: np.ndarray, reference_rate: float) -> float:
    """``1 - BS(prob) / BS(reference_rate)`` on the same samples, where both are finite (the reference is
    climatology: the training base rate). NaN if the reference is perfect (BS 0) or there are no samples."""
    p, e = _prob_event(prob, event)
    if p.size == 0:
        return float("nan")
    reference = _brier(reference_rate, e)
    return 1.0 - _brier(p, e) / reference if reference > 0 else float("nan")


def roc_curve(prob: np.ndarray, event: np.ndarray) -> pd.DataFrame:
    """ROC points (POFD, POD) of ``prob >= t`` for every distinct probability ``t`` (and ``t = inf``: (0, 0))."""
    p, _ = _prob_event(prob, event)
    thresholds = np.r_[np.inf, np.unique(p)[::-1]]
    tp, fp, fn, tn = _threshold_counts(prob, event, thresholds)
    return pd.DataFrame({"prob_threshold": thresholds, "POFD": _safe_div(fp, fp + tn), "POD": _safe_div(tp, tp + fn)})


def roc_auc(prob: np.ndarray, event: np.ndarray) -> float:
    """Area under the ROC curve: P(p_event > p_non-event) + ½ P(tie) (Mann–Whitney). NaN without both classes."""
    p, e = _prob_event(prob, event)
    n1, n0 = int(e.sum()), int((~e).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    _, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]  # average ranks, 1-based
    return float((ranks[e].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def reliability(prob: np.ndarray, event: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Reliability diagram data: per probability bin ``[k/bins, (k+1)/bins)`` (the last closed), the mean
    forecast probability, the observed event frequency and the sample count (NaN for empty bins)."""
    p, e = _prob_event(prob, event)
    edges = np.linspace(0.0, 1.0, bins + 1)
    k = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    count = np.bincount(k, minlength=bins)
    return pd.DataFrame({"bin_lo": edges[:-1], "bin_hi": edges[1:],
                         "mean_forecast": _safe_div(np.bincount(k, weights=p, minlength=bins), count),
                         "observed_frequency": _safe_div(np.bincount(k, weights=e.astype(float), minlength=bins),
                                                         count),
                         "count": count})


def skill_per_block(true_log: np.ndarray, predictions: Mapping[str, np.ndarray], blocks: np.ndarray, *,
                    thresholds: Mapping[str, float] = THRESHOLDS,
                    yes: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                    pooled: bool = True) -> pd.DataFrame:
    """TSS, HSS and MAE of each predictor in each test block (rolling-origin evaluation).

    Args:
        true_log: true log10 flux (log10 W/m²) per sample (pooled over blocks).
        predictions: predictor -> log10 flux per sample (NaN = no forecast).
        blocks: block label per sample (e.g. the fold number or the test block's first day).
        thresholds: class letter -> W/m².
        yes: optional predictor -> {class letter: yes forecast (1/0/NaN)} that replaces the thresholded
            flux for TSS/HSS (e.g. a probability with its validation-chosen threshold).
        pooled: also add rows with ``block == "pooled"`` (all samples together).

    Returns one row per (predictor, threshold, block): ``n_samples, n_events, TSS, HSS, MAE_dex``.
    """
    true_log = np.asarray(true_log, float).ravel()
    blocks = np.asarray(blocks).ravel()
    names = list(predictions)
    preds = np.stack([np.asarray(predictions[k], float).ravel() for k in names], axis=1)
    if preds.shape[0] != true_log.size or blocks.size != true_log.size:
        raise ValueError("true_log, blocks and predictions differ in length")
    labels, code = np.unique(blocks, return_inverse=True)
    groups = [(label, code == k) for k, label in enumerate(labels)]
    if pooled:
        groups.append(("pooled", np.ones(true_log.size, bool)))
    member = np.stack([m for _, m in groups], axis=0).astype(float)  # (G, n)
    ok = np.isfinite(preds) & np.isfinite(true_log)[:, None]
    abs_err = np.where(ok, np.abs(np.nan_to_num(preds) - np.nan_to_num(true_log)[:, None]), 0.0)
    mae_g = _safe_div(member @ abs_err, member @ ok.astype(float))  # (G, P)
    rows = []
    for letter, threshold in thresholds.items():
        event = np.where(np.isfinite(true_log), (true_log >= np.log10(threshold)).astype(float), np.nan)
        flags = np.where(np.isfinite(preds), (preds >= np.log10(threshold)).astype(float), np.nan)
        for p, name in enumerate(names):
            if yes is not None and letter in yes.get(name, {}):
                flags[:, p] = _as_flags(yes[name][letter]).ravel()
        counts = np.tensordot(member, contingency_cells(flags, event), axes=1)  # (G, 4, P)
        tss, hss = _tss_hss(*np.moveaxis(counts, 1, 0))
        n = counts.sum(axis=1)
        n_events = counts[:, 0] + counts[:, 2]
        for g, (label, _) in enumerate(groups):
            for p, name in enumerate(names):
                rows.append({"predictor": name, "threshold": threshold_label(letter), "block": label,
                             "n_samples": int(n[g, p]), "n_events": int(n_events[g, p]),
                             "TSS": tss[g, p], "HSS": hss[g, p], "MAE_dex": mae_g[g, p]})
    return pd.DataFrame(rows)


def block_spread(per_block: pd.DataFrame) -> pd.DataFrame:
    """Spread over blocks of a :func:`skill_per_block` table, per (predictor, threshold): the number of
    blocks, mean, standard deviation (ddof 1), min and max of TSS, HSS and MAE_dex over the blocks
    (NaN scores left out), and the pooled score where the table has ``"pooled"`` rows."""
    is_pooled = per_block["block"].astype(str) == "pooled"
    blocks = per_block[~is_pooled]
    keys = ["predictor", "threshold"]
    grouped = blocks.groupby(keys, sort=False)[["TSS", "HSS", "MAE_dex"]]
    out = grouped.agg(["mean", "std", "min", "max"])
    out.columns = [f"{score}_{stat}" for score, stat in out.columns]
    out.insert(0, "n_blocks", blocks.groupby(keys, sort=False)["block"].nunique())
    if is_pooled.any():
        pooled = per_block[is_pooled].set_index(keys)[["TSS", "HSS", "MAE_dex"]].add_suffix("_pooled")
        out = out.join(pooled)
    return out


def block_labels(times: np.ndarray, cadence: np.timedelta64) -> np.ndarray:
    """Per sample: the first day (``YYYY-MM-DD``) of the contiguous run of samples it belongs to.

    A run breaks where consecutive ``times`` are more than one ``cadence`` apart (a purged gap or another
    split's block), so on a blocked split's test samples each label is one test block.
    """
    times = np.asarray(times, dtype="datetime64[ns]")
    if times.size == 0:
        return np.array([], dtype="<U10")
    order = np.argsort(times, kind="stable")
    breaks = np.concatenate([[True], np.diff(times[order]) > np.timedelta64(cadence, "ns")])
    first = times[order][np.flatnonzero(breaks)[np.cumsum(breaks) - 1]]
    out = np.empty(times.size, dtype="<U10")
    out[order] = np.datetime_as_string(first, unit="D")
    return out
