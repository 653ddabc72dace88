// Tiny DOM helpers for the teaching views. Text always goes in as text nodes, never as HTML.

/** An element with properties (className, title, dataset, style, …) and children (nodes or text). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key === 'style') for (const [name, v] of Object.entries(value)) node.style.setProperty(name.replace(/[A-Z]/g, m => `-${m.toLowerCase()}`), v);
    else if (key.startsWith('aria-') || key === 'role') node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children.filter(c => c !== null && c !== undefined && c !== false));
  return node;
}

/** A number with a fixed number of decimals and a real minus sign. */
export const num = (v, digits = 3) => v.toFixed(digits).replace('-', '−');

/** A number to `digits` decimals, or in exponent form when that would show only zeros (gradients, tiny losses). */
export const sig = (v, digits = 4) =>
  (v !== 0 && Math.abs(v) < 10 ** -(digits - 1) ? v.toExponential(2) : v.toFixed(digits)).replace('-', '−');

/** A count with thousands separators. */
export const count = n => n.toLocaleString('en');

/** n / total as a percentage with one decimal. */
export const percent = (n, total) => `${total ? (100 * n / total).toFixed(1) : '0.0'} %`;

/** The [row, column] of the canvas pixel under a pointer event (canvas scaled by CSS). */
export function cellAt(canvas, event) {
  const r = canvas.getBoundingClientRect();
  const y = Math.floor((event.clientY - r.top) / r.height * canvas.height);
  const x = Math.floor((event.clientX - r.left) / r.width * canvas.width);
  return [Math.max(0, Math.min(canvas.height - 1, y)), Math.max(0, Math.min(canvas.width - 1, x))];
}
