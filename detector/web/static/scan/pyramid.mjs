// Which windows an image is scanned at, and their pixels: detector/pipeline/plan.py and tiling.py.
// The pyramid levels come from the model's input size and the default logo range (6% to 70% of the
// short side), no level enlarging more than max_upscale, coarsened to fit max_windows; windows overlap
// by half, the last row and column aligned to the border; levels are resized as OpenCV does
// (INTER_AREA to shrink, INTER_LINEAR to enlarge) so a tile here holds Python's pixels.

import { roundHalfEven } from './numbers.mjs';
import { resizeAreaU8, resizeLinearU8 } from './resize.mjs';

const SMALL_LOGO_FILL = 0.35;
const LARGE_LOGO_FILL = 0.85;
const DEFAULT_MIN_LOGO_FRACTION = 0.06;
const DEFAULT_MAX_LOGO_FRACTION = 0.7;
const OCTAVE_STEP = 2.5;

/** An image whose pyramid cannot fit the window budget (the message says why). */
export class BudgetError extends Error {}

function scalesForLogoRange(tile, minLogo, maxLogo) {
  const hi = (SMALL_LOGO_FILL * tile) / minLogo;
  const lo = (LARGE_LOGO_FILL * tile) / maxLogo;
  if (lo >= hi) return [Math.sqrt(hi * lo)];
  const n = Math.ceil(Math.log(hi / lo) / Math.log(OCTAVE_STEP) - 1e-9) + 1;
  return Array.from({ length: n }, (_, i) => hi * (lo / hi) ** (i / (n - 1)));
}

function cappedLogoScales(tile, minLogo, maxLogo, maxUpscale) {
  const lo = Math.max(minLogo, (SMALL_LOGO_FILL * tile) / maxUpscale);
  const hi = Math.max(maxLogo, lo);
  return scalesForLogoRange(tile, lo, hi).map((s) => Math.min(s, maxUpscale));
}

/** A level's size in pixels: Python's max(1, round(side * scale)). */
export function levelSize(width, height, scale) {
  return [Math.max(1, roundHalfEven(width * scale)), Math.max(1, roundHalfEven(height * scale))];
}

function windowStride(tile, overlap) {
  return Math.max(1, roundHalfEven(tile * (1 - overlap)));
}

function windowsAlong(length, tile, stride) {
  return length <= tile ? 1 : Math.ceil((length - tile) / stride) + 1;
}

function starts(length, tile, stride) {
  if (length <= tile) return [0];
  const out = [];
  for (let s = 0; s <= length - tile; s += stride) out.push(s);
  if (out[out.length - 1] !== length - tile) out.push(length - tile);
  return out;
}

function countWindows(width, height, scales, tile, overlap) {
  const stride = windowStride(tile, overlap);
  let total = 0;
  for (const s of scales) {
    const [w, h] = levelSize(width, height, s);
    total += windowsAlong(w, tile, stride) * windowsAlong(h, tile, stride);
  }
  return total;
}

const fmtScales = (scales) => scales.map((s) => Number(s.toPrecision(3))).join(',');

// tiling.fit_budget with exact=False: every level coarsened by the largest common factor that fits.
function fitBudget(width, height, tile, scales, overlap, maxWindows) {
  const levels = [...new Set(scales)];
  const need = countWindows(width, height, levels, tile, overlap);
  if (need <= maxWindows) return { scales: levels, windows: need, note: '' };
  const floor = (SMALL_LOGO_FILL * tile) / Math.min(width, height);
  const shrunk = (f) => levels.map((s) => s * f).filter((s) => s >= floor * (1 - 1e-9));
  let lo = floor / Math.max(...levels);
  const least = lo <= 1 ? countWindows(width, height, shrunk(lo), tile, overlap) : need;
  if (lo > 1 || least > maxWindows) {
    throw new BudgetError(
      `this ${width}x${height} image needs at least ${least.toLocaleString('en-US')} windows (max_windows ` +
        `${maxWindows.toLocaleString('en-US')}) to see a logo as tall as the image: crop or split it, ` +
        'or raise max_windows',
    );
  }
  let hi = 1.0;
  for (let i = 0; i < 50; i++) {
    const mid = (lo + hi) / 2;
    if (countWindows(width, height, shrunk(mid), tile, overlap) <= maxWindows) lo = mid;
    else hi = mid;
  }
  const fitted = shrunk(lo);
  const n = (v) => v.toLocaleString('en-US'); // Python's {:,}
  const note =
    `pyramid coarsened x${Number(lo.toPrecision(3))} to fit max_windows ${n(maxWindows)} (${n(need)} windows ` +
    `needed): scales ${fmtScales(fitted)} instead of ${fmtScales(levels)}`;
  return { scales: fitted, windows: countWindows(width, height, fitted, tile, overlap), note };
}

/**
 * The pyramid levels of one image (plan.plan_pyramid with the default logo range or min/max logo).
 * @param {number} width
 * @param {number} height
 * @param {number} tile the model's input size
 * @param {{overlap:number, maxUpscale:number, maxWindows:number,
 *          scales?:number[], minLogo?:number, maxLogo?:number}} opts
 * @returns {{scales:number[], windows:number, note:string}}
 */
export function planPyramid(width, height, tile, opts) {
  if (opts.scales && opts.scales.length) {
    const levels = [...new Set(opts.scales)];
    const need = countWindows(width, height, levels, tile, opts.overlap);
    if (need > opts.maxWindows) {
      throw new BudgetError(
        `scales ${fmtScales(levels)} need ${need} windows on this ${width}x${height} image, over max_windows ` +
          `${opts.maxWindows}: use smaller scales or raise max_windows`,
      );
    }
    return { scales: levels, windows: need, note: '' };
  }
  const short = Math.min(width, height);
  let lo = DEFAULT_MIN_LOGO_FRACTION * short;
  let hi = DEFAULT_MAX_LOGO_FRACTION * short;
  if (opts.minLogo || opts.maxLogo) {
    hi = opts.maxLogo || Math.max(opts.minLogo || 0, 0.7 * short);
    lo = opts.minLogo || Math.min(0.04 * short, hi);
  }
  const levels = cappedLogoScales(tile, lo, hi, opts.maxUpscale);
  return fitBudget(width, height, tile, levels, opts.overlap, opts.maxWindows);
}

/**
 * Every window of every level, in Python's order: level by level, rows top to bottom.
 * A window is {scale, x, y, size}; its box in image pixels is x / scale ... (x + size) / scale.
 */
export function pyramidTiles(width, height, scales, tile, overlap) {
  const stride = windowStride(tile, overlap);
  const out = [];
  for (const scale of scales) {
    const [w, h] = levelSize(width, height, scale);
    for (const y of starts(h, tile, stride)) {
      for (const x of starts(w, tile, stride)) out.push({ scale, x, y, size: tile });
    }
  }
  return out;
}

/** A window's box (x1, y1, x2, y2) in image pixels: tiling.Tile.box. */
export function tileBox(t) {
  return [t.x / t.scale, t.y / t.scale, (t.x + t.size) / t.scale, (t.y + t.size) / t.scale];
}

/**
 * A pyramid level's pixels: tiling.resize_level (INTER_AREA below scale 1, INTER_LINEAR above).
 * @param {{width:number,height:number,channels:number,data:Uint8Array}} img RGB
 */
export function resizeLevel(img, scale) {
  const [w, h] = levelSize(img.width, img.height, scale);
  if (w === img.width && h === img.height) return img;
  return scale < 1 ? resizeAreaU8(img, w, h) : resizeLinearU8(img, w, h);
}

/**
 * The pixels of some windows as float32 [n, size, size, 3], RGB 0..255; a level smaller than a window
 * is padded with zeros at its right and bottom (tiling.cut_tiles). `levels` caches resized levels.
 * @param {Map<number, object>} levels
 */
export function cutTiles(img, tiles, levels) {
  const size = tiles[0].size;
  const out = new Float32Array(tiles.length * size * size * 3);
  tiles.forEach((t, i) => {
    if (!levels.has(t.scale)) levels.set(t.scale, resizeLevel(img, t.scale));
    const lvl = levels.get(t.scale);
    const rows = Math.min(size, lvl.height - t.y);
    const cols = Math.min(size, lvl.width - t.x);
    for (let r = 0; r < rows; r++) {
      const src = ((t.y + r) * lvl.width + t.x) * 3;
      out.set(lvl.data.subarray(src, src + cols * 3), ((i * size + r) * size) * 3);
    }
  });
  return out;
}
