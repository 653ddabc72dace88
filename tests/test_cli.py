"""The `convscope` command: `check` and `serve` a models file, as a user runs them (in a subprocess)."""

import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import httpx
import pytest

from convscope.cli import parser, settings_from
from tests import ROOT
from tests.conftest import free_port

EXAMPLE = "examples/resnet18.toml"
SCRIPT = Path(sys.executable).with_name("convscope")  # installed by `pip install -e .` (make install)


def convscope(*args: str) -> list[str]:
    """The console script if this environment has it, else the same main() through `python -m`."""
    return [str(SCRIPT), *args] if SCRIPT.exists() else [sys.executable, "-m", "convscope.cli", *args]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(convscope(*args), cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_the_console_script_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"convscope": "convscope.cli:main"}


def test_check_prints_one_line_per_model(tmp_path: Path) -> None:
    done = run("check", "--models-file", EXAMPLE)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == ("resnet18: 69 layers, 11,689,512 parameters, input 3×224×224, 1000 classes, 3 samples; "
                        "factory examples.resnet18:resnet18, weights as the factory made them")
    assert lines[1].startswith(f"{EXAMPLE}: 1 model(s) ready to serve, loaded in ")


def test_check_and_serve_stop_on_a_bad_file_with_status_2_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[models]]\nid = "mine"\nfactory = "nowhere:make"\ninput = [3, 8, 8]\nmean = [0.5]\n'
                   'std = [0.5, 0.5, 0.5]\nclasses = ["a"]\n')
    for command in ("check", "serve"):
        done = run(command, "--models-file", str(bad), *(["--port", str(free_port())] if command == "serve" else []))
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert done.stderr.splitlines()[-2:] == [
            f"Cannot serve the models in {bad}:",
            "- model 'mine' (entry 1): mean has 1 value(s) but input has 3 channel(s). Give one mean per channel, "
            "such as mean = [0.5, 0.5, 0.5]."]
        assert "Traceback" not in done.stderr and "Uvicorn running" not in done.stderr


def test_command_line_choices_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVSCOPE_TORCH_THREADS", "3")
    monkeypatch.setenv("CONVSCOPE_MODELS_FILE", "from-env.toml")
    settings = settings_from(parser().parse_args(["serve"]))
    assert (settings.torch_threads, settings.models_file, settings.builtins) == (3, Path("from-env.toml"), True)
    settings = settings_from(parser().parse_args(["serve", "--models-file", "x.toml", "--threads", "2",
                                                  "--no-builtins"]))
    assert (settings.torch_threads, settings.models_file, settings.builtins) == (2, Path("x.toml"), False)
    with pytest.raises(SystemExit) as info:
        parser().parse_args(["serve", "--threads", "0"])
    assert info.value.code == 2


def test_serve_answers_with_the_builtins_and_the_example_then_stops() -> None:
    port = free_port()
    log = tempfile.TemporaryFile()  # a file, not a pipe: see conftest.start_server
    server = subprocess.Popen(convscope("serve", "--models-file", EXAMPLE, "--port", str(port)), cwd=ROOT,
                              stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                health = httpx.get(f"{url}/health", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, "the server exited before answering"
                assert time.monotonic() < deadline, "the server did not answer within 90 s"
                time.sleep(0.2)
        assert health.json() == {"status": "ok"}
        models = httpx.get(f"{url}/models", timeout=10).json()["models"]
        assert [m["id"] for m in models] == ["fashion-tinyvgg", "mnist-lenet", "resnet18"]
        assert models[2]["parameter_count"] == 11_689_512
        forward = httpx.post(f"{url}/models/resnet18/forward", json={"sample": "checker", "layers": ["fc"]}, timeout=30)
        assert forward.status_code == 200 and list(forward.json()["layers"]) == ["fc"]
    finally:
        server.terminate()
        server.wait(timeout=20)  # uvicorn shuts down, then re-raises SIGTERM: the status is -15
    log.seek(0)
    output = log.read().decode()
    assert "INFO:     Loaded resnet18 from examples/resnet18.toml in " in output
    assert "Application shutdown complete." in output and "Traceback" not in output


MYNET = ("import torch\nfrom torch import nn\n\n\ndef make():\n    torch.manual_seed(0)\n"
         "    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))\n")


def user_project(folder: Path) -> Path:
    """A project of the user's own, with packages named `app` and `models` (models/mynet.py: make())."""
    for package in ("app", "models"):
        (folder / package).mkdir()
        (folder / package / "__init__.py").write_text("")
    (folder / "models" / "mynet.py").write_text(MYNET)
    return folder


def test_check_one_model_named_on_the_command_line_from_the_users_folder(tmp_path: Path) -> None:
    project = user_project(tmp_path)
    done = subprocess.run(convscope("check", "--model", "models.mynet:make", "--input", "1,28,28", "--name", "My net"),
                          cwd=project, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "My-net: 4 layers, 27,090 parameters, input 1×28×28, 10 classes, 0 samples; factory models.mynet:make, "
        "weights as the factory made them",
        done.stdout.splitlines()[1]]
    assert done.stdout.splitlines()[1].startswith("the command line: 1 model(s) ready to serve, loaded in ")


@pytest.mark.parametrize(("args", "words"), [
    (["--input", "1,28,28"], "--input describes the model of --model MODULE:FACTORY, which is missing."),
    (["--model", "models.mynet:make"], "--model needs --input C,H,W"),
    (["--model", "models.mynet:make", "--input", "1,28,28", "--classes", "a,b"],
     "the model outputs 10 class scores, but 'classes' names 2 classes"),
    (["--model", "models.mynet:make", "--input", "3,28,28"], "Check that --input is the [C, H, W]"),
    (["--model", "models.mynet:make", "--input", "1,28,x"], "'1,28,x' is not a comma-separated list of ints"),
])
def test_a_half_or_wrong_model_on_the_command_line_is_a_sentence_and_status_2(tmp_path: Path, args: list[str],
                                                                              words: str) -> None:
    done = subprocess.run(convscope("check", *args), cwd=user_project(tmp_path), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert words in done.stderr and "Traceback" not in done.stderr


def test_version_from_the_script_and_from_python_minus_m() -> None:
    for command in (convscope("--version"), [sys.executable, "-m", "convscope", "--version"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and done.stdout.strip() == "convscope 0.1.0", done
