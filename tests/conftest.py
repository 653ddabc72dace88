"""Shared fixtures: one in-process app (models loaded once) and one real uvicorn server."""

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import torch
from fastapi.testclient import TestClient

from convscope.config import Settings
from convscope.main import create_app
from convscope.registry import set_threads
from tests import ROOT

# The suite is the same on every machine: settings exported in the shell that runs it (a models file,
# a models folder, ...) would change what the in-process app and the live servers serve, and the full
# Fashion-MNIST is used only where its Debian package happens to be installed. Only the thread count
# (see torch_threads) and where the browser tests save screenshots may be chosen from outside.
CHOSEN_FROM_OUTSIDE = {"CONVSCOPE_TORCH_THREADS", "CONVSCOPE_TEST_ARTIFACTS"}
for _name in [name for name in os.environ if name.startswith("CONVSCOPE_") and name not in CHOSEN_FROM_OUTSIDE]:
    del os.environ[_name]
os.environ["CONVSCOPE_FASHION_MNIST_DIR"] = ""  # always the shipped subset; tests of the full set make their own
# Run databases live in folders of the suite's own, never the user's: this one for the session's
# fixtures, one for each module's and each test's (below), and one for each live server (start_server).
# Separate, because an app serves every run its database holds: no app may see another's runs.
os.environ["CONVSCOPE_DATA_DIR"] = tempfile.mkdtemp(prefix="convscope-test-data-")


@pytest.fixture(autouse=True, scope="module")
def module_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The data folder of the module's fixtures (autouse: set before any other fixture of the module)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVSCOPE_DATA_DIR", str(tmp_path_factory.mktemp("data")))  # pytest cleans them up
        yield


@pytest.fixture(autouse=True)
def own_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The data folder of every app, server and command a test makes itself."""
    monkeypatch.setenv("CONVSCOPE_DATA_DIR", str(tmp_path_factory.mktemp("data")))


@pytest.fixture(autouse=True, scope="session")
def torch_threads() -> Iterator[None]:
    """The whole suite computes with the server's intra-op thread count (CONVSCOPE_TORCH_THREADS,
    default 1), so `CONVSCOPE_TORCH_THREADS=4 make test` checks every number at another count."""
    before = torch.get_num_threads()
    set_threads(Settings().torch_threads)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def client() -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:  # `with` runs the lifespan: models load once
        yield test_client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(*extra: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """`uvicorn convscope.main:app` as the README runs it, on a free port, with `env` added to the
    environment (CONVSCOPE_* settings); returns (process, base URL)."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "convscope.main:app", "--host", "127.0.0.1", "--port", str(port), *extra],
        # A file, not a pipe: nobody reads a pipe while tests run, and a full pipe (~64 kB of
        # access log) would freeze the server on its next write.
        cwd=ROOT, stdout=tempfile.TemporaryFile(), stderr=subprocess.STDOUT,
        env={**os.environ, "CONVSCOPE_DATA_DIR": tempfile.mkdtemp(prefix="convscope-test-data-"), **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{url}/api/health", timeout=2)
            return server, url
        except httpx.TransportError:
            if server.poll() is not None:
                raise RuntimeError("the server exited before answering")
            if time.monotonic() > deadline:
                server.kill()
                raise RuntimeError("the server did not answer within 60 s")
            time.sleep(0.2)


@contextmanager
def serving(env: dict[str, str] | None = None, *extra: str) -> Iterator[str]:
    """A real uvicorn server (see start_server; `extra`: uvicorn's options) for the `with` block; yields its URL."""
    server, url = start_server(*extra, env=env)
    try:
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="session")
def live_server() -> Iterator[str]:
    """The base URL of a real uvicorn server running ConvScope, for the whole test session."""
    with serving() as url:
        yield url
