"""Benchmark of the training data path (not a test): samples/s fed from Zarr vs from memory.

    python benchmarks/bench_training.py                       # CPU, 256x256, 6 channels, bf16 (make bench)
    python benchmarks/bench_training.py --device cuda --precision bf16 --channels-last \\
        --compile --workers 15 --batch 256 --days 20             # GPU (see README: not run here)

One run builds a SYNTHETIC cube at ``--size`` px (default 256, the six default channels),
then trains the same FlareNet for the same number of steps, fed four ways:

* ``in-memory``: batches sliced from a tensor of normalized frames already on the device
  (the reference: no data path at all);
* ``zarr``: :class:`flarelib.learn.data.FlareDataModule` with ``cache="none"``, shuffled
  single-sample reads of Zarr chunks in ``--workers`` DataLoader workers;
* ``cache=memory`` and ``cache=device``: the data module's cache of normalized frames
  (float16), filled by contiguous batched reads, gathered per batch.

It prints samples/s for each and the ratio to the in-memory reference of the same run.
The goals of issue 3: on 2 CPU cores >= 50 samples/s and a zarr/in-memory ratio >= 0.9;
on a GPU a fed/GPU-resident ratio >= 0.9 (the cache path).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from flarelib.cube import synthetic
from flarelib.cube.catalog import load_catalog
from flarelib.learn import Architecture, FlareNet
from flarelib.learn.data import FlareDataModule


def _train(model, batches, steps: int, device: torch.device, precision: str, warmup: int, gather=None) -> float:
    """Samples/s of ``steps`` optimizer steps (after ``warmup`` untimed ones) over ``batches``."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16"
                else contextlib.nullcontext())
    model.train()
    seen, start = 0, None
    iterator = iter(batches)
    for step in range(warmup + steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, seen = time.perf_counter(), 0
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(batches)
            batch = next(iterator)
        if gather is not None:
            batch = gather([b.to(device, non_blocking=True) for b in batch])
        x, y = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
        with autocast:
            loss = ((model(x).float() - y) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += x.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--days", type=float, default=10.0, help="length of the synthetic cube (1-hour cadence)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds per path; the median is reported")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["32", "bf16"], default="bf16")
    parser.add_argument("--channels-last", action="store_true",
                        help="channels_last memory format (slower on the 2-core CPU here, see the README)")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--widths", default="16,32,64,64")
    parser.add_argument("--work", type=Path, default=None, help="folder for the cube (default: a temp folder)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    device = torch.device(args.device)
    work = args.work or Path(tempfile.mkdtemp(prefix="flarelib-bench-train-"))
    cube = work / f"synthetic-{args.size}px-{args.days:g}d.zarr"
    if not cube.exists():
        config = dataclasses.replace(synthetic.SIZES["default"], days=args.days, size=args.size)
        start = time.perf_counter()
        synthetic.build_synthetic_cube(cube, config, load_catalog().files("fulldisk-2014-01-01"), progress=False)
        print(f"built SYNTHETIC cube {cube.name}: {config.n_steps} steps in {time.perf_counter() - start:.1f} s")
    widths = [int(w) for w in args.widths.split(",")]

    def new_model():
        torch.manual_seed(0)
        model = FlareNet(architecture=Architecture(widths=widths, channels_last=args.channels_last)).to(device)
        return torch.compile(model) if args.compile else model

    common = dict(cube=str(cube), batch_size=args.batch, split_fractions=[0.8, 0.1, 0.1])  # data_settings' flat names
    results = {"device": str(device), "torch_threads": torch.get_num_threads(), "size": args.size,
               "batch": args.batch, "precision": args.precision, "channels_last": args.channels_last,
               "compile": args.compile, "workers": args.workers, "widths": widths}

    cached = FlareDataModule.from_settings(common, {"cache": "memory", "cache_dtype": "float16"})
    cached.setup()
    rows = torch.arange(len(cached.samples["train"]))
    frames = cached.frame_cache.frames[rows].to(device=device, dtype=torch.float32)
    targets = torch.from_numpy(cached.samples["train"].log_flux).to(device)
    n = frames.shape[0]
    generator = torch.Generator().manual_seed(0)

    def memory_batches():
        order = torch.randperm(n, generator=generator)
        for k in range(0, n - args.batch + 1, args.batch):
            idx = order[k: k + args.batch].to(device)
            yield frames[idx], targets[idx]

    class Reiterable:
        def __iter__(self):
            return memory_batches()

    zarr_dm = FlareDataModule.from_settings(common, {"cache": "none", "num_workers": args.workers})
    zarr_dm.setup()
    paths = {
        "in-memory": lambda: _train(new_model(), Reiterable(), args.steps, device, args.precision, args.warmup),
        "zarr": lambda: _train(new_model(), zarr_dm.train_dataloader(), args.steps, device, args.precision,
                               args.warmup),
        "cache=memory": lambda: _train(new_model(), cached.train_dataloader(), args.steps, device, args.precision,
                                       args.warmup, gather=cached.gather),
    }
    if device.type != "cpu":
        on_device = FlareDataModule.from_settings(common, {"cache": "device", "cache_dtype": "float16"})
        on_device.setup()
        paths["cache=device"] = lambda: _train(new_model(), on_device.train_dataloader(), args.steps, device,
                                               args.precision, args.warmup, gather=on_device.gather)
    rounds = {key: [] for key in paths}
    for _ in range(args.repeats):  # interleaved, so drifts of the machine hit every path alike
        for key, run in paths.items():
            rounds[key].append(run())
    for key, values in rounds.items():
        results[key] = float(np.median(values))
        results[f"{key} rounds"] = [round(v, 1) for v in values]

    print(f"FlareNet training throughput, SYNTHETIC cube {args.size}x{args.size} px, 6 channels, batch {args.batch}, "
          f"{args.precision}, channels_last={args.channels_last}, device {device}, "
          f"{results['torch_threads']} torch threads, {args.workers} DataLoader worker(s):")
    reference = results["in-memory"]
    for key in ("in-memory", "zarr", "cache=memory", "cache=device"):
        if key in results:
            print(f"  {key:13s} {results[key]:9.1f} samples/s   ratio to in-memory {results[key] / reference:.2f}"
                  f"   (rounds: {results[key + ' rounds']})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
