// The run form, built from GET /api/training/options: every choice with its description as a hint,
// the optimizer's default learning rate filled in when the optimizer changes. The server validates;
// its 422 sentences are shown beside the fields they name.

import { count, el } from '../draw/dom.js';
import { rate } from './labels.js';

const id = name => `lab-${name}`;

/** A labelled control with a hint and a place for the server's complaint about it. */
function field(name, label, control, hint = '', wide = false) {
  control.id ||= id(name);
  control.name ||= name;
  control.setAttribute('aria-describedby', `${id(name)}-hint ${id(name)}-error`);
  return el('div', { className: wide ? 'lab-field wide' : 'lab-field', dataset: { field: name } },
    el('label', { htmlFor: control.id }, label),
    control,
    el('p', { className: 'hint', id: `${id(name)}-hint` }, hint),
    el('p', { className: 'field-error', id: `${id(name)}-error`, hidden: true }));
}

/** A select of choices; the chosen one's description is its hint and title. */
function choice(name, label, choices, value, text = c => c.name, hint = c => c?.description ?? '') {
  const select = el('select', {});
  for (const c of choices) select.append(el('option', { value: c.id, title: c.description }, text(c)));
  select.value = value;
  const node = field(name, label, select, '', true);
  const describe = () => {
    const chosen = choices.find(c => c.id === select.value);
    select.title = chosen?.description ?? '';
    node.querySelector('.hint').textContent = hint(chosen);
  };
  select.addEventListener('change', describe);
  describe();
  return node;
}

const number = (props) => el('input', { type: 'number', inputMode: 'decimal', ...props });

function fieldset(legend, ...children) {
  return el('fieldset', { className: 'lab-group' }, el('legend', {}, legend), ...children);
}

/** Fill `form` with controls for `options`; `start(settings)` is called on submit. */
export function build(form, options, start) {
  const d = options.defaults;
  const limits = options.limits;
  const optimizerRate = o => options.optimizers.find(x => x.id === o).learning_rate;

  // The dataset's long description (origin, folder) is its title; the hint says what matters here.
  const dataset = choice('dataset', 'Dataset', options.datasets, d.dataset,
    c => `${c.name} (${c.kind === 'full' ? 'full set' : 'subset'})`,
    c => `${c.kind === 'full' ? 'The full set, installed' : 'A subset shipped with ConvScope'}: ${count(c.train_size)} training `
      + `and ${count(c.test_size)} test images, ${c.classes.length} classes. Licence: ${c.licence}.`);
  const trainSize = field('train_size', 'Images', number({ min: 1, step: 1, placeholder: 'all', inputMode: 'numeric' }));
  const architecture = choice('architecture', 'Architecture', options.architectures, d.architecture,
    c => `${c.name} (${count(c.parameter_count)} parameters)`);
  const activation = choice('activation', 'Activation', options.activations, d.activation);
  const pooling = choice('pooling', 'Pooling', options.poolings, d.pooling);
  const loss = choice('loss', 'Loss', options.losses, d.loss);
  const optimizer = choice('optimizer', 'Optimizer', options.optimizers, d.optimizer);
  const lr = field('learning_rate', 'Learning rate', number({ min: 0, max: 10, step: 'any',
    value: rate(d.learning_rate ?? optimizerRate(d.optimizer)) }));
  const batch = field('batch_size', 'Batch size', number({ min: 1, max: limits.max_batch_size, step: 1,
    value: d.batch_size, inputMode: 'numeric' }), `Images per step, 1 to ${count(limits.max_batch_size)}.`);
  const seed = field('seed', 'Seed', number({ min: 0, step: 1, value: d.seed, inputMode: 'numeric' }),
    'Same settings and seed: same curve.');
  seed.querySelector('input').title = 'Draws the first weights, the images and their order: the same settings and seed give the same curve.';

  // Length: epochs or steps, one number.
  const unit = d.steps != null ? 'steps' : 'epochs';
  const lengthInput = number({ id: id('length'), name: 'amount', min: 1, step: 1, inputMode: 'numeric',
    value: d.steps ?? d.epochs ?? 1 });
  lengthInput.setAttribute('aria-describedby', `${id('length')}-hint ${id('length')}-error`);
  const radio = value => el('label', { className: 'unit' },
    el('input', { type: 'radio', name: 'unit', value, checked: value === unit }), ` ${value}`);
  const length = el('fieldset', { className: 'lab-field lab-length wide', dataset: { field: 'length' } },
    el('legend', {}, 'Train for'),
    el('div', { className: 'length-row' }, lengthInput, radio('epochs'), radio('steps')),
    el('p', { className: 'hint', id: `${id('length')}-hint` }),
    el('p', { className: 'field-error', id: `${id('length')}-error`, hidden: true }));

  const button = el('button', { type: 'submit', className: 'start', dataset: { action: 'start' } }, 'Start training');
  form.replaceChildren(
    fieldset('Data', dataset, trainSize, seed),
    fieldset('Network', architecture, activation, pooling),
    fieldset('Learning', loss, optimizer, lr, batch, length),
    el('div', { className: 'form-actions' }, button));

  const value = name => form.elements[name].value;
  const chosenUnit = () => form.querySelector('input[name=unit]:checked').value;
  const describe = () => {
    const data = options.datasets.find(x => x.id === value('dataset'));
    const images = Number(value('train_size')) || data.train_size;
    const perEpoch = Math.ceil(images / (Number(value('batch_size')) || 1));
    form.elements.train_size.max = data.train_size;
    trainSize.querySelector('.hint').textContent = `Blank: all ${count(data.train_size)}.`;
    form.elements.train_size.title = 'Train on this many images, drawn by the seed; fewer train faster.';
    lengthInput.setAttribute('aria-label', `Number of ${chosenUnit()}`);
    length.querySelector('.hint').textContent = `One epoch is ${count(perEpoch)} steps here. A run takes at most `
      + `${count(limits.max_steps)} steps and ${count(limits.max_seconds)} s.`;
    lr.querySelector('.hint').textContent = `Default: ${rate(optimizerRate(value('optimizer')))}.`;
  };
  form.elements.optimizer.addEventListener('change', () => {
    form.elements.learning_rate.value = rate(optimizerRate(value('optimizer')));
  });
  form.addEventListener('input', describe);
  form.addEventListener('change', describe);
  describe();

  form.addEventListener('submit', event => {
    event.preventDefault();
    start(settingsOf(form));
  });
}

/** A number input's value as a number; null when empty or not a number (the server says why). */
function numeric(input) {
  if (input.value.trim() === '') return null;
  const n = Number(input.value);
  return Number.isFinite(n) ? n : input.value;
}

/** The form's settings as POST /api/training/runs takes them. */
export function settingsOf(form) {
  const f = form.elements;
  const settings = {};
  for (const name of ['dataset', 'architecture', 'activation', 'pooling', 'loss', 'optimizer']) settings[name] = f[name].value;
  settings.learning_rate = numeric(f.learning_rate);
  settings.batch_size = numeric(f.batch_size);
  settings[form.querySelector('input[name=unit]:checked').value] = numeric(f.amount);
  settings.seed = numeric(f.seed);
  const trainSize = numeric(f.train_size);
  if (trainSize !== null) settings.train_size = trainSize;
  return settings;
}

/** Put a run's settings back in the form (to change one choice and run again). */
export function fill(form, settings) {
  const f = form.elements;
  for (const name of ['dataset', 'architecture', 'activation', 'pooling', 'loss', 'optimizer']) {
    f[name].value = settings[name];
    f[name].dispatchEvent(new Event('change', { bubbles: true }));  // hints; the optimizer's default rate…
  }
  f.learning_rate.value = rate(settings.learning_rate);  // …which the run's own rate then replaces
  f.batch_size.value = settings.batch_size;
  f.seed.value = settings.seed;
  f.train_size.value = settings.train_size ?? '';
  const unit = settings.steps != null ? 'steps' : 'epochs';
  form.querySelector(`input[name=unit][value=${unit}]`).checked = true;
  f.amount.value = settings.steps ?? settings.epochs ?? 1;
  form.dispatchEvent(new Event('input'));  // the length hint
}

/** The server's complaint, per field and as a whole; the start button while a start is on its way. */
export function render(form, message, store) {
  const fields = store.formError?.fields ?? {};
  for (const node of form.querySelectorAll('[data-field]')) {
    const sentence = fields[node.dataset.field] ?? null;
    const error = node.querySelector('.field-error');
    error.textContent = sentence ?? '';
    error.hidden = !sentence;
    for (const control of node.querySelectorAll('input:not([type=radio]), select')) {
      if (sentence) control.setAttribute('aria-invalid', 'true');
      else control.removeAttribute('aria-invalid');
    }
  }
  message.textContent = store.formError?.detail ?? '';
  message.hidden = !store.formError;
  const button = form.querySelector('[data-action=start]');
  if (button) {
    button.disabled = store.starting;
    button.textContent = store.starting ? 'Starting…' : 'Start training';
  }
}

/** A refused start as {detail, fields}: the fields an ApiError's `errors` name (epochs/steps → length). */
export function formErrorOf(error) {
  const fields = {};
  for (const e of error.errors ?? []) {
    let name = e.loc?.[e.loc[0] === 'body' ? 1 : 0];
    if (name === 'epochs' || name === 'steps') name = 'length';
    if (typeof name === 'string' && !(name in fields)) fields[name] = e.msg.endsWith('.') ? e.msg : `${e.msg}.`;
  }
  return { detail: error.message, fields };
}
