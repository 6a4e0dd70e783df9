#!/usr/bin/env node
// Scan a whole image with a logo-detector ONNX export, in Node.js, with no Python anywhere: the
// pyramid, the windows, the model, Grad-CAM boxes, the merge and the box calibration, as
// `detect scan --model MODEL.onnx --format json` does them.
//
//   node scan_image.js MODEL.onnx IMAGE.png|jpg [--json] [--heatmap]
//
// The scan itself is detector/web/static/logo-scan.mjs, the module the in-browser page
// (`detect export-web`) runs; here it gets onnxruntime-node instead of onnxruntime-web.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const ort = require('onnxruntime-node');
const { decodeImage } = require('./scan_tile.js');

const LIBRARY = path.join(__dirname, '..', '..', 'detector', 'web', 'static', 'logo-scan.mjs');

const sha256 = (bytes) => crypto.createHash('sha256').update(bytes).digest('hex');

function describe(record) {
  const verdict = record.has_logo ? record.labels.join(', ') : 'no logo';
  const lines = [`${record.path}: ${record.width}x${record.height}, ${verdict}`];
  for (const [label, score] of Object.entries(record.scores)) {
    lines.push(`  ${label.padEnd(16)} ${score.toFixed(4)}  (image threshold ${record.thresholds[label].toFixed(3)})`);
  }
  for (const b of record.boxes) {
    lines.push(`  box ${b.label} ${b.score.toFixed(3)}  x ${b.x1}..${b.x2}, y ${b.y1}..${b.y2}  (level ${b.scale})`);
  }
  const t = record.timings_ms;
  lines.push(`  ${t.tiles} windows; tiling ${t.tiling} ms, model ${t.model} ms, boxes ${t.boxes} ms`);
  return lines.join('\n');
}

async function main(argv) {
  const flags = new Set(argv.filter((a) => a.startsWith('--')));
  const args = argv.filter((a) => !a.startsWith('--'));
  const unknown = [...flags].filter((f) => f !== '--json' && f !== '--heatmap');
  if (args.length !== 2 || unknown.length) {
    console.error('usage: node scan_image.js MODEL.onnx IMAGE.png|jpg [--json] [--heatmap]');
    return 2;
  }
  const [modelPath, imagePath] = args;
  const { openModel, ortRuntime, scanImage, toRecord } = await import(LIBRARY);
  const modelBytes = fs.readFileSync(modelPath);
  const runtime = ortRuntime(ort, { executionProviders: ['cpu'] });
  runtime.name = 'onnxruntime-node (cpu)';
  const info = { name: path.basename(modelPath, '.onnx'), sha256: sha256(modelBytes) };
  const model = await openModel(new Uint8Array(modelBytes), runtime, info);
  const fileBytes = fs.readFileSync(imagePath);
  const img = decodeImage(fileBytes);
  const image = { width: img.width, height: img.height, channels: 4, data: img.rgba };
  const result = await scanImage(model, image, { heatmap: flags.has('--heatmap') });
  const record = toRecord(result, model, { path: imagePath, sha256: sha256(fileBytes) });
  if (flags.has('--json')) {
    // Full-precision boxes beside the record's rounded ones: what a cross-language test compares.
    record.raw_boxes = result.boxes;
    console.log(JSON.stringify(record));
  } else {
    console.log(describe(record));
  }
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      console.error(`scan_image: ${err.message}`);
      process.exit(1);
    },
  );
}
