// The flatten, linear and softmax lessons: how maps unroll into one vector, which weights drive a
// unit (each w·x, their sum + bias = the served value), and logits → exp → probabilities.

import { barStrip, chartCanvas } from '../draw/chart.js';
import { cellAt, el, num } from '../draw/dom.js';
import { drawMap, mapCanvas, range } from '../draw/heatmap.js';

const TOP = 6;  // contributions listed each way

const short = v => (v !== 0 && Math.abs(v) < 1e-3 ? v.toExponential(2).replace('-', '−') : num(v, 4));

/** Where flat index i came from in maps of shape [C, H, W]. */
function origin(i, [, h, w]) {
  return { c: Math.floor(i / (h * w)), y: Math.floor(i / w) % h, x: i % w };
}

/** The [C, H, W] shape that was flattened into this linear layer's input, or null. */
function flattenedFrom(store, layer) {
  const source = store.layers.find(l => l.name === layer.inputs[0]);
  if (source?.type !== 'flatten') return null;
  const shape = store.tensor(source.inputs[0])?.shape;
  return shape?.length === 3 ? shape : null;
}

/** A marker box over a canvas, placed on cell (y, x) of an h×w grid by percentages. */
function placeMarker(marker, parent, y, x, h, w) {
  Object.assign(marker.style, { top: `${100 * y / h}%`, left: `${100 * x / w}%`, width: `${100 / w}%`, height: `${100 / h}%` });
  if (marker.parentElement !== parent) parent.append(marker);
}

/** One small canvas per channel of maps [C, H, W] held in data; hover calls onCell(c, y, x). */
function mapGrid(data, [c, h, w], lo, hi, label, onCell) {
  const grid = el('div', { className: 'dense-maps' });
  for (let k = 0; k < c; k++) {
    const canvas = mapCanvas(`${label}, channel ${k}`);
    drawMap(canvas, data, k * h * w, h, w, lo, hi);
    if (onCell) canvas.addEventListener('pointermove', event => onCell(k, ...cellAt(canvas, event)));
    grid.append(el('figure', {}, el('div', { className: 'dense-cell' }, canvas), el('figcaption', {}, `c${k}`)));
  }
  return grid;
}

/** Ticks under a flat strip of `parts` equal parts, labelled at most about 16 times. */
function ticks(parts, label) {
  const box = el('div', { className: 'dense-ticks', 'aria-hidden': 'true' });
  const every = Math.ceil(parts / 16);
  // Past 64 parts (512 channels of a global pool) a line for each would fill the strip with ink.
  for (let k = 0; k < parts; k++) {
    if (parts > 64 && k % every) continue;
    box.append(el('span', { style: { left: `${100 * k / parts}%` } }, k % every ? '' : label(k)));
  }
  return box;
}

const channelTicks = ([c, h, w]) => ticks(c, k => `c${k}\n${k * h * w}`);  // channel, first index

/** One channel's stretch of the flat vector, large, with its rows marked; zoomTo(k) picks it. */
function channelZoom(layer, tensor, [, h, w], lo, hi) {
  const canvas = mapCanvas(`${layer.name}: one channel's stretch of the vector`);
  canvas.style.width = `${Math.min(16 * h * w, 880)}px`;
  const strip = el('div', { className: 'dense-cell dense-zoom' }, canvas);
  const title = el('p', { className: 'hint' });
  const zoom = { canvas, strip, title, channel: -1, marker: el('div', { className: 'dense-marker' }) };
  zoom.box = el('div', { className: 'dense-vector-box', style: { maxWidth: canvas.style.width } }, strip, ticks(h, y => `row ${y}`));
  zoom.zoomTo = k => {
    zoom.channel = k;
    drawMap(canvas, tensor.data, k * h * w, 1, h * w, lo, hi);
    title.textContent = `Channel ${k} up close: its ${h} rows of ${w}, one after another, are indices ${k * h * w} … ${(k + 1) * h * w - 1}`;
  };
  return zoom;
}

function flatten(container, { layer, tensor, input }) {
  container.append(el('h3', {}, 'How Flatten unrolls the maps'));
  if (!input || input.shape.length !== 3) {
    container.append(el('p', {}, `Flatten turns its input of shape ${input?.shape.join('×')} into one vector of ${tensor.data.length} numbers.`));
    return;
  }
  const [c, h, w] = input.shape;
  const n = tensor.data.length;
  const [lo, hi] = range(input.data);  // maps and vector share one colour range
  const readout = el('output', { className: 'readout', dataset: { flattenReadout: '' } }, 'Point at a map or at the vector.');
  const markers = { map: el('div', { className: 'dense-marker' }), vector: el('div', { className: 'dense-marker' }) };
  const vector = mapCanvas(`${layer.name}: the flat vector of ${n} values`);
  vector.dataset.flattenVector = n;
  drawMap(vector, tensor.data, 0, 1, n, lo, hi);
  const strip = el('div', { className: 'dense-cell dense-vector' }, vector);
  const grid = mapGrid(input.data, input.shape, lo, hi, layer.inputs[0], (k, y, x) => show(k * h * w + y * w + x));
  const zoom = channelZoom(layer, tensor, input.shape, lo, hi);

  function show(i) {
    const { c: k, y, x } = origin(i, input.shape);
    if (k !== zoom.channel) zoom.zoomTo(k);
    placeMarker(markers.map, grid.children[k].querySelector('.dense-cell'), y, x, h, w);
    placeMarker(markers.vector, strip, 0, i, 1, n);
    placeMarker(zoom.marker, zoom.strip, 0, y * w + x, 1, h * w);
    readout.textContent = `index ${i} = ${k}·${h * w} + ${y}·${w} + ${x} ← channel ${k}, row ${y}, column ${x}: ${num(tensor.data[i], 4)}`;
  }
  vector.addEventListener('pointermove', event => show(cellAt(vector, event)[1]));
  zoom.canvas.addEventListener('pointermove', event => show(zoom.channel * h * w + cellAt(zoom.canvas, event)[1]));
  zoom.zoomTo(0);
  container.append(el('p', { className: 'act-what' },
    `The ${c} maps of ${h}×${w} become one vector of ${n} numbers: channel 0 row by row, then channel 1, and so on. `,
    'The value at channel c, row y, column x lands at ', el('strong', {}, `index = c·H·W + y·W + x = c·${h * w} + y·${w} + x`), '.'),
  el('p', { className: 'hint' }, `Input: ${c} maps (${layer.inputs[0]})`), grid,
  el('p', { className: 'hint' }, `Output: the flat vector (${layer.name}), ${n} values, channel boundaries marked`),
  el('div', { className: 'dense-vector-box' }, strip, channelTicks(input.shape)), readout, zoom.title, zoom.box);
}

const MANY_CLASSES = 20;  // up to this many, a row for every class
const TOP_CLASSES = 10;

/** The served logits → exp → probabilities, computed step by step and set beside the served ones. */
function softmaxTable(container, classes, logits, served, chosen) {
  const z = Array.from(logits);
  const top = Math.max(...z);
  const e = z.map(v => Math.exp(v - top));
  const sum = e.reduce((a, b) => a + b, 0);
  const p = e.map(v => v / sum);
  const worst = Math.max(...p.map((v, i) => Math.abs(v - served[i])));
  const head = el('tr', {}, ...['class', 'logit z', 'z − max', 'e^(z − max)', 'p = e / Σ', 'served p', ''].map(t => el('th', { scope: 'col' }, t)));
  // ImageNet's 1,000 rows would bury the page: past MANY_CLASSES, the TOP_CLASSES most probable
  // (highest first), with the sums still over every class.
  let order = z.map((_, i) => i);
  const hidden = z.length > MANY_CLASSES ? z.length - TOP_CLASSES : 0;
  if (hidden) order = order.sort((a, b) => p[b] - p[a]).slice(0, TOP_CLASSES);
  const rows = order.map(i => [z[i], i]).map(([v, i]) => el('tr', { className: i === chosen ? 'top' : '' },
    el('th', { scope: 'row' }, classes[i] ?? `unit ${i}`), el('td', {}, num(v)), el('td', {}, num(v - top)),
    el('td', {}, short(e[i])), el('td', {}, short(p[i])), el('td', { dataset: { served: served[i] } }, short(served[i])),
    el('td', {}, el('span', { className: 'dense-bar', style: { '--p': p[i].toFixed(4) } }))));
  if (hidden) rows.push(el('tr', { className: 'more' }, el('td', { colSpan: 7 }, `… and ${hidden} less probable classes, counted in the sums below`)));
  const foot = el('tr', {}, el('th', { scope: 'row' }, hidden ? `Σ (all ${z.length})` : 'Σ'), el('td'), el('td'), el('td', {}, num(sum, 4)), el('td', {}, num(1, 4)), el('td'), el('td'));
  container.append(el('h3', {}, 'From logits to probabilities (softmax)'),
    el('p', { className: 'act-what' }, 'Softmax turns the logits z into probabilities: ', el('strong', {}, 'p = e^z / Σ e^z'),
      '. Subtracting the largest logit first changes nothing in p but keeps e^z from overflowing. Every p is positive and they sum to 1.'),
    el('table', { className: 'dense-table', dataset: { softmaxTable: '' } }, el('thead', {}, head), el('tbody', {}, ...rows), el('tfoot', {}, foot)),
    el('p', { className: 'hint' }, `Computed here from the served logits; the largest difference from the served probabilities is ${worst.toExponential(1)}.`));
}

function unitChooser(units, names, chosen, values, onChange) {
  const select = el('select', { dataset: { control: 'linear-unit' } });
  for (let u = 0; u < units; u++) select.append(new Option(`${names ? `${u} · ${names[u]}` : `unit ${u}`} (${num(values[u], 2)})`, u, false, u === chosen));
  select.addEventListener('change', () => onChange(Number(select.value)));
  return el('label', {}, 'Output unit ', select);
}

/** Rows of the inputs with the largest contributions of one sign. */
function contributionList(title, order, w, x, maps) {
  const rows = order.map(i => {
    const from = maps ? origin(i, maps) : null;
    return el('tr', {}, el('th', { scope: 'row' }, from ? `${i} (c${from.c}, ${from.y}, ${from.x})` : String(i)),
      el('td', {}, num(w[i])), el('td', {}, num(x[i])), el('td', {}, num(w[i] * x[i])));
  });
  const head = el('tr', {}, ...['input', 'w', 'x', 'w·x'].map(t => el('th', { scope: 'col' }, t)));
  return el('figure', { className: 'dense-list' }, el('figcaption', {}, title),
    el('table', { className: 'dense-table' }, el('thead', {}, head), el('tbody', {}, ...rows)));
}

/** True if this layer's outputs are the logits: the last layer, or the input of a final softmax. */
function givesLogits(store, layer) {
  const last = store.layers.at(-1);
  return last === layer || (last.type === 'softmax' && last.inputs[0] === layer.name);
}

async function linear(container, { store, layer, tensor, input, weightsOf }) {
  const logits = givesLogits(store, layer) && tensor.data.length === store.model.classes.length;
  const classes = logits ? store.model.classes : null;
  const units = tensor.data.length;
  // The unit picked (the store's), else the predicted class of the logits, else the largest output.
  const picked = store.picked(layer.name).unit;
  const unit = Number.isInteger(picked) && picked < units ? picked
    : logits ? store.result.prediction.index : tensor.data.indexOf(Math.max(...tensor.data));
  const { weight, bias } = await weightsOf(store.model.id, layer.name);
  const n = weight.shape[1];
  const maps = flattenedFrom(store, layer);
  const section = el('div', { className: 'dense-unit' });
  container.append(el('h3', {}, 'Which inputs drive an output'),
    el('p', { className: 'act-what' }, `Each of the ${units} outputs is a weighted sum of all ${n} inputs plus a bias: `,
      el('strong', {}, 'y = Σ w·x + b'), '. Blue inputs pushed the chosen output up, red ones pushed it down.'),
    unitChooser(units, classes, unit, tensor.data, u => { store.pick(layer.name, { unit: u }); show(u); }), section);

  function show(u) {
    const w = weight.data.subarray(u * n, (u + 1) * n);
    const x = input.data;
    const terms = Array.from(w, (v, i) => v * x[i]);
    const sum = terms.reduce((a, b) => a + b, 0);
    const b = bias ? bias.data[u] : 0;
    const order = terms.map((_, i) => i).sort((i, j) => terms[j] - terms[i]);
    const served = tensor.data[u];
    section.replaceChildren(
      el('p', { className: 'dense-sum' }, `Σ w·x = ${num(sum, 4)}  + bias ${num(b, 4)}  = `,
        el('strong', { dataset: { linearSum: sum + b } }, (sum + b).toFixed(4)),
        ` · served ${layer.name}[${u}] = `, el('strong', { dataset: { linearServed: served } }, served.toFixed(4)),
        el('span', { className: 'hint' }, ` ${Math.abs(sum + b - served) < 1e-3 * (1 + Math.abs(served)) ? '✓ equal' : '✗ differ'}, difference ${Math.abs(sum + b - served).toExponential(1)}`)),
      contributionStrip(terms, w, x, maps, n),
      el('div', { className: 'dense-lists' },
        contributionList('Pushed up most', order.slice(0, TOP).filter(i => terms[i] > 0), w, x, maps),
        contributionList('Pushed down most', order.slice(-TOP).reverse().filter(i => terms[i] < 0), w, x, maps)),
      // Maps of one value each (after global pooling) reshape to nothing the strip above doesn't show.
      maps && maps[1] * maps[2] > 1 ? lookFor(w, terms, maps, `${layer.name} unit ${u}`) : '');
  }
  show(unit);
}

/** Every input's w·x as a bar, in input order, with channel boundaries when the input was maps. */
function contributionStrip(terms, w, x, maps, n) {
  const width = 880, height = 90;
  const { canvas, ctx } = chartCanvas(width, height, `w·x of each of the ${n} inputs`);
  canvas.classList.add('dense-strip');
  const top = barStrip(ctx, terms, width, height);
  const readout = el('output', { className: 'readout' }, `Tallest bar: ±${num(top)}. Point at a bar to read its w and x.`);
  canvas.addEventListener('pointermove', event => {
    const r = canvas.getBoundingClientRect();
    const i = Math.min(n - 1, Math.floor((event.clientX - r.left) / r.width * n));
    const from = maps ? origin(i, maps) : null;
    readout.textContent = `input ${i}${from ? ` (channel ${from.c}, row ${from.y}, column ${from.x})` : ''}: w ${num(w[i], 4)} × x ${num(x[i], 4)} = ${num(terms[i], 4)}`;
  });
  const box = el('div', { className: 'dense-vector-box' }, canvas, maps ? channelTicks(maps) : '');
  const caption = el('p', { className: 'hint' }, `w·x of every input, in input order 0 … ${n - 1}${maps ? ', channel boundaries marked' : ''}:`);
  return el('div', {}, caption, box, readout);
}

/** The unit's weights, and its w·x, reshaped to the flattened maps [C, H, W]. */
function lookFor(w, terms, maps, label) {
  const [wl, wh] = range(w);
  const t = Float32Array.from(terms);
  const [tl, th] = range(t);
  return el('div', { className: 'dense-lookfor' },
    el('h4', {}, 'What this unit looks for: its weights, reshaped to the maps'),
    mapGrid(w, maps, Math.min(wl, -wh), Math.max(wh, -wl), `${label} weights`),
    el('h4', {}, 'What it found in this image: w·x at each position'),
    mapGrid(t, maps, Math.min(tl, -th), Math.max(th, -tl), `${label} contributions`));
}

export async function render(container, context) {
  const { store, layer, tensor, input } = context;
  if (layer.type === 'flatten') flatten(container, context);
  if (layer.type === 'linear' && input) await linear(container, context);
  const last = store.layers.at(-1) === layer;
  const classes = store.model.classes;
  if (layer.type === 'softmax' && input) softmaxTable(container, classes, input.data, tensor.data, store.result.prediction.index);
  else if (last && layer.type === 'linear' && tensor.data.length === classes.length) {
    softmaxTable(container, classes, tensor.data, store.result.prediction.probabilities, store.result.prediction.index);
  }
}
