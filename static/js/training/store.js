// The training lab's one store. Views listen for its `change` events and redraw; nobody else holds
// page state. Runs are RunRecords (record.js), by id, in the order the server lists them.

export class LabStore extends EventTarget {
  constructor() {
    super();
    this.options = null;        // GET /api/training/options
    this.runs = new Map();      // id -> RunRecord, oldest first
    this.watched = null;        // id of the run shown in the live panel
    this.compared = new Set();  // ids of the runs overlaid in the compare chart
    this.snapshot = null;       // kernel snapshot on show (index), or null: the latest, following the run
    this.cancelling = new Set();  // ids of runs whose DELETE is on its way
    this.metric = 'loss';       // compare chart: 'loss' | 'accuracy' | 'test_loss' | 'test_accuracy'
    this.axis = 'step';         // compare chart's x axis: 'step' | 'epoch'
    this.starting = false;      // a POST of the form is on its way
    this.formError = null;      // {detail, fields: {name: sentence}} from a refused start, or null
    this.busy = null;           // a sentence while something slow runs
    this.error = null;          // the last error's sentence
  }

  /** Change some fields and announce which. */
  set(changes) {
    Object.assign(this, changes);
    this.dispatchEvent(new CustomEvent('change', { detail: Object.keys(changes) }));
  }

  /** Announce that runs changed (events arrived, a summary was refreshed, a run came or went). */
  touch() {
    this.dispatchEvent(new CustomEvent('change', { detail: ['runs'] }));
  }

  get watchedRun() { return this.runs.get(this.watched) ?? null; }

  /** The compared runs, in list order. */
  get comparedRuns() { return [...this.runs.values()].filter(r => this.compared.has(r.id)); }

  /** Add a run (a RunRecord) the page has just started, at the end of the list. */
  addRun(run) {
    this.set({ runs: new Map(this.runs).set(run.id, run) });
  }

  /** Mark a run as being cancelled (its DELETE on its way), or no longer. */
  markCancelling(id, on) {
    const cancelling = new Set(this.cancelling);
    if (on) cancelling.add(id);
    else cancelling.delete(id);
    this.set({ cancelling });
  }

  /** Tick or untick a run for the compare chart. */
  compare(id, on) {
    const compared = new Set(this.compared);
    if (on) compared.add(id);
    else compared.delete(id);
    this.set({ compared });
  }
}
