// How runs are named in the page: short settings labels such as "LeNet · Sigmoid · max · SGD 0.01",
// from the names GET /api/training/options gives each choice.

import { count } from '../draw/dom.js';

const nameOf = (list, id) => list?.find(c => c.id === id)?.name ?? id;
const SHORT_OPTIMIZER = { momentum: 'SGD+momentum' };

/** A learning rate as typed: 0.001, 0.0005, 1e-7. */
export const rate = lr => String(+Number(lr).toPrecision(6));

/** What a run trains for: "300 steps" or "2 epochs". */
export const length = s => (s.steps != null ? `${count(s.steps)} steps` : `${s.epochs ?? 1} epoch${(s.epochs ?? 1) === 1 ? '' : 's'}`);

// Parts named only where runs differ (the legend) or always (the full label).
const EXTRAS = {
  dataset: (s, o) => nameOf(o.datasets, s.dataset),
  loss: (s, o) => (s.loss === 'mse' ? 'MSE' : nameOf(o.losses, s.loss).toLowerCase()),
  batch_size: s => `batch ${s.batch_size}`,
  length,
  train_size: s => (s.train_size ? `${count(s.train_size)} images` : 'all images'),
  seed: s => `seed ${s.seed}`,
};

/** The run's network and optimizer: "LeNet · Sigmoid · max · SGD 0.01". */
export function runLabel(settings, options) {
  const s = settings;
  return [
    nameOf(options?.architectures, s.architecture).replace(/-style$/, ''),
    nameOf(options?.activations, s.activation),
    s.pooling,
    `${SHORT_OPTIMIZER[s.optimizer] ?? nameOf(options?.optimizers, s.optimizer)} ${rate(s.learning_rate)}`,
  ].join(' · ');
}

/** Every setting of a run, for the runs list and the live panel. */
export function fullLabel(settings, options) {
  return [runLabel(settings, options), ...Object.values(EXTRAS).map(f => f(settings, options ?? {}))].join(' · ');
}

/**
 * Legend labels for runs drawn together: the network and optimizer, plus whichever other settings
 * differ among them, so two lines never share a label (the run id settles any tie).
 */
export function legendLabels(runs, options) {
  const differing = Object.entries(EXTRAS).filter(([, f]) =>
    new Set(runs.map(r => f(r.settings, options))).size > 1);
  const labels = runs.map(r => [runLabel(r.settings, options), ...differing.map(([, f]) => f(r.settings, options))].join(' · '));
  return labels.map((label, i) => (labels.indexOf(label) !== labels.lastIndexOf(label) ? `${label} (${runs[i].id})` : label));
}
