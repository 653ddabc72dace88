// The overview's skip connections: an arc above the columns from a layer to each consumer that is
// not the next column shown — a residual block's shortcut into its addition, a downsample branch, a
// concatenation's far input — so the overview shows the graph, not only the order of its layers.

const SVG = 'http://www.w3.org/2000/svg';
const LANE = 30;  // px of room above the columns for the arcs
const SYMBOL = { add: '+', cat: 'cat', mul: '×', sub: '−' };

/**
 * Draw the arcs between the columns that show. `columns` are the overview's, in order (the input
 * first); a layer inside a folded block is shown by its block's column, so a shortcut inside a
 * folded block draws nothing and the folded network reads as the chain it is.
 */
export function drawLinks(container, columns, last) {
  let svg = container.querySelector(':scope > svg.overview-links');
  if (!svg) {
    svg = document.createElementNS(SVG, 'svg');
    svg.classList.add('overview-links');
    svg.setAttribute('aria-hidden', 'true');  // the columns' labels name each layer's inputs
    container.prepend(svg);
  }
  svg.replaceChildren(arrowHead());
  const shownAs = new Map();  // layer name -> index of the column that shows it
  columns.forEach((column, i) => {
    if (!column.figure.hidden) shownAs.set(column.layer.name, i);
    else if (column.group && !last.get(column.group.module)?.figure.hidden) {
      shownAs.set(column.layer.name, columns.indexOf(last.get(column.group.module)));
    }
  });
  const links = [];
  let previous = -1;
  columns.forEach((column, j) => {
    if (column.figure.hidden) return;
    for (const input of column.layer.inputs ?? []) {
      const i = shownAs.get(input);
      if (i === undefined || i === j || i === previous) continue;
      if (!links.some(l => l.i === i && l.j === j)) links.push({ i, j, from: input, to: column.layer });
    }
    previous = j;
  });
  container.classList.toggle('has-links', links.length > 0);
  container.dataset.links = links.length;
  if (!links.length) return;
  svg.setAttribute('width', container.scrollWidth);
  svg.setAttribute('height', LANE);
  const middle = i => columns[i].figure.offsetLeft + columns[i].figure.offsetWidth / 2;
  for (const { i, j, from, to } of links) {
    const x1 = middle(i), x2 = middle(j);
    const top = Math.max(3, LANE - 10 - Math.min(LANE - 14, (x2 - x1) / 60));  // longer arcs rise higher
    const path = document.createElementNS(SVG, 'path');
    path.setAttribute('d', `M ${x1} ${LANE} C ${x1} ${top}, ${x2} ${top}, ${x2} ${LANE - 2}`);
    path.setAttribute('marker-end', 'url(#overview-arrow)');
    path.dataset.from = from;
    path.dataset.to = to.name;
    const title = document.createElementNS(SVG, 'title');
    title.textContent = `${from} → ${to.name} (${to.type})`;
    path.append(title);
    svg.append(path);
    if (SYMBOL[to.type]) {
      const label = document.createElementNS(SVG, 'text');
      label.setAttribute('x', x2 + 4);
      label.setAttribute('y', LANE - 4);
      label.textContent = SYMBOL[to.type];
      svg.append(label);
    }
  }
}

function arrowHead() {
  const defs = document.createElementNS(SVG, 'defs');
  const marker = document.createElementNS(SVG, 'marker');
  for (const [k, v] of Object.entries({ id: 'overview-arrow', viewBox: '0 0 6 6', refX: 3, refY: 3,
    markerWidth: 6, markerHeight: 6, orient: 'auto' })) marker.setAttribute(k, v);
  const tip = document.createElementNS(SVG, 'path');
  tip.setAttribute('d', 'M 0 0 L 6 3 L 0 6 z');
  marker.append(tip);
  defs.append(marker);
  return defs;
}
