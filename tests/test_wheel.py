"""The wheel as a user installs it: `pip wheel .`, installed into a fresh virtual environment, used
from an empty folder and from a project whose own packages are called `app` and `models`.

Marked `wheel`: building it asks PyPI for the build backend, so `pytest -m "not wheel"` leaves it
out offline; `make test` runs it.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import time
import venv
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import torch

from tests import ROOT
from tests.api.rebuild import tensor, to_wire
from tests.conftest import free_port

pytestmark = pytest.mark.wheel

# The user's own project: packages named like ConvScope's folders, and a model factory in one of them.
USER_NET = '''
import torch
from torch import nn


def make():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 13 * 13, 10))
'''


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (found,) = out.glob("convscope-*.whl")
    return found


@pytest.fixture(scope="module")
def env(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment holding the wheel. Its dependencies (torch is 700 MB) come from this
    environment's site-packages through a .pth file: that adds the folders to sys.path without running
    their .pth files, so this checkout's editable install stays out and `convscope` is the wheel's."""
    folder = tmp_path_factory.mktemp("env")
    venv.create(folder, with_pip=True)
    python = folder / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             check=True, capture_output=True, text=True).stdout.strip()
    (Path(purelib) / "convscope-test-dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)], check=True,
                   capture_output=True, timeout=300)
    return folder


@contextmanager
def serving(env: Path, cwd: Path, *args: str) -> Iterator[str]:
    """`convscope serve ARGS` from the wheel's environment, in `cwd`, on a free port; yields its URL."""
    port = free_port()
    log = cwd / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen([str(env / "bin" / "convscope"), "serve", "--port", str(port), *args], cwd=cwd,
                                  stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    httpx.get(f"{url}/api/health", timeout=2)
                    break
                except httpx.TransportError:
                    assert server.poll() is None, f"the server exited: {log.read_text()}"
                    assert time.monotonic() < deadline, f"no answer within 120 s: {log.read_text()}"
                    time.sleep(0.2)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=10)


def test_the_wheel_installs_one_top_level_package_and_no_training_tools(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"convscope", wheel.name.split("-py3")[0] + ".dist-info"}
    for shipped in ("convscope/static/js/main.js", "convscope/templates/index.html", "convscope/models/lenet.py",
                    "convscope/models/mnist-lenet.safetensors", "convscope/models/fashion-tinyvgg.json",
                    "convscope/models/samples/mnist-lenet/test-00000.png", "convscope/data/mnist-subset.npz",
                    "convscope/data/fashion-mnist-subset.npz"):
        assert shipped in names, shipped
    assert not [name for name in names if name.startswith("convscope/models/training/")]
    # Every module of the runtime, and the database migrations with their template (app/database).
    runtime = [f"convscope/{p.relative_to(ROOT / 'app').as_posix()}" for p in (ROOT / "app").rglob("*")
               if p.suffix in (".py", ".mako") and "__pycache__" not in p.parts]
    assert "convscope/database/migrations/versions/0001_training_runs.py" in runtime
    assert [name for name in runtime if name not in names] == []


def test_the_installed_package_imports_and_tells_its_version(env: Path, tmp_path: Path) -> None:
    found = subprocess.run([str(env / "bin" / "python"), "-c", "import convscope; print(convscope.__file__)"],
                           cwd=tmp_path, check=True, capture_output=True, text=True).stdout.strip()
    assert Path(found).is_relative_to(env), found
    for command in ([str(env / "bin" / "convscope")], [str(env / "bin" / "python"), "-m", "convscope"]):
        done = subprocess.run([*command, "--version"], cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0 and done.stdout.strip() == "convscope 0.1.0", done


def test_from_an_empty_folder_it_serves_the_page_the_built_ins_their_samples_and_the_lab(env: Path,
                                                                                           tmp_path: Path) -> None:
    with serving(env, tmp_path) as url:
        for page in ("/", "/training", "/static/js/main.js", "/static/css/base.css"):
            assert httpx.get(url + page).status_code == 200, page
        models = httpx.get(f"{url}/api/models").json()["models"]
        assert [m["id"] for m in models] == ["fashion-tinyvgg", "mnist-lenet"]
        for model in ("mnist-lenet", "fashion-tinyvgg"):
            samples = httpx.get(f"{url}/api/models/{model}/samples").json()["samples"]
            assert len(samples) == 20
            assert httpx.get(url + samples[0]["url"]).headers["content-type"] == "image/png"
            answer = httpx.post(f"{url}/api/models/{model}/forward", json={"sample": samples[0]["id"]}).json()
            assert answer["prediction"]["index"] == samples[0]["label"]  # the first sample of each is classified right
        run = httpx.post(f"{url}/api/training/runs", json={"steps": 20, "train_size": 640}).json()
        deadline = time.monotonic() + 300
        while (status := httpx.get(f"{url}/api/training/runs/{run['id']}").json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, status
            time.sleep(0.5)
        assert status["status"] == "done", status
        assert httpx.get(url + status["urls"]["model"]).status_code == 200


def test_a_users_own_app_and_models_packages_are_theirs(env: Path, tmp_path: Path) -> None:
    for package in ("app", "models"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "models" / "mynet.py").write_text(USER_NET)
    classes = ",".join(str(k) for k in range(10))
    with serving(env, tmp_path, "--model", "models.mynet:make", "--input", "1,28,28", "--classes", classes) as url:
        listed = httpx.get(f"{url}/api/models").json()["models"]
        assert [m["id"] for m in listed] == ["fashion-tinyvgg", "mnist-lenet", "mynet"]
        torch.manual_seed(3)
        x = torch.rand(1, 28, 28)
        served = httpx.post(f"{url}/api/models/mynet/forward", json={"tensor": to_wire(x)}).json()
    namespace: dict[str, object] = {}
    exec(USER_NET, namespace)  # the same factory, built here without ConvScope
    net = namespace["make"]().eval()  # type: ignore[operator]
    with torch.no_grad():
        logits = net(x[None])[0]
    # The same module's forward of a batch of one on the same float32 input: bit for bit.
    assert torch.equal(tensor(served["layers"]["4"]), logits)
    assert served["prediction"]["index"] == int(logits.argmax())
    assert os.listdir(tmp_path / "app") == ["__init__.py"]  # untouched, and not ConvScope's
