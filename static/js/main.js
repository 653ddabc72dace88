// Boots the page: loads models, wires inputs and keys, and redraws views when the store changes.
// The URL holds model, sample and layer, so a link reproduces the view.

import * as api from './api.js';
import { range } from './draw/heatmap.js';
import { Store } from './state.js';
import * as detail from './views/detail.js';
import * as attribution from './views/attribution.js';
import * as input from './views/input.js';
import * as mode from './views/mode.js';
import * as overview from './views/overview.js';
import * as prediction from './views/prediction.js';

const store = new Store();
const $ = selector => document.querySelector(`[data-view=${selector}]`);

/** Say something is running if it takes longer than ~300 ms; clear when done. */
async function withProgress(sentence, work) {
  const timer = setTimeout(() => store.set({ busy: sentence }), 300);
  try {
    return await work();
  } catch (error) {
    store.set({ error: error.message });
    throw error;
  } finally {
    clearTimeout(timer);
    if (store.busy) store.set({ busy: null });
  }
}

/** [min, max] over a list of tensors. */
function globalRange(tensors) {
  let lo = Infinity, hi = -Infinity;
  for (const t of tensors) {
    const [a, b] = range(t.data);
    lo = Math.min(lo, a);
    hi = Math.max(hi, b);
  }
  return [lo, hi];
}

/** For event handlers: the status line already shows the error's sentence. */
const quietly = work => (...args) => work(...args).catch(() => {});

// A failed run keeps the last good result drawn, marked as the previous image's (input.js), rather
// than clearing it: a wrong file dropped by mistake then costs nothing (the layer you were on, the
// maps you were reading stay), and the network views on the right still show the previous image's
// maps, so the prediction beside them must stay with them to tell one story. `rejected` is the
// source the server refused; the status line names it before the server's sentence.
async function run(source) {
  store.set({ source, error: null, rejected: null });
  let result;
  try {
    result = await withProgress('Running the model…', () => api.forward(store.model.id, source, { summary: store.large }));
  } catch (error) {
    if (store.source === source) store.set({ error: `${input.imageName(source)}: ${error.message}`, rejected: source });
    throw error;
  }
  const wholeRange = result.summaries
    ? [Math.min(...Object.values(result.summaries).map(s => s.min)), Math.max(...Object.values(result.summaries).map(s => s.max))]
    : globalRange(Object.values(result.layers));
  // A new image starts every lesson from its own default pick (set with the result, so the lessons
  // redrawn for it already read the empty picks).
  store.set({ result, resultSource: source, globalRange: wholeRange, picks: {} });
}

/**
 * A large model's forward answer has summaries only: fetch the full outputs the detail view needs
 * (the layer and its inputs) from the run the server keeps, or, once it is no longer kept (404) or
 * the server keeps none, by running forward again for just those layers.
 */
async function ensureLayers(names) {
  const { model, result, resultSource } = store;
  const missing = names.filter(name => name !== 'input' && !(name in result.layers));
  if (!missing.length) return;
  const fetched = await withProgress(`Fetching ${missing.join(', ')}…`, async () => {
    if (result.run) {
      try {
        return Object.fromEntries(await Promise.all(missing.map(async name => [name, await api.layerOf(model.id, result.run, name)])));
      } catch (error) {
        if (error.status !== 404) throw error;
      }
    }
    return (await api.forward(model.id, resultSource, { layers: missing })).layers;
  });
  if (store.result !== result) return;
  // Filled in place and announced as 'fetched': a new `result` object would tell every view (and
  // the picks) that the image changed.
  Object.assign(result.layers, fetched);
  store.set({ fetched: missing });
}

let backwardTicket = 0;  // request bookkeeping, not page state: numbers the backward requests so a late one is dropped

/**
 * In Backward mode, fetch the gradients for the image on show, its target and loss. The gradients
 * on show stay until the new ones arrive; an answer overtaken by a newer request is dropped.
 */
async function runBackward({ layerOnly = false } = {}) {
  if (!store.backward || !store.result) return;
  const ticket = ++backwardTicket;
  const { model, resultSource, target, lossFunction, gradients: before } = store;
  // A large model's gradients come in brief for every layer (the overview) and in full for the
  // current layer; a step then fetches only the new layer's, and keeps the rest.
  const oneLayer = layerOnly && store.large && before?.summaries;
  const layers = store.large ? [store.layer.name] : null;
  const answer = await withProgress('Computing the gradients…',
    () => api.backward(model.id, resultSource, { target, loss: lossFunction, layers, summary: store.large && !oneLayer }));
  if (ticket !== backwardTicket || store.model !== model) return;
  const gradients = oneLayer ? { ...before, layers: { ...before.layers, ...answer.layers } } : answer;
  const gradientRange = gradients.summaries
    ? [Math.min(...Object.values(gradients.summaries).map(s => s.min)), Math.max(...Object.values(gradients.summaries).map(s => s.max))]
    : globalRange([gradients.inputGradient, ...Object.values(gradients.layers).map(g => g.activation)]);
  store.set({ gradients, gradientRange });
}

async function chooseModel(id, { sample, layer, target = null } = {}) {
  const [model, samples, methods] = await withProgress('Loading the model…', () =>
    Promise.all([api.getModel(id), api.listSamples(id), api.listMethods(id)]));
  const cursor = Math.max(0, model.layers.findIndex(l => l.name === layer));
  store.set({ model, samples, methods, cursor, result: null, gradients: null, attribution: null, target,
              fold: model.layers.length > 24, expanded: new Set(), filter: '', allChannels: new Set(), picks: {} });
  const first = samples.find(s => s.id === sample) ?? samples[0];
  if (first) await run({ sample: first.id, url: first.url, label: first.label_name });
}

let attributionTicket = 0;  // request bookkeeping, not page state: as backwardTicket

/** The attribution map for the image on show, by the chosen method and options. */
async function runAttribution() {
  if (!store.result || !store.methods.length) return;
  const ticket = ++attributionTicket;
  const { model, resultSource, attributionMethod, attributionOptions, target } = store;
  store.set({ attributionBusy: true });
  try {
    const found = await withProgress('Computing the attribution map…',
      () => api.attribute(model.id, resultSource, attributionMethod, target, attributionOptions));
    if (ticket === attributionTicket && store.model === model) store.set({ attribution: found });
  } catch (error) {
    if (ticket === attributionTicket) store.set({ attribution: null });
    throw error;
  } finally {
    if (ticket === attributionTicket) store.set({ attributionBusy: false });
  }
}

function syncUrl() {
  const params = new URLSearchParams();
  if (store.model) params.set('model', store.model.id);
  if (store.source?.sample) params.set('sample', store.source.sample);
  if (store.layer) params.set('layer', store.layer.name);
  if (store.backward) {
    params.set('mode', 'backward');
    if (store.target !== null) params.set('target', store.target);
    if (store.lossFunction !== 'cross_entropy') params.set('loss', store.lossFunction);
  }
  history.replaceState(null, '', `?${params}`);
}

function renderStatus() {
  const status = $('status');
  status.textContent = store.error ?? store.busy ?? '';
  status.className = store.error ? 'status error' : store.busy ? 'status busy' : 'status';
}

function renderNav() {
  const layer = store.layer;
  $('position').textContent = layer
    ? `${store.cursor + 1} / ${store.layers.length}: ${layer.name} (${layer.type})` : '';
  document.querySelector('[data-action=prev]').disabled = store.cursor === 0;
  document.querySelector('[data-action=next]').disabled = store.cursor >= store.layers.length - 1;
}

store.addEventListener('change', ({ detail: changed }) => {
  const has = (...keys) => keys.some(k => changed.includes(k));
  if (has('busy', 'error')) renderStatus();
  if (has('samples', 'source')) input.renderSamples($('samples'), store, quietly(run));
  if (has('result', 'source', 'rejected')) input.renderInputs($('original'), $('prepared'), store);
  if (has('result', 'allClasses')) prediction.render($('prediction'), store);
  if (has('result', 'rejected')) input.markPrevious($('prediction'), store);
  if (has('model', 'result', 'mode', 'target', 'lossFunction', 'gradients')) mode.render($('mode'), store);
  if (has('result', 'mode', 'target', 'lossFunction')) quietly(runBackward)();
  else if (store.large && has('cursor') && !store.gradients?.layers[store.layer.name]) quietly(runBackward)({ layerOnly: true });
  if (store.large && store.result && !store.backward && has('result', 'cursor', 'mode')) {
    quietly(ensureLayers)([store.layer.name, ...store.layer.inputs]);
  }
  if (has('result', 'attributionMethod', 'attributionOptions', 'target')) quietly(runAttribution)();
  if (has('model', 'methods', 'result', 'attribution', 'attributionMethod', 'attributionOptions', 'target', 'attributionBusy')) {
    attribution.render($('attribution'), store);
  } else if (has('attributionView')) attribution.renderView($('attribution'), store);
  if (has('result', 'cursor', 'scale', 'mode', 'gradients', 'fold', 'filter', 'expanded')) {
    overview.render($('overview'), store);
    overview.renderTools($('overview-tools'), store);
  }
  if (has('fetched')) detail.render($('detail'), store).catch(error => store.set({ error: error.message }));
  if (has('result', 'cursor', 'scale', 'mode', 'gradients')) {
    detail.render($('detail'), store).catch(error => store.set({ error: error.message }));
    renderNav();
  }
  if (has('model', 'source', 'cursor', 'mode', 'target', 'lossFunction')) syncUrl();
});

document.addEventListener('keydown', event => {
  if (event.target.closest('input, select, textarea')) return;
  if (event.key === 'ArrowRight') { store.step(1); event.preventDefault(); }
  if (event.key === 'ArrowLeft') { store.step(-1); event.preventDefault(); }
});
document.querySelector('[data-action=prev]').addEventListener('click', () => store.step(-1));
document.querySelector('[data-action=next]').addEventListener('click', () => store.step(1));

async function boot() {
  const params = new URLSearchParams(location.search);
  const [models, optimizers, layerTypes] = await Promise.all([api.listModels(), api.listOptimizers(), api.listLayerTypes()]);
  store.set({ models, optimizers, layerTypes });
  const select = document.querySelector('[data-control=model]');
  for (const m of store.models) select.append(new Option(m.name, m.id));
  const wanted = store.models.find(m => m.id === params.get('model')) ?? store.models[0];
  if (params.get('mode') === 'backward') {
    store.set({ mode: 'backward', lossFunction: params.get('loss') ?? 'cross_entropy' });
  }
  const target = params.get('target') === null ? null : Number(params.get('target'));
  select.value = wanted.id;
  select.addEventListener('change', quietly(() => chooseModel(select.value)));
  input.wireUploads(document, quietly(run));
  input.wirePad($('pad'), document.querySelector('[data-action=clear-pad]'), quietly(run));
  await chooseModel(wanted.id, { sample: params.get('sample'), layer: params.get('layer'), target });
  document.body.dataset.ready = '';
}

boot().catch(error => store.set({ error: error.message }));
