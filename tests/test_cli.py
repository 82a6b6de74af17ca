"""The `flarelib` command and its runner; the package works from a non-editable wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import ROOT
from flarelib import cli, runner


def test_the_runner_turns_every_outcome_into_one_exit_status(capsys, monkeypatch):
    monkeypatch.delenv("FLARELIB_DEBUG", raising=False)
    seen = []
    assert runner.run_command(lambda args: seen.append(args), ["a", "--debug", "b"]) == 0
    assert seen == [["a", "b"]]
    assert runner.run_command(lambda args: 3, []) == 3

    def fail(args):
        raise ValueError("no cube here\nsecond line")

    assert runner.run_command(fail, []) == 1
    err = capsys.readouterr().err
    assert err.strip() == ("error: ValueError: no cube here (run with --debug or FLARELIB_DEBUG=1 for the "
                           "traceback)")
    assert runner.run_command(fail, ["--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err

    def interrupt(args):
        raise KeyboardInterrupt

    assert runner.run_command(interrupt, [], interrupted="interrupted; run it again") == 130
    assert capsys.readouterr().err.strip() == "interrupted; run it again"
    for code, status in ((None, 0), (2, 2), ("stopped", 1)):
        assert runner.run_command(lambda args, code=code: sys.exit(code), []) == status


def test_the_dispatcher_names_its_commands_and_rejects_unknown_ones(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("catalog", "verify", "train", "suite", "benchmark"))
    assert cli.main(["nonsense"]) == 2
    assert "unknown command 'nonsense'" in capsys.readouterr().err


def test_catalog_and_verify_run_through_the_dispatcher(capsys):
    assert cli.main(["catalog", "list"]) == 0
    assert "sample-flare-2011-02-15" in capsys.readouterr().out
    assert cli.main(["verify", "sample-flare-2011-02-15", "--build-dir", "/nonexistent/flarelib-build"]) == 1
    assert "sample-flare-2011-02-15: 60 files OK" in capsys.readouterr().out


def test_benchmark_rejects_unknown_names_in_one_line(capsys):
    assert cli.main(["benchmark", "nonsense"]) == 1
    assert capsys.readouterr().err.startswith("error: ValueError: no benchmark nonsense;")


def test_benchmark_outside_a_checkout_says_they_ship_with_the_source(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(cli, "BENCHMARK_DIR", tmp_path)
    assert cli.main(["benchmark", "store"]) == 1
    assert "the benchmarks ship with the source tree" in capsys.readouterr().err


def _copy_source(dest: Path) -> Path:
    """The files a wheel is built from, without build outputs, the venv or git."""
    skip = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".ipynb_checkpoints")
    return Path(shutil.copytree(ROOT, dest, ignore=skip))


@pytest.mark.slow
def test_a_non_editable_wheel_ships_the_catalog_configs_notebooks_and_real_data(tmp_path):
    source = _copy_source(tmp_path / "source")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "-w", str(tmp_path / "dist"), str(source)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("flarelib-*.whl"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target),
                    str(wheel)], check=True, capture_output=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    # the wheel's flarelib first, this venv's packages for its dependencies; nothing of the checkout
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLARELIB_")}
    env["PYTHONPATH"] = os.pathsep.join([str(target), sysconfig.get_paths()["purelib"]])
    script = (
        "import flarelib, flarelib.paths as p\n"
        "from flarelib.cube import catalog, prep\n"
        f"assert flarelib.__file__.startswith({str(target)!r}), flarelib.__file__\n"
        "assert p.PROJECT_ROOT == p.SHIPPED_ROOT and p.BUILD_DIR == p.Path.cwd().resolve() / 'build'\n"
        "assert (p.CONFIG_DIR / 'small.yaml').is_file() and len(list(p.NOTEBOOK_DIR.glob('0*.ipynb'))) >= 8\n"
        "assert prep.SHIPPED_CORRECTION_TABLE.is_file() and len(prep.load_correction_table()) > 0\n"
        "cat = catalog.load_catalog()\n"
        "print(len(cat.files('sample-flare-2011-02-15')), 'flare files')\n"
        "print(float(cat.open('goes15-2011-06-07')['xrsb'].max()), 'W/m2')\n"
        "print(len(cat.open('noaa-flares-1996-2018')), 'NOAA flares')\n"
        "from flarelib import experiments\n"
        "print(len(list(experiments.FORECAST_MODELS.glob('*.ckpt'))), 'committed checkpoints')\n"
    )
    opened = subprocess.run([sys.executable, "-c", script], cwd=work, env=env, capture_output=True, text=True)
    assert opened.returncode == 0, opened.stderr
    assert "60 flare files" in opened.stdout and "W/m2" in opened.stdout
    assert "NOAA flares" in opened.stdout and "6 committed checkpoints" in opened.stdout
    command = target / "bin" / "flarelib"
    assert command.is_file(), "pip wrote no `flarelib` console script"
    helped = subprocess.run([sys.executable, str(command), "--help"], cwd=work, env=env, capture_output=True,
                            text=True)
    assert helped.returncode == 0 and "train" in helped.stdout, helped.stderr
    listed = subprocess.run([sys.executable, str(command), "catalog", "list"], cwd=work, env=env,
                            capture_output=True, text=True)
    assert listed.returncode == 0 and "goes15-2011-06-07" in listed.stdout, listed.stderr
    bench = subprocess.run([sys.executable, str(command), "benchmark"], cwd=work, env=env, capture_output=True,
                           text=True)
    assert bench.returncode == 1 and "ship with the source tree" in bench.stderr
