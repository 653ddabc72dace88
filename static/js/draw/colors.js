// Every colour scale and size the page uses, in one place.

export const SIZES = {
  overviewCell: 36,   // px, one channel in the overview
  detailCell: 112,    // px, one channel in the detail panel
  kernelCell: 44,     // px, one kernel
};

// Sequential scale for activations: near-white for low values to deep blue for high ones.
const SEQUENTIAL = [[247, 251, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]];
// Diverging scale for signed values (weights, gradients): red − , white 0, blue +.
const DIVERGING = [[178, 24, 43], [239, 138, 98], [247, 247, 247], [103, 169, 207], [33, 102, 172]];

function ramp(stops, t) {
  const x = Math.max(0, Math.min(1, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  return stops[i].map((c, k) => Math.round(c + (stops[i + 1][k] - c) * f));
}

/** RGB for value v in [lo, hi]; signed ranges use the diverging scale centred on 0. */
export function colour(v, lo, hi) {
  if (!Number.isFinite(v)) return [255, 0, 255];
  if (lo < 0 && hi > 0) {
    const m = Math.max(-lo, hi);
    return ramp(DIVERGING, 0.5 + v / (2 * m));
  }
  return ramp(SEQUENTIAL, hi > lo ? (v - lo) / (hi - lo) : 0);
}

// Attribution overlays: a map of non-negative values (saliency, Grad-CAM) as heat, yellow to red.
const HEAT = [[255, 237, 160], [254, 178, 76], [240, 59, 32], [189, 0, 38]];

/**
 * RGBA for one attribution value over an image: signed maps use the diverging scale, non-negative
 * ones the heat scale; the opacity grows with |v| / m, so values near zero leave the image visible.
 */
export function overlay(v, m, signed) {
  if (!Number.isFinite(v)) return [255, 0, 255, 255];
  const t = m > 0 ? Math.min(1, Math.abs(v) / m) : 0;
  const rgb = signed ? ramp(DIVERGING, 0.5 + (m > 0 ? v / (2 * m) : 0)) : ramp(HEAT, t);
  return [...rgb, Math.round(255 * Math.sqrt(t))];
}

/** A CSS gradient for an attribution legend: −m … 0 … m, or 0 … m. */
export function overlayGradient(signed) {
  const stops = signed ? [-1, -0.5, 0, 0.5, 1] : [0, 0.25, 0.5, 0.75, 1];
  return `linear-gradient(to right, ${stops.map(t => `rgba(${overlay(t, 1, signed).map((c, i) => (i === 3 ? (c / 255).toFixed(2) : c)).join(',')})`).join(',')})`;
}

// The two ramps precomputed at 256 levels, for drawing many values at once (heatmap.js). Each entry
// is one RGBA pixel packed in a Uint32 in the platform's byte order, so a Uint32Array view over an
// ImageData's buffer takes entries as they are. Entry i is ramp(stops, i / 255): the same colours as
// colour(), with t rounded to the nearest 1/255 (at most a unit or two off per channel).
function table(stops) {
  const bytes = new Uint8ClampedArray(256 * 4);
  for (let i = 0; i < 256; i++) bytes.set([...ramp(stops, i / 255), 255], 4 * i);
  return new Uint32Array(bytes.buffer);
}
const SEQUENTIAL_LUT = table(SEQUENTIAL);
const DIVERGING_LUT = table(DIVERGING);
/** The packed pixel for values that are not finite: magenta, as colour() gives. */
export const NOT_FINITE = new Uint32Array(new Uint8ClampedArray([255, 0, 255, 255]).buffer)[0];

/**
 * How to colour values over [lo, hi] from a table, choosing the scale as colour() does:
 * entry = round((v - base) * k), clamped to 0…255.
 */
export function lookup(lo, hi) {
  if (lo < 0 && hi > 0) {
    const m = Math.max(-lo, hi);
    return { table: DIVERGING_LUT, base: -m, k: 255 / (2 * m) };
  }
  return { table: SEQUENTIAL_LUT, base: lo, k: hi > lo ? 255 / (hi - lo) : 0 };
}

/** A CSS gradient matching colour() over [lo, hi], for legends. */
export function legendGradient(lo, hi) {
  const stops = [0, 0.25, 0.5, 0.75, 1].map(t => `rgb(${colour(lo + (hi - lo) * t, lo, hi).join(',')})`);
  return `linear-gradient(to right, ${stops.join(',')})`;
}

// Categorical colours for lines drawn together (the training lab: one per run, training vs test),
// told apart on white and by most colour-blind readers (after Okabe & Ito, darkened for thin lines).
export const SERIES = ['#2f6fde', '#d55e00', '#009e73', '#cc79a7', '#8a6d00', '#56b4e9', '#6a3d9a', '#1d2330'];
