// Choosing one output value (channel, row, column) and sliding through positions with
// play / pause / step; shared by the convolution and pooling views.

import { el } from './cells.js';

export const SPEEDS = [['slow', 1600], ['normal', 800], ['fast', 300]]; // ms per position

function numberInput(name, max, label) {
  const wrap = el('label', 'pick', `${label} `);
  const input = document.createElement('input');
  Object.assign(input, { type: 'number', min: 0, max, step: 1 });
  input.dataset.control = name;
  wrap.append(input);
  return [wrap, input];
}

function button(action, text, label) {
  const b = el('button', '', text);
  b.type = 'button';
  b.dataset.action = action;
  b.setAttribute('aria-label', label);
  return b;
}

/**
 * Controls for an output position {c, y, x} in a channels×rows×cols map. onChange(pos) runs on every
 * move (the lessons record it in the store: `pos` here is only what the widget shows). Playing stops
 * by itself at the last position, or when the controls leave the page.
 */
export function outputControls({ channels, rows, cols, start, onChange, noun = 'output' }) {
  const pos = { ...start };
  let timer = null;
  const root = el('div', 'player');
  root.setAttribute('role', 'group');
  root.setAttribute('aria-label', `Choose one ${noun} value and slide through the positions`);

  const channel = document.createElement('select');
  channel.dataset.control = 'output-channel';
  for (let c = 0; c < channels; c++) channel.append(new Option(`channel ${c}`, c));
  const channelLabel = el('label', 'pick', `${noun[0].toUpperCase()}${noun.slice(1)} `);
  channelLabel.append(channel);
  const [rowLabel, row] = numberInput('row', rows - 1, 'row');
  const [colLabel, col] = numberInput('col', cols - 1, 'column');
  const back = button('step-back', '‹ Back', 'Step back one position');
  const play = button('play', '▶ Play', 'Play: slide the window across every position');
  play.setAttribute('aria-pressed', 'false');
  const step = button('step', 'Step ›', 'Step to the next position');
  const speed = document.createElement('select');
  speed.dataset.control = 'speed';
  for (const [name, ms] of SPEEDS) speed.append(new Option(name, ms, false, name === 'normal'));
  const speedLabel = el('label', 'pick', 'speed ');
  speedLabel.append(speed);
  root.append(channelLabel, rowLabel, colLabel, back, play, step, speedLabel);

  function show() {
    channel.value = pos.c;
    row.value = pos.y;
    col.value = pos.x;
  }

  function set(next) {
    pos.c = clamp(next.c ?? pos.c, channels);
    pos.y = clamp(next.y ?? pos.y, rows);
    pos.x = clamp(next.x ?? pos.x, cols);
    show();
    onChange({ ...pos });
  }

  /** Move by `by` positions in reading order; false at either end. */
  function move(by) {
    const i = pos.y * cols + pos.x + by;
    if (i < 0 || i >= rows * cols) return false;
    set({ y: Math.floor(i / cols), x: i % cols });
    return true;
  }

  function stop() {
    clearInterval(timer);
    timer = null;
    play.textContent = '▶ Play';
    play.setAttribute('aria-pressed', 'false');
    play.setAttribute('aria-label', 'Play: slide the window across every position');
    root.dataset.playing = 'false';
  }

  function begin() {
    if (pos.y * cols + pos.x >= rows * cols - 1) set({ y: 0, x: 0 });
    play.textContent = '⏸ Pause';
    play.setAttribute('aria-pressed', 'true');
    play.setAttribute('aria-label', 'Pause');
    root.dataset.playing = 'true';
    timer = setInterval(() => {
      if (!root.isConnected || !move(1)) stop();
    }, Number(speed.value));
  }

  play.addEventListener('click', () => (timer ? stop() : begin()));
  step.addEventListener('click', () => move(1));
  back.addEventListener('click', () => move(-1));
  speed.addEventListener('change', () => { if (timer) { stop(); begin(); } });
  channel.addEventListener('change', () => set({ c: Number(channel.value) }));
  row.addEventListener('change', () => set({ y: Number(row.value) }));
  col.addEventListener('change', () => set({ x: Number(col.value) }));
  show();
  return { element: root, set, move, stop, get: () => ({ ...pos }), playing: () => timer !== null };
}

/**
 * The position a lesson opens on: the picked {c, y, x} (a store.picked() entry) if it lies inside a
 * channels×rows×cols map, else `fallback` (the lesson's default).
 */
export function pickedOr(picked, [channels, rows, cols], fallback) {
  const inside = (v, n) => Number.isInteger(v) && v >= 0 && v < n;
  return inside(picked.c, channels) && inside(picked.y, rows) && inside(picked.x, cols)
    ? { c: picked.c, y: picked.y, x: picked.x } : fallback;
}

/** The largest value of channel c: where to start: a value worth explaining. */
export function argmax(tensor, c) {
  const n = tensor.shape[1] * tensor.shape[2];
  let best = 0;
  for (let i = 1; i < n; i++) if (tensor.data[c * n + i] > tensor.data[c * n + best]) best = i;
  return { c, y: Math.floor(best / tensor.shape[2]), x: best % tensor.shape[2] };
}

function clamp(v, n) {
  return Number.isFinite(v) ? Math.max(0, Math.min(n - 1, Math.trunc(v))) : 0;
}

/** Make a ZoomMap pickable: click a cell, or focus it and use the arrow keys. onPick(y, x). */
export function pickable(zoom, label, onPick) {
  const canvas = zoom.canvas;
  canvas.tabIndex = 0;
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', `${label}. Click a value, or focus here and use the arrow keys.`);
  canvas.classList.add('pickable');
  canvas.addEventListener('click', event => onPick(...zoom.cellAt(event)));
  canvas.addEventListener('keydown', event => {
    const moves = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };
    const d = moves[event.key];
    if (!d) return;
    event.preventDefault();
    event.stopPropagation(); // keep ← → on the map from stepping to another layer
    const [y, x] = (canvas.dataset.selected || '0,0').split(',').map(Number);
    onPick(y + d[0], x + d[1]);
  });
}
