// The list of runs (newest first): a checkbox to compare each, a button to show it above, its
// settings, status and test accuracy, and a link to inspect its model. Rows are kept and updated in
// place, so focus and ticks survive the many redraws of a run that is training.

import { el } from '../draw/dom.js';
import { fullLabel } from './labels.js';

const rows = new Map();  // a DOM cache, not page state: run id -> its row, kept so focus and ticks survive

function statusText(run) {
  const s = run.summary;
  if (s.status === 'queued') return s.queue_position ? `queued (${s.queue_position} in line)` : 'queued';
  if (s.status === 'running') return `running · ${Math.floor(s.progress * 100)} %`;
  if (s.status === 'done' && s.reason) return 'done (time limit)';
  return s.status;
}

function makeRow(run, actions) {
  const box = el('input', { type: 'checkbox', dataset: { control: 'compare' }, 'aria-label': `Compare run ${run.id}` });
  box.addEventListener('change', () => actions.compare(run.id, box.checked));
  const show = el('button', { type: 'button', className: 'show', dataset: { action: 'show' },
    title: 'Show this run above' }, 'Show ', el('span', { className: 'run-id' }, run.id));
  show.addEventListener('click', () => actions.show(run.id));
  const row = el('tr', { dataset: { run: run.id } },
    el('td', { className: 'pick' }, el('label', { className: 'tick' }, box, el('span', { className: 'swatch' }))),
    el('td', {}, show),
    el('td', { className: 'settings' }),
    el('td', { className: 'state' }),
    el('td', { className: 'number accuracy' }),
    el('td', { className: 'model' }));
  return row;
}

export function render(table, empty, store, colours, actions) {
  const body = table.tBodies[0];
  const runs = [...store.runs.values()].reverse();
  for (const [id, row] of rows) {
    if (!store.runs.has(id)) { row.remove(); rows.delete(id); }
  }
  runs.forEach((run, i) => {
    let row = rows.get(run.id);
    if (!row) rows.set(run.id, row = makeRow(run, actions));
    if (body.children[i] !== row) body.insertBefore(row, body.children[i] ?? null);
    const s = run.summary;
    row.dataset.status = s.status;
    const box = row.querySelector('[data-control=compare]');
    box.checked = store.compared.has(run.id);
    row.querySelector('.swatch').style.background = colours.get(run.id) ?? 'transparent';
    row.querySelector('[data-action=show]').setAttribute('aria-pressed', String(run.id === store.watched));
    row.classList.toggle('watched', run.id === store.watched);
    const settings = row.querySelector('.settings');
    const label = fullLabel(s.settings, store.options);
    if (settings.textContent !== label) settings.textContent = label;
    row.querySelector('.state').textContent = statusText(run);
    row.querySelector('.state').title = s.reason ?? '';
    const accuracy = row.querySelector('.accuracy');
    accuracy.textContent = s.test_accuracy == null ? '—' : `${(s.test_accuracy * 100).toFixed(1)} %`;
    accuracy.dataset.value = s.test_accuracy ?? '';
    const model = row.querySelector('.model');
    if (s.model && !model.querySelector('a')) {
      model.replaceChildren(el('a', { href: `/?model=${encodeURIComponent(s.model)}`,
        title: `Open ${s.model} in the explorer` }, 'Inspect model'));
    } else if (!s.model) model.textContent = '—';
  });
  empty.hidden = runs.length > 0;
  table.hidden = runs.length === 0;
}
