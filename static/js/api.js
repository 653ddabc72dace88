// The REST API, as the page uses it: Tensors arrive as base64 float32 and become Float32Arrays.

export class ApiError extends Error {
  constructor(status, detail, url) {
    super(detail);
    this.status = status;
    this.url = url;
  }
}

/** A served Tensor as {shape, data: Float32Array}. */
export function decodeTensor(t) {
  if (t.encoding !== 'base64') return { shape: t.shape, data: Float32Array.from(t.data, v => v ?? NaN) };
  // A plain loop: Uint8Array.from(atob(..), fn) is ~30× slower on megabyte tensors.
  const text = atob(t.data);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  if (t.dtype === 'float16') throw new Error('float16 is not used by the page');
  return { shape: t.shape, data: new Float32Array(bytes.buffer) };
}

async function call(url, options = {}) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({ detail: `The server answered ${response.status}.` }));
  if (!response.ok) throw new ApiError(response.status, body.detail, url);
  return body;
}

export const listModels = () => call('/api/models').then(b => b.models);
export const getModel = id => call(`/api/models/${encodeURIComponent(id)}`);
export const listSamples = id => call(`/api/models/${encodeURIComponent(id)}/samples`).then(b => b.samples);

/** The URL of a layer's weights, also shown in the page as "the API call behind this view". */
export const weightsUrl = (id, layer) =>
  `/api/models/${encodeURIComponent(id)}/layers/${encodeURIComponent(layer)}/weights?encoding=base64`;

export async function getWeights(id, layer) {
  const body = await call(weightsUrl(id, layer));
  const out = {};
  for (const [key, value] of Object.entries(body)) {
    if (value && typeof value === 'object' && 'shape' in value) out[key] = decodeTensor(value);
  }
  return out;
}

export const forwardUrl = id => `/api/models/${encodeURIComponent(id)}/forward?encoding=base64`;

/** Run the model on an image: {sample} or {blob}. Returns input, prediction and every layer. */
export async function forward(id, source) {
  const options = { method: 'POST' };
  if (source.blob) {
    const form = new FormData();
    form.append('image', source.blob, source.name || 'image.png');
    options.body = form;
  } else {
    options.headers = { 'Content-Type': 'application/json' };
    options.body = JSON.stringify({ sample: source.sample });
  }
  const body = await call(forwardUrl(id), options);
  const layers = {};
  for (const [name, t] of Object.entries(body.layers)) layers[name] = decodeTensor(t);
  return { input: decodeTensor(body.input), prediction: body.prediction, layers };
}

/** Base64 of a Float32Array's bytes (little-endian, as every browser platform stores them). */
function float32Base64(data) {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/** Run the model on a ready, normalised [C,H,W] tensor; returns forward()'s shape for `layers` only. */
export async function forwardTensor(id, tensor, layers) {
  const url = `${forwardUrl(id)}&layers=${layers.map(encodeURIComponent).join(',')}`;
  const body = await call(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ tensor: { shape: tensor.shape, dtype: 'float32', encoding: 'base64', data: float32Base64(tensor.data) } }),
  });
  const out = {};
  for (const [name, t] of Object.entries(body.layers)) out[name] = decodeTensor(t);
  return { input: decodeTensor(body.input), prediction: body.prediction, layers: out };
}
