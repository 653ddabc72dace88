// What the click-a-value lessons (pool, norm, merge) share: one channel drawn large enough to point
// at single values, the output map to pick from, and the line that sets the page's own result
// beside the served value.

import { el, exact, fmt, hooked } from './cells.js';
import { scaleFor } from './heatmap.js';
import { pickable } from './picker.js';
import { LESSON, ZoomMap, cellSize } from './zoom.js';

// The page's float64 arithmetic against PyTorch's float32: what counts as agreeing.
const TOLERANCE = 1e-4;

/**
 * Channel c of a [C, H, W] tensor as a ZoomMap about `target` px across, coloured over `range`
 * (default: the store's colour scale); `pad` = [rows, cols] of padding drawn around it.
 */
export function channelMap(tensor, c, { store, target = LESSON.bigMap, range = null, pad = [0, 0] }) {
  const [, h, w] = tensor.shape;
  const [lo, hi] = range ?? scaleFor(store.scale, tensor, c, store.globalRange);
  const cell = cellSize(h + 2 * pad[0], w + 2 * pad[1], target);
  const zoom = new ZoomMap(el('canvas', 'map'), tensor.data, c * h * w, h, w, lo, hi, { cell, pad });
  return Object.assign(zoom, { lo, hi });
}

/** Make a map the lesson's output map (tests find it as [data-output-map]): click or arrows pick. */
export function asOutputMap(zoom, c, label, onPick) {
  zoom.canvas.dataset.outputMap = '';
  zoom.canvas.dataset.channel = c;
  pickable(zoom, label, onPick);
  return zoom;
}

/** Outline cell (y, x) of a map, and remember it for the arrow keys. */
export function select(zoom, y, x) {
  zoom.canvas.dataset.selected = `${y},${x}`;
  zoom.draw([{ top: y, left: x }]);
}

/**
 * `parts… = result   served by the API: served   ✓ difference`: the page's own result with
 * data-<resultHook>, the served value with data-<servedHook>, both exact in data-value for tests.
 */
export function checkLine(parts, result, served, [resultHook, servedHook]) {
  const diff = Math.abs(result - served);
  const agree = diff <= TOLERANCE * Math.max(1, Math.abs(served));
  const said = diff === 0 ? 'difference 0 (identical)'
    : `difference ${diff.toExponential(1)} ${agree ? '(float32 rounding)' : ': more than float32 rounding'}`;
  const line = el('p', 'equation');
  line.append(...parts, el('span', 'op', '='), hooked(exact(result), resultHook, result),
    el('span', 'vs', 'served by the API:'), hooked(exact(served), servedHook, served),
    el('span', agree ? 'agree' : 'disagree', said));
  return line;
}

/** Where (c, y, x) of a [C, H, W] tensor sits in its data. */
export const at = ([, h, w], { c, y, x }) => (c * h + y) * w + x;

/** A number to 4 decimals with a real minus sign, for the lessons' worked arithmetic. */
export const n4 = v => fmt(v, 4).replace('-', '−');

/** The same, in parentheses when negative: a number that follows an operator. */
export const term = v => (v < 0 ? `(${n4(v)})` : n4(v));
