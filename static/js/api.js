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
  if (t.dtype === 'float16') throw new Error('float16 is not used by the page');
  return { shape: t.shape, data: new Float32Array(base64Bytes(t.data).buffer) };
}

/** Base64 → bytes: natively where the browser can (Chrome 140+, Firefox 133+, Safari 18.2+), several
 * times faster on the megabytes of a ResNet layer; else a plain loop over atob's string
 * (Uint8Array.from(atob(..), fn) is ~30× slower). */
function base64Bytes(text) {
  if (Uint8Array.fromBase64) return Uint8Array.fromBase64(text);
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
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

const weightsCache = new Map();  // "model/layer" -> Promise of getWeights(): a served model's weights never change

/** getWeights(), asked of the server once per model and layer; a failed request is asked again next time. */
export function weightsOf(id, layer) {
  const key = `${id}/${layer}`;
  if (!weightsCache.has(key)) {
    const weights = getWeights(id, layer);
    weightsCache.set(key, weights);
    weights.catch(() => { if (weightsCache.get(key) === weights) weightsCache.delete(key); });
  }
  return weightsCache.get(key);
}

/**
 * An <img> loading `url`: a sample's image as listSamples() names it (GET /api/models/{id}/samples/…),
 * or an image the person gave (a blob or data URL). `onError` hears that the browser cannot show it.
 */
export function image(url, { alt = '', onError = null } = {}) {
  const img = document.createElement('img');
  img.alt = alt;
  if (onError) img.addEventListener('error', () => onError(img));
  img.src = url;
  return img;
}

export const forwardUrl = id => `/api/models/${encodeURIComponent(id)}/forward?encoding=base64`;

/**
 * A POST of an image ({sample} or {blob}) with option fields: multipart for a file, JSON for a
 * sample, so the server reads the options the same way from either.
 */
function imageRequest(source, fields = {}) {
  if (source.blob) {
    const form = new FormData();
    form.append('image', source.blob, source.name || 'image.png');
    for (const [key, value] of Object.entries(fields)) form.append(key, String(value));
    return { method: 'POST', body: form };
  }
  return { method: 'POST', headers: { 'Content-Type': 'application/json' },
           body: JSON.stringify({ sample: source.sample, ...fields }) };
}

/**
 * Run the model on an image: {sample} or {blob}. Returns input, prediction and every layer (or
 * `layers` only). With `summary` (large models), `layers` is empty and each layer comes as a summary
 * (shape, min, max, mean, std and a small thumbnail) instead, with the id of the server's `run` by
 * which the full tensors can be fetched one by one (layerOf).
 */
export async function forward(id, source, { summary = false, layers = null } = {}) {
  const fields = {};
  if (summary) fields.summary = true;
  if (layers) fields.layers = source.blob ? layers.join(',') : layers;
  const body = await call(forwardUrl(id), imageRequest(source, fields));
  const out = {};
  for (const [name, t] of Object.entries(body.layers)) out[name] = decodeTensor(t);
  const result = { input: decodeTensor(body.input), prediction: body.prediction, layers: out, run: body.run ?? null };
  if (body.summaries) {
    result.summaries = {};
    for (const [name, s] of Object.entries(body.summaries)) result.summaries[name] = { ...s, thumbnail: decodeTensor(s.thumbnail) };
  }
  return result;
}

/** The URL of one layer's output in a kept forward run. */
export const runLayerUrl = (id, run, layer) =>
  `/api/models/${encodeURIComponent(id)}/runs/${encodeURIComponent(run)}/layers/${encodeURIComponent(layer)}?encoding=base64`;

/** One layer's full output from a run the server keeps; an ApiError 404 once it is no longer kept. */
export async function layerOf(id, run, layer) {
  const body = await call(runLayerUrl(id, run, layer));
  return decodeTensor(body.tensor);
}

export const backwardUrl = id => `/api/models/${encodeURIComponent(id)}/backward?encoding=base64`;

/**
 * The gradients of a loss for one image: {loss, lossFunction, target, inputGradient,
 * layers: {name: {activation, weight, bias}}} (weight and bias only for layers with parameters).
 * `target` null means the predicted class.
 */
export async function backward(id, source, { target = null, loss = 'cross_entropy', layers = null, summary = false } = {}) {
  const fields = target === null ? { loss } : { loss, target };
  if (layers) fields.layers = source.blob ? layers.join(',') : layers;
  if (summary) fields.summary = true;
  const body = await call(backwardUrl(id), imageRequest(source, fields));
  const grads = {};
  for (const [name, g] of Object.entries(body.layers)) {
    grads[name] = {
      activation: decodeTensor(g.activation_gradient),
      weight: g.weight_gradient ? decodeTensor(g.weight_gradient) : null,
      bias: g.bias_gradient ? decodeTensor(g.bias_gradient) : null,
    };
  }
  // With `summary` (large models): every layer's gradient in brief, `layers` in full only.
  const summaries = body.summaries ? Object.fromEntries(Object.entries(body.summaries).map(
    ([name, s]) => [name, { ...s, thumbnail: decodeTensor(s.thumbnail) }])) : null;
  return { loss: body.loss, lossFunction: body.loss_function, target: body.target,
           inputGradient: decodeTensor(body.input_gradient), layers: grads, summaries };
}

export const stepUrl = id => `/api/models/${encodeURIComponent(id)}/step?encoding=base64`;

/**
 * One optimizer step on this image's gradients, computed by the server on a private copy of the
 * parameters: the answer as served, with every before/after/gradient/update Tensor decoded.
 */
export async function step(id, source, { target, loss, optimizer, lr = null, layers }) {
  const fields = { target, loss, optimizer, layers: layers.join(',') };
  if (lr !== null) fields.lr = lr;
  const body = await call(stepUrl(id), imageRequest(source, source.blob ? fields : { ...fields, layers }));
  for (const params of Object.values(body.layers)) {
    for (const p of Object.values(params)) for (const key of Object.keys(p)) p[key] = decodeTensor(p[key]);
  }
  return body;
}

/** Every attribution method with its options, with this model's defaults and layers filled in. */
export const listOptimizers = () => call('/api/optimizers').then(b => b.optimizers);
export const listLayerTypes = () => call('/api/layer-types')
  .then(b => Object.fromEntries(b.layer_types.map(t => [t.id, t])));
export const listMethods = id => call(`/api/attributions/methods?model=${encodeURIComponent(id)}`).then(b => b.methods);

export const attributionUrl = id => `/api/models/${encodeURIComponent(id)}/attributions?encoding=base64`;

/**
 * An attribution map for one image: the answer as served, its Tensors decoded. `options` holds the
 * method's own options; null ones are left out so the server fills in its defaults.
 */
export async function attribute(id, source, method, target, options) {
  const fields = { method };
  if (target !== null) fields.target = target;
  for (const [key, value] of Object.entries(options)) if (value !== null && value !== '') fields[key] = value;
  const body = await call(attributionUrl(id), imageRequest(source, fields));
  body.input = decodeTensor(body.input);
  body.attribution = decodeTensor(body.attribution);
  if (body.layer_attribution) body.layer_attribution = decodeTensor(body.layer_attribution);
  return body;
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
