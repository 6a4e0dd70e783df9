// logo-scan: the logo-detector scan of one image, in JavaScript, from an exported ONNX file.
//
// The same steps as the Python scanner (detector/pipeline/scan.py, tiles mode), with the same numbers:
// pyramid levels within the window budget -> windows of the model's input size (OpenCV's resizing,
// reproduced exactly) -> the model (probabilities and per-location logits) -> image verdicts per class
// -> for the classes present: Grad-CAM of every positive window, stitched per level, thresholded,
// fragments joined, components -> boxes re-scored by their windows -> merged across levels -> the
// box calibration. Everything besides the weights comes from the file's metadata_props.
//
// The runtime is injected, so one module serves the browser (onnxruntime-web) and Node
// (onnxruntime-node): `ortRuntime(ort)` adapts either package's `InferenceSession` and `Tensor`.
//
//   import * as ort from './ort/ort.wasm.min.mjs';
//   import { openModel, scanImage, toRecord } from './logo-scan.mjs';
//   const model = await openModel(bytes, ortRuntime(ort));
//   const result = await scanImage(model, { width, height, data /* RGB or RGBA bytes */ });
//   console.log(JSON.stringify(toRecord(result, model, { path: 'photo.png' })));

import { parseModelMeta, readMetadataProps, tileThreshold } from './scan/meta.mjs';
import { cutTiles, planPyramid, pyramidTiles, tileBox } from './scan/pyramid.mjs';
import { LevelCanvas, fitsLevel, gradcam } from './scan/stitch.mjs';
import { applyBoxCalibration, containment, mergeLevels } from './scan/boxes.mjs';
import { mean, roundTo } from './scan/numbers.mjs';

export { BudgetError } from './scan/pyramid.mjs';
export { readMetadataProps, parseModelMeta } from './scan/meta.mjs';

export const SCAN_SCHEMA = 'logo-detector/scan@2';
const CANVAS_SIDE = 640;
const DEFAULT_CAM_THRESHOLD = 0.5;
const DEFAULT_JOIN_CELLS = 3.0;
const SUPPORT_SHARE = 0.7;

/** The scan options the JavaScript scan takes, with ScanOptions' defaults. */
export const DEFAULT_OPTIONS = Object.freeze({
  overlap: 0.5,
  batchSize: 32,
  maxUpscale: 2.0,
  maxWindows: 512,
  scales: null,
  minLogo: null,
  maxLogo: null,
  boxes: true,
  heatmap: false,
  camThreshold: null,
  tileThreshold: null,
  joinCells: null,
  merge: 'nms',
  boxCalibration: true,
});

const now = () => (typeof performance !== 'undefined' ? performance.now() : Date.now());

/**
 * Adapt an onnxruntime package (onnxruntime-web or onnxruntime-node: the same API) to the scanner.
 * @param {object} ort the package's namespace (InferenceSession, Tensor)
 * @param {object} [sessionOptions] passed to InferenceSession.create
 * @returns {{name: string, load: (bytes: Uint8Array) => Promise<{run: Function}>}}
 */
export function ortRuntime(ort, sessionOptions = {}) {
  return {
    name: sessionOptions.executionProviders ? `onnxruntime (${sessionOptions.executionProviders})` : 'onnxruntime',
    async load(bytes) {
      const session = await ort.InferenceSession.create(bytes, sessionOptions);
      return {
        async run(pixels, n, h, w) {
          const out = await session.run({ pixels: new ort.Tensor('float32', pixels, [n, h, w, 3]) }, ['probs', 'cam']);
          return { probs: out.probs.data, cam: out.cam.data, camDims: out.cam.dims.map(Number) };
        },
      };
    },
  };
}

/**
 * Read a model file's metadata and start its session.
 * @param {Uint8Array} bytes the .onnx file
 * @param {{name: string, load: Function}} runtime from ortRuntime()
 * @param {{name?: string, sha256?: string}} [info] the model's name and file hash, for the records
 */
export async function openModel(bytes, runtime, info = {}) {
  const meta = parseModelMeta(readMetadataProps(bytes));
  const session = await runtime.load(bytes);
  return { meta, session, name: info.name ?? 'model', sha256: info.sha256 ?? '', backend: runtime.name };
}

function asRgb(image) {
  const { width, height, data } = image;
  const channels = image.channels ?? data.length / (width * height);
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`image: width and height must be positive integers, got ${width}x${height}`);
  }
  if (channels === 3) return { width, height, channels: 3, data };
  if (channels !== 4) throw new Error(`image: expected RGB or RGBA bytes, got ${channels} channels`);
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < data.length; i += 4, j += 3) {
    rgb[j] = data[i];
    rgb[j + 1] = data[i + 1];
    rgb[j + 2] = data[i + 2]; // alpha dropped, not composited: as PIL's convert('RGB') does
  }
  return { width, height, channels: 3, data: rgb };
}

// evidence.CutTiles: every window of every level, cut and classified a batch at a time.
async function tileEvidence(model, img, opts) {
  const t0 = now();
  const size = model.meta.input_size;
  const plan = planPyramid(img.width, img.height, size, opts);
  const tiles = pyramidTiles(img.width, img.height, plan.scales, size, opts.overlap);
  const levels = new Map();
  const k = model.meta.classes.length;
  const probs = new Float32Array(tiles.length * k);
  let cams = null;
  let camDims = null;
  let cutMs = now() - t0;
  let modelMs = 0;
  for (let i = 0; i < tiles.length; i += opts.batchSize) {
    const batch = tiles.slice(i, i + opts.batchSize);
    const c0 = now();
    const pixels = cutTiles(img, batch, levels);
    const c1 = now();
    const out = await model.session.run(pixels, batch.length, size, size);
    modelMs += now() - c1;
    cutMs += c1 - c0;
    if (!cams) {
      camDims = out.camDims.slice(1);
      cams = new Float32Array(tiles.length * camDims[0] * camDims[1] * camDims[2]);
    }
    probs.set(out.probs, i * k);
    cams.set(out.cam, i * camDims[0] * camDims[1] * camDims[2]);
  }
  const notes = plan.note ? [plan.note] : [];
  return { width: img.width, height: img.height, tiles, probs, cams, camDims, k, modelMs, tilingMs: cutMs, notes };
}

/** Per logo class: its best window's probability, its image threshold, and whether it is present. */
export function verdicts(ev, meta) {
  const neg = meta.classes.indexOf(meta.negative_class);
  const scores = {};
  const thresholds = {};
  meta.classes.forEach((c, i) => {
    if (i === neg) return;
    let best = ev.tiles.length ? -Infinity : 0;
    for (let t = 0; t < ev.tiles.length; t++) best = Math.max(best, ev.probs[t * ev.k + i]);
    scores[c] = best;
    thresholds[c] = Number(meta.image_thresholds[c] ?? tileThreshold(meta, c));
  });
  return { scores, thresholds, present: Object.keys(scores).filter((c) => scores[c] >= thresholds[c]) };
}

const tileThr = (opts, meta, label) => (opts.tileThreshold ?? tileThreshold(meta, label));

// scan._level_canvases: the positive windows' Grad-CAMs of class c, stitched per level.
function levelCanvases(ev, meta, opts, c) {
  const neg = meta.classes.indexOf(meta.negative_class);
  const thr = tileThr(opts, meta, meta.classes[c]);
  const [h, w, k] = ev.camDims;
  const cell = h * w * k;
  const scale = Math.min(1, CANVAS_SIDE / Math.max(ev.width, ev.height));
  const levels = new Map();
  ev.tiles.forEach((t, i) => {
    const p = ev.probs[i * ev.k + c];
    if (!(p >= thr)) return;
    const map = gradcam(ev.cams.subarray(i * cell, (i + 1) * cell), h, w, k, meta.head_bias, c, neg);
    if (!levels.has(t.scale)) levels.set(t.scale, new LevelCanvas(ev.width, ev.height, scale));
    levels.get(t.scale).add(t, map, h, w, p, meta.cam_stride, meta.cam_offset);
  });
  return levels;
}

// scan.support_score: the mean probability of the windows of its level that hold most of the box.
function supportScore(d, ev, c) {
  const support = [];
  ev.tiles.forEach((t, i) => {
    if (t.scale !== d.scale) return;
    const [x1, y1, x2, y2] = tileBox(t);
    if (containment(d, { x1, y1, x2, y2 }) >= SUPPORT_SHARE) support.push(ev.probs[i * ev.k + c]);
  });
  return support.length ? { ...d, score: mean(support) } : d;
}

function levelBoxes(ev, meta, opts, label, levels) {
  const c = meta.classes.indexOf(label);
  const camThr = opts.camThreshold ?? (meta.cam_threshold || DEFAULT_CAM_THRESHOLD);
  const joinCells = opts.joinCells ?? (meta.join_cells || DEFAULT_JOIN_CELLS);
  const thr = tileThr(opts, meta, label);
  const out = [];
  for (const [s, canvas] of levels) {
    const join = (joinCells * meta.cam_stride * canvas.k) / s; // map cells -> canvas pixels at this level
    const found = canvas.boxes(label, s, camThr, join).filter((d) => fitsLevel(d, meta.input_size));
    out.push(...found.map((d) => supportScore(d, ev, c)).filter((d) => d.score >= thr));
  }
  return out;
}

// scan.find_boxes: boxes of the classes present, merged across levels, calibrated.
function findBoxes(ev, meta, opts, present, canvases) {
  let dets = [];
  for (const label of present) {
    const levels = canvases.get(label) ?? levelCanvases(ev, meta, opts, meta.classes.indexOf(label));
    dets = dets.concat(levelBoxes(ev, meta, opts, label, levels));
  }
  let boxes = dets.length ? mergeLevels(dets, opts.merge) : [];
  if (meta.box_calibration && opts.boxCalibration) {
    boxes = applyBoxCalibration(meta.box_calibration, boxes, meta.input_size, ev.width, ev.height);
  }
  return boxes;
}

// Per class: the max over its levels of the score maps (scan.assemble_result's heatmaps).
function heatmapOf(levels) {
  let out = null;
  for (const canvas of levels.values()) {
    if (!out) out = { width: canvas.width, height: canvas.height, data: Float32Array.from(canvas.score) };
    else for (let i = 0; i < out.data.length; i++) out.data[i] = Math.max(out.data[i], canvas.score[i]);
  }
  return out;
}

function checkOptions(options) {
  const opts = { ...DEFAULT_OPTIONS, ...options };
  for (const key of Object.keys(options)) {
    if (!(key in DEFAULT_OPTIONS)) throw new Error(`unknown scan option '${key}'`);
  }
  const positiveInt = (v) => Number.isInteger(v) && v >= 1;
  const overlapOk = opts.overlap >= 0 && opts.overlap <= 0.75;
  if (!overlapOk) throw new Error(`overlap must be in [0, 0.75], got ${opts.overlap}`);
  if (!positiveInt(opts.batchSize)) throw new Error(`batchSize must be a positive integer, got ${opts.batchSize}`);
  if (!positiveInt(opts.maxWindows)) throw new Error(`maxWindows must be a positive integer, got ${opts.maxWindows}`);
  return opts;
}

/**
 * Scan one image: verdicts, scores and boxes (and, with `heatmap`, the stitched maps per class).
 * @param {object} model from openModel()
 * @param {{width:number, height:number, data:Uint8Array|Uint8ClampedArray, channels?:number}} image RGB or RGBA
 * @param {object} [options] see DEFAULT_OPTIONS (camelCase names of ScanOptions' fields)
 * @returns {Promise<object>} {width, height, scores, thresholds, labels, has_logo, boxes, heatmaps, timings_ms, notes}
 */
export async function scanImage(model, image, options = {}) {
  const opts = checkOptions(options);
  const img = asRgb(image);
  const ev = await tileEvidence(model, img, opts);
  const t0 = now();
  const meta = model.meta;
  const v = verdicts(ev, meta);
  const canvases = new Map();
  if (opts.heatmap) {
    for (const label of Object.keys(v.scores)) {
      const levels = levelCanvases(ev, meta, opts, meta.classes.indexOf(label));
      if (levels.size) canvases.set(label, levels);
    }
  }
  const boxes = opts.boxes ? findBoxes(ev, meta, opts, v.present, canvases) : [];
  const heatmaps = opts.heatmap ? Object.fromEntries([...canvases].map(([c, lv]) => [c, heatmapOf(lv)])) : null;
  return {
    width: ev.width,
    height: ev.height,
    scores: v.scores,
    thresholds: v.thresholds,
    has_logo: v.present.length > 0,
    labels: v.present,
    boxes,
    heatmaps,
    notes: ev.notes,
    timings_ms: { tiling: ev.tilingMs, model: ev.modelMs, boxes: now() - t0, tiles: ev.tiles.length },
  };
}

function roundedBox(b) {
  return {
    label: b.label,
    score: roundTo(b.score, 4),
    x1: roundTo(b.x1, 1),
    y1: roundTo(b.y1, 1),
    x2: roundTo(b.x2, 1),
    y2: roundTo(b.y2, 1),
    scale: roundTo(b.scale, 4),
  };
}

/**
 * A scan as the scan@2 JSON record (detector/results/record.py ScanResult.as_dict), exposure left out.
 * @param {object} result from scanImage()
 * @param {object} model from openModel()
 * @param {{path?: string, sha256?: string}} [file]
 */
export function toRecord(result, model, file = {}) {
  const round = (obj, digits) => Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, roundTo(v, digits)]));
  return {
    schema: SCAN_SCHEMA,
    path: file.path ?? '',
    width: result.width,
    height: result.height,
    scores: round(result.scores, 4),
    has_logo: result.has_logo,
    labels: result.labels,
    boxes: result.boxes.map(roundedBox),
    errors: [],
    notes: result.notes,
    timings_ms: round(result.timings_ms, 1),
    model: { name: model.name, sha256: model.sha256, backend: model.backend },
    sha256: file.sha256 ?? '',
    thresholds: round(result.thresholds, 6),
  };
}

/**
 * An error record for a file that could not be scanned (same schema; `errors` says why).
 * @param {object} model from openModel()
 */
export function errorRecord(model, path, reason) {
  return {
    schema: SCAN_SCHEMA,
    path,
    width: 0,
    height: 0,
    scores: {},
    has_logo: false,
    labels: [],
    boxes: [],
    errors: [reason],
    notes: [],
    timings_ms: {},
    model: { name: model.name, sha256: model.sha256, backend: model.backend },
    sha256: '',
  };
}
