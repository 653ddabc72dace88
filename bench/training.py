"""The training lab measured by itself: test accuracy after one epoch per optimizer and per activation,
time per epoch, and how much a training run slows inference requests.

Run from the repository root:  .venv/bin/python -m bench.training   (or  .venv/bin/python bench/training.py)

1. Accuracy: runs go through the lab's own RunManager (in this process, default settings), one at a
   time, on the shipped MNIST digits subset (6,000 train, 1,000 test), LeNet-style, max pooling,
   batch 32, one epoch: every optimizer at its default learning rate with ReLU, then every
   activation with Adam; for each, the test accuracy of seeds 0..N-1 (--seeds) and the seconds per
   epoch (training plus the test pass, from the run's own events).
2. Time per epoch (skip with --no-epochs): one epoch of each architecture on each dataset as this
   server has it (the full Fashion-MNIST when the Debian package is installed).
3. Latency (skip with --no-latency): a real uvicorn server with default settings; a forward with
   every layer of mnist-lenet over HTTP (a tensor body, as bench/api.py), back to back ("warm") and
   after 200 ms idle ("cold"), first with the server idle, then while a LeNet-style run trains, then
   while a TinyVGG-style run trains. The training runs' speed meanwhile is printed too.

It asserts nothing: it prints numbers and ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/training.py`: make `app`, `models` and `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import torch

from bench.api import Server, Timing, free_port, measure
from convscope.config import ROOT, Settings
from convscope.optimizers import OPTIMIZERS
from convscope.registry import Registry, set_threads
from convscope.training.datasets import Catalogue
from convscope.training.nets import ACTIVATIONS
from convscope.training.runs import FINAL, RunManager, TrainingRun
from convscope.training.schemas import RunSettings

ONE_EPOCH = {"dataset": "mnist", "architecture": "lenet", "pooling": "max", "batch_size": 32, "epochs": 1}


def train(manager: RunManager, body: dict[str, Any]) -> TrainingRun:
    run = manager.submit(RunSettings(**body))
    while run.status not in FINAL:
        time.sleep(0.02)
    assert run.status == "done", run.reason
    return run


def epoch_seconds(run: TrainingRun) -> float:
    """Training plus the test pass, from the start event to the epoch event (data loading excluded)."""
    events = {e.type: e.fields for e in run.log.since(-1)[0]}
    return float(events["epoch"]["elapsed"] - events["start"]["elapsed"])


def accuracy_table(seeds: int) -> None:
    settings = Settings()
    manager = RunManager(settings, Registry(), Catalogue(settings.subsets_dir, settings.fashion_mnist_dir))
    cases = [("optimizer", o, {"activation": "relu", "optimizer": o}) for o in OPTIMIZERS]
    cases += [("activation", a, {"activation": a, "optimizer": "adam"}) for a in ACTIVATIONS]
    print(f"One epoch on the MNIST digits subset (6,000 train, 1,000 test): LeNet-style, max pooling, batch 32, "
          f"default learning rates; {torch.get_num_threads()} torch thread(s); seeds 0..{seeds - 1}.\n")
    print("| varied | choice | activation | optimizer (lr) | test accuracy, mean | min … max | s / epoch |")
    print("|---|---|---|---|---|---|---|")
    seen: dict[str, tuple[list[float], list[float]]] = {}
    try:
        for kind, choice, body in cases:
            key = f"{body['activation']}/{body['optimizer']}"
            if key not in seen:
                runs = [train(manager, {**ONE_EPOCH, **body, "seed": seed}) for seed in range(seeds)]
                seen[key] = ([float(r.metrics["test_accuracy"] or 0) for r in runs], [epoch_seconds(r) for r in runs])
            accuracies, seconds = seen[key]
            lr = OPTIMIZERS[body["optimizer"]].training_lr
            print(f"| {kind} | {choice} | {body['activation']} | {body['optimizer']} ({lr:g}) | "
                  f"{statistics.mean(accuracies):.2%} | {min(accuracies):.1%} … {max(accuracies):.1%} | "
                  f"{statistics.median(seconds):.2f} |", flush=True)
    finally:
        manager.shutdown()
    print(f"\nload average after: {os.getloadavg()[0]:.2f} (on {os.cpu_count()} cores)\n")


def epoch_times() -> None:
    """One epoch (seed 0, Adam, ReLU, max pooling, batch 32) of each architecture on each dataset,
    as this server has it (Fashion-MNIST is the full 60,000 / 10,000 when installed)."""
    settings = Settings()
    manager = RunManager(settings, Registry(), Catalogue(settings.subsets_dir, settings.fashion_mnist_dir))
    print("| dataset | images (train / test) | architecture | steps | s / epoch | ms / step | test accuracy |")
    print("|---|---|---|---|---|---|---|")
    try:
        for info in manager.catalogue.infos():
            for arch in ("lenet", "tinyvgg"):
                run = train(manager, {**ONE_EPOCH, "dataset": info.id, "architecture": arch})
                seconds = epoch_seconds(run)
                print(f"| {info.name} ({info.kind}) | {info.train_size:,} / {info.test_size:,} | {arch} | "
                      f"{run.plan.total_steps:,} | {seconds:.1f} | {seconds / run.plan.total_steps * 1e3:.1f} | "
                      f"{run.metrics['test_accuracy'] or 0:.2%} |", flush=True)
    finally:
        manager.shutdown()
    print("\n(s / epoch includes the pass over the test set; ms / step is s / epoch over the steps.)\n")


class LabServer(Server):
    """bench.api's server (default settings), with CONVSCOPE_TRAINING_NICE set."""

    def __init__(self, nice: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONVSCOPE_")}
        env["CONVSCOPE_TRAINING_NICE"] = str(nice)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "convscope.main:app", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)


def latency(warm: int, cold: int, nices: list[int]) -> None:
    rows: list[tuple[str, Timing, Timing, str]] = []  # name, timing, the same server's idle timing, pace
    for nice in nices:
        server = LabServer(nice)
        try:
            server.wait_ready()
            with httpx.Client(base_url=server.url, timeout=60) as client:
                x = client.post("/api/models/mnist-lenet/forward", json={"sample": "test-00000"}).json()["input"]
                body = {"tensor": x}

                def forward() -> None:
                    client.post("/api/models/mnist-lenet/forward", json=body).raise_for_status()

                for arch in ("lenet", "tinyvgg"):
                    idle = measure(forward, warm, cold)  # again before each, so that drift shows
                    run = client.post("/api/training/runs", json={"architecture": arch, "steps": 15000}).json()
                    while client.get(f"/api/training/runs/{run['id']}").json()["status"] == "queued":
                        time.sleep(0.05)
                    time.sleep(1.0)  # past the data loading and the first steps
                    alone = client.get(f"/api/training/runs/{run['id']}").json()
                    timing = measure(forward, warm, cold)
                    end = client.delete(f"/api/training/runs/{run['id']}").json()
                    pace = (end["step"] - alone["step"]) / max(end["elapsed"] - alone["elapsed"], 1e-9)
                    rows.append((f"idle (nice {nice})", idle, idle, ""))
                    rows.append((f"{arch}-style run training (nice {nice})", timing, idle, f"{pace:.0f} steps/s"))
        finally:
            server.stop()
    print("Forward of mnist-lenet over HTTP (every layer, JSON), one request at a time, default settings "
          "(1 torch thread); the run: batch 32, Adam, MNIST subset. Ratios: to the idle row just above.\n")
    print("| server | warm median ms | warm p90 ms | cold median ms | warm ratio | cold ratio | training meanwhile |")
    print("|---|---|---|---|---|---|---|")
    for name, t, idle, note in rows:
        print(f"| {name} | {t.median:.2f} | {t.p90:.2f} | {t.cold_median:.2f} | {t.median / idle.median:.2f} | "
              f"{t.cold_median / idle.cold_median:.2f} | {note} |")
    print(f"\nload average after: {os.getloadavg()[0]:.2f} (on {os.cpu_count()} cores)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="runs per row (seeds 0..N-1)")
    parser.add_argument("--no-accuracy", action="store_true")
    parser.add_argument("--no-epochs", action="store_true", help="skip the time per epoch of each architecture")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--warm", type=int, default=200)
    parser.add_argument("--cold", type=int, default=20)
    parser.add_argument("--nice", type=int, nargs="+", default=[10],
                        help="CONVSCOPE_TRAINING_NICE values to compare (default: 10, the default)")
    args = parser.parse_args()
    set_threads(Settings().torch_threads)  # as the server does: 1 by default
    print(f"load average before: {os.getloadavg()[0]:.2f} (on {os.cpu_count()} cores)\n")
    if not args.no_accuracy:
        accuracy_table(args.seeds)
    if not args.no_epochs:
        epoch_times()
    if not args.no_latency:
        latency(args.warm, args.cold, args.nice)


if __name__ == "__main__":
    main()
