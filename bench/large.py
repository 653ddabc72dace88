"""A ResNet-18 at 224×224 through the API: summary forward, full forward, one layer by run id, memory.

Run from the repository root:  .venv/bin/python -m bench.large   (or  .venv/bin/python bench/large.py)

It starts a real uvicorn server serving the models file below (as `convscope serve --models-file`
would; built-ins too, default settings otherwise), builds the same model here in plain PyTorch from
the file's entry, and in the same run times:

- a plain `model(x)` under no_grad, with the server's thread count (the baseline);
- a summary forward over HTTP (`summary=true`, base64 float32 thumbnails): the page's overview;
- a full forward over HTTP (every layer, base64 float32): what the page used to ask for;
- fetching one layer's full output by run id (base64 float32), for several layers including the
  largest: the page's "show this layer";
- the bytes on the wire of each, and the server's peak resident memory (VmHWM) after the summary
  work and again after the full forwards.

Each HTTP time runs from sending the request to the answer parsed and its tensors decoded into numpy
arrays, as a client would use them. It asserts nothing: it prints numbers, ratios and the aims of
issue 7 (overview within 3× the plain forward + 300 ms; any layer within 200 ms of asking).
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import statistics
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/large.py`: make `app`, `bench` and `examples` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from app.config import ROOT
from app.registry import build_module
from bench.api import Server, free_port

MODELS_FILE = ROOT / "examples" / "resnet18.toml"  # the model served and benchmarked: its first entry
# Until examples/resnet18.toml exists: tests/nets.py's MiniResNet at the same input size, as a stand-in.
STAND_IN = """[[models]]
id = "mini-resnet-224"
factory = "tests.nets:MiniResNet"
input = [3, 224, 224]
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
classes = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
"""
OVERVIEW_AIM = (3.0, 300.0)  # summary forward within 3× the plain forward + 300 ms
LAYER_AIM_MS = 200.0


# --- the model, plain and served ------------------------------------------------------------------

def first_entry(models_file: Path) -> dict[str, Any]:
    entries: list[dict[str, Any]] = tomllib.loads(models_file.read_text())["models"]
    return entries[0]


def plain_model(entry: dict[str, Any], folder: Path) -> nn.Module:
    """The entry's model built with plain PyTorch from its factory, kwargs and weights: no fx, no hooks."""
    model = build_module(entry["factory"], entry.get("kwargs", {}))
    if "weights" in entry:
        path = folder / entry["weights"]
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    return model.eval()


class ModelsFileServer(Server):
    """bench.api's server (default settings), serving a models file, with its process id at hand."""

    def __init__(self, models_file: Path) -> None:
        import subprocess
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONVSCOPE_")}
        env["CONVSCOPE_MODELS_FILE"] = str(models_file)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def memory(self, key: str) -> int:
        """VmHWM (peak) or VmRSS (now) of the server process, in bytes."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(key)


def picture(height: int, width: int) -> bytes:
    """A 'photo' for the model: a smooth colour gradient with a few shapes, as PNG."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), (x + y) * 255 // (height + width)], -1)
    image = Image.fromarray(rgb.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 5, height // 4, width * 3 // 5, height * 3 // 4), outline=(250, 240, 30), width=6)
    draw.rectangle((width // 2, height // 8, width * 7 // 8, height // 2), fill=(20, 30, 120))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


# --- timing ----------------------------------------------------------------------------------------

def decoded(obj: Any) -> Any:
    """Every Tensor in an answer decoded into a numpy array, as a client does before drawing."""
    if isinstance(obj, dict):
        if "shape" in obj and "data" in obj and obj.get("encoding") == "base64":
            return np.frombuffer(base64.b64decode(obj["data"]), dtype="<f4").reshape(obj["shape"])
        return {key: decoded(value) for key, value in obj.items()}
    return obj


def raw_bytes(answer: Any) -> int:
    """Bytes of every Tensor in the answer as bare float32."""
    if isinstance(answer, dict):
        if "shape" in answer and "data" in answer:
            return 4 * int(np.prod(answer["shape"]))
        return sum(raw_bytes(v) for v in answer.values())
    return 0


@dataclass
class Timed:
    ms: list[float] = field(default_factory=list)
    wire: int = 0  # bytes of the response body
    raw: int = 0  # bytes of its tensors as bare float32

    @property
    def median(self) -> float:
        return statistics.median(self.ms)


def timed(call: Callable[[], httpx.Response], repeat: int, warmup: int) -> tuple[Timed, Any]:
    """Median of `repeat` calls after `warmup`; each: the request, its answer parsed and decoded."""
    result, answer = Timed(), None
    for i in range(warmup + repeat):
        start = time.perf_counter()
        response = call().raise_for_status()
        answer = response.json()
        decoded(answer)
        if i >= warmup:
            result.ms.append((time.perf_counter() - start) * 1e3)
        result.wire, result.raw = len(response.content), raw_bytes(answer)
    return result, answer


@dataclass
class Results:
    model: str
    layers: int
    values: int  # activation values of every layer
    plain: Timed
    summary: Timed
    full: Timed
    fetch: dict[str, Timed]  # layer -> one layer by run id
    largest: str
    rss_idle: int
    hwm_summary: int
    hwm_full: int


def server_side(models_file: Path, repeat: int, warmup: int, layer_count: int) -> Results:
    """Every server-side measurement, on a fresh server serving `models_file`'s first model."""
    entry = first_entry(models_file)
    model_id = entry["id"]
    plain = plain_model(entry, models_file.parent)
    server = ModelsFileServer(models_file)
    try:
        server.wait_ready(timeout=180)
        base = f"/api/models/{model_id}"
        with httpx.Client(base_url=server.url, timeout=300) as http:
            detail = http.get(base).raise_for_status().json()
            rss_idle = server.memory("VmRSS")
            spec = detail["input"]
            png = picture(spec["height"], spec["width"])

            def forward(**fields: str) -> httpx.Response:
                # As the page sends an uploaded image: multipart, options as form fields.
                return http.post(f"{base}/forward", files={"image": ("photo.png", png, "image/png")},
                                 data={"encoding": "base64", **fields})

            summary, brief = timed(lambda: forward(summary="true"), repeat, warmup)
            assert brief["run"], "the server kept no run: is CONVSCOPE_RUN_CACHE_BYTES 0?"
            x = torch.from_numpy(decoded(brief["input"]).copy())[None]

            torch.set_num_threads(1)  # the server's default (Settings.torch_threads)
            with torch.no_grad():
                plain_ms = timed_plain(lambda: plain(x), repeat * 2, warmup)

            # One layer by run id: the largest, and others spread through the network.
            shapes = {la["name"]: la["output_shape"] for la in detail["layers"]}
            sizes = {name: int(np.prod(shape)) for name, shape in shapes.items()}
            largest = max(sizes, key=lambda name: sizes[name])
            names = list(shapes)
            step = max(1, len(names) // max(1, layer_count - 1))
            chosen = list(dict.fromkeys([largest, *names[::step], names[-1]]))
            fetch = {}
            for name in chosen:
                fetch[name], _ = timed(lambda: http.get(f"{base}/runs/{brief['run']}/layers/{name}",
                                                        params={"encoding": "base64", "dtype": "float32"}),
                                       repeat, 1)
            hwm_summary = server.memory("VmHWM")

            full, _ = timed(lambda: forward(), repeat, warmup)
            hwm_full = server.memory("VmHWM")
    finally:
        server.stop()
    return Results(model_id, len(shapes), sum(sizes.values()), plain_ms, summary, full, fetch, largest,
                   rss_idle, hwm_summary, hwm_full)


def timed_plain(work: Callable[[], Any], repeat: int, warmup: int) -> Timed:
    result = Timed()
    for i in range(warmup + repeat):
        start = time.perf_counter()
        work()
        if i >= warmup:
            result.ms.append((time.perf_counter() - start) * 1e3)
    return result


# --- report --------------------------------------------------------------------------------------

def mb(count: int) -> str:
    return f"{count / 1e6:.2f} MB" if count >= 1e5 else f"{count / 1e3:.1f} kB"


def report(r: Results, stand_in: bool) -> None:
    base = r.plain.median
    fetch_ms = [t.median for t in r.fetch.values()]
    print(f"\n{r.model}{' (stand-in: ' + str(MODELS_FILE.relative_to(ROOT)) + ' not found)' if stand_in else ''}: "
          f"{r.layers} layers, {r.values / 1e6:.2f} M activation values ({mb(4 * r.values)} as float32)")
    head = f"{'case':<44}{'median ms':>10}{'× plain':>9}{'on the wire':>13}{'/ full':>8}"
    print(f"{head}\n{'-' * len(head)}")
    print(f"{'plain PyTorch model(x) (baseline)':<44}{base:10.1f}{1:8.2f}x")
    for name, t in (("summary forward (overview), HTTP", r.summary), ("full forward, every layer, HTTP", r.full)):
        print(f"{name:<44}{t.median:10.1f}{t.median / base:8.2f}x{mb(t.wire):>13}{t.wire / r.full.wire:7.3f}x")
    for name, t in r.fetch.items():
        label = f"one layer by run id: {name}" + (" (largest)" if name == r.largest else "")
        print(f"{label[:44]:<44}{t.median:10.1f}{t.median / base:8.2f}x{mb(t.wire):>13}{t.wire / r.full.wire:7.3f}x")
    print(f"{'one layer by run id, median of the above':<44}{statistics.median(fetch_ms):10.1f}"
          f"{statistics.median(fetch_ms) / base:8.2f}x")
    print(f"\nserver memory: {mb(r.rss_idle)} resident when idle (models loaded); peak {mb(r.hwm_summary)} after the "
          f"summary forwards and layer fetches; peak {mb(r.hwm_full)} after the full forwards "
          f"({r.hwm_full / r.hwm_summary:.2f}x)")
    factor, extra = OVERVIEW_AIM
    limit = factor * base + extra
    verdict = "met" if r.summary.median <= limit else "MISSED"
    print(f"\nAims (issue 7, server side):\n  overview: summary forward {r.summary.median:.0f} ms <= {factor:g} × "
          f"{base:.0f} ms + {extra:.0f} ms = {limit:.0f} ms -> {verdict}")
    worst = max(r.fetch, key=lambda name: r.fetch[name].median)
    verdict = "met" if r.fetch[worst].median <= LAYER_AIM_MS else "MISSED"
    print(f"  any layer: slowest fetch {r.fetch[worst].median:.0f} ms ({worst}) <= {LAYER_AIM_MS:.0f} ms -> {verdict}"
          f"\n  (the page's time to draw them is measured in headless Chromium separately)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-file", type=Path, default=None,
                        help=f"serve and measure this file's first model (default: {MODELS_FILE.relative_to(ROOT)})")
    parser.add_argument("--repeat", type=int, default=7, help="timed requests per case (default 7)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed requests before them (default 2)")
    parser.add_argument("--layers", type=int, default=8, help="layers fetched by run id (default 8, + the largest)")
    args = parser.parse_args()
    started = time.monotonic()
    models_file, stand_in = args.models_file or MODELS_FILE, False
    with tempfile.TemporaryDirectory() as folder:
        if not models_file.exists():
            models_file, stand_in = Path(folder) / "models.toml", True
            models_file.write_text(STAND_IN)
        results = server_side(models_file.resolve(), args.repeat, args.warmup, args.layers)
    print(f"\ntorch {torch.__version__}, {os.cpu_count()} cores, 1 intra-op thread (server and baseline); medians "
          f"of {args.repeat} after {args.warmup} warm-up (baseline: {args.repeat * 2}); HTTP times include "
          "parsing the answer and decoding its base64 tensors")
    report(results, stand_in)
    print(f"\ntotal {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
