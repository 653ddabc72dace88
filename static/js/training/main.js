// Boots the training lab: builds the form from the server's options, lists the runs, follows the
// ones on show, and redraws the views (at most once a frame) when the store changes. The URL holds
// the run on show and the compared runs, so a reload or a link comes back to the same view.

import * as api from './api.js';
import * as compare from './compare.js';
import { Follower } from './follow.js';
import * as form from './form.js';
import * as live from './live.js';
import * as runsView from './runs.js';
import { LabStore } from './store.js';

const store = new LabStore();
const $ = name => document.querySelector(`[data-view=${name}]`);
const formNode = $('form');
const liveNode = $('live');
const compareNode = document.querySelector('.lab-compare');

/** Say something is running if it takes longer than ~300 ms; clear when done. Errors go to the caller. */
async function withProgress(sentence, work) {
  const timer = setTimeout(() => store.set({ busy: sentence }), 300);
  try {
    return await work();
  } finally {
    clearTimeout(timer);
    if (store.busy === sentence) store.set({ busy: null });
  }
}

const follower = new Follower(store, withProgress);

async function start(settings) {
  if (store.starting) return;
  store.set({ starting: true, formError: null });
  try {
    const summary = await withProgress('Starting the run…', () => api.startRun(settings));
    follower.add(summary);
    store.set({ watched: summary.id, snapshot: null });
    reveal(liveNode);
  } catch (error) {
    store.set({ formError: error.status ? form.formErrorOf(error)
      : { detail: `Could not start the run: ${error.message}`, fields: {} } });
  } finally {
    store.set({ starting: false });
  }
}

async function cancel(id) {
  store.markCancelling(id, true);
  try {
    const summary = await withProgress(`Cancelling run ${id}…`, () => api.cancelRun(id));
    const run = store.runs.get(id);
    if (run && !run.complete) run.refresh(summary);
  } catch (error) {
    store.set({ error: `Could not cancel run ${id}: ${error.message}` });
  } finally {
    store.markCancelling(id, false);
    follower.sync();
  }
}

const actions = {
  compare: (id, on) => store.compare(id, on),
  show: id => {
    store.set({ watched: id, snapshot: null });
    reveal(liveNode);
  },
};

/** Bring a panel into view if it is not (on narrow screens the form comes first, the run below it). */
function reveal(node) {
  const calm = matchMedia('(prefers-reduced-motion: reduce)').matches;
  requestAnimationFrame(() => node.scrollIntoView({ block: 'nearest', behavior: calm ? 'auto' : 'smooth' }));
}

function syncUrl() {
  const params = new URLSearchParams();
  if (store.watched) params.set('run', store.watched);
  if (store.compared.size) params.set('compare', [...store.compared].join(','));
  const query = params.toString();
  history.replaceState(null, '', query ? `?${query}` : location.pathname);
}

function renderStatus() {
  const status = $('status');
  status.textContent = store.error ?? store.busy ?? '';
  status.className = `status lab-status${store.error ? ' error' : store.busy ? ' busy' : ''}`;
}

// Redraw once per frame however many events came in it (a fast run sends hundreds a second).
// Render scheduling, not page state: the store keys changed since the last frame, and that frame.
const dirty = new Set();
let frame = 0;
function render() {
  frame = 0;
  const has = (...keys) => keys.some(k => dirty.has(k));
  if (has('busy', 'error')) renderStatus();
  if (has('formError', 'starting')) form.render(formNode, $('form-error'), store);
  if (has('runs', 'watched', 'snapshot', 'cancelling', 'size', 'options')) live.render(liveNode, store);
  if (has('runs', 'watched', 'compared', 'options')) {
    runsView.render($('runs'), $('runs-empty'), store, compare.colours(store), actions);
  }
  if (has('runs', 'compared', 'metric', 'axis', 'size', 'options')) compare.render(compareNode, store);
  if (has('watched', 'compared')) {
    syncUrl();
    follower.sync();
  }
  dirty.clear();
}
store.addEventListener('change', ({ detail }) => {
  for (const key of detail) dirty.add(key);
  if (!frame) frame = requestAnimationFrame(render);
});
const redraw = key => store.dispatchEvent(new CustomEvent('change', { detail: [key] }));

function wire() {
  document.querySelector('[data-action=cancel]').addEventListener('click', () => {
    if (store.watched) cancel(store.watched);
  });
  document.querySelector('[data-action=reuse]').addEventListener('click', () => {
    const run = store.watchedRun;
    if (!run) return;
    form.fill(formNode, run.settings);
    formNode.querySelector('[data-action=start]').focus();
  });
  const slider = document.querySelector('[data-control=snapshot]');
  slider.addEventListener('input', () => {
    const index = Number(slider.value);
    store.set({ snapshot: index >= Number(slider.max) ? null : index });
  });
  for (const name of ['metric', 'axis']) {
    const select = document.querySelector(`[data-control=${name}]`);
    select.value = store[name];
    select.addEventListener('change', () => store.set({ [name]: select.value }));
  }
  window.addEventListener('resize', () => redraw('size'));
  // Elapsed and remaining time move on between events.
  setInterval(() => {
    const run = store.watchedRun;
    if (run?.status === 'running') live.tick(liveNode, run);
  }, 1000);
}

async function boot() {
  wire();
  const params = new URLSearchParams(location.search);
  const [options, list] = await withProgress('Loading the training lab…',
    () => Promise.all([api.getOptions(), api.listRuns()]));
  form.build(formNode, options, start);
  store.set({ options });
  follower.merge(list);
  const runs = [...store.runs.values()];
  const wanted = params.get('run');
  const watched = store.runs.has(wanted) ? wanted : (runs.findLast(r => !r.final) ?? runs.at(-1))?.id ?? null;
  const compared = new Set((params.get('compare') ?? '').split(',').filter(id => store.runs.has(id)));
  store.set({ watched, compared });
  document.body.dataset.ready = '';
}

boot().catch(error => store.set({ error: `The training lab could not start: ${error.message}` }));
