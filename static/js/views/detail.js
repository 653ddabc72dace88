// The current layer, large: every channel with a legend, the value under the pointer, the layer's
// parameters, and the teaching view for its type.

import { backwardUrl, forwardUrl, weightsOf } from '../api.js';
import { SIZES, legendGradient } from '../draw/colors.js';
import { drawMap, mapCanvas, maps, scaleFor } from '../draw/heatmap.js';
import { sig } from '../draw/dom.js';
import { viewFor } from './kinds.js';
import * as weights from './weights.js';

function header(store, layer, tensor) {
  const head = document.createElement('header');
  const title = document.createElement('h2');
  title.textContent = store.backward ? `∂loss / ∂${layer.name} ` : `${layer.name} `;
  const type = document.createElement('span');
  type.className = 'type';
  type.textContent = store.backward
    ? `${layer.type} · ${tensor.shape.join('×')} · the loss's gradient for each value of its output`
    : `${layer.type} · ${tensor.shape.join('×')} · from ${layer.inputs.join(', ')}`;
  title.append(type);
  const tools = document.createElement('div');
  tools.className = 'tools';
  const api = document.createElement('a');
  const url = store.backward ? backwardUrl(store.model.id) : forwardUrl(store.model.id);
  api.href = `${url}&layers=${encodeURIComponent(layer.name)}`;
  api.textContent = 'API call';
  api.title = 'POST this URL with the image to get exactly these values';
  const download = document.createElement('button');
  download.type = 'button';
  download.textContent = 'Download PNG';
  download.dataset.action = 'download';
  download.addEventListener('click', () => downloadMaps(head.parentElement, layer.name));
  tools.append(api, download);
  head.append(title, tools);
  return head;
}

/** All channel canvases of the panel, tiled into one PNG. */
function downloadMaps(panel, name) {
  const canvases = [...panel.querySelectorAll('.channels canvas')];
  if (!canvases.length) return;
  const cols = Math.ceil(Math.sqrt(canvases.length));
  const { width, height } = canvases[0];
  const zoom = Math.max(1, Math.floor(112 / Math.max(width, height)));
  const sheet = document.createElement('canvas');
  sheet.width = cols * (width * zoom + 2);
  sheet.height = Math.ceil(canvases.length / cols) * (height * zoom + 2);
  const ctx = sheet.getContext('2d');
  ctx.imageSmoothingEnabled = false;
  canvases.forEach((c, i) => ctx.drawImage(c, (i % cols) * (width * zoom + 2), Math.floor(i / cols) * (height * zoom + 2), width * zoom, height * zoom));
  const link = document.createElement('a');
  link.download = `${name}.png`;
  link.href = sheet.toDataURL('image/png');
  link.click();
}

function legend(lo, hi, mode) {
  const box = document.createElement('div');
  box.className = 'legend';
  const bar = document.createElement('span');
  bar.className = 'ramp';
  bar.style.background = legendGradient(lo, hi);
  const a = document.createElement('span');
  a.textContent = sig(lo, 3);
  const b = document.createElement('span');
  b.textContent = sig(hi, 3);
  box.append(a, bar, b);
  if (mode === 'channel') box.title = 'Each channel uses its own range; this is the range of the whole layer.';
  return box;
}

/**
 * The channel canvases of the layer, one per map, each reading its value under the pointer from
 * `drawn.tensor` (so a repaint for a new result needs no new listeners). A lesson may ask to hear
 * of clicks on them (linkChannels).
 */
const FIRST_CHANNELS = 64;  // a layer with more shows these first, and the rest on request

function channels(layer, tensor, readout, store) {
  const grid = document.createElement('div');
  grid.className = 'channels';
  const { count, h, w } = maps(tensor);
  const strip = tensor.shape.length === 1;
  const add = c => {
    const canvas = mapCanvas(`${layer.name} channel ${c + 1}`);
    canvas.dataset.channel = c;
    canvas.style.width = strip ? '24px' : `${SIZES.detailCell}px`;
    if (strip) canvas.style.height = `${Math.min(6 * w, 480)}px`;
    const at = event => {
      const r = canvas.getBoundingClientRect();
      const y = Math.min(canvas.height - 1, Math.floor((event.clientY - r.top) / r.height * canvas.height));
      const x = Math.min(canvas.width - 1, Math.floor((event.clientX - r.left) / r.width * canvas.width));
      return { y, x };
    };
    canvas.addEventListener('pointermove', event => {
      const { y, x } = at(event);
      const index = strip ? y : c * h * w + y * w + x;
      const where = strip ? `[${y}]` : `channel ${c}, row ${y}, column ${x}`;
      readout.textContent = `${where}: ${drawn.tensor.data[index].toPrecision(5)}`;
    });
    canvas.addEventListener('click', event => {
      const { y, x } = at(event);
      drawn.onPick?.(c, y, x);
    });
    grid.append(canvas);
  };
  const all = store.allChannels.has(layer.name);
  for (let c = 0; c < (all ? count : Math.min(count, FIRST_CHANNELS)); c++) add(c);
  if (count > FIRST_CHANNELS && !all) {
    const more = document.createElement('button');
    more.type = 'button';
    more.className = 'more-channels';
    more.dataset.action = 'all-channels';
    more.textContent = `Show all ${count} channels`;
    more.addEventListener('click', () => {
      store.set({ allChannels: new Set([...store.allChannels, layer.name]) });
      more.remove();
      for (let c = FIRST_CHANNELS; c < count; c++) add(c);
      paintChannels(grid, store, drawn.tensor);
      if (drawn.onPick) grid.querySelectorAll('canvas').forEach(canvas => canvas.classList.add('pickable'));
    });
    grid.append(more);
  }
  return grid;
}

/** Draw every channel of `tensor` into the grid's canvases under the store's colour scale. */
function paintChannels(grid, store, tensor) {
  const { h, w } = maps(tensor);
  const strip = tensor.shape.length === 1;
  grid.querySelectorAll('canvas').forEach((canvas, c) => {
    const [lo, hi] = scaleFor(store.scale, tensor, c, store.shownRange, store.backward);
    drawMap(canvas, tensor.data, c * h * w, strip ? w : h, strip ? 1 : w, lo, hi);
  });
}

function scaleChooser(store) {
  const label = document.createElement('label');
  label.textContent = 'Colour scale ';
  const select = document.createElement('select');
  select.dataset.control = 'scale';
  for (const [value, text] of [['channel', 'per channel'], ['layer', 'per layer'], ['global', 'whole network']]) {
    const option = new Option(text, value, false, store.scale === value);
    select.append(option);
  }
  select.addEventListener('change', () => store.set({ scale: select.value }));
  label.append(select);
  return label;
}

function legendFor(store, tensor) {
  const [lo, hi] = scaleFor(store.scale === 'global' ? 'global' : 'layer', tensor, 0, store.shownRange, store.backward);
  return legend(lo, hi, store.scale);
}

// A DOM cache, no choice of the person's (those are in the store): what the panel has drawn,
// {container, model, layer, mode, tensor, scale, range, grid, controls, params, grads, lesson, onPick}.
// Another layer, model or mode rebuilds the panel; a new result or colour scale only repaints the
// channels and redoes the lesson (which reads its picks from the store), and for new values the
// weight gradients; the parameters stay as drawn.
let drawn = null;

/** The skeleton for the store's layer: header, controls, channels, parameters, an empty lesson. */
function build(container, store, layer, tensor) {
  container.replaceChildren();
  container.dataset.layer = layer.name;
  container.dataset.type = layer.type;
  container.dataset.mode = store.mode;
  const readout = document.createElement('output');
  readout.className = 'readout';
  readout.textContent = 'Point at a map to read its values.';
  const controls = document.createElement('div');
  controls.className = 'controls';
  controls.append(scaleChooser(store), legendFor(store, tensor), readout);
  const body = document.createElement('div');
  body.className = 'detail-body';
  const params = document.createElement('section');
  params.className = 'params';
  const grads = document.createElement('section');
  grads.className = 'params grads';
  const lesson = document.createElement('section');
  lesson.className = 'lesson';
  const grid = channels(layer, tensor, readout, store);
  body.append(grid, params, grads);
  container.append(header(store, layer, tensor), controls, body, lesson);
  drawn = { container, model: store.model, layer, mode: store.mode, tensor: null, scale: null, range: null,
            grid, controls, grads, lesson, onPick: null, params: weights.render(params, store, layer) };
}

/**
 * The teaching view for the layer (forward), or what its gradient means and one optimizer step
 * (backward), drawn into a fresh section so a slower earlier one can't land.
 */
async function renderLesson(store, layer, tensor) {
  const lesson = document.createElement('section');
  lesson.className = 'lesson';
  // The new lesson keeps the old one's height until drawn, so the page does not jump under the reader.
  lesson.style.minHeight = `${drawn.lesson.offsetHeight}px`;
  drawn.lesson.replaceWith(lesson);
  drawn.lesson = lesson;
  drawn.onPick = null;
  drawn.grid.querySelectorAll('canvas').forEach(c => c.classList.remove('pickable'));
  const panel = drawn;
  try {
    const [view] = await Promise.all([store.backward ? backwardView() : viewFor(store.layerTypes[layer.type]), panel.params]);
    if (!view || panel.lesson !== lesson) return;
    const linkChannels = pick => {
      panel.onPick = pick;
      panel.grid.querySelectorAll('canvas').forEach(c => c.classList.add('pickable'));
    };
    await view.render(lesson, { store, layer, tensor, input: store.tensor(layer.inputs[0]), weightsOf, linkChannels });
  } finally {
    lesson.style.minHeight = '';
  }
}

const backwardView = () => import('./backward.js');

export async function render(container, store) {
  const layer = store.layer;
  const tensor = layer && store.shown(layer.name);
  if (!tensor) {
    container.replaceChildren();
    drawn = null;
    if (layer && store.result && store.large) {  // main.js is fetching it (or its gradient)
      const wait = document.createElement('p');
      wait.className = 'hint';
      wait.dataset.waiting = layer.name;
      wait.textContent = `Fetching ${layer.name}…`;
      container.append(wait);
    }
    return;
  }
  const same = drawn && drawn.container === container && drawn.model === store.model && drawn.layer === layer
    && drawn.mode === store.mode && drawn.tensor?.shape.join('×') === tensor.shape.join('×')
    && container.contains(drawn.grid);
  if (!same) build(container, store, layer, tensor);
  const newValues = drawn.tensor !== tensor;
  const rescaled = drawn.scale !== store.scale || drawn.range !== store.shownRange;
  if (newValues || rescaled) {
    paintChannels(drawn.grid, store, tensor);
    drawn.controls.querySelector('.legend').replaceWith(legendFor(store, tensor));
    Object.assign(drawn, { tensor, scale: store.scale, range: store.shownRange });
  }
  if (newValues) weights.renderGradients(drawn.grads, store, layer);
  // The forward lessons colour their maps by the scale too; the backward one does not (and would ask
  // the server for its optimizer step again).
  if (newValues || (rescaled && !store.backward)) await renderLesson(store, layer, tensor);
}
