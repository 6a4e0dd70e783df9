// The model's own description, read from the ONNX file: `metadata_props` (the contract is
// detector/backends/onnx_meta.py). onnxruntime (web and node) does not expose custom metadata, so
// the ModelProto's field 14 (repeated StringStringEntryProto {key = 1, value = 2}) is read here from
// the file's bytes, skipping the graph without parsing it.

export const FORMAT = 'logo-detector/onnx@1';

function readVarint(buf, pos) {
  // Numbers, not 32-bit shifts: field lengths in a large model can pass 2^31.
  let value = 0;
  let scale = 1;
  for (;;) {
    if (pos >= buf.length) throw new Error('truncated protobuf varint (not an ONNX file?)');
    const byte = buf[pos++];
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return [value, pos];
    scale *= 128;
    if (scale > 2 ** 63) throw new Error('protobuf varint too long (not an ONNX file?)');
  }
}

// Calls onField(fieldNumber, wireType, start, end) for each field of one message in buf[start, end).
function forEachField(buf, start, end, onField) {
  let pos = start;
  while (pos < end) {
    let tag;
    [tag, pos] = readVarint(buf, pos);
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    let next;
    if (wire === 0) next = readVarint(buf, pos)[1];
    else if (wire === 1) next = pos + 8;
    else if (wire === 5) next = pos + 4;
    else if (wire === 2) {
      let len;
      [len, pos] = readVarint(buf, pos);
      next = pos + len;
    } else throw new Error(`unsupported protobuf wire type ${wire} (not an ONNX file?)`);
    if (next > end) throw new Error('truncated protobuf message (not an ONNX file?)');
    onField(field, wire, pos, next);
    pos = next;
  }
}

/**
 * The key -> value strings of an ONNX file's metadata_props.
 * @param {Uint8Array} bytes the whole .onnx file
 * @returns {Record<string, string>}
 */
export function readMetadataProps(bytes) {
  const text = new TextDecoder();
  const props = {};
  forEachField(bytes, 0, bytes.length, (field, wire, start, end) => {
    if (field !== 14 || wire !== 2) return;
    let key = '';
    let value = '';
    forEachField(bytes, start, end, (f, w, s, e) => {
      if (w !== 2) return;
      if (f === 1) key = text.decode(bytes.subarray(s, e));
      else if (f === 2) value = text.decode(bytes.subarray(s, e));
    });
    props[key] = value;
  });
  return props;
}

function json(props, key, fallback) {
  const raw = props[key];
  if (raw === undefined || raw === '') return fallback;
  try {
    return JSON.parse(raw);
  } catch {
    throw new Error(`metadata '${key}' is not JSON`);
  }
}

function positiveInt(value, key) {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`metadata '${key}' must be a positive integer, got ${value}`);
  return n;
}

/**
 * The model description the scan needs, from metadata_props: model_json (what Python's OnnxBackend
 * reads) first, the flat keys where it lacks one. Bad or foreign files raise one-line errors.
 * @param {Record<string, string>} props
 */
export function parseModelMeta(props) {
  if (props.format !== FORMAT) {
    throw new Error(`not a logo-detector ONNX file (format ${JSON.stringify(props.format ?? null)})`);
  }
  const model = json(props, 'model_json', {});
  const pick = (key, fallback) => (model[key] !== undefined ? model[key] : json(props, key, fallback));
  const classes = model.classes ?? json(props, 'classes', null);
  const negative = model.negative_class ?? props.negative_class;
  if (!Array.isArray(classes) || classes.length < 2 || !classes.includes(negative)) {
    throw new Error('metadata: classes must list two or more names, the negative class among them');
  }
  const bias = json(props, 'head_bias', null);
  if (!Array.isArray(bias) || bias.length !== classes.length) {
    throw new Error(`metadata 'head_bias' must hold one number per class (${classes.length})`);
  }
  return {
    classes,
    negative_class: negative,
    input_size: positiveInt(model.input_size ?? props.input_size, 'input_size'),
    cam_layer: model.cam_layer ?? props.cam_layer,
    cam_stride: positiveInt(props.cam_stride, 'cam_stride'),
    cam_offset: Number(props.cam_offset),
    thresholds: pick('thresholds', {}) ?? {},
    image_thresholds: pick('image_thresholds', {}) ?? {},
    cam_threshold: pick('cam_threshold', null),
    join_cells: model.join_cells ?? null,
    box_calibration: pick('box_calibration', null),
    head_bias: Float32Array.from(bias),
    precision: props.precision || 'fp32',
    version: model.version ?? props.version,
    source_model_sha256: props.source_model_sha256 ?? '',
  };
}

/** A class's tile threshold (0.5 when the model has none): ModelMeta.threshold. */
export function tileThreshold(meta, label) {
  const t = meta.thresholds[label];
  return t === undefined ? 0.5 : Number(t);
}
