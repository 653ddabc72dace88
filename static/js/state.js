// The page's one store. Views listen for its events and redraw; nobody else holds page state.

// Activation values above which a model counts as large (see Store.large): about 8 MB of float32.
const LARGE_MODEL_VALUES = 2_000_000;

export class Store extends EventTarget {
  constructor() {
    super();
    this.models = [];        // summaries from GET /api/models
    this.model = null;       // GET /api/models/{id}: summary + layers
    this.samples = [];
    this.source = null;      // {sample, label} or {blob, name, url}
    this.result = null;      // forward(): {input, prediction, layers}
    this.globalRange = null; // [min, max] over every layer of `result`, for the global colour scale
    this.fetched = [];       // a large model's layers just added to `result.layers` (main.js ensureLayers)
    this.resultSource = null;  // the source `result` came from (`source` may be a newer, refused one)
    this.rejected = null;    // the last source the server refused, while the previous result stays shown
    this.cursor = 0;         // index of the current layer in model.layers
    this.scale = 'channel';  // colour scaling: 'channel' | 'layer' | 'global'
    this.fold = false;       // overview: show each block (e.g. a ResNet BasicBlock) as one column
    this.expanded = new Set();  // blocks unfolded by hand (module paths)
    this.allChannels = new Set();  // layers whose every channel the detail view shows (names; per model)
    this.allClasses = false;  // the prediction lists every class, not only the most probable
    this.filter = '';        // overview: show only layers whose name or type contains this
    this.mode = 'forward';   // 'forward': layer outputs; 'backward': the loss's gradients for them
    this.target = null;      // backward's target class index; null: the predicted class
    this.lossFunction = 'cross_entropy';  // 'cross_entropy' | 'mse' | 'logit'
    this.gradients = null;   // backward() for `result`'s image, target and loss, or null
    this.gradientRange = null;  // [min, max] over every layer's gradient, for the global scale
    this.optimizers = [];    // GET /api/optimizers: the one-step view's choices
    this.layerTypes = {};    // GET /api/layer-types by id: each type's lesson, backward rule, pooling
    this.methods = [];       // attribution methods for `model` (GET /api/attributions/methods)
    this.attributionMethod = 'grad_cam';
    this.attributionOptions = {};  // the method's options the person changed; the rest are the server's defaults
    this.attribution = null;       // the attribution for `result`'s image, or null
    this.attributionBusy = false;
    this.attributionView = { opacity: 0.75, side: false };  // how the map lies over the image
    // The person's choices in the lessons, by layer name, kept while they step away and back, change
    // the colour scale or switch mode; a new image or model starts afresh ({}). Every lesson's pick
    // is {c, y, x} (the value explained; activation: c; linear: unit), plus its own: conv `input`
    // (the input channel whose products show) and `allInputs`; pool `shift` and `direction`;
    // backward `optimizer` and `lr` of the one-step experiment.
    this.picks = {};
    this.busy = null;        // a sentence while something slow runs
    this.error = null;       // the last error's sentence
  }

  /** Change some fields and announce which. */
  set(changes) {
    Object.assign(this, changes);
    this.dispatchEvent(new CustomEvent('change', { detail: Object.keys(changes) }));
  }

  /** Merge `changes` into the lesson's choices for layer `name` (through set: announces 'picks'). */
  pick(name, changes) {
    this.set({ picks: { ...this.picks, [name]: { ...this.picks[name], ...changes } } });
  }

  /** The choices made in layer `name`'s lesson, or {} if none. */
  picked(name) { return this.picks[name] ?? {}; }

  get layers() { return this.model ? this.model.layers : []; }

  /**
   * A large model (ResNet-18 at 224×224 has 7.5 M activation values, 30 MB) gets summaries and
   * thumbnails in its forward answer, and each layer's full output only when a view needs it.
   */
  get large() {
    if (!this.model) return false;
    let values = 0;
    for (const layer of this.model.layers) values += layer.output_shape.reduce((a, b) => a * b, 1);
    return values > LARGE_MODEL_VALUES;
  }
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

  /** The loss's gradient with respect to the named layer's output (or the input), if fetched. */
  gradient(name) {
    if (!this.gradients) return null;
    return name === 'input' ? this.gradients.inputGradient : this.gradients.layers[name]?.activation ?? null;
  }

  /** True while the views show gradients: signed values on a scale centred on zero. */
  get backward() { return this.mode === 'backward'; }

  /** What the views draw for a layer in the current mode: its output, or the gradient for it. */
  shown(name) { return this.backward ? this.gradient(name) : this.tensor(name); }

  /** What the overview draws: as shown(), or for a large model's layer not fetched, its thumbnail. */
  overviewTensor(name) {
    return this.shown(name) ?? this.summary(name)?.thumbnail ?? null;
  }

  /** A large model's layer in brief, in the current mode: its output's summary or its gradient's. */
  summary(name) {
    return (this.backward ? this.gradients?.summaries : this.result?.summaries)?.[name] ?? null;
  }

  /** The range of the whole network in the current mode, for the global colour scale. */
  get shownRange() { return this.backward ? this.gradientRange : this.globalRange; }
}
