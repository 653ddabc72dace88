// Small canvas charts for the teaching views: a function plot with labelled axes, and a strip of
// signed bars. Sizes are CSS pixels; canvases are sharp on high-density screens.

import { colour } from './colors.js';

/** The page's ink colours, read from the CSS custom properties in base.css. */
export function theme() {
  const css = getComputedStyle(document.documentElement);
  const get = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
  return { ink: get('--ink', '#1d2330'), muted: get('--muted', '#5b6475'), line: get('--line', '#dde1e8'),
    accent: get('--accent', '#2f6fde'), paper: get('--paper', '#f5f6f8') };
}

/** The diverging scale's ends, for marks that mean "negative" and "positive". */
export const signColour = sign => `rgb(${colour(sign < 0 ? -1 : 1, -1, 1).join(',')})`;

/** A canvas of width×height CSS pixels and its 2-D context, scaled for the device pixel ratio. */
export function chartCanvas(width, height, label) {
  const canvas = document.createElement('canvas');
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  if (label) {
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', label);
  }
  const ctx = canvas.getContext('2d');
  ctx.scale(ratio, ratio);
  return { canvas, ctx };
}

/** Round tick values over [lo, hi] with a 1-2-5 step, about `count` of them. */
export function ticks(lo, hi, count = 5) {
  const raw = (hi - lo) / count || 1;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map(m => m * power).find(s => s >= raw);
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(+t.toFixed(10));
  return out;
}

/**
 * Draw grid, axes through 0 and labels; return the data → pixel mapping of the plot area.
 * `xFormat` / `yFormat` (optional) turn a tick value into its label.
 */
export function plotFrame(ctx, { width, height, x, y, xLabel, yLabel, xFormat = format, yFormat = format }) {
  const pad = { left: 44, right: 12, top: 12, bottom: 36 };
  const px = v => pad.left + (v - x[0]) / (x[1] - x[0]) * (width - pad.left - pad.right);
  const py = v => height - pad.bottom - (v - y[0]) / (y[1] - y[0]) * (height - pad.top - pad.bottom);
  const colours = theme();
  ctx.font = '11px system-ui, sans-serif';
  ctx.lineWidth = 1;
  ctx.strokeStyle = colours.line;
  ctx.fillStyle = colours.muted;
  ctx.textAlign = 'center';
  for (const t of ticks(x[0], x[1], 6)) {
    line(ctx, px(t), py(y[0]), px(t), py(y[1]));
    ctx.fillText(xFormat(t), px(t), height - pad.bottom + 14);
  }
  ctx.textAlign = 'right';
  for (const t of ticks(y[0], y[1], 4)) {
    line(ctx, px(x[0]), py(t), px(x[1]), py(t));
    ctx.fillText(yFormat(t), pad.left - 6, py(t) + 4);
  }
  ctx.strokeStyle = colours.muted;
  if (y[0] <= 0 && y[1] >= 0) line(ctx, px(x[0]), py(0), px(x[1]), py(0));
  if (x[0] <= 0 && x[1] >= 0) line(ctx, px(0), py(y[0]), px(0), py(y[1]));
  ctx.fillStyle = colours.ink;
  ctx.textAlign = 'center';
  ctx.fillText(xLabel, (pad.left + width - pad.right) / 2, height - 4);
  ctx.save();
  ctx.translate(11, (pad.top + height - pad.bottom) / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText(yLabel, 0, 0);
  ctx.restore();
  return { px, py, x, y };
}

function line(ctx, x0, y0, x1, y1) {
  ctx.beginPath();
  ctx.moveTo(x0, y0);
  ctx.lineTo(x1, y1);
  ctx.stroke();
}

const format = t => (Math.abs(t) >= 1000 || (t !== 0 && Math.abs(t) < 0.01) ? t.toExponential(0) : String(t));

/** Shade the x range [from, to] of the plot area (clamped to it). */
export function band(ctx, frame, from, to, fill) {
  const a = frame.px(Math.max(from, frame.x[0]));
  const b = frame.px(Math.min(to, frame.x[1]));
  if (b <= a) return;
  ctx.fillStyle = fill;
  ctx.fillRect(a, frame.py(frame.y[1]), b - a, frame.py(frame.y[0]) - frame.py(frame.y[1]));
}

/** The curve y = f(x) over the plot's x range. */
export function curve(ctx, frame, f, colour, width = 2) {
  const [x0, x1] = frame.x;
  ctx.save();
  clipTo(ctx, frame);
  ctx.beginPath();
  for (let i = 0; i <= 400; i++) {
    const x = x0 + (x1 - x0) * i / 400;
    if (i === 0) ctx.moveTo(frame.px(x), frame.py(f(x)));
    else ctx.lineTo(frame.px(x), frame.py(f(x)));
  }
  ctx.strokeStyle = colour;
  ctx.lineWidth = width;
  ctx.stroke();
  ctx.restore();
}

function clipTo(ctx, frame) {
  const [left, right, top, bottom] = [frame.px(frame.x[0]), frame.px(frame.x[1]), frame.py(frame.y[1]), frame.py(frame.y[0])];
  ctx.beginPath();
  ctx.rect(left, top, right - left, bottom - top);
  ctx.clip();
}

/** How many values fall in each of `bins` x intervals, as bars rising from the plot's bottom edge. */
export function histogram(ctx, frame, values, fill, bins = 60, share = 0.3) {
  const [x0, x1] = frame.x;
  const counts = new Array(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.max(0, Math.floor((v - x0) / (x1 - x0) * bins)))]++;
  const most = Math.max(...counts) || 1;
  const bottom = frame.py(frame.y[0]);
  const tall = (bottom - frame.py(frame.y[1])) * share;
  const width = (frame.px(x1) - frame.px(x0)) / bins;
  ctx.fillStyle = fill;
  counts.forEach((n, i) => {
    const h = n ? Math.max(1, n / most * tall) : 0;
    ctx.fillRect(frame.px(x0) + i * width, bottom - h, width - 0.5, h);
  });
}

/** A dot at (x, y) in data coordinates. */
export function dot(ctx, frame, x, y, fill, radius = 2) {
  ctx.beginPath();
  ctx.arc(frame.px(x), frame.py(y), radius, 0, 2 * Math.PI);
  ctx.fillStyle = fill;
  ctx.fill();
}

/** Bars for values[i] up (blue) or down (red) from a middle line, one column per index. */
export function barStrip(ctx, values, width, height) {
  let top = 0;
  for (const v of values) top = Math.max(top, Math.abs(v));
  const mid = height / 2;
  const step = width / values.length;
  values.forEach((v, i) => {
    const h = top ? v / top * (mid - 1) : 0;
    ctx.fillStyle = signColour(v);
    ctx.fillRect(i * step, h > 0 ? mid - h : mid, Math.max(1, step - (step > 3 ? 1 : 0)), Math.abs(h) || 0.5);
  });
  ctx.fillStyle = theme().muted;
  ctx.fillRect(0, mid - 0.5, width, 1);
  return top;
}

/**
 * A line through the points (xs[i], ys[i]) in data coordinates, clipped to the plot area; `dots`
 * also marks each point (for sparse series such as one value per epoch), and a lone point is always
 * marked. Non-finite values break the line. Returns how many points were drawn.
 */
export function series(ctx, frame, xs, ys, colour, { width = 2, dots = false } = {}) {
  ctx.save();
  clipTo(ctx, frame);
  ctx.beginPath();
  let drawn = 0, open = false;
  for (let i = 0; i < xs.length; i++) {
    if (!Number.isFinite(ys[i])) { open = false; continue; }
    const [px, py] = [frame.px(xs[i]), frame.py(ys[i])];
    if (open) ctx.lineTo(px, py);
    else ctx.moveTo(px, py);
    open = true;
    drawn++;
  }
  ctx.strokeStyle = colour;
  ctx.lineWidth = width;
  ctx.lineJoin = 'round';
  ctx.stroke();
  ctx.restore();  // dots are not clipped: a point on the plot's edge stays whole
  if (dots || drawn === 1) {
    ctx.fillStyle = colour;
    for (let i = 0; i < xs.length; i++) {
      if (!Number.isFinite(ys[i])) continue;
      ctx.beginPath();
      ctx.arc(frame.px(xs[i]), frame.py(ys[i]), width + 1.5, 0, 2 * Math.PI);
      ctx.fill();
    }
  }
  return drawn;
}
