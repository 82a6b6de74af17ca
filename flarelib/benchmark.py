"""Score your own full-disk >= M1 forecast against the real Sun and every reference on the same days.

    python -m flarelib.benchmark score PREDICTIONS.csv [--threshold 0.5] [--name NAME] [--out FILE.csv]
                                                       [--paired FILE.csv] [--debug]

``PREDICTIONS.csv`` has the columns ``timestamp`` (the issue time: a daily 00:30 UT SRS time of the cycle-24
test span, 2011-01-01 to 2018-12-16; ISO text, UTC) and ``probability`` (of a flare at or above M1 peaking in
``(timestamp, timestamp + 24 h]``, in [0, 1]). Your forecast says yes at ``probability >= threshold``. It is
scored on exactly the days it covers, beside every reference forecast of :mod:`flarelib.evaluate.real` on the
same days (with their validation-chosen thresholds), and paired against each (the block bootstrap of the
difference on the same draws). A bad file is one line naming what is wrong (:class:`PredictionsError`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from flarelib.evaluate import real
from flarelib.evaluate.scoring import LEVEL, N_RESAMPLES, SEED
from flarelib.evaluate.skill import (
    Forecasts,
    SplitForecasts,
    forecasts_skill_table,
    paired_table,
    write_paired_csv,
    write_skill_csv,
)
from flarelib.runner import DEBUG_HELP, run_command

#: The class letter a submitted forecast is scored at (>= M1), and its threshold in W/m².
LETTER = "M"
#: How many offending values an error message shows.
SHOWN = 3


class PredictionsError(ValueError):
    """A predictions file cannot be scored; the message says which rows and why, in one line."""


def _examples(values) -> str:
    values = [str(v) for v in values]
    return ", ".join(values[:SHOWN]) + (f" and {len(values) - SHOWN} more" if len(values) > SHOWN else "")


def read_predictions(path_or_table: str | Path | pd.DataFrame) -> pd.DataFrame:
    """A predictions CSV (or table) checked: ``timestamp`` (UTC datetime64[ns]) and ``probability`` (float64 in
    [0, 1]), no timestamp twice. Raises :class:`PredictionsError` otherwise."""
    if isinstance(path_or_table, pd.DataFrame):
        table, where = path_or_table, "predictions"
    else:
        where = Path(path_or_table).name
        try:
            table = pd.read_csv(path_or_table, dtype=str, keep_default_na=False)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise PredictionsError(f"{where}: cannot read it as CSV: {str(err).splitlines()[0]}") from None
    missing = [c for c in ("timestamp", "probability") if c not in table.columns]
    if missing:
        raise PredictionsError(f"{where}: no column {missing}; it needs timestamp, probability "
                               f"(it has {list(table.columns)})")
    if table.empty:
        raise PredictionsError(f"{where}: no rows")
    text = table["timestamp"].astype(str).str.strip()
    times = pd.to_datetime(text, errors="coerce", utc=True).dt.tz_localize(None)
    if times.isna().any():
        raise PredictionsError(f"{where}: timestamp not a time in rows {_examples(np.flatnonzero(times.isna()))} "
                               f"({_examples(text[times.isna()])})")
    prob = pd.to_numeric(table["probability"], errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(prob) | (prob < 0) | (prob > 1)
    if bad.any():
        raise PredictionsError(f"{where}: probability outside [0, 1] (or not a number) in rows "
                               f"{_examples(np.flatnonzero(bad))} ({_examples(table['probability'][bad])})")
    duplicated = times.duplicated(keep=False)
    if duplicated.any():
        raise PredictionsError(f"{where}: timestamp given more than once: {_examples(times[duplicated].unique())}")
    return pd.DataFrame({"timestamp": times.astype("datetime64[ns]").to_numpy(), "probability": prob})


def _covered(f: Forecasts, predictions: pd.DataFrame) -> np.ndarray:
    """Positions of the predictions' timestamps among the test issue times; PredictionsError for the others."""
    issue = pd.DatetimeIndex(f.test.times)
    where = issue.get_indexer(pd.DatetimeIndex(predictions["timestamp"]))
    if (where < 0).any():
        outside = predictions["timestamp"][where < 0]
        first, last = (str(t)[:16] for t in (issue[0], issue[-1]))
        raise PredictionsError(f"{int((where < 0).sum())} timestamp(s) are not issue times of the real test data "
                               f"(daily at 00:30 UT from {first} to {last}): {_examples(outside)}")
    return where


def score_forecast(predictions: str | Path | pd.DataFrame, *, threshold: float = 0.5, name: str = "submitted",
                   forecasts: real.RealForecasts | None = None, history: real.RealHistory | None = None,
                   n_resamples: int = N_RESAMPLES, seed: int = SEED,
                   level: float = LEVEL) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score a full-disk >= M1 forecast (``timestamp``, ``probability``: see the module docstring) on exactly the
    test days it covers, beside every reference forecast on the same days.

    ``threshold``: the forecast's own yes/no probability threshold (the references keep theirs, chosen on
    validation). ``forecasts``: a :func:`flarelib.evaluate.real.real_forecasts` result to reuse, else made
    from ``history`` (:func:`flarelib.evaluate.real.load_real_history` when None). Returns
    ``(skill, paired)``: the skill rows of ``name`` and every reference (:data:`SKILL_COLUMNS`, one per
    predictor at >= M1) and ``name`` paired against every reference (:data:`PAIRED_COLUMNS`). Raises
    :class:`PredictionsError` for a bad file or timestamps outside the test data.
    """
    if not 0.0 <= float(threshold) <= 1.0:
        raise PredictionsError(f"threshold {threshold} is not a probability in [0, 1]")
    table = read_predictions(predictions)
    if forecasts is None:
        history = history if history is not None else real.load_real_history()
        forecasts = real.real_forecasts(history)
    f = forecasts.full_disk
    if name in f.predictors:
        raise PredictionsError(f"name {name!r} is a reference forecast's; choose another")
    at = _covered(f, table)
    order = np.argsort(at, kind="stable")
    at, prob = at[order], table["probability"].to_numpy(np.float64)[order]
    test = SplitForecasts("test", f.test.time_index[at], f.test.times[at], f.test.flux[at],
                          {k: v[at] for k, v in f.test.log.items()},
                          {k: {LETTER: v[LETTER][at]} for k, v in f.test.prob.items()})
    test.log[name] = np.full(at.size, np.nan)
    test.prob[name] = {LETTER: prob}
    thresholds = {LETTER: f.thresholds[LETTER]}
    distinct = real.distinct_flares(forecasts.peak, forecasts.peak_flux, test.times, thresholds[LETTER])
    sub = dataclasses.replace(f, thresholds=thresholds, base_rate={LETTER: f.base_rate[LETTER]}, test=test,
                              prob_threshold={**f.prob_threshold, (name, LETTER): float(threshold)},
                              block={LETTER: f.block_of(LETTER)}, distinct={LETTER: distinct})
    skill = forecasts_skill_table(sub, n_resamples=n_resamples, seed=seed, level=level)
    references = [p for p in sub.predictors if p != name]
    paired = paired_table(sub, [(name, ref) for ref in references], n_resamples=n_resamples, seed=seed, level=level)
    return skill, paired


def _run(args: argparse.Namespace) -> int:
    skill, paired = score_forecast(args.predictions, threshold=args.threshold, name=args.name)
    shown = skill.set_index("predictor")[["n_samples", "n_events", "TSS", "TSS_lo", "TSS_hi", "BSS", "AUC"]]
    print(f"REAL {skill['dataset'].iloc[0]}, full disk >= M1 in the next 24 h, cycle-24 test days covered: "
          f"{int(skill['n_samples'].max())}")
    print(shown.round(3).to_string())
    for _, row in paired.iterrows():
        print(f"{row['predictor']} - {row['reference']}: dTSS {row['dTSS']:+.3f} "
              f"[{row['dTSS_lo']:+.3f}, {row['dTSS_hi']:+.3f}]")
    if args.out:
        print(f"wrote {write_skill_csv(skill, args.out)}")
    if args.paired:
        print(f"wrote {write_paired_csv(paired, args.paired)}")
    return 0


def _parse_and_run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m flarelib.benchmark", epilog=DEBUG_HELP,
                                     description="score a full-disk >= M1 forecast on the real cycle-24 test days")
    parser.add_argument("command", choices=["score"])
    parser.add_argument("predictions", help="CSV with columns timestamp, probability")
    parser.add_argument("--threshold", type=float, default=0.5, help="yes when probability >= this (default 0.5)")
    parser.add_argument("--name", default="submitted", help="the forecast's name in the tables")
    parser.add_argument("--out", default=None, help="write the skill rows to this CSV")
    parser.add_argument("--paired", default=None, help="write the paired comparisons to this CSV")
    return _run(parser.parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    """``python -m flarelib.benchmark score PREDICTIONS.csv ...``; a failure is one line and status 1."""
    return run_command(_parse_and_run, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    raise SystemExit(main())
