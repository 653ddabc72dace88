// One map drawn large enough to point at single values: crisp cells, an optional padding border,
// and outlines (a window, a selected cell) redrawn cheaply over a cached picture.

import { drawMap } from './heatmap.js';

// Sizes and marks of the teaching views (conv, pool); px on screen.
export const LESSON = {
  bigMap: 224,        // the clickable output map and a lone input map
  midMap: 100,        // input maps when a layer has a few channels
  smallMap: 64,       // input maps when it has many
  maxCell: 40,        // never draw one value larger than this
  highlight: '#f08c00', // window and selection outlines: orange reads on both colour scales
  halo: 'rgba(20, 24, 32, 0.85)',
  padding: '#dfe3ea', // cells that are padding, not input
};

/** How many px one value gets so that an h×w map (plus padding) fits in about `target` px. */
export function cellSize(rows, cols, target) {
  return Math.max(2, Math.min(LESSON.maxCell, Math.floor(target / Math.max(rows, cols))));
}

export class ZoomMap {
  /** canvas shows data[offset…] as h×w cells of `cell` px, with `pad` = [rows, cols] of padding around. */
  constructor(canvas, data, offset, h, w, lo, hi, { cell, pad = [0, 0] }) {
    this.canvas = canvas;
    this.base = drawMap(document.createElement('canvas'), data, offset, h, w, lo, hi);
    this.pad = pad;
    this.rows = h + 2 * pad[0];
    this.cols = w + 2 * pad[1];
    this.cell = cell;
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(this.cols * cell * dpr);
    canvas.height = Math.round(this.rows * cell * dpr);
    canvas.style.width = `${this.cols * cell}px`;
    canvas.style.height = `${this.rows * cell}px`;
    canvas.dataset.rows = this.rows;
    canvas.dataset.cols = this.cols;
    this.scale = cell * dpr;
  }

  /** Repaint the map, then outline each mark: {top, left, height, width, thin?, fill?} in cells of the padded grid. */
  draw(marks = []) {
    const ctx = this.canvas.getContext('2d');
    ctx.setTransform(this.scale, 0, 0, this.scale, 0, 0); // one unit = one cell
    ctx.imageSmoothingEnabled = false;
    const [ph, pw] = this.pad;
    if (ph || pw) {
      ctx.fillStyle = LESSON.padding;
      ctx.fillRect(0, 0, this.cols, this.rows);
      dots(ctx, this.rows, this.cols, ph, pw);
    }
    ctx.drawImage(this.base, pw, ph, this.base.width, this.base.height);
    for (const mark of marks) outline(ctx, mark, this.cell);
  }

  /** The cell [row, col] under a pointer event, in the padded grid. */
  cellAt(event) {
    const r = this.canvas.getBoundingClientRect();
    const row = Math.floor((event.clientY - r.top) / r.height * this.rows);
    const col = Math.floor((event.clientX - r.left) / r.width * this.cols);
    return [Math.max(0, Math.min(this.rows - 1, row)), Math.max(0, Math.min(this.cols - 1, col))];
  }
}

/** A faint dot in each padding cell, so padding reads as "zeros here", not as empty space. */
function dots(ctx, rows, cols, ph, pw) {
  ctx.fillStyle = 'rgba(60, 70, 90, 0.35)';
  for (let y = 0; y < rows; y++) {
    for (let x = 0; x < cols; x++) {
      const inside = y >= ph && y < rows - ph && x >= pw && x < cols - pw;
      if (!inside) ctx.fillRect(x + 0.42, y + 0.42, 0.16, 0.16);
    }
  }
}

function outline(ctx, { top, left, height = 1, width = 1, thin = false, fill = false }, cell) {
  const px = 1 / cell; // one screen px, in cell units
  if (fill) {
    ctx.fillStyle = LESSON.highlight;
    ctx.globalAlpha = 0.55;
    ctx.fillRect(left, top, width, height);
    ctx.globalAlpha = 1;
  }
  const lw = (thin ? 1.5 : 2.5) * px;
  ctx.lineWidth = lw + 2 * px;
  ctx.strokeStyle = LESSON.halo;
  ctx.strokeRect(left + lw / 2, top + lw / 2, width - lw, height - lw);
  ctx.lineWidth = lw;
  ctx.strokeStyle = LESSON.highlight;
  ctx.strokeRect(left + lw / 2, top + lw / 2, width - lw, height - lw);
}
