// One teaching view per layer type; each exports render(container, context). Types not listed
// get the generic detail view only.

const VIEWS = {
  conv2d: () => import('./conv.js'),
  relu: () => import('./activation.js'),
  leaky_relu: () => import('./activation.js'),
  sigmoid: () => import('./activation.js'),
  tanh: () => import('./activation.js'),
  max_pool2d: () => import('./pool.js'),
  avg_pool2d: () => import('./pool.js'),
  adaptive_avg_pool2d: () => import('./pool.js'),
  adaptive_max_pool2d: () => import('./pool.js'),
  batch_norm2d: () => import('./norm.js'),
  add: () => import('./merge.js'),
  cat: () => import('./merge.js'),
  flatten: () => import('./dense.js'),
  linear: () => import('./dense.js'),
  softmax: () => import('./dense.js'),
};

/** The view module for a layer type, or null. */
export async function viewFor(type) {
  const load = VIEWS[type];
  if (!load) return null;
  try {
    return await load();
  } catch (error) {
    console.warn(`No view for ${type} yet`, error);
    return null;
  }
}
