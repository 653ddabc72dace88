// Where a sliding window sits: which input cells one output value of a convolution or pooling
// layer reads, from the layer's PyTorch attributes. Geometry for drawing, not the layer's maths.

/** A PyTorch pair attribute (int, [a], [a, b], null) as [rows, cols]. */
export function pair(v, fallback) {
  if (v == null || (Array.isArray(v) && !v.length)) return Array.isArray(fallback) ? fallback : [fallback, fallback];
  if (Array.isArray(v)) return [v[0], v[v.length > 1 ? 1 : 0]];
  return [v, v];
}

/**
 * The window of a layer: kernel, stride, padding (a pair, 'same' or 'valid'), dilation, over an
 * input of size [H, W] that gives an output of size [outH, outW] (as served).
 */
export function windowGeometry({ kernel, stride, padding, dilation = [1, 1] }, size, out) {
  let pad = [0, 0];
  if (padding === 'same') pad = kernel.map((k, i) => Math.floor(dilation[i] * (k - 1) / 2));
  else if (padding !== 'valid') pad = pair(padding, 0);
  // Grey border to draw: the padding, or further where the last window runs past it (ceil_mode).
  const drawPad = [0, 1].map(i => Math.max(0, pad[i],
    (out[i] - 1) * stride[i] - pad[i] + (kernel[i] - 1) * dilation[i] + 1 - size[i]));
  return { kernel, stride, pad, dilation, size, out, drawPad };
}

/** The kernel taps of output (y, x) in kernel order: {ky, kx, iy, ix, inside}. */
export function tapsAt(g, y, x) {
  const taps = [];
  for (let ky = 0; ky < g.kernel[0]; ky++) {
    for (let kx = 0; kx < g.kernel[1]; kx++) {
      const iy = y * g.stride[0] - g.pad[0] + ky * g.dilation[0];
      const ix = x * g.stride[1] - g.pad[1] + kx * g.dilation[1];
      const inside = iy >= 0 && iy < g.size[0] && ix >= 0 && ix < g.size[1];
      taps.push({ ky, kx, iy, ix, inside });
    }
  }
  return taps;
}

/** Index into an H×W map for a tap, by padding mode; -1 where the padding is zeros. */
export function sourceIndex(tap, [H, W], mode = 'zeros') {
  if (tap.inside) return tap.iy * W + tap.ix;
  const fold = {
    reflect: (i, n) => { const p = 2 * (n - 1) || 1; i = ((i % p) + p) % p; return i < n ? i : p - i; },
    replicate: (i, n) => Math.max(0, Math.min(n - 1, i)),
    circular: (i, n) => ((i % n) + n) % n,
  }[mode];
  return fold ? fold(tap.iy, H) * W + fold(tap.ix, W) : -1;
}

/** Outlines for a ZoomMap with g.drawPad: the window's box, and each tap when dilated. */
export function windowMarks(g, y, x) {
  const [py, px] = g.drawPad;
  const top = y * g.stride[0] - g.pad[0] + py;
  const left = x * g.stride[1] - g.pad[1] + px;
  const height = (g.kernel[0] - 1) * g.dilation[0] + 1;
  const width = (g.kernel[1] - 1) * g.dilation[1] + 1;
  const marks = [{ top, left, height, width }];
  if (g.dilation[0] > 1 || g.dilation[1] > 1) {
    for (const t of tapsAt(g, y, x)) marks.push({ top: t.iy + py, left: t.ix + px, thin: true });
  }
  return marks;
}
