"""HTTP cost of ConvScope's forward and backward endpoints, against plain PyTorch in this process.

Run from the repository root:  .venv/bin/python -m bench.api   (or  .venv/bin/python bench/api.py)

For each built-in model it starts a real uvicorn server (default settings, 127.0.0.1, a free port),
times plain `model(x)` and a plain forward+backward here, then times the same work over HTTP through
one persistent httpx.Client, and prints one table per model. It asserts nothing about time: it is a
benchmark that prints numbers and ratios, not a test. See bench/README.md for what each column means.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/api.py`: make `app` and `models` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import pydantic_core
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from convscope.codec import decode, encode
from convscope.config import ROOT
from convscope.factory import build

IDLE_S = 0.2  # "cold": the pause before each request, long enough for idle threads to sleep (DESIGN.md)
FORWARD_AIM_MS = 3.0  # forward with every layer: within 3 ms of plain PyTorch, for mnist-lenet
PAYLOAD_AIM = 1.4  # base64 answers: within 1.4x of the raw tensor bytes


# --- timing -------------------------------------------------------------------------------------

@dataclass
class Timing:
    warm: list[float]  # ms, back to back after warm-up
    cold: list[float]  # ms, each after IDLE_S of idleness

    @property
    def median(self) -> float:
        return statistics.median(self.warm)

    @property
    def p90(self) -> float:
        return statistics.quantiles(self.warm, n=10, method="inclusive")[-1]

    @property
    def cold_median(self) -> float:
        return statistics.median(self.cold)


def measure(work: Callable[[], Any], warm: int, cold: int, warmup: int = 10) -> Timing:
    for _ in range(warmup):
        work()
    warm_ms = []
    for _ in range(warm):
        start = time.perf_counter()
        work()
        warm_ms.append((time.perf_counter() - start) * 1e3)
    cold_ms = []
    for _ in range(cold):
        time.sleep(IDLE_S)
        start = time.perf_counter()
        work()
        cold_ms.append((time.perf_counter() - start) * 1e3)
    return Timing(warm_ms, cold_ms)


# --- the server ---------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`uvicorn convscope.main:app` as the README runs it, with default settings, on a free port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # A file, not a pipe: the access log of a few thousand requests would fill a pipe and stall uvicorn.
        self.log = tempfile.TemporaryFile()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONVSCOPE_")}  # default settings
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "convscope.main:app", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                httpx.get(f"{self.url}/api/health", timeout=2).raise_for_status()
                return
            except httpx.TransportError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    self.log.seek(0)
                    raise RuntimeError("the server did not start:\n" + self.log.read().decode(errors="replace"))
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- payloads -----------------------------------------------------------------------------------

def tensors_in(obj: Any) -> Iterator[dict[str, Any]]:
    """Every Tensor object ({"shape", "dtype", "data"}) anywhere in an answer."""
    if isinstance(obj, dict):
        if "shape" in obj and "data" in obj:
            yield obj
        else:
            for value in obj.values():
                yield from tensors_in(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from tensors_in(value)


def raw_bytes(answer: dict[str, Any]) -> int:
    """What the answer's tensors take as bare little-endian floats of the dtype they were sent in."""
    total = 0
    for t in tensors_in(answer):
        numel = 1
        for d in t["shape"]:
            numel *= d
        total += numel * (2 if t.get("dtype") == "float16" else 4)
    return total


# --- the benchmark ------------------------------------------------------------------------------

@dataclass
class Row:
    case: str
    timing: Timing
    baseline: Timing | None = None
    payload: int | None = None
    raw: int | None = None
    base64: bool = False


def plain_model(model_id: str) -> torch.nn.Module:
    """The model exactly as its card describes it, loaded with plain PyTorch: no hooks, no fx."""
    card = json.loads((ROOT / "models" / f"{model_id}.json").read_text())
    arch = card["architecture"]
    module = build(arch["factory"], arch.get("kwargs", {}))
    module.load_state_dict(load_file(ROOT / "models" / card["weights"]))
    return module.eval()


def bench_model(client: httpx.Client, model_id: str, warm: int, cold: int) -> list[Row]:
    base = f"/api/models/{model_id}"
    sample = client.get(f"{base}/samples").raise_for_status().json()["samples"][0]["id"]
    first = client.post(f"{base}/forward", json={"sample": sample}).raise_for_status().json()
    x_wire = first["input"]  # exactly what the model consumed, [C, H, W]
    x = decode(x_wire).unsqueeze(0)
    x_b64 = encode(x[0], "base64", "float32")
    target = int(first["prediction"]["index"])

    # Baselines, in this process, with the server's thread count.
    model = plain_model(model_id)
    params = [p for p in model.parameters() if p.requires_grad]
    target_t = torch.tensor([target])

    def plain_forward() -> torch.Tensor:
        with torch.no_grad():
            return model(x)

    def plain_backward() -> tuple[torch.Tensor, ...]:
        leaf = x.clone().requires_grad_(True)
        loss = F.cross_entropy(model(leaf), target_t)
        return torch.autograd.grad(loss, [leaf, *params])

    logits_diff = (plain_forward()[0] - torch.tensor(first["prediction"]["logits"])).abs().max().item()
    fwd_base = measure(plain_forward, warm * 4, cold)
    bwd_base = measure(plain_backward, warm * 4, cold)
    rows = [Row("torch forward (baseline)", fwd_base), Row("torch fwd+bwd (baseline)", bwd_base)]

    cases: list[tuple[str, str, dict[str, Any], Timing]] = [
        ("forward json", "forward", {"tensor": x_wire}, fwd_base),
        ("forward base64 f32", "forward", {"tensor": x_b64, "encoding": "base64"}, fwd_base),
        ("forward base64 f16", "forward", {"tensor": x_b64, "encoding": "base64", "dtype": "float16"}, fwd_base),
        ("forward json {sample}", "forward", {"sample": sample}, fwd_base),
        ("backward json", "backward", {"tensor": x_wire, "target": target}, bwd_base),
        ("backward base64 f32", "backward", {"tensor": x_b64, "target": target, "encoding": "base64"}, bwd_base),
        ("backward json {sample}", "backward", {"sample": sample, "target": target}, bwd_base),
    ]
    for name, endpoint, body, baseline in cases:
        # Serialise the request body once: the client's own JSON encoding is not the server's cost.
        content = json.dumps(body).encode()
        url = f"{base}/{endpoint}"
        headers = {"content-type": "application/json"}
        answer = client.post(url, content=content, headers=headers).raise_for_status()
        payload = len(answer.content)

        def call() -> None:
            client.post(url, content=content, headers=headers).raise_for_status()

        rows.append(Row(name, measure(call, warm, cold), baseline, payload, raw_bytes(answer.json()),
                        body.get("encoding") == "base64"))
    print(f"  (check: API logits vs plain PyTorch, max |diff| = {logits_diff:.1e})")
    return rows


def asgi_post(app: Any, path: str, body: bytes) -> Callable[[], Any]:
    """A coroutine factory: one POST straight into the ASGI app, no socket, no HTTP parser."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}

    async def post() -> None:
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        status = []

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.Event().wait()  # the client never disconnects
            return {}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(scope, receive, send)
        if status != [200]:
            raise RuntimeError(f"{path} answered {status}")

    return post


def breakdown(client: httpx.Client, model_id: str, warm: int) -> list[str]:
    """Where the time of a forward with every layer goes: each step the server takes, timed alone."""
    from convscope.api.inference import forward_body
    from convscope.api.model_requests import input_tensor, prediction
    from convscope.api.inputs import Parsed, _json, validate
    from convscope.engine import probe
    from convscope.main import create_app
    from convscope.schemas import ForwardRequest

    app = create_app()
    base = f"/api/models/{model_id}"
    sample = client.get(f"{base}/samples").raise_for_status().json()["samples"][0]["id"]
    x_wire = client.post(f"{base}/forward", json={"sample": sample}).raise_for_status().json()["input"]
    x = decode(x_wire).unsqueeze(0)
    health = measure(lambda: client.get("/api/health").raise_for_status(), warm * 2, 0).median
    lines: list[str] = []
    stdlib = http.client.HTTPConnection(client.base_url.host, client.base_url.port)  # persistent too

    async def in_app() -> None:
        async with app.router.lifespan_context(app):
            model = app.state.registry.get(model_id)
            settings = app.state.settings
            lines.append(f"\nBreakdown: {model_id} forward with every layer, median ms of each step alone"
                         f" (warm, {warm * 2} runs)")
            lines.append(f"{'step':<52}{'json':>9}{'b64 f32':>9}{'b64 f16':>9}")
            table: dict[str, list[float]] = {}

            def row(step: str, value: float) -> None:
                table.setdefault(step, []).append(value)

            for encoding, dtype in (("json", "float32"), ("base64", "float32"), ("base64", "float16")):
                tensor = x_wire if encoding == "json" else encode(x[0], "base64", "float32")
                fields = {"tensor": tensor, "encoding": encoding, "dtype": dtype}
                raw = json.dumps(fields).encode()
                parsed = Parsed(validate(ForwardRequest, json.loads(raw)), None)
                result = probe.forward(model.graph, x)
                answer = {"model": model_id, "input": encode(x[0], encoding, dtype),
                          "prediction": prediction(model, result.output[0]),
                          "layers": {n: encode(t[0], encoding, dtype) for n, t in result.activations.items()}}
                n = warm * 2
                steps = [
                    ("parse: JSON body + pydantic validate", lambda: validate(ForwardRequest, _json(raw.decode()))),
                    ("input tensor: codec.decode + checks", lambda: input_tensor(model, parsed, settings)),
                    ("probe.forward (fx Interpreter, every layer)", lambda: probe.forward(model.graph, x)),
                    ("codec.encode input + every layer, prediction", lambda: (
                        [encode(t[0], encoding, dtype) for t in result.activations.values()],
                        encode(x[0], encoding, dtype), prediction(model, result.output[0]))),
                    ("pydantic_core.to_json", lambda: pydantic_core.to_json(answer)),
                ]
                total = 0.0
                for step, work in steps:
                    value = measure(work, n, 0).median
                    total += value
                    row(step, value)
                row("  sum of the steps above", total)
                row("forward_body (the worker thread's whole job)",
                    measure(lambda: forward_body(model, parsed, settings), n, 0).median)
                post = asgi_post(app, f"{base}/forward", raw)
                for _ in range(10):
                    await post()
                times = []
                for _ in range(n):
                    start = time.perf_counter()
                    await post()
                    times.append((time.perf_counter() - start) * 1e3)
                row("ASGI app in-process (+ routing, deps, thread hop)", statistics.median(times))
                headers = {"content-type": "application/json"}
                row("HTTP round trip (+ uvicorn/h11, TCP, httpx)", measure(
                    lambda: client.post(f"{base}/forward", content=raw, headers=headers), n, 0).median)

                def stdlib_post() -> None:
                    stdlib.request("POST", f"{base}/forward", body=raw, headers=headers)
                    stdlib.getresponse().read()

                row("  the same with the stdlib's http.client, not httpx", measure(stdlib_post, n, 0).median)
            row("HTTP floor: GET /api/health round trip (httpx)", health)
            with torch.no_grad():
                plain = plain_model(model_id)
                row("plain model(x), for comparison", measure(lambda: plain(x), warm * 2, 0).median)
            for step, values in table.items():
                lines.append(f"{step:<52}" + "".join(f"{v:9.3f}" for v in values))

    asyncio.run(in_app())
    stdlib.close()
    return lines


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def print_table(model_id: str, rows: list[Row]) -> None:
    head = (f"{'case':<26}{'median ms':>10}{'p90 ms':>9}{'cold ms':>9}{'base ms':>9}{'ratio':>8}"
            f"{'diff ms':>9}{'payload':>11}{'/ raw':>7}")
    print(f"\n{model_id}\n{head}\n{'-' * len(head)}")
    for r in rows:
        t, b = r.timing, r.baseline
        base = f"{b.median:9.3f}{t.median / b.median:7.1f}x{t.median - b.median:9.2f}" if b else f"{'':>9}{'':>8}{'':>9}"
        ratio = f"{r.payload / r.raw:6.2f}x" if r.base64 and r.payload and r.raw else f"{'-':>7}"
        print(f"{r.case:<26}{t.median:10.3f}{t.p90:9.3f}{t.cold_median:9.3f}{base}{fmt_bytes(r.payload):>11}{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", type=int, default=60, help="back-to-back requests per case (default 60)")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the step-by-step profile of mnist-lenet")
    parser.add_argument("--cold", type=int, default=10, help=f"requests after {IDLE_S * 1e3:.0f} ms idle (default 10)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the server's default (Settings.torch_threads)

    started = time.monotonic()
    server = Server()
    try:
        server.wait_ready()
        results: dict[str, list[Row]] = {}
        profile: list[str] = []
        with httpx.Client(base_url=server.url, timeout=60) as client:
            ids = [m["id"] for m in client.get("/api/models").raise_for_status().json()["models"]]
            for model_id in ids:
                print(f"benchmarking {model_id} ...", flush=True)
                results[model_id] = bench_model(client, model_id, args.warm, args.cold)
            if "mnist-lenet" in ids and not args.no_breakdown:
                print("profiling mnist-lenet forward step by step ...", flush=True)
                profile = breakdown(client, "mnist-lenet", args.warm)
    finally:
        server.stop()

    print(f"\ntorch {torch.__version__}, {os.cpu_count()} cores, 1 intra-op thread; warm: median/p90 of "
          f"{args.warm} back-to-back (baselines: {args.warm * 4}); cold: median of {args.cold} after "
          f"{IDLE_S * 1e3:.0f} ms idle")
    for model_id, rows in results.items():
        print_table(model_id, rows)

    print("\nAims (issue 3):")
    lenet = {r.case: r for r in results.get("mnist-lenet", [])}
    if "forward json" in lenet:
        for case in ("forward json", "forward base64 f32", "forward base64 f16"):
            r = lenet[case]
            assert r.baseline is not None
            diff = r.timing.median - r.baseline.median
            verdict = "met" if diff <= FORWARD_AIM_MS else "MISSED"
            print(f"  mnist-lenet {case}, every layer, within {FORWARD_AIM_MS:g} ms of plain PyTorch: "
                  f"+{diff:.2f} ms warm (+{r.timing.cold_median - r.baseline.cold_median:.2f} ms cold) -> {verdict}")
    else:
        print("  mnist-lenet is not served; the forward aim was not measured")
    worst = max(((r.payload / r.raw, f"{m} {r.case}") for m, rows in results.items() for r in rows
                 if r.base64 and r.payload and r.raw), default=None)
    if worst:
        verdict = "met" if worst[0] <= PAYLOAD_AIM else "MISSED"
        print(f"  base64 payloads within {PAYLOAD_AIM}x of the raw tensor bytes: worst {worst[0]:.2f}x "
              f"({worst[1]}) -> {verdict}")
    if profile:
        print("\n".join(profile))
    print(f"\ntotal {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
