// Small grids of numbers, each cell coloured with the page's scales: a window of values, a kernel,
// element-wise products. Text goes in through textContent.

import { colour } from './colors.js';

/** A number short enough for a grid cell, exact enough to follow the sum. */
export function fmt(v, digits = 3) {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e4 || a < 0.5 * 10 ** -digits)) return v.toExponential(1); // would round to 0
  return v.toFixed(digits);
}

/** The gap between a recomputed and a served number, for the reader. */
export function gap(d) {
  return d === 0 ? 'difference 0 (identical)' : `difference ${d.toExponential(1)} (float32 rounding)`;
}

/** A full-precision number for results that are compared with the served one. */
export function exact(v) {
  return Math.abs(v) >= 1e4 ? v.toPrecision(9) : v.toFixed(6);
}

function ink([r, g, b]) {
  return 0.299 * r + 0.587 * g + 0.114 * b < 140 ? '#fff' : '#1d2330';
}

/** Colour an element's background by value over [lo, hi], with readable text on it. */
export function paint(node, value, lo, hi) {
  const rgb = colour(value, lo, hi);
  node.style.background = `rgb(${rgb.join(',')})`;
  node.style.color = ink(rgb);
}

/**
 * rows×cols cells; cells[i] = {value, text?, padding?, marked?, title?}. Colours over [lo, hi];
 * padding cells are drawn grey. Returns a <div role="table"> labelled `label`.
 */
export function numberGrid(cells, rows, cols, { lo, hi, label, digits = 2 }) {
  const grid = document.createElement('div');
  grid.className = 'numgrid';
  grid.setAttribute('role', 'table');
  grid.setAttribute('aria-label', label);
  grid.style.gridTemplateColumns = `repeat(${cols}, auto)`;
  for (let y = 0; y < rows; y++) {
    const row = document.createElement('div');
    row.setAttribute('role', 'row');
    row.className = 'numrow';
    for (let x = 0; x < cols; x++) row.append(cellElement(cells[y * cols + x], lo, hi, digits));
    grid.append(row);
  }
  return grid;
}

function cellElement(cell, lo, hi, digits) {
  const span = document.createElement('span');
  span.setAttribute('role', 'cell');
  span.textContent = cell.text ?? fmt(cell.value, digits);
  if (cell.padding) {
    span.className = 'pad';
    span.title = cell.title ?? 'padding: outside the input map';
  } else {
    paint(span, cell.value, lo, hi);
    if (cell.title) span.title = cell.title;
  }
  if (cell.marked) span.classList.add('marked');
  return span;
}

/** A labelled figure around some content, with a caption under it. */
export function figure(content, caption, className = '') {
  const fig = document.createElement('figure');
  fig.className = className;
  const cap = document.createElement('figcaption');
  cap.textContent = caption;
  fig.append(content, cap);
  return fig;
}

/** A result number for tests and readers: text to read, data-<hook> to find it, data-value exact. */
export function hooked(text, hook, value) {
  const span = el('strong', 'num', text);
  span.dataset[hook] = '';
  span.dataset.value = value;
  return span;
}

/** An element with a class and text. */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}
