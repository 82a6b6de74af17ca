"""The ``flarelib`` console command: one entry point, one subcommand per job.

    flarelib catalog list | build NAME ... | verify [NAME ...] | new NAME --from FOLDER  # flarelib.cube.catalog
    flarelib verify [NAME ...]                                   # = flarelib catalog verify ...
    flarelib train fit --config configs/small.yaml ...           # python -m flarelib.learn.runs fit ... (LightningCLI)
    flarelib suite --size default                                # python -m flarelib.suite ...
    flarelib benchmark [store training explain ingest]           # make bench (source checkout only)

Each subcommand is the ``main`` of its module, so both forms behave the same, and all of them run under
:func:`flarelib.runner.run_command` (a failure is one line, status 1; ``--debug`` shows the traceback).
``flarelib train`` leaves ``sys.argv`` as it is: DDP launchers re-run it in their child processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence

from flarelib.paths import PROJECT_ROOT
from flarelib.runner import DEBUG_HELP, run_command

#: The hot-path benchmarks of ``make bench``, in its order (``benchmarks/bench_<name>.py`` of a source checkout).
BENCHMARKS = ("store", "training", "explain", "ingest")
BENCHMARK_DIR = PROJECT_ROOT / "benchmarks"


def benchmark(argv: list[str]) -> int:
    """``flarelib benchmark [NAME ...]``: run ``benchmarks/bench_<NAME>.py`` (default: all, as ``make bench``), each
    in its own Python process; the status is that of the first that fails, else 0."""
    if argv[:1] in (["-h"], ["--help"]):
        print(f"usage: flarelib benchmark [{' '.join(BENCHMARKS)}]\n\nthe hot-path benchmarks of `make bench`, from "
              f"a source checkout ({BENCHMARK_DIR})")
        return 0
    unknown = sorted(set(argv) - set(BENCHMARKS))
    if unknown:
        raise ValueError(f"no benchmark {', '.join(unknown)}; the benchmarks are {', '.join(BENCHMARKS)}")
    scripts = [BENCHMARK_DIR / f"bench_{name}.py" for name in argv or BENCHMARKS]
    missing = [s for s in scripts if not s.is_file()]
    if missing:
        raise FileNotFoundError(f"no {missing[0]}: the benchmarks ship with the source tree, not the installed "
                                "package; run this from a checkout (or set FLARELIB_ROOT to one)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT),
                                                                     os.environ.get("PYTHONPATH")]))}
    for script in scripts:
        print(f"=== {script.relative_to(PROJECT_ROOT)}", flush=True)
        status = subprocess.run([sys.executable, str(script)], cwd=PROJECT_ROOT, env=env).returncode
        if status:
            return status
    return 0


# The commands import their module when they run: `flarelib catalog` and `flarelib --help` should not wait for
# torch and Lightning to import.
def _catalog(argv: list[str]) -> int:
    from flarelib.cube import catalog  # lazy: start-up time (see above)

    return catalog.main(argv)


def _train(argv: list[str]) -> int:
    from flarelib import learn  # lazy: start-up time (torch, Lightning)

    return learn.main(argv)


def _suite(argv: list[str]) -> int:
    from flarelib import suite  # lazy: start-up time (see above)

    return suite.main(argv)


#: name -> (what it does, its command: ``main(argv) -> exit status``).
COMMANDS: dict[str, tuple[str, Callable[[list[str]], int]]] = {
    "catalog": ("the data catalog: list, build, verify entries; new NAME --from FOLDER", _catalog),
    "verify": ("check the files and built cubes of catalog entries (= catalog verify)",
               lambda argv: _catalog(["verify", *argv])),
    "train": ("train FlareNet with LightningCLI: flarelib train fit --config ...", _train),
    "suite": ("run the notebook suite (make demo), --prepare, --experiments", _suite),
    "benchmark": ("the hot-path benchmarks of make bench (source checkout)",
                  lambda argv: run_command(benchmark, argv)),
}


def usage() -> str:
    """The top-level ``--help`` text."""
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {about}" for name, (about, _) in COMMANDS.items()]
    return ("usage: flarelib COMMAND [ARGS ...]   (flarelib COMMAND --help for its arguments)\n\ncommands:\n"
            + "\n".join(lines) + f"\n\n{DEBUG_HELP}")


def main(argv: Sequence[str] | None = None) -> int:
    """``flarelib COMMAND ARGS``: the exit status of the command (2 and the usage for an unknown one)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"flarelib: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    return COMMANDS[name][1](rest)


if __name__ == "__main__":
    sys.exit(main())
