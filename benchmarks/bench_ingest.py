"""Benchmark of the Dask-distributed ingest (not a test): scaling from 1 to 2 worker processes.

    python benchmarks/bench_ingest.py [--copies 10] [--workers 2]

Input: the 60 real AIA cutouts of ``sample-flare-2011-02-15``, written ``--copies`` times with
T_OBS/DATE-OBS shifted by 20 minutes per copy, so there is enough work to time (benchmark input
only: the pixels are real, the later times are not). Each run builds the same cube: validate,
calibrate (degradation, exposure) and write, on a LocalCluster of 1 and of N single-threaded
worker processes (cluster start-up excluded), plus the serial in-process path as the reference.
Prints the time of each, the speed-up and the parallel efficiency T1 / (N * TN) (goal >= 0.8).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.io import fits

from flarelib.cube import ingest, store
from flarelib.cube.catalog import load_catalog


def shifted_copies(files: list[Path], copies: int, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(copies):
        for f in files:
            with fits.open(f) as hdul:
                for hdu in hdul:
                    for key in ("T_OBS", "DATE-OBS"):
                        if key in hdu.header:
                            t = pd.Timestamp(str(hdu.header[key]).rstrip("Z")) + pd.Timedelta(minutes=20 * k)
                            hdu.header[key] = t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + ("Z" if key == "T_OBS" else "")
                path = out / f"copy{k:02d}_{f.name}"
                hdul.writeto(path, overwrite=True)
                paths.append(path)
    return paths


def timed_build(files, path, options, scheduler, block) -> float:
    start = time.perf_counter()
    ingest.build_fits_cube(files, path, name="bench", rules=options.rules, prep_options=options.prep,
                           targets=dataclasses.replace(options.targets, forecasts=(("0min", "12min"),)),
                           write=dataclasses.replace(options.write, scheduler=scheduler, steps_per_write=block))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--block", type=int, default=5, help="time steps per Dask task")
    args = parser.parse_args()
    cat = load_catalog()
    entry = cat["sample-flare-2011-02-15"]
    work = Path(tempfile.mkdtemp(prefix="flarelib-bench-ingest-"))
    files = shifted_copies(cat.files(entry.name), args.copies, work / "fits")
    options = cat.cube_options(entry.name, progress=False)
    print(f"input: {len(files)} frames (real cutouts, {args.copies} time-shifted copies), {len(files) // 6} steps")

    clients = {n: store.dask_client(f"local:{n}") for n in (1, args.workers)}
    times = {"serial": [], 1: [], args.workers: []}
    try:
        for r in range(args.rounds):
            for key in times:
                path = work / f"cube-{key}-{r}.zarr"
                scheduler = None if key == "serial" else clients[key][0]
                times[key].append(timed_build(files, path, options, scheduler, args.block))
                shutil.rmtree(path)
    finally:
        for client, cluster in clients.values():
            client.close()
            cluster.close()
    best = {k: min(v) for k, v in times.items()}
    n = args.workers
    frames = len(files)
    print(f"serial (in process)      {best['serial']:7.2f} s  {frames / best['serial']:6.1f} frames/s  (reference)")
    print(f"Dask, 1 worker           {best[1]:7.2f} s  {frames / best[1]:6.1f} frames/s  "
          f"ratio to serial {best['serial'] / best[1]:.2f}")
    print(f"Dask, {n} workers          {best[n]:7.2f} s  {frames / best[n]:6.1f} frames/s  "
          f"ratio to serial {best['serial'] / best[n]:.2f}")
    print(f"speed-up 1 -> {n} workers: {best[1] / best[n]:.2f}x; parallel efficiency {best[1] / (n * best[n]):.2f} "
          "(goal >= 0.8)")
    shutil.rmtree(work)


if __name__ == "__main__":
    import logging

    logging.getLogger("distributed").setLevel(logging.WARNING)
    np.seterr(all="ignore")
    main()
