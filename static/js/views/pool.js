// Pooling, one window at a time: pick an output value, see its window on the input map, the
// values in it, the chosen max (or the mean), and the served result. Then measure translation
// invariance: shift the image by 1–3 pixels, run the model on it, and compare the maps.

import { forwardTensor, forwardUrl } from '../api.js';
import { el, exact, figure, fmt, gap, hooked, numberGrid } from '../draw/cells.js';
import { drawInput, scaleFor } from '../draw/heatmap.js';
import { argmax, outputControls, pickable } from '../draw/picker.js';
import { pair, tapsAt, windowGeometry, windowMarks } from '../draw/window.js';
import { LESSON, ZoomMap, cellSize } from '../draw/zoom.js';

function geometry(layer, input, tensor) {
  const a = layer.attributes || {};
  const kernel = pair(a.kernel_size, 2);
  return windowGeometry({ kernel, stride: pair(a.stride, kernel), padding: a.padding ?? 0,
    dilation: pair(a.dilation, 1) }, input.shape.slice(1), tensor.shape.slice(1));
}

/** The values in the window of output (c, y, x) and what the layer makes of them. */
function pooled(g, isMax, a, input, tensor, { c, y, x }) {
  const [H, W] = g.size;
  const taps = tapsAt(g, y, x);
  const cells = taps.map(t => ({ value: t.inside ? input.data[(c * H + t.iy) * W + t.ix] : 0, padding: !t.inside }));
  const real = cells.filter(t => !t.padding);
  const served = tensor.data[(c * g.out[0] + y) * g.out[1] + x];
  if (isMax) {
    const best = real.reduce((m, t) => (t.value > m.value ? t : m), real[0]);
    best.marked = true;
    return { cells, result: best.value, served, best: taps[cells.indexOf(best)] };
  }
  // PyTorch's divisor: the window clipped to the padded input, or to the input without count_include_pad.
  const sum = real.reduce((s, t) => s + t.value, 0);
  const span = i => Math.min(taps[0][i ? 'ix' : 'iy'] + g.kernel[i], g.size[i] + g.pad[i]) - taps[0][i ? 'ix' : 'iy'];
  const divisor = a.divisor_override || (a.count_include_pad === false ? real.length : span(0) * span(1));
  return { cells, sum, divisor, result: sum / divisor, served };
}

function mapZoom(tensor, c, h, w, store, opts) {
  const [lo, hi] = scaleFor(store.scale, tensor, c, store.globalRange);
  const canvas = el('canvas', 'map');
  return Object.assign(new ZoomMap(canvas, tensor.data, c * h * w, h, w, lo, hi, opts), { lo, hi });
}

function equation(isMax, p) {
  const line = el('p', 'equation');
  const diff = Math.abs(p.result - p.served);
  line.append(
    el('span', '', isMax ? `the largest of the ${p.cells.filter(t => !t.padding).length} values` : `sum ${fmt(p.sum, 5)} ÷ ${p.divisor} values`),
    el('span', 'op', '='),
    hooked(exact(p.result), 'poolResult', p.result),
    el('span', 'vs', 'served by the API:'),
    hooked(exact(p.served), 'poolServed', p.served),
    el('span', diff <= 1e-5 * Math.max(1, Math.abs(p.served)) ? 'agree' : 'disagree', gap(diff)));
  return line;
}

/** The window part: output map, input map with the window, the values, the result. */
function windowLesson(container, ctx) {
  const { store, layer, tensor, input } = ctx;
  const isMax = layer.type === 'max_pool2d';
  const g = geometry(layer, input, tensor);
  const [C, h, w] = tensor.shape;
  const state = { c: -1 };
  const out = el('figure', 'conv-out'), outCaption = el('figcaption');
  const inBox = el('figure', 'conv-out'), inCaption = el('figcaption');
  const values = el('div', 'conv-math'), result = el('div', 'conv-result');
  result.setAttribute('aria-live', 'polite');
  const padNote = isMax ? 'padding, never the max'
    : layer.attributes?.count_include_pad === false ? 'padding, not counted' : 'padding, counted as 0';

  const update = pos => {
    if (pos.c !== state.c) {
      state.out = mapZoom(tensor, pos.c, h, w, store, { cell: cellSize(h, w, LESSON.bigMap) });
      state.out.canvas.dataset.outputMap = '';
      state.out.canvas.dataset.channel = pos.c;
      pickable(state.out, `${layer.name} output channel ${pos.c}, ${h}×${w}`, (y, x) => controls.set({ y, x }));
      const [H, W] = g.size;
      state.in = mapZoom(input, pos.c, H, W, store, { cell: cellSize(H + 2 * g.drawPad[0], W + 2 * g.drawPad[1], LESSON.bigMap), pad: g.drawPad });
      state.in.canvas.setAttribute('role', 'img');
      state.in.canvas.setAttribute('aria-label', `${layer.inputs[0]} channel ${pos.c} with the pooling window`);
      out.replaceChildren(state.out.canvas, outCaption);
      inBox.replaceChildren(state.in.canvas, inCaption);
      state.c = pos.c;
    }
    const p = pooled(g, isMax, layer.attributes || {}, input, tensor, pos);
    state.out.canvas.dataset.selected = `${pos.y},${pos.x}`;
    state.out.draw([{ top: pos.y, left: pos.x }]);
    const [py, px] = g.drawPad;
    const best = p.best ? [{ top: p.best.iy + py, left: p.best.ix + px, fill: true }] : [];
    state.in.draw([...windowMarks(g, pos.y, pos.x), ...best]);
    outCaption.textContent = `${layer.name} channel ${pos.c}: row ${pos.y}, column ${pos.x} = ${fmt(p.served, 4)}. Click any value.`;
    inCaption.textContent = `${layer.inputs[0]} channel ${pos.c}; orange: the ${g.kernel.join('×')} window` +
      `${isMax ? ', filled: the largest value' : ''}${g.drawPad.some(Boolean) ? `; dotted grey: ${padNote}` : ''}.`;
    container.dataset.position = `${pos.c},${pos.y},${pos.x}`;
    const cells = p.cells.map(t => (t.padding ? { ...t, text: isMax ? '–' : '0', title: padNote } : t));
    const grid = numberGrid(cells, g.kernel[0], g.kernel[1], { lo: state.in.lo, hi: state.in.hi,
      label: `values in the window${isMax ? '; the largest is outlined' : ''}`, digits: 3 });
    if (g.kernel[0] * g.kernel[1] <= 16) grid.classList.add('large');
    values.replaceChildren(figure(grid, isMax ? 'the values in the window; outlined: the largest' : 'the values in the window'));
    result.setAttribute('aria-live', controls.playing() ? 'off' : 'polite');
    result.replaceChildren(equation(isMax, p));
  };

  const controls = outputControls({ channels: C, rows: h, cols: w, start: argmax(tensor, 0), onChange: update });
  const stage = el('div', 'conv-stage');
  const outBox = el('div', 'conv-out-box'), inputBox = el('div', 'conv-out-box');
  outBox.append(el('p', 'step', '① Pick an output value'), out);
  inputBox.append(el('p', 'step', `② Its window on ${layer.inputs[0]}`), inBox);
  stage.append(outBox, inputBox);
  const stride = g.stride.join('×'), what = isMax ? 'keeps the largest value' : 'takes the mean';
  container.append(el('h3', '', `How one value of ${layer.name} is computed`),
    el('p', 'hint', `Each output value looks at a ${g.kernel.join('×')} window of one input channel and ${what}; ` +
      `the window moves ${stride} at a time, so each map shrinks. Nothing is learned here: pooling has no weights.`),
    controls.element, stage, el('p', 'step', isMax ? '③ Take the largest' : '③ Take the mean'), values, result);
  update(controls.get());
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
