// The Forward / Backward switch, and in Backward the loss: which class, which loss function, its value.

import { el, sig } from '../draw/dom.js';

const LOSSES = [
  ['cross_entropy', 'cross-entropy'],
  ['mse', 'mean squared error'],
  ['logit', 'raw logit (score)'],
];

/** The switch and loss bar, built once per model; later calls only update what they show. */
export function render(container, store) {
  if (!store.model) return;
  if (container.model !== store.model) build(container, store);
  for (const button of container.querySelectorAll('[data-mode]')) {
    button.setAttribute('aria-pressed', String(button.dataset.mode === store.mode));
  }
  const bar = container.querySelector('.loss-bar');
  bar.hidden = !store.backward;
  const predicted = store.result?.prediction;
  const first = bar.querySelector('[data-control=target] option[value=""]');
  first.textContent = predicted ? `predicted: ${predicted.label}` : 'the predicted class';
  bar.querySelector('[data-control=target]').value = store.target === null ? '' : String(store.target);
  bar.querySelector('[data-control=loss]').value = store.lossFunction;
  const value = bar.querySelector('[data-view=loss]');
  const g = store.gradients;
  value.textContent = g ? `loss = ${sig(g.loss)}` : '';
  value.dataset.loss = g ? String(g.loss) : '';
}

function build(container, store) {
  container.model = store.model;
  const modes = el('div', { className: 'modes', role: 'group', 'aria-label': 'Show the forward pass or the backward pass' },
    ...[['forward', 'Forward', 'each layer\'s output'], ['backward', 'Backward', 'the loss\'s gradient for each layer\'s output']]
      .map(([mode, text, title]) => {
        const button = el('button', { type: 'button', textContent: text, title, dataset: { mode } });
        button.addEventListener('click', () => store.set({ mode }));
        return button;
      }));
  const target = el('select', { dataset: { control: 'target' }, 'aria-label': 'Target class of the loss' },
    new Option('the predicted class', ''), ...store.model.classes.map((name, i) => new Option(`${i}: ${name}`, String(i))));
  target.addEventListener('change', () => store.set({ target: target.value === '' ? null : Number(target.value) }));
  const loss = el('select', { dataset: { control: 'loss' }, 'aria-label': 'Loss function' },
    ...LOSSES.map(([value, text]) => new Option(text, value)));
  loss.addEventListener('change', () => store.set({ lossFunction: loss.value }));
  const bar = el('div', { className: 'loss-bar' },
    el('label', {}, 'Target ', target), el('label', {}, 'Loss ', loss),
    el('output', { dataset: { view: 'loss' }, 'aria-live': 'polite' }));
  container.replaceChildren(modes, bar);
}
