// The whole network at once: one column per layer, all its channels stacked in one canvas.
//
// One canvas per column, not one per channel: a few hundred small canvases cost far more to create
// and to hand to the compositor than their pixels do. The columns are built once per model and
// repainted in place for a new result or colour scale; a step with ← → only moves the highlight.

import { SIZES } from '../draw/colors.js';
import { drawInput, fillMap, maps, scaleFor } from '../draw/heatmap.js';
import { drawLinks } from './links.js';

const GAP = 2;  // px on screen between two channels of a column

// A DOM cache, no choice of the person's (fold, filter, expanded blocks are the store's): what is on
// screen, the container, the model and result it shows, and per column {figure, canvas, layer,
// tensor's layout, ImageData}. Null until the first result.
let drawn = null;

/**
 * How a tensor fills its column canvas. Channels of h×w are drawn `zoom`× (a whole number, so every
 * value stays a crisp block) in `cols` columns (1; 2 past 32 channels; 4 past 128, so a 512-channel
 * layer stays a scrollable column, not a wall), then scaled by CSS to SIZES.overviewCell px wide;
 * `gap` bitmap pixels (left transparent) part two channels. A 1-D layer ([N]) is one tall strip, N
 * values top to bottom.
 */
function layoutOf(tensor) {
  const { count, h, w } = maps(tensor);
  const key = tensor.shape.join('×');
  if (tensor.shape.length === 1) {
    return { key, strip: true, count, h: w, w: 1, zoom: 1, gap: 0, cols: 1, pitchX: 1, pitchY: w, width: 1, height: w,
             cssWidth: 10, cssHeight: Math.min(4 * w, 320) };
  }
  const cols = count > 128 ? 4 : count > 32 ? 2 : 1;
  const rows = Math.ceil(count / cols);
  const zoom = Math.max(1, Math.floor(SIZES.overviewCell / cols / w));
  const gap = count > 1 ? Math.max(1, Math.round(GAP * cols * w * zoom / SIZES.overviewCell)) : 0;
  const pitchX = w * zoom + gap, pitchY = h * zoom + gap;
  const width = cols * pitchX - gap, height = rows * pitchY - gap;
  const scale = SIZES.overviewCell / width;
  return { key, strip: false, count, h, w, zoom, gap, cols, pitchX, pitchY, width, height,
           cssWidth: SIZES.overviewCell, cssHeight: height * scale };
}

/** A summary's [min, max]; for a gradient symmetric about zero, as scaleFor makes it. */
function summaryRange({ min, max }, signed) {
  if (!signed) return [min, max];
  const m = Math.max(-min, max);
  return m > 0 ? [-m, m] : [0, 0];
}

/** Where channel c starts in a column's pixels. */
function origin(layout, c) {
  const row = Math.floor(c / layout.cols), col = c % layout.cols;
  return row * layout.pitchY * layout.width + col * layout.pitchX;
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
  for (const column of drawn.columns) {
    const { canvas, layer } = column;
    if (layer.name === 'input' && !backward) {
      drawInput(canvas, store.result.input, model.input.mean, model.input.std);
      canvas.setAttribute('aria-label', 'the input image');
      column.layout = null;
      continue;
    }
    const tensor = store.overviewTensor(layer.name);
    if (!tensor) {  // a large model's gradient not fetched for this layer: blank, not stale
      column.ctx?.clearRect(0, 0, canvas.width, canvas.height);
      continue;
    }
    if (column.layout?.key !== tensor.shape.join('×')) setLayout(column, tensor);
    const { layout } = column;
    const { count, h, w, zoom, width, strip } = layout;
    // A thumbnail's own range is narrower than the layer's: per layer, use the served summary's.
    const summary = tensor !== store.shown(layer.name) ? store.summary(layer.name) : null;
    const shared = scale === 'channel' ? null
      : summary && scale === 'layer' ? summaryRange(summary, backward) : scaleFor(scale, tensor, 0, whole, backward);
    column.pixels.fill(0);
    for (let c = 0; c < count; c++) {
      const [lo, hi] = shared ?? scaleFor('channel', tensor, c, null, backward);
      if (strip) fillMap(column.pixels, 0, 1, tensor.data, 0, h, 1, lo, hi);
      else fillMap(column.pixels, origin(layout, c), width, tensor.data, c * h * w, h, w, lo, hi, zoom);
    }
    column.ctx.putImageData(column.image, 0, 0);
  }
  Object.assign(drawn, painted(store));
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
  const x = Math.max(0, (event.clientX - box.left) / box.width * canvas.width);
  const row = Math.floor(y / layout.pitchY), col = Math.min(layout.cols - 1, Math.floor(x / layout.pitchX));
  const c = Math.min(layout.count - 1, row * layout.cols + col);
  const perPx = box.height / canvas.height;
  const [r, k] = [Math.floor(c / layout.cols), c % layout.cols];
  return { text: `channel ${c}`, box: { top: r * layout.pitchY * perPx, left: k * layout.pitchX * perPx,
                                        width: layout.w * layout.zoom * perPx, height: layout.h * layout.zoom * perPx } };
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
      mark.style.left = `${canvas.offsetLeft + box.left}px`;
      mark.style.width = `${box.width}px`;
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
    const column = { figure, canvas, layer, layout: null, mark: null, group: groupOf(layer) };
    if (column.group) figure.dataset.group = column.group.module;
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
  // The last layer of each group stands for the folded group: its output is the block's output.
  const last = new Map();
  for (const column of columns) if (column.group) last.set(column.group.module, column);
  for (const [module, column] of last) {
    const size = columns.filter(c => c.group?.module === module).length;
    const toggle = document.createElement('button');
    toggle.type = 'button';
    toggle.className = 'fold-toggle';
    toggle.dataset.action = 'fold-group';
    toggle.dataset.group = module;
    toggle.dataset.size = size;
    toggle.addEventListener('click', event => {
      event.stopPropagation();
      const expanded = new Set(store.expanded);
      if (expanded.has(module)) expanded.delete(module); else expanded.add(module);
      store.set({ expanded });
    });
    column.toggle = toggle;
    column.figure.querySelector('figcaption').prepend(toggle);
  }
  drawn = { container, model: store.model, columns, current: null, last };
}

// Module classes that only hold other modules; a block is the first module inside them that does more.
const CONTAINERS = new Set(['Sequential', 'ModuleList', 'ModuleDict']);

/**
 * The block a layer belongs to, from its scope (the modules whose forward called it): the outermost
 * module that is not a mere container (a ResNet BasicBlock), else the innermost container (a
 * Sequential block of a VGG); null for a layer called by the model itself.
 */
function groupOf(layer) {
  const scope = layer.scope ?? [];
  if (!scope.length) return null;
  return scope.find(s => !CONTAINERS.has(s.type)) ?? scope[scope.length - 1];
}

/**
 * Which columns show: with `store.fold`, a group not expanded shows only its last layer, captioned
 * as the block; a filter (name or type) shows the matching layers, folded or not.
 */
function applyVisibility(store) {
  const query = store.filter.trim().toLowerCase();
  let shown = 0;
  for (const column of drawn.columns.slice(1)) {
    const { layer, group, figure, toggle } = column;
    const folded = store.fold && group && !store.expanded.has(group.module);
    const match = !query || layer.name.toLowerCase().includes(query) || layer.type.includes(query)
      || (group && group.module.toLowerCase().includes(query));
    const representative = group && drawn.last.get(group.module) === column;
    figure.hidden = query ? !match : Boolean(folded && !representative);
    figure.classList.toggle('folded', Boolean(!query && folded && representative));
    if (toggle) {
      toggle.hidden = !store.fold || Boolean(query);
      toggle.textContent = `${folded ? '▸' : '▾'} ${group.module} · ${group.type} (${toggle.dataset.size})`;
      toggle.setAttribute('aria-expanded', String(!folded));
    }
    if (!figure.hidden) shown++;
  }
  drawn.container.dataset.shown = shown;
  // Arcs only for the graph as it runs: between the matches of a search they would mislead.
  const key = query ? '' : drawn.columns.map(c => (c.figure.hidden ? 0 : 1)).join('');
  if (key !== drawn.linksKey) {
    drawn.linksKey = key;
    if (query) drawLinks(drawn.container, [], drawn.last);
    else drawLinks(drawn.container, drawn.columns, drawn.last);
  }
}

/** The tools above the overview: fold blocks, find a layer; built once per model. */
export function renderTools(container, store) {
  if (!store.model) return;
  if (container.model !== store.model) {
    container.model = store.model;
    const fold = document.createElement('input');
    fold.type = 'checkbox';
    fold.dataset.control = 'fold';
    fold.addEventListener('change', () => store.set({ fold: fold.checked }));
    const find = document.createElement('input');
    find.type = 'search';
    find.placeholder = 'name or type';
    find.dataset.control = 'find';
    find.setAttribute('aria-label', 'Find layers by name or type');
    find.addEventListener('input', () => store.set({ filter: find.value }));
    const foldLabel = document.createElement('label');
    foldLabel.append(fold, ' fold blocks');
    const findLabel = document.createElement('label');
    findLabel.append('Find ', find);
    const count = document.createElement('span');
    count.className = 'hint';
    count.dataset.view = 'shown-count';
    container.replaceChildren(findLabel, foldLabel, count);
  }
  const fold = container.querySelector('[data-control=fold]');
  fold.checked = store.fold;
  fold.closest('label').hidden = !store.layers.some(layer => layer.scope?.length);
  const shown = drawn?.container.dataset.shown;
  container.querySelector('[data-view=shown-count]').textContent =
    shown === undefined ? '' : `${shown} of ${store.layers.length} layers shown`;
}

/**
 * Mark the store's current layer and scroll the overview sideways (only) to show it; inside a
 * folded group, the group's column is marked.
 */
function highlight(store) {
  const column = drawn.columns[store.cursor + 1];
  let figure = column?.figure ?? null;
  if (figure?.hidden && column.group) figure = drawn.last.get(column.group.module)?.figure ?? figure;
  const { container } = drawn;
  // Scroll again when the columns changed width too (thumbnails arriving after blank columns).
  if (figure === drawn.current && container.scrollWidth === drawn.scrollWidth) return;
  drawn.scrollWidth = container.scrollWidth;
  drawn.current?.classList.remove('current');
  figure?.classList.add('current');
  drawn.current = figure;
  if (!figure) return;
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
    drawn = null;
    return;
  }
  const fresh = !drawn || drawn.container !== container || drawn.model !== store.model
    || drawn.columns[0].figure.parentNode !== container;
  if (fresh) build(container, store);
  const now = painted(store);
  if (fresh || Object.keys(now).some(key => drawn[key] !== now[key])) paint(store);
  applyVisibility(store);
  drawn.current = fresh ? null : drawn.current;
  highlight(store);
}
