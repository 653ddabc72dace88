"""The run manager: the training lab's runs, wherever they train.

A run's record is in the database (records.py) and its id on the job queue (jobs.py), so every
server process lists, watches, cancels and deletes every run, and whichever process consumes the
queue trains it: this one (`training_slots` threads, unless CONVSCOPE_TRAINING_IN_SERVER is off) or
a `convscope worker`. Past `training_slots + training_max_queued` runs waiting or training,
starting a run is refused (Busy, 429).

A run is cancelled cooperatively (a flag its loop checks every step; from another process, through
its record), stops at the step and time ceilings of the settings, and when done becomes a model
(`run-<id>`) that every server process serves from the database. The process that trains a run
says every HEARTBEAT_SECONDS that it is alive; a run whose process has been silent for
STALE_SECONDS (killed, crashed) is ended as failed by any other process, with a sentence. Training
threads run at a lower OS priority, release the GIL after every step and, while inference requests
compute, wait for them before the next step: requests keep their speed (bench/training.py).
"""

import dataclasses
import logging
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from huey import Huey
from torch import Tensor

from convscope.config import Settings
from convscope.database.connect import open_database, sqlite_url
from convscope.database.tables import RunRecord
from convscope.errors import Busy, NotFound
from convscope.factory import build
from convscope.registry import Registry, from_module
from convscope.training.datasets import Catalogue
from convscope.training.events import Event, EventLog, StoredEventLog
from convscope.training.export import export, model_id
from convscope.training.jobs import Jobs, private_queue
from convscope.training.plan import Plan, make_plan
from convscope.training.records import RunRecords
from convscope.training.schemas import RunSettings, Status
from convscope.training.trainer import Diverged, EpochReport, StepReport, Trainer

log = logging.getLogger("convscope")
FINAL: tuple[Status, ...] = ("done", "cancelled", "failed")
MAX_PAUSE_SECONDS = 0.05  # the longest a training step waits for requests to finish computing
HEARTBEAT_SECONDS = 1.0  # a training process says it is alive this often
STALE_SECONDS = 10.0  # silent this long, it is taken for dead (a beat can wait for a GIL-heavy step)
CANCEL_POLL_SECONDS = 0.25  # a training loop reads its record's cancel flag this often
WORKER = f"{socket.gethostname()}:{os.getpid()}"


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
    """One training run: its plan, its state and its event log. In the process that trains it, its
    thread changes the state and the API reads `snapshot()`, taken under the same lock, so it never
    sees half an update; every change and event goes to the run's record too. Elsewhere it is the
    record as read (`restore`), its events followed from the database."""

    def __init__(self, run_id: str, plan: Plan, dataset: dict[str, str], records: RunRecords) -> None:
        self.id, self.plan, self.dataset, self.records = run_id, plan, dataset, records
        self.log: EventLog | StoredEventLog = EventLog()
        self.cancel_requested = threading.Event()
        self.cancel_reason = "Cancelled."
        self.thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.status: Status = "queued"
        self.created = time.time()
        self.started: float | None = None
        self.finished: float | None = None
        self._ended_after: float | None = None  # seconds from start to end, once ended
        self._steps_began: float | None = None  # when the first step began (for the ETA)
        self.step = self.epoch = 0
        self.metrics: dict[str, float | None] = dict.fromkeys(("loss", "accuracy", "test_loss", "test_accuracy"))
        self.model: str | None = None
        self.reason: str | None = None

    @classmethod
    def restore(cls, record: RunRecord, records: RunRecords, live: bool = False) -> "TrainingRun":
        """A run as its record says. `live`: this process will train it (its log is then in memory,
        starting from the stored events); else its log follows the record."""
        run = cls(record.id, restore_plan(record.plan), record.dataset, records)
        run.status = record.status  # type: ignore[assignment]
        run.created, run.started, run.finished = record.created, record.started, record.finished
        run.step, run.epoch, run.model, run.reason = record.step, record.epoch, record.model, record.reason
        run.metrics |= record.metrics
        run._ended_after, run._steps_began = record.elapsed, record.steps_began
        if live:
            run.log = EventLog.restored([Event(*e) for e in records.events(record.id)], closed=record.status in FINAL)
        else:
            run.log = StoredEventLog(records, record.id)
        return run

    @property
    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return self._ended_after if self._ended_after is not None else max(0.0, time.time() - self.started)

    def _eta(self) -> float | None:
        """Seconds to the last step at the pace since training began (data loading excluded)."""
        if self.status != "running" or self.step == 0 or self._steps_began is None:
            return None
        return max(0.0, time.time() - self._steps_began) / self.step * (self.plan.total_steps - self.step)

    def _publish(self, kind: str, fields: dict[str, Any], kernels: Tensor | None = None, **row: Any) -> None:
        """An event into the log (waking the streams) and into the record, with the row's changes."""
        assert isinstance(self.log, EventLog), "only the process training a run publishes its events"
        event = self.log.append(kind, fields, kernels)
        self.records.add_event(self.id, event.seq, kind, fields, kernels, **row)

    def mark_started(self, started: float) -> None:
        """This process has claimed the run (its record says running since `started`)."""
        with self._lock:
            self.status, self.started = "running", started

    def begin(self, kernel_layer: str) -> None:
        p = self.plan
        self._steps_began = time.time()
        self._publish("start", {"run": self.id, "total_steps": p.total_steps, "steps_per_epoch": p.steps_per_epoch,
                                "epochs": p.epochs, "train_size": p.train_size, "test_size": p.test_size,
                                "log_every": p.log_every, "kernel_layer": kernel_layer,
                                "elapsed": round(self.elapsed, 3)}, steps_began=self._steps_began)

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
            test: tuple[float, float] | None = None, step: int | None = None,
            from_statuses: tuple[Status, ...] = ("queued", "running")) -> bool:
        """Set the final status and publish the end event, if the record is still in one of
        `from_statuses` (so a run ends once, whichever process ends it); whether it ended here.
        `step`: the steps actually taken, when more than the last logged one."""
        with self._lock:
            if self.status in FINAL:
                return False
            finished = time.time()
            steps = max(self.step, step or 0)
            elapsed = finished - self.started if self.started is not None else None
            metrics = self.metrics | ({"test_loss": test[0], "test_accuracy": test[1]} if test is not None else {})
            fields = {"run": self.id, "status": status, "reason": reason, "step": steps,
                      "elapsed": round(elapsed or 0.0, 3), "test_loss": test[0] if test else None,
                      "test_accuracy": test[1] if test else None, "model": model}
            seq = self.log.last_seq() + 1 if isinstance(self.log, EventLog) else None
            stored = self.records.end(self.id, from_statuses, seq, fields, status=status, reason=reason, model=model,
                                      finished=finished, step=steps, elapsed=elapsed, metrics=metrics)
            if stored is None:
                return False
            self.status, self.reason, self.model, self.finished = status, reason, model, finished
            self.step, self.metrics, self._ended_after = steps, metrics, elapsed
            if isinstance(self.log, EventLog):
                self.log.append("end", fields, last=True)
            return True

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
    """Every run by id (from the records), the queue, and this process's training threads."""

    def __init__(self, settings: Settings, registry: Registry, catalogue: Catalogue,
                 records: RunRecords | None = None, requests_busy: Callable[[], bool] = lambda: False,
                 queue: Huey | None = None, train: bool = True, serve_models: bool = True) -> None:
        """`records`: where runs are kept, `queue`: the job queue (default: a database and a queue of
        this manager's own, gone with it); `train`: whether this process trains queued runs;
        `serve_models`: whether it serves the finished runs' models (a worker does not)."""
        self.settings, self.registry, self.catalogue = settings, registry, catalogue
        self.requests_busy = requests_busy  # whether inference requests are computing right now
        self._lock = threading.Lock()
        self._live: dict[str, TrainingRun] = {}  # runs submitted or trained here, kept current by this process
        self._training: set[str] = set()  # ids of the runs this process trains right now
        self._closing = False
        self._stop = threading.Event()
        # The trained models' sample PNGs, written from their records for this process to serve.
        self.folder = Path(tempfile.mkdtemp(prefix="convscope-runs-"))
        self.records = records or RunRecords(open_database(sqlite_url(self.folder)))
        self.jobs = Jobs(queue if queue is not None else private_queue(), self._train)
        self._served: set[str] = set()  # run models this process serves from the records
        self.serve_models = serve_models
        self._reap()
        self.sync_models()
        self.train = train
        if train:
            for run_id in self.records.queued():  # ids a queue lost (a private one, a flushed Redis) come back
                self.jobs.enqueue(run_id)
            self.jobs.start(settings.training_slots)
        self._keeper = threading.Thread(target=self._keep, name="convscope-runs-keeper", daemon=True)
        self._keeper.start()

    # --- what the API asks --------------------------------------------------------------------------

    def submit(self, body: RunSettings) -> TrainingRun:
        """Queue a run; Busy (429) when as many runs are training and waiting as the lab takes,
        InvalidRequest (422) for settings that cannot work with this dataset or these limits."""
        plan = make_plan(body, self.catalogue.info(body.dataset), self.settings)
        if self._closing:
            raise Busy("The server is shutting down; start the run again once it is back.")
        taken = self.records.count("queued", "running")
        most = self.settings.training_slots + self.settings.training_max_queued
        if taken >= most:
            raise Busy(f"The training lab is busy: {taken} run(s) training or waiting, the most it takes. "
                       f"Try again when one has finished, or cancel one.")
        info = self.catalogue.info(body.dataset)
        run_id = secrets.token_hex(4)
        while self.records.run(run_id) is not None:
            run_id = secrets.token_hex(4)
        run = TrainingRun(run_id, plan, {"id": info.id, "name": info.name, "kind": info.kind}, self.records)
        with self._lock:
            self._live[run_id] = run
        self.records.add_run(run_id, plan_fields(plan), run.dataset, run.created)
        self._forget_old()
        self.jobs.enqueue(run_id)
        return run

    def get(self, run_id: str) -> TrainingRun:
        """The run: this process's own object while it trains the run here, else its record as it is now."""
        with self._lock:
            live = self._live.get(run_id)
        if live is not None and (run_id in self._training or live.status in FINAL):
            return live
        record = self.records.run(run_id)
        if record is None:
            raise NotFound(f"There is no training run called '{run_id}'. GET /api/training/runs lists the runs.")
        if live is not None and record.status == live.status:
            return live  # queued here, not taken yet
        return TrainingRun.restore(record, self.records)

    def runs(self) -> list[TrainingRun]:
        """Every run, oldest first."""
        with self._lock:
            live = dict(self._live)
        found = []
        for record in self.records.runs():
            mine = live.get(record.id)
            found.append(mine if mine is not None and (record.id in self._training or mine.status == record.status)
                         else TrainingRun.restore(record, self.records))
        return found

    def queue_position(self, run: TrainingRun) -> int | None:
        return self.records.queue_position(run.id) if run.status == "queued" else None

    def cancel(self, run_id: str, reason: str | None = None) -> TrainingRun:
        """Cancel a queued run at once, or ask a running one to stop at its next step (wherever it
        trains). A run that has ended is left as it is."""
        run = self.get(run_id)
        if run.status == "queued" and run.end("cancelled", reason or "Cancelled while queued, before it started.",
                                              from_statuses=("queued",)):
            return run
        run = self.get(run_id)  # it may have started meanwhile
        if run.status == "running":
            why = reason or "Cancelled."
            run.cancel_reason = why
            self.records.ask_to_cancel(run_id, why)
            run.cancel_requested.set()  # at once, if it trains here
        return run

    def delete(self, run_id: str) -> None:
        """Forget an ended run: its record, its events and its model (NotFound if there is none)."""
        run = self.get(run_id)
        self.records.delete_run(run_id)
        with self._lock:
            self._live.pop(run_id, None)
        if run.model is not None:
            self._unserve(run.model)

    def begin_shutdown(self) -> None:
        """Refuse new runs and cancel the runs this process trains (their event streams then end).
        Queued runs stay queued for whichever process trains next, unless the queue is this
        process's own: then nobody would, and they are cancelled too."""
        self._closing = True
        pending = list(self._training) + ([] if self.jobs.shared else self.records.queued())
        for run_id in pending:
            self.cancel(run_id, "Cancelled: the server is shutting down.")

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel this process's runs, wait for its training threads, delete the samples folder."""
        self.begin_shutdown()
        self._stop.set()
        if self.train:
            self.jobs.stop(timeout)
        self._keeper.join(timeout)
        shutil.rmtree(self.folder, ignore_errors=True)

    # --- models of finished runs ----------------------------------------------------------------------

    def sync_models(self) -> None:
        """Serve every finished run's model the records hold, and no longer serve deleted ones."""
        if not self.serve_models:
            return
        stored = set(self.records.model_ids())
        for model in sorted(stored - self._served):
            self._serve_stored(model)
        for model in self._served - stored:
            self._unserve(model)

    def serve_stored(self, model: str) -> bool:
        """Serve this finished run's model if its record is there (another process trained it)."""
        if model in self._served:
            return True
        return model in self.records.model_ids() and self._serve_stored(model)

    def _serve_stored(self, model: str) -> bool:
        """Serve a finished run's model from its record: the same weights, so the same answers."""
        stored = self.records.model(model)
        if stored is None:
            return False
        for file, png in stored.samples.items():
            (self.folder / file).parent.mkdir(parents=True, exist_ok=True)
            (self.folder / file).write_bytes(png)
        architecture = stored.card["architecture"]
        module = build(architecture["factory"], architecture.get("kwargs", {}))
        module.load_state_dict(stored.state)
        self.registry.add(from_module(stored.card, module, self.folder))
        self._served.add(model)
        return True

    def _unserve(self, model: str) -> None:
        self.registry.remove(model)
        self._served.discard(model)
        shutil.rmtree(self.folder / model, ignore_errors=True)

    def _forget_old(self) -> None:
        """Keep at most training_max_runs runs: forget the oldest ended ones, and their models."""
        for run_id in self.records.beyond(self.settings.training_max_runs, FINAL):
            record = self.records.run(run_id)
            self.records.delete_run(run_id)
            with self._lock:
                self._live.pop(run_id, None)
            if record is not None and record.model is not None:
                self._unserve(record.model)

    # --- keeping every process's view true ------------------------------------------------------------

    def _keep(self) -> None:
        """Every HEARTBEAT_SECONDS: say this process's runs are alive, fail the runs of dead ones,
        and serve the models other processes finished (and stop serving deleted ones)."""
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self.records.beat(list(self._training), time.time())
                self._reap()
                self.sync_models()
            except Exception:  # a database that is away for a moment: try again next beat
                log.exception("Keeping the training runs' records failed")

    def _reap(self) -> None:
        """End as failed every running run whose process has been silent for STALE_SECONDS."""
        for record in self.records.stale(time.time() - STALE_SECONDS):
            if record.id in self._training:
                continue
            run = TrainingRun.restore(record, self.records)
            run.end("failed", f"The process training this run stopped without finishing it (killed, crashed or "
                    f"restarted), at step {record.step:,} of {run.plan.total_steps:,}. Start it again.",
                    from_statuses=("running",))

    # --- in a training thread of this process ---------------------------------------------------------

    def _train(self, run_id: str) -> None:
        """The queue's task: claim the run and train it here (nothing, if another process took it,
        or it was cancelled or deleted while queued)."""
        now = time.time()
        if self._closing or not self.records.claim(run_id, WORKER, now):
            return
        record = self.records.run(run_id)
        if record is None:
            return
        with self._lock:
            run = self._live.get(run_id)
            if run is None or run.status != "queued":
                run = self._live[run_id] = TrainingRun.restore(record, self.records, live=True)
            self._training.add(run_id)
        run.mark_started(record.started or now)
        run.thread = threading.current_thread()
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
                self._training.discard(run_id)

    def _give_way(self) -> None:
        """Between two steps: release the GIL, and while requests compute, wait for them (at most
        MAX_PAUSE_SECONDS, so that a steady stream of requests slows training but never stops it)."""
        time.sleep(0)
        deadline = time.monotonic() + MAX_PAUSE_SECONDS
        while self.requests_busy() and time.monotonic() < deadline:
            time.sleep(0.001)

    def _cancelled(self, run: TrainingRun) -> Callable[[], bool]:
        """The trainer's question between steps: asked here at once, or in the record (read every
        CANCEL_POLL_SECONDS) by another process."""
        asked_at = [0.0]

        def cancelled() -> bool:
            if run.cancel_requested.is_set():
                return True
            now = time.monotonic()
            if now - asked_at[0] >= CANCEL_POLL_SECONDS:
                asked_at[0] = now
                reason = self.records.cancel_asked(run.id)
                if reason is not None:
                    run.cancel_reason = reason
                    run.cancel_requested.set()
            return run.cancel_requested.is_set()

        return cancelled

    def _execute(self, run: TrainingRun) -> None:
        limit = self.settings.training_max_seconds
        cancelled = self._cancelled(run)
        trainer = Trainer(run.plan, self.catalogue.load(run.plan.settings.dataset), cancelled,
                          deadline=time.monotonic() + limit, pause=self._give_way)
        run.begin(trainer.kernel_layer)
        for report in trainer.run():
            run.record(report)
        test = None if trainer.stopped == "cancelled" else trainer.final_test()
        if test is None:
            run.end("cancelled", f"{run.cancel_reason} Stopped at step {trainer.step:,} of {run.plan.total_steps:,}.",
                    step=trainer.step)
            return
        if cancelled():  # a cancel that came during the test pass still wins
            run.end("cancelled", f"{run.cancel_reason} Stopped after the last step, before serving the model.",
                    step=trainer.step)
            return
        model = export(run.id, trainer, test, run.elapsed, self.folder, self.records)
        if self.serve_models:
            self.registry.add(model)
            self._served.add(model.id)
        reason = None
        if trainer.stopped == "time":
            reason = (f"Stopped at the time limit of {limit:,} s after {trainer.step:,} of "
                      f"{run.plan.total_steps:,} steps; the model is served as it was then.")
        if not run.end("done", reason, model_id(run.id), test, step=trainer.step):
            self._unserve(model.id)  # ended meanwhile elsewhere (its worker taken for dead): no model
        self._forget_old()
