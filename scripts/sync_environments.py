"""Write the conda environment file from pyproject.toml (the one place dependencies live).

    python scripts/sync_environments.py          # rewrite environment.yml
    python scripts/sync_environments.py --check  # exit 1 if it is out of date

Binder's pinned lock (binder/requirements.txt) is made by scripts/lock_binder.py (make binder-lock).

torch is pinned to the CPU build (TORCH_PIN, the Makefile's default) from the PyTorch CPU wheel
index: pip prefers ``2.13.0+cpu`` there on Linux and takes the plain CPU wheel on macOS. A GPU user
edits the torch line (or uses the Makefile's TORCH_SPEC/TORCH_PIP_ARGS).
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH_PIN = "torch==2.13.0"
CPU_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"
HEADER = "generated from pyproject.toml by scripts/sync_environments.py; edit pyproject.toml, then rerun it"


def dependencies() -> tuple[list[str], list[str]]:
    """(runtime dependencies without torch, test extras) as written in pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = [d for d in project["dependencies"] if not d.startswith("torch")]
    return runtime, project["optional-dependencies"]["test"]


def environment_yml() -> str:
    runtime, test = dependencies()
    pip = [CPU_INDEX, TORCH_PIN, *runtime, *test, "-e ."]
    lines = [f"# Conda environment for flarelib ({HEADER}).",
             "#   conda env create -f environment.yml && conda activate flarelib",
             "# CPU torch by default; for a GPU build replace the torch line and the index URL.",
             "name: flarelib", "channels:", "  - conda-forge", "dependencies:", "  - python=3.11", "  - pip",
             "  - pip:"]
    lines += [f'      - "{p}"' if not p.startswith("--") else f"      - {p}" for p in pip]
    return "\n".join(lines) + "\n"


FILES = {ROOT / "environment.yml": environment_yml}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = []
    for path, make in FILES.items():
        text = make()
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.relative_to(ROOT))
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print(f"out of date: {', '.join(map(str, stale))}; run python scripts/sync_environments.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
