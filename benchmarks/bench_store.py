"""Benchmark of the data layer (not a test): ingest speed and random single-sample reads.

    python benchmarks/bench_store.py [--steps 2000] [--reads 2000]

Prints, in one run:
* ingest frames/s of the real FITS path (60 real AIA cutouts: validate, calibrate, write);
* ingest frames/s of the synthetic generator (generation plus write);
* random single-time-step read throughput from the Zarr cube and from a numpy memmap of
  the same array on the same disk, and their ratio (the reference is measured in the same run);
* the read overhead of the chunk checksums (issue 13): the same random reads through
  :func:`flarelib.cube.store.checked_store` (CRC32 verified before decoding, then again by the
  codec) against a copy of the array written without checksums, in the same run (goal: <= 10 %).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

from flarelib.cube import ingest, store, synthetic
from flarelib.cube.catalog import load_catalog


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000, help="synthetic time steps (64x64, 6 channels)")
    parser.add_argument("--reads", type=int, default=2000)
    args = parser.parse_args()
    cat = load_catalog()
    work = Path(tempfile.mkdtemp(prefix="flarelib-bench-"))

    entry = cat["sample-flare-2011-02-15"]
    files = cat.files(entry.name)
    start = time.perf_counter()
    options = cat.cube_options(entry.name, progress=False)
    ingest.build_fits_cube(files, work / "flare.zarr", name=entry.name, rules=options.rules,
                           prep_options=options.prep,
                           targets=dataclasses.replace(options.targets, forecasts=(("0min", "12min"),)),
                           write=options.write)
    fits_rate = len(files) / (time.perf_counter() - start)

    default = synthetic.SIZES["default"]
    config = dataclasses.replace(default, days=args.steps * default.cadence_minutes / 1440)
    disk = cat.files("fulldisk-2014-01-01")
    start = time.perf_counter()
    path = synthetic.build_synthetic_cube(work / "syn.zarr", config, disk, progress=False)
    syn_rate = config.n_steps * len(config.channels) / (time.perf_counter() - start)

    cube = xr.open_zarr(path)
    array = cube.aia.values
    memmap_path = work / "aia.npy"
    np.save(memmap_path, array)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, array.shape[0], args.reads)

    aia = zarr.open_group(str(path), mode="r")["aia"]  # what a DataLoader worker holds
    start = time.perf_counter()
    for i in idx:
        np.asarray(aia[i])
    zarr_rate = args.reads / (time.perf_counter() - start)

    mm = np.load(memmap_path, mmap_mode="r")
    start = time.perf_counter()
    for i in idx:
        np.array(mm[i])
    mm_rate = args.reads / (time.perf_counter() - start)

    xr_cube = xr.open_zarr(path)
    n_xr = min(args.reads, 300)
    start = time.perf_counter()
    for i in idx[:n_xr]:
        xr_cube.aia.isel(time=int(i)).values
    xr_rate = n_xr / (time.perf_counter() - start)

    # checksum overhead: the cube's aia (CRC32 + Blosc) read through the checking store, against the same
    # array and chunks written with Blosc only; the two are timed in alternating rounds to share the disk cache state
    plain = zarr.open_array(str(work / "plain.zarr"), mode="w", shape=array.shape, chunks=(1,) + array.shape[1:],
                            dtype=array.dtype, zarr_format=2, compressor=store.COMPRESSOR)
    plain[:] = array
    checked = zarr.open_group(store.checked_store(path), mode="r", zarr_format=2)["aia"]
    rates = {"checked": [], "plain": []}
    for _ in range(3):
        for label, arr in (("plain", plain), ("checked", checked)):
            start = time.perf_counter()
            for i in idx:
                np.asarray(arr[i])
            rates[label].append(args.reads / (time.perf_counter() - start))
    crc_rate, plain_rate = max(rates["checked"]), max(rates["plain"])

    sample_mb = array[0].nbytes / 1e6
    print(f"ingest, real FITS (60 AIA cutouts 67x67): {fits_rate:8.1f} frames/s")
    print(f"ingest, synthetic ({config.n_steps} steps x 6 x 64x64): {syn_rate:8.1f} frames/s")
    print(f"random single-sample reads ({sample_mb:.3f} MB each, {args.reads} reads):")
    print(f"  zarr array       {zarr_rate:8.1f} samples/s")
    print(f"  numpy memmap     {mm_rate:8.1f} samples/s")
    print(f"  xarray .isel     {xr_rate:8.1f} samples/s  (lazy xarray+dask per sample, for comparison)")
    print(f"  ratio zarr/memmap = {zarr_rate / mm_rate:.3f}")
    print(f"  zarr, no checksums        {plain_rate:8.1f} samples/s  (reference, same array and chunks)")
    print(f"  zarr, CRC32 checked store {crc_rate:8.1f} samples/s  (best of 3 alternating rounds each)")
    print(f"  checksum read overhead = {plain_rate / crc_rate - 1:+.1%} (reads with checksums take "
          f"{plain_rate / crc_rate:.3f}x the time of reads without; goal <= 1.10x)")


if __name__ == "__main__":
    main()
