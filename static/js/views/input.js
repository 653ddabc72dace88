// Giving the model an image: samples, file button, drag and drop, paste, or drawing on a pad.

import { image } from '../api.js';
import { drawInput } from '../draw/heatmap.js';

/** The shipped samples as buttons; for another source only which one is pressed changes. */
export function renderSamples(container, store, choose) {
  if (container.samples === store.samples) {
    for (const button of container.children) {
      button.setAttribute('aria-pressed', String(store.source?.sample === button.dataset.sample));
    }
    return;
  }
  container.samples = store.samples;
  container.replaceChildren();
  for (const sample of store.samples) {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'sample';
    button.dataset.sample = sample.id;
    // A models file may ship samples without a label: then the sample is named by its id alone.
    button.setAttribute('aria-label', sample.label_name ? `Sample ${sample.id}, a ${sample.label_name}` : `Sample ${sample.id}`);
    button.setAttribute('aria-pressed', String(store.source?.sample === sample.id));
    button.append(image(sample.url));
    button.addEventListener('click', () => choose({ sample: sample.id, url: sample.url, label: sample.label_name }));
    container.append(button);
  }
}

/** File button, drop zone and clipboard paste, all ending in choose({blob, name, url}). */
export function wireUploads(root, choose) {
  const pick = file => {
    if (file) choose({ blob: file, name: file.name || 'pasted.png', url: URL.createObjectURL(file) });
  };
  const input = root.querySelector('[data-control=file]');
  input.addEventListener('change', () => pick(input.files[0]));
  const zone = root.querySelector('[data-dropzone]');
  zone.addEventListener('dragover', event => { event.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', event => {
    event.preventDefault();
    zone.classList.remove('over');
    pick(event.dataTransfer.files[0]);
  });
  document.addEventListener('paste', event => {
    const item = [...event.clipboardData.items].find(i => i.type.startsWith('image/'));
    if (item) pick(item.getAsFile());
  });
}

/** A drawing pad: white ink on black, like MNIST; every finished stroke is sent. */
export function wirePad(canvas, clearButton, choose) {
  const ctx = canvas.getContext('2d');
  const clear = () => { ctx.fillStyle = '#000'; ctx.fillRect(0, 0, canvas.width, canvas.height); };
  clear();
  let last = null;
  const point = event => {
    const r = canvas.getBoundingClientRect();
    return [(event.clientX - r.left) * canvas.width / r.width, (event.clientY - r.top) * canvas.height / r.height];
  };
  canvas.addEventListener('pointerdown', event => {
    canvas.setPointerCapture(event.pointerId);
    last = point(event);
  });
  canvas.addEventListener('pointermove', event => {
    if (!last) return;
    const next = point(event);
    ctx.strokeStyle = '#fff';
    ctx.lineWidth = canvas.width / 14;
    ctx.lineCap = ctx.lineJoin = 'round';
    ctx.beginPath();
    ctx.moveTo(...last);
    ctx.lineTo(...next);
    ctx.stroke();
    last = next;
  });
  const finish = () => {
    if (!last) return;
    last = null;
    canvas.toBlob(blob => choose({ blob, name: 'drawing.png', url: canvas.toDataURL(), drawn: true }), 'image/png');
  };
  canvas.addEventListener('pointerup', finish);
  canvas.addEventListener('pointercancel', finish);
  clearButton.addEventListener('click', clear);
}

/** What to call an image in a sentence: the file's name, "your drawing", or the sample's id. */
export function imageName(source) {
  if (source.drawn) return 'your drawing';
  return source.name ?? (source.sample ? `sample ${source.sample}` : 'the image');
}

/** A short muted sentence in place of, or under, an image. */
function note(text, hook) {
  const p = document.createElement('p');
  p.className = 'hint';
  p.dataset[hook] = '';
  p.textContent = text;
  return p;
}

/**
 * The original image beside the preprocessed input the model actually sees. The original is shown
 * only if the browser can decode it (a PDF dropped by mistake gets a sentence, not a broken-image
 * icon). After a failed run (`store.rejected`) the input drawn is still the previous image's,
 * dimmed and labelled so; see run() in main.js for why it stays.
 */
export function renderInputs(original, prepared, store) {
  original.replaceChildren();
  const source = store.source;
  if (source?.url) {
    const name = imageName(source);
    original.append(image(source.url, { alt: `The image you gave: ${name}`, onError: img => img.replaceWith(
      note(`${name} cannot be shown: the browser cannot read it as an image.`, 'unreadable')) }));
  }
  const input = store.result?.input;
  if (input) {
    const [c, h, w] = input.shape;
    // Drawn from the served input tensor itself, so this is exactly what the first layer receives.
    const canvas = document.createElement('canvas');
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', `What the model sees: ${c}×${h}×${w}`);
    drawInput(canvas, input, store.model.input.mean, store.model.input.std);
    canvas.dataset.prepared = '';
    prepared.replaceChildren(canvas);
    if (store.rejected) {
      canvas.style.opacity = '0.45';
      canvas.setAttribute('aria-label', `What the model saw of the previous image: ${c}×${h}×${w}`);
      prepared.append(note('previous image', 'previousNote'));
    }
  }
}

/** Mark the prediction on show as the previous image's while the last run failed, or unmark it. */
export function markPrevious(container, store) {
  const stale = Boolean(store.rejected && store.result);
  container.toggleAttribute('data-previous', stale);
  container.style.opacity = stale ? '0.45' : '';
  const old = container.parentElement.querySelector(':scope > [data-previous-note]');
  if (old) old.remove();
  if (stale) {
    container.before(note(`For the previous image: ${imageName(store.rejected)} was not run.`, 'previousNote'));
  }
}
