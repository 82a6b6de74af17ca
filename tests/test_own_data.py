"""The README's "Your own data" section, run word for word on a folder of real AIA files, through notebooks 03-05.

The folder: the 60 shipped real AIA cutouts of 2011-02-15 (6 channels x 10 steps), copied 72 times over with
T_OBS/DATE-OBS re-timed every 20 min onto 2012-06-01, the GOES-15 day that ships (C-class activity all day), so
that the GOES entry of the README covers them. The pixels are real; the times are not (said in the README).
"""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import FLARE_DIR, ROOT, edit_header

#: What the test puts in place of the README's placeholders: the folder of FITS files and the output folder.
PLACEHOLDERS = ("path/to/my_fits", "build/own")


def readme_commands() -> list[str]:
    """The shell lines of the first ```bash block of the README's "Your own data" section."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Your own data\n"):]
    section = section[:section.index("\n## ", 1)]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the README's 'Your own data' section has no ```bash block"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def retimed_real_frames(folder: Path, steps: int = 72, start: str = "2012-06-01T00:00", cadence: str = "20min"):
    """``steps`` x 6 real AIA frames in ``folder``: the shipped cutouts in turn, re-timed to ``start + k cadence``."""
    folder.mkdir()
    by_step = {}
    for f in sorted(FLARE_DIR.glob("*.fits")):
        by_step.setdefault(f.name[10:26], []).append(f)  # aia_flare_2011-02-15T01-44: one step
    sources = list(by_step.values())
    for k in range(steps):
        t = pd.Timestamp(start) + k * pd.Timedelta(cadence)
        for f in sources[k % len(sources)]:
            channel = f.stem.rsplit("_", 1)[1]
            copy = folder / f"aia_{t:%Y-%m-%dT%H-%M-%S}_{channel}.fits"
            shutil.copyfile(f, copy)
            stamp = f"{t:%Y-%m-%dT%H:%M:%S}.{np.random.randint(0, 999):03d}"
            edit_header(copy, T_OBS=stamp + "Z", **{"DATE-OBS": stamp})


@pytest.mark.notebooks
def test_the_readme_own_data_section_runs_as_written_on_real_files(tmp_path):
    commands = readme_commands()
    assert [c.split()[:3] for c in commands[:2]] == [["flarelib", "catalog", "new"], ["flarelib", "catalog", "build"]]
    assert sum(c.startswith("papermill notebooks/0") for c in commands) == 3
    assert all(p in " ".join(commands) for p in PLACEHOLDERS)
    folder = tmp_path / "my_fits"
    retimed_real_frames(folder)
    # the project's catalog, copied so that the test leaves it alone (its relative paths made absolute)
    (tmp_path / "data_catalog.yaml").write_text((ROOT / "data_catalog.yaml").read_text()
                                                .replace("    path: data/", f"    path: {ROOT}/data/"))
    env = {k: v for k, v in os.environ.items() if k != "FLARELIB_SIZE"}
    env.update(PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
               FLARELIB_CATALOG=str(tmp_path / "data_catalog.yaml"), FLARELIB_PROGRESS="0",
               **{f"FLARELIB_{name}": str(tmp_path / name.lower()) for name in ("DATA_DIR", "RUNS_DIR", "RESULTS_DIR")},
               FLARELIB_RESULTS=str(tmp_path / "results.json"))
    outputs = []
    began = time.perf_counter()
    for command in commands:
        line = command.replace(PLACEHOLDERS[0], str(folder)).replace(PLACEHOLDERS[1], str(tmp_path / "own"))
        done = subprocess.run(line, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
        outputs.append(done.stdout + done.stderr)
        assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    print(f"README own-data walk-through: {time.perf_counter() - began:.0f} s")
    new, build = outputs[:2]
    assert "fill in: licence and citation" in new and "goes_from" not in new.split("fill in")[-1]
    assert "still say 'FILL IN'" in build and "NO TARGETS" not in build
    executed = {p.name: p.read_text() for p in (tmp_path / "own").glob("*.ipynb")}
    assert sorted(executed) == ["03.ipynb", "04.ipynb", "05.ipynb"]
    assert "REAL my-flares: 72 steps of 20min" in executed["03.ipynb"]
    assert "usable targets: now, lead20min_window20min" in executed["03.ipynb"]
    assert len(list((tmp_path / "runs_dir").glob("small-my-flares-*/lead20min_window20min"))) == 1
    skill = pd.read_csv(tmp_path / "results_dir" / "skill.csv")
    assert skill["dataset"].str.contains("my-flares").all()
    assert set(skill["target"]) >= {"now", "lead20min_window20min"}
