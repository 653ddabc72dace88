// Convolution, one neuron at a time: pick an output value and see its window on every input
// channel of its group, the kernel, the products, their sums, the bias, and the served result.
// The arithmetic reads only served numbers (input map, weights, bias) and is checked against the
// served output value; it never runs the layer as a whole.

import { el, exact, figure, fmt, gap, hooked, numberGrid, paint } from '../draw/cells.js';
import { range, scaleFor } from '../draw/heatmap.js';
import { argmax, outputControls, pickable, pickedOr } from '../draw/picker.js';
import { pair, sourceIndex, tapsAt, windowGeometry, windowMarks } from '../draw/window.js';
import { LESSON, ZoomMap, cellSize } from '../draw/zoom.js';

function geometry(layer, weight, input, tensor) {
  const a = layer.attributes || {};
  const [, , kh, kw] = weight.shape;
  const g = windowGeometry({ kernel: [kh, kw], stride: pair(a.stride, 1), padding: a.padding ?? 0,
    dilation: pair(a.dilation, 1) }, input.shape.slice(1), tensor.shape.slice(1));
  g.groups = a.groups ?? Math.max(1, input.shape[0] / weight.shape[1]);
  g.mode = a.padding_mode ?? 'zeros';
  g.perGroup = weight.shape[1];
  return g;
}

/** The arithmetic of output (c, y, x), from served input values, weights and bias. */
function neuron(g, input, weight, bias, tensor, { c, y, x }) {
  const [out, perGroup, kh, kw] = weight.shape;
  const first = Math.floor(c / (out / g.groups)) * perGroup; // first input channel of c's group
  const plane = g.size[0] * g.size[1];
  const taps = tapsAt(g, y, x);
  const channels = [];
  for (let i = 0; i < perGroup; i++) {
    const cells = taps.map((t, k) => {
      const at = sourceIndex(t, g.size, g.mode);
      const v = at < 0 ? 0 : input.data[(first + i) * plane + at];
      const w = weight.data[((c * perGroup + i) * kh * kw) + k];
      return { v, w, p: v * w, padding: !t.inside };
    });
    channels.push({ channel: first + i, cells, sum: cells.reduce((s, t) => s + t.p, 0) });
  }
  const total = channels.reduce((s, ch) => s + ch.sum, 0);
  const b = bias ? bias.data[c] : 0;
  const served = tensor.data[(c * g.out[0] + y) * g.out[1] + x];
  return { channels, total, bias: b, hasBias: !!bias, result: total + b, served };
}

/** The input channel that adds the most to this value: the one worth opening first. */
function strongest(channels) {
  return channels.reduce((a, b) => (Math.abs(b.sum) > Math.abs(a.sum) ? b : a));
}

/** Output map of channel c, large and clickable. */
function outputMap(ctx, c, onPick) {
  const { tensor, store, layer } = ctx;
  const [, h, w] = tensor.shape;
  const [lo, hi] = scaleFor(store.scale, tensor, c, store.globalRange);
  const canvas = el('canvas', 'map');
  canvas.dataset.outputMap = '';
  canvas.dataset.channel = c;
  const zoom = new ZoomMap(canvas, tensor.data, c * h * w, h, w, lo, hi, { cell: cellSize(h, w, LESSON.bigMap) });
  pickable(zoom, `${layer.name} output channel ${c}, ${h}×${w}`, onPick);
  return zoom;
}

/** One input channel with the window drawn on it, as a button that opens its products. */
function inputThumb(ctx, g, channel, target, onChoose) {
  const { input, store } = ctx;
  const [h, w] = g.size;
  const [lo, hi] = scaleFor(store.scale, input, channel, store.globalRange);
  const canvas = el('canvas', 'map');
  const cell = cellSize(h + 2 * g.drawPad[0], w + 2 * g.drawPad[1], target);
  const zoom = new ZoomMap(canvas, input.data, channel * h * w, h, w, lo, hi, { cell, pad: g.drawPad });
  const button = el('button', 'thumb');
  button.type = 'button';
  button.dataset.inputChannel = channel;
  const name = el('span', 'name');
  const sum = el('span', 'sum');
  button.append(canvas, name, sum);
  button.addEventListener('click', () => onChoose(channel));
  return { button, zoom, name, sum, lo, hi };
}

function mathRow(ctx, g, n, ch, thumb) {
  const [kh, kw] = g.kernel;
  const [wlo, whi] = range(ctx.weight.data);
  const m = Math.max(...n.channels.flatMap(c => c.cells.map(t => Math.abs(t.p))), 1e-12);
  const padText = g.mode === 'zeros' ? 'padding: zero' : `padding (${g.mode})`;
  const values = ch.cells.map(t => ({ value: t.v, padding: t.padding, title: t.padding ? padText : undefined,
    text: t.padding && g.mode === 'zeros' ? '0' : undefined }));
  const weights = ch.cells.map(t => ({ value: t.w }));
  const products = ch.cells.map(t => (t.padding && g.mode === 'zeros' ? { value: 0, padding: true, text: '0', title: padText }
    : { value: t.p, title: `${fmt(t.v, 4)} × ${fmt(t.w, 4)}` }));
  const row = el('div', 'conv-math');
  row.dataset.products = ch.channel;
  row.append(
    figure(numberGrid(values, kh, kw, { lo: thumb.lo, hi: thumb.hi, label: `input window, channel ${ch.channel}` }),
      `window of input channel ${ch.channel}`),
    el('span', 'op', '×'),
    figure(numberGrid(weights, kh, kw, { lo: wlo, hi: whi, label: `kernel for output ${n.c}, input ${ch.channel}`, digits: 3 }),
      `kernel [${n.c}, ${ch.channel - n.channels[0].channel}]`),
    el('span', 'op', '='),
    figure(numberGrid(products, kh, kw, { lo: -m, hi: m, label: 'element-wise products', digits: 3 }), 'products'),
    el('span', 'op', '→'),
    figure(el('span', 'big', `Σ ${fmt(ch.sum, 4)}`), `sum of the ${kh * kw} products`));
  return row;
}

function equation(n) {
  const p = el('p', 'equation');
  const k = n.channels.length;
  const diff = Math.abs(n.result - n.served);
  p.append(
    el('span', '', k === 1 ? `Σ products ${fmt(n.total, 5)}` : k <= 8
      ? `channel sums ${n.channels.map(ch => fmt(ch.sum, 3)).join(' + ').replaceAll('+ -', '− ')} = ${fmt(n.total, 5)}`
      : `Σ of the ${k} channel sums ${fmt(n.total, 5)}`),
    el('span', 'op', '+'),
    el('span', '', n.hasBias ? `bias ${fmt(n.bias, 5)}` : 'no bias (0)'),
    el('span', 'op', '='),
    hooked(exact(n.result), 'neuronSum', n.result),
    el('span', 'vs', 'served by the API:'),
    hooked(exact(n.served), 'neuronServed', n.served),
    el('span', diff < 1e-4 * Math.max(1, Math.abs(n.served)) ? 'agree' : 'disagree', gap(diff)));
  return p;
}

function layout(ctx, g) {
  const { layer } = ctx;
  const k = g.perGroup;
  const intro = el('p', 'hint', `Each output value is a weighted sum: the ${g.kernel.join('×')} kernel lies on a window of ` +
    `the previous layer (${k} input channel${k > 1 ? 's' : ''}${g.groups > 1 ? ' of its group' : ''}), each value is ` +
    'multiplied by the weight on it, the products are added up, and the bias is added. ' +
    `Stride ${g.stride.join('×')}, padding ${g.pad.join('×')}${g.dilation.some(d => d > 1) ? `, dilation ${g.dilation.join('×')}` : ''}.`);
  const parts = {
    heading: el('h3', '', `How one value of ${layer.name} is computed`), intro,
    out: el('figure', 'conv-out'), outCaption: el('figcaption'),
    field: el('div', 'conv-inputs'), fieldCaption: el('p', 'hint'),
    math: el('div', 'conv-maths'), equation: el('div', 'conv-result'),
  };
  parts.equation.setAttribute('aria-live', 'polite');
  parts.fieldCaption.textContent = `Orange: the window in ${layer.inputs[0]}` +
    (g.drawPad.some(Boolean) ? `; dotted grey border: padding (${g.mode === 'zeros' ? 'zeros' : `${g.mode}: values copied from the map`}).` : '.') +
    (k > 1 ? ' Each input channel shows its sum of products; choose one to see its products.' : '');
  return parts;
}

const FIRST_INPUTS = 32;  // input channels shown before "Show all"

export async function render(container, ctx) {
  const { store, layer, tensor, input, weightsOf } = ctx;
  if (!input || tensor.shape.length !== 3) return;
  const { weight, bias } = await weightsOf(store.model.id, layer.name);
  const g = geometry(layer, weight, input, tensor);
  Object.assign(ctx, { weight, bias });
  const parts = layout(ctx, g);
  // The person's choices (position, input channel, all inputs) are the store's: store.picked(layer).
  // `drawn` is only what is on screen: the output map, the input thumbnails, the input channel shown.
  const picked = () => store.picked(layer.name);
  const fallback = argmax(tensor, 0);  // channel 0's largest value: where the lesson opens
  const drawn = { outZoom: null, thumbs: [], input: null, allInputs: false };
  const choose = changes => {
    store.pick(layer.name, changes);
    update();
  };

  const update = () => {
    const pos = pickedOr(picked(), tensor.shape, fallback);
    if (!drawn.outZoom || Number(drawn.outZoom.canvas.dataset.channel) !== pos.c) {
      drawn.outZoom = outputMap(ctx, pos.c, (y, x) => controls.set({ y, x }));
      parts.out.replaceChildren(drawn.outZoom.canvas, parts.outCaption);
    }
    const n = { ...neuron(g, input, weight, bias, tensor, pos), c: pos.c };
    n.sumRange = Math.max(...n.channels.map(ch => Math.abs(ch.sum)), 1e-12);
    buildThumbs(n);
    // The input channel picked, else the one on show, else the one that adds the most here.
    const inGroup = channel => n.channels.some(ch => ch.channel === channel);
    drawn.input = [picked().input, drawn.input].find(inGroup) ?? strongest(n.channels).channel;
    drawn.outZoom.canvas.dataset.selected = `${pos.y},${pos.x}`;
    drawn.outZoom.draw([{ top: pos.y, left: pos.x }]);
    parts.outCaption.textContent = `${layer.name} channel ${pos.c}: row ${pos.y}, column ${pos.x} = ${fmt(n.served, 4)}. Click any value.`;
    container.dataset.position = `${pos.c},${pos.y},${pos.x}`;
    n.channels.forEach((ch, i) => { if (drawn.thumbs[i].button.isConnected) drawThumb(drawn.thumbs[i], ch, n, pos); });
    const ch = n.channels.find(c => c.channel === drawn.input);
    parts.math.replaceChildren(mathRow(ctx, g, n, ch, drawn.thumbs[n.channels.indexOf(ch)]));
    parts.equation.setAttribute('aria-live', controls.playing() ? 'off' : 'polite');
    parts.equation.replaceChildren(equation(n));
  };

  // Input maps are drawn once per group; only the window moves.
  const buildThumbs = n => {
    const first = n.channels[0].channel;
    const all = Boolean(picked().allInputs);
    if (drawn.thumbs.length && Number(drawn.thumbs[0].button.dataset.inputChannel) === first && drawn.allInputs === all) return;
    if (!drawn.thumbs.length || Number(drawn.thumbs[0].button.dataset.inputChannel) !== first) {
      const target = n.channels.length === 1 ? LESSON.bigMap : n.channels.length <= 8 ? LESSON.midMap : LESSON.smallMap;
      drawn.thumbs = n.channels.map(ch => inputThumb(ctx, g, ch.channel, target, channel => choose({ input: channel })));
    }
    showThumbs(all);
  };
  // A deep layer reads 256 or 512 input channels: the first FIRST_INPUTS show, the rest on request
  // (all of them still count in the sum, and the chosen one's products show below either way).
  const showThumbs = all => {
    drawn.allInputs = all;
    const shown = all ? drawn.thumbs : drawn.thumbs.slice(0, FIRST_INPUTS);
    parts.field.replaceChildren(...shown.map(t => t.button));
    if (shown.length < drawn.thumbs.length) {
      const more = el('button', 'more-channels', `Show all ${drawn.thumbs.length} input channels`);
      more.type = 'button';
      more.dataset.action = 'all-inputs';
      more.addEventListener('click', () => choose({ allInputs: true }));
      parts.field.append(more);
    }
  };

  const drawThumb = (thumb, ch, n, pos) => {
    thumb.zoom.draw(windowMarks(g, pos.y, pos.x));
    const chosen = ch.channel === drawn.input;
    thumb.button.setAttribute('aria-pressed', String(chosen));
    thumb.button.setAttribute('aria-label', `input channel ${ch.channel}: sum of products ${fmt(ch.sum, 4)}; show its products`);
    thumb.name.textContent = n.channels.length > 1 ? `ch ${ch.channel}` : '';
    thumb.sum.textContent = `Σ ${fmt(ch.sum, 3)}`;
    paint(thumb.sum, ch.sum, -n.sumRange, n.sumRange);
  };

  const controls = outputControls({ channels: tensor.shape[0], rows: tensor.shape[1], cols: tensor.shape[2],
    start: pickedOr(picked(), tensor.shape, fallback), onChange: choose });
  const stage = el('div', 'conv-stage');
  const outBox = el('div', 'conv-out-box');
  outBox.append(el('p', 'step', '① Pick an output value'), parts.out);
  const fieldBox = el('div', 'conv-field');
  fieldBox.append(el('p', 'step', `② It reads this window of ${layer.inputs[0]}`), parts.field, parts.fieldCaption);
  stage.append(outBox, fieldBox);
  container.append(parts.heading, parts.intro, controls.element, stage,
    el('p', 'step', '③ Multiply each value by the weight on it, and add up'), parts.math,
    el('p', 'step', g.perGroup > 1 ? '④ Add the channel sums and the bias' : '④ Add the bias'), parts.equation);
  // Clicking a channel in the detail panel above picks that channel and value here.
  ctx.linkChannels?.((c, y, x) => {
    controls.set({ c, y, x });
    container.scrollIntoView({ behavior: 'smooth', block: 'nearest' });
  });
  update();
}
