// A layer's parameters drawn beside its maps: conv kernels as an out×in grid, matrices, bias strips.

import { backwardUrl, weightsOf, weightsUrl } from '../api.js';
import { SIZES } from '../draw/colors.js';
import { drawMap, fillMap, mapCanvas, range } from '../draw/heatmap.js';

/** The colour range of a parameter, or of a gradient (`signed`: symmetric, zero in the middle). */
function span(tensor, signed) {
  const [lo, hi] = range(tensor.data);
  const m = Math.max(-lo, hi);
  return signed ? (m > 0 ? [-m, m] : [0, 0]) : [lo, hi];
}

// Kernel grids are drawn into one canvas: a layer of 512×512 kernels would otherwise be a quarter
// of a million elements. Past MAX_SIDE outputs or inputs only the first ones are drawn (and said so).
const MAX_SIDE = 64;

function kernelGrid(weight, signed) {
  const [out, inp, kh, kw] = weight.shape;
  const [lo, hi] = span(weight, signed);
  // One row per output channel; a single input channel gets rows of up to 8 kernels instead.
  const rowsOut = Math.min(out, MAX_SIDE), colsIn = Math.min(inp, MAX_SIDE);
  const cols = inp === 1 ? Math.min(rowsOut, 8) : colsIn;
  const rows = inp === 1 ? Math.ceil(rowsOut / cols) : rowsOut;
  const zoom = Math.max(1, Math.round((SIZES.kernelCell * Math.min(1, 12 / colsIn) + 8) / Math.max(kh, kw)));
  const gap = 2, cellW = kw * zoom + gap, cellH = kh * zoom + gap;
  const canvas = mapCanvas(`${out} × ${inp} kernels of ${kh}×${kw}` +
    (out > rowsOut || inp > colsIn ? `; the first ${rowsOut} × ${colsIn} drawn` : ''));
  canvas.width = cols * cellW - gap;
  canvas.height = rows * cellH - gap;
  canvas.classList.add('kernels');
  canvas.dataset.kernels = `${rowsOut}x${colsIn}`;
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(canvas.width, canvas.height);
  const pixels = new Uint32Array(image.data.buffer);
  for (let o = 0; o < rowsOut; o++) {
    for (let i = 0; i < colsIn; i++) {
      const cell = inp === 1 ? o : o * cols + i;
      const [r, c] = [Math.floor(cell / cols), cell % cols];
      fillMap(pixels, r * cellH * canvas.width + c * cellW, canvas.width, weight.data, (o * inp + i) * kh * kw, kh, kw, lo, hi, zoom);
    }
  }
  ctx.putImageData(image, 0, 0);
  const figure = document.createElement('div');
  figure.className = 'kernel-grid';
  figure.append(canvas);
  if (out > rowsOut || inp > colsIn) {
    const note = document.createElement('p');
    note.className = 'hint';
    note.textContent = `The first ${rowsOut} of ${out} outputs × ${colsIn} of ${inp} inputs; the weights API has them all.`;
    figure.append(note);
  }
  return figure;
}

const OPEN_KERNELS = 64;  // more kernels than this start folded away, so the lesson below stays in reach

/** A kernel grid, folded in a closed <details> when it is large; drawn when first opened. */
function kernels(weight, name, signed = false) {
  const [out, inp] = weight.shape;
  if (out * inp <= OPEN_KERNELS) return kernelGrid(weight, signed);
  const details = document.createElement('details');
  details.className = 'kernel-fold';
  const summary = document.createElement('summary');
  const label = open => `${name} ${weight.shape.join('×')} — ${out * inp} kernels, ${open ? 'hide' : 'show'}`;
  summary.textContent = label(false);
  details.append(summary);
  details.addEventListener('toggle', () => {
    summary.textContent = label(details.open);
    if (details.open && details.childElementCount === 1) details.append(kernelGrid(weight, signed));
  });
  return details;
}

function matrix(tensor, label, signed = false) {
  const [lo, hi] = span(tensor, signed);
  const [h, w] = tensor.shape.length === 2 ? tensor.shape : [1, tensor.shape[0]];
  const canvas = mapCanvas(label);
  drawMap(canvas, tensor.data, 0, h, w, lo, hi);
  canvas.classList.add('matrix');
  canvas.style.width = `${Math.min(640, Math.max(160, w * 4))}px`;
  return canvas;
}

function heading(text, href) {
  const h = document.createElement('h3');
  h.textContent = text;
  const link = document.createElement('a');
  link.href = href;
  link.textContent = 'API';
  link.className = 'api-link';
  h.append(' ', link);
  return h;
}

/** One parameter (or gradient) tensor as a figure: kernels for 4-D, a matrix or strip otherwise. */
export function parameterFigure(layer, key, tensor, signed) {
  const block = document.createElement('figure');
  block.className = 'param';
  block.dataset.param = key;
  const caption = document.createElement('figcaption');
  const [lo, hi] = range(tensor.data);
  caption.textContent = `${key.replaceAll('_', ' ')} ${tensor.shape.join('×')} · ${lo.toPrecision(3)} … ${hi.toPrecision(3)}`;
  block.append(tensor.shape.length === 4 ? kernels(tensor, key, signed) : matrix(tensor, `${layer.name} ${key}`, signed), caption);
  return block;
}

/** Fetch and draw the parameters of `layer` into container; nothing for parameter-free layers. */
export async function render(container, store, layer) {
  container.replaceChildren();
  if (!Object.keys(layer.parameters).length && !Object.keys(layer.buffers || {}).length) return;
  container.append(heading('Parameters', weightsUrl(store.model.id, layer.name)));
  const weights = await weightsOf(store.model.id, layer.name);
  for (const [key, tensor] of Object.entries(weights)) container.append(parameterFigure(layer, key, tensor, false));
}

/**
 * In backward mode, the loss's gradient for each parameter of `layer`, drawn beside the parameters
 * on a scale centred on zero: red where it is negative (gradient descent raises that weight), blue
 * where it is positive (gradient descent lowers it).
 */
export function renderGradients(container, store, layer) {
  container.replaceChildren();
  const grads = store.backward ? store.gradients?.layers[layer.name] : null;
  if (!grads || (!grads.weight && !grads.bias)) return;
  container.append(heading('Gradients', `${backwardUrl(store.model.id)}&layers=${encodeURIComponent(layer.name)}`));
  if (grads.weight) container.append(parameterFigure(layer, 'weight_gradient', grads.weight, true));
  if (grads.bias) container.append(parameterFigure(layer, 'bias_gradient', grads.bias, true));
}
