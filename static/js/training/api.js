// The training API, as the lab page uses it. Tensors (the kernels in events) come as base64 float32.

import { ApiError, decodeTensor } from '../api.js';

async function call(url, options = {}) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({ detail: `The server answered ${response.status}.` }));
  if (!response.ok) {
    const error = new ApiError(response.status, body.detail, url);
    error.errors = Array.isArray(body.errors) ? body.errors : [];
    throw error;
  }
  return body;
}

const runUrl = id => `/api/training/runs/${encodeURIComponent(id)}`;

export const getOptions = () => call('/api/training/options');
export const listRuns = () => call('/api/training/runs').then(b => b.runs);

/** Start a run: 202 with its summary; an ApiError with `errors` (422, per field) or 429 otherwise. */
export const startRun = settings => call('/api/training/runs', {
  method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(settings),
});

/** A run's summary and its whole history so far, kernels decoded. */
export async function getRun(id) {
  const body = await call(`${runUrl(id)}?encoding=base64`);
  body.history = body.history.map(decodeEvent);
  return body;
}

export const cancelRun = id => call(runUrl(id), { method: 'DELETE' });

/** The URL to follow a run's events after `seq` with an EventSource. */
export const eventsUrl = (summary, after = -1) => `${summary.urls.events}?encoding=base64&after=${after}`;

/**
 * Follow a run's events (server-sent) after `after`, each decoded: onEvent(event) for start, step and
 * epoch events, onEnd(event) for the end event, onLost() once the stream is closed for good. Returns
 * the EventSource, for close().
 */
export function followRun(summary, after, { onEvent, onEnd, onLost }) {
  const source = new EventSource(eventsUrl(summary, after));
  const take = message => decodeEvent(JSON.parse(message.data));
  for (const type of ['start', 'step', 'epoch']) source.addEventListener(type, message => onEvent(take(message)));
  source.addEventListener('end', message => onEnd(take(message)));
  source.addEventListener('error', () => {
    // CONNECTING: the browser reconnects by itself, resuming after Last-Event-ID. CLOSED: the run
    // is gone (the server restarted) or has nothing more to send.
    if (source.readyState === EventSource.CLOSED) onLost();
  });
  return source;
}

/** An event as the API sends it, its kernels (if any) as {shape, data: Float32Array}. */
export function decodeEvent(event) {
  return event.kernels ? { ...event, kernels: decodeTensor(event.kernels) } : event;
}
