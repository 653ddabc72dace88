// The prediction: one bar per class with its probability, the top class named.

export function render(container, store) {
  container.replaceChildren();
  const result = store.result;
  if (!result) return;
  const { prediction } = result;
  const head = document.createElement('p');
  head.className = 'verdict';
  head.dataset.prediction = prediction.label;
  const pct = (prediction.probabilities[prediction.index] * 100).toFixed(1);
  head.textContent = `${prediction.label} · ${pct} %`;
  const list = document.createElement('ol');
  list.className = 'bars';
  list.setAttribute('aria-label', 'Probability of every class');
  prediction.probabilities.forEach((p, i) => {
    const item = document.createElement('li');
    if (i === prediction.index) item.className = 'top';
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = store.model.classes[i];
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.style.setProperty('--p', p.toFixed(4));
    const value = document.createElement('span');
    value.className = 'value';
    value.textContent = `${(p * 100).toFixed(1)} %`;
    item.append(name, bar, value);
    list.append(item);
  });
  container.append(head, list);
}
