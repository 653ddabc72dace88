// One run as the page knows it: the server's summary, kept current by the run's events, and the
// series the curves are drawn from (exactly the values the events carry; nothing recomputed).

export const FINAL = ['done', 'cancelled', 'failed'];

export class RunRecord {
  constructor(summary) {
    this.summary = summary;  // RunSummary, as GET /api/training/runs/{id} serves it
    this.steps = [];         // step events: {step, epoch, loss, accuracy}
    this.epochs = [];        // tests: each epoch event {epoch, step, train_loss, train_accuracy, test_loss,
                             // test_accuracy}, and the end event's when it tested after a partial epoch (epoch null)
    this.snapshots = [];     // first-layer kernels: {step, kernels: {shape, data}}
    this.start = null;       // the start event
    this.end = null;         // the end event
    this.lastSeq = -1;       // the last event taken in
    this.receivedAt = performance.now();  // when `summary.elapsed` / `eta` were last current
    this.addedAt = -Infinity;  // when this page started the run (performance.now()), if it did
  }

  get id() { return this.summary.id; }
  get status() { return this.summary.status; }
  get settings() { return this.summary.settings; }
  get final() { return FINAL.includes(this.summary.status); }
  /** Whether every event of the run is here (its end event, or none to come). */
  get complete() { return this.end !== null; }

  /** Take in one event (in order; ones already seen are ignored). Returns whether it was new. */
  ingest(event) {
    if (event.seq <= this.lastSeq) return false;
    this.lastSeq = event.seq;
    const s = this.summary;
    if (event.type === 'start') {
      this.start = event;
      Object.assign(s, { status: 'running', queue_position: null, total_steps: event.total_steps,
        steps_per_epoch: event.steps_per_epoch, elapsed: event.elapsed });
    } else if (event.type === 'step') {
      this.steps.push({ step: event.step, epoch: event.epoch, loss: event.loss, accuracy: event.accuracy });
      Object.assign(s, { status: 'running', step: event.step, epoch: event.epoch, progress: event.progress,
        elapsed: event.elapsed, eta: event.eta, loss: event.loss, accuracy: event.accuracy });
    } else if (event.type === 'epoch') {
      this.epochs.push({ epoch: event.epoch, step: event.step, train_loss: event.train_loss,
        train_accuracy: event.train_accuracy, test_loss: event.test_loss, test_accuracy: event.test_accuracy });
      Object.assign(s, { step: event.step, elapsed: event.elapsed, eta: event.eta,
        test_loss: event.test_loss, test_accuracy: event.test_accuracy });
    } else if (event.type === 'end') {
      this.end = event;
      Object.assign(s, { status: event.status, reason: event.reason, step: event.step, elapsed: event.elapsed,
        eta: null, model: event.model });
      if (event.test_loss !== null) {
        Object.assign(s, { test_loss: event.test_loss, test_accuracy: event.test_accuracy });
        // The final weights' test, when the last step did not end an epoch (a run of `steps`).
        if (this.epochs.at(-1)?.step !== event.step) {
          this.epochs.push({ epoch: null, step: event.step, test_loss: event.test_loss, test_accuracy: event.test_accuracy });
        }
      }
    }
    if (event.kernels) {
      const last = this.snapshots.at(-1);
      if (last && last.step === event.step) last.kernels = event.kernels;  // a step's and its epoch's
      else this.snapshots.push({ step: event.step, kernels: event.kernels });
    }
    this.receivedAt = performance.now();
    return true;
  }

  /** Take a fresh summary from the server (its numbers win: they are what GET serves). */
  refresh(summary) {
    this.summary = summary;
    this.receivedAt = performance.now();
  }
}
