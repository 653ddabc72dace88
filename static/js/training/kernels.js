// The first conv layer's kernels of the watched run, redrawn as snapshots arrive: one heatmap per
// kernel on a diverging scale shared by the snapshot (red −, white 0, blue +). A slider goes back
// through the snapshots; at its right end it follows the run.

import { SIZES, legendGradient } from '../draw/colors.js';
import { count, num } from '../draw/dom.js';
import { drawMap, mapCanvas, range } from '../draw/heatmap.js';

let drawn = null;  // a DOM cache, not page state: the snapshot on show, so a frame without a new one redraws nothing

/** The snapshot index on show: the store's choice, or the latest while following. */
export function shownIndex(run, chosen) {
  const n = run.snapshots.length;
  return chosen === null || chosen >= n ? n - 1 : chosen;
}

export function render(panel, run, chosen) {
  const $ = name => panel.querySelector(`[data-view=${name}]`);
  const slider = panel.querySelector('[data-control=snapshot]');
  const grid = $('kernels');
  const n = run.snapshots.length;
  const index = shownIndex(run, chosen);
  slider.max = Math.max(0, n - 1);
  slider.value = Math.max(0, index);
  slider.disabled = n < 2;
  $('kernel-layer').textContent = run.start ? `(${run.start.kernel_layer})` : '';
  panel.querySelector('.legend').hidden = index < 0;
  if (index < 0) {
    $('snapshot-at').textContent = run.final ? 'none: the run did not train' : 'waiting for the first step…';
    grid.replaceChildren();
    grid.dataset.step = '';
    drawn = null;
    return;
  }
  const snapshot = run.snapshots[index];
  const following = chosen === null || chosen >= n - 1;
  slider.setAttribute('aria-valuetext', `step ${snapshot.step}`);
  $('snapshot-at').textContent = `step ${count(snapshot.step)} of ${count(run.summary.total_steps)}`
    + (following && !run.final ? ' (following the run)' : '') + ` · ${index + 1} of ${n} snapshots`;
  if (drawn === snapshot) return;
  drawn = snapshot;

  const { shape, data } = snapshot.kernels;  // [out, in, kh, kw]
  const [out, inp, kh, kw] = shape;
  const [lo, hi] = range(data);
  const m = Math.max(-lo, hi) || 1;
  $('kernel-lo').textContent = num(-m, 2);
  $('kernel-hi').textContent = num(m, 2);
  $('kernel-ramp').style.background = legendGradient(-m, m);
  if (grid.childElementCount !== out * inp) {
    const size = Math.round(SIZES.kernelCell * 1.4);
    grid.style.gridTemplateColumns = `repeat(${inp === 1 ? Math.min(out, 8) : inp}, ${size}px)`;
    const canvases = [];
    for (let o = 0; o < out; o++) {
      for (let i = 0; i < inp; i++) {
        const canvas = mapCanvas(`kernel ${o + 1}${inp > 1 ? `, input ${i + 1}` : ''}`, size);
        canvas.dataset.kernel = `${o},${i}`;
        canvases.push(canvas);
      }
    }
    grid.replaceChildren(...canvases);
    grid.setAttribute('aria-label', `${out * inp} kernels of ${kh}×${kw}`);
  }
  [...grid.children].forEach((canvas, k) => drawMap(canvas, data, k * kh * kw, kh, kw, -m, m));
  grid.dataset.step = snapshot.step;
}

/** Forget what is drawn (another run is shown). */
export function reset() { drawn = null; }
