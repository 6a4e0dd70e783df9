#!/usr/bin/env node
// Scan one tile with a logo-detector ONNX export, in Node.js, with no Python anywhere.
//
//   node scan_tile.js MODEL.onnx IMAGE.png|jpg [--json]
//
// Everything besides the weights comes from the file's metadata_props (the contract is
// detector/backends/onnx_meta.py): classes, the negative class, the input size, the per-class
// thresholds and where CAM cells sit in the tile. onnxruntime-node (1.30) exposes input/output
// shapes but not the model's custom metadata, so readModelMeta() reads that one field of the
// ONNX protobuf itself (with the in-browser scan library's reader).
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const ort = require('onnxruntime-node');
const { PNG } = require('pngjs');
const jpeg = require('jpeg-js');

// The file's metadata is read by the scan library's own reader (the page and scan_image.js use it too):
// detector/web/static/scan/meta.mjs, an ES module, loaded with import() from this CommonJS script.
const META = path.join(__dirname, '..', '..', 'detector', 'web', 'static', 'scan', 'meta.mjs');

async function readModelMeta(modelBytes) {
  const { readMetadataProps, parseModelMeta } = await import(META);
  const meta = parseModelMeta(readMetadataProps(modelBytes));
  return { ...meta, head_bias: Array.from(meta.head_bias) }; // plain numbers, for --json
}

// ---- image -> float32 [1, size, size, 3] RGB 0..255 (the graph does the rest of the preprocessing) ----

function decodeImage(buf) {
  // By content, not by file name. Both decoders give RGBA; alpha is dropped (not composited),
  // as OpenCV's imread and PIL's convert('RGB') do.
  if (buf.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) {
    const png = PNG.sync.read(buf); // 8-bit RGBA for every PNG colour type and depth
    return { width: png.width, height: png.height, rgba: png.data };
  }
  if (buf[0] === 0xff && buf[1] === 0xd8) {
    const img = jpeg.decode(buf, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 1024 });
    return { width: img.width, height: img.height, rgba: img.data };
  }
  throw new Error('not a PNG or JPEG file');
}

// Bilinear resize with pixel centres aligned (as OpenCV's INTER_LINEAR), no antialiasing: fine for a
// tile that is near the input size; cut tiles of exactly input_size for results identical to Python.
function toInputTensor(img, size) {
  const out = new Float32Array(size * size * 3);
  const sx = img.width / size;
  const sy = img.height / size;
  for (let y = 0; y < size; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), img.height - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, img.height - 1);
    const wy = fy - y0;
    for (let x = 0; x < size; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), img.width - 1);
      const x0 = Math.floor(fx);
      const x1 = Math.min(x0 + 1, img.width - 1);
      const wx = fx - x0;
      for (let c = 0; c < 3; c++) {
        const p = (yy, xx) => img.rgba[(yy * img.width + xx) * 4 + c];
        const top = p(y0, x0) * (1 - wx) + p(y0, x1) * wx;
        const bottom = p(y1, x0) * (1 - wx) + p(y1, x1) * wx;
        out[(y * size + x) * 3 + c] = top * (1 - wy) + bottom * wy;
      }
    }
  }
  return new ort.Tensor('float32', out, [1, size, size, 3]);
}

// ---- the decision: detector/evaluation/metrics.py decide() for one tile ----

function decide(probs, meta) {
  const neg = meta.classes.indexOf(meta.negative_class);
  let best = -1;
  meta.classes.forEach((_, i) => {
    if (i !== neg && (best < 0 || probs[i] > probs[best])) best = i;
  });
  const threshold = meta.thresholds[meta.classes[best]] ?? 0.5;
  return { best, threshold, verdict: probs[best] >= threshold ? best : neg };
}

// Where the best positive class's CAM logit peaks, as a tile pixel: cell i is centred on offset + stride * i.
function camPeak(cam, classIndex, meta) {
  const [, h, w, k] = cam.dims;
  let bestCell = 0;
  for (let cell = 1; cell < h * w; cell++) {
    if (cam.data[cell * k + classIndex] > cam.data[bestCell * k + classIndex]) bestCell = cell;
  }
  const row = Math.floor(bestCell / w);
  const col = bestCell % w;
  return {
    x: meta.cam_offset + meta.cam_stride * col,
    y: meta.cam_offset + meta.cam_stride * row,
    cell: [row, col],
    logit: cam.data[bestCell * k + classIndex],
  };
}

async function main(argv) {
  const args = argv.filter((a) => a !== '--json');
  const asJson = argv.includes('--json');
  if (args.length !== 2) {
    console.error('usage: node scan_tile.js MODEL.onnx IMAGE.png|jpg [--json]');
    return 2;
  }
  const [modelPath, imagePath] = args;
  const modelBytes = fs.readFileSync(modelPath);
  const meta = await readModelMeta(modelBytes);
  const img = decodeImage(fs.readFileSync(imagePath));
  const resized = img.width !== meta.input_size || img.height !== meta.input_size;
  if (resized) {
    console.error(`note: ${img.width}x${img.height} image resized (bilinear) to the model's ${meta.input_size} px`);
  }

  const session = await ort.InferenceSession.create(modelBytes); // the bytes already read: one read
  const out = await session.run({ pixels: toInputTensor(img, meta.input_size) }, ['probs', 'cam']);
  const probs = Array.from(out.probs.data);
  const { best, threshold, verdict } = decide(probs, meta);
  const peak = camPeak(out.cam, best, meta);

  if (asJson) {
    const result = {
      classes: meta.classes,
      probs,
      verdict: meta.classes[verdict],
      best_positive: meta.classes[best],
      threshold,
      image_size: [img.width, img.height],
      resized,
      cam_shape: out.cam.dims,
      cam_peak: { x: peak.x, y: peak.y, cell: peak.cell, logit: peak.logit, class: meta.classes[best] },
      metadata: meta,
    };
    console.log(JSON.stringify(result));
    return 0;
  }
  console.log(`model   ${modelPath} (${meta.precision}, ${meta.input_size} px, cam ${meta.cam_layer})`);
  console.log(`image   ${imagePath} (${img.width}x${img.height}${resized ? ', resized' : ''})`);
  for (const [i, name] of meta.classes.entries()) {
    const isNegative = name === meta.negative_class;
    const t = isNegative ? '' : `  (threshold ${(meta.thresholds[name] ?? 0.5).toFixed(3)})`;
    console.log(`  ${name.padEnd(16)} ${probs[i].toFixed(4)}${t}`);
  }
  console.log(`verdict ${meta.classes[verdict]}`);
  const [row, col] = peak.cell;
  console.log(`cam     ${out.cam.dims.join('x')}; ${meta.classes[best]} peaks at cell (row ${row}, col ${col})`);
  console.log(`        = tile pixel x=${peak.x}, y=${peak.y} (cam_offset + cam_stride * cell)`);
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      console.error(`scan_tile: ${err.message}`);
      process.exit(1);
    },
  );
}

module.exports = { readModelMeta, decodeImage, decide, camPeak };
