// Pooling, one window at a time: pick an output value, see its window on the input map, the
// values in it, the chosen max (or the mean), and the served result. Adaptive pooling cuts its
// windows from the input and output sizes; global pooling (output 1×1) reads a whole map per
// channel. Then measure translation invariance: shift the image by 1–3 pixels, run the model on
// it, and compare the maps.

import { forwardTensor, forwardUrl } from '../api.js';
import { el, figure, fmt, numberGrid } from '../draw/cells.js';
import { drawInput } from '../draw/heatmap.js';
import { asOutputMap, at, channelMap, checkLine, select } from '../draw/lesson.js';
import { argmax, outputControls, pickedOr } from '../draw/picker.js';
import { pair, tapsAt, windowGeometry, windowMarks } from '../draw/window.js';

const LISTED = 256;  // a window of more values shows its sum only: a 56×56 grid of numbers reads as noise

/** PyTorch's adaptive window along one axis: output i of m, over an input of n, reads [start, end). */
const adaptiveSpan = (i, n, m) => [Math.floor(i * n / m), Math.ceil((i + 1) * n / m)];

function geometry(layer, input, tensor) {
  const size = input.shape.slice(1), out = tensor.shape.slice(1);
  // Adaptive pooling has no kernel or stride of its own: each window follows from the two sizes.
  if (layer.type.startsWith('adaptive_')) return { adaptive: true, size, out, pad: [0, 0], drawPad: [0, 0] };
  const a = layer.attributes || {};
  const kernel = pair(a.kernel_size, 2);
  return windowGeometry({ kernel, stride: pair(a.stride, kernel), padding: a.padding ?? 0,
    dilation: pair(a.dilation, 1) }, size, out);
}

/** The window of output (y, x): its taps in reading order, its rows × cols, and its outline. */
function windowAt(g, y, x) {
  if (!g.adaptive) return { taps: tapsAt(g, y, x), rows: g.kernel[0], cols: g.kernel[1], marks: windowMarks(g, y, x) };
  const [y0, y1] = adaptiveSpan(y, g.size[0], g.out[0]);
  const [x0, x1] = adaptiveSpan(x, g.size[1], g.out[1]);
  const taps = [];
  for (let iy = y0; iy < y1; iy++) for (let ix = x0; ix < x1; ix++) taps.push({ iy, ix, inside: true });
  return { taps, rows: y1 - y0, cols: x1 - x0, marks: [{ top: y0, left: x0, height: y1 - y0, width: x1 - x0 }] };
}

/** The values in the window of output (c, y, x) and what the layer makes of them. */
function pooled(g, isMax, a, input, tensor, { c, y, x }) {
  const [H, W] = g.size;
  const { taps } = windowAt(g, y, x);
  const cells = taps.map(t => ({ value: t.inside ? input.data[(c * H + t.iy) * W + t.ix] : 0, padding: !t.inside }));
  const real = cells.filter(t => !t.padding);
  const served = tensor.data[at(tensor.shape, { c, y, x })];
  if (isMax) {
    const best = real.reduce((m, t) => (t.value > m.value ? t : m), real[0]);
    best.marked = true;
    return { cells, result: best.value, served, best: taps[cells.indexOf(best)] };
  }
  // PyTorch's divisor: the window clipped to the padded input, or to the input without
  // count_include_pad; adaptive windows never reach padding, so theirs is the values counted.
  const sum = real.reduce((s, t) => s + t.value, 0);
  const span = i => Math.min(taps[0][i ? 'ix' : 'iy'] + g.kernel[i], g.size[i] + g.pad[i]) - taps[0][i ? 'ix' : 'iy'];
  const divisor = a.divisor_override || (g.adaptive || a.count_include_pad === false ? real.length : span(0) * span(1));
  return { cells, sum, divisor, result: sum / divisor, served };
}

/**
 * Global pooling's output, one value per channel, as one grid of channels to pick from (a 1×1 map
 * per channel would be a single colour): rows × cols with cols the divisor of C nearest above √C.
 */
function channelGrid(tensor, store) {
  const C = tensor.shape[0];
  let cols = Math.ceil(Math.sqrt(C));
  while (C % cols) cols++;
  return Object.assign(channelMap({ shape: [1, C / cols, cols], data: tensor.data }, 0, { store }), { gridCols: cols });
}

function intro(g, isMax, channels) {
  const what = isMax ? 'keeps the largest value' : 'takes the mean';
  if (!g.adaptive) {
    return `Each output value looks at a ${g.kernel.join('×')} window of one input channel and ${what}; ` +
      `the window moves ${g.stride.join('×')} at a time, so each map shrinks. Nothing is learned here: pooling has no weights.`;
  }
  const [H, W] = g.size, [h, w] = g.out;
  if (h * w === 1) {
    return `Global ${isMax ? 'max' : 'average'} pooling: each channel's whole ${H}×${W} map becomes one number, its ` +
      `${isMax ? 'largest value' : 'mean'}. What survives is how strongly each of the ${channels} features is present ` +
      `in the image, not where; the layers after it see ${channels} numbers. Nothing is learned here: no weights.`;
  }
  return `Adaptive pooling cuts each ${H}×${W} map into ${h}×${w} windows and ${what} of each: output row i reads ` +
    `input rows ⌊i·${H}/${h}⌋ to ⌈(i+1)·${H}/${h}⌉ − 1 (columns likewise), so the output size is fixed whatever the ` +
    'input size; windows may differ in size and overlap. Nothing is learned here: no weights.';
}

function equation(isMax, p) {
  const count = p.cells.filter(t => !t.padding).length;
  const what = isMax ? `the largest of the ${count} values` : `sum ${fmt(p.sum, 5)} ÷ ${p.divisor} values`;
  return checkLine([el('span', '', what)], p.result, p.served, ['poolResult', 'poolServed']);
}

/** The window part: output map, input map with the window, the values, the result. */
function windowLesson(container, ctx) {
  const { store, layer, tensor, input } = ctx;
  const isMax = store.layerTypes[layer.type]?.pooling === 'max';
  const g = geometry(layer, input, tensor);
  const [C, h, w] = tensor.shape;
  const global = g.adaptive && h * w === 1;
  // The picked position is the store's (store.picked(layer)); `drawn` is only the maps on screen.
  const drawn = { c: -1, out: null, in: null };
  const out = el('figure', 'conv-out'), outCaption = el('figcaption');
  const inBox = el('figure', 'conv-out'), inCaption = el('figcaption');
  const values = el('div', 'conv-math'), result = el('div', 'conv-result');
  result.setAttribute('aria-live', 'polite');
  const padNote = isMax ? 'padding, never the max'
    : layer.attributes?.count_include_pad === false ? 'padding, not counted' : 'padding, counted as 0';

  // Global pooling picks a channel from the grid of all of them; other pooling a cell of one channel.
  const outputMap = c => (global
    ? asOutputMap(channelGrid(tensor, store), 0, `${layer.name}: ${C} channels, one value each`,
      (row, col) => controls.set({ c: Math.min(C - 1, row * drawn.out.gridCols + col) }))
    : asOutputMap(channelMap(tensor, c, { store }), c, `${layer.name} output channel ${c}, ${h}×${w}`,
      (y, x) => controls.set({ y, x })));

  const showChannel = c => {
    if (!global || !drawn.out) {
      drawn.out = outputMap(c);
      out.replaceChildren(drawn.out.canvas, outCaption);
    }
    drawn.in = channelMap(input, c, { store, pad: g.drawPad });
    drawn.in.canvas.setAttribute('role', 'img');
    drawn.in.canvas.setAttribute('aria-label', `${layer.inputs[0]} channel ${c} with the pooling window`);
    inBox.replaceChildren(drawn.in.canvas, inCaption);
    drawn.c = c;
  };

  const draw = pos => {
    if (pos.c !== drawn.c) showChannel(pos.c);
    const win = windowAt(g, pos.y, pos.x);
    const p = pooled(g, isMax, layer.attributes || {}, input, tensor, pos);
    if (global) select(drawn.out, Math.floor(pos.c / drawn.out.gridCols), pos.c % drawn.out.gridCols);
    else select(drawn.out, pos.y, pos.x);
    const [py, px] = g.drawPad;
    const best = p.best ? [{ top: p.best.iy + py, left: p.best.ix + px, fill: true }] : [];
    drawn.in.draw([...win.marks, ...best]);
    outCaption.textContent = global
      ? `${layer.name}: all ${C} channels, one value each, in rows of ${drawn.out.gridCols}; channel ${pos.c} = ${fmt(p.served, 4)}. Click any channel.`
      : `${layer.name} channel ${pos.c}: row ${pos.y}, column ${pos.x} = ${fmt(p.served, 4)}. Click any value.`;
    inCaption.textContent = `${layer.inputs[0]} channel ${pos.c}; orange: the ${win.rows}×${win.cols} window` +
      `${isMax ? ', filled: the largest value' : ''}${g.drawPad.some(Boolean) ? `; dotted grey: ${padNote}` : ''}.`;
    container.dataset.position = `${pos.c},${pos.y},${pos.x}`;
    values.replaceChildren(windowValues(p, win, isMax, padNote, drawn.in));
    result.setAttribute('aria-live', controls.playing() ? 'off' : 'polite');
    result.replaceChildren(equation(isMax, p));
  };
  const update = pos => {
    store.pick(layer.name, pos);
    draw(pos);
  };

  // Global pooling opens on its largest channel, any other on channel 0's largest value.
  const fallback = global ? { c: argmax({ shape: [1, 1, C], data: tensor.data }, 0).x, y: 0, x: 0 } : argmax(tensor, 0);
  const start = pickedOr(store.picked(layer.name), tensor.shape, fallback);
  const controls = outputControls({ channels: C, rows: h, cols: w, start, onChange: update });
  const stage = el('div', 'conv-stage');
  const outBox = el('div', 'conv-out-box'), inputBox = el('div', 'conv-out-box');
  outBox.append(el('p', 'step', global ? '① Pick a channel' : '① Pick an output value'), out);
  inputBox.append(el('p', 'step', `② Its window on ${layer.inputs[0]}`), inBox);
  stage.append(outBox, inputBox);
  container.append(el('h3', '', `How one value of ${layer.name} is computed`), el('p', 'hint', intro(g, isMax, C)),
    controls.element, stage, el('p', 'step', isMax ? '③ Take the largest' : '③ Take the mean'), values, result);
  draw(controls.get());
}

/** The window's values as a grid coloured like the input map, or only their count if there are many. */
function windowValues(p, win, isMax, padNote, inMap) {
  if (win.rows * win.cols > LISTED) return el('p', 'hint', `The window holds ${win.rows}×${win.cols} values: too many to list.`);
  const cells = p.cells.map(t => (t.padding ? { ...t, text: isMax ? '–' : '0', title: padNote } : t));
  const grid = numberGrid(cells, win.rows, win.cols, { lo: inMap.lo, hi: inMap.hi,
    label: `values in the window${isMax ? '; the largest is outlined' : ''}`, digits: 3 });
  if (win.rows * win.cols <= 16) grid.classList.add('large');
  return figure(grid, isMax ? 'the values in the window; outlined: the largest' : 'the values in the window');
}

/** tensor shifted by dy rows and dx columns; uncovered pixels get fill[c]. */
function shifted({ shape, data }, dy, dx, fill) {
  const [C, H, W] = shape;
  const out = new Float32Array(data.length);
  for (let c = 0; c < C; c++) {
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const sy = y - dy, sx = x - dx;
        const inside = sy >= 0 && sy < H && sx >= 0 && sx < W;
        out[(c * H + y) * W + x] = inside ? data[(c * H + sy) * W + sx] : fill[c];
      }
    }
  }
  return { shape, data: out };
}

/** Mean |after − before| over mean |before|: 0 = unchanged. */
function relativeChange(before, after) {
  let diff = 0, size = 0;
  for (let i = 0; i < before.length; i++) {
    diff += Math.abs(after[i] - before[i]);
    size += Math.abs(before[i]);
  }
  return size > 0 ? diff / size : 0;
}

async function measure({ store, layer }, k, direction) {
  const [dy, dx] = { right: [0, k], down: [k, 0], diagonal: [k, k] }[direction];
  const { mean, std } = store.model.input;
  const fill = mean.map((m, c) => (0 - m) / std[c]); // a black pixel, normalised
  const image = shifted(store.result.input, dy, dx, fill);
  const before = layer.inputs[0];
  const names = before === 'input' ? [layer.name] : [layer.name, before];
  const served = await forwardTensor(store.model.id, image, names);
  const now = name => (name === 'input' ? image : served.layers[name]);
  const rows = [before, layer.name].map(name => ({ name, shape: now(name).shape,
    change: relativeChange(store.tensor(name).data, now(name).data) }));
  return { k, direction, image, rows };
}

// Bars run to 200 %: two maps with nothing in common differ by about twice their size.
function bar(value) {
  const track = el('span', 'shift-bar');
  track.style.setProperty('--p', Math.min(1, value / 2));
  track.title = 'bar from 0 % (unchanged) to 200 %';
  return track;
}

function report(m, store, layer) {
  const block = el('div', 'shift-result');
  block.dataset.shift = `${m.k},${m.direction}`;
  const pic = drawInput(el('canvas', 'map'), m.image, store.model.input.mean, store.model.input.std);
  pic.setAttribute('role', 'img');
  pic.setAttribute('aria-label', `the image shifted ${m.k} px ${m.direction}`);
  const list = el('dl', 'shift-rows');
  for (const [i, row] of m.rows.entries()) {
    const dt = el('dt', '', `${row.name} (${i ? 'after' : 'before'} pooling, ${row.shape.join('×')})`);
    const dd = el('dd');
    dd.dataset.change = i ? 'after' : 'before';
    dd.dataset.value = row.change;
    dd.append(bar(row.change), el('span', 'pct', `${(100 * row.change).toFixed(1)} %`));
    list.append(dt, dd);
  }
  const [a, b] = m.rows.map(r => r.change);
  const verdict = b < a ? `Pooling cut the change by ${(100 * (1 - b / a)).toFixed(0)} %.`
    : `Pooling did not reduce the change here (${(100 * (b / a - 1)).toFixed(0)} % more after pooling).`;
  block.append(figure(pic, `${m.k} px ${m.direction}`), list, el('p', 'verdict-line', verdict));
  return block;
}

/** The "shift the image" experiment: its controls and a list of measurements, newest first. */
function shiftLesson(container, ctx) {
  const { store, layer } = ctx;
  const amount = el('select');
  amount.dataset.control = 'shift';
  for (const k of [1, 2, 3]) amount.append(new Option(`${k} px`, k));
  const direction = el('select');
  direction.dataset.control = 'shift-direction';
  for (const d of ['right', 'down', 'diagonal']) direction.append(new Option(d, d));
  // The shift chosen is the store's, so it stays when the lesson is drawn again.
  const { shift = 1, direction: way = 'right' } = store.picked(layer.name);
  amount.value = String(shift);
  direction.value = way;
  amount.addEventListener('change', () => store.pick(layer.name, { shift: Number(amount.value) }));
  direction.addEventListener('change', () => store.pick(layer.name, { direction: direction.value }));
  const go = el('button', '', 'Shift and measure');
  go.type = 'button';
  go.dataset.action = 'shift';
  const status = el('p', 'status');
  status.setAttribute('role', 'status');
  const results = el('div', 'shift-results');
  const shiftLabel = el('label', 'pick', 'Shift the image by '), dirLabel = el('label', 'pick', 'direction ');
  shiftLabel.append(amount);
  dirLabel.append(direction);
  const api = el('a', 'api-link', 'API call');
  api.href = `${forwardUrl(store.model.id)}&layers=${encodeURIComponent(`${layer.name},${layer.inputs[0]}`)}`;
  const row = el('div', 'player');
  row.append(shiftLabel, dirLabel, go, api);
  go.addEventListener('click', async () => {
    go.disabled = true;
    const timer = setTimeout(() => { status.className = 'status busy'; status.textContent = 'Running the model on the shifted image…'; }, 300);
    try {
      results.prepend(report(await measure(ctx, Number(amount.value), direction.value), store, layer));
      status.className = 'status';
      status.textContent = '';
    } catch (error) {
      status.className = 'status error';
      status.textContent = error.message;
    } finally {
      clearTimeout(timer);
      go.disabled = false;
    }
  });
  container.append(el('h3', '', 'Does pooling make the maps shift-tolerant? Measure it'),
    el('p', 'hint', `Move the image a few pixels, run the model again, and compare each layer with the unshifted run: ` +
      `mean |change| as a share of the mean |value|, before (${layer.inputs[0]}) and after (${layer.name}) pooling. ` +
      'Bars run from 0 % (unchanged) to 200 % (nothing in common).'),
    row, status, results);
}

export async function render(container, ctx) {
  if (!ctx.input || ctx.tensor.shape.length !== 3) return;
  windowLesson(container, ctx);
  if (ctx.store.result?.input && ctx.store.model?.input) shiftLesson(container, ctx);
}
