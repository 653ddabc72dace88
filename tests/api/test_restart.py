"""Runs survive a restart (their records are in the database, app/training/records.py): a real
server trains, stops and starts again on the same data folder, and everything it showed and
served before is the same after, bit for bit; a run cut off by a killed server ends as failed."""

import time
from pathlib import Path
from typing import Any

import httpx

from convscope.training.runs import STALE_SECONDS
from tests.conftest import serving, start_server

R = "/api/training/runs"
RUN = {"train_size": 64, "batch_size": 16, "steps": 8, "log_every": 2}


def wait_for(url: str, run_id: str, statuses: tuple[str, ...], timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = httpx.get(f"{url}{R}/{run_id}", timeout=10).json()
        if run["status"] in statuses:
            return run
        assert time.monotonic() < deadline, f"run {run_id} is still {run['status']}"
        time.sleep(0.1)


def everything_shown(url: str, run_id: str) -> dict[str, Any]:
    """What a person sees of a finished run and its model: the run with its whole history, the
    model's card and layers, its samples, and a forward and a backward of one of them."""
    run = httpx.get(f"{url}{R}/{run_id}", timeout=10).json()
    model = run["model"]
    card = httpx.get(f"{url}/api/models/{model}", timeout=10).json()
    samples = httpx.get(f"{url}/api/models/{model}/samples", timeout=10).json()["samples"]
    sample = {"sample": samples[0]["id"]}
    return {
        "run": run, "listed": [r for r in httpx.get(f"{url}{R}", timeout=10).json()["runs"] if r["id"] == run_id],
        "card": card, "samples": samples,
        "png": httpx.get(f"{url}{samples[0]['url']}", timeout=10).content,
        "forward": httpx.post(f"{url}/api/models/{model}/forward", json=sample, timeout=30).json(),
        "backward": httpx.post(f"{url}/api/models/{model}/backward", json=sample, timeout=30).json(),
        "weights": httpx.get(f"{url}/api/models/{model}/layers/conv1/weights", timeout=10).json(),
    }


def test_a_finished_run_its_history_and_its_model_are_the_same_after_a_restart(tmp_path: Path) -> None:
    env = {"CONVSCOPE_DATA_DIR": str(tmp_path)}
    with serving(env) as url:
        run_id = httpx.post(f"{url}{R}", json=RUN, timeout=10).json()["id"]
        assert wait_for(url, run_id, ("done", "failed", "cancelled"))["status"] == "done"
        before = everything_shown(url, run_id)
    assert (tmp_path / "convscope.db").is_file()
    with serving(env) as url:
        after = everything_shown(url, run_id)
    # 8 steps of 4 per epoch (64 images, batch 16), a step event every 2 steps.
    assert [e["type"] for e in before["run"]["history"]] == [
        "start", "step", "step", "epoch", "step", "step", "epoch", "end"]
    # The same JSON, number for number: the same weights, restored from the same bytes, and the same ops.
    assert after == before


def test_a_run_cut_off_by_a_killed_server_ends_failed_and_a_queued_one_trains_after_the_restart(tmp_path: Path) -> None:
    env = {"CONVSCOPE_DATA_DIR": str(tmp_path)}
    server, url = start_server(env=env)
    try:
        run_id = httpx.post(f"{url}{R}", json={"steps": 15000}, timeout=10).json()["id"]
        queued_id = httpx.post(f"{url}{R}", json={"steps": 15000}, timeout=10).json()["id"]  # one slot: it waits
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}{R}/{run_id}", timeout=10).json()["step"] == 0:
            assert time.monotonic() < deadline, "the run took no step"
            time.sleep(0.05)
    finally:
        server.kill()  # no shutdown: the run is left "running" in its record
        server.wait(timeout=10)
    with serving(env) as url:
        # Its heartbeat stopped with the server: once it is STALE_SECONDS old, the run is failed.
        cut = wait_for(url, run_id, ("done", "failed", "cancelled"), timeout=STALE_SECONDS + 60)
        waiting = httpx.get(f"{url}{R}/{queued_id}", timeout=10).json()
        models = [m["id"] for m in httpx.get(f"{url}/api/models", timeout=10).json()["models"]]
    assert cut["status"] == "failed" and cut["model"] is None
    assert cut["reason"].startswith("The process training this run stopped without finishing it (killed, ")
    assert cut["history"][-1]["type"] == "end" and cut["history"][-1]["status"] == "failed"
    assert [e["seq"] for e in cut["history"]] == list(range(len(cut["history"])))
    assert f"run-{run_id}" not in models
    # The queued run kept its place in the queue (Huey's SQLite in the data folder): it trains now.
    assert waiting["status"] in ("queued", "running")
