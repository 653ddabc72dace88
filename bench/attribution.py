"""HTTP cost of ConvScope's attribution maps, against the same Captum call in this process.

Run from the repository root:  .venv/bin/python -m bench.attribution   (or  .venv/bin/python bench/attribution.py)

For each built-in model and each attribution method it times, in one run: the Captum call the
server makes, here, on the model built from its card (factory, kwargs, safetensors weights; eval
mode, plain nn.Module); the engine's `explain()` here (replica lease, target forward, checks, the
same Captum call); and `POST /api/models/{id}/attributions` on a real uvicorn server, with the
answer in base64 and in JSON. It prints one table per model with the ratios, and what a replica
costs to build (the reason replicas are pooled). It asserts nothing about time.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/attribution.py`: make `app`, `models` and `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import torch
from captum import attr as captum
from torch import Tensor, nn

from bench.api import Server, Timing, plain_model
from convscope.codec import decode, encode
from convscope.config import ROOT
from convscope.engine.attribution import replica
from convscope.engine.attribution.base import Subject
from convscope.engine.attribution.explain import explain
from convscope.engine.attribution.layers import default_layer
from convscope.engine.attribution.occlusion import default_stride, default_window, positions
from convscope.engine.attribution.registry import METHODS
from convscope.registry import LoadedModel, load_card

AIM_MODEL, AIM = "fashion-tinyvgg", 1.2  # issue 5: through HTTP within 1.2x of the Captum call, every method


def measure(work: Callable[[], Any], runs: int, budget_s: float) -> Timing:
    """`runs` timed calls after 3 warm-up calls, fewer (at least 7) if they would take over budget_s."""
    return interleaved({"work": work}, runs, budget_s)["work"]


def interleaved(works: dict[str, Callable[[], Any]], runs: int, budget_s: float) -> dict[str, Timing]:
    """Each work timed `runs` times (fewer, at least 7, past budget_s in all), taking turns, so that
    they share whatever the machine is doing meanwhile: this VM's speed drifts by tens of percent."""
    start = time.perf_counter()
    for work in works.values():
        for _ in range(3):
            work()
    each_round = (time.perf_counter() - start) / 3
    runs = max(7, min(runs, int(budget_s / max(each_round, 1e-6))))
    times: dict[str, list[float]] = {name: [] for name in works}
    for _ in range(runs):
        for name, work in works.items():
            start = time.perf_counter()
            work()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: Timing(values, []) for name, values in times.items()}


def captum_call(method: str, model: nn.Module, x: Tensor, target: int, loaded: LoadedModel) -> Callable[[], Tensor]:
    """The Captum call the server makes for `method` with its default options, on a plain model."""
    subject = Subject(model, loaded.graph, loaded.spec.mean, loaded.spec.std)  # for the batch sizes only
    layer = default_layer(loaded.graph)
    assert layer is not None and layer.module is not None
    module = model.get_submodule(layer.module)
    leaf = x.clone().requires_grad_(True)
    size = (x.shape[2], x.shape[3])
    window = default_window(*size)
    stride = default_stride(window)
    c = x.shape[1]

    def cam() -> Tensor:
        raw = captum.LayerGradCam(model, module).attribute(leaf, target=target, relu_attributions=True)
        return captum.LayerAttribution.interpolate(raw, size, "bilinear")  # type: ignore[no-any-return]

    calls: dict[str, Callable[[], Tensor]] = {
        "saliency": lambda: captum.Saliency(model).attribute(leaf, target=target, abs=True),
        "input_x_gradient": lambda: captum.InputXGradient(model).attribute(leaf, target=target),
        "integrated_gradients": lambda: captum.IntegratedGradients(model).attribute(
            leaf, baselines=torch.zeros_like(x), target=target, n_steps=50, internal_batch_size=subject.batch(50)),
        "grad_cam": cam,
        "guided_backprop": lambda: captum.GuidedBackprop(model).attribute(leaf, target=target),
        "guided_grad_cam": lambda: captum.GuidedGradCam(model, module).attribute(
            leaf, target=target, interpolate_mode="bilinear"),
        "smoothgrad": lambda: captum.NoiseTunnel(captum.Saliency(model)).attribute(
            leaf, nt_type="smoothgrad", nt_samples=20, nt_samples_batch_size=subject.batch(20), stdevs=0.5,
            target=target, abs=True),
        "occlusion": lambda: captum.Occlusion(model).attribute(
            leaf, sliding_window_shapes=(c, *window), strides=(c, *stride), baselines=torch.zeros_like(x),
            target=target, perturbations_per_eval=subject.batch(positions(size, window, stride), backward=False)),
        "deconvolution": lambda: captum.Deconvolution(model).attribute(leaf, target=target),
    }
    return calls[method]


def replica_costs(loaded: LoadedModel, runs: int) -> list[str]:
    graph = loaded.graph
    deep = measure(lambda: copy.deepcopy(graph.module), runs, 2.0).median
    build = measure(lambda: replica.build(graph), runs, 2.0).median

    def lease() -> None:
        with replica.lease(graph):
            pass

    leased = measure(lease, runs * 10, 1.0).median
    return [f"  copy.deepcopy(graph.module) {deep:.3f} ms; replica.build (shared frozen weights) {build:.3f} ms; "
            f"lease + return of a pooled replica {leased * 1e3:.1f} µs"]


def bench_model(client: httpx.Client, model_id: str, runs: int, budget_s: float) -> tuple[list[list[str]], list[str]]:
    base = f"/api/models/{model_id}"
    sample = client.get(f"{base}/samples").raise_for_status().json()["samples"][0]["id"]
    first = client.post(f"{base}/forward", json={"sample": sample}).raise_for_status().json()
    x = decode(first["input"]).unsqueeze(0)
    target = int(first["prediction"]["index"])
    loaded = load_card(ROOT / "models" / f"{model_id}.json")
    model = plain_model(model_id)
    x_b64 = encode(x[0], "base64", "float32")
    rows = []
    for method in METHODS:
        call = captum_call(method, model, x, target, loaded)
        served = client.post(f"{base}/attributions", json={"tensor": x_b64, "method": method, "target": target,
                                                           "encoding": "base64"}).raise_for_status().json()
        torch.manual_seed(0)  # smoothgrad: the server draws its noise from a generator seeded 0 (the default seed)
        diff = (decode(served["attribution"]) - call().detach()[0]).abs().max().item()  # the same map?
        headers = {"content-type": "application/json"}

        def http(encoding: str) -> Callable[[], Any]:
            content = json.dumps({"tensor": x_b64, "method": method, "target": target, "encoding": encoding}).encode()
            return lambda: client.post(f"{base}/attributions", content=content, headers=headers).raise_for_status()

        timed = interleaved({
            "captum": call,
            "explain": lambda: explain(loaded.graph, x, method, target, {}, loaded.spec.mean, loaded.spec.std),
            "base64": http("base64"), "json": http("json")}, runs, budget_s * 4)
        plain = timed["captum"]
        row = [method, f"{plain.median:9.3f}", f"{timed['explain'].median:9.3f}"]
        for encoding in ("base64", "json"):
            timing = timed[encoding]
            row += [f"{timing.median:9.3f}", f"{timing.median / plain.median:6.2f}x",
                    f"{timing.median - plain.median:+8.2f}"]
        rows.append(row + [f"{diff:.0e}"])
    floor = measure(lambda: client.get("/api/health").raise_for_status(), runs * 4, budget_s).median
    return rows, [f"  HTTP floor: GET /api/health round trip {floor:.3f} ms", *replica_costs(loaded, runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="timed calls per case, at most (default 40)")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds per case, at most (default 3; a method's "
                        "four cases take turns, 12 s in all)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the server's default (Settings.torch_threads)

    started = time.monotonic()
    server = Server()
    results: dict[str, tuple[list[list[str]], list[str]]] = {}
    try:
        server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=120) as client:
            ids = [m["id"] for m in client.get("/api/models").raise_for_status().json()["models"]]
            for model_id in ids:
                print(f"benchmarking {model_id} ...", flush=True)
                results[model_id] = bench_model(client, model_id, args.runs, args.budget)
    finally:
        server.stop()

    print(f"\ntorch {torch.__version__}, captum {captum_version()}, {os.cpu_count()} cores, 1 intra-op thread; "
          f"median ms of up to {args.runs} calls of each case, the four cases of a method taking turns; default options, "
          "the predicted class, the input sent as a base64 tensor")
    head = (f"{'method':<22}{'captum':>9}{'explain':>9}{'http b64':>9}{'ratio':>7}{'+ms':>8}"
            f"{'http json':>10}{'ratio':>7}{'+ms':>8}{'max diff':>10}")
    for model_id, (rows, costs) in results.items():
        print(f"\n{model_id}\n{head}\n{'-' * len(head)}")
        for r in rows:
            print(f"{r[0]:<22}{r[1]}{r[2]}{r[3]}{r[4]:>7}{r[5]:>8}{r[6]:>10}{r[7]:>7}{r[8]:>8}{r[9]:>10}")
        print("\n".join(costs))
    if AIM_MODEL in results:
        ratios = [(float(r[4].rstrip("x")), r[0]) for r in results[AIM_MODEL][0]]
        met = [m for v, m in ratios if v <= AIM]
        print(f"\nAim (issue 5): every method on {AIM_MODEL} through HTTP (base64) within {AIM}x of the Captum call: "
              f"met for {len(met)} of {len(ratios)} ({', '.join(met) or 'none'}); worst "
              f"{max(ratios)[0]:.2f}x ({max(ratios)[1]}) -> {'met' if len(met) == len(ratios) else 'MISSED'}")
    print(f"\ntotal {time.monotonic() - started:.0f} s")


def captum_version() -> str:
    import captum as package

    return str(getattr(package, "__version__", "?"))


if __name__ == "__main__":
    main()
