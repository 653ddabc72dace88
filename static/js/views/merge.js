// Where branches meet. add: in a residual block the output is the block's input carried past it
// (the shortcut) plus what the block's layers computed; pick a value and see a + b = the served
// value, the picked channel of every operand and of the sum side by side. cat: several layers'
// maps stacked; pick a value and see which layer, and which of its values, it was copied from.
// Operands the page cannot read (a constant, a broadcast tensor) are named, never guessed.

import { el, fmt } from '../draw/cells.js';
import { range } from '../draw/heatmap.js';
import { asOutputMap, at, channelMap, checkLine, n4, select, term } from '../draw/lesson.js';
import { argmax, outputControls, pickable, pickedOr } from '../draw/picker.js';

const AXES = ['channel', 'row', 'column'];  // the axes of one sample's [C, H, W]


/** Why the page cannot redo this layer from its inputs, as the end of a sentence; or null. */
function unreadable(layer, tensor, sources, fits) {
  if (layer.type === 'add' && sources.length < 2) {
    return 'the page reads only layers\' outputs, so it cannot redo this sum';
  }
  const missing = sources.find(s => !s.tensor);
  if (missing) return `${missing.name} was not served`;
  const odd = sources.find(s => !fits(s.tensor.shape));
  if (odd) return `${odd.name} is ${odd.tensor.shape.join('×')}, which does not line up value for value with ${tensor.shape.join('×')}`;
  return null;
}

function heading(container, layer, intro, why) {
  container.append(el('h3', '', `How one value of ${layer.name} is computed`), el('p', 'hint', intro));
  if (why) container.append(el('p', 'hint', `Not checked here: ${why}.`));
  return !why;
}

/** The maps of channel c of every operand and of the output, one colour range for all. */
function sharedRange(store, tensors, c) {
  if (store.scale === 'global' && store.globalRange) return store.globalRange;
  const [, h, w] = tensors[0].shape;
  const ends = tensors.map(t => range(t.data, c * h * w, (c + 1) * h * w)).flat();
  return [Math.min(...ends), Math.max(...ends)];
}

function meanAbs(t, c) {
  const [, h, w] = t.shape;
  let s = 0;
  for (let i = c * h * w; i < (c + 1) * h * w; i++) s += Math.abs(t.data[i]);
  return s / (h * w);
}

function addLesson(container, ctx, sources) {
  const { store, layer, tensor } = ctx;
  const [C, h, w] = tensor.shape;
  const alpha = layer.attributes?.alpha ?? 1;  // torch.add(a, b, alpha=k) is a + k·b
  const typeOf = name => store.layers.find(l => l.name === name)?.type ?? 'input';
  const why = unreadable(layer, tensor, sources, shape => shape.join() === tensor.shape.join());
  // An operand that is no layer (x + 1) is not in layer.inputs; its value may show among the attributes.
  const known = Object.entries(layer.attributes ?? {}).map(([k, v]) => `${k} = ${v}`).join(', ');
  const operands = sources.length < 2
    ? `${sources[0]?.name ?? 'nothing it names'} and an operand that is not a layer's output${known ? ` (${known})` : ''}`
    : sources.map(s => s.name).join(' and ');
  const intro = `${layer.name} adds ${operands} value by value.` + (sources.length < 2 ? '' : ' In a residual block one ' +
    'input is the block\'s own input carried past its layers (the shortcut) and the other is what those layers ' +
    'computed: the block only learns a correction to add to its input, and where it has nothing to add the signal ' +
    'passes through unchanged.');
  if (!heading(container, layer, intro, why)) return;
  const drawn = { c: -1, maps: [], captions: [] };  // the maps on screen; the pick is the store's
  const stage = el('div', 'conv-stage'), result = el('div', 'conv-result'), note = el('p', 'hint');
  result.setAttribute('aria-live', 'polite');
  const caption = (s, v) => `${s.name} (${typeOf(s.name)}) = ${fmt(v, 4)}`;

  const draw = pos => {
    const i = at(tensor.shape, pos);
    if (pos.c !== drawn.c) {
      const opts = { store, range: sharedRange(store, [...sources.map(s => s.tensor), tensor], pos.c) };
      const pick = (y, x) => controls.set({ y, x });
      drawn.maps = sources.map(s => {
        const zoom = channelMap(s.tensor, pos.c, opts);
        pickable(zoom, `${s.name} channel ${pos.c}`, pick);
        return zoom;
      });
      drawn.maps.push(asOutputMap(channelMap(tensor, pos.c, opts), pos.c, `${layer.name} output channel ${pos.c}, ${h}×${w}`, pick));
      drawn.captions = drawn.maps.map(() => el('figcaption'));
      stage.replaceChildren(...drawn.maps.flatMap((zoom, k) => {
        const fig = el('figure', 'conv-out');
        fig.append(zoom.canvas, drawn.captions[k]);
        return k ? [el('span', 'op', k < sources.length ? '+' : '='), fig] : [fig];
      }));
      note.textContent = `One colour range for all ${sources.length + 1} maps: ${n4(opts.range[0])} … ${n4(opts.range[1])}. ` +
        `Mean |value| in channel ${pos.c}: ${sources.map(s => `${s.name} ${n4(meanAbs(s.tensor, pos.c))}`).join(', ')}.`;
      drawn.c = pos.c;
    }
    const values = sources.map(s => s.tensor.data[i]);
    const scaled = values.map((v, k) => (k === values.length - 1 ? alpha * v : v));
    const served = tensor.data[i];
    drawn.maps.forEach(zoom => select(zoom, pos.y, pos.x));
    sources.forEach((s, k) => { drawn.captions[k].textContent = caption(s, values[k]); });
    drawn.captions[sources.length].textContent = `${layer.name} channel ${pos.c}: row ${pos.y}, column ${pos.x} = ${fmt(served, 4)}. Click any value.`;
    container.dataset.position = `${pos.c},${pos.y},${pos.x}`;
    const parts = sources.map((s, k) => `${k ? ' + ' : ''}${k === values.length - 1 && alpha !== 1 ? `${alpha} · ` : ''}${s.name} ${k ? term(values[k]) : n4(values[k])}`);
    result.setAttribute('aria-live', controls.playing() ? 'off' : 'polite');
    result.replaceChildren(checkLine([el('span', '', parts.join(''))], scaled.reduce((a, b) => a + b, 0), served, ['mergeResult', 'mergeServed']));
  };

  const update = pos => {
    store.pick(layer.name, pos);
    draw(pos);
  };

  const start = pickedOr(store.picked(layer.name), tensor.shape, argmax(tensor, 0));
  const controls = outputControls({ channels: C, rows: h, cols: w, start, onChange: update });
  container.append(controls.element, el('p', 'step', '① Pick a value of the sum (or of an input): the same place is marked in each'),
    stage, note, el('p', 'step', '② Add the values at that place'), result);
  ctx.linkChannels?.((c, y, x) => controls.set({ c, y, x }));
  draw(controls.get());
}

function catLesson(container, ctx, sources) {
  const { store, layer, tensor } = ctx;
  const [C, h, w] = tensor.shape;
  const dim = layer.attributes?.dim ?? 0;
  const axis = (dim < 0 ? dim + 4 : dim) - 1;  // dim counts the batch axis of [N, C, H, W]
  const fits = shape => shape.length === 3 && shape.every((n, k) => k === axis || n === tensor.shape[k]);
  let why = axis < 0 || axis > 2 ? `it joins along dim ${dim}, not along channels, rows or columns` : unreadable(layer, tensor, sources, fits);
  const offsets = [];
  if (!why) {
    sources.reduce((start, s) => { offsets.push(start); return start + s.tensor.shape[axis]; }, 0);
    const total = sources.reduce((n, s) => n + s.tensor.shape[axis], 0);
    if (total !== tensor.shape[axis]) why = `its inputs hold ${total} ${AXES[axis]}s, the output ${tensor.shape[axis]}: one is not a layer's output`;
  }
  const spans = why ? '' : sources.map((s, k) => `${AXES[axis]}s ${offsets[k]}–${offsets[k] + s.tensor.shape[axis] - 1} from ${s.name}`).join('; ');
  const intro = `${layer.name} stacks ${sources.map(s => s.name).join(', ')} along the ${AXES[axis] ?? `dim ${dim}`}s` +
    `${spans ? ` (${spans})` : ''}. Nothing is computed: every value is a copy of one input's value, so the next layer sees both branches at once.`;
  if (!heading(container, layer, intro, why)) return;
  const drawn = { c: -1, key: '', out: null, from: null };  // the maps on screen; the pick is the store's
  const out = el('figure', 'conv-out'), outCaption = el('figcaption');
  const from = el('figure', 'conv-out'), fromCaption = el('figcaption');
  const result = el('div', 'conv-result');

  /** The input and position output value pos was copied from. */
  const source = pos => {
    const k = offsets.findLastIndex(o => o <= [pos.c, pos.y, pos.x][axis]);
    const p = [pos.c, pos.y, pos.x];
    p[axis] -= offsets[k];
    return { s: sources[k], pos: { c: p[0], y: p[1], x: p[2] } };
  };

  const draw = pos => {
    if (pos.c !== drawn.c) {
      drawn.out = asOutputMap(channelMap(tensor, pos.c, { store }), pos.c, `${layer.name} output channel ${pos.c}, ${h}×${w}`,
        (y, x) => controls.set({ y, x }));
      out.replaceChildren(drawn.out.canvas, outCaption);
      drawn.c = pos.c;
    }
    const { s, pos: p } = source(pos);
    if (drawn.key !== `${s.name}/${p.c}`) {
      drawn.from = channelMap(s.tensor, p.c, { store });
      from.replaceChildren(drawn.from.canvas, fromCaption);
      drawn.key = `${s.name}/${p.c}`;
    }
    const copied = s.tensor.data[at(s.tensor.shape, p)], served = tensor.data[at(tensor.shape, pos)];
    select(drawn.out, pos.y, pos.x);
    select(drawn.from, p.y, p.x);
    outCaption.textContent = `${layer.name} channel ${pos.c}: row ${pos.y}, column ${pos.x} = ${fmt(served, 4)}. Click any value.`;
    fromCaption.textContent = `${s.name} channel ${p.c}: row ${p.y}, column ${p.x} = ${fmt(copied, 4)}.`;
    container.dataset.position = `${pos.c},${pos.y},${pos.x}`;
    result.replaceChildren(checkLine([el('span', '', `copied from ${s.name}[${p.c}, ${p.y}, ${p.x}]`)], copied, served, ['mergeResult', 'mergeServed']));
  };

  const update = pos => {
    store.pick(layer.name, pos);
    draw(pos);
  };

  const start = pickedOr(store.picked(layer.name), tensor.shape, argmax(tensor, 0));
  const controls = outputControls({ channels: C, rows: h, cols: w, start, onChange: update });
  const stage = el('div', 'conv-stage');
  const outBox = el('div', 'conv-out-box'), fromBox = el('div', 'conv-out-box');
  outBox.append(el('p', 'step', '① Pick an output value'), out);
  fromBox.append(el('p', 'step', '② It is a copy of this value'), from);
  stage.append(outBox, fromBox);
  container.append(controls.element, stage, result);
  ctx.linkChannels?.((c, y, x) => controls.set({ c, y, x }));
  draw(controls.get());
}

export async function render(container, ctx) {
  const { store, layer, tensor } = ctx;
  if (tensor.shape.length !== 3) return;
  const sources = layer.inputs.map(name => ({ name, tensor: store.tensor(name) }));
  (layer.type === 'cat' ? catLesson : addLesson)(container, ctx, sources);
}
