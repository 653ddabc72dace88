// The prediction: one bar per class with its probability, the top class named. A model with many
// classes (ImageNet's 1,000) shows its ten most probable, highest first, and the rest on request:
// a thousand bars would bury the page, and nobody reads the 900th.

const MANY = 20;   // up to this many classes, every bar in class order
const TOP = 10;    // past it, this many first

export function render(container, store) {
  container.replaceChildren();
  const result = store.result;
  if (!result) return;
  const { prediction } = result;
  const classes = store.model.classes;
  const head = document.createElement('p');
  head.className = 'verdict';
  head.dataset.prediction = prediction.label;
  const pct = (prediction.probabilities[prediction.index] * 100).toFixed(1);
  head.textContent = `${prediction.label} · ${pct} %`;

  const many = classes.length > MANY;
  let order = prediction.probabilities.map((_, i) => i);
  if (many) {
    order.sort((a, b) => prediction.probabilities[b] - prediction.probabilities[a]);
    if (!store.allClasses) order = order.slice(0, TOP);
  }
  const list = document.createElement('ol');
  list.className = 'bars';
  list.setAttribute('aria-label', many && !store.allClasses
    ? `Probability of the ${TOP} most probable classes` : 'Probability of every class');
  for (const i of order) list.append(bar(classes[i], prediction.probabilities[i], i === prediction.index));
  container.append(head, list);

  if (many) {
    const toggle = document.createElement('button');
    toggle.type = 'button';
    toggle.className = 'link';
    toggle.dataset.action = 'all-classes';
    toggle.textContent = store.allClasses ? `Show the top ${TOP} only` : `Show all ${classes.length} classes`;
    toggle.addEventListener('click', () => store.set({ allClasses: !store.allClasses }));  // main.js redraws
    container.append(toggle);
  }
}

function bar(label, p, top) {
  const item = document.createElement('li');
  if (top) item.className = 'top';
  const name = document.createElement('span');
  name.className = 'name';
  name.textContent = label;
  const bar = document.createElement('span');
  bar.className = 'bar';
  bar.style.setProperty('--p', p.toFixed(4));
  const value = document.createElement('span');
  value.className = 'value';
  value.textContent = `${(p * 100).toFixed(1)} %`;
  item.append(name, bar, value);
  return item;
}
