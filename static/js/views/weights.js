// A layer's parameters drawn beside its maps: conv kernels as an out×in grid, matrices, bias strips.

import { backwardUrl, getWeights, weightsUrl } from '../api.js';
import { SIZES } from '../draw/colors.js';
import { drawMap, mapCanvas, range } from '../draw/heatmap.js';

const cache = new Map(); // "model/layer" -> Promise of weights; weights never change while served

export function weightsOf(modelId, layer) {
  const key = `${modelId}/${layer}`;
  if (!cache.has(key)) cache.set(key, getWeights(modelId, layer));
  return cache.get(key);
}

/** The colour range of a parameter, or of a gradient (`signed`: symmetric, zero in the middle). */
function span(tensor, signed) {
  const [lo, hi] = range(tensor.data);
  const m = Math.max(-lo, hi);
  return signed ? (m > 0 ? [-m, m] : [0, 0]) : [lo, hi];
}

function kernelGrid(weight, signed) {
  const [out, inp, kh, kw] = weight.shape;
  const [lo, hi] = span(weight, signed);
  const grid = document.createElement('div');
  grid.className = 'kernels';
  // One row per output channel; a single input channel gets rows of up to 8 kernels instead.
  grid.style.gridTemplateColumns = `repeat(${inp === 1 ? Math.min(out, 8) : inp}, auto)`;
  grid.setAttribute('aria-label', `${out} × ${inp} kernels of ${kh}×${kw}`);
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < inp; i++) {
      const canvas = mapCanvas(`kernel for output ${o + 1}, input ${i + 1}`, SIZES.kernelCell * Math.min(1, 12 / inp) + 8);
      drawMap(canvas, weight.data, (o * inp + i) * kh * kw, kh, kw, lo, hi);
      canvas.dataset.kernel = `${o},${i}`;
      grid.append(canvas);
    }
  }
  return grid;
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
