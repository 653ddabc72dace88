// The backward lesson for any layer: what the gradient drawn above means, how this kind of layer
// passes it on (the chain rule, in words, from the server's table of layer types), what the served
// numbers show, and, for a layer with parameters, one optimizer step: the kernels before, the
// update, and after, with the loss before and after — all computed by the server (POST /step).

import { step, stepUrl } from '../api.js';
import { count, el, percent, sig } from '../draw/dom.js';
import { parameterFigure } from './weights.js';

const LOSSES = {
  cross_entropy: 'cross-entropy −log p(target)',
  mse: 'squared error between the probabilities and the one-hot target',
  logit: 'the target\'s raw score (logit); its gradient shows what raises that score',
};

/** Zero count, largest |g| and where it is, and the L2 norm of a gradient tensor. */
function summary(tensor) {
  let zeros = 0, norm = 0, best = 0, at = 0;
  const { data } = tensor;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v === 0) zeros++;
    norm += v * v;
    if (Math.abs(v) > Math.abs(best)) [best, at] = [v, i];
  }
  return { zeros, norm: Math.sqrt(norm), best, at };
}

/** "channel c, row y, column x" (or "[i]") of a flat index into a tensor. */
function where(shape, i) {
  if (shape.length !== 3) return `[${i}]`;
  const [, h, w] = shape;
  return `channel ${Math.floor(i / (h * w))}, row ${Math.floor(i / w) % h}, column ${i % w}`;
}

function facts(store, layer, tensor) {
  const g = store.gradients;
  const { zeros, norm, best, at } = summary(tensor);
  const target = store.model.classes[g.target];
  const list = el('ul', { className: 'facts' },
    el('li', {}, `Loss: ${LOSSES[g.lossFunction] ?? g.lossFunction} for class “${target}” = `,
      el('strong', { dataset: { loss: g.loss } }, sig(g.loss)), '.'),
    el('li', {}, `Gradient size (L2 norm) here: ${norm.toPrecision(3)}; largest: ${best.toPrecision(3)} at ${where(tensor.shape, at)}.`),
    el('li', { dataset: { zeroGradients: zeros } }, `${count(zeros)} of ${count(tensor.data.length)} values (${percent(zeros, tensor.data.length)}) get no gradient at all.`));
  if (g.lossFunction !== 'logit' && g.loss < 1e-3) {
    list.append(el('li', {}, 'The model is already sure of this class, so the loss and every gradient are tiny: choose another target class above to see what would push it there.'));
  }
  return list;
}

const LR_RANGE = [-5, 0];  // the slider moves log10(lr)

/** The one-step experiment: optimizer, learning rate, and what the step did to this layer. */
function stepPanel(ctx) {
  const { store, layer } = ctx;
  // The optimizer and learning rate picked are the store's (store.picked(layer)); lr null: the
  // server's default for the optimizer. `asked` numbers the requests, so only the latest lands.
  const chosen = () => ({ optimizer: 'sgd', lr: null, ...store.picked(layer.name) });
  let asked = 0;
  const optimizer = el('select', { dataset: { control: 'optimizer' }, 'aria-label': 'Optimizer' },
    ...store.optimizers.map(o => new Option(o.name, o.id)));
  optimizer.value = chosen().optimizer;
  const slider = el('input', { type: 'range', min: LR_RANGE[0], max: LR_RANGE[1], step: 0.25,
                               value: chosen().lr === null ? -2 : Math.log10(chosen().lr),
                               dataset: { control: 'lr' }, 'aria-label': 'Learning rate (log scale)' });
  const lrText = el('output', { className: 'lr' });
  const result = el('div', { className: 'step-result', 'aria-live': 'polite' });
  const link = el('a', { className: 'api-link', textContent: 'API' });

  const run = async () => {
    const ticket = ++asked;
    result.dataset.busy = '';
    const { optimizer: picked, lr } = chosen();
    const options = { target: store.gradients.target, loss: store.gradients.lossFunction, optimizer: picked,
                      lr, layers: [layer.name] };
    link.href = stepUrl(store.model.id);
    try {
      const answer = await step(store.model.id, store.resultSource, options);
      if (ticket !== asked) return;
      slider.value = String(Math.log10(answer.lr));
      lrText.textContent = `lr = ${answer.lr.toPrecision(2)}`;
      result.replaceChildren(...stepResult(store, layer, answer));
    } catch (error) {
      if (ticket === asked) result.replaceChildren(el('p', { className: 'status error' }, error.message));
    } finally {
      if (ticket === asked) delete result.dataset.busy;
    }
  };
  optimizer.addEventListener('change', () => { store.pick(layer.name, { optimizer: optimizer.value, lr: null }); run(); });
  slider.addEventListener('input', () => { lrText.textContent = `lr = ${(10 ** Number(slider.value)).toPrecision(2)}`; });
  slider.addEventListener('change', () => { store.pick(layer.name, { lr: 10 ** Number(slider.value) }); run(); });

  const panel = el('div', { className: 'step-panel' },
    el('h4', {}, `One step of learning on this image `, link),
    el('p', { className: 'hint' }, `The server builds a fresh optimizer, takes one step on ${layer.name}'s parameters with these gradients, and evaluates the loss again. Only this layer changes; the served model does not. A first step has no history: momentum's equals SGD's, and Adam's, RMSprop's and Adagrad's move every weight by about the same amount whatever its gradient's size.`),
    el('div', { className: 'step-controls' }, el('label', {}, 'Optimizer ', optimizer), el('label', {}, 'Learning rate ', slider), lrText),
    result);
  run();
  return panel;
}

/** A probability as a percentage, or in exponent form when it would round to 0.00 %. */
const chance = p => (p > 0 && p < 1e-4 ? `${p.toExponential(1)}` : `${(100 * p).toFixed(2)} %`);

function stepResult(store, layer, answer) {
  const target = answer.target;
  const p0 = answer.prediction.probabilities[target], p1 = answer.prediction_after.probabilities[target];
  const lower = answer.loss_after < answer.loss;
  const line = el('p', { className: 'step-loss' },
    'Loss ', el('strong', { dataset: { lossBefore: answer.loss } }, sig(answer.loss)), ' → ',
    el('strong', { dataset: { lossAfter: answer.loss_after } }, sig(answer.loss_after)),
    ` (${lower ? 'lower' : 'not lower'}); p(“${store.model.classes[target]}”) ${chance(p0)} → ${chance(p1)}.`);
  const rows = [];
  for (const [key, p] of Object.entries(answer.layers[layer.name] ?? {})) {
    rows.push(el('div', { className: 'step-row', dataset: { param: key } },
      parameterFigure(layer, `${key} before`, p.before, false),
      parameterFigure(layer, `${key} update`, p.update, true),
      parameterFigure(layer, `${key} after`, p.after, false)));
  }
  return [line, ...rows];
}

export async function render(container, ctx) {
  const { store, layer, tensor } = ctx;
  if (!store.gradients) return;
  container.append(
    el('h3', {}, `How the gradient passes through ${layer.name}`),
    el('p', { className: 'hint' }, 'Each value above is ∂loss/∂value: how much the loss would change if that value alone rose a little. Blue: raising it raises the loss; red: raising it lowers the loss; white: no effect.'),
    el('p', { className: 'hint', dataset: { rule: layer.type } }, store.layerTypes[layer.type]?.backward ?? 'The gradient goes back through this layer by the chain rule.'),
    facts(store, layer, tensor));
  if (Object.keys(layer.parameters).length) container.append(stepPanel(ctx));
}
