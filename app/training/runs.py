"""The run manager: at most `training_slots` runs train at once, each in its own thread; up to
`training_max_queued` more wait for a slot, and past that starting a run is refused (Busy, 429).

A run is cancelled cooperatively (a flag its loop checks every step), stops at the step and time
ceilings of the settings, and when done becomes a model in the registry (`run-<id>`). Training
threads run at a lower OS priority, release the GIL after every step and, while inference requests
compute, wait for them before the next step: requests keep their speed (bench/training.py).
"""

import dataclasses
import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from torch import Tensor

from convscope.config import Settings
from convscope.database.connect import open_database, sqlite_url
from convscope.database.tables import RunRecord
from convscope.errors import Busy, NotFound
from convscope.factory import build
from convscope.registry import Registry, from_module
from convscope.training.datasets import Catalogue
from convscope.training.events import Event, EventLog
from convscope.training.export import export, model_id
from convscope.training.plan import Plan, make_plan
from convscope.training.records import RunRecords
from convscope.training.schemas import RunSettings, Status
from convscope.training.trainer import Diverged, EpochReport, StepReport, Trainer

log = logging.getLogger("convscope")
FINAL: tuple[Status, ...] = ("done", "cancelled", "failed")
MAX_PAUSE_SECONDS = 0.05  # the longest a training step waits for requests to finish computing


def timestamp(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def plan_fields(plan: Plan) -> dict[str, Any]:
    """A plan as JSON for its record (restore_plan reads it back)."""
    return {**{f.name: getattr(plan, f.name) for f in dataclasses.fields(plan) if f.name != "settings"},
            "settings": plan.settings.model_dump(mode="json")}


def restore_plan(stored: dict[str, Any]) -> Plan:
    return Plan(**{**stored, "settings": RunSettings.model_validate(stored["settings"])})


class TrainingRun:
    """One training run: its plan, its state and its event log. Its thread changes the state; the
    API reads `snapshot()`, taken under the same lock, so it never sees half an update. Every
    change and every event is written to the run's record too (records.py)."""

    def __init__(self, run_id: str, plan: Plan, dataset: dict[str, str], records: RunRecords) -> None:
        self.id, self.plan, self.dataset, self.records = run_id, plan, dataset, records
        self.log = EventLog()
        self.cancel_requested = threading.Event()
        self.cancel_reason = "Cancelled."
        self.thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.status: Status = "queued"
        self.created = time.time()
        self.started: float | None = None
        self.finished: float | None = None
        self._t0 = 0.0  # monotonic start
        self._t1: float | None = None  # monotonic end
        self._t_steps: float | None = None  # monotonic, when the first step began
        self.step = self.epoch = 0
        self.metrics: dict[str, float | None] = dict.fromkeys(("loss", "accuracy", "test_loss", "test_accuracy"))
        self.model: str | None = None
        self.reason: str | None = None

    @property
    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self._t1 if self._t1 is not None else time.monotonic()) - self._t0

    def _eta(self) -> float | None:
        """Seconds to the last step at the pace since training began (data loading excluded)."""
        if self.status != "running" or self.step == 0 or self._t_steps is None:
            return None
        return (time.monotonic() - self._t_steps) / self.step * (self.plan.total_steps - self.step)

    @classmethod
    def restore(cls, record: RunRecord, records: RunRecords) -> "TrainingRun":
        """A run as its record left it, with its whole event log (closed once it has ended)."""
        run = cls(record.id, restore_plan(record.plan), record.dataset, records)
        events = records.events(record.id)
        run.status, run.created, run.started, run.finished = (
            record.status, record.created, record.started, record.finished)  # type: ignore[assignment]
        run.step, run.epoch, run.model, run.reason = record.step, record.epoch, record.model, record.reason
        run.metrics |= record.metrics
        # Its elapsed time is what the record says (or, for a run cut off mid-way, its last event).
        known = record.elapsed if record.elapsed is not None else next(
            (f.get("elapsed", 0.0) for _, _, f, _ in reversed(events)), 0.0)
        run._t1 = time.monotonic()
        run._t0 = run._t1 - known
        run.log = EventLog.restored([Event(seq, kind, f, k) for seq, kind, f, k in events],
                                    closed=record.status in FINAL)
        return run

    def _publish(self, kind: str, fields: dict[str, Any], kernels: Tensor | None = None, *, last: bool = False,
                 **row: Any) -> None:
        """An event into the log (waking the streams) and into the record, with the row's changes."""
        event = self.log.append(kind, fields, kernels, last=last)
        self.records.add_event(self.id, event.seq, kind, fields, kernels, **row)

    def mark_started(self) -> None:
        with self._lock:
            self.status, self.started, self._t0 = "running", time.time(), time.monotonic()
        self.records.update_run(self.id, status="running", started=self.started)

    def begin(self, kernel_layer: str) -> None:
        p = self.plan
        self._t_steps = time.monotonic()
        self._publish("start", {"run": self.id, "total_steps": p.total_steps, "steps_per_epoch": p.steps_per_epoch,
                                  "epochs": p.epochs, "train_size": p.train_size, "test_size": p.test_size,
                                  "log_every": p.log_every, "kernel_layer": kernel_layer,
                                  "elapsed": round(self.elapsed, 3)}, steps_began=time.time())

    def record(self, report: StepReport | EpochReport) -> None:
        """Update the state from a trainer's report and publish it as an event."""
        with self._lock:
            self.step, self.epoch = report.step, report.epoch
            if isinstance(report, StepReport):
                self.metrics |= {"loss": report.loss, "accuracy": report.accuracy}
            else:
                self.metrics |= {"test_loss": report.test_loss, "test_accuracy": report.test_accuracy}
            timing = {"elapsed": round(self.elapsed, 3), "eta": round(self._eta() or 0.0, 3)}
            row = {"step": self.step, "epoch": self.epoch, "metrics": dict(self.metrics)}
        if isinstance(report, StepReport):
            self._publish("step", {"run": self.id, "step": report.step, "epoch": report.epoch, "loss": report.loss,
                                   "accuracy": report.accuracy, "progress": report.step / self.plan.total_steps,
                                   **timing}, report.kernels, **row)
        else:
            self._publish("epoch", {"run": self.id, "epoch": report.epoch, "step": report.step,
                                    "train_loss": report.train_loss, "train_accuracy": report.train_accuracy,
                                    "test_loss": report.test_loss, "test_accuracy": report.test_accuracy,
                                    **timing}, report.kernels, **row)

    def end(self, status: Status, reason: str | None, model: str | None = None,
            test: tuple[float, float] | None = None, step: int | None = None) -> None:
        """Set the final status and publish the end event (once; later calls do nothing). `step`: the
        steps actually taken, when more than the last logged one (a run stopped between two logs)."""
        with self._lock:
            if self.status in FINAL:
                return
            self.status, self.reason, self.model, self.finished = status, reason, model, time.time()
            if step is not None:
                self.step = max(self.step, step)
            if self._t1 is None and self.started is not None:
                self._t1 = time.monotonic()
            if test is not None:
                self.metrics |= {"test_loss": test[0], "test_accuracy": test[1]}
            fields = {"run": self.id, "status": status, "reason": reason, "step": self.step,
                      "elapsed": round(self.elapsed, 3), "test_loss": test[0] if test else None,
                      "test_accuracy": test[1] if test else None, "model": model}
            self._publish("end", fields, last=True, status=status, reason=reason, model=model, finished=self.finished,
                          step=self.step, elapsed=self.elapsed, metrics=dict(self.metrics))

    def snapshot(self) -> dict[str, Any]:
        """The state as RunSummary fields (without queue position and URLs)."""
        with self._lock:
            p = self.plan
            return {"id": self.id, "status": self.status, "settings": p.settings,
                    "dataset": {**self.dataset, "train_size": p.train_size, "test_size": p.test_size},
                    "created": timestamp(self.created), "started": timestamp(self.started),
                    "finished": timestamp(self.finished), "step": self.step, "total_steps": p.total_steps,
                    "steps_per_epoch": p.steps_per_epoch, "epoch": self.epoch,
                    "progress": self.step / p.total_steps, "elapsed": round(self.elapsed, 3), "eta": self._eta(),
                    **self.metrics, "model": self.model, "reason": self.reason}


def lower_priority(increment: int) -> None:
    """Let this thread give way to request threads on a contended core (Linux: nice is per thread)."""
    if increment <= 0:
        return
    try:
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + increment)
    except (AttributeError, OSError):  # not Linux, or not allowed: the GIL release each step remains
        pass


class RunManager:
    """Runs by id, the queue, and the threads that train them."""

    def __init__(self, settings: Settings, registry: Registry, catalogue: Catalogue,
                 records: RunRecords | None = None, requests_busy: Callable[[], bool] = lambda: False) -> None:
        """`records`: where runs are kept (default: a database of this manager's own, gone with it)."""
        self.settings, self.registry, self.catalogue = settings, registry, catalogue
        self.requests_busy = requests_busy  # whether inference requests are computing right now
        self._lock = threading.Lock()
        self._runs: dict[str, TrainingRun] = {}
        self._queue: deque[TrainingRun] = deque()
        self._active: set[TrainingRun] = set()
        self._closing = False
        # The trained models' sample PNGs, written from their records for this process to serve.
        self.folder = Path(tempfile.mkdtemp(prefix="convscope-runs-"))
        self.records = records or RunRecords(open_database(sqlite_url(self.folder)))
        self._restore()

    def _restore(self) -> None:
        """Every run the records hold, with its model; a run that was queued or training when its
        server stopped has lost its training thread, so it ends as failed, saying so."""
        for record in self.records.runs():
            run = TrainingRun.restore(record, self.records)
            self._runs[run.id] = run
            if run.status == "queued":
                run.end("failed", "The server stopped before this run could start. Start it again.")
            elif run.status == "running":
                run.end("failed", f"The server stopped while this run was training (at step {run.step:,} of "
                        f"{run.plan.total_steps:,}). Start it again.")
            elif run.model is not None:
                self._serve_stored(run.model)

    def _serve_stored(self, model: str) -> None:
        """Serve a finished run's model from its record: the same weights, so the same answers."""
        stored = self.records.model(model)
        if stored is None:
            log.warning("Training run model %s has no stored weights; it is not served", model)
            return
        for file, png in stored.samples.items():
            (self.folder / file).parent.mkdir(parents=True, exist_ok=True)
            (self.folder / file).write_bytes(png)
        architecture = stored.card["architecture"]
        module = build(architecture["factory"], architecture.get("kwargs", {}))
        module.load_state_dict(stored.state)
        self.registry.add(from_module(stored.card, module, self.folder))

    def submit(self, body: RunSettings) -> TrainingRun:
        """Start a run, or queue it; Busy (429) when the queue is full, InvalidRequest (422) for settings
        that cannot work with this dataset or these limits."""
        plan = make_plan(body, self.catalogue.info(body.dataset), self.settings)
        with self._lock:
            if self._closing:
                raise Busy("The server is shutting down; start the run again once it is back.")
            slots, queued = self.settings.training_slots, self.settings.training_max_queued
            if len(self._active) >= slots and len(self._queue) >= queued:
                raise Busy(f"The training lab is busy: {len(self._active)} run(s) training and {len(self._queue)} "
                           f"waiting, the most it takes. Try again when one has finished, or cancel one.")
            run_id = secrets.token_hex(4)
            while run_id in self._runs:
                run_id = secrets.token_hex(4)
            info = self.catalogue.info(body.dataset)
            run = TrainingRun(run_id, plan, {"id": info.id, "name": info.name, "kind": info.kind}, self.records)
            self.records.add_run(run_id, plan_fields(plan), run.dataset, run.created)
            self._runs[run_id] = run
            self._forget_old()
            if len(self._active) < slots:
                self._start(run)
            else:
                self._queue.append(run)
        return run

    def get(self, run_id: str) -> TrainingRun:
        try:
            return self._runs[run_id]
        except KeyError:
            raise NotFound(f"There is no training run called '{run_id}'. GET /api/training/runs lists the runs.") from None

    def runs(self) -> list[TrainingRun]:
        with self._lock:
            return list(self._runs.values())

    def queue_position(self, run: TrainingRun) -> int | None:
        with self._lock:
            return self._queue.index(run) + 1 if run in self._queue else None

    def cancel(self, run_id: str, reason: str | None = None) -> TrainingRun:
        """Cancel a queued run at once, or ask a running one to stop at its next step. A run that has
        ended is left as it is."""
        run = self.get(run_id)
        with self._lock:
            if run in self._queue:
                self._queue.remove(run)
                run.end("cancelled", reason or "Cancelled while queued, before it started.")
            elif run.status == "running":
                if reason:
                    run.cancel_reason = reason
                run.cancel_requested.set()
        return run

    def begin_shutdown(self) -> None:
        """Refuse new runs and cancel every queued and running one (their event streams then end)."""
        with self._lock:
            self._closing = True
            pending = [r.id for r in (*self._queue, *self._active)]
        for run_id in pending:
            self.cancel(run_id, "Cancelled: the server is shutting down.")

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel everything, wait for the training threads, delete the samples folder."""
        self.begin_shutdown()
        deadline = time.monotonic() + timeout
        for run in self.runs():
            if run.thread is not None:
                run.thread.join(max(0.0, deadline - time.monotonic()))
                if run.thread.is_alive():
                    log.warning("Training run %s did not stop within %.0f s", run.id, timeout)
        shutil.rmtree(self.folder, ignore_errors=True)

    # --- inside the lock --------------------------------------------------------------------------

    def _start(self, run: TrainingRun) -> None:
        run.mark_started()
        self._active.add(run)
        run.thread = threading.Thread(target=self._train, args=(run,), name=f"convscope-run-{run.id}", daemon=True)
        run.thread.start()

    def _forget_old(self) -> None:
        """Keep at most training_max_runs runs: forget the oldest ended ones, and their models."""
        excess = len(self._runs) - self.settings.training_max_runs
        for run in [r for r in self._runs.values() if r.status in FINAL][:max(excess, 0)]:
            del self._runs[run.id]
            self.records.delete_run(run.id)
            if run.model is not None:
                self.registry.remove(run.model)
                shutil.rmtree(self.folder / run.model, ignore_errors=True)

    # --- in the run's thread ----------------------------------------------------------------------

    def _train(self, run: TrainingRun) -> None:
        lower_priority(self.settings.training_nice)
        try:
            self._execute(run)
        except Diverged as error:
            run.end("failed", f"The loss became {error.loss} at step {error.step}: training diverged. "
                    f"Try a smaller learning rate than {run.plan.settings.learning_rate:g}.")
        except Exception:
            log.exception("Training run %s failed", run.id)
            run.end("failed", "Training failed inside ConvScope; this is a bug, please report it.")
        finally:
            with self._lock:
                self._active.discard(run)
                while self._queue and len(self._active) < self.settings.training_slots:
                    self._start(self._queue.popleft())

    def _give_way(self) -> None:
        """Between two steps: release the GIL, and while requests compute, wait for them (at most
        MAX_PAUSE_SECONDS, so that a steady stream of requests slows training but never stops it)."""
        time.sleep(0)
        deadline = time.monotonic() + MAX_PAUSE_SECONDS
        while self.requests_busy() and time.monotonic() < deadline:
            time.sleep(0.001)

    def _execute(self, run: TrainingRun) -> None:
        limit = self.settings.training_max_seconds
        trainer = Trainer(run.plan, self.catalogue.load(run.plan.settings.dataset), run.cancel_requested.is_set,
                          deadline=time.monotonic() + limit, pause=self._give_way)
        run.begin(trainer.kernel_layer)
        for report in trainer.run():
            run.record(report)
        test = None if trainer.stopped == "cancelled" else trainer.final_test()
        if test is None:
            run.end("cancelled", f"{run.cancel_reason} Stopped at step {trainer.step:,} of {run.plan.total_steps:,}.",
                    step=trainer.step)
            return
        model = export(run.id, trainer, test, run.elapsed, self.folder, self.records)
        with self._lock:  # a cancel that came during the export still wins
            if run.cancel_requested.is_set():
                run.end("cancelled", f"{run.cancel_reason} Stopped after the last step, before serving the model.",
                        step=trainer.step)
                return
            self.registry.add(model)
        reason = None
        if trainer.stopped == "time":
            reason = (f"Stopped at the time limit of {limit:,} s after {trainer.step:,} of "
                      f"{run.plan.total_steps:,} steps; the model is served as it was then.")
        run.end("done", reason, model_id(run.id), test, step=trainer.step)
