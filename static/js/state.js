// The page's one store. Views listen for its events and redraw; nobody else holds page state.

export class Store extends EventTarget {
  constructor() {
    super();
    this.models = [];        // summaries from GET /api/models
    this.model = null;       // GET /api/models/{id}: summary + layers
    this.samples = [];
    this.source = null;      // {sample, label} or {blob, name, url}
    this.result = null;      // forward(): {input, prediction, layers}
    this.rejected = null;    // the last source the server refused, while the previous result stays shown
    this.cursor = 0;         // index of the current layer in model.layers
    this.scale = 'channel';  // colour scaling: 'channel' | 'layer' | 'global'
    this.busy = null;        // a sentence while something slow runs
    this.error = null;       // the last error's sentence
  }

  /** Change some fields and announce which. */
  set(changes) {
    Object.assign(this, changes);
    this.dispatchEvent(new CustomEvent('change', { detail: Object.keys(changes) }));
  }

  get layers() { return this.model ? this.model.layers : []; }
  get layer() { return this.layers[this.cursor] ?? null; }

  /** Move the layer cursor by `step`, staying inside the network. */
  step(step) {
    const next = Math.max(0, Math.min(this.layers.length - 1, this.cursor + step));
    if (next !== this.cursor) this.set({ cursor: next });
  }

  /** Output of the named layer (or the preprocessed input for "input"). */
  tensor(name) {
    if (!this.result) return null;
    return name === 'input' ? this.result.input : this.result.layers[name] ?? null;
  }
}
