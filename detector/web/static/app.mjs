// The in-browser scanner page: load the site's model once into onnxruntime-web (WebAssembly), then scan
// every photo picked, dropped or taken with the camera, here, with logo-scan.mjs. No photo is uploaded:
// files are read with createImageBitmap, scanned in this tab, and drawn on a canvas; the results can be
// saved as JSON (a blob: download, not a request).
//
// URL parameters (for tests and benchmarks): ?threads=N (with cross-origin isolation),
// ?precision=fp32|fp16|int8 (a model file the export wrote; default: the smallest).

import * as ort from './ort/ort.wasm.min.mjs';
import { errorRecord, openModel, ortRuntime, scanImage, toRecord } from './logo-scan.mjs';

const params = new URLSearchParams(location.search);
const $ = (sel) => document.querySelector(sel);
const MAX_PIXELS = 50_000_000; // what one tab can hold as RGBA and its pyramid levels
const page = { ready: null, records: [], boxes: [], scanMs: [], loadMs: null, threads: 1, precision: null };
page.model = null;
window.logoScanPage = page; // read by tests and benchmarks/web_speed.py

function setStatus(text, state) {
  const el = $('#status');
  el.textContent = text;
  if (state) el.dataset.state = state;
}

// Threads need SharedArrayBuffer, which browsers give only to cross-origin isolated pages
// (Cross-Origin-Opener-Policy: same-origin + Cross-Origin-Embedder-Policy: require-corp).
function chooseThreads() {
  const cores = navigator.hardwareConcurrency || 1;
  const asked = Number(params.get('threads')) || cores;
  if (!self.crossOriginIsolated) return { threads: 1, why: 'one thread: the page is not cross-origin isolated' };
  return { threads: Math.max(1, Math.min(asked, cores, 16)), why: 'cross-origin isolated' };
}

function pickModel(site) {
  const wanted = params.get('precision');
  const files = site.models;
  const choice = wanted ? files.find((m) => m.precision === wanted) : files.find((m) => m.precision === site.default);
  if (!choice) throw new Error(`this site has no ${wanted} model (it has ${files.map((m) => m.precision).join(', ')})`);
  return choice;
}

async function fetchBytes(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

async function loadModel() {
  const site = await (await fetch('site.json')).json();
  const file = pickModel(site);
  const { threads, why } = chooseThreads();
  ort.env.wasm.wasmPaths = new URL('./ort/', import.meta.url).href;
  ort.env.wasm.numThreads = threads;
  ort.env.logLevel = 'error';
  const t0 = performance.now();
  const bytes = await fetchBytes(file.path);
  const runtime = ortRuntime(ort, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  runtime.name = `onnxruntime-web (wasm, ${file.precision}, ${threads} thread${threads > 1 ? 's' : ''})`;
  const model = await openModel(bytes, runtime, { name: site.name, sha256: file.sha256 });
  Object.assign(page, { loadMs: performance.now() - t0, threads, precision: file.precision, model });
  const meta = model.meta;
  const brands = meta.classes.filter((c) => c !== meta.negative_class).join(', ');
  $('#model-info').textContent =
    `${site.name}: ${brands} · ${file.precision}, ${(file.bytes / 1e6).toFixed(1)} MB, loaded in ` +
    `${(page.loadMs / 1000).toFixed(2)} s · WebAssembly, ${threads} thread${threads > 1 ? 's' : ''} (${why})`;
  for (const input of [$('#pick'), $('#camera')]) input.disabled = false;
  setStatus('Ready: add photos. They are scanned on this device.', 'ready');
}

// A file -> RGBA pixels, EXIF orientation applied, colours as stored (no colour management), as
// Python's decoder gives them.
async function decode(file) {
  const bitmap = await createImageBitmap(file, {
    colorSpaceConversion: 'none',
    premultiplyAlpha: 'none',
    imageOrientation: 'from-image',
  });
  if (bitmap.width * bitmap.height > MAX_PIXELS) {
    throw new Error(`${bitmap.width}x${bitmap.height} is over ${MAX_PIXELS / 1e6} megapixels`);
  }
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  const data = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
  return { bitmap, image: { width: bitmap.width, height: bitmap.height, channels: 4, data } };
}

async function sha256(file) {
  if (!crypto.subtle) return ''; // only in secure contexts (https, localhost)
  const digest = await crypto.subtle.digest('SHA-256', await file.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

// JET colours with alpha rising with the evidence: the server's heatmap overlay, drawn locally.
function jet(v) {
  const c = (x) => Math.round(255 * Math.min(1, Math.max(0, x)));
  return [c(1.5 - Math.abs(4 * v - 3)), c(1.5 - Math.abs(4 * v - 2)), c(1.5 - Math.abs(4 * v - 1))];
}

function heatCanvas(heatmaps) {
  const maps = Object.values(heatmaps || {}).filter(Boolean);
  if (!maps.length) return null;
  const { width, height } = maps[0];
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(width, height);
  for (let i = 0; i < width * height; i++) {
    const v = Math.max(...maps.map((m) => m.data[i]));
    const [r, g, b] = jet(v);
    img.data.set([r, g, b, Math.round(200 * Math.min(1, v * 1.5))], i * 4);
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

// Boxes the calibrated scorer believes (score >= 0.5) solid and labelled; the others thin and dashed.
function drawBoxes(ctx, boxes, scale) {
  const unit = ctx.canvas.width / (ctx.canvas.clientWidth || ctx.canvas.width); // canvas px per CSS px
  const th = Math.round(16 * unit);
  ctx.font = `bold ${Math.round(12 * unit)}px system-ui, sans-serif`;
  for (const b of [...boxes].reverse()) {
    const [x, y, w, h] = [b.x1 * scale, b.y1 * scale, (b.x2 - b.x1) * scale, (b.y2 - b.y1) * scale];
    const sure = b.score >= 0.5;
    ctx.setLineDash(sure ? [] : [4 * unit, 3 * unit]);
    ctx.lineWidth = (sure ? 2.5 : 1.25) * unit;
    ctx.strokeStyle = sure ? '#ff4020' : 'rgba(255, 210, 63, 0.9)';
    ctx.strokeRect(x, y, w, h);
    if (!sure) continue;
    const text = `${b.label} ${b.score.toFixed(2)}`;
    const tw = ctx.measureText(text).width + 6 * unit;
    const tx = Math.max(0, Math.min(x, ctx.canvas.width - tw));
    const ty = y - th >= 0 ? y - th : Math.min(y + h, ctx.canvas.height - th);
    ctx.fillStyle = '#ffd23f';
    ctx.fillRect(tx, ty, tw, th);
    ctx.fillStyle = '#000';
    ctx.fillText(text, tx + 3 * unit, ty + th - 4 * unit);
  }
  ctx.setLineDash([]);
}

function draw(card) {
  const { bitmap, result, heat } = card;
  const canvas = card.el.querySelector('canvas');
  const side = Math.max(bitmap.width, bitmap.height);
  const scale = Math.min(1600, Math.max(640, side)) / side; // small photos drawn larger, huge ones smaller
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  const ctx = canvas.getContext('2d');
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  if (heat && $('#show-heat').checked) ctx.drawImage(heat, 0, 0, canvas.width, canvas.height);
  if (result && $('#show-boxes').checked) drawBoxes(ctx, result.boxes, scale);
}

function showResult(card, record, ms) {
  const el = card.el;
  const verdict = el.querySelector('.verdict');
  verdict.classList.remove('pending');
  verdict.classList.toggle('found', record.has_logo);
  verdict.textContent = record.has_logo ? `Logo found: ${record.labels.join(', ')}` : 'No logo found';
  const scores = el.querySelector('.scores');
  for (const [label, score] of Object.entries(record.scores)) {
    const li = document.createElement('li');
    const bar = document.createElement('span');
    bar.className = 'bar';
    const fill = document.createElement('span');
    fill.style.width = `${Math.round(score * 100)}%`;
    fill.style.background = score >= record.thresholds[label] ? 'var(--found)' : '#8a94a3';
    bar.append(fill);
    li.append(label, bar, score.toFixed(3));
    scores.append(li);
  }
  const list = el.querySelector('.box-list');
  for (const b of record.boxes) {
    const li = document.createElement('li');
    const unsure = b.score < 0.5 ? ' (unsure)' : '';
    li.textContent = `${b.label} ${b.score.toFixed(2)} at x ${b.x1}-${b.x2}, y ${b.y1}-${b.y2}${unsure}`;
    list.append(li);
  }
  el.querySelector('.facts').textContent =
    `${record.width}x${record.height} · scanned in ${(ms / 1000).toFixed(2)} s on this device ` +
    `(${record.timings_ms.tiles} windows; model ${(record.timings_ms.model / 1000).toFixed(2)} s)`;
}

function newCard(name) {
  const el = $('#card-template').content.firstElementChild.cloneNode(true);
  el.querySelector('.name').textContent = name;
  $('#results').prepend(el);
  return { el, bitmap: null, result: null, heat: null };
}

async function scanFile(file) {
  const card = newCard(file.name || 'photo');
  const t0 = performance.now();
  let record;
  try {
    const { bitmap, image } = await decode(file);
    card.bitmap = bitmap;
    draw(card);
    await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0))); // paint "Scanning…"
    const result = await scanImage(page.model, image, { heatmap: true });
    const ms = performance.now() - t0;
    Object.assign(card, { result, heat: heatCanvas(result.heatmaps) });
    record = toRecord(result, page.model, { path: file.name || 'photo', sha256: await sha256(file) });
    draw(card);
    showResult(card, record, ms);
    page.scanMs.push(ms);
    cards.push(card);
  } catch (err) {
    record = errorRecord(page.model, file.name || 'photo', String(err.message || err));
    const verdict = card.el.querySelector('.verdict');
    verdict.className = 'verdict error';
    verdict.textContent = `Cannot scan this file: ${record.errors[0]}`;
  }
  page.records.push(record);
  page.boxes.push(card.result ? card.result.boxes : []); // full precision, beside the record's rounded ones
  $('#download').disabled = false;
}

const cards = [];
let queue = Promise.resolve();

function addFiles(files) {
  for (const file of files) {
    queue = queue.then(async () => {
      setStatus(`Scanning ${file.name || 'photo'} on this device…`, 'scanning');
      await scanFile(file);
      setStatus(`${page.records.length} photo(s) scanned on this device; nothing was uploaded.`, 'done');
      $('#status').dataset.count = String(page.records.length);
    });
  }
}

function download() {
  const data = page.records.length === 1 ? page.records[0] : page.records;
  const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 1)], { type: 'application/json' }));
  const a = Object.assign(document.createElement('a'), { href: url, download: 'logo-scan-results.json' });
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function wire() {
  for (const input of [$('#pick'), $('#camera')]) {
    input.addEventListener('change', () => {
      addFiles([...input.files]);
      input.value = '';
    });
  }
  const drop = $('#drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    if (page.model) addFiles([...e.dataTransfer.files].filter((f) => f.type.startsWith('image/')));
  });
  $('#show-heat').addEventListener('change', () => cards.forEach(draw));
  $('#show-boxes').addEventListener('change', () => cards.forEach(draw));
  $('#download').addEventListener('click', download);
}

wire();
page.ready = loadModel().catch((err) => {
  setStatus(`The model could not be loaded: ${err.message || err}`, 'error');
  throw err;
});
