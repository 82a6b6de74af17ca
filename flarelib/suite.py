"""Run the numbered notebooks in order (papermill) and export HTML: the suite's main job.

    flarelib suite --size default      # make demo (or: python -m flarelib.suite --size default)
    flarelib suite --size small        # what the tests run
    flarelib suite --prepare --size small   # Binder's postBuild: data + checkpoints only

Executed notebooks and their HTML go to ``build/notebooks``; key figures that notebooks
record with :func:`record` go to ``build/results.json`` and are printed at the end, with
each notebook's run time and its kernel's peak resident memory (:class:`PeakMemory`).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import threading
import time
from pathlib import Path

from flarelib.paths import (
    BUILD_DIR,
    NOTEBOOK_DIR,
    PROJECT_ROOT,
    SIZES,
    default_build_dir,
    default_runs_dir,
    results_dir,
    results_path,
)
from flarelib.runner import DEBUG_HELP, DropMessages, run_command


def numbered_notebooks(directory: Path = NOTEBOOK_DIR) -> list[Path]:
    return sorted(p for p in directory.glob("[0-9][0-9]_*.ipynb"))


def _peak_rss_bytes(pid: int) -> int:
    """The process's peak resident set size: ``VmHWM`` on Linux, else its current RSS."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import psutil

    return psutil.Process(pid).memory_info().rss


class PeakMemory:
    """Peak resident memory of the processes this process starts while the block runs (e.g. a kernel).

    A thread samples every ``interval`` s each child process (recursively): its high-water
    mark ``VmHWM`` on Linux (exact, whatever the sampling rate), else its RSS. ``peak_bytes``
    is the largest sum over the children alive at one sample; since each process's
    high-water mark is counted, a kernel and a DataLoader worker that peak at different
    times are added (an upper bound).
    """

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._seen: dict[int, int] = {}

    def _sample(self) -> None:
        import psutil

        try:
            children = psutil.Process().children(recursive=True)
        except psutil.Error:
            return
        for child in children:
            try:
                self._seen[child.pid] = max(self._seen.get(child.pid, 0), _peak_rss_bytes(child.pid))
            except (psutil.Error, OSError):
                continue
        alive = {c.pid for c in children}
        self.peak_bytes = max(self.peak_bytes, sum(v for k, v in self._seen.items() if k in alive))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_notebook(path: Path, out_dir: Path, size: str, *, timeout: int = 1800,
                 parameters: dict | None = None) -> tuple[Path, int]:
    """Execute one notebook with ``SIZE=size`` (and ``parameters``), write the executed copy and its HTML.

    Returns the executed notebook's path and the kernel's peak resident memory in bytes.
    """
    import nbformat
    import papermill

    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / path.name
    with PeakMemory() as memory:
        papermill.execute_notebook(str(path), str(executed), parameters={"SIZE": size, **(parameters or {})},
                                   cwd=str(path.parent), kernel_name="python3", progress_bar=False,
                                   execution_timeout=timeout, extra_arguments=KERNEL_ARGUMENTS)
    nb = without_widgets(nbformat.read(executed, as_version=4))
    nbformat.write(nb, executed)
    executed.with_suffix(".html").write_text(export_html(nb))
    return executed, memory.peak_bytes


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def without_widgets(nb):
    """An executed notebook that reads without its kernel: the widget state (megabytes that no front end can render
    without the kernel) is left out, and so is each widget's view wherever the output has another representation
    (the still and the one-line note of :class:`flarelib.show.widgets.SaliencyBrowser`), which front ends then
    show instead of the widget's ``VBox(children=...`` text. Returns a copy."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data and len(data) > 1:
                data.pop(WIDGET_VIEW)
    return nb


def export_html(nb) -> str:
    """HTML of an executed notebook that reads without a kernel and without the widget manager from a CDN
    (:func:`without_widgets`): each widget shows its still and note, and the notebook's static fallbacks
    (stills, animations embedded as base64) carry the figures."""
    from nbconvert import HTMLExporter  # lazy: the suite module is imported by every notebook's parameters cell

    exporter = HTMLExporter()
    exporter.log.addFilter(_NO_ALT_TEXT_LINE)
    try:
        html, _ = exporter.from_notebook_node(without_widgets(nb))
    finally:
        exporter.log.removeFilter(_NO_ALT_TEXT_LINE)
    return html


#: The kernel's own start-up warnings ("Kernel is running over TCP without encryption": the kernel and papermill talk
#: over the loopback interface of one machine) are held back in every step of ``make demo``.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]


#: nbconvert's line for every exported notebook with a figure ("Alternative text is missing on N image(s)"): it
#: fills in a placeholder description itself; the line is said once per notebook and tells a reader nothing.
_NO_ALT_TEXT_LINE = DropMessages("Alternative text is missing")


#: Notebooks that ``make demo`` leaves out at the default size, to stay within its 10 minutes on 2 cores: the
#: lessons run behind ``make lessons`` (one seed) and ``make experiments`` (all seeds). Small mode runs them all.
LESSON_NOTEBOOKS = ("09",)


def run_suite(size: str = "default", out_dir: Path | None = None, only: list[str] | None = None,
              skip: tuple[str, ...] = ()) -> dict:
    """Run every numbered notebook (or those whose name starts with one of ``only``), except those starting with
    one of ``skip``.

    Returns ``{notebook: {"seconds": run time, "peak_rss_mb": kernel peak memory in MiB}}``.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, not {size!r}")
    out_dir = out_dir or BUILD_DIR / "notebooks"
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("FLARELIB_PROGRESS", "0")  # no training progress bars in the executed notebooks
    runs = {}
    for nb in numbered_notebooks():
        if (only and not any(nb.name.startswith(o) for o in only)) or any(nb.name.startswith(k) for k in skip):
            continue
        start = time.perf_counter()
        print(f"running {nb.name} ({size}) ...", flush=True)
        lessons = any(nb.name.startswith(k) for k in LESSON_NOTEBOOKS)
        _, peak = run_notebook(nb, out_dir, size, timeout=4 * 3600 if lessons else 1800)  # lessons train many models
        runs[nb.name] = {"seconds": round(time.perf_counter() - start, 1), "peak_rss_mb": round(peak / 2**20)}
        print(f"  done in {runs[nb.name]['seconds']} s, kernel peak memory {runs[nb.name]['peak_rss_mb']} MiB",
              flush=True)
    return runs


def prepare(size: str = "small") -> None:
    """Build the embedded data of ``size`` and train its checkpoints (Binder's ``postBuild``)."""
    # lazy: the suite module is imported by every notebook's parameters cell, and torch takes seconds to import
    from flarelib import learn
    from flarelib.cube.catalog import load_catalog  # lazy: as above (the catalog imports the whole ingest)

    catalog = load_catalog()
    for name in ("sample-flare-2011-02-15", "fulldisk-2014-01-01", "fulldisk-level1-2011-02-15",
                 f"synthetic-sun-{size}"):
        print(f"{name}: {catalog.build(name, progress=False)}", flush=True)
    for target in learn.NOTEBOOK_TARGETS.values():
        print(f"{size} {target}: {learn.ensure_trained(size, target)}", flush=True)
        if target != "now":  # the forecast's GOES-only reference model
            print(f"{size} {target} {learn.GOES_ONLY}: "
                  f"{learn.ensure_trained(size, target, variant=learn.GOES_ONLY)}", flush=True)


#: The catalog entries ``make demo`` builds before the notebooks (timed as the step ``data build``).
DEMO_DATA = ("sample-flare-2011-02-15", "fulldisk-2014-01-01", "synthetic-sun-small", "synthetic-sun-default")
#: Columns of ``run_times-<size>.csv``: a step (``data build`` or a notebook), its wall time and kernel peak memory.
RUN_TIME_COLUMNS = ["step", "size", "seconds", "peak_rss_mb"]
#: Columns of the committed ``docs/run_times.csv`` that the README table and the notebook headers come from.
RUN_TIME_TABLE_COLUMNS = ["step", "small_seconds", "small_peak_rss_mb", "default_seconds", "default_peak_rss_mb"]
RUN_TIMES_DOC = PROJECT_ROOT / "docs" / "run_times.csv"


def build_data(names: tuple[str, ...] = DEMO_DATA) -> float:
    """Build the catalog entries ``names`` (as ``make data``); returns the wall time in seconds."""
    from flarelib.cube.catalog import load_catalog  # lazy: as in prepare()

    start = time.perf_counter()
    catalog = load_catalog()
    for name in names:
        print(f"{name}: {catalog.build(name, progress=False)}", flush=True)
    return time.perf_counter() - start


def write_run_times(runs: dict, size: str, data_seconds: float | None = None, tag: str = "") -> Path:
    """``results_dir()/run_times-<size>[-<tag>].csv`` (:data:`RUN_TIME_COLUMNS`) from :func:`run_suite`'s ``runs``."""
    rows = ([{"step": "data build", "size": size, "seconds": round(data_seconds, 1), "peak_rss_mb": None}]
            if data_seconds is not None else [])
    rows += [{"step": Path(name).stem, "size": size, **run} for name, run in runs.items()]
    path = results_dir() / f"run_times-{size}{'-' + tag if tag else ''}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fh.write(",".join(RUN_TIME_COLUMNS) + "\n")
        for row in rows:
            fh.write(",".join("" if row[c] is None else str(row[c]) for c in RUN_TIME_COLUMNS) + "\n")
    return path


def format_seconds(seconds: float) -> str:
    """``"48 s"`` under two minutes, else ``"2.5 min"``; ``"–"`` when unknown (NaN)."""
    if seconds != seconds:  # NaN
        return "–"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def run_time_markdown(table) -> str:
    """The README's run-time table from a :data:`RUN_TIME_TABLE_COLUMNS` table (pandas), with the total."""
    lines = ["| step | small: time | small: peak memory | default: time | default: peak memory |",
             "|---|---|---|---|---|"]
    for row in table.itertuples(index=False):
        memory = [("–" if m != m else f"{m:.0f} MiB") for m in (row.small_peak_rss_mb, row.default_peak_rss_mb)]
        lines.append(f"| {row.step} | {format_seconds(row.small_seconds)} | {memory[0]} | "
                     f"{format_seconds(row.default_seconds)} | {memory[1]} |")
    lessons = table["step"].str[:2].isin(LESSON_NOTEBOOKS)
    lines.append(f"| **total** | {format_seconds(table['small_seconds'].sum(min_count=1))} | | "
                 f"**{format_seconds(table.loc[~lessons, 'default_seconds'].sum(min_count=1))}** (`make demo`) + "
                 f"{format_seconds(table.loc[lessons, 'default_seconds'].sum(min_count=1))} (`make lessons`) | |")
    return "\n".join(lines)


def notebook_run_time(row) -> str:
    """A notebook header's run-time phrase: ``"15 s (small) or 21 s (default), measured on 2 CPU cores. "``."""
    return (f" {format_seconds(row['small_seconds'])} (small) or {format_seconds(row['default_seconds'])} "
            "(default), measured on 2 CPU cores. ")


#: What ``make experiments`` gives notebook 09 (the lessons): every seed, every span and the learning curve.
EXPERIMENT_PARAMETERS = {"SEEDS": 3, "FULL": True}


def run_experiments(out_dir: Path | None = None) -> dict:
    """``make experiments``: the model comparison (``flarelib.experiments``), the converged CNN + GOES model against
    the GOES-only model (``make images``) and the full lessons (notebook 09 with
    :data:`EXPERIMENT_PARAMETERS`), at the default size. Returns ``{step: seconds}``."""
    # lazy: the suite module is imported by every notebook's parameters cell, and torch takes seconds to import
    from flarelib import experiments

    out_dir = out_dir or BUILD_DIR / "experiments"
    os.environ.setdefault("MPLBACKEND", "Agg")
    times = {}
    start = time.perf_counter()
    experiments.main(["--only", "models"])
    times["model comparison"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    experiments.main(["--only", "images", "--seeds", str(EXPERIMENT_PARAMETERS["SEEDS"])])
    times["CNN + GOES against the GOES-only model"] = round(time.perf_counter() - start, 1)
    lessons = next(p for p in numbered_notebooks() if p.name.startswith("09"))
    start = time.perf_counter()
    executed, _ = run_notebook(lessons, out_dir, "default", timeout=6 * 3600, parameters=EXPERIMENT_PARAMETERS)
    times["lessons (notebook 09, full)"] = round(time.perf_counter() - start, 1)
    print(f"executed lessons notebook and HTML: {executed}, {executed.with_suffix('.html')}")
    return times


def main(argv: list[str] | None = None) -> int:
    """``python -m flarelib.suite`` / ``flarelib suite [--size default|small] [--only 01 02] [--prepare |
    --experiments]``, run by :func:`flarelib.runner.run_command` (one-line errors, ``--debug``)."""
    return run_command(_run_suite_command, sys.argv[1:] if argv is None else argv)


def _run_suite_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="flarelib suite", description="Run the flarelib notebook suite",
                                     epilog=DEBUG_HELP)
    parser.add_argument("--size", default="default", choices=SIZES)
    parser.add_argument("--prepare", action="store_true",
                        help="only build the data and train the checkpoints of --size (Binder's postBuild)")
    parser.add_argument("--out", type=Path, default=None, help="where executed notebooks and HTML go")
    parser.add_argument("--only", nargs="*", help="notebook name prefixes, e.g. 01 02")
    parser.add_argument("--experiments", action="store_true",
                        help="make experiments: the model comparison and the full lessons (default size, hours)")
    args = parser.parse_args(argv)
    if args.prepare:
        prepare(args.size)
        return 0
    if args.experiments:
        times = run_experiments(args.out)
        print("\n=== flarelib experiments finished ===")
        print(f"results (CSV): {results_dir()}")
        for step, seconds in times.items():
            print(f"  {step}: {seconds / 60:.1f} min")
        return 0
    if results_path().exists() and not args.only:
        results_path().unlink()
    data_seconds = None if args.only else build_data(DEMO_DATA if args.size == "default" else
                                                     tuple(n for n in DEMO_DATA if n != "synthetic-sun-default"))
    skip = LESSON_NOTEBOOKS if args.size == "default" and not args.only else ()
    runs = run_suite(args.size, args.out, args.only, skip=skip)
    times = write_run_times(runs, args.size, data_seconds, tag="-".join(args.only or []))
    out = args.out or BUILD_DIR / "notebooks"
    print("\n=== flarelib suite finished ===")
    print(f"executed notebooks and HTML: {out}")
    print(f"cubes: {default_build_dir()}")
    print(f"training runs and checkpoints: {default_runs_dir()}")
    if data_seconds is not None:
        print(f"  data build: {data_seconds:.0f} s")
    for name, run in runs.items():
        print(f"  {name}: {run['seconds']} s, kernel peak memory {run['peak_rss_mb']} MiB")
    total = sum(run["seconds"] for run in runs.values()) + (data_seconds or 0)
    print(f"  total: {format_seconds(total)} (table: {times}; README and notebook headers: "
          "python scripts/sync_run_times.py)")
    if skip:
        print(f"  left out at this size: notebooks {', '.join(skip)} (make lessons, make experiments)")
    if results_path().exists():
        print(f"key figures ({results_path()}):")
        for key, value in json.loads(results_path().read_text()).items():
            print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
