// The teaching view for each layer type. Which lesson explains a type is the server's one table of
// layer types (GET /api/layer-types, app/layer_types.py: its `view`); each lesson module exports
// render(container, context). Types without a lesson get the generic detail view only.

const LESSONS = {
  conv: () => import('./conv.js'),
  activation: () => import('./activation.js'),
  pool: () => import('./pool.js'),
  norm: () => import('./norm.js'),
  merge: () => import('./merge.js'),
  dense: () => import('./dense.js'),
};

/** The lesson module for a layer type (an entry of store.layerTypes, or undefined), or null. */
export async function viewFor(layerType) {
  const load = LESSONS[layerType?.view];
  if (!load) return null;
  try {
    return await load();
  } catch (error) {
    console.warn(`No lesson for ${layerType.id} yet`, error);
    return null;
  }
}
