// Channels drawn as heatmaps on canvas with ImageData: one pixel per value, scaled up by CSS.

import { NOT_FINITE, lookup, overlay } from './colors.js';

/** [min, max] of data[from, to), finite values only. */
export function range(data, from = 0, to = data.length) {
  let lo = Infinity, hi = -Infinity;
  for (let i = from; i < to; i++) {
    const v = data[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo === Infinity ? [0, 0] : [lo, hi];
}

/**
 * Write the h×w map at data[offset] as packed pixels (colors.js tables) into `out`, a Uint32Array
 * view of an ImageData's buffer, starting at pixel `at` of an image `stride` pixels wide; each value
 * becomes a zoom×zoom block. Returns out.
 */
export function fillMap(out, at, stride, data, offset, h, w, lo, hi, zoom = 1) {
  const { table, base, k } = lookup(lo, hi);
  const rowLength = w * zoom;
  for (let y = 0; y < h; y++) {
    const row = at + y * zoom * stride;
    const from = offset + y * w;
    for (let x = 0; x < w; x++) {
      const v = data[from + x];
      let pixel;
      if (v - v !== 0) pixel = NOT_FINITE;  // NaN or ±Infinity
      else {
        const t = (v - base) * k;
        pixel = table[t >= 255 ? 255 : t > 0 ? (t + 0.5) | 0 : 0];
      }
      if (zoom === 1) out[row + x] = pixel;
      else for (let i = row + x * zoom, end = i + zoom; i < end; i++) out[i] = pixel;
    }
    for (let r = 1; r < zoom; r++) out.copyWithin(row + r * stride, row, row + rowLength);
  }
  return out;
}

/** Draw an h×w map starting at data[offset] onto canvas, coloured over [lo, hi]. */
export function drawMap(canvas, data, offset, h, w, lo, hi) {
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(w, h);
  fillMap(new Uint32Array(image.data.buffer), 0, w, data, offset, h, w, lo, hi);
  ctx.putImageData(image, 0, 0);
  return canvas;
}

/** The maps of a tensor: [C,H,W] gives C maps of H×W; [N] gives one 1×N strip. */
export function maps(tensor) {
  const s = tensor.shape;
  if (s.length === 3) return { count: s[0], h: s[1], w: s[2] };
  if (s.length === 2) return { count: 1, h: s[0], w: s[1] };
  return { count: 1, h: 1, w: s[0] };
}

/**
 * Colour range for channel c under a scaling mode: per channel, per layer, or across all layers.
 * `signed` (gradients) widens it to be symmetric about zero, so zero is always the middle colour.
 */
export function scaleFor(mode, tensor, c, globalRange, signed = false) {
  const { h, w } = maps(tensor);
  // A channel of one value (global pooling's 512×1×1) has no range of its own: per channel, every
  // such map would be drawn in the same colour, so it takes the layer's range instead.
  if (mode === 'channel' && h * w === 1) mode = 'layer';
  let [lo, hi] = mode === 'channel' ? range(tensor.data, c * h * w, (c + 1) * h * w)
    : mode === 'global' && globalRange ? globalRange : range(tensor.data);
  if (signed) {
    const m = Math.max(-lo, hi);
    [lo, hi] = m > 0 ? [-m, m] : [0, 0];
  }
  return [lo, hi];
}

/** A new canvas element for one map, labelled for screen readers. */
export function mapCanvas(label, cssSize) {
  const canvas = document.createElement('canvas');
  canvas.className = 'map';
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', label);
  if (cssSize) canvas.style.width = canvas.style.height = `${cssSize}px`;
  return canvas;
}

/** The model's input [C,H,W] as a picture: normalisation undone with the card's mean and std. */
export function drawInput(canvas, tensor, mean, std) {
  const [c, h, w] = tensor.shape;
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(w, h);
  for (let i = 0; i < h * w; i++) {
    for (let k = 0; k < 3; k++) {
      const ch = c === 3 ? k : 0;
      const v = (tensor.data[ch * h * w + i] * std[ch] + mean[ch]) * 255;
      image.data[4 * i + k] = Math.max(0, Math.min(255, Math.round(v)));
    }
    image.data[4 * i + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
  return canvas;
}

/**
 * An attribution map [C,H,W] drawn as a see-through layer to put over the input: the channels
 * summed per pixel, coloured by overlay() against the largest |value|. Returns {m, signed}.
 */
export function drawAttribution(canvas, tensor) {
  const [c, h, w] = tensor.shape;
  const summed = new Float32Array(h * w);
  for (let k = 0; k < c; k++) for (let i = 0; i < h * w; i++) summed[i] += tensor.data[k * h * w + i];
  let m = 0, signed = false;
  for (const v of summed) {
    if (Number.isFinite(v)) m = Math.max(m, Math.abs(v));
    if (v < 0) signed = true;
  }
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(w, h);
  for (let i = 0; i < h * w; i++) image.data.set(overlay(summed[i], m, signed), 4 * i);
  ctx.putImageData(image, 0, 0);
  return { m, signed };
}
