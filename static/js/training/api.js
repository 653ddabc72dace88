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

/** An event as the API sends it, its kernels (if any) as {shape, data: Float32Array}. */
export function decodeEvent(event) {
  return event.kernels ? { ...event, kernels: decodeTensor(event.kernels) } : event;
}
