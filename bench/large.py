"""A ResNet-18 at 224×224 through the API and in the page: overview, one layer, memory, bytes.

Run from the repository root:  .venv/bin/python -m bench.large   (or  .venv/bin/python bench/large.py)

It starts a real uvicorn server serving examples/resnet18.toml (as `convscope serve --models-file`
would; built-ins too, default settings otherwise), builds the same model here in plain PyTorch from
the file's entry, and in the same run times:

- a plain `model(x)` under no_grad, with the server's thread count (the baseline);
- a summary forward over HTTP (`summary=true`, base64 float32 thumbnails): what the page's overview needs;
- a full forward over HTTP (every layer, base64 float32): what the page used to ask for;
- fetching one layer's full output by run id (base64 float32), for several layers including the
  largest: the page's "show this layer";
- the bytes on the wire of each, and the server's peak resident memory (VmHWM) after the summary
  work, after the full forwards, and after the page runs;
- in headless Chromium (Debian's, as the browser tests use it): a fresh page load until the overview
  is painted; a sample clicked until the new prediction and overview are painted, next to the same
  summary forward by fetch() alone; a layer's column clicked until its detail channels are painted
  (the page fetches the layer and its inputs by run id), next to those fetches alone. "Painted" is
  the next frame after the DOM holds the result; between runs the page is left to go quiet (no
  fetch in flight, two frames, 50 ms), because the attribution panel's Grad-CAM follows each result.

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

from bench.api import Server, free_port
from convscope.config import ROOT
from convscope.factory import build

MODELS_FILE = ROOT / "examples" / "resnet18.toml"  # the model served and benchmarked: its first entry
OVERVIEW_AIM = (3.0, 300.0)  # summary forward within 3× the plain forward + 300 ms
LAYER_AIM_MS = 200.0


# --- the model, plain and served ------------------------------------------------------------------

def first_entry(models_file: Path) -> dict[str, Any]:
    entries: list[dict[str, Any]] = tomllib.loads(models_file.read_text())["models"]
    return entries[0]


def plain_model(entry: dict[str, Any], folder: Path) -> nn.Module:
    """The entry's model built with plain PyTorch from its factory, kwargs and weights: no fx, no hooks."""
    model = build(entry["factory"], entry.get("kwargs", {}))
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
            [sys.executable, "-m", "uvicorn", "convscope.main:app", "--host", "127.0.0.1", "--port", str(self.port)],
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
class PageTimes:
    """Medians in ms, measured inside headless Chromium (performance.now())."""

    load: list[float]                 # navigation start → the overview painted, page opened on a sample
    click: list[float]                # a sample clicked → the new prediction and overview painted
    api_summary: list[float]          # the same summary forward by fetch() alone
    layers: dict[str, list[float]]    # a layer's column clicked → its detail channels painted
    api_layers: dict[str, list[float]]  # the layer and its inputs fetched by run id, fetch() alone


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
    page: PageTimes | None = None  # measured in Chromium after the HTTP cases
    hwm_page: int = 0


def measure(models_file: Path, repeat: int, warmup: int, layer_count: int) -> Results:
    """Every measurement, on one fresh server serving `models_file`: first through HTTP, then in the page."""
    entry = first_entry(models_file)
    server = ModelsFileServer(models_file)
    try:
        server.wait_ready(timeout=180)
        results = server_side(server, entry, plain_model(entry, models_file.parent), repeat, warmup, layer_count)
        results.page = in_the_page(server.url, entry["id"], repeat, warmup)
        results.hwm_page = server.memory("VmHWM")
    finally:
        server.stop()
    return results


def server_side(server: ModelsFileServer, entry: dict[str, Any], plain: nn.Module,
                repeat: int, warmup: int, layer_count: int) -> Results:
    """The HTTP measurements, next to the plain forward."""
    model_id = entry["id"]
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
    return Results(model_id, len(shapes), sum(sizes.values()), plain_ms, summary, full, fetch, largest,
                   rss_idle, hwm_summary, hwm_full)


# --- in the page ------------------------------------------------------------------------------------

# Before the page's own scripts: count fetches in flight (to wait for quiet between runs), and note
# when the overview is first painted after navigation (every column in the DOM with a verdict shown,
# then the next frame).
INSTRUMENT = """(() => {
  window.inFlight = 0;
  const fetch0 = window.fetch;
  window.fetch = async (...args) => { window.inFlight++; try { return await fetch0(...args); } finally { window.inFlight--; } };
  const drawn = () => {
    const columns = document.querySelectorAll('[data-view=overview] > figure[data-layer] canvas');
    return document.querySelector('[data-view=prediction] .verdict') && columns.length > 1
      && [...columns].every(c => c.width > 0);
  };
  const observer = new MutationObserver(() => {
    if (!drawn()) return;
    observer.disconnect();
    requestAnimationFrame(() => setTimeout(() => { window.overviewPainted = performance.now(); }, 0));
  });
  document.addEventListener('DOMContentLoaded', () => observer.observe(document.body, { childList: true, subtree: true, attributes: true }));
})()"""

# Quiet: nothing in flight (the detail's fetches, the attribution panel's Grad-CAM), two frames, 50 ms.
SETTLE = """async () => {
  const frame = () => new Promise(r => requestAnimationFrame(() => r()));
  for (let quiet = 0; quiet < 3;) { await frame(); quiet = window.inFlight ? 0 : quiet + 1; }
  await new Promise(r => setTimeout(r, 50));
}"""

# Until `done()` holds after `act()` (checked after each batch of DOM changes), then the next frame.
UNTIL = """async ([act, done]) => {
  act = new Function(act); done = new Function(done);
  const start = performance.now();
  const finished = new Promise(resolve => {
    const observer = new MutationObserver(() => { if (done()) { observer.disconnect(); resolve(); } });
    observer.observe(document.body, { childList: true, subtree: true, attributes: true });
  });
  act();
  await finished;
  await new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
  return performance.now() - start;
}"""

CLICK_SAMPLE = ("""document.querySelector('[data-view=prediction] .verdict').dataset.old = '';
                   document.querySelector('[data-sample="%s"]').click();""",
                "return document.querySelector('[data-view=prediction] .verdict:not([data-old])') !== null;")
SHOW_LAYER = ("document.querySelector(`[data-view=overview] figure[data-layer='%s']`).click();",
              "return document.querySelector(`[data-view=detail][data-layer='%s'] .channels canvas`) !== null;")

API_SUMMARY = """async ([model, sample]) => {
  const start = performance.now();
  const response = await fetch(`/api/models/${model}/forward?encoding=base64`, { method: 'POST',
    headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ sample, summary: true }) });
  const body = await response.json();
  return [performance.now() - start, body.run];
}"""

API_LAYERS = """async ([model, run, names]) => {
  const start = performance.now();
  await Promise.all(names.map(async name => (await fetch(
    `/api/models/${model}/runs/${run}/layers/${encodeURIComponent(name)}?encoding=base64`)).json()));
  return performance.now() - start;
}"""


def in_the_page(url: str, model_id: str, repeat: int, warmup: int) -> PageTimes:
    """The page on the large model in headless Chromium: load, sample click, and layers shown."""
    from playwright.sync_api import sync_playwright

    from bench.browser import CHROMIUM, CHROMIUM_ARGS

    detail = httpx.get(f"{url}/api/models/{model_id}").json()
    layers = {la["name"]: la for la in detail["layers"]}
    samples = [s["id"] for s in httpx.get(f"{url}/api/models/{model_id}/samples").json()["samples"]]
    sizes = {name: int(np.prod(la["output_shape"])) for name, la in layers.items()}
    largest = max(sizes, key=lambda name: sizes[name])
    deep = [name for name, la in layers.items() if la["type"] == "conv2d"][-1]
    shown = list(dict.fromkeys([largest, next(iter(layers)), deep, list(layers)[-3], list(layers)[-1]]))
    times = PageTimes([], [], [], {name: [] for name in shown}, {name: [] for name in shown})
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_init_script(INSTRUMENT)
            page = context.new_page()
            for i in range(warmup + repeat):  # a fresh load each time: the first paint of the overview
                page.goto(f"{url}/?model={model_id}&sample={samples[i % len(samples)]}")
                page.wait_for_function("window.overviewPainted !== undefined", timeout=120_000)
                if i >= warmup:
                    times.load.append(page.evaluate("window.overviewPainted"))
            page.evaluate(SETTLE)
            page.uncheck("[data-control=fold]")  # every layer's column, to click
            for i in range(warmup + repeat):
                sample = samples[(i + 1) % len(samples)]
                page.evaluate(SETTLE)
                click = page.evaluate(UNTIL, [CLICK_SAMPLE[0] % sample, CLICK_SAMPLE[1]])
                page.evaluate(SETTLE)
                api, run = page.evaluate(API_SUMMARY, [model_id, sample])
                if i >= warmup:
                    times.click.append(click)
                    times.api_summary.append(api)
                for name in shown:  # each not fetched yet for this result
                    page.evaluate(SETTLE)
                    ms = page.evaluate(UNTIL, [SHOW_LAYER[0] % name, SHOW_LAYER[1] % name])
                    page.evaluate(SETTLE)
                    needed = [name, *(n for n in layers[name]["inputs"] if n in layers)]
                    api_ms = page.evaluate(API_LAYERS, [model_id, run, needed])
                    if i >= warmup:
                        times.layers[name].append(ms)
                        times.api_layers[name].append(api_ms)
        finally:
            browser.close()
    return times


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


def report(r: Results) -> None:
    base = r.plain.median
    fetch_ms = [t.median for t in r.fetch.values()]
    print(f"\n{r.model}: "
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
    print(f"  any layer: slowest fetch {r.fetch[worst].median:.0f} ms ({worst}) <= {LAYER_AIM_MS:.0f} ms -> {verdict}")
    if r.page:
        report_page(r)


def report_page(r: Results) -> None:
    page, base = r.page, r.plain.median
    assert page is not None
    med = statistics.median
    head = f"{'in headless Chromium':<52}{'median ms':>10}{'× plain':>9}{'fetch alone':>13}"
    print(f"\n{head}\n{'-' * len(head)}")
    print(f"{'page load -> overview painted':<52}{med(page.load):10.1f}{med(page.load) / base:8.2f}x")
    print(f"{'sample clicked -> prediction + overview painted':<52}{med(page.click):10.1f}"
          f"{med(page.click) / base:8.2f}x{med(page.api_summary):12.1f}")
    for name, ms in page.layers.items():
        label = f"column clicked -> {name} drawn"
        print(f"{label[:52]:<52}{med(ms):10.1f}{med(ms) / base:8.2f}x{med(page.api_layers[name]):12.1f}")
    print(f"(fetch alone: the same summary forward, or the layer and its inputs by run id, by fetch() in the page)\n"
          f"server peak memory after the page runs: {mb(r.hwm_page)}")
    factor, extra = OVERVIEW_AIM
    limit = factor * base + extra
    print(f"\nAims (issue 7, in the page):\n  overview: sample clicked -> painted {med(page.click):.0f} ms <= {limit:.0f} ms "
          f"-> {'met' if med(page.click) <= limit else 'MISSED'}; a fresh page load (modules, model, forward) "
          f"{med(page.load):.0f} ms")
    worst = max(page.layers, key=lambda name: med(page.layers[name]))
    print(f"  any layer: slowest {med(page.layers[worst]):.0f} ms ({worst}) <= {LAYER_AIM_MS:.0f} ms -> "
          f"{'met' if med(page.layers[worst]) <= LAYER_AIM_MS else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-file", type=Path, default=None,
                        help=f"serve and measure this file's first model (default: {MODELS_FILE.relative_to(ROOT)})")
    parser.add_argument("--repeat", type=int, default=7, help="timed requests per case (default 7)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed requests before them (default 2)")
    parser.add_argument("--layers", type=int, default=8, help="layers fetched by run id (default 8, + the largest)")
    args = parser.parse_args()
    started = time.monotonic()
    models_file = (args.models_file or MODELS_FILE).resolve()
    results = measure(models_file, args.repeat, args.warmup, args.layers)
    print(f"\ntorch {torch.__version__}, {os.cpu_count()} cores, 1 intra-op thread (server and baseline); medians "
          f"of {args.repeat} after {args.warmup} warm-up (baseline: {args.repeat * 2}); HTTP times include "
          "parsing the answer and decoding its base64 tensors")
    report(results)
    print(f"\ntotal {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
