// The lab's curves on canvas: one run's loss and accuracy as it trains (training per logged step,
// test per epoch), and several runs' curves overlaid. Values are the events' own; accuracy is shown
// in per cent. Each canvas says how many points it drew in data-points / data-series.

import { plotFrame, series } from '../draw/chart.js';
import { SERIES } from '../draw/colors.js';
import { count, el } from '../draw/dom.js';

export const HEIGHT = 230;
export const TRAIN = SERIES[0];
export const TEST = SERIES[1];

/** Size a canvas to its box's width (and `height`) in CSS pixels, sharp on dense screens; its context. */
function prepare(canvas, height = HEIGHT) {
  const width = Math.max(240, Math.floor(canvas.parentElement.clientWidth));
  const ratio = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  return { ctx, width, height };
}

/** A y range from 0 to a little above the largest value (at least `floor`). */
function upTo(values, floor) {
  let top = 0;
  for (const v of values) if (Number.isFinite(v) && v > top) top = v;
  return [0, Math.max(top * 1.08, floor)];
}

// Step ticks as 500, 1k, 1.5k, 20k: short enough that the last one fits at the plot's right edge.
const stepAxis = t => (t >= 1000 ? `${+(t / 1000).toFixed(1)}k` : String(t));
const last = list => (list.length ? list[list.length - 1] : null);

/** The live chart of one run: 'loss' or 'accuracy', training and test. */
export function drawRun(canvas, run, which) {
  const { ctx, width, height } = prepare(canvas);
  const scale = which === 'accuracy' ? 100 : 1;
  const train = run.steps.map(s => s[which] * scale);
  const test = run.epochs.map(e => e[`test_${which}`] * scale);
  const total = Math.max(1, run.summary.total_steps);
  const y = which === 'accuracy' ? [0, 100] : upTo([...train, ...test], 0.1);
  const frame = plotFrame(ctx, { width, height, x: [0, total], y, xLabel: 'step',
    yLabel: which === 'accuracy' ? 'accuracy (%)' : 'loss', xFormat: stepAxis });
  const points = series(ctx, frame, run.steps.map(s => s.step), train, TRAIN, { width: 1.6 });
  const testPoints = series(ctx, frame, run.epochs.map(e => e.step), test, TEST, { width: 2, dots: true });
  canvas.dataset.points = points;
  canvas.dataset.testPoints = testPoints;
  const name = which === 'accuracy' ? 'accuracy' : 'loss';
  const show = v => (which === 'accuracy' ? `${v.toFixed(1)} %` : v.toFixed(3));
  canvas.setAttribute('aria-label', `${name} over ${count(total)} steps: ${points} training points`
    + (points ? `, the last ${show(last(train))}` : '')
    + `; ${testPoints} test points` + (testPoints ? `, the last ${show(last(test))}` : '') + '.');
}

/** Swatches naming the two lines of a live chart. */
export function legend(node, run) {
  const every = run.summary.settings.log_every;
  node.replaceChildren(
    el('span', { className: 'key' }, el('span', { className: 'swatch', style: { background: TRAIN } }),
      every > 1 ? `training, mean over every ${every} steps` : 'training, each step'),
    el('span', { className: 'key' }, el('span', { className: 'swatch dot', style: { background: TEST } }),
      'test set, at each epoch end and at the end'));
}

const METRICS = {
  loss: { from: 'steps', key: 'loss', name: 'training loss' },
  accuracy: { from: 'steps', key: 'accuracy', name: 'training accuracy', percent: true },
  test_loss: { from: 'epochs', key: 'test_loss', name: 'test loss' },
  test_accuracy: { from: 'epochs', key: 'test_accuracy', name: 'test accuracy', percent: true },
};

/** A run's points for a metric along 'step' or 'epoch': {xs, ys}. */
export function points(run, metric, axis) {
  const m = METRICS[metric];
  const list = run[m.from];
  const per = run.summary.steps_per_epoch || 1;
  return { xs: list.map(p => (axis === 'epoch' ? p.step / per : p.step)),
           ys: list.map(p => p[m.key] * (m.percent ? 100 : 1)) };
}

/** Several runs' curves for one metric, each in its colour. Returns how many runs have points. */
export function drawCompare(canvas, runs, colours, metric, axis) {
  const { ctx, width, height } = prepare(canvas, HEIGHT + 40);
  const m = METRICS[metric];
  const all = runs.map(r => points(r, metric, axis));
  const right = Math.max(1, ...runs.map(r => (axis === 'epoch'
    ? r.summary.total_steps / (r.summary.steps_per_epoch || 1) : r.summary.total_steps)));
  const y = m.percent ? [0, 100] : upTo(all.flatMap(p => p.ys), 0.1);
  const frame = plotFrame(ctx, { width, height, x: [0, right], y, xLabel: axis === 'epoch' ? 'epoch' : 'step',
    yLabel: m.percent ? `${m.name} (%)` : m.name, xFormat: axis === 'epoch' ? String : stepAxis });
  let drawn = 0;
  all.forEach((p, i) => {
    if (series(ctx, frame, p.xs, p.ys, colours[i], { width: 2, dots: m.from === 'epochs' })) drawn++;
  });
  canvas.dataset.series = drawn;
  canvas.setAttribute('aria-label', `${m.name} of ${runs.length} runs along ${axis}s`);
  return drawn;
}

/** The last value of a metric for a run, as text ('' when there is none yet). */
export function lastValue(run, metric) {
  const m = METRICS[metric];
  const p = last(run[m.from]);
  if (!p) return '';
  return m.percent ? `${(p[m.key] * 100).toFixed(1)} %` : p[m.key].toFixed(3);
}

export const metricName = metric => METRICS[metric].name;
