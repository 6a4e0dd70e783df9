// Tile CAMs -> boxes, one pyramid level at a time: detector/pipeline/stitch.py.
// Each positive tile's map, normalised to its own peak, is painted where its cells really look (cell i
// covers tile pixels offset - stride/2 + stride*i .. + stride), max-stitched per level; then the
// threshold, the closing that joins fragments, and 8-connected components (skimage label,
// connectivity=2) with their boxes taken from the thresholded pixels.

import { resizeLinearF32 } from './resize.mjs';
import { roundHalfEven } from './numbers.mjs';

const f32 = Math.fround;
/** A box is trusted at a level only where the logo spans this share of the tile (stitch.LEVEL_FILL). */
export const LEVEL_FILL = [0.12, 1.15];

/**
 * Grad-CAM of class c against the negative class from one tile's per-location logits (cam.gradcam):
 * max(0, (cam_c - bias_c) - (cam_neg - bias_neg)) / (h*w), in float32 as numpy computes it.
 * @param {Float32Array} cam the tile's [h, w, K] logits
 * @returns {Float32Array} h x w
 */
export function gradcam(cam, h, w, k, bias, c, neg) {
  const out = new Float32Array(h * w);
  const cells = h * w;
  for (let i = 0; i < cells; i++) {
    const v = f32(f32(cam[i * k + c] - bias[c]) - f32(cam[i * k + neg] - bias[neg]));
    out[i] = f32(Math.max(v, 0) / cells);
  }
  return out;
}

/** Stitched maps of one class at one pyramid level, at `k` canvas pixels per image pixel. */
export class LevelCanvas {
  constructor(width, height, k) {
    this.k = k;
    this.height = Math.max(1, roundHalfEven(height * k));
    this.width = Math.max(1, roundHalfEven(width * k));
    this.norm = new Float32Array(this.width * this.height); // max of peak-normalised maps
    this.score = new Float32Array(this.width * this.height); // max of tile probability x normalised map
  }

  /** Paint one tile's map (ny x nx cells) with its probability; stride/offset place its cells. */
  add(tile, cam, ny, nx, prob, stride, offset) {
    let peak = 0;
    for (const v of cam) peak = Math.max(peak, v);
    if (peak <= 0) return;
    const f = this.k / tile.scale;
    const x0 = (tile.x + offset - stride / 2) * f;
    const y0 = (tile.y + offset - stride / 2) * f;
    const cx1 = roundHalfEven(x0);
    const cy1 = roundHalfEven(y0);
    const cx2 = roundHalfEven(x0 + stride * nx * f);
    const cy2 = roundHalfEven(y0 + stride * ny * f);
    if (cx2 - cx1 < 1 || cy2 - cy1 < 1) return;
    const normed = cam.map((v) => f32(v / peak));
    const m = resizeLinearF32(normed, nx, ny, cx2 - cx1, cy2 - cy1);
    const mw = cx2 - cx1;
    const [ox1, oy1] = [Math.max(cx1, 0), Math.max(cy1, 0)];
    const [ox2, oy2] = [Math.min(cx2, this.width), Math.min(cy2, this.height)];
    const p = f32(prob);
    for (let y = oy1; y < oy2; y++) {
      for (let x = ox1; x < ox2; x++) {
        const v = m[(y - cy1) * mw + (x - cx1)];
        const i = y * this.width + x;
        if (v > this.norm[i]) this.norm[i] = v;
        const s = f32(v * p);
        if (s > this.score[i]) this.score[i] = s;
      }
    }
  }

  /**
   * Boxes of the map above `threshold` (a fraction of each tile's peak); fragments closer than
   * `joinPx` canvas pixels are one component. Boxes are in image pixels, scored by the score map.
   */
  boxes(label, scale, threshold, joinPx = 0, minAreaPx = 16) {
    const t = f32(threshold);
    const mask = new Uint8Array(this.norm.length);
    let any = false;
    for (let i = 0; i < mask.length; i++) if (this.norm[i] >= t) (mask[i] = 1), (any = true);
    if (!any) return [];
    const r = roundHalfEven(joinPx / 2);
    const grouping = r >= 1 ? close(mask, this.width, this.height, r) : mask;
    const { labels, count } = label8(grouping, this.width, this.height);
    const out = [];
    for (const region of regionBoxes(labels, count, mask, this.score, this.width)) {
      const { x1, y1, x2, y2, score } = region;
      if (((x2 - x1) * (y2 - y1)) / (this.k * this.k) < minAreaPx) continue;
      const k = this.k;
      out.push({ label, score, x1: x1 / k, y1: y1 / k, x2: x2 / k, y2: y2 / k, scale });
    }
    return out;
  }
}

// Max (dilate) or min (erode) over a 2r+1 window along one axis; pixels outside the image are
// ignored, which is OpenCV's default border for both (min value for dilate, max value for erode).
function slide(src, width, height, r, horizontal, take) {
  const out = new Uint8Array(src.length);
  const [outer, inner] = horizontal ? [height, width] : [width, height];
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let v = take === 'max' ? 0 : 1;
      for (let j = Math.max(0, i - r); j <= Math.min(inner - 1, i + r); j++) {
        const s = horizontal ? src[o * width + j] : src[j * width + o];
        v = take === 'max' ? v | s : v & s;
      }
      out[horizontal ? o * width + i : i * width + o] = v;
    }
  }
  return out;
}

/** cv2.morphologyEx(mask, MORPH_CLOSE, a (2r+1)-square rectangle) of a 0/1 mask. */
export function close(mask, width, height, r) {
  const dilated = slide(slide(mask, width, height, r, true, 'max'), width, height, r, false, 'max');
  return slide(slide(dilated, width, height, r, true, 'min'), width, height, r, false, 'min');
}

/**
 * 8-connected components, labelled 1..count in raster order of their first pixel (skimage's order).
 * @returns {{labels: Int32Array, count: number}}
 */
export function label8(mask, width, height) {
  const labels = new Int32Array(mask.length);
  const stack = [];
  let count = 0;
  for (let start = 0; start < mask.length; start++) {
    if (!mask[start] || labels[start]) continue;
    labels[start] = ++count;
    stack.push(start);
    while (stack.length) {
      const p = stack.pop();
      const py = Math.floor(p / width);
      const px = p - py * width;
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const y = py + dy;
          const x = px + dx;
          if (y < 0 || y >= height || x < 0 || x >= width) continue;
          const q = y * width + x;
          if (mask[q] && !labels[q]) (labels[q] = count), stack.push(q);
        }
      }
    }
  }
  return { labels, count };
}

// Per component: the box of its thresholded pixels (x2, y2 exclusive) and the best score among them.
function regionBoxes(labels, count, mask, score, width) {
  const boxes = Array.from({ length: count }, () => ({ x1: Infinity, y1: Infinity, x2: -1, y2: -1, score: -Infinity }));
  for (let i = 0; i < labels.length; i++) {
    if (!labels[i] || !mask[i]) continue;
    const b = boxes[labels[i] - 1];
    const y = Math.floor(i / width);
    const x = i - y * width;
    b.x1 = Math.min(b.x1, x);
    b.y1 = Math.min(b.y1, y);
    b.x2 = Math.max(b.x2, x + 1);
    b.y2 = Math.max(b.y2, y + 1);
    b.score = Math.max(b.score, score[i]);
  }
  return boxes.filter((b) => b.x2 >= 0);
}

/** Whether a box has a size the classifier can judge at its level (stitch.fits_level). */
export function fitsLevel(d, tile) {
  const fill = (Math.max(d.x2 - d.x1, d.y2 - d.y1) * d.scale) / tile;
  return LEVEL_FILL[0] <= fill && fill <= LEVEL_FILL[1];
}
