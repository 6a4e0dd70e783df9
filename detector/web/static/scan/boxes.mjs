// Boxes of all pyramid levels -> one box per logo, then the box calibration:
// detector/geometry.py (IoU, containment, OpenCV's NMSBoxes per label), detector/pipeline/merge.py
// ("nms": NMS then containment suppression) and detector/pipeline/calibration.py (size and centre
// correction, the logistic box scorer). A box is {label, score, x1, y1, x2, y2, scale}.

const f32 = Math.fround;

function intersection(a, b) {
  const w = Math.max(0, Math.min(a.x2, b.x2) - Math.max(a.x1, b.x1));
  return w * Math.max(0, Math.min(a.y2, b.y2) - Math.max(a.y1, b.y1));
}

function area(b) {
  return Math.max(0, b.x2 - b.x1) * Math.max(0, b.y2 - b.y1);
}

/** Intersection over union; 0 for boxes with no area. */
export function iou(a, b) {
  const inter = intersection(a, b);
  const union = area(a) + area(b) - inter;
  return union > 0 ? inter / union : 0;
}

/** The share of `inner`'s area inside `outer`. */
export function containment(inner, outer) {
  return intersection(inner, outer) / Math.max(area(inner), 1e-6);
}

// OpenCV's rectOverlap for Rect2d: 1 - float(jaccardDistance), in float.
function cvOverlap(a, b) {
  const aa = (a.x2 - a.x1) * (a.y2 - a.y1);
  const ab = (b.x2 - b.x1) * (b.y2 - b.y1);
  if (aa + ab <= Number.EPSILON) return f32(1);
  const w = Math.min(a.x2, b.x2) - Math.max(a.x1, b.x1);
  const h = Math.min(a.y2, b.y2) - Math.max(a.y1, b.y1);
  const inter = w > 0 && h > 0 ? w * h : 0;
  return f32(1 - f32(1 - inter / (aa + ab - inter)));
}

// cv2.dnn.NMSBoxes(rects, score + 1, 0, iouMax) of one label's boxes: a stable sort by float32 score,
// then keep a box when its overlap with every kept one is at most the threshold.
function nmsOneLabel(dets, iouMax) {
  const order = dets.map((d, i) => [f32(d.score + 1), i]).sort((p, q) => q[0] - p[0]);
  const limit = f32(iouMax);
  const kept = [];
  for (const [, i] of order) {
    if (kept.every((k) => cvOverlap(dets[i], dets[k]) <= limit)) kept.push(i);
  }
  return kept.map((i) => dets[i]);
}

/** Per-label non-maximum suppression, highest score first (geometry.nms). */
export function nms(dets, iouMax = 0.45) {
  const labels = [...new Set(dets.map((d) => d.label))].sort();
  const kept = labels.flatMap((label) => nmsOneLabel(dets.filter((d) => d.label === label), iouMax));
  return stableSortByScore(kept);
}

function stableSortByScore(dets) {
  return dets
    .map((d, i) => [d, i])
    .sort((p, q) => q[0].score - p[0].score || p[1] - q[1])
    .map((p) => p[0]);
}

/** Drop a box when it and a better box of its label are one inside the other (merge.suppress_contained). */
export function suppressContained(dets, share = 0.7) {
  const keep = [];
  for (const d of stableSortByScore(dets)) {
    if (!keep.some((k) => k.label === d.label && Math.max(containment(d, k), containment(k, d)) >= share)) keep.push(d);
  }
  return keep;
}

/** One box per logo from the boxes every level proposed: merge.merge_levels(method="nms"). */
export function mergeLevels(dets, method = 'nms', iouMin = 0.3, share = 0.7) {
  if (method !== 'nms') throw new Error(`merge '${method}' is not available in JavaScript (only nms)`);
  return suppressContained(nms(dets, iouMin), share);
}

// ---- box calibration (detector/pipeline/calibration.py) ----

const SCORER_FEATURES = [
  'logit of the window score',
  'log fill of the window',
  'log aspect (w/h)',
  '|log aspect|',
  'log level scale',
  'inside another box',
  'contains another box',
  'boxes in the image',
];
const MAX_FACTOR = 3.0;

function fill(d, tile) {
  return (Math.max(d.x2 - d.x1, d.y2 - d.y1, 1e-3) * d.scale) / tile;
}

function correctBoxes(dets, corr, tile, width, height) {
  if (!corr) return dets;
  const lim = Math.log(MAX_FACTOR);
  const clampLog = (v) => Math.exp(Math.min(Math.max(v, -lim), lim));
  return dets.map((d) => {
    const f = Math.log(fill(d, tile));
    const sw = clampLog(corr.log_w[0] + corr.log_w[1] * f);
    const sh = clampLog(corr.log_h[0] + corr.log_h[1] * f);
    const pw = d.x2 - d.x1;
    const ph = d.y2 - d.y1;
    const cx = (d.x1 + d.x2) / 2 + corr.dx * pw;
    const cy = (d.y1 + d.y2) / 2 + corr.dy * ph;
    return {
      ...d,
      x1: Math.max(0, cx - (pw * sw) / 2),
      y1: Math.max(0, cy - (ph * sh) / 2),
      x2: Math.min(width, cx + (pw * sw) / 2),
      y2: Math.min(height, cy + (ph * sh) / 2),
    };
  });
}

function boxFeatures(d, dets, tile) {
  const w = Math.max(d.x2 - d.x1, 1e-3);
  const h = Math.max(d.y2 - d.y1, 1e-3);
  const same = dets.filter((k) => k !== d && k.label === d.label);
  const inside = same.some((k) => intersection(k, d) / (w * h) > 0.5);
  const contains = same.some((k) => intersection(k, d) / Math.max((k.x2 - k.x1) * (k.y2 - k.y1), 1e-6) > 0.5);
  const p = Math.min(Math.max(d.score, 1e-6), 1 - 1e-6);
  const aspect = Math.log(w / h);
  return [
    Math.log(p / (1 - p)),
    Math.log(fill(d, tile)),
    aspect,
    Math.abs(aspect),
    Math.log(Math.max(d.scale, 1e-6)),
    Number(inside),
    Number(contains),
    same.length + 1,
  ];
}

function rescoreBoxes(dets, scorer, tile) {
  if (!scorer || !dets.length || !Object.keys(scorer).length) return dets;
  const out = dets.map((d) => {
    const weights = scorer[d.label];
    if (!weights) return d;
    const f = boxFeatures(d, dets, tile);
    const z = f.reduce((sum, v, i) => sum + v * weights.coef[i], 0) + weights.intercept;
    return { ...d, score: 1 / (1 + Math.exp(-Math.min(Math.max(z, -50), 50))) };
  });
  return stableSortByScore(out);
}

/**
 * The fitted box calibration (model.json box_calibration), applied to merged boxes:
 * BoxCalibration.from_dict(cal).apply(dets, tile, width, height).
 */
export function applyBoxCalibration(cal, dets, tile, width, height) {
  const corr = cal.correction || null;
  let scorer = null;
  if (cal.scorer) {
    const same = JSON.stringify(cal.scorer.features || []) === JSON.stringify(SCORER_FEATURES);
    scorer = same ? cal.scorer.labels : {}; // a scorer fitted on other features keeps the window scores
  }
  return rescoreBoxes(correctBoxes(dets, corr, tile, width, height), scorer, tile);
}
