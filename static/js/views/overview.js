// The whole network at once: one column per layer, every channel a small heatmap.

import { SIZES } from '../draw/colors.js';
import { drawInput, drawMap, mapCanvas, maps, scaleFor } from '../draw/heatmap.js';

/** Draw one tensor's channels into `column` as small canvases. */
function drawColumn(column, tensor, store, label) {
  const { count, h, w } = maps(tensor);
  const strip = tensor.shape.length === 1;
  for (let c = 0; c < count; c++) {
    const canvas = mapCanvas(`${label}, channel ${c + 1} of ${count}`);
    const [lo, hi] = scaleFor(store.scale, tensor, c, store.globalRange);
    // A 1-D layer ([N]) is drawn as a tall strip: N values top to bottom.
    drawMap(canvas, tensor.data, c * h * w, strip ? w : h, strip ? 1 : w, lo, hi);
    canvas.style.width = strip ? '10px' : `${SIZES.overviewCell}px`;
    if (strip) canvas.style.height = `${Math.min(4 * w, 320)}px`;
    canvas.dataset.channel = c;
    column.append(canvas);
  }
}

export function render(container, store) {
  container.replaceChildren();
  if (!store.result) return;
  const columns = [{ name: 'input', type: 'input', output_shape: store.result.input.shape }, ...store.layers];
  columns.forEach((layer, i) => {
    const column = document.createElement('figure');
    column.className = 'column';
    column.dataset.layer = layer.name;
    if (i - 1 === store.cursor) column.classList.add('current');
    const maps = document.createElement('div');
    maps.className = 'maps';
    if (i === 0) {  // the input as the picture it is, not as a heatmap of normalised values
      const canvas = mapCanvas('the input image', SIZES.overviewCell);
      maps.append(drawInput(canvas, store.result.input, store.model.input.mean, store.model.input.std));
    } else {
      drawColumn(maps, store.tensor(layer.name), store, layer.name);
    }
    const caption = document.createElement('figcaption');
    const name = document.createElement('strong');
    name.textContent = layer.name;
    const meta = document.createElement('span');
    meta.textContent = `${layer.type} · ${layer.output_shape.join('×')}`;
    caption.append(name, meta);
    if (layer.inputs) caption.title = `from ${layer.inputs.join(', ')}`;
    column.append(maps, caption);
    if (i > 0) {
      column.tabIndex = -1;
      column.addEventListener('click', () => store.set({ cursor: i - 1 }));
    }
    container.append(column);
  });
  container.querySelector('.current')?.scrollIntoView({ block: 'nearest', inline: 'nearest' });
}
