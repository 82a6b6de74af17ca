"""A real browser: JupyterLab on 127.0.0.1, headless Debian Chromium driven by Playwright.

Opens notebook 08, runs it, moves the time slider and checks that the rendered figure changed.
Screenshots are saved under ``$FLARELIB_TEST_ARTIFACTS`` (default ``build/test-artifacts``).
Needs Debian's ``chromium`` (``.ci/run`` installs it). Without it the test is skipped, unless
``FLARELIB_REQUIRE_BROWSER=1`` (set by ``.ci/run``) turns the skip into a failure.
"""

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NOTEBOOK = "notebooks/08_browse_saliency_over_time.ipynb"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def chromium():
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} not installed (apt-get install chromium; .ci/run does)"
        if os.environ.get("FLARELIB_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return str(CHROMIUM)


@pytest.fixture
def jupyterlab(tmp_path, small_cube_path):
    """JupyterLab serving the repository on 127.0.0.1 with a token; data and runs in tmp_path."""
    port, token = _free_port(), secrets.token_hex(16)
    served = tmp_path / "served"  # a copy: JupyterLab saves what it runs, and the repository's notebook stays clean
    (served / "notebooks").mkdir(parents=True)
    shutil.copyfile(ROOT / NOTEBOOK, served / NOTEBOOK)
    data = tmp_path / "data"
    data.mkdir()
    shutil.copytree(small_cube_path, data / small_cube_path.name)
    env = {**os.environ, "FLARELIB_DATA_DIR": str(data), "FLARELIB_RUNS_DIR": str(tmp_path / "runs"),
           "FLARELIB_RESULTS": str(tmp_path / "results.json"), "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces")}
    env.pop("MPLBACKEND", None)
    log = open(tmp_path / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={served}", "--LabApp.expose_app_in_browser=True",
         "--ServerApp.disable_check_xsrf=True", "--allow-root"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as reply:
                json.load(reply)
            break
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("JupyterLab did not start:\n" + (tmp_path / "jupyterlab.log").read_text()[-3000:])
            time.sleep(0.5)
    yield url, token
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


def test_notebook_08_runs_in_a_real_browser_and_the_slider_changes_the_image(chromium, jupyterlab):
    from playwright.sync_api import sync_playwright

    url, token = jupyterlab
    committed = (ROOT / NOTEBOOK).read_bytes()
    artifacts = Path(os.environ.get("FLARELIB_TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        try:
            page.goto(f"{url}/lab/tree/{NOTEBOOK}?token={token}", timeout=120_000)
            page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-Notebook')",
                                   timeout=120_000)
            page.wait_for_function(
                "() => { const w = window.jupyterapp.shell.currentWidget;"
                " return w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel"
                " && w.sessionContext.session.kernel.status === 'idle'; }", timeout=120_000)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.locator(".jupyter-matplotlib").first.wait_for(state="visible", timeout=400_000)
            # the notebook's last cell prints the redraw time: everything has run
            timing = page.locator(".jp-OutputArea-output", has_text=re.compile(r"\d ms per slider step")).first
            timing.wait_for(timeout=400_000)
            (artifacts / "browser-08-redraw.txt").write_text(timing.text_content() + "\n")
            news = page.get_by_role("button", name="No")
            if news.count():
                news.first.click()
            time.sleep(3)  # let ipympl paint the last frame
            # the browser's figure: the largest ipympl canvas on the page (pyplot may also show an empty one)
            page.evaluate("""() => {
                const divs = [...document.querySelectorAll('.jupyter-matplotlib-canvas-div')];
                const area = (d) => d.getBoundingClientRect().width * d.getBoundingClientRect().height;
                divs.sort((a, b) => area(b) - area(a));
                divs[0].id = 'flarelib-browser-figure';
            }""")
            figure = page.locator("#flarelib-browser-figure")
            figure.scroll_into_view_if_needed()
            before = figure.screenshot(path=str(artifacts / "browser-08-before.png"))
            slider = page.locator(".widget-slider", has=page.locator(".widget-label", has_text="step")).first
            handle = slider.locator(".noUi-handle").first
            handle.focus()
            for _ in range(12):
                page.keyboard.press("ArrowRight")
            readout = slider.locator(".widget-readout").first
            page.wait_for_function("(el) => el.textContent.trim() !== '0'", arg=readout.element_handle(),
                                   timeout=30_000)
            moved_to = int(readout.text_content().strip())
            time.sleep(3)
            after = figure.screenshot(path=str(artifacts / "browser-08-after.png"))
            page.screenshot(path=str(artifacts / "browser-08-page.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(artifacts / "browser-08-failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    assert (ROOT / NOTEBOOK).read_bytes() == committed, "the browser run must not touch the committed notebook"
    assert moved_to > 0
    assert before != after, "moving the slider did not change the rendered figure"
    assert not [e for e in errors if "matplotlib" in e.lower() or "widget" in e.lower()], errors
