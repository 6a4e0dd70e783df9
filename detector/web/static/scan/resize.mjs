// OpenCV's cv2.resize, reproduced operation for operation, so that a pyramid level cut here holds the
// same pixels as the Python scanner's (detector/pipeline/tiling.py resize_level: INTER_AREA to shrink,
// INTER_LINEAR to enlarge) and a stitched CAM map the same floats (detector/pipeline/stitch.py).
//
// - uint8 INTER_LINEAR: 11-bit fixed-point coefficients, the horizontal pass in int, the vertical pass
//   as OpenCV's `VResizeLinear<uchar>` does it ((b0*(S0>>4))>>16 + (b1*(S1>>4))>>16 + 2) >> 2;
// - uint8 INTER_AREA (shrinking): `resizeArea_` with float weights and float sums, or `resizeAreaFast`
//   when both ratios are whole numbers;
// - float32 INTER_LINEAR: float coefficients, every product and sum rounded to float32.
// Coordinates follow OpenCV: scale = 1 / (dst / src) in double, x = float((d + 0.5) * scale - 0.5).

import { roundHalfEven } from './numbers.mjs';

const f32 = Math.fround;
const COEF_BITS = 11;
const COEF_SCALE = 1 << COEF_BITS;

function saturateU8(v) {
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

// Per destination index: the source index and the float fraction, clamped at the borders (x axis).
function linearAxis(srcLen, dstLen, clampEnds) {
  const scale = 1 / (dstLen / srcLen);
  const index = new Int32Array(dstLen);
  const frac = new Float32Array(dstLen);
  for (let d = 0; d < dstLen; d++) {
    let f = f32((d + 0.5) * scale - 0.5);
    let s = Math.floor(f);
    f = f32(f - s);
    if (clampEnds) {
      if (s < 0) (f = 0), (s = 0);
      if (s >= srcLen - 1) (f = 0), (s = srcLen - 1);
    }
    index[d] = s;
    frac[d] = f;
  }
  return { index, frac };
}

function clipRow(y, height) {
  return y >= 0 ? (y < height ? y : height - 1) : 0;
}

/**
 * cv2.resize(src, (dw, dh), interpolation=cv2.INTER_LINEAR) of an interleaved uint8 image.
 * @param {{width:number,height:number,channels:number,data:Uint8Array}} img
 * @returns {{width:number,height:number,channels:number,data:Uint8Array}}
 */
export function resizeLinearU8(img, dw, dh) {
  const { width: sw, height: sh, channels: cn, data } = img;
  const xs = linearAxis(sw, dw, true);
  const ys = linearAxis(sh, dh, false);
  const a0 = new Int32Array(dw);
  const a1 = new Int32Array(dw);
  for (let x = 0; x < dw; x++) {
    a0[x] = roundHalfEven(f32(1 - xs.frac[x]) * COEF_SCALE);
    a1[x] = roundHalfEven(xs.frac[x] * COEF_SCALE);
  }
  const rowCache = new Map();
  const hrow = (sy) => {
    let row = rowCache.get(sy);
    if (row) return row;
    row = new Int32Array(dw * cn);
    const base = sy * sw * cn;
    for (let x = 0; x < dw; x++) {
      const s = base + xs.index[x] * cn;
      const s1 = xs.index[x] + 1 < sw ? s + cn : s;
      for (let c = 0; c < cn; c++) row[x * cn + c] = data[s + c] * a0[x] + data[s1 + c] * a1[x];
    }
    if (rowCache.size > 4) rowCache.delete(rowCache.keys().next().value);
    rowCache.set(sy, row);
    return row;
  };
  const out = new Uint8Array(dw * dh * cn);
  for (let y = 0; y < dh; y++) {
    const b0 = roundHalfEven(f32(1 - ys.frac[y]) * COEF_SCALE);
    const b1 = roundHalfEven(ys.frac[y] * COEF_SCALE);
    const r0 = hrow(clipRow(ys.index[y], sh));
    const r1 = hrow(clipRow(ys.index[y] + 1, sh));
    const o = y * dw * cn;
    for (let i = 0; i < dw * cn; i++) {
      out[o + i] = saturateU8((((b0 * (r0[i] >> 4)) >> 16) + ((b1 * (r1[i] >> 4)) >> 16) + 2) >> 2);
    }
  }
  return { width: dw, height: dh, channels: cn, data: out };
}

// OpenCV's generic float path: float coefficients, every product and sum rounded to float32.
function linearF32Generic(src, sw, sh, dw, dh) {
  const xs = linearAxis(sw, dw, true);
  const ys = linearAxis(sh, dh, false);
  const rows = [];
  for (let sy = 0; sy < sh; sy++) {
    const row = new Float32Array(dw);
    for (let x = 0; x < dw; x++) {
      const s = sy * sw + xs.index[x];
      const right = xs.index[x] + 1 < sw ? src[s + 1] : src[s];
      row[x] = f32(f32(src[s] * f32(1 - xs.frac[x])) + f32(right * xs.frac[x]));
    }
    rows.push(row);
  }
  const out = new Float32Array(dw * dh);
  for (let y = 0; y < dh; y++) {
    const b0 = f32(1 - ys.frac[y]);
    const b1 = ys.frac[y];
    const r0 = rows[clipRow(ys.index[y], sh)];
    const r1 = rows[clipRow(ys.index[y] + 1, sh)];
    for (let x = 0; x < dw; x++) out[y * dw + x] = f32(f32(r0[x] * b0) + f32(r1[x] * b1));
  }
  return out;
}

// Intel IPP's linear resize, which OpenCV's x86-64 wheels call for float maps of 2x2 pixels or more:
// x = (d + 0.5) * (src / dst) - 0.5 in double, the fraction rounded to float32, and each value
// s0 + float32(s1 - s0) * w rounded once (measured against cv2 5.0 on random maps: identical).
function ippAxis(srcLen, dstLen) {
  const scale = srcLen / dstLen;
  const index = new Int32Array(dstLen);
  const frac = new Float32Array(dstLen);
  for (let d = 0; d < dstLen; d++) {
    const x = (d + 0.5) * scale - 0.5;
    let s = Math.floor(x);
    let w = f32(x - s);
    if (s < 0) (s = 0), (w = 0);
    if (s >= srcLen - 1) (s = srcLen - 1), (w = 0);
    index[d] = s;
    frac[d] = w;
  }
  return { index, frac };
}

function lerp32(a, b, w) {
  return f32(a + f32(b - a) * w);
}

function linearF32Ipp(src, sw, sh, dw, dh) {
  const xs = ippAxis(sw, dw);
  const ys = ippAxis(sh, dh);
  const rows = [];
  for (let sy = 0; sy < sh; sy++) {
    const row = new Float32Array(dw);
    for (let x = 0; x < dw; x++) {
      const s = sy * sw + xs.index[x];
      row[x] = lerp32(src[s], xs.index[x] + 1 < sw ? src[s + 1] : src[s], xs.frac[x]);
    }
    rows.push(row);
  }
  const out = new Float32Array(dw * dh);
  for (let y = 0; y < dh; y++) {
    const r0 = rows[ys.index[y]];
    const r1 = rows[Math.min(ys.index[y] + 1, sh - 1)];
    for (let x = 0; x < dw; x++) out[y * dw + x] = lerp32(r0[x], r1[x], ys.frac[y]);
  }
  return out;
}

/**
 * cv2.resize(src, (dw, dh), interpolation=cv2.INTER_LINEAR) of a one-channel float32 map, as the
 * opencv-python wheels compute it: through IPP when the map is at least 2x2, else OpenCV's own code.
 * @param {Float32Array} src row-major, sh x sw
 * @returns {Float32Array} dh x dw
 */
export function resizeLinearF32(src, sw, sh, dw, dh) {
  if (sw === dw && sh === dh) return Float32Array.from(src);
  return sw >= 2 && sh >= 2 ? linearF32Ipp(src, sw, sh, dw, dh) : linearF32Generic(src, sw, sh, dw, dh);
}

// OpenCV's computeResizeAreaTab: (destination index, source index, float weight) triples, in order.
function areaTable(srcLen, dstLen, scale) {
  const tab = [];
  for (let d = 0; d < dstLen; d++) {
    const fs1 = d * scale;
    const fs2 = fs1 + scale;
    const cell = Math.min(scale, srcLen - fs1);
    let s1 = Math.ceil(fs1);
    let s2 = Math.floor(fs2);
    s2 = Math.min(s2, srcLen - 1);
    s1 = Math.min(s1, s2);
    if (s1 - fs1 > 1e-3) tab.push([d, s1 - 1, f32((s1 - fs1) / cell)]);
    for (let s = s1; s < s2; s++) tab.push([d, s, f32(1.0 / cell)]);
    if (fs2 - s2 > 1e-3) tab.push([d, s2, f32(Math.min(Math.min(fs2 - s2, 1), cell) / cell)]);
  }
  return tab;
}

function resizeAreaGeneric(img, dw, dh, scaleX, scaleY) {
  const { width: sw, height: sh, channels: cn, data } = img;
  const xtab = areaTable(sw, dw, scaleX);
  const ytab = areaTable(sh, dh, scaleY);
  const out = new Uint8Array(dw * dh * cn);
  const buf = new Float32Array(dw * cn);
  const sum = new Float32Array(dw * cn);
  const flush = (dy) => {
    for (let i = 0; i < dw * cn; i++) out[dy * dw * cn + i] = saturateU8(roundHalfEven(sum[i]));
  };
  let prev = ytab[0][0];
  for (const [dy, sy, beta] of ytab) {
    buf.fill(0);
    const row = sy * sw * cn;
    for (const [dx, sx, alpha] of xtab) {
      for (let c = 0; c < cn; c++) buf[dx * cn + c] = f32(buf[dx * cn + c] + f32(data[row + sx * cn + c] * alpha));
    }
    if (dy !== prev) {
      flush(prev);
      for (let i = 0; i < dw * cn; i++) sum[i] = f32(beta * buf[i]);
      prev = dy;
    } else {
      for (let i = 0; i < dw * cn; i++) sum[i] = f32(sum[i] + f32(beta * buf[i]));
    }
  }
  flush(prev);
  return { width: dw, height: dh, channels: cn, data: out };
}

// OpenCV's resizeAreaFast (both ratios whole numbers): integer sums, times float(1/area), rounded;
// the 2x2 case is (a + b + c + d + 2) >> 2 as OpenCV's vector code computes it.
function resizeAreaFast(img, dw, dh, kx, ky) {
  const { width: sw, height: sh, channels: cn, data } = img;
  const out = new Uint8Array(dw * dh * cn);
  const inv = f32(1 / (kx * ky));
  const whole = Math.floor(sw / kx);
  for (let dy = 0; dy < dh; dy++) {
    for (let dx = 0; dx < dw; dx++) {
      for (let c = 0; c < cn; c++) {
        let total = 0;
        let count = 0;
        for (let j = 0; j < ky && dy * ky + j < sh; j++) {
          for (let i = 0; i < kx && dx * kx + i < sw; i++) {
            total += data[((dy * ky + j) * sw + dx * kx + i) * cn + c];
            count++;
          }
        }
        let v;
        const inside = dx < whole && dy * ky + ky <= sh;
        if (!inside) v = roundHalfEven(f32(f32(total) / count));
        else v = kx === 2 && ky === 2 ? (total + 2) >> 2 : roundHalfEven(f32(total * inv));
        out[(dy * dw + dx) * cn + c] = saturateU8(v);
      }
    }
  }
  return { width: dw, height: dh, channels: cn, data: out };
}

/**
 * cv2.resize(src, (dw, dh), interpolation=cv2.INTER_AREA) of an interleaved uint8 image, shrinking.
 * @param {{width:number,height:number,channels:number,data:Uint8Array}} img
 */
export function resizeAreaU8(img, dw, dh) {
  const scaleX = 1 / (dw / img.width);
  const scaleY = 1 / (dh / img.height);
  if (scaleX < 1 || scaleY < 1) throw new Error('resizeAreaU8 only shrinks (OpenCV emulates INTER_AREA otherwise)');
  const kx = roundHalfEven(scaleX);
  const ky = roundHalfEven(scaleY);
  if (Math.abs(scaleX - kx) < Number.EPSILON && Math.abs(scaleY - ky) < Number.EPSILON) {
    return resizeAreaFast(img, dw, dh, kx, ky);
  }
  return resizeAreaGeneric(img, dw, dh, scaleX, scaleY);
}
