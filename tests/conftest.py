"""Shared fixtures: paths of the embedded real data and small cubes built once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "data" / "real"
FLARE_DIR = REAL / "aia_flare_2011-02-15"
GOES_DIR = REAL / "goes_xrs"
FLARE_EVENT = {"start": "2011-02-15T01:44:00", "peak": "2011-02-15T01:56:00", "end": "2011-02-15T02:06:00",
               "goes_class": "X2.2", "noaa_ar": 11158, "source": "test"}


@pytest.fixture(autouse=True)
def _seed_every_rng(request):
    """Every test starts from the same random state, whatever ran before it: Python's, NumPy's global and torch's
    generators are seeded from the test's own id (hypothesis seeds itself). So a test's draws do not depend on the
    order the tests run in, and a failure reproduces alone."""
    import random
    import zlib

    import numpy as np
    import torch

    seed = zlib.crc32(request.node.nodeid.encode())
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    yield


def pytest_addoption(parser):
    parser.addoption("--remote-data", action="store_true", default=False,
                     help="run tests that need the internet (sunpy convention)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--remote-data"):
        return
    skip = pytest.mark.skip(reason="needs the internet; run with --remote-data")
    for item in items:
        if "remote_data" in item.keywords:
            item.add_marker(skip)


def edit_header(path, **changes) -> None:
    """Set FITS primary-header keywords of ``path`` in place; a value of ``None`` deletes the keyword."""
    from astropy.io import fits

    with fits.open(path, mode="update") as hdul:
        for key, value in changes.items():
            if value is None:
                del hdul[0].header[key]
            else:
                hdul[0].header[key] = value


@pytest.fixture
def flare_files() -> list[Path]:
    return sorted(FLARE_DIR.glob("*.fits"))


@pytest.fixture
def flare_copy(tmp_path, flare_files) -> Path:
    """A writable copy of the 60 real flare cutouts."""
    folder = tmp_path / "flare"
    folder.mkdir()
    for f in flare_files:
        shutil.copyfile(f, folder / f.name)
    return folder


@pytest.fixture(scope="session")
def catalog():
    from flarelib.cube.catalog import load_catalog

    return load_catalog()


@pytest.fixture(scope="session")
def small_cube_path(tmp_path_factory, catalog) -> Path:
    """The small synthetic cube, built once into a session folder."""
    return catalog.build("synthetic-sun-small", build_dir=tmp_path_factory.mktemp("cubes"), progress=False)


@pytest.fixture(scope="session")
def small_synthetic(small_cube_path):
    from flarelib.cube.store import open_cube

    return open_cube(small_cube_path)


@pytest.fixture(scope="session")
def trained_small(tmp_path_factory, small_cube_path):
    """FlareNet trained for 2 epochs on the small synthetic cube (configs/small.yaml): (run folder, LightningCLI)."""
    from flarelib import learn
    from flarelib.paths import CONFIG_DIR

    out = tmp_path_factory.mktemp("run")
    cli = learn.train(CONFIG_DIR / "small.yaml", out_dir=out,
                      overrides=[f"--data.cube={small_cube_path}", "--trainer.max_epochs=2"])
    return out, cli


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 server on 127.0.0.1 (moto in server mode), stopped after the session.

    Yields the fsspec ``storage_options`` that reach it with credentials (for writing);
    anonymous reads add ``anon=True`` themselves.
    """
    import logging
    import os

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per S3 request otherwise

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    old = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    try:
        yield {"endpoint": endpoint,
               "write": {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint}},
               "read": {"client_kwargs": {"endpoint_url": endpoint}}}
    finally:
        server.stop()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def file_server(tmp_path):
    """A real HTTP server on 127.0.0.1 serving ``root``, able to misbehave on purpose.

    ``server.faults[name] = ("truncate", n)`` makes the first ``n`` requests of ``name``
    send half the file then drop the connection (``"corrupt"``: send flipped bytes); later
    requests are served correctly. ``server.hits[name]`` counts the requests. (parfive
    makes two GETs per file: one for the headers, one for the body.)
    """
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    root = tmp_path / "served"
    root.mkdir()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            name = self.path.lstrip("/")
            path = root / name
            server.hits[name] = server.hits.get(name, 0) + 1
            if not path.is_file():
                self.send_error(404)
                return
            body = path.read_bytes()
            kind, n_faulty = server.faults.get(name, (None, 0))
            fault = kind if server.hits[name] <= n_faulty else None
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if fault == "truncate":
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if fault == "corrupt":
                body = bytes(b ^ 0xFF for b in body[:4096]) + body[4096:]
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.root, server.faults, server.hits = root, {}, {}
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
