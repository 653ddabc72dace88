// The compared runs' curves in one chart, each in its colour, with a legend naming their settings.

import { el } from '../draw/dom.js';
import * as curves from './curves.js';
import { legendLabels } from './labels.js';
import { SERIES } from '../draw/colors.js';

/** Each compared run's colour, in list order. */
export function colours(store) {
  return new Map(store.comparedRuns.map((r, i) => [r.id, SERIES[i % SERIES.length]]));
}

export function render(section, store) {
  const $ = name => section.querySelector(`[data-view=${name}]`);
  const runs = store.comparedRuns;
  const palette = colours(store);
  const canvas = $('compare-chart');
  canvas.parentElement.hidden = runs.length === 0;
  $('compare-empty').hidden = runs.length > 1;
  $('compare-empty').textContent = runs.length ? 'Tick another run to compare it with this one.'
    : 'Tick two or more runs in the list to overlay their curves.';
  if (!runs.length) {
    canvas.dataset.series = 0;
    $('compare-legend').replaceChildren();
    return;
  }
  curves.drawCompare(canvas, runs, runs.map(r => palette.get(r.id)), store.metric, store.axis);
  const labels = legendLabels(runs, store.options);
  $('compare-legend').replaceChildren(...runs.map((run, i) => {
    const value = curves.lastValue(run, store.metric);
    const state = run.status === 'done' ? '' : ` (${run.status})`;
    return el('li', { dataset: { run: run.id } },
      el('span', { className: 'swatch', style: { background: palette.get(run.id) } }),
      el('span', { className: 'label' }, labels[i]),
      el('span', { className: 'value' }, value ? `${curves.metricName(store.metric)} ${value}${state}` : `no points yet${state}`));
  }));
}
