"""Run the numbered notebooks in order (papermill) and export HTML: the suite's main job.

    python -m flarelib.suite --size default      # make demo
    python -m flarelib.suite --size small        # what the tests run

Executed notebooks and their HTML go to ``build/notebooks``; key figures that notebooks
record with :func:`record` go to ``build/results.json`` and are printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from flarelib.catalog import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
SIZES = ("small", "default")


def results_path() -> Path:
    return Path(os.environ.get("FLARELIB_RESULTS", REPO_ROOT / "build" / "results.json"))


def artifacts_dir() -> Path:
    """Where notebooks put files for readers (animations): beside ``results.json`` (``build/`` by default)."""
    return results_path().parent


def record(key: str, value) -> None:
    """Store one key figure of a notebook run (shown at the end of ``make demo``)."""
    path = results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(path.read_text()) if path.exists() else {}
    results[key] = value
    path.write_text(json.dumps(results, indent=1, default=str))


def numbered_notebooks(directory: Path = NOTEBOOK_DIR) -> list[Path]:
    return sorted(p for p in directory.glob("[0-9][0-9]_*.ipynb"))


def run_notebook(path: Path, out_dir: Path, size: str, *, timeout: int = 1800) -> Path:
    """Execute one notebook with ``SIZE=size`` and write the executed copy and its HTML."""
    import nbformat
    import papermill
    from nbconvert import HTMLExporter

    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / path.name
    papermill.execute_notebook(str(path), str(executed), parameters={"SIZE": size}, cwd=str(path.parent),
                               kernel_name="python3", progress_bar=False, execution_timeout=timeout)
    html, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
    executed.with_suffix(".html").write_text(html)
    return executed


def run_suite(size: str = "default", out_dir: Path | None = None, only: list[str] | None = None) -> dict:
    """Run every numbered notebook (or those whose name starts with one of ``only``)."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, not {size!r}")
    out_dir = out_dir or REPO_ROOT / "build" / "notebooks"
    os.environ.setdefault("MPLBACKEND", "Agg")
    timings = {}
    for nb in numbered_notebooks():
        if only and not any(nb.name.startswith(o) for o in only):
            continue
        start = time.perf_counter()
        print(f"running {nb.name} ({size}) ...", flush=True)
        run_notebook(nb, out_dir, size)
        timings[nb.name] = round(time.perf_counter() - start, 1)
        print(f"  done in {timings[nb.name]} s", flush=True)
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the flarelib notebook suite")
    parser.add_argument("--size", default="default", choices=SIZES)
    parser.add_argument("--out", type=Path, default=None, help="where executed notebooks and HTML go")
    parser.add_argument("--only", nargs="*", help="notebook name prefixes, e.g. 01 02")
    args = parser.parse_args(argv)
    if results_path().exists():
        results_path().unlink()
    timings = run_suite(args.size, args.out, args.only)
    out = args.out or REPO_ROOT / "build" / "notebooks"
    print("\n=== flarelib suite finished ===")
    print(f"executed notebooks and HTML: {out}")
    print(f"cubes: {os.environ.get('FLARELIB_DATA_DIR', REPO_ROOT / 'build' / 'data')}")
    print(f"training runs and checkpoints: {os.environ.get('FLARELIB_RUNS_DIR', REPO_ROOT / 'build' / 'runs')}")
    for name, seconds in timings.items():
        print(f"  {name}: {seconds} s")
    if results_path().exists():
        print(f"key figures ({results_path()}):")
        for key, value in json.loads(results_path().read_text()).items():
            print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
