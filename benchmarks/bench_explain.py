"""Benchmark of the explain and widgets stages (not a test): maps/s per method, saliency-store throughput, browser.

    python benchmarks/bench_explain.py                  # CPU, the trained small or default model (make bench)
    python benchmarks/bench_explain.py --device cuda --size 256 --frames 43800 --batch 512 --methods gradcam
                                                        # GPU: a year of 12-min frames at 256x256 (not run here)

Prints, in one run:
* maps/s of each Captum method on the same frames, and the ratio to plain forward passes
  (``inference``: the model alone, the reference measured in the same run);
* end-to-end frames/s of :func:`flarelib.explain.write_saliency_store` (read, normalize,
  attribute, write Zarr) against the bare Grad-CAM maps/s of the same run;
* the kernel work of a :class:`flarelib.show.widgets.SaliencyBrowser`: pre-rendering one step's
  layers, a slider step and a channel change (until the shown step is sent), each as a ratio to
  one full Agg render of the same figure (the reference, measured in the same run). The page's
  own repaint times are measured by ``tests/test_browser.py`` in Chromium.

``--size 256`` builds a SYNTHETIC cube of that size and uses an untrained FlareNet (the
speed of attribution does not depend on the weights); otherwise the checkpoint of notebook
04 (``--run-size``) and its cube are used.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import xarray as xr  # noqa: E402

from flarelib import explain, learn  # noqa: E402
from flarelib.cube import store, synthetic  # noqa: E402
from flarelib.cube.catalog import load_catalog  # noqa: E402
from flarelib.learn.data import FlareDataModule, SplitOptions  # noqa: E402
from flarelib.show import widgets  # noqa: E402

PARAMS = {"n_steps": 16, "nt_samples": 4, "window": 8, "stride": 8}


def _rate(fn, n: int) -> float:
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-size", default="small", choices=["small", "default"])
    parser.add_argument("--size", type=int, default=None, help="build a synthetic cube of this many px instead")
    parser.add_argument("--frames", type=int, default=64, help="frames per method")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--methods", default=",".join(explain.METHODS))
    args = parser.parse_args()
    device = torch.device(args.device)
    work = Path(tempfile.mkdtemp(prefix="flarelib-bench-explain-"))
    if args.size:
        days = max(args.frames * synthetic.SIZES["default"].cadence_minutes / 1440, 0.5)
        config = dataclasses.replace(synthetic.SIZES["default"], days=days, size=args.size)
        cube_path = synthetic.build_synthetic_cube(work / "cube.zarr", config,
                                                   load_catalog().files("fulldisk-2014-01-01"), progress=False)
        dm = FlareDataModule(cube=str(cube_path), split=SplitOptions(fractions=(0.8, 0.1, 0.1)))
        dm.setup()
        model = learn.FlareNet()
        model.set_normalizer(dm.normalizer)
        checkpoint = None
        label = f"untrained FlareNet, SYNTHETIC {args.size}x{args.size} cube"
    else:
        checkpoint = learn.ensure_trained(args.run_size, "now")
        model = learn.load_flarenet(checkpoint)
        dm = learn.load_datamodule(checkpoint, model)
        label = f"nowcast checkpoint of notebook 04 ({args.run_size}), {dm.describe()}"
    model = model.to(device).eval()
    steps = np.arange(min(args.frames, dm.plan.times.size))
    x = torch.from_numpy(dm.model_inputs(steps)[0]).to(device)
    print(f"{label}; {len(steps)} frames of {tuple(x.shape[1:])}, batch {args.batch}, device {device}, "
          f"{torch.get_num_threads()} torch threads")

    def forward():
        with torch.no_grad():
            for k in range(0, len(steps), args.batch):
                model(x[k:k + args.batch])

    reference = _rate(forward, len(steps))
    print(f"  {'inference':22s} {reference:10.1f} frames/s  (reference)")
    rates = {}
    for method in args.methods.split(","):
        rates[method] = _rate(lambda m=method: explain.attribute(model, dm, steps, m, batch_size=args.batch,
                                                                 device=device, **PARAMS), len(steps))
        print(f"  {method:22s} {rates[method]:10.1f} maps/s    ratio to inference {rates[method] / reference:.3f}")

    store_steps = steps if args.size else np.arange(min(4 * args.frames, dm.plan.times.size))
    start = time.perf_counter()
    explain.write_saliency_store(work / "saliency.zarr", model, dm, ["gradcam"], time_index=store_steps,
                                 checkpoint=checkpoint, batch_size=args.batch,
                                 write=store.WriteOptions(steps_per_write=max(args.batch, 64), progress=False))
    store_rate = len(store_steps) / (time.perf_counter() - start)
    bare = rates.get("gradcam")
    ratio = f"  ratio to bare Grad-CAM {store_rate / bare:.2f}" if bare else ""
    print(f"  saliency store (gradcam, end to end) {store_rate:8.1f} frames/s{ratio}; "
          f"{len(store_steps)} frames in {len(store_steps) / store_rate:.1f} s")

    cube = xr.open_zarr(str(dm.store_path))
    browser = widgets.SaliencyBrowser(cube, xr.open_zarr(work / "saliency.zarr"), method="gradcam")
    renders = []
    for _ in range(5):
        start = time.perf_counter()
        browser.still()
        renders.append(time.perf_counter() - start)
    reference = 1e3 * sorted(renders)[len(renders) // 2]
    print(f"  browser: one full Agg render of the figure {reference:.1f} ms (reference)")
    for what, ms in widgets.kernel_timings(browser, steps=30).items():
        print(f"  browser {what:22s} {ms:8.2f} ms   ratio to a full render {ms / reference:.3f}")


if __name__ == "__main__":
    main()
