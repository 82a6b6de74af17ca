"""Data stage: from a flarelib cube (Zarr) to leakage-safe training samples.

* :func:`resolve_target` picks the target of a cube: ``"now"`` (``flux_now``) or one
  forecast label (``flux_max``), as log10 W/m².
* :func:`blocked_split` assigns time steps to train/val/test in contiguous time blocks and
  purges the samples whose input or target window would reach past their block, so that
  no two splits share a frame or a target window (property-tested with hypothesis).
* :class:`Normalizer` is the per-channel scaling (log10 or asinh, then standardization)
  fitted on the training block only; it travels inside the model checkpoint.
* :class:`CubeSamples` is the torch Dataset. Each DataLoader worker opens the store
  lazily, so spawn and forkserver work. With ``cache="memory"`` or ``"device"`` the
  normalized frames are read once, in contiguous batches, into one float16 tensor (in
  host or accelerator memory) and batches are gathered from it.
* :class:`FlareDataModule` is the LightningDataModule that ties it together.

Shapes: one sample is ``x`` float32 ``(frames * C, ny, nx)`` (normalized, NaN -> 0; with
``frames > 1`` the frames ``t - (frames - 1) * frame_step, ..., t`` are stacked oldest first, each
with its ``C`` channels), ``y`` float32 log10 W/m², ``w`` float32 sample weight, ``i`` the time
index in the cube and ``aux`` float32 ``(len(goes_inputs),)``: the GOES inputs known at ``t``
(:func:`goes_features`; empty when the model reads images only).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as L
import torch
import xarray as xr
import zarr
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler
from tqdm.auto import tqdm

from flarelib.cube.align import to_timedelta
from flarelib.cube.catalog import load_catalog
from flarelib.cube.goes import CLASS_ORDER, EVENT_CLASSES, FLARE_CLASS_THRESHOLDS, flare_class
from flarelib.cube.prep import DEFAULT_CHANNELS, SanityRules
from flarelib.cube.store import checked_store, cube_cadence, open_cube
from flarelib.labels import data_kind, duration_label
from flarelib.paths import read_config
from flarelib.settings import merge_settings

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
NOWCAST = "now"


#: GOES inputs a forecast model may read besides the images: the XRS-B flux at the issue time ``t``
#: (``"now"``) and its max over ``[t - H, t]`` (the cube's ``flux_history_max`` labels, e.g. ``"6h"``).
GOES_NOW = "now"
#: Offset of the GOES input features: ``log10(flux / W m-2) + GOES_FEATURE_OFFSET`` is dex above C1.
GOES_FEATURE_OFFSET = 6.0
#: DN/s that no model input may leave: the pixel bounds of the ingest's sanity rules (one home for them).
PIXEL_BOUNDS = (SanityRules().min_dn_per_s, max(SanityRules().max_dn_per_s.values()))


class DataConfigError(ValueError):
    """A data-module setting that cannot work with this cube (the message says which and why)."""


# --------------------------------------------------------------------------- targets

@dataclass(frozen=True)
class Target:
    """The quantity a model predicts: GOES XRS-B flux, now or as a max over a future window."""

    name: str  #: ``"now"`` or a forecast label such as ``lead60min_window360min``
    lead: np.timedelta64
    window: np.timedelta64
    flux: np.ndarray  #: (time,) W/m², NaN where no target

    @property
    def horizon(self) -> np.timedelta64:
        """How far past the input time the target reaches: ``lead + window`` (0 for a nowcast)."""
        return self.lead + self.window

    @property
    def log_flux(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.flux > 0, np.log10(self.flux), np.nan).astype(np.float32)


def parse_target(target: str) -> tuple[np.timedelta64, np.timedelta64] | None:
    """``(lead, window)`` of a target name (``"lead60min_window1440min"`` or ``"1h/24h"``), None for the nowcast."""
    if target in (NOWCAST, "nowcast"):
        return None
    if "/" in target:  # "1h/6h"
        lead, window = target.split("/", 1)
        return to_timedelta(lead), to_timedelta(window)
    if target.startswith("lead") and "_window" in target:
        lead, window = target[4:].split("_window", 1)
        return to_timedelta(lead), to_timedelta(window)
    raise DataConfigError(f"target {target!r}: use 'now', a forecast label like 'lead60min_window360min' "
                          "or 'LEAD/WINDOW' like '1h/6h'")


def resolve_target(cube: xr.Dataset, target: str = NOWCAST) -> Target:
    """The target of ``cube`` named by ``target`` (``"now"``, a forecast label or ``"1h/6h"``)."""
    parsed = parse_target(target)
    zero = np.timedelta64(0, "ns")
    if parsed is None:
        return Target(NOWCAST, zero, zero, cube["flux_now"].values.astype(np.float64))
    lead, window = parsed
    times = cube["time"].values
    span = times[-1] - times[0]
    if lead + window >= span:
        raise DataConfigError(f"target {target!r}: lead + window ({pd.Timedelta(lead + window)}) is longer than "
                              f"the data ({pd.Timedelta(span)} from {times[0]} to {times[-1]})")
    leads, windows = cube["lead"].values, cube["window"].values
    match = np.flatnonzero((leads == lead) & (windows == window))
    if match.size == 0:
        raise DataConfigError(f"target {target!r}: the cube has no forecast with lead {pd.Timedelta(lead)} and "
                              f"window {pd.Timedelta(window)}; it has {list(cube['forecast'].values)} (and 'now'): "
                              "choose one of them (the notebooks' TARGETS, data.target) or add it to cube.forecasts")
    label = str(cube["forecast"].values[match[0]])
    return Target(label, lead, window, cube["flux_max"].isel(forecast=int(match[0])).values.astype(np.float64))


# --------------------------------------------------------------------------- split

def _block_edges(times: np.ndarray, block: str) -> np.ndarray:
    """Edges of calendar blocks (``"MS"`` months, ``"10D"``, ``"7D"``, ...) covering ``times``."""
    first = pd.Timestamp(times[0])
    start = first.normalize().replace(day=1)
    try:
        offset = pd.tseries.frequencies.to_offset(block)
    except ValueError as err:
        raise DataConfigError(f"split_block {block!r} is not a pandas frequency (e.g. 'MS', '10D')") from err
    edges = pd.date_range(start=start, end=pd.Timestamp(times[-1]) + offset, freq=offset)
    if edges[0] > first:
        edges = edges.insert(0, start)
    return edges.values.astype("datetime64[ns]")


def blocked_split(
    times: np.ndarray,
    horizon: np.timedelta64 | str = "0min",
    *,
    block: str | None = None,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    pattern: Sequence[str] = ("train", "train", "train", "val", "test"),
    gap: np.timedelta64 | str | None = None,
    history: np.timedelta64 | str = "0min",
) -> dict[str, np.ndarray]:
    """Assign time steps to contiguous train/val/test blocks with a purge gap at every split change.

    ``times`` are the (sorted) sample times. ``block=None`` makes three blocks by
    ``fractions`` of the time span (train first, then val, then test); a pandas frequency
    (``"MS"`` = calendar months, ``"10D"``) makes calendar blocks assigned to splits by
    repeating ``pattern``. Adjacent blocks of the same split are merged. Where the split
    changes at time ``E``, a sample at ``t`` is kept only if ``t + gap < E`` and (in the
    next block) ``t - history >= E``, where ``gap >= horizon = lead + window``. So every
    sample's interval ``[t - history, t + horizon]`` lies inside its own block.

    Returns ``{"train": idx, "val": idx, "test": idx}``: integer indices into ``times``.
    """
    times = np.asarray(times, dtype="datetime64[ns]")
    if times.size == 0:
        raise DataConfigError("no time steps to split")
    if np.any(np.diff(times) <= np.timedelta64(0, "ns")):
        raise DataConfigError("times must be strictly increasing")
    horizon = to_timedelta(horizon)
    history = to_timedelta(history)
    gap = horizon if gap is None else to_timedelta(gap)
    if gap < horizon:
        raise DataConfigError(f"gap {pd.Timedelta(gap)} is shorter than lead + window ({pd.Timedelta(horizon)}): "
                              "target windows would cross split boundaries")
    if block is None:
        if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
            raise DataConfigError(f"split_fractions must be three non-negative numbers summing to 1, not {fractions}")
        span = times[-1] - times[0] + np.timedelta64(1, "ns")
        cuts = [times[0] + span * float(f) for f in np.cumsum(fractions)[:2]]
        edges = np.array([times[0], *cuts, times[-1] + np.timedelta64(1, "ns")], dtype="datetime64[ns]")
        labels = list(SPLITS)
    else:
        unknown = set(pattern) - set(SPLITS)
        if unknown or not pattern:
            raise DataConfigError(f"split_pattern must list {SPLITS}, got {list(pattern)}")
        edges = _block_edges(times, block)
        labels = [pattern[k % len(pattern)] for k in range(len(edges) - 1)]
    # merge runs of the same split
    merged_edges, merged_labels = [edges[0]], []
    for k, label in enumerate(labels):
        if merged_labels and merged_labels[-1] == label:
            merged_edges[-1] = edges[k + 1]
        else:
            merged_labels.append(label)
            merged_edges.append(edges[k + 1])
    out = {name: [] for name in SPLITS}
    for k, label in enumerate(merged_labels):
        start, end = merged_edges[k], merged_edges[k + 1]
        keep = (times >= start) & (times < end)
        if k > 0:
            keep &= times - history >= start
        if k < len(merged_labels) - 1:
            keep &= times + gap < end
        out[label].append(np.flatnonzero(keep))
    return {name: np.concatenate(parts) if parts else np.array([], dtype=np.int64) for name, parts in out.items()}


def region_aware(split_index: dict[str, np.ndarray], on_disk: np.ndarray) -> dict[str, np.ndarray]:
    """Drop from train and val every step at which a region of the test block is on the disk.

    ``on_disk`` is ``(time, region)`` bool. Returns new index arrays; the test block is unchanged.
    """
    test_regions = on_disk[split_index["test"]].any(axis=0)
    touches = on_disk[:, test_regions].any(axis=1)
    out = dict(split_index)
    for name in ("train", "val"):
        idx = split_index[name]
        out[name] = idx[~touches[idx]]
    return out


def open_source(cube: str | Path, build_dir: str | Path | None = None) -> xr.Dataset:
    """A cube by catalog entry (built first if missing) or by ``.zarr`` path, opened lazily and checked."""
    path, entry = resolve_cube_path(cube, build_dir)
    if entry is not None:
        return load_catalog().open(entry, build_dir=path.parent, progress=False)
    return open_cube(path)


def datamodule_from_config(config: str | Path, **overrides) -> FlareDataModule:
    """The data module of a training config's ``data:`` section (a YAML file as in ``configs/``), with overrides."""
    return FlareDataModule.from_settings(read_config(config).get("data") or {}, overrides)


def rolling_origin(times: np.ndarray, horizon: np.timedelta64 | str = "0min", *, folds: int = 4,
                   test_days: float = 30, val_days: float = 30) -> list[dict[str, np.ndarray]]:
    """Rolling-origin splits: ``folds`` consecutive test blocks of ``test_days`` at the end of ``times``;
    for each, the ``val_days`` before it are validation and everything earlier is training.

    Each split is purged like :func:`blocked_split` (a sample's ``[t, t + horizon]`` stays inside its
    block). Returns one ``{"train", "val", "test"}`` index dict per fold, oldest test block first.
    """
    times = np.asarray(times, dtype="datetime64[ns]")
    horizon = to_timedelta(horizon)
    day = np.timedelta64(86400, "s").astype("timedelta64[ns]")
    end = times[-1] + np.timedelta64(1, "ns")
    out = []
    for k in range(folds, 0, -1):
        test_start = end - k * int(test_days) * day
        val_start = test_start - int(val_days) * day
        if val_start <= times[0]:
            raise DataConfigError(f"{folds} folds of {test_days} test days and {val_days} val days need more data "
                                  f"than {times[0]} to {times[-1]}")
        test_end = test_start + int(test_days) * day
        train = np.flatnonzero(times + horizon < val_start)
        val = np.flatnonzero((times >= val_start) & (times + horizon < test_start))
        test = np.flatnonzero((times >= test_start) & (times < test_end) & (times + horizon < end))
        out.append({"train": train, "val": val, "test": test})
    return out


# --------------------------------------------------------------------------- normalization

@dataclass(frozen=True)
class Normalizer:
    """Per-channel ``(T(x) - mean) / std`` with ``T = log10(max(x, floor))`` or ``asinh(x / scale)``.

    ``x`` is in DN/s. Fitted on training frames only (:meth:`fit`); stored in the model
    checkpoint as plain numbers (:meth:`to_dict`).
    """

    channels: tuple[int, ...]
    transform: str
    param: tuple[float, ...]  #: floor (log) or softening scale (asinh), DN/s, per channel
    mean: tuple[float, ...]
    std: tuple[float, ...]

    TRANSFORMS = ("log", "asinh")

    def _transform(self, x, param, lib):
        if self.transform == "log":
            return lib.log10(lib.maximum(x, param))
        return lib.asinh(x / param)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Normalize ``x`` (..., C, ny, nx) in DN/s -> float32, NaN set to 0 (the channel mean)."""
        shape = (-1, 1, 1)
        param = np.asarray(self.param, np.float32).reshape(shape)
        mean = np.asarray(self.mean, np.float32).reshape(shape)
        std = np.asarray(self.std, np.float32).reshape(shape)
        with np.errstate(invalid="ignore"):
            out = (self._transform(np.asarray(x, np.float32), param, np) - mean) / std
        return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)

    @classmethod
    def fit(cls, frames: np.ndarray, channels: Sequence[int], transform: str = "log") -> Normalizer:
        """Fit on ``frames`` (N, C, ny, nx) in DN/s from the training block."""
        if transform not in cls.TRANSFORMS:
            raise DataConfigError(f"normalization {transform!r} is not one of {cls.TRANSFORMS}")
        frames = np.asarray(frames, np.float64)
        params, means, stds = [], [], []
        for c in range(frames.shape[1]):
            values = frames[:, c].ravel()
            values = values[np.isfinite(values)]
            positive = values[values > 0]
            if positive.size == 0:
                raise DataConfigError(f"channel {channels[c]}: no positive DN/s in the training frames")
            param = max(float(np.percentile(positive, 1)), 1e-3) if transform == "log" else float(np.median(positive))
            t = np.log10(np.maximum(values, param)) if transform == "log" else np.arcsinh(values / param)
            params.append(param)
            means.append(float(t.mean()))
            stds.append(float(max(t.std(), 1e-6)))
        as32 = lambda values: tuple(float(np.float32(v)) for v in values)  # exact in the model's float32 buffers
        return cls(tuple(int(c) for c in channels), transform, as32(params), as32(means), as32(stds))

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> Normalizer:
        return cls(tuple(int(c) for c in d["channels"]), str(d["transform"]),
                   *(tuple(float(v) for v in d[k]) for k in ("param", "mean", "std")))


@dataclass(frozen=True)
class TrainingStats:
    """What a model takes from its training data before it is fitted.

    ``normalizer``: the input scaling fitted on the training block. ``target_mean``: the
    mean training-block target, log10 W/m² (where the regressor starts).
    """

    normalizer: Normalizer
    target_mean: float


# --------------------------------------------------------------------------- class weights

def class_weights(labels: np.ndarray, power: float = 0.5) -> np.ndarray:
    """Per-sample weights ``(n / (K n_class)) ** power``, normalized to mean 1.

    ``labels`` are GOES class letters; ``power=1`` is full inverse frequency, ``0.5`` its
    square root (a common compromise that does not let three X flares dominate).
    """
    labels = np.asarray(labels).astype(str)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    w = (labels.size / (len(classes) * counts.astype(np.float64))) ** power
    weights = w[inverse]
    return (weights / weights.mean()).astype(np.float32)


# --------------------------------------------------------------------------- dataset

class CubeSamples(Dataset):
    """Samples of one split. Opens the Zarr store lazily in each worker process.

    With ``cache_rows`` (rows of a tensor of normalized frames held by the data module),
    ``x`` is the cache row instead of the frames, and :meth:`FlareDataModule.gather`
    (called by Lightning in ``on_after_batch_transfer``) swaps in the frames.
    """

    def __init__(self, store: str | Path, time_index: np.ndarray, channel_index: np.ndarray, log_flux: np.ndarray,
                 normalizer: Normalizer, weights: np.ndarray | None = None, *, cache_rows: np.ndarray | None = None,
                 offsets: np.ndarray | None = None, aux: np.ndarray | None = None, images: bool = True,
                 times: np.ndarray | None = None):
        self.store = str(store)
        self.times = times  #: the cube's times (datetime64), to name a refused frame
        self.images = images  #: False: ``x`` is a (frames * C, 1, 1) zero placeholder, no frame is read
        self.time_index = np.asarray(time_index, np.int64)
        #: steps back of each input frame, oldest first (``[0]`` for one frame)
        self.offsets = np.zeros(1, np.int64) if offsets is None else np.asarray(offsets, np.int64)
        self.aux = np.zeros((len(self.time_index), 0), np.float32) if aux is None else np.asarray(aux, np.float32)
        self.channel_index = np.asarray(channel_index, np.int64)
        self.log_flux = np.asarray(log_flux, np.float32)
        self.weights = np.ones(len(self.time_index), np.float32) if weights is None else np.asarray(weights, np.float32)
        self.normalizer = normalizer
        self.cache_rows = None if cache_rows is None else np.asarray(cache_rows, np.int64)
        self._aia = None

    @property
    def cached(self) -> bool:
        return self.cache_rows is not None

    def __len__(self) -> int:
        return len(self.time_index)

    def __getstate__(self):  # workers get a copy without the open store
        state = self.__dict__.copy()
        state["_aia"] = None
        return state

    def _array(self):
        if self._aia is None:
            self._aia = zarr.open_group(checked_store(self.store), mode="r")["aia"]
        return self._aia

    def __getitem__(self, i: int):
        t = int(self.time_index[i])
        if not self.images:
            x = torch.zeros((len(self.offsets) * len(self.channel_index), 1, 1))
        elif self.cached:
            x = torch.tensor(self.cache_rows[i])
        else:
            # one chunk per frame: all channels of one time step
            frames = np.stack([self._array()[t - int(o)][self.channel_index] for o in self.offsets])
            check_pixels(frames, self.times[t - self.offsets], self.store)
            x = torch.from_numpy(self.normalizer.apply(frames).reshape(-1, *frames.shape[-2:]))
        return (x, torch.tensor(self.log_flux[i]), torch.tensor(self.weights[i]), torch.tensor(t),
                torch.from_numpy(self.aux[i]))


def read_frames(store: str | Path, time_index: np.ndarray, channel_index: np.ndarray, *, batch: int = 256,
                progress: bool = False):
    """Yield ``(positions, frames)`` for sorted ``time_index`` in contiguous bounded reads.

    ``frames`` is (n, C, ny, nx) float32 DN/s. Nearby steps are read with one slice each (at
    most ``batch`` steps spanning at most ``2 * batch`` time steps), so the store is read
    chunk-sequentially and memory stays bounded however sparse the selection.
    """
    aia = zarr.open_group(checked_store(store), mode="r")["aia"]  # damaged chunks raise, naming the step
    time_index = np.asarray(time_index, np.int64)
    order = np.argsort(time_index, kind="stable")
    sorted_t = time_index[order]
    bar = tqdm(total=len(sorted_t), desc="read frames", unit="step", disable=not progress)
    start = 0
    while start < len(sorted_t):
        # a run: at most `batch` steps, spanning at most 2 x batch time steps, so sparse picks never read a huge slice
        stop = start + 1
        while stop < len(sorted_t) and stop - start < batch and sorted_t[stop] - sorted_t[start] < 2 * batch:
            stop += 1
        t0, t1 = sorted_t[start], sorted_t[stop - 1]
        block = aia[int(t0): int(t1) + 1][:, channel_index]
        yield order[start:stop], block[sorted_t[start:stop] - t0]
        bar.update(stop - start)
        start = stop
    bar.close()


def check_pixels(frames: np.ndarray, times: np.ndarray, store: str | Path) -> None:
    """Refuse frames (n, C, ny, nx) in DN/s that no model may read: any ±inf pixel, a frame with no finite pixel
    (NaN alone marks a missing pixel, which the normalizer sets to the channel mean), or a pixel outside what an
    AIA detector can record (:class:`flarelib.cube.prep.SanityRules`' bounds, -1e4 to 2e8 DN/s: 1e30 is damage,
    not a flare). The one check of every path that reads model inputs: training samples, the frame cache, the
    normalizer fit and :func:`stack_inputs` (explanations)."""
    low, high = PIXEL_BOUNDS
    with np.errstate(invalid="ignore"):
        absurd = ((frames < low) | (frames > high)).any(axis=(1, 2, 3))
    bad = np.isinf(frames).any(axis=(1, 2, 3)) | ~np.isfinite(frames).any(axis=(1, 2, 3)) | absurd
    if bad.any():
        k = int(np.argmax(bad))
        when = np.datetime_as_string(np.asarray(times)[k], unit="m")
        raise DataConfigError(f"{Path(str(store)).name}: the frame at {when} "
                              f"(and {int(bad.sum()) - 1} more) has infinite pixels, no finite pixel, or pixels "
                              f"outside {low:g} to {high:g} DN/s; check the store (flarelib catalog verify) or "
                              "rebuild it")


def frame_offsets(frames: int, frame_step: str | np.timedelta64, cadence: np.timedelta64) -> np.ndarray:
    """Cube steps back of each stacked input frame, oldest first: ``[(frames - 1) k, ..., k, 0]`` with
    ``k = frame_step / cadence`` (``frame_step`` a duration such as ``"1h"``, ``cadence`` the cube's, see
    :func:`flarelib.cube.store.cube_cadence`). One frame is ``[0]`` whatever the step."""
    frames = int(frames)
    if frames < 1:
        raise DataConfigError(f"frames={frames}: a sample needs at least one frame")
    if frames == 1:
        return np.zeros(1, np.int64)
    step = to_timedelta(frame_step)
    ratio = step / cadence
    if step <= np.timedelta64(0, "ns") or ratio != int(ratio):
        raise DataConfigError(f"frame_step {frame_step!r} is not a positive multiple of the cube's "
                              f"cadence {pd.Timedelta(cadence)}")
    return np.arange(frames - 1, -1, -1, dtype=np.int64) * int(ratio)


def stack_inputs(cube: xr.Dataset, normalizer: Normalizer, time_index: Sequence[int],
                 offsets: np.ndarray) -> np.ndarray:
    """What a model reads at cube steps ``time_index``: for each step ``t`` the frames ``t - offsets``
    (:func:`frame_offsets`, oldest first), each with the normalizer's channels, normalized:
    (n, frames * C, ny, nx) float32.

    The one path from a cube to model input, for the data module and for explaining a bare cube. Refuses
    (``IndexError``) steps outside the cube or without their earlier frames, and (:func:`check_pixels`)
    frames with infinite pixels or none finite, naming the step.
    """
    index = np.atleast_1d(np.asarray(time_index, np.int64))
    offsets = np.asarray(offsets, np.int64)
    n = int(cube.sizes["time"])
    name = cube.attrs.get("name", "the cube")
    if index.size and (index.min() < 0 or index.max() >= n):
        raise IndexError(f"time index out of range: {name} has steps 0..{n - 1}")
    steps = (index[:, None] - offsets[None, :]).ravel()
    if steps.size and steps.min() < 0:
        first = int(index[np.argmax((index[:, None] - offsets[None, :]).min(axis=1) < 0)])
        raise IndexError(f"time index {first} has no {len(offsets)} frames {int(offsets.max())} steps back in {name}")
    available = [int(c) for c in cube["channel"].values]
    missing = [c for c in normalizer.channels if c not in available]
    if missing:
        raise DataConfigError(f"{name} lacks the channels {missing} (it has {available})")
    channel_index = [available.index(c) for c in normalizer.channels]
    frames = np.asarray(cube["aia"].isel(time=steps, channel=channel_index).values, np.float32)
    check_pixels(frames, cube["time"].values[steps], name)
    return normalizer.apply(frames).reshape(index.size, -1, *frames.shape[-2:])


# --------------------------------------------------------------------------- settings

def _choice(name: str, value, choices: Sequence) -> None:
    if value not in choices:
        raise DataConfigError(f"{name} {value!r} is not one of {', '.join(map(repr, choices))}")


@dataclass(frozen=True)
class SplitOptions:
    """How cube steps become train, val and test samples (``data.split.*`` in a config; :func:`blocked_split`).

    ``block``: ``None`` for one contiguous block per split by ``fractions`` of the time span, or a pandas
    frequency (``"MS"``, ``"10D"``) for calendar blocks assigned to splits by repeating ``pattern``. ``gap``: the
    minimum separation of samples in different splits (default and minimum: lead + window). ``by_region``: also
    leave out of train and val every step at which a region is on the disk that is on the disk anywhere in the
    test block (needs the cube's ``region_on_disk``), so the test block holds only regions the model never saw.
    """

    block: str | None = None
    fractions: tuple[float, ...] = (0.7, 0.15, 0.15)
    pattern: tuple[str, ...] = ("train", "train", "train", "val", "test")
    gap: str | None = None
    by_region: bool = False

    def __post_init__(self):
        object.__setattr__(self, "fractions", tuple(float(f) for f in self.fractions))
        object.__setattr__(self, "pattern", tuple(str(p) for p in self.pattern))


@dataclass(frozen=True)
class InputOptions:
    """What a sample shows the model (``data.inputs.*``).

    ``channels``: AIA wavelengths (integer Å), in this order. ``normalization``: ``"log"`` or ``"asinh"``
    (:class:`Normalizer`), fitted on ``norm_frames`` evenly spaced training frames. ``frames``: how many frames
    one sample stacks, ``t - (frames - 1) * frame_step, ..., t`` (the original FlareNet's ``aia_image_count``); a
    sample needs all of them, from its own split. ``frame_step``: their spacing, a duration that is a multiple
    of the cube's cadence. ``goes``: GOES inputs besides the images, for forecast targets only: ``"now"`` (the
    flux at ``t``) and labels of the cube's ``flux_history_max`` (``"6h"``, ``"24h"``), each the feature
    ``log10(flux) + 6`` (dex above C1). ``images``: ``False`` reads no frames (the GOES-only model ignores
    them; ``x`` is a zero placeholder).
    """

    channels: tuple[int, ...] = DEFAULT_CHANNELS
    normalization: str = "log"
    norm_frames: int = 200
    frames: int = 1
    frame_step: str = "1h"
    goes: tuple[str, ...] = ()
    images: bool = True

    def __post_init__(self):  # None: the default (as flat settings saved it)
        object.__setattr__(self, "channels", tuple(int(c) for c in (DEFAULT_CHANNELS if self.channels is None
                                                                    else self.channels)))
        object.__setattr__(self, "goes", tuple(str(g) for g in self.goes or ()))
        _choice("normalization", self.normalization, Normalizer.TRANSFORMS)
        if not self.channels:
            raise DataConfigError("channels: a sample needs at least one channel")
        if len(set(self.channels)) != len(self.channels):
            raise DataConfigError(f"channels {list(self.channels)} repeat a wavelength")
        if int(self.frames) < 1:
            raise DataConfigError(f"frames={self.frames}: a sample needs at least one frame")


@dataclass(frozen=True)
class ClassWeighting:
    """How rare classes count in training (``data.class_weighting.*``): ``scheme`` ``"none"``, ``"loss"``
    (weights in the loss) or ``"sampler"`` (oversampling with replacement, loss weights 1), with weights
    ``(inverse class frequency) ** power`` by GOES class of the target (:func:`class_weights`)."""

    scheme: str = "none"
    power: float = 0.5

    def __post_init__(self):
        _choice("class_weighting", self.scheme, ("none", "loss", "sampler"))


@dataclass(frozen=True)
class LoaderOptions:
    """How samples reach the model (``data.loader.*``): ``batch_size`` samples per batch; ``num_workers``
    DataLoader processes (``multiprocessing_context`` ``"spawn"``, ``"forkserver"``, ...); ``cache``:
    ``"none"`` (read Zarr in the workers), ``"memory"`` (normalized frames in host memory) or ``"device"``
    (in accelerator memory), as ``cache_dtype``, falling back to ``"none"`` with a warning above
    ``cache_max_gb`` (:class:`FrameCache`)."""

    batch_size: int = 32
    num_workers: int = 0
    multiprocessing_context: str | None = None
    cache: str = "none"
    cache_dtype: str = "float16"
    cache_max_gb: float = 4.0

    def __post_init__(self):
        _choice("cache", self.cache, ("none", "memory", "device"))
        _choice("cache_dtype", self.cache_dtype, ("float16", "bfloat16", "float32"))


#: The data module's grouped settings: argument name -> its options class.
SETTING_GROUPS = {"split": SplitOptions, "inputs": InputOptions, "class_weighting": ClassWeighting,
                  "loader": LoaderOptions}
#: Settings that are not in a group.
TOP_SETTINGS = ("cube", "target", "build_dir", "seed")
#: Flat names -> (group, field): how checkpoints saved the settings before they were grouped, and the short
#: names that :func:`data_settings` takes as changes (``cache="none"``, ``goes_inputs=[...]``; ``None`` for
#: ``channels`` or ``goes_inputs`` is the default).
FLAT_SETTINGS = {
    "split_block": ("split", "block"), "split_fractions": ("split", "fractions"),
    "split_pattern": ("split", "pattern"), "gap": ("split", "gap"), "region_split": ("split", "by_region"),
    "goes_inputs": ("inputs", "goes"), "class_weighting": ("class_weighting", "scheme"),
    "class_weight_power": ("class_weighting", "power"),
    **{name: ("inputs", name) for name in ("channels", "normalization", "norm_frames", "frames", "frame_step",
                                           "images")},
    **{name: ("loader", name) for name in ("batch_size", "num_workers", "multiprocessing_context", "cache",
                                           "cache_dtype", "cache_max_gb")},
}


def data_settings(*layers: Mapping) -> dict:
    """:class:`FlareDataModule`'s arguments from layers of settings, later layers winning field by field
    (:func:`flarelib.settings.merge_settings`).

    Each layer is a config's ``data:`` section, a checkpoint's saved settings or changes: groups as mappings
    or options (``split: {block: MS}``), or fields by their flat name (``split_block="MS"``, ``cache="none"``,
    ``class_weighting="loss"``; :data:`FLAT_SETTINGS`). Unknown names raise :class:`DataConfigError`.
    """
    return merge_settings(layers, groups=SETTING_GROUPS, top=TOP_SETTINGS, flat=FLAT_SETTINGS,
                          error=DataConfigError, what="data setting")


# --------------------------------------------------------------------------- the data -> model contract

#: The model settings that the data dictate, each with the data-module setting it comes from (dotted: a group's
#: field): the one table behind the training CLI's links and :func:`model_settings`. A model trained on a data
#: module reads its channels (Å) with its normalization, ``frames`` frames ``frame_step`` apart, and one input
#: per GOES input.
MODEL_LINKS: dict[str, str] = {"channels": "inputs.channels", "target": "target",
                               "normalization": "inputs.normalization", "frames": "inputs.frames",
                               "frame_step": "inputs.frame_step", "aux_inputs": "inputs.goes"}


def model_setting(name: str, value):
    """The model's setting ``name`` (a key of :data:`MODEL_LINKS`) for the data-module setting ``value``:
    the same value, except ``aux_inputs``, which counts the GOES inputs, and ``channels``, a list of ints."""
    if name == "aux_inputs":
        return len(value or [])
    if name == "channels":
        return [int(c) for c in value]
    return value


def model_settings(dm: FlareDataModule) -> dict:
    """What a model trained on ``dm`` must be built with (:data:`MODEL_LINKS`): channels, target,
    normalization, frames, frame_step and the number of GOES inputs."""
    def setting(source: str):
        group, _, name = source.rpartition(".")
        return getattr(getattr(dm, group), name) if group else getattr(dm, f"{name}_name")

    return {name: model_setting(name, setting(source)) for name, source in MODEL_LINKS.items()}


# --------------------------------------------------------------------------- the sample plan

@dataclass(frozen=True, eq=False)
class CubeSplit:
    """Which cube steps are samples of which split, and what each sample reads: what a data module plans
    from its cube and settings (:func:`plan_samples`), and what the reporting tables summarize.

    Arrays run over every cube step (``time``), except ``index``: split name -> sorted sample steps.
    """

    name: str  #: the cube's name
    synthetic: bool
    times: np.ndarray  #: (time,) datetime64[ns], UTC
    cadence: np.timedelta64  #: the cube's (:func:`flarelib.cube.store.cube_cadence`)
    channels: tuple[int, ...]  #: Å, in model order
    channel_index: np.ndarray  #: positions of ``channels`` in the cube's ``channel``
    target: Target
    labels: np.ndarray  #: (time,) GOES class letter of the target
    flux_now: np.ndarray  #: (time,) W/m², float64: the XRS-B flux at each step
    offsets: np.ndarray  #: cube steps back of each stacked frame, oldest first (:func:`frame_offsets`)
    aux: np.ndarray  #: (time, len(goes)) float32 GOES inputs, ``log10(W/m²) + 6``
    usable: np.ndarray  #: steps that can be a sample: a target, every frame and every GOES input
    index: Mapping[str, np.ndarray]

    def reassigned(self, index: Mapping[str, Sequence[int]]) -> CubeSplit:
        """The same plan with other sample steps per split (every split non-empty, every step usable)."""
        new = {}
        for name in SPLITS:
            idx = np.unique(np.asarray(index.get(name, []), np.int64))
            if idx.size == 0:
                raise DataConfigError(f"use_split: split {name!r} is empty")
            unusable = np.setdiff1d(idx, self.usable)
            if unusable.size:
                raise DataConfigError(f"use_split: {unusable.size} {name} steps (first {int(unusable[0])}) are not "
                                      "usable samples of this data module (no target, a missing frame or GOES input)")
            new[name] = idx
        return dataclasses.replace(self, index=new)


def goes_features(cube: xr.Dataset, goes: Sequence[str], target: Target) -> np.ndarray:
    """(time, len(goes)) float32 GOES inputs known at each step of ``cube``, ``log10(W/m²) + 6`` (NaN where the
    flux is not positive); ``goes`` as :attr:`InputOptions.goes`."""
    if not goes:
        return np.zeros((cube.sizes["time"], 0), np.float32)
    if target.name == NOWCAST:
        raise DataConfigError("goes_inputs need a forecast target: the nowcast target is the GOES flux at t, "
                              "so a GOES input at t would be the answer itself")
    known = [GOES_NOW, *([str(h) for h in cube["history"].values] if "flux_history_max" in cube else [])]
    unknown = [g for g in goes if g not in known]
    if unknown:
        raise DataConfigError(f"goes_inputs {unknown} not in {cube.attrs.get('name', 'the cube')}; it has "
                              f"{sorted(known)}")
    columns = []
    for g in goes:
        flux = (cube["flux_now"] if g == GOES_NOW else cube["flux_history_max"].sel(history=g)).values
        with np.errstate(divide="ignore", invalid="ignore"):
            columns.append(np.where(flux > 0, np.log10(flux.astype(np.float64)), np.nan) + GOES_FEATURE_OFFSET)
    return np.stack(columns, axis=1).astype(np.float32)


def _own_split_frames(index: dict[str, np.ndarray], offsets: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Drop samples with an earlier input frame in another split (frames > 1 only)."""
    if offsets.size == 1:
        return index
    owner = np.full(n, -1)
    for k, idx in enumerate(index.values()):
        owner[idx] = k
    out = {}
    for k, (name, idx) in enumerate(index.items()):
        earlier = owner[idx[:, None] - offsets[None, :]]
        out[name] = idx[np.all((earlier == k) | (earlier == -1), axis=1)]
    return out


def input_history(inputs: InputOptions, offsets: np.ndarray, cadence: np.timedelta64) -> np.timedelta64:
    """How far back before its issue time a sample reads: its earliest stacked frame, or its longest GOES
    history window (``"24h"``: the max over ``[t - 24 h, t]``), whichever is longer. The split's purge keeps
    ``[t - history, t]`` inside the sample's own block, so no input overlaps another split's target window."""
    frames = int(np.max(offsets)) * np.timedelta64(cadence, "ns") if np.size(offsets) else np.timedelta64(0, "ns")
    windows = [to_timedelta(g) for g in inputs.goes if g != GOES_NOW]
    return max([frames, *windows])


def plan_samples(cube: xr.Dataset, target: str, split: SplitOptions, inputs: InputOptions) -> CubeSplit:
    """The sample plan of ``cube`` (opened, checked) for ``target`` under ``split`` and ``inputs``.

    A step is usable when it has a target, every stacked frame (each channel's quality >= 0) and every GOES
    input; the usable steps are split by :func:`blocked_split` (purged by lead + window after a sample and by
    its :func:`input_history` before it), samples whose earlier
    frames fall in another split are dropped, and with ``split.by_region`` so are train and val steps that share
    a region with the test block (:func:`region_aware`). Raises :class:`DataConfigError` naming the setting for
    a channel the cube lacks or an empty split.
    """
    name = str(cube.attrs.get("name", "the cube"))
    available = [int(c) for c in cube["channel"].values]
    unknown = [c for c in inputs.channels if c not in available]
    if unknown:
        raise DataConfigError(f"channels {unknown} not in cube {name}, which has {available}")
    channel_index = np.array([available.index(c) for c in inputs.channels])
    resolved = resolve_target(cube, target)
    if not np.isfinite(resolved.log_flux).any():
        source = cube.attrs.get("target_source", "unknown")
        cause = ("it was built without GOES data or flare events (target_source: none); add cube.goes_from "
                 "(a goes_xrs entry covering its days) or cube.events to its catalog entry and rebuild"
                 if source == "none" else f"no target of {source} falls on its steps; check the GOES data or "
                 "events cover the cube's time range")
        raise DataConfigError(f"no targets: cube {name} has no {resolved.name} target at any of its "
                              f"{cube.sizes['time']} steps: {cause}")
    times = cube["time"].values
    cadence = cube_cadence(cube)
    offsets = frame_offsets(inputs.frames, inputs.frame_step, cadence)
    aux = goes_features(cube, inputs.goes, resolved)
    has_frame = np.all(cube["quality"].values[:, channel_index] >= 0, axis=1)
    usable = np.isfinite(resolved.log_flux) & np.all(np.isfinite(aux), axis=1)
    steps = np.arange(times.size)
    for offset in offsets:
        usable &= (steps >= offset) & has_frame[np.maximum(steps - offset, 0)]
    n_bad = int((~usable).sum())
    if n_bad:
        log.info("%d of %d time steps have no target or miss a selected channel; left out", n_bad, usable.size)
    blocks = blocked_split(times, resolved.horizon, block=split.block, fractions=split.fractions,
                           pattern=split.pattern, gap=split.gap, history=input_history(inputs, offsets, cadence))
    index = _own_split_frames({s: idx[usable[idx]] for s, idx in blocks.items()}, offsets, times.size)
    if split.by_region:
        if "region_on_disk" not in cube:
            raise DataConfigError(f"region_split needs a cube with region identities (region_on_disk); "
                                  f"{name} has none")
        index = region_aware(index, cube["region_on_disk"].values.astype(bool))
    history = input_history(inputs, offsets, cadence)
    span = pd.Timedelta(times[-1] - times[0]) + pd.Timedelta(cadence)
    for k, s in enumerate(SPLITS):
        if split.block is None and index[s].size == 0:
            block = span * split.fractions[k]
            purges = {"lead + window": pd.Timedelta(resolved.horizon) if k < 2 else pd.Timedelta(0),
                      "input history": pd.Timedelta(history) if k > 0 else pd.Timedelta(0)}
            need = sum(purges.values(), pd.Timedelta(0))
            if block <= need and split.fractions[k] > 0:
                said = " + ".join(f"{what} {d}" for what, d in purges.items() if d > pd.Timedelta(0))
                raise DataConfigError(
                    f"too short: split {s!r} is empty because its block ({split.fractions[k]:g} of {span} = "
                    f"{block.round('s')}) is not longer than the purge it needs ({said}); cube {name} needs more "
                    f"than {(need / split.fractions[k]).round('s')} of data for target {resolved.name}: use more "
                    "data, a shorter target (TARGETS) or other split fractions")
    for s, idx in index.items():
        if idx.size == 0:
            raise DataConfigError(
                f"split {s!r} is empty: {times.size} steps from {times[0]} to {times[-1]}, "
                f"target {resolved.name} (lead + window {pd.Timedelta(resolved.horizon)}), "
                f"split block={split.block!r}, fractions={list(split.fractions)}; "
                "use more data, a shorter target or other fractions")
    return CubeSplit(name=name, synthetic=bool(cube.attrs.get("synthetic", False)), times=times, cadence=cadence,
                     channels=inputs.channels, channel_index=channel_index, target=resolved,
                     labels=flare_class(resolved.flux), flux_now=cube["flux_now"].values.astype(np.float64),
                     offsets=offsets, aux=aux, usable=np.flatnonzero(usable), index=index)


# --------------------------------------------------------------------------- what a cube can support

#: Fewer training samples than this: :func:`check_trainable` warns (a model of so few samples says little).
MIN_TRAIN_SAMPLES = 100


def usable_targets(cube: xr.Dataset) -> list[str]:
    """The targets of ``cube`` that hold at least one value and fit in its time span: ``"now"`` and forecast
    labels (``lead60min_window1440min``), as :func:`resolve_target` takes them."""
    out = []
    labels = [NOWCAST] + ([str(f) for f in cube["forecast"].values] if "forecast" in cube.dims else [])
    for label in labels:
        try:
            target = resolve_target(cube, label)
        except DataConfigError:
            continue
        if np.isfinite(target.log_flux).any():
            out.append(label)
    return out


def events_per_split(plan: CubeSplit) -> pd.DataFrame:
    """Samples whose target is an event at >= C1 and >= M1 (counts, not shares), and all samples, per split."""
    rows = {}
    for name, idx in plan.index.items():
        flux = plan.target.flux[idx]
        rows[name] = {**{f">={c}1": int(np.sum(flux >= FLARE_CLASS_THRESHOLDS[c])) for c in EVENT_CLASSES},
                      "samples": int(idx.size)}
    return pd.DataFrame(rows).T


def cube_support(plan: CubeSplit, cube: xr.Dataset | None = None) -> str:
    """One line: what the cube can support for this plan's target: its steps, the samples and events at
    >= C1 / >= M1 per split, and (given the ``cube``) its usable targets."""
    counts = events_per_split(plan)
    span = f"{np.datetime_as_string(plan.times[0], unit='m')} to {np.datetime_as_string(plan.times[-1], unit='m')}"
    splits = ", ".join(f"{s} {row['samples']} ({row['>=C1']}/{row['>=M1']})" for s, row in counts.iterrows())
    line = (f"{data_kind(plan.synthetic)} {plan.name}: {plan.times.size} steps of {duration_label(plan.cadence)} "
            f"({span}); target {plan.target.name}: samples (events >=C1/>=M1) {splits}")
    if cube is not None:
        line += f"; usable targets: {', '.join(usable_targets(cube)) or 'none'}"
    return line


def check_trainable(plan: CubeSplit, cube: xr.Dataset | None = None) -> str:
    """Refuse a plan no model can learn from, naming the cause; warn where scores will say little; else return
    :func:`cube_support`'s one line. Called before every training run (notebook 04's :func:`flarelib.learn.train`
    and ``flarelib train fit``) and by notebook 03.

    Refused (:class:`DataConfigError`): a target that is the same value at every training step (an event list
    gives a flare's peak at every step it overlaps), or a training split with no event, or only events, at both
    >= C1 and >= M1. Warned (logged): fewer than :data:`MIN_TRAIN_SAMPLES` training samples, and a split
    without events (or without non-events) at a threshold, where its TSS and AUC are undefined. (No targets and
    a cube too short for lead + window are refused by :func:`plan_samples` already.)
    """
    line = cube_support(plan, cube)
    train = plan.index["train"]
    flux = plan.target.flux[train]
    values = np.unique(flux[np.isfinite(flux)])
    if values.size <= 1:
        value = f"{values[0]:.3g} W/m² ({flare_class(values)[0]})" if values.size else "NaN"
        raise DataConfigError(f"constant target: {plan.target.name} is {value} at every one of the {train.size} "
                              f"training steps of {plan.name}, so there is nothing to learn (an event list gives "
                              "a flare's peak at every step it overlaps); use GOES data (cube.goes_from) or a "
                              f"longer cube with quiet and flaring steps. {line}")
    counts = events_per_split(plan)
    learnable = [c for c in counts.columns[:-1] if 0 < counts.loc["train", c] < train.size]
    if not learnable:
        raise DataConfigError(f"too few events: no threshold (>=C1, >=M1) has both events and quiet steps among "
                              f"the {train.size} training samples of {plan.name}; use a longer cube that holds "
                              f"flares and quiet times, or another target. {line}")
    for split, row in counts.iterrows():
        for c in counts.columns[:-1]:
            if row[c] == 0 or row[c] == row["samples"]:
                log.warning("%s split of %s holds %s at %s: its TSS and AUC there are undefined",
                            split, plan.name, "no event" if row[c] == 0 else "only events", c)
    if train.size < MIN_TRAIN_SAMPLES:
        log.warning("only %d training samples in %s (fewer than %d): the model and its scores will say little",
                    train.size, plan.name, MIN_TRAIN_SAMPLES)
    return line


# --------------------------------------------------------------------------- summaries of a plan

def describe(plan: CubeSplit) -> str:
    """One line naming the data set (REAL/SYNTHETIC), target, channels and split: a caption for tables."""
    sizes = ", ".join(f"{name} {idx.size}" for name, idx in plan.index.items())
    return (f"{data_kind(plan.synthetic)} {plan.name}: target {plan.target.name}, "
            f"channels {list(plan.channels)} Å, samples {sizes}")


def samples_per_class(plan: CubeSplit) -> pd.DataFrame:
    """Samples per GOES class of the target, one row per split (C, M and X always, weaker classes if any)."""
    rows = {}
    for name, idx in plan.index.items():
        counts = pd.Series(plan.labels[idx]).value_counts()
        rows[name] = {c: int(counts.get(c, 0)) for c in CLASS_ORDER}
    table = pd.DataFrame(rows).T
    table = table.loc[:, (table != 0).any(axis=0) | table.columns.isin(["C", "M", "X"])]
    table["total"] = table.sum(axis=1)
    return table


def split_table(plan: CubeSplit) -> pd.DataFrame:
    """First and last sample time (UTC, to the minute) and the sample count of each split."""
    def minute(t: np.datetime64) -> str:
        return np.datetime_as_string(t, unit="m").replace("T", " ")

    return pd.DataFrame({name: {"first": minute(plan.times[idx].min()), "last": minute(plan.times[idx].max()),
                                "samples": idx.size} for name, idx in plan.index.items()}).T


def event_fractions(plan: CubeSplit) -> pd.DataFrame:
    """Per split: samples, and the share of samples whose target is an event at >= C1 and >= M1."""
    rows = {}
    for name, idx in plan.index.items():
        flux = plan.target.flux[idx]
        rows[name] = {"samples": int(idx.size),
                      **{f">={c}1": float(np.mean(flux >= FLARE_CLASS_THRESHOLDS[c])) for c in EVENT_CLASSES}}
    return pd.DataFrame(rows).T


def flares_per_split(plan: CubeSplit, cube: xr.Dataset) -> pd.DataFrame:
    """Distinct flares of ``cube``'s event list per GOES class and split (by the split of the step at or
    just before each peak; ``gap`` for peaks in the purged gaps or in unused steps)."""
    if "event_peak" not in cube or cube.sizes.get("event", 0) == 0:
        return pd.DataFrame()
    peaks = cube["event_peak"].values
    step = np.clip(np.searchsorted(plan.times, peaks, side="right") - 1, 0, plan.times.size - 1)
    where = np.full(step.shape, "gap", dtype=object)
    for name, idx in plan.index.items():
        where[np.isin(step, idx)] = name
    letters = flare_class(cube["event_peak_flux"].values)
    table = pd.crosstab(pd.Series(where, name="split"), pd.Series(letters, name="class"))
    return table.reindex(index=[s for s in (*SPLITS, "gap") if s in table.index],
                         columns=[c for c in CLASS_ORDER if c in table.columns])


def region_overlap(plan: CubeSplit, cube: xr.Dataset) -> pd.DataFrame:
    """Per split: region-time (steps x regions on the disk) and the share of it from regions also on the
    disk during the training block. Needs ``cube``'s ``region_on_disk``."""
    on_disk = cube["region_on_disk"].values.astype(bool)
    seen = on_disk[plan.index["train"]].any(axis=0)
    rows = {}
    for name, idx in plan.index.items():
        region_time = on_disk[idx]
        total = int(region_time.sum())
        rows[name] = {"regions": int(region_time.any(axis=0).sum()), "region-steps": total,
                      "share seen in training": float(region_time[:, seen].sum() / total) if total else np.nan}
    return pd.DataFrame(rows).T


# --------------------------------------------------------------------------- the frame cache

class FrameCache:
    """Normalized frames of the steps a plan's samples read, in one tensor in host or accelerator memory
    (``LoaderOptions.cache``), so that batches are gathered from it instead of read from Zarr.

    ``steps``: the cached cube steps (sorted); ``frames``: (len(steps), C, ny, nx) as ``dtype``.
    """

    def __init__(self, steps: np.ndarray, frames: torch.Tensor, normalizer: Normalizer, on_device: bool):
        self.steps, self.frames, self.normalizer, self.on_device = steps, frames, normalizer, on_device

    @classmethod
    def build(cls, store_path: Path, plan: CubeSplit, normalizer: Normalizer, options: LoaderOptions,
              frame_shape: tuple[int, int]) -> FrameCache | None:
        """Read and normalize every frame the plan's samples need; ``None`` (with a warning) when that would
        exceed ``options.cache_max_gb``."""
        dtype = getattr(torch, options.cache_dtype)
        samples = np.concatenate([plan.index[name] for name in SPLITS])
        steps = np.unique(samples[:, None] - plan.offsets[None, :])
        nbytes = steps.size * len(plan.channels) * int(np.prod(frame_shape)) * torch.finfo(dtype).bits // 8
        if nbytes > options.cache_max_gb * 2**30:
            log.warning("cache of %.2f GB exceeds cache_max_gb=%.2f; reading from Zarr instead",
                        nbytes / 2**30, options.cache_max_gb)
            return None
        frames = torch.empty((steps.size, len(plan.channels), *frame_shape), dtype=dtype)
        for pos, block in read_frames(store_path, steps, plan.channel_index, progress=False):
            check_pixels(block, plan.times[steps[pos]], store_path)
            frames[torch.from_numpy(pos)] = torch.from_numpy(normalizer.apply(block)).to(dtype)
        log.info("cached %d normalized frames (%.1f MB, %s)", steps.size, nbytes / 2**20, options.cache_dtype)
        return cls(steps, frames, normalizer, options.cache == "device")

    def serves(self, plan: CubeSplit, normalizer: Normalizer) -> bool:
        """Whether this cache holds every frame of ``plan``'s samples, normalized by ``normalizer``."""
        samples = np.concatenate([plan.index[name] for name in SPLITS])
        return normalizer == self.normalizer and np.isin(samples[:, None] - plan.offsets[None, :], self.steps).all()

    def rows(self, time_index: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """(n, frames) cache rows of the stacked frames of samples at ``time_index``."""
        return np.searchsorted(self.steps, time_index[:, None] - offsets[None, :])

    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        """(B, frames * C, ny, nx) float32 frames of cache rows (B, frames), on the rows' device."""
        if self.on_device and self.frames.device != rows.device:
            self.frames = self.frames.to(rows.device)
        frames = self.frames[rows.to(self.frames.device)]  # (B, frames, C, ny, nx)
        frames = frames.reshape(frames.shape[0], -1, *frames.shape[-2:])
        return frames.to(device=rows.device, dtype=torch.float32)


# --------------------------------------------------------------------------- data module

def resolve_cube_path(cube: str | Path, build_dir: str | Path | None = None) -> tuple[Path, str | None]:
    """A cube path, or the path of the catalog entry named ``cube`` (and that name)."""
    path = Path(cube)
    if path.suffix == ".zarr" or path.exists():
        return path, None
    catalog = load_catalog()
    catalog[str(cube)]  # raises CatalogError naming the known entries
    return catalog.cube_path(str(cube), build_dir), str(cube)


class FlareDataModule(L.LightningDataModule):
    """LightningDataModule over a flarelib cube (a catalog entry name or a ``.zarr`` path).

    Its jobs, each in its own place: the sample plan (:func:`plan_samples` -> :attr:`plan`, a
    :class:`CubeSplit`, summarized by :func:`describe`, :func:`class_counts`, ...), the normalizer fitted on
    the training steps, the class weights, the frame cache (:class:`FrameCache`), model inputs
    (:func:`stack_inputs`) and the loaders.

    Args:
        cube: catalog entry (built in :meth:`prepare_data` if missing) or path of a cube.
        target: ``"now"``, a forecast label (``lead60min_window360min``) or ``"1h/6h"``.
        split: :class:`SplitOptions`; inputs: :class:`InputOptions`; class_weighting: :class:`ClassWeighting`;
            loader: :class:`LoaderOptions` (``data.split.block`` etc. in a config).
        build_dir: where catalog entries are built (default ``build/data``).
        seed: the data module's share of the oversampling seed.

    :func:`data_settings` / :meth:`from_settings` also take the settings flat (``cache="none"``), as older
    checkpoints saved them.
    """

    def __init__(
        self,
        cube: str = "synthetic-sun-small",
        target: str = NOWCAST,
        split: SplitOptions = SplitOptions(),
        inputs: InputOptions = InputOptions(),
        class_weighting: ClassWeighting = ClassWeighting(),
        loader: LoaderOptions = LoaderOptions(),
        build_dir: str | None = None,
        seed: int = 0,
    ):
        super().__init__()
        self.target_name, self.seed = str(target), int(seed)
        self.split, self.inputs, self.class_weighting, self.loader_options = split, inputs, class_weighting, loader
        parse_target(self.target_name)  # a malformed target fails here, before any data is read
        self.save_hyperparameters({"cube": str(cube), "target": self.target_name, "build_dir": build_dir,
                                   "seed": self.seed, "split": asdict(split), "inputs": asdict(inputs),
                                   "class_weighting": asdict(class_weighting), "loader": asdict(loader)})
        self.store_path, self.entry = resolve_cube_path(cube, build_dir)
        self.channels = list(inputs.channels)
        self.normalizer: Normalizer | None = None
        self.samples: dict[str, CubeSamples] = {}
        self.frame_cache: FrameCache | None = None
        self.predict_split = "test"
        self._opened: xr.Dataset | None = None
        self._plan: CubeSplit | None = None

    @property
    def plan(self) -> CubeSplit:
        """The sample plan (:class:`CubeSplit`), made on first use (:meth:`setup`)."""
        self.setup()
        return self._plan

    @classmethod
    def from_settings(cls, *layers: Mapping) -> FlareDataModule:
        """The data module of settings layers (:func:`data_settings`: a config's ``data:``, a checkpoint's
        settings, changes; grouped or flat)."""
        return cls(**data_settings(*layers))

    # -- Lightning hooks
    def prepare_data(self) -> None:
        if self.entry is not None and not self.store_path.exists():
            load_catalog().build(self.entry, build_dir=self.store_path.parent, progress=False)

    def setup(self, stage: str | None = None) -> None:
        if self._plan is not None:
            return
        if not self.store_path.exists():
            self.prepare_data()
        cube = self._opened = open_cube(self.store_path)
        self.cube_attrs = dict(cube.attrs)
        self.synthetic = bool(cube.attrs.get("synthetic", False))
        self.cube_channels = [int(c) for c in cube["channel"].values]
        plan = plan_samples(cube.assign_attrs(name=cube.attrs.get("name", self.store_path.name)), self.target_name,
                            self.split, self.inputs)
        if self.normalizer is None:
            self.normalizer = self._fit_normalizer(plan)
        elif list(self.normalizer.channels) != self.channels:
            raise DataConfigError(f"the normalizer is for channels {list(self.normalizer.channels)}, "
                                  f"the data module for {self.channels}")
        self._use(plan)

    def _use(self, plan: CubeSplit) -> None:
        """Make ``plan`` the data module's, with its samples (and frame cache, if asked for)."""
        self._plan = plan
        images, options = self.inputs.images, self.loader_options
        if not (images and options.cache != "none"):
            self.frame_cache = None
        elif self.frame_cache is None or not self.frame_cache.serves(plan, self.normalizer):
            self.frame_cache = FrameCache.build(self.store_path, plan, self.normalizer, options, self.frame_shape())
        self._sampling_weights = None
        for name, idx in plan.index.items():
            weights = None
            if name == "train" and self.class_weighting.scheme != "none":
                weights = class_weights(plan.labels[idx], self.class_weighting.power)
                if self.class_weighting.scheme == "sampler":  # oversampled, so not weighted again in the loss
                    self._sampling_weights, weights = weights, None
            rows = None if self.frame_cache is None else self.frame_cache.rows(idx, plan.offsets)
            self.samples[name] = CubeSamples(self.store_path, idx, plan.channel_index, plan.target.log_flux[idx],
                                             self.normalizer, weights, cache_rows=rows, offsets=plan.offsets,
                                             aux=plan.aux[idx], images=images, times=plan.times)

    def viewed_with(self, plan: CubeSplit) -> FlareDataModule:
        """A shallow copy of this data module whose plan is ``plan`` (e.g. a rolling-origin fold, to calibrate
        reference forecasts on its training steps); its samples and loaders stay this data module's."""
        self.setup()
        view = copy.copy(self)
        view._plan = plan
        return view

    def reweight(self, class_weighting: str) -> None:
        """Switch the class weighting scheme (``"none"``, ``"loss"`` or ``"sampler"``) of the training samples."""
        plan = self.plan
        self.class_weighting = dataclasses.replace(self.class_weighting, scheme=class_weighting)
        self.hparams["class_weighting"] = asdict(self.class_weighting)
        self._use(plan)

    def use_split(self, split_index: Mapping[str, np.ndarray], *, refit_normalizer: bool = True) -> None:
        """Train, validate and test on other cube steps (the lessons' experiments: a training subset,
        another sampling, a random split). Every split must be non-empty and usable under this data
        module's rules; with ``refit_normalizer`` the normalizer is fitted again on the new training steps.
        The frame cache is kept where it still holds every needed step with the same normalizer.
        """
        self.setup()
        plan = self.plan.reassigned(split_index)
        if refit_normalizer:
            self.normalizer = self._fit_normalizer(plan)
        self._use(plan)

    def model_inputs(self, time_index: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """What the model reads at cube steps ``time_index``: normalized frames (n, frames * C, ny, nx) float32
        (:func:`stack_inputs`) and GOES inputs (n, len(goes)). Refuses non-finite frames, naming the step."""
        self.setup()
        index = np.atleast_1d(np.asarray(time_index, np.int64))
        return stack_inputs(self.cube(), self.normalizer, index, self.plan.offsets), self.plan.aux[index]

    def history_max(self, label: str) -> np.ndarray:
        """The flare history known at each cube step: max XRS-B flux over ``[t - H, t]`` (W/m², float64)
        for ``label`` ``"6h"`` or ``"24h"`` (the cube's ``flux_history_max``)."""
        cube = self.cube()
        labels = [str(h) for h in cube["history"].values] if "flux_history_max" in cube else []
        if label not in labels:
            raise DataConfigError(f"no flare history {label!r} in {self.store_path.name}; it has {sorted(labels)}")
        return cube["flux_history_max"].sel(history=label).values.astype(np.float64)

    def cube(self) -> xr.Dataset:
        """The whole cube, opened lazily (checked complete) once per set-up."""
        self.setup()
        if self._opened is None:
            self._opened = open_cube(self.store_path)
        return self._opened

    def __getstate__(self) -> dict:  # a copy sent to another process opens the cube itself
        state = self.__dict__.copy()
        state["_opened"] = None
        return state

    def training_stats(self) -> TrainingStats:
        """The normalizer and the mean training target (log10 W/m²) that a model is fitted with."""
        self.setup()
        train = self.plan.index["train"]
        return TrainingStats(self.normalizer, float(np.nanmean(self.plan.target.log_flux[train])))

    def _fit_normalizer(self, plan: CubeSplit) -> Normalizer:
        train = plan.index["train"]
        n = min(self.inputs.norm_frames, train.size)
        pick = train[np.unique(np.linspace(0, train.size - 1, n).astype(int))]
        frames = np.empty((pick.size, len(self.channels), *self.frame_shape()), np.float32)
        for pos, block in read_frames(self.store_path, pick, plan.channel_index):
            check_pixels(block, plan.times[pick[pos]], self.store_path)
            frames[pos] = block
        return Normalizer.fit(frames, self.channels, self.inputs.normalization)

    def frame_shape(self) -> tuple[int, int]:
        """(ny, nx) of the cube's frames."""
        shape = zarr.open_group(str(self.store_path), mode="r")["aia"].shape
        return int(shape[2]), int(shape[3])

    def gather(self, batch):
        """Swap cache rows for normalized float32 frames (no-op without a cache)."""
        if self.frame_cache is None:
            return batch
        rows, y, w, t, aux = batch
        return self.frame_cache.gather(rows), y, w, t, aux

    def on_after_batch_transfer(self, batch, dataloader_idx: int = 0):
        return self.gather(batch)

    # -- loaders
    def loader(self, split: str, *, shuffle: bool = False) -> DataLoader:
        """A DataLoader over one split (``train``, ``val`` or ``test``)."""
        self.setup()
        dataset, options = self.samples[split], self.loader_options
        sampler = None
        if split == "train" and self.class_weighting.scheme == "sampler":
            # the run's seed (seed_everything) and the data module's: each training seed draws its own resamples
            generator = torch.Generator().manual_seed((self.seed * 1_000_003 + torch.initial_seed()) % 2**63)
            sampler = WeightedRandomSampler(torch.from_numpy(self._sampling_weights).double(), len(dataset),
                                            replacement=True, generator=generator)
            shuffle = False
        workers = 0 if dataset.cached else options.num_workers
        return DataLoader(dataset, batch_size=options.batch_size, shuffle=shuffle, sampler=sampler,
                          num_workers=workers, persistent_workers=workers > 0,
                          multiprocessing_context=options.multiprocessing_context if workers else None,
                          pin_memory=torch.cuda.is_available() and options.cache == "none")

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """The loader of ``self.predict_split`` (``"test"`` unless set)."""
        return self.loader(self.predict_split, shuffle=False)

    def check_trainable(self) -> str:
        """:func:`check_trainable` of this data module's plan and cube: refuses (naming the cause) a plan no model
        can learn from, else the one line of what the cube supports."""
        self.setup()
        return check_trainable(self.plan, self.cube())

    def describe(self) -> str:
        """:func:`describe` of this data module's plan: the caption of its tables."""
        self.setup()
        return describe(self.plan)

    @property
    def cube_fingerprint(self) -> str | None:
        """The ``input_fingerprint`` of the cube this module reads (its inputs and parameters): the cube's identity,
        which a checkpoint records so that it is never scored on another cube by mistake."""
        self.setup()
        return self.cube_attrs.get("input_fingerprint")

    def state_dict(self) -> dict:
        return {"normalizer": self.normalizer.to_dict() if self.normalizer else None,
                "cube_fingerprint": self.cube_fingerprint}

    def load_state_dict(self, state: dict) -> None:
        if state.get("normalizer"):
            self.normalizer = Normalizer.from_dict(state["normalizer"])
