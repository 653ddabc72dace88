// The whole network at once: one column per layer, all its channels stacked in one canvas.
//
// One canvas per column, not one per channel: a few hundred small canvases cost far more to create
// and to hand to the compositor than their pixels do. The columns are built once per model and
// repainted in place for a new result or colour scale; a step with ← → only moves the highlight.

import { SIZES } from '../draw/colors.js';
import { drawInput, fillMap, maps, scaleFor } from '../draw/heatmap.js';

const GAP = 2;  // px on screen between two channels of a column

// What is on screen: the container, the model and result it shows, and per column
// {figure, canvas, layer, tensor's layout, ImageData}. Null until the first result.
let view = null;

/**
 * How a tensor fills its column canvas. Channels of h×w are drawn `zoom`× (a whole number, so every
 * value stays a crisp block) to about SIZES.overviewCell px wide, then scaled by CSS (`scale`) to
 * exactly that width; `gap` bitmap rows (left transparent) part two channels. A 1-D layer ([N]) is
 * one tall strip, N values top to bottom.
 */
function layoutOf(tensor) {
  const { count, h, w } = maps(tensor);
  const key = tensor.shape.join('×');
  if (tensor.shape.length === 1) {
    return { key, strip: true, count, h: w, w: 1, zoom: 1, gap: 0, pitch: w, width: 1, height: w,
             cssWidth: 10, cssHeight: Math.min(4 * w, 320) };
  }
  const zoom = Math.max(1, Math.floor(SIZES.overviewCell / w));
  const scale = SIZES.overviewCell / (w * zoom);
  const gap = count > 1 ? Math.max(1, Math.round(GAP / scale)) : 0;
  const pitch = h * zoom + gap;
  const height = count * pitch - gap;
  return { key, strip: false, count, h, w, zoom, gap, pitch, width: w * zoom, height,
           cssWidth: SIZES.overviewCell, cssHeight: height * scale };
}

function setLayout(column, tensor) {
  const layout = layoutOf(tensor);
  const { canvas } = column;
  canvas.width = layout.width;
  canvas.height = layout.height;
  canvas.style.width = `${layout.cssWidth}px`;
  canvas.style.height = `${layout.cssHeight}px`;
  canvas.dataset.channels = layout.count;
  const from = column.layer.inputs ? `, from ${column.layer.inputs.join(', ')}` : '';
  const what = layout.strip ? `${layout.h} values` : `${layout.count} channel${layout.count > 1 ? 's' : ''} of ${layout.h}×${layout.w}`;
  canvas.setAttribute('aria-label', `${column.layer.name}: ${what}${from}`);
  column.layout = layout;
  column.ctx = canvas.getContext('2d');
  column.image = column.ctx.createImageData(layout.width, layout.height);
  column.pixels = new Uint32Array(column.image.data.buffer);
}

/**
 * Repaint every column from the store, in its mode, under its colour scale; the DOM stays as it
 * is. Backward shows the gradient for each layer's output on a scale centred on zero, and for the
 * input its gradient as a heatmap in place of the picture.
 */
function paint(store) {
  const { model, scale, backward } = store;
  const whole = store.shownRange;
  for (const column of view.columns) {
    const { canvas, layer } = column;
    if (layer.name === 'input' && !backward) {
      drawInput(canvas, store.result.input, model.input.mean, model.input.std);
      canvas.setAttribute('aria-label', 'the input image');
      column.layout = null;
      continue;
    }
    const tensor = store.shown(layer.name);
    if (!tensor) continue;
    if (column.layout?.key !== tensor.shape.join('×')) setLayout(column, tensor);
    const { count, h, w, zoom, pitch, width, strip } = column.layout;
    const shared = scale === 'channel' ? null : scaleFor(scale, tensor, 0, whole, backward);
    for (let c = 0; c < count; c++) {
      const [lo, hi] = shared ?? scaleFor('channel', tensor, c, null, backward);
      if (strip) fillMap(column.pixels, 0, 1, tensor.data, 0, h, 1, lo, hi);
      else fillMap(column.pixels, c * pitch * width, width, tensor.data, c * h * w, h, w, lo, hi, zoom);
    }
    column.ctx.putImageData(column.image, 0, 0);
  }
  Object.assign(view, painted(store));
}

/** The store fields a paint depends on: when none changed, the pixels on show are still right. */
function painted(store) {
  const { result, gradients, mode, scale, shownRange } = store;
  return { result, gradients, mode, scale, range: shownRange };
}

/** Which channel (or, in a strip, which value) of `column` is under the pointer, and its box in CSS px. */
function pointAt(column, event) {
  const { canvas, layout } = column;
  const box = canvas.getBoundingClientRect();
  const y = Math.max(0, (event.clientY - box.top) / box.height * canvas.height);
  if (!layout) return { text: 'the image as the model sees it', box: null };
  if (layout.strip) {
    const i = Math.min(layout.h - 1, Math.floor(y));
    return { text: `value ${i} of ${layout.h}`, box: null };
  }
  const c = Math.min(layout.count - 1, Math.floor(y / layout.pitch));
  const perPx = box.height / canvas.height;
  return { text: `channel ${c}`, box: { top: c * layout.pitch * perPx, height: layout.h * layout.zoom * perPx } };
}

function hover(column, tip, event) {
  const { text, box } = pointAt(column, event);
  const { layer, canvas, mark } = column;
  tip.textContent = [layer.name, text, layer.inputs && `from ${layer.inputs.join(', ')}`].filter(Boolean).join(' · ');
  tip.hidden = false;
  const right = event.clientX + 14 + tip.offsetWidth > window.innerWidth - 4;
  tip.style.left = `${right ? event.clientX - 10 - tip.offsetWidth : event.clientX + 14}px`;
  tip.style.top = `${event.clientY + 16}px`;
  if (mark) {
    mark.hidden = !box;
    if (box) {
      mark.style.top = `${canvas.offsetTop + box.top}px`;
      mark.style.left = `${canvas.offsetLeft}px`;
      mark.style.width = `${canvas.offsetWidth}px`;
      mark.style.height = `${box.height}px`;
    }
  }
}

function unhover(column, tip) {
  tip.hidden = true;
  if (column.mark) column.mark.hidden = true;
}

/** The figures and canvases for the store's model, empty until painted. */
function build(container, store) {
  container.replaceChildren();
  const tip = document.createElement('div');
  tip.className = 'overview-tip';
  tip.hidden = true;
  tip.setAttribute('aria-hidden', 'true');  // the canvases' labels say the same for screen readers
  const layers = [{ name: 'input', type: 'input', output_shape: store.result.input.shape }, ...store.layers];
  const columns = layers.map((layer, i) => {
    const figure = document.createElement('figure');
    figure.className = 'column';
    figure.dataset.layer = layer.name;
    const box = document.createElement('div');
    box.className = 'maps';
    const canvas = document.createElement('canvas');
    canvas.className = 'map';
    canvas.setAttribute('role', 'img');
    const column = { figure, canvas, layer, layout: null, mark: null };
    if (i === 0) {  // the input as the picture it is, not as a heatmap of normalised values
      canvas.setAttribute('aria-label', 'the input image');
      canvas.dataset.channels = 1;
      canvas.style.width = canvas.style.height = `${SIZES.overviewCell}px`;
    } else {
      column.mark = document.createElement('div');
      column.mark.className = 'overview-mark';
      column.mark.hidden = true;
    }
    box.append(canvas, ...(column.mark ? [column.mark] : []));
    canvas.addEventListener('pointermove', event => hover(column, tip, event));
    canvas.addEventListener('pointerleave', () => unhover(column, tip));
    const caption = document.createElement('figcaption');
    const name = document.createElement('strong');
    name.textContent = layer.name;
    const meta = document.createElement('span');
    meta.textContent = `${layer.type} · ${layer.output_shape.join('×')}`;
    caption.append(name, meta);
    if (layer.inputs) caption.title = `from ${layer.inputs.join(', ')}`;
    figure.append(box, caption);
    if (i > 0) {
      figure.tabIndex = -1;
      figure.addEventListener('click', () => store.set({ cursor: i - 1 }));
    }
    container.append(figure);
    return column;
  });
  container.append(tip);
  view = { container, model: store.model, columns, current: null };
}

/** Mark the store's current layer and scroll the overview sideways (only) to show it. */
function highlight(store) {
  const figure = view.columns[store.cursor + 1]?.figure ?? null;
  if (figure === view.current) return;
  view.current?.classList.remove('current');
  figure?.classList.add('current');
  view.current = figure;
  if (!figure) return;
  const { container } = view;
  const box = figure.getBoundingClientRect();
  const left = box.left - container.getBoundingClientRect().left - container.clientLeft + container.scrollLeft;
  const right = left + box.width;
  if (left < container.scrollLeft) container.scrollLeft = left;
  else if (right > container.scrollLeft + container.clientWidth) container.scrollLeft = right - container.clientWidth;
}

/**
 * Show the store's result. Cheap when little changed: the DOM is rebuilt only for another model,
 * the pixels are redrawn only for another result or colour scale, a cursor move only moves `.current`.
 */
export function render(container, store) {
  if (!store.result) {
    container.replaceChildren();
    view = null;
    return;
  }
  const fresh = !view || view.container !== container || view.model !== store.model
    || view.columns[0].figure.parentNode !== container;
  if (fresh) build(container, store);
  const now = painted(store);
  if (fresh || Object.keys(now).some(key => view[key] !== now[key])) paint(store);
  highlight(store);
}
