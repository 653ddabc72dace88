// The watched run: its status, a progress bar with elapsed and remaining time, its latest numbers,
// its loss and accuracy curves and its first layer's kernels.

import { count, el } from '../draw/dom.js';
import * as curves from './curves.js';
import * as kernels from './kernels.js';
import { fullLabel } from './labels.js';

const ordinal = n => (n === 1 ? 'next to start' : `number ${n} in line`);

/** One sentence for the status, changing only when the status does (it is read out). */
export function statusSentence(run) {
  const s = run.summary;
  switch (s.status) {
    case 'queued': return `Queued: ${s.queue_position ? ordinal(s.queue_position) : 'waiting'}; another run is training.`;
    case 'running': return 'Running.';
    case 'done': return s.reason ? `Done early. ${s.reason}` : 'Done.';
    case 'cancelled': return s.reason ?? 'Cancelled.';
    default: return `Failed. ${s.reason ?? ''}`.trim();
  }
}

/** Seconds as "42 s" or "3 min 05 s". */
export function duration(seconds) {
  const t = Math.max(0, Math.round(seconds));
  return t < 60 ? `${t} s` : `${Math.floor(t / 60)} min ${String(t % 60).padStart(2, '0')} s`;
}

/** Elapsed and remaining seconds now: the last event's, moved on by the time since it came. */
function clock(run) {
  const s = run.summary;
  if (s.status !== 'running') return { elapsed: s.elapsed, eta: s.eta };
  const since = (performance.now() - run.receivedAt) / 1000;
  return { elapsed: s.elapsed + since, eta: s.eta == null ? null : Math.max(0, s.eta - since) };
}

function timing(run) {
  const s = run.summary;
  const parts = [`step ${count(s.step)} of ${count(s.total_steps)}`];
  const epochs = Math.ceil(s.total_steps / (s.steps_per_epoch || 1));
  if (s.epoch) parts.push(`epoch ${s.epoch} of ${epochs}`);
  const { elapsed, eta } = clock(run);
  if (s.status !== 'queued') parts.push(`${duration(elapsed)} elapsed`);
  if (s.status === 'running') parts.push(eta == null ? 'estimating the time left…' : `about ${duration(eta)} left`);
  return parts.join(' · ');
}

const METRICS = [
  ['loss', 'Training loss', v => v.toFixed(4)],
  ['accuracy', 'Training accuracy', v => `${(v * 100).toFixed(1)} %`],
  ['test_loss', 'Test loss', v => v.toFixed(4)],
  ['test_accuracy', 'Test accuracy', v => `${(v * 100).toFixed(1)} %`],
];

function metrics(dl, run) {
  if (!dl.childElementCount) {
    for (const [key, name] of METRICS) {
      dl.append(el('div', { className: 'metric' }, el('dt', {}, name), el('dd', { dataset: { metric: key } })));
    }
  }
  for (const [key, , show] of METRICS) {
    const dd = dl.querySelector(`[data-metric=${key}]`);
    const v = run.summary[key];
    dd.dataset.value = v ?? '';
    dd.textContent = v == null ? '—' : show(v);
  }
  const [loss, accuracy] = dl.querySelectorAll('dt');
  const every = run.summary.settings.log_every;
  loss.title = accuracy.title = `Mean over the batches of the last ${every > 1 ? `${every} steps` : 'step'} logged`;
}

/** Only the parts that move: for the clock tick between events. */
export function tick(section, run) {
  if (run) section.querySelector('[data-view=timing]').textContent = timing(run);
}

export function render(section, store) {
  const run = store.watchedRun;
  const $ = name => section.querySelector(`[data-view=${name}]`);
  $('live-empty').hidden = Boolean(run);
  $('live-body').hidden = !run;
  section.dataset.run = run?.id ?? '';
  section.dataset.status = run?.status ?? '';
  $('run-name').textContent = run ? run.id : '';
  const status = $('run-status');
  const sentence = run ? statusSentence(run) : '';
  if (status.textContent !== sentence) status.textContent = sentence;
  status.dataset.status = run?.status ?? '';
  if (!run) return;

  const s = run.summary;
  $('run-settings').textContent = `${fullLabel(s.settings, store.options)} · ${s.dataset.name} (${s.dataset.kind}: `
    + `${count(s.dataset.train_size)} training, ${count(s.dataset.test_size)} test images)`;
  const progress = $('progress');
  progress.value = s.progress;
  progress.setAttribute('aria-valuetext', `${Math.round(s.progress * 100)} %, step ${s.step} of ${s.total_steps}`);
  $('timing').textContent = timing(run);
  const cancel = section.querySelector('[data-action=cancel]');
  cancel.hidden = run.final;
  cancel.disabled = Boolean(store.cancelling?.has(run.id));
  const inspect = $('inspect');
  inspect.hidden = !s.model;
  if (s.model) inspect.href = `/?model=${encodeURIComponent(s.model)}`;
  metrics($('metrics'), run);

  curves.drawRun($('loss-chart'), run, 'loss');
  curves.drawRun($('accuracy-chart'), run, 'accuracy');
  curves.legend($('loss-legend'), run);
  curves.legend($('accuracy-legend'), run);
  kernels.render(section.querySelector('.kernel-panel'), run, store.snapshot);
}
