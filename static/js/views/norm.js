// Batch norm in eval mode, one value at a time: pick an output value and follow
// (x − μ) / √(σ² + ε) · γ + β with its channel's numbers, read from the served input, the layer's
// running statistics and its learned γ and β. Then every channel as the straight line y = a·x + b
// it is once training is over, so a reader sees which channels it amplifies and which it silences.

import { chartCanvas, plotFrame, theme } from '../draw/chart.js';
import { el, fmt } from '../draw/cells.js';
import { asOutputMap, at, channelMap, checkLine, n4, select, term } from '../draw/lesson.js';
import { argmax, outputControls, pickedOr } from '../draw/picker.js';

const BLOCK = 64;  // channels per chart: the block of 64 that holds the picked channel
const PLOT = { width: 420, height: 170 };
const QUIET = 0.1;  // |a| below this: the channel comes out nearly constant (b), i.e. silenced

/**
 * Per channel: μ, σ², γ, β and the line a, b they make. Without running statistics, eval mode
 * normalises with this image's own per-channel mean and (biased) variance; without affine
 * parameters, γ = 1 and β = 0.
 */
function channels(p, input, eps) {
  const [C, H, W] = input.shape;
  const n = H * W;
  const s = { own: !p.running_mean, scaled: !!p.weight, shifted: !!p.bias, mean: [], variance: [], gamma: [], beta: [], a: [], b: [] };
  for (let c = 0; c < C; c++) {
    let m = p.running_mean?.data[c], v = p.running_var?.data[c];
    if (s.own) {
      const map = input.data.subarray(c * n, (c + 1) * n);
      m = map.reduce((t, x) => t + x, 0) / n;
      v = map.reduce((t, x) => t + (x - m) ** 2, 0) / n;
    }
    const g = p.weight ? p.weight.data[c] : 1, b = p.bias ? p.bias.data[c] : 0;
    const a = g / Math.sqrt(v + eps);
    s.mean.push(m); s.variance.push(v); s.gamma.push(g); s.beta.push(b);
    s.a.push(a); s.b.push(b - a * m);
  }
  return s;
}

/** The arithmetic of output (c, y, x), step by step, in float64 from served float32 numbers. */
function steps(s, eps, input, tensor, pos) {
  const c = pos.c, x = input.data[at(input.shape, pos)];
  const centred = x - s.mean[c], sd = Math.sqrt(s.variance[c] + eps), z = centred / sd;
  return { c, x, centred, sd, z, result: z * s.gamma[c] + s.beta[c], served: tensor.data[at(tensor.shape, pos)] };
}


// [name, words or arithmetic, number]: the words read left to right, the numbers line up right.
function row(cells) {
  const tr = el('tr');
  cells.forEach((text, i) => {
    const cell = el(i ? 'td' : 'th', '', text);
    if (i === 1) cell.style.textAlign = 'left';
    tr.append(cell);
  });
  return tr;
}

function table(caption, head, rows) {
  const t = el('table', 'dense-table');
  const thead = el('thead');
  thead.append(row(head));
  const body = el('tbody');
  body.append(...rows.map(r => row(r)));
  t.append(thead, body);
  return figureOf(t, caption);
}

function figureOf(content, caption) {
  const fig = el('figure', 'dense-list');
  fig.append(el('figcaption', '', caption), content);
  return fig;
}

/** The numbers the value is made of, and where each comes from. */
function given(layer, s, eps, n) {
  const c = n.c, src = s.own ? `this image's channel ${c}` : `running statistics, channel ${c}`;
  return table('The numbers', ['', 'what', 'value'], [
    ['x', `${layer.inputs[0]}, the input value`, n4(n.x)],
    ['μ', `mean (${src})`, n4(s.mean[c])],
    ['σ²', `variance (${src})`, n4(s.variance[c])],
    ['ε', 'eps: keeps the division finite', fmt(eps, 4)],
    ['γ', s.scaled ? `weight[${c}]: learned scale` : 'no learned scale: 1', n4(s.gamma[c])],
    ['β', s.shifted ? `bias[${c}]: learned shift` : 'no learned shift: 0', n4(s.beta[c])],
  ]);
}

function worked(s, eps, n) {
  const c = n.c;
  return table('Step by step', ['', 'arithmetic', 'value'], [
    ['centre', `x − μ = ${n4(n.x)} − ${term(s.mean[c])}`, n4(n.centred)],
    ['spread', `√(σ² + ε) = √(${n4(s.variance[c])} + ${fmt(eps, 4)})`, n4(n.sd)],
    ['standardise', `x̂ = (x − μ) / √(σ² + ε) = ${n4(n.centred)} / ${n4(n.sd)}`, n4(n.z)],
    ['scale', `x̂ · γ = ${n4(n.z)} · ${term(s.gamma[c])}`, n4(n.z * s.gamma[c])],
  ]);
}

/** Bars of values[from, to) against channel index, the picked channel in the accent colour. */
function drawBars(ctx, values, from, to, picked, { label, reference }) {
  const colours = theme();
  const shown = values.slice(from, to);
  const lo = Math.min(0, ...shown, reference ?? 0), hi = Math.max(0, ...shown, reference ?? 0);
  const pad = (hi - lo) * 0.08 || 1;
  ctx.clearRect(0, 0, PLOT.width, PLOT.height);
  const frame = plotFrame(ctx, { ...PLOT, x: [from - 0.5, to - 0.5], y: [lo - pad, hi + pad], xLabel: 'channel', yLabel: label });
  const width = (frame.px(1) - frame.px(0)) * 0.8;
  shown.forEach((v, i) => {
    ctx.fillStyle = from + i === picked ? colours.accent : colours.muted;
    const [top, bottom] = [frame.py(Math.max(v, 0)), frame.py(Math.min(v, 0))];
    ctx.fillRect(frame.px(from + i) - width / 2, top, width, Math.max(1, bottom - top));
  });
  // A notch under the axis, so the picked channel shows even where its bar is about 0 high.
  ctx.fillStyle = colours.accent;
  const notch = Math.min(width, 8);
  ctx.fillRect(frame.px(picked) - notch / 2, frame.py(lo - pad) + 1, notch, 4);
  if (reference !== undefined) {
    ctx.setLineDash([4, 3]);
    ctx.strokeStyle = colours.ink;
    ctx.beginPath();
    ctx.moveTo(frame.px(from - 0.5), frame.py(reference));
    ctx.lineTo(frame.px(to - 0.5), frame.py(reference));
    ctx.stroke();
    ctx.setLineDash([]);
  }
  return frame;
}

/** A bar chart of one per-channel number; click a bar to pick its channel. */
function barChart(values, opts, onPick) {
  const { canvas, ctx } = chartCanvas(PLOT.width, PLOT.height, `${opts.label} per channel; click a bar to pick its channel`);
  canvas.classList.add('pickable');
  canvas.dataset.chart = opts.hook;
  let frame = null;
  canvas.addEventListener('click', event => {
    const left = canvas.getBoundingClientRect().left;
    const [x0, x1] = frame.x, [p0, p1] = [frame.px(x0), frame.px(x1)];
    const c = Math.round(x0 + (event.clientX - left - p0) / (p1 - p0) * (x1 - x0));
    if (c >= Math.ceil(x0) && c <= Math.floor(x1)) onPick(c);
  });
  return { canvas, draw: (from, to, picked) => { frame = drawBars(ctx, values, from, to, picked, opts); } };
}

/** One sentence on the whole layer: how many channels grow, shrink, or are all but silenced. */
function overview(s) {
  const C = s.a.length;
  const by = s.a.map((a, c) => c).sort((i, j) => Math.abs(s.a[i]) - Math.abs(s.a[j]));
  const [quiet, loud] = [by[0], by[C - 1]];
  const grow = s.a.filter(a => Math.abs(a) > 1).length, silent = s.a.filter(a => Math.abs(a) < QUIET).length;
  return `Over all ${C} channels: ${grow} are amplified (|a| > 1), ${C - grow} shrunk; ${silent} nearly silenced ` +
    `(|a| < ${QUIET}: they come out almost the constant b). Most amplified: channel ${loud} (a = ${n4(s.a[loud])}); ` +
    `quietest: channel ${quiet} (a = ${n4(s.a[quiet])}, b = ${n4(s.b[quiet])}).`;
}

export async function render(container, ctx) {
  const { store, layer, tensor, input, weightsOf } = ctx;
  if (!input || tensor.shape.length !== 3 || input.shape.join() !== tensor.shape.join()) return;
  const owned = Object.keys({ ...layer.parameters, ...layer.buffers }).length > 0;
  const p = owned ? await weightsOf(store.model.id, layer.name) : {};
  const eps = layer.attributes?.eps ?? 1e-5;
  const s = channels(p, input, eps);
  const [C, h, w] = tensor.shape;
  const drawn = { c: -1, out: null, in: null };  // the maps on screen; the pick is the store's
  const out = el('figure', 'conv-out'), outCaption = el('figcaption');
  const inBox = el('figure', 'conv-out'), inCaption = el('figcaption');
  const tables = el('div', 'dense-lists'), result = el('div', 'conv-result'), line = el('p', 'hint');
  result.setAttribute('aria-live', 'polite');
  const pick = c => controls.set({ c });
  const charts = [barChart(s.a, { label: 'scale a', hook: 'scale', reference: 1 }, pick),
    barChart(s.b, { label: 'shift b', hook: 'shift' }, pick)];
  const chartNote = el('p', 'hint');

  const draw = pos => {
    if (pos.c !== drawn.c) {
      drawn.out = asOutputMap(channelMap(tensor, pos.c, { store }), pos.c, `${layer.name} output channel ${pos.c}, ${h}×${w}`,
        (y, x) => controls.set({ y, x }));
      drawn.in = channelMap(input, pos.c, { store });
      drawn.in.canvas.setAttribute('role', 'img');
      drawn.in.canvas.setAttribute('aria-label', `${layer.inputs[0]} channel ${pos.c}`);
      out.replaceChildren(drawn.out.canvas, outCaption);
      inBox.replaceChildren(drawn.in.canvas, inCaption);
      drawn.c = pos.c;
    }
    const n = steps(s, eps, input, tensor, pos);
    select(drawn.out, pos.y, pos.x);
    select(drawn.in, pos.y, pos.x);
    container.dataset.position = `${pos.c},${pos.y},${pos.x}`;
    outCaption.textContent = `${layer.name} channel ${pos.c}: row ${pos.y}, column ${pos.x} = ${fmt(n.served, 4)}. Click any value.`;
    inCaption.textContent = `${layer.inputs[0]} channel ${pos.c}, the same place: x = ${fmt(n.x, 4)}. ` +
      'Batch norm reads this one value, nothing around it.';
    tables.replaceChildren(given(layer, s, eps, n), worked(s, eps, n));
    result.setAttribute('aria-live', controls.playing() ? 'off' : 'polite');
    result.replaceChildren(checkLine([el('span', '', `x̂ · γ + β = ${n4(n.z * s.gamma[n.c])} + ${term(s.beta[n.c])}`)],
      n.result, n.served, ['normResult', 'normServed']));
    line.textContent = `The same as a·x + b with a = γ / √(σ² + ε) = ${n4(s.a[n.c])} and b = β − a·μ = ${n4(s.b[n.c])}: ` +
      `${n4(s.a[n.c])} · ${term(n.x)} + ${term(s.b[n.c])} = ${n4(s.a[n.c] * n.x + s.b[n.c])}.`;
    const from = Math.floor(pos.c / BLOCK) * BLOCK, to = Math.min(C, from + BLOCK);
    charts.forEach(chart => chart.draw(from, to, pos.c));
    chartNote.textContent = `Channels ${from}–${to - 1}${C > BLOCK ? ` of ${C}` : ''}; blue: channel ${pos.c}. ` +
      'Dashed: a = 1, the size unchanged. Click a bar to pick its channel. ' + overview(s);
  };
  const update = pos => {
    store.pick(layer.name, pos);
    draw(pos);
  };

  const start = pickedOr(store.picked(layer.name), tensor.shape, argmax(tensor, 0));
  const controls = outputControls({ channels: C, rows: h, cols: w, start, onChange: update });
  const stage = el('div', 'conv-stage');
  const outBox = el('div', 'conv-out-box'), inputBox = el('div', 'conv-out-box');
  outBox.append(el('p', 'step', '① Pick an output value'), out);
  inputBox.append(el('p', 'step', `② Its input in ${layer.inputs[0]}`), inBox);
  stage.append(outBox, inputBox);
  const chartRow = el('div', 'conv-stage');
  chartRow.append(...charts.map(chart => chart.canvas));
  const stats = s.own ? 'this image\'s own mean μ and variance σ² of each channel (the layer keeps no running statistics)'
    : 'the mean μ and variance σ² of each channel measured over the training data (running statistics), not this image\'s';
  const learned = s.scaled ? 'a learned scale γ and shift β' : 'no learned scale or shift (affine = false: γ = 1, β = 0)';
  container.append(el('h3', '', `How one value of ${layer.name} is computed`),
    el('p', 'hint', `In eval mode batch norm uses ${stats}, and ${learned}. So each channel is a fixed ` +
      'straight line y = a·x + b with a = γ / √(σ² + ε) and b = β − a·μ: it re-centres and rescales the channel so the ' +
      'next layer sees values of a steady size.'),
    controls.element, stage, el('p', 'step', '③ Normalise with the channel\'s statistics, then scale by γ and shift by β'),
    tables, result, line, el('p', 'step', '④ Every channel is a line y = a·x + b'), chartRow, chartNote);
  ctx.linkChannels?.((c, y, x) => controls.set({ c, y, x }));
  draw(controls.get());
}
