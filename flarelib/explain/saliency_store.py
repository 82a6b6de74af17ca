"""Saliency over time: one method over a stretch of time steps written beside the cube as
``saliency(time, attribution, channel, y, x)`` in Zarr, resumable like the ingest.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from torch import nn

from flarelib.checksums import fingerprint, sha256_of
from flarelib.cube import store
from flarelib.explain.attribution import (
    METHODS,
    ExplainedOutput,
    attribute_tensor,
    check_time_index,
    current_frame,
    model_inputs,
)
from flarelib.labels import data_kind
from flarelib.learn.data import FlareDataModule

#: How :func:`write_saliency_store` writes by default: 64 time steps per write, with a progress bar.
SALIENCY_WRITES = store.WriteOptions(steps_per_write=64)


def write_saliency_store(
    path: str | Path,
    model: nn.Module,
    dm: FlareDataModule,
    methods: Sequence[str] = ("gradcam",),
    *,
    time_index: Sequence[int] | None = None,
    checkpoint: str | Path | None = None,
    head: str = "flux",
    batch_size: int = 32,
    dtype: str = "float32",
    write: store.WriteOptions = SALIENCY_WRITES,
    **params,
) -> Path:
    """Compute ``methods`` over cube steps ``time_index`` (default: all) and write them to Zarr.

    The store holds ``saliency(time, attribution, channel, y, x)`` (one chunk per time step, with
    every method and channel), the explained ``prediction``
    (log10 W/m²) and provenance attrs (checkpoint sha256, methods and parameters, cube name).
    It is written with :func:`flarelib.cube.store.write_cube`: an interrupted run leaves
    ``ingest_status = "incomplete"`` and re-running completes it; a store made from other inputs
    (e.g. a retrained checkpoint) is replaced. ``write`` says how (``steps_per_write`` time steps per write,
    ``progress``, ``on_written``; ``overwrite`` is always on). ``params`` go to every method (:func:`attribute`),
    e.g. ``block=`` for the conv block the CAM methods read (default the last) or ``n_steps=`` for Integrated
    Gradients. ``batch_size`` is the number of maps computed at once, in units of time steps.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {METHODS}")
    dm.setup()
    index = np.arange(dm.plan.times.size) if time_index is None else np.asarray(time_index, np.int64)
    ny, nx = dm.frame_shape()
    index = check_time_index(dm, index)
    provenance = {"checkpoint_sha256": sha256_of(checkpoint) if checkpoint else "in-memory model",
                  "methods": list(methods), "params": {k: v for k, v in params.items() if k != "layer"},
                  "head": head, "cube": dm.cube_attrs.get("name", ""),
                  "cube_fingerprint": dm.cube_attrs.get("input_fingerprint", ""), "channels": dm.channels,
                  "time_index": [int(index[0]), int(index[-1]), int(index.size)],
                  # layout 2: the methods along "attribution" (a dimension named "method" shadowed .sel's keyword)
                  "layout": 2}
    template = xr.Dataset(
        coords={"time": dm.plan.times[index], "time_index": ("time", index), "attribution": list(methods),
                "channel": dm.channels, "y": np.arange(ny), "x": np.arange(nx)},
        attrs={"title": f"FlareNet saliency over time on {data_kind(dm.synthetic)} {provenance['cube']}",
               "synthetic": dm.synthetic, "provenance": json.dumps(provenance, default=str),
               "input_fingerprint": fingerprint(provenance),
               "software_versions": json.dumps(store.software_versions())},
    )
    model = model.eval()

    def fill_steps(i0: int, i1: int) -> dict[str, np.ndarray]:
        got = model_inputs(model, dm, index[i0:i1])  # read once, for every method and the prediction
        maps = np.stack([current_frame(attribute_tensor(model, got.x, m, head=head, aux=got.aux,
                                                         batch_size=batch_size, **params).numpy(),
                                        len(dm.channels))[0] for m in methods], axis=1)
        device = next(model.parameters()).device
        with torch.no_grad():
            pred = ExplainedOutput(model, head)(got.x.to(device), None if got.aux is None else got.aux.to(device))
            pred = pred.float().cpu().numpy()
        return {"saliency": maps.astype(dtype), "prediction": pred.astype(np.float32)}

    streamed = {"saliency": (("attribution", "channel", "y", "x"), (len(methods), len(dm.channels), ny, nx), dtype),
                "prediction": ((), (), "float32")}
    # derived data: a store made from another checkpoint, cube or method set is replaced, not refused
    return store.write_cube(path, template, streamed, fill_steps, dataclasses.replace(write, overwrite=True))
