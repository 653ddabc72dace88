// Where the network looks: an attribution map over the input, by any method the server lists
// (GET /api/attributions/methods), with its options as controls, an opacity slider and a
// side-by-side mode. The maps are the server's (Captum); the page only draws them.

import { attributionUrl } from '../api.js';
import { overlayGradient } from '../draw/colors.js';
import { el, sig } from '../draw/dom.js';
import { drawAttribution, drawInput } from '../draw/heatmap.js';

const NAMES = {
  saliency: 'Saliency', input_x_gradient: 'Input × gradient', integrated_gradients: 'Integrated gradients',
  grad_cam: 'Grad-CAM', guided_backprop: 'Guided backprop', guided_grad_cam: 'Guided Grad-CAM',
  smoothgrad: 'SmoothGrad', occlusion: 'Occlusion', deconvolution: 'Deconvolution',
};
const label = name => NAMES[name] ?? name.replaceAll('_', ' ');

/** One option's control, built from its description; `change(value)` gets a value the API takes. */
function control(option, value, change) {
  let input;
  if (option.enum) {
    input = el('select', {}, ...option.enum.map(v => new Option(v, v)));
    input.value = String(value ?? option.default);
  } else if (option.type === 'integer_pair') {
    // "4" or "4,6": the API reads a pair the same way.
    input = el('input', { type: 'text', inputMode: 'numeric', pattern: '\\s*\\d+\\s*(,\\s*\\d+\\s*)?', size: 5 });
    const v = value ?? option.default;
    input.value = Array.isArray(v) ? (v[0] === v[1] ? String(v[0]) : v.join(',')) : String(v ?? '');
  } else {
    input = el('input', { type: 'number', step: option.type === 'integer' ? 1 : 'any' });
    if (option.minimum !== null) input.min = option.minimum;
    if (option.maximum !== null) input.max = option.maximum;
    input.value = String(value ?? option.default ?? '');
  }
  input.dataset.option = option.name;
  input.title = option.description;
  input.addEventListener('change', () => {
    if (input.type === 'number') change(input.value === '' ? null : Number(input.value));
    else change(input.value);
  });
  return el('label', { className: 'option' }, `${option.name} `, input);
}

/** The controls, built once per model (and method); the map is redrawn by show(). */
function build(container, store) {
  container.model = store.model;
  container.method = store.attributionMethod;
  const method = store.methods.find(m => m.name === store.attributionMethod) ?? store.methods[0];
  const chooser = el('select', { dataset: { control: 'attribution-method' }, 'aria-label': 'Attribution method' },
    ...store.methods.map(m => new Option(label(m.name), m.name)));
  chooser.value = method.name;
  chooser.addEventListener('change', () => store.set({ attributionMethod: chooser.value, attributionOptions: {} }));
  const target = el('select', { dataset: { control: 'attribution-target' }, 'aria-label': 'Class to explain' },
    new Option('the predicted class', ''), ...store.model.classes.map((name, i) => new Option(`${i}: ${name}`, String(i))));
  target.addEventListener('change', () => store.set({ target: target.value === '' ? null : Number(target.value) }));
  const options = method.options.map(option => control(option, store.attributionOptions[option.name], value =>
    store.set({ attributionOptions: { ...store.attributionOptions, [option.name]: value } })));
  const opacity = el('input', { type: 'range', min: 0, max: 1, step: 0.05, dataset: { control: 'attribution-opacity' },
                                'aria-label': 'Opacity of the map over the image' });
  const side = el('input', { type: 'checkbox', dataset: { control: 'attribution-side' } });
  const base = el('canvas', { className: 'attr-base', role: 'img', 'aria-label': 'the input image' });
  const map = el('canvas', { className: 'attr-map', role: 'img', 'aria-label': 'attribution map' });
  const figure = el('figure', { className: 'attr-figure' }, el('div', { className: 'attr-stack' }, base, map));
  const look = changes => store.set({ attributionView: { ...store.attributionView, ...changes } });  // main.js: renderView
  opacity.addEventListener('input', () => look({ opacity: Number(opacity.value) }));
  side.addEventListener('change', () => look({ side: side.checked }));
  container.replaceChildren(
    el('label', { className: 'option' }, 'Method ', chooser),
    el('p', { className: 'hint', dataset: { summary: method.name } }, method.summary),
    el('label', { className: 'option' }, 'Explain ', target),
    ...options,
    figure,
    el('div', { className: 'attr-tools' }, el('label', {}, 'Opacity ', opacity), el('label', {}, side, ' side by side')),
    el('div', { className: 'legend attr-legend' }),
    el('p', { className: 'hint', dataset: { view: 'attribution-caption' } }),
    el('div', { className: 'attr-layer' }));
}

/** Draw the store's attribution (if it is for the image on show) over the input. */
function show(container, store) {
  const found = store.attribution;
  container.querySelector('[data-control=attribution-target]').value = store.target === null ? '' : String(store.target);
  const base = container.querySelector('.attr-base');
  if (store.result) drawInput(base, store.result.input, store.model.input.mean, store.model.input.std);
  const map = container.querySelector('.attr-map');
  const caption = container.querySelector('[data-view=attribution-caption]');
  const legend = container.querySelector('.attr-legend');
  const layer = container.querySelector('.attr-layer');
  if (!found) {
    map.getContext('2d').clearRect(0, 0, map.width, map.height);
    return;
  }
  const { m, signed } = drawAttribution(map, found.attribution);
  map.dataset.method = found.method;
  map.dataset.max = String(m);
  map.setAttribute('aria-label', `${label(found.method)} map for ${found.label}`);
  const bar = el('span', { className: 'ramp', style: { background: `${overlayGradient(signed)}, #000` } });
  legend.replaceChildren(el('span', {}, signed ? sig(-m, 3) : '0'), bar, el('span', {}, sig(m, 3)));
  caption.textContent = `${label(found.method)} for “${found.label}” (score ${sig(found.score, 3)})` +
    (found.layer ? ` at ${found.layer}, upsampled from ${found.layer_attribution.shape.slice(1).join('×')}.` : '.');
  const link = el('a', { className: 'api-link', href: attributionUrl(store.model.id), textContent: 'API' });
  caption.append(' ', link);
  layer.replaceChildren();
  if (found.layer_attribution) {
    const raw = el('canvas', { className: 'attr-raw', role: 'img', 'aria-label': `the map at ${found.layer}'s resolution` });
    drawAttribution(raw, found.layer_attribution);
    layer.append(el('figure', {}, raw, el('figcaption', {}, `at ${found.layer}`)));
  }
}

/** How the map lies over the image, from store.attributionView: its opacity, or beside it. */
export function renderView(container, store) {
  const { opacity, side } = store.attributionView;
  const map = container.querySelector('.attr-map');
  if (!map) return;
  container.querySelector('[data-control=attribution-opacity]').value = String(opacity);
  container.querySelector('[data-control=attribution-side]').checked = side;
  container.querySelector('.attr-figure').classList.toggle('side', side);
  map.style.opacity = side ? '' : String(opacity);
}

export function render(container, store) {
  if (!store.model || !store.methods?.length) return;
  if (container.model !== store.model || container.method !== store.attributionMethod) {
    build(container, store);
    renderView(container, store);
  }
  container.toggleAttribute('data-busy', Boolean(store.attributionBusy));
  show(container, store);
}
