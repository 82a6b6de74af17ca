"""The dependency lists agree: pyproject.toml, the conda environment.yml, binder/, the Makefile and .ci/run."""

import re
import tomllib

import yaml
from packaging.requirements import Requirement

from conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def normalized(lines) -> dict[str, Requirement]:
    reqs = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        req = Requirement(line)
        reqs[req.name.lower().replace("_", "-")] = req
    return reqs


def same(a: Requirement, b: Requirement) -> bool:
    return a.specifier == b.specifier and a.extras == b.extras and a.marker == b.marker


def test_environment_yml_pip_section_matches_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = normalized(pip)
    wanted = normalized(PYPROJECT["dependencies"] + PYPROJECT["optional-dependencies"]["test"])
    assert set(listed) == set(wanted)
    for name, req in wanted.items():
        if name == "torch":
            continue
        assert same(listed[name], req), f"{name}: environment.yml has {listed[name]}, pyproject {req}"
    assert "-e ." in pip
    assert str(listed["torch"].specifier) == "==2.13.0"
    assert req_version_ok(listed["torch"], wanted["torch"])
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in pip


def req_version_ok(pinned: Requirement, allowed: Requirement) -> bool:
    version = next(iter(pinned.specifier)).version
    return allowed.specifier.contains(version.split("+")[0])


def test_binder_requirements_match_pyproject_with_cpu_torch():
    lines = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    listed = normalized(lines)
    wanted = normalized(PYPROJECT["dependencies"])
    assert set(listed) == set(wanted)
    for name, req in wanted.items():
        if name != "torch":
            assert same(listed[name], req), f"{name}: binder has {listed[name]}, pyproject {req}"
    assert str(listed["torch"].specifier) == "==2.13.0+cpu"  # a CUDA build does not fit a Binder image
    assert req_version_ok(listed["torch"], wanted["torch"])
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"


def test_binder_scripts_install_prepare_and_select_small_mode():
    post = (ROOT / "binder" / "postBuild").read_text()
    assert "pip install --no-deps -e ." in post and "flarelib.suite --prepare --size small" in post
    start = (ROOT / "binder" / "start").read_text()
    assert "export FLARELIB_SIZE=small" in start and 'exec "$@"' in start
    for name in ("postBuild", "start"):
        assert (ROOT / "binder" / name).stat().st_mode & 0o111, f"binder/{name} must be executable"


def test_one_torch_pin_everywhere():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^TORCH_SPEC \?= torch==2\.13\.0$", makefile, re.M)
    assert "torch==2.13.0" in (ROOT / "environment.yml").read_text()


def test_the_generated_files_are_up_to_date():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "sync_environments.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_readme_has_the_binder_badge_opening_notebook_01():
    readme = (ROOT / "README.md").read_text()
    assert "https://mybinder.org/badge_logo.svg" in readme
    assert "?urlpath=lab/tree/notebooks/01_data_acquisition.ipynb" in readme
    assert (ROOT / "notebooks" / "01_data_acquisition.ipynb").exists()
