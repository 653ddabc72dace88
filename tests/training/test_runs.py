"""The run manager without HTTP: slots and queue, cancel, limits, registration, forgetting, shutdown."""

import sys
import time
from time import time as real_time
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from convscope.config import Settings
from convscope.errors import Busy, NotFound
from convscope.registry import Registry
from convscope.training.datasets import Catalogue, full_fashion_files
from convscope.training.runs import FINAL, MAX_PAUSE_SECONDS, RunManager, TrainingRun
from convscope.training.schemas import RunSettings
from models.training.data import FASHION_SYSTEM_DIR

SHORT = {"train_size": 64, "batch_size": 32, "steps": 2}
LONG = {"train_size": 6000, "batch_size": 32, "steps": 15000}


@pytest.fixture
def manager(settings: Settings, catalogue: Catalogue) -> Iterator[RunManager]:
    limits = settings.model_copy(update={"training_slots": 1, "training_max_queued": 1, "training_max_runs": 3})
    runs = RunManager(limits, Registry(), catalogue)
    yield runs
    runs.shutdown()


def wait(run: TrainingRun, status: tuple[str, ...] = FINAL, timeout: float = 30) -> TrainingRun:
    deadline = time.monotonic() + timeout
    while run.status not in status:
        assert time.monotonic() < deadline, f"run {run.id} is still {run.status}"
        time.sleep(0.01)
    return run


def submit(manager: RunManager, **body: Any) -> TrainingRun:
    return manager.submit(RunSettings(**body))


def test_a_done_run_is_registered_as_a_model_with_a_card_like_the_built_ins(manager: RunManager) -> None:
    run = wait(submit(manager, **SHORT))
    assert run.status == "done" and run.model == f"run-{run.id}"
    model = manager.registry.get(run.model)
    card = model.card
    assert card["architecture"] == {"factory": "convscope.models.lenet:LeNet", "kwargs": {"activation": "relu", "pooling": "max"}}
    assert card["test_accuracy"] == round(run.snapshot()["test_accuracy"], 4)
    assert card["training"]["optimizer"] == "adam" and card["training"]["steps_done"] == 2
    assert len(model.samples) == 20 and all(s.path.is_file() for s in model.samples.values())
    assert [e.type for e in run.log.since(-1)[0]] == ["start", "step", "step", "epoch", "end"]


def test_one_slot_one_queue_place_then_busy_and_the_queue_moves_when_a_slot_frees(manager: RunManager) -> None:
    first = wait(submit(manager, **LONG), ("running",))  # taken off the queue by the manager's consumer
    second = submit(manager, **SHORT)
    assert (second.status, manager.queue_position(second)) == ("queued", 1)
    with pytest.raises(Busy, match="2 run\\(s\\) training or waiting"):
        submit(manager, **SHORT)
    manager.cancel(first.id)
    assert wait(first).status == "cancelled" and "Stopped at step" in (first.reason or "")
    assert wait(second).status == "done"
    assert first.model is None and [m.id for m in manager.registry] == [second.model]


def test_cancelling_a_queued_run_ends_it_at_once_and_an_ended_run_stays_as_it_was(manager: RunManager) -> None:
    first = wait(submit(manager, **LONG), ("running",))
    second = submit(manager, **SHORT)
    manager.cancel(second.id)
    assert second.status == "cancelled" and second.log.closed and second.started is None
    assert [e.type for e in second.log.since(-1)[0]] == ["end"]
    manager.cancel(first.id)
    wait(first)
    manager.cancel(first.id)
    assert first.status == "cancelled" and len(first.log.since(-1)[0]) == first.log.last_seq() + 1


def test_time_ceiling_stops_a_run_which_keeps_its_model(settings: Settings, catalogue: Catalogue) -> None:
    # model_copy does not validate: 0 s, below what CONVSCOPE_TRAINING_MAX_SECONDS takes, ends a run at once.
    runs = RunManager(settings.model_copy(update={"training_max_seconds": 0}), Registry(), catalogue)
    try:
        run = wait(runs.submit(RunSettings(**LONG)))
        assert run.status == "done" and "time limit of 0 s after 0 of 15,000 steps" in (run.reason or "")
        assert runs.registry.get(f"run-{run.id}").card["test_accuracy"] >= 0
    finally:
        runs.shutdown()


def test_a_diverging_run_fails_with_a_sentence(manager: RunManager, monkeypatch: pytest.MonkeyPatch) -> None:
    import convscope.training.trainer as trainer

    monkeypatch.setattr(trainer, "loss_function", lambda name: lambda logits, labels: logits.sum() * float("nan"))
    run = wait(submit(manager, **SHORT))
    assert run.status == "failed" and run.reason is not None
    assert "became nan at step 1" in run.reason and "smaller learning rate than 0.001" in run.reason
    assert run.log.since(-1)[0][-1].body()["status"] == "failed"


def test_the_oldest_ended_runs_and_their_models_are_forgotten_past_the_limit(manager: RunManager) -> None:
    done = [wait(submit(manager, **SHORT)) for _ in range(4)]
    assert [r.id for r in manager.runs()] == [r.id for r in done[1:]]
    with pytest.raises(NotFound, match="no training run called"):
        manager.get(done[0].id)
    assert [m.id for m in manager.registry] == [r.model for r in done[1:]]
    assert not (manager.folder / f"run-{done[0].id}").exists()
    assert [r.id for r in manager.records.runs()] == [r.id for r in done[1:]]  # its record is gone too
    assert manager.records.events(done[0].id) == [] and manager.records.model(f"run-{done[0].id}") is None


def test_a_new_manager_on_the_same_records_has_every_run_and_serves_their_models(
        settings: Settings, catalogue: Catalogue, manager: RunManager) -> None:
    done = wait(submit(manager, **SHORT))
    again = RunManager(settings, Registry(), catalogue, manager.records)
    try:
        restored = again.get(done.id)
        assert restored.snapshot() == done.snapshot()
        assert [e.body() for e in restored.log.since(-1)[0]] == [e.body() for e in done.log.since(-1)[0]]
        model, served = again.registry.get(done.model), manager.registry.get(done.model)
        assert model.card == served.card
        for name, tensor in served.graph.module.state_dict().items():  # the same bytes, restored
            assert torch.equal(model.graph.module.state_dict()[name], tensor), name
        assert {s: model.sample(s).path.read_bytes() for s in model.samples} == {
            s: served.sample(s).path.read_bytes() for s in served.samples}
    finally:
        again.shutdown()


def test_shutdown_cancels_queued_and_running_runs_joins_their_threads_and_cleans_up(
        settings: Settings, catalogue: Catalogue) -> None:
    runs = RunManager(settings.model_copy(update={"training_slots": 1, "training_max_queued": 1}), Registry(), catalogue)
    running, queued = runs.submit(RunSettings(**LONG)), runs.submit(RunSettings(**LONG))
    wait(running, ("running",))
    runs.shutdown()
    assert (running.status, queued.status) == ("cancelled", "cancelled")
    assert running.thread is not None and not running.thread.is_alive()
    assert "shutting down" in (running.reason or "") and not runs.folder.exists()
    with pytest.raises(Busy, match="shutting down"):
        runs.submit(RunSettings(**SHORT))


# The package's own folder, not Settings()'s: the suite sets CONVSCOPE_FASHION_MNIST_DIR="" (tests/conftest.py).
@pytest.mark.skipif(full_fashion_files(FASHION_SYSTEM_DIR) is None,
                    reason="the Debian package dataset-fashion-mnist is not installed")
def test_the_full_fashion_mnist_is_trained_on_when_installed(settings: Settings) -> None:
    full = settings.model_copy(update={"fashion_mnist_dir": FASHION_SYSTEM_DIR})
    runs = RunManager(full, Registry(), Catalogue(full.subsets_dir, full.fashion_mnist_dir))
    try:
        info = runs.catalogue.info("fashion-mnist")
        assert (info.kind, info.train_size, info.test_size) == ("full", 60000, 10000)
        run = wait(runs.submit(RunSettings(dataset="fashion-mnist", **SHORT)))
        assert run.status == "done" and run.snapshot()["dataset"]["kind"] == "full"
        assert runs.registry.get(f"run-{run.id}").card["dataset"]["test_size"] == 10000
    finally:
        runs.shutdown()


class Clock:
    """A stand-in for the `time` module that only moves when slept on: no wall clock, so no load can change it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.naps: list[tuple[float, float]] = []  # (when, how long) of every sleep

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:  # the manager's keeper thread reads the wall clock meanwhile
        return real_time()

    def sleep(self, seconds: float) -> None:
        self.naps.append((self.now, seconds))
        self.now += seconds


def test_between_steps_training_waits_while_requests_compute_but_not_for_ever(
        settings: Settings, catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch) -> None:
    import convscope.training.runs as runs_module

    busy = {"now": True}
    runs = RunManager(settings, Registry(), catalogue, requests_busy=lambda: busy["now"])
    try:
        with monkeypatch.context() as patch:
            clock = Clock()
            patch.setattr(runs_module, "time", clock)
            runs._give_way()  # busy for ever: it waits up to the deadline, and no nap starts after it
            assert clock.now >= MAX_PAUSE_SECONDS and all(when < MAX_PAUSE_SECONDS for when, _ in clock.naps)
            busy["now"] = False
            clock = Clock()
            patch.setattr(runs_module, "time", clock)
            runs._give_way()  # not busy: it only yields the GIL
            assert clock.naps == [(0.0, 0)]
    finally:
        runs.shutdown()


def test_what_torch_optim_imports_on_first_use_is_imported_with_the_app() -> None:
    """torch.optim's lazy import of torch._dynamo holds the GIL for 1.5–2 s: not in mid-service."""
    assert "torch._dynamo" in sys.modules
