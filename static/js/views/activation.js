// The activation lesson (ReLU, LeakyReLU, Sigmoid, Tanh): the function's curve with this layer's
// served (input, output) pairs on it, and one channel's input and output maps side by side with the
// values the function clipped or squashed marked.

import { band, chartCanvas, curve, dot, histogram, plotFrame, signColour, theme } from '../draw/chart.js';
import { cellAt, count, el, num, percent } from '../draw/dom.js';
import { drawMap, mapCanvas, maps, range } from '../draw/heatmap.js';

const SATURATION = 2.5;  // |x| beyond which sigmoid and tanh are flat: "squashed"
const MAX_DOTS = 2000;
const PLOT = { width: 400, height: 280 };

/** Each function as a formula for the plot, what it does in words, and which inputs it changes. */
const FUNCTIONS = {
  relu: () => ({
    name: 'ReLU', formula: 'ReLU(x) = max(0, x)', f: x => Math.max(0, x),
    what: 'keeps every positive value as it is and sets every negative value to 0, so a map keeps only the places where its feature was found.',
    changed: x => x < 0, verb: 'clipped to 0', mark: 'clipped: was negative, now 0', regions: [[-Infinity, 0]],
  }),
  leaky_relu: slope => ({
    name: 'LeakyReLU', formula: `LeakyReLU(x) = x if x > 0, else ${slope}·x`, f: x => (x > 0 ? x : slope * x),
    what: `is ReLU with a leak: negative values are not set to 0 but multiplied by ${slope}, so a little of them (and of their gradient) still gets through.`,
    changed: x => x < 0, verb: `scaled by ${slope}`, mark: `negative: scaled by ${slope}`, regions: [[-Infinity, 0]],
  }),
  sigmoid: () => ({
    name: 'Sigmoid', formula: 'σ(x) = 1 / (1 + e^−x)', f: x => 1 / (1 + Math.exp(-x)),
    what: `squashes any value into (0, 1). Beyond |x| > ${SATURATION} the curve is almost flat (saturated): large inputs all come out close to 0 or 1 and small differences between them are lost.`,
    changed: x => Math.abs(x) > SATURATION, verb: `squashed (|x| > ${SATURATION})`, mark: `saturated: |x| > ${SATURATION}`,
    regions: [[-Infinity, -SATURATION], [SATURATION, Infinity]], span: 5,
  }),
  tanh: () => ({
    name: 'Tanh', formula: 'tanh(x) = (eˣ − e⁻ˣ) / (eˣ + e⁻ˣ)', f: Math.tanh,
    what: `squashes any value into (−1, 1), centred on 0. Beyond |x| > ${SATURATION} it is almost flat (saturated) near −1 or +1.`,
    changed: x => Math.abs(x) > SATURATION, verb: `squashed (|x| > ${SATURATION})`, mark: `saturated: |x| > ${SATURATION}`,
    regions: [[-Infinity, -SATURATION], [SATURATION, Infinity]], span: 4,
  }),
};

/** The channel whose served output has the largest mean. */
function mostActive(tensor, count, size) {
  let best = 0, bestMean = -Infinity;
  for (let c = 0; c < count; c++) {
    let sum = 0;
    for (let i = c * size; i < (c + 1) * size; i++) sum += tensor.data[i];
    if (sum / size > bestMean) [best, bestMean] = [c, sum / size];
  }
  return best;
}

function countChanged(fn, data, from = 0, to = data.length) {
  let n = 0;
  for (let i = from; i < to; i++) if (fn.changed(data[i])) n++;
  return n;
}

/** Plot ranges: the served inputs (at least ±span for the squashing functions) and the curve. */
function plotRanges(fn, input, output) {
  let [x0, x1] = range(input.data);
  x0 = Math.min(x0, 0, -(fn.span ?? 0));
  x1 = Math.max(x1, 0, fn.span ?? 0);
  const pad = (x1 - x0) * 0.04 || 1;
  let [y0, y1] = range(output.data);
  for (const x of [x0, x1, 0]) [y0, y1] = [Math.min(y0, fn.f(x)), Math.max(y1, fn.f(x))];
  const yPad = (y1 - y0) * 0.06 || 1;
  return { x: [x0 - pad, x1 + pad], y: [y0 - yPad, y1 + yPad] };
}

/** The curve, the shaded regions the function changes, and ≤ MAX_DOTS served pairs. */
function drawPlot(ctx, fn, ranges, input, output, channel, size) {
  const colours = theme();
  ctx.clearRect(0, 0, PLOT.width, PLOT.height);
  const frame = plotFrame(ctx, { ...PLOT, ...ranges, xLabel: 'input x (served)', yLabel: 'output (served)' });
  for (const [from, to] of fn.regions) band(ctx, frame, from, to, 'rgba(178, 24, 43, 0.08)');
  histogram(ctx, frame, input.data, 'rgba(91, 100, 117, 0.18)');
  curve(ctx, frame, fn.f, colours.ink, 1.5);
  const stride = Math.ceil(input.data.length / MAX_DOTS);
  const chosen = [];
  for (let i = 0; i < input.data.length; i += stride) {
    if (Math.floor(i / size) === channel) chosen.push(i);
    else dot(ctx, frame, input.data[i], output.data[i], 'rgba(91, 100, 117, 0.35)', 1.8);
  }
  for (const i of chosen) dot(ctx, frame, input.data[i], output.data[i], colours.accent, 2.2);
  return { frame, shown: Math.ceil(input.data.length / stride) };
}

/** -1 / +1 where the function changed a negative / positive input, 0 elsewhere. */
function changeMask(fn, data, from, length) {
  const mask = new Float32Array(length);
  for (let i = 0; i < length; i++) if (fn.changed(data[from + i])) mask[i] = Math.sign(data[from + i]);
  return mask;
}

function mapFigure(caption, strip) {
  const canvas = mapCanvas(caption);
  canvas.classList.add(strip ? 'act-strip' : 'act-map');
  return { figure: el('figure', {}, canvas, el('figcaption', {}, caption)), canvas };
}

/** Input, output and "changed" maps of one channel; the first two share one colour range. */
function drawMaps(figs, fn, input, output, c, h, w) {
  const from = c * h * w, to = from + h * w;
  const [a, b] = range(input.data, from, to);
  const [p, q] = range(output.data, from, to);
  const lo = Math.min(a, p), hi = Math.max(b, q);
  drawMap(figs.input.canvas, input.data, from, h, w, lo, hi);
  drawMap(figs.output.canvas, output.data, from, h, w, lo, hi);
  drawMap(figs.mask.canvas, changeMask(fn, input.data, from, h * w), 0, h, w, -3, 3);  // ±1 → light red / blue of the scale
  return `Input and output share one colour range, ${num(lo)} … ${num(hi)}: red below 0, blue above.`;
}

function channelChooser(channels, chosen, onChange) {
  const select = el('select', { dataset: { control: 'activation-channel' } });
  for (let c = 0; c < channels; c++) select.append(new Option(`channel ${c}`, c, false, c === chosen));
  select.addEventListener('change', () => onChange(Number(select.value)));
  return el('label', {}, 'Channel ', select);
}

function summary(fn, layer, input) {
  const n = countChanged(fn, input.data);
  const total = input.data.length;
  return el('p', { className: 'act-count', dataset: { clippedCount: n } },
    `${fn.name} ${fn.verb}: `, el('strong', {}, `${count(n)} of ${count(total)} values (${percent(n, total)})`),
    ` in ${layer.name}.`);
}

export async function render(container, { store, layer, tensor, input }) {
  const make = FUNCTIONS[layer.type];
  if (!make) return;
  const fn = make(layer.attributes?.negative_slope ?? 0.01);
  const intro = el('p', { className: 'act-what' }, el('strong', {}, fn.formula), ` — ${fn.name} ${fn.what}`);
  if (!input || input.data.length !== tensor.data.length) {
    container.append(intro, el('p', { className: 'hint' }, 'The input of this layer was not served, so only the function is described.'));
    return;
  }
  const { count: channels, h, w } = maps(tensor);
  const size = h * w;
  const strip = tensor.shape.length === 1;
  const ranges = plotRanges(fn, input, tensor);
  const { canvas: base, ctx } = chartCanvas(PLOT.width, PLOT.height, `${fn.name} curve with this layer's input and output values`);
  const { canvas: top, ctx: topCtx } = chartCanvas(PLOT.width, PLOT.height);
  top.className = 'act-plot-top';
  const plotCaption = el('figcaption');
  const plot = el('figure', { className: 'act-plot', dataset: { activationPlot: layer.type } },
    el('div', { className: 'act-plot-layers' }, base, top), plotCaption);
  const figs = { input: mapFigure(`input (${layer.inputs[0]})`, strip), output: mapFigure(`output (${layer.name})`, strip), mask: mapFigure(fn.mark, strip) };
  const channelCount = el('p', { className: 'act-channel-count' });
  const scaleNote = el('p', { className: 'hint' });
  const readout = el('output', { className: 'readout' }, 'Point at a map to read input → output.');
  // The channel picked is the store's (store.picked(layer).c); `plotted` is only what is on screen.
  const picked = store.picked(layer.name).c;
  const first = Number.isInteger(picked) && picked < channels ? picked : mostActive(tensor, channels, size);
  const plotted = { channel: first, frame: null };

  function show(c) {
    plotted.channel = c;
    const drawn = drawPlot(ctx, fn, ranges, input, tensor, c, size);
    plotted.frame = drawn.frame;
    plotCaption.textContent = `Each dot is one served (input, output) pair: ${count(drawn.shown)} of ${count(tensor.data.length)} shown${channels > 1 ? `, channel ${c} in blue` : ''}. Grey bars: how many inputs fall at each x. Shaded: where ${fn.name} changes values.`;
    scaleNote.textContent = drawMaps(figs, fn, input, tensor, c, strip ? 1 : h, w);
    const n = countChanged(fn, input.data, c * size, (c + 1) * size);
    channelCount.textContent = channels > 1 ? `In channel ${c}: ${count(n)} of ${count(size)} values (${percent(n, size)}) ${fn.verb}.` : '';
  }

  function hover(canvas, event) {
    const [y, x] = cellAt(canvas, event);
    const { channel, frame } = plotted;
    const i = channel * size + y * w + x;
    const where = strip ? `value ${x}` : `channel ${channel}, row ${y}, column ${x}`;
    readout.textContent = `${where}: input ${num(input.data[i], 4)} → output ${num(tensor.data[i], 4)}${fn.changed(input.data[i]) ? ` (${fn.verb})` : ''}`;
    topCtx.clearRect(0, 0, PLOT.width, PLOT.height);
    dot(topCtx, frame, input.data[i], tensor.data[i], signColour(-1), 5);
    dot(topCtx, frame, input.data[i], tensor.data[i], '#fff', 2.5);
  }

  for (const fig of Object.values(figs)) {
    fig.canvas.addEventListener('pointermove', event => hover(fig.canvas, event));
    fig.canvas.addEventListener('pointerleave', () => topCtx.clearRect(0, 0, PLOT.width, PLOT.height));
  }
  const side = el('div', { className: 'act-side' }, summary(fn, layer, input),
    channels > 1 ? el('div', { className: 'act-pick' }, channelChooser(channels, first, c => { store.pick(layer.name, { c }); show(c); }), channelCount) : null,
    el('div', { className: strip ? 'act-maps act-strips' : 'act-maps' }, figs.input.figure, figs.output.figure, figs.mask.figure),
    scaleNote, readout);
  container.append(el('h3', {}, `What ${fn.name} does`), intro, el('div', { className: 'act-row' }, plot, side));
  show(first);
}
