// Keeps the runs the page shows current: an EventSource for each watched or compared run while it
// trains (and for the watched run while it waits in the queue), one GET of the history for a run
// that has ended, and a look at the list every 2 s while any run is queued or running, every 15 s
// otherwise (queue positions, runs started elsewhere, runs the server has forgotten).

import * as api from './api.js';
import { RunRecord } from './record.js';

const POLL_MS = 2000;   // while a run is queued or running
const IDLE_MS = 15000;  // otherwise: runs started elsewhere (scripts, other pages) still show up

export class Follower {
  constructor(store, withProgress) {
    this.store = store;
    this.withProgress = withProgress;
    // Connection bookkeeping, not page state (what the page shows is the store's):
    this.streams = new Map();  // run id -> EventSource (api.followRun)
    this.loading = new Set();  // run ids whose history is being fetched
    this.timer = 0;
    this.timerActive = false;
    this.failed = false;       // the last look at the list failed (its error is on show)
  }

  /**
   * Replace the runs with the server's list, keeping what the page already has of each, and the
   * runs this page started after the list was asked for (`asked`, a performance.now() time).
   */
  merge(summaries, asked = Infinity) {
    const { store } = this;
    const runs = new Map();
    for (const summary of summaries) {
      const known = store.runs.get(summary.id);
      if (!known) runs.set(summary.id, new RunRecord(summary));
      else {
        // A streamed run's events are newer than a listing; take only what events do not carry.
        if (this.streams.has(summary.id)) known.summary.queue_position = summary.queue_position;
        else if (!known.complete || known.status !== summary.status) known.refresh(summary);
        runs.set(summary.id, known);
      }
    }
    for (const [id, run] of store.runs) if (!runs.has(id) && run.addedAt > asked) runs.set(id, run);
    const changes = { runs };
    if ([...store.compared].some(id => !runs.has(id))) changes.compared = new Set([...store.compared].filter(id => runs.has(id)));
    if (store.watched && !runs.has(store.watched)) changes.watched = null;
    store.set(changes);
  }

  /** Add a run the page has just started. */
  add(summary) {
    if (this.store.runs.has(summary.id)) return;
    const run = new RunRecord(summary);
    run.addedAt = performance.now();
    this.store.addRun(run);
  }

  /** Open and close streams, and fetch histories, for what the page now shows. */
  sync() {
    const { store } = this;
    for (const [id, source] of this.streams) {
      if (!store.runs.has(id) || !(id === store.watched || store.compared.has(id))) this.close(id, source);
    }
    for (const run of store.runs.values()) {
      const wanted = run.id === store.watched || store.compared.has(run.id);
      if (!wanted || run.complete || this.streams.has(run.id) || this.loading.has(run.id)) continue;
      if (run.status === 'running' || (run.status === 'queued' && run.id === store.watched)) this.open(run);
      else if (run.final) this.load(run);
    }
    this.schedulePoll();
  }

  open(run) {
    const take = event => {
      if (run.ingest(event)) this.store.touch();
    };
    const source = api.followRun(run.summary, run.lastSeq, {
      onEvent: take,
      onEnd: event => {
        take(event);
        this.close(run.id, source);  // before the server closes the stream, so it does not reconnect
        this.load(run);               // the final summary: the numbers GET serves
      },
      onLost: () => {  // the run is gone or has nothing more to send: the list says which
        this.close(run.id, source);
        this.poll();
      },
    });
    this.streams.set(run.id, source);
  }

  close(id, source) {
    source.close();
    if (this.streams.get(id) === source) this.streams.delete(id);
  }

  /** Fetch a run's summary and any events the page has not seen. */
  async load(run) {
    this.loading.add(run.id);
    try {
      const detail = await this.withProgress(`Loading run ${run.id}…`, () => api.getRun(run.id));
      for (const event of detail.history) run.ingest(event);
      delete detail.history;
      run.refresh(detail);
      this.store.touch();
    } catch (error) {
      if (error.status === 404) this.poll();
    } finally {
      this.loading.delete(run.id);
    }
  }

  schedulePoll() {
    const active = [...this.store.runs.values()].some(r => !r.final);
    if (this.timer && (this.timerActive || !active)) return;  // a look as soon or sooner is due
    clearTimeout(this.timer);
    this.timerActive = active;
    this.timer = setTimeout(() => this.poll(), active ? POLL_MS : IDLE_MS);
  }

  async poll() {
    clearTimeout(this.timer);
    this.timer = 0;
    const asked = performance.now();
    try {
      this.merge(await api.listRuns(), asked);
      if (this.failed) this.store.set({ error: null });
      this.failed = false;
    } catch (error) {
      this.failed = true;
      this.store.set({ error: `Could not list the runs: ${error.message}` });
    }
    this.sync();
  }
}
