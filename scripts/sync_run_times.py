"""Bring the measured run times of the suite into the docs: ``docs/run_times.csv``, the README table and the
``**Run time:**`` line at the top of every notebook.

    make demo                                  # writes build/results/run_times-default.csv
    python -m flarelib.suite --size small      # writes build/results/run_times-small.csv
    python scripts/sync_run_times.py [CSV ...] # -> docs/run_times.csv, README.md, notebooks/*.ipynb

A size without a new measurement keeps its times from ``docs/run_times.csv``. ``tests/test_run_times.py``
checks that the README and the notebook headers agree with ``docs/run_times.csv``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pandas as pd

from flarelib import suite
from flarelib.paths import NOTEBOOK_DIR, PROJECT_ROOT, results_dir

README = PROJECT_ROOT / "README.md"
BEGIN, END = "<!-- run-times:begin -->", "<!-- run-times:end -->"
HEADER = re.compile(r"(\*\*Run time:\*\*)(.*?)(\*\*Data)", re.S)


def merged_table(paths: list[Path]) -> pd.DataFrame:
    """docs/run_times.csv updated with the measured ``run_times-<size>.csv`` files ``paths``."""
    old = (pd.read_csv(suite.RUN_TIMES_DOC) if suite.RUN_TIMES_DOC.exists()
           else pd.DataFrame(columns=suite.RUN_TIME_TABLE_COLUMNS))
    table = old.set_index("step")
    for path in paths:
        new = pd.read_csv(path).set_index("step")
        size = str(new["size"].iloc[0])
        table = table.reindex(table.index.union(new.index, sort=False))
        table.loc[new.index, f"{size}_seconds"] = new["seconds"]
        table.loc[new.index, f"{size}_peak_rss_mb"] = new["peak_rss_mb"]
        print(f"took {size} times from {path}")
    order = ["data build"] + sorted(s for s in table.index if s != "data build")
    return table.reindex([s for s in order if s in table.index]).reset_index()[suite.RUN_TIME_TABLE_COLUMNS]


def readme_with(table: pd.DataFrame, text: str) -> str:
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{README} has no {BEGIN} ... {END} block")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{suite.run_time_markdown(table)}\n{END}{tail}"


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted(results_dir().glob("run_times-*.csv"))
    table = merged_table(paths)
    suite.RUN_TIMES_DOC.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(suite.RUN_TIMES_DOC, index=False)
    README.write_text(readme_with(table, README.read_text()))
    rows = table.set_index("step")
    for path in sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb")):
        if path.stem not in rows.index:
            print(f"{path.name}: no measured time yet; run the suite")
            continue
        nb = nbformat.read(path, as_version=4)
        phrase = suite.notebook_run_time(rows.loc[path.stem])
        nb.cells[0].source = HEADER.sub(lambda m, phrase=phrase: m.group(1) + phrase + m.group(3), nb.cells[0].source,
                                        count=1)
        nbformat.write(nb, path)
    print(f"wrote {suite.RUN_TIMES_DOC}, the README table and the notebook headers")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
