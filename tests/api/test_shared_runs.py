"""Training runs shared by every process (a database and a job queue, app/training/): a server with
two uvicorn workers, two servers on one data folder, and a `convscope worker` that dies mid-run.
Every request goes on a new connection, so any process may answer it."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from convscope.training.runs import STALE_SECONDS
from tests import ROOT
from tests.conftest import serving, start_server

R = "/api/training/runs"
SHORT = {"train_size": 320, "batch_size": 16, "epochs": 2, "log_every": 2}
LONG = {"steps": 15000}  # minutes of training: only ever cancelled or cut off


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=30)  # no client: a connection of its own


def events(url: str) -> list[dict[str, Any]]:
    """A run's server-sent events to the end, as an EventSource parses them."""
    found, fields = [], {}
    with httpx.stream("GET", url, timeout=120) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line == "":
                if fields:
                    found.append({"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])})
                    fields = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(":")
                fields[key] = value.removeprefix(" ")
    return found


def until(url: str, run_id: str, statuses: tuple[str, ...], timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (run := get(f"{url}{R}/{run_id}").json())["status"] not in statuses:
        assert time.monotonic() < deadline, f"run {run_id} is still {run['status']}"
        time.sleep(0.1)
    return run


def test_two_uvicorn_workers_answer_every_request_about_every_run(tmp_path: Path) -> None:
    with serving({"CONVSCOPE_DATA_DIR": str(tmp_path)}, "--workers", "2") as url:
        run = httpx.post(f"{url}{R}", json=SHORT, timeout=30).json()
        statuses = [get(f"{url}{R}/{run['id']}").status_code for _ in range(10)]
        streams = [events(f"{url}{run['urls']['events']}") for _ in range(2)]
        done = until(url, run["id"], ("done", "failed", "cancelled"))
        models = [get(f"{url}/api/models/{done['model']}").status_code for _ in range(10)]
        listed = [run["id"] in {r["id"] for r in get(f"{url}{R}").json()["runs"]} for _ in range(10)]
    assert statuses == [200] * 10 and models == [200] * 10 and all(listed)
    assert done["status"] == "done"
    for stream in streams:  # every event once, in order, whichever process streamed it
        assert [e["id"] for e in stream] == list(range(len(stream)))
        assert stream[0]["event"] == "start" and stream[-1]["event"] == "end"
        assert [e["data"] for e in stream] == [e["data"] for e in streams[0]]


def test_a_run_started_on_one_server_is_watched_cancelled_and_inspected_on_another(tmp_path: Path) -> None:
    env = {"CONVSCOPE_DATA_DIR": str(tmp_path)}
    with serving(env) as one, serving(env | {"CONVSCOPE_TRAINING_IN_SERVER": "0"}) as other:
        run = httpx.post(f"{one}{R}", json=SHORT, timeout=30).json()
        watched = events(f"{other}{run['urls']['events']}")
        assert watched[-1]["event"] == "end" and watched[-1]["data"]["status"] == "done"
        answer = httpx.post(f"{other}/api/models/run-{run['id']}/forward", json={"sample": "test-00000"}, timeout=30)
        assert answer.status_code == 200, answer.text  # the model the first server trained, from the database
        long = httpx.post(f"{other}{R}", json=LONG, timeout=30).json()  # queued on the other, trained on the first
        assert until(one, long["id"], ("running",))["status"] == "running"
        cancelled = httpx.delete(f"{other}{R}/{long['id']}", timeout=30).json()
        assert cancelled["status"] == "cancelled" and "Stopped at step" in cancelled["reason"]
        assert get(f"{one}{R}/{long['id']}").json()["status"] == "cancelled"


@contextmanager
def worker(env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-m", "convscope", "worker"], cwd=ROOT, env={**os.environ, **env},
                               stdout=tempfile.TemporaryFile(), stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def test_a_worker_trains_and_a_run_whose_worker_dies_ends_failed_while_the_queue_goes_on(tmp_path: Path) -> None:
    env = {"CONVSCOPE_DATA_DIR": str(tmp_path), "CONVSCOPE_TRAINING_IN_SERVER": "0"}
    server, url = start_server(env=env)
    try:
        long = httpx.post(f"{url}{R}", json=LONG, timeout=30).json()
        assert get(f"{url}{R}/{long['id']}").json()["status"] == "queued"  # nobody trains in the server
        with worker(env) as first:
            running = until(url, long["id"], ("running",), timeout=60)
            first.kill()  # no shutdown: its run is left running in the record, its heartbeat stops
            first.wait(timeout=10)
        short = httpx.post(f"{url}{R}", json=SHORT, timeout=30).json()
        with worker(env):
            cut = until(url, long["id"], ("failed", "cancelled", "done"), timeout=STALE_SECONDS + 60)
            done = until(url, short["id"], ("failed", "cancelled", "done"))
        assert running["status"] == "running"
        assert cut["status"] == "failed" and cut["reason"].startswith("The process training this run stopped")
        assert done["status"] == "done"
        assert get(f"{url}/api/models/{done['model']}").status_code == 200  # trained by a worker, served here
    finally:
        server.terminate()
        server.wait(timeout=30)
