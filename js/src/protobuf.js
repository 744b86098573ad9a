/**
 * Reads the `metadata_props` of an ONNX model straight from its bytes.
 *
 * ONNX Runtime's JavaScript API does not expose a model's custom metadata (the Python API's
 * `get_modelmeta().custom_metadata_map`), so the few bytes that matter are read here: the top-level fields
 * of the `ModelProto` message are walked, skipping everything (the graph is one length-delimited field,
 * skipped in one step) except field 14, `metadata_props`, each a `StringStringEntryProto` with `key` = 1 and
 * `value` = 2. See https://protobuf.dev/programming-guides/encoding/ for the wire format. The files a graph
 * keeps as ONNX external data (format 3's item tables) are found the same way, in its initializers.
 */

import { ArtifactError } from "./errors.js";
import { utf8Decode } from "./text.js";

const METADATA_PROPS = 14; // ModelProto.metadata_props
const ENTRY_KEY = 1; // StringStringEntryProto.key
const ENTRY_VALUE = 2; // StringStringEntryProto.value
const GRAPH = 7; // ModelProto.graph
const INITIALIZER = 5; // GraphProto.initializer (TensorProto)
const EXTERNAL_DATA = 13; // TensorProto.external_data (StringStringEntryProto: location, offset, length)
// TensorProto's scalar fields read by readInitializer
const TENSOR_DIMS = 1;
const TENSOR_TYPE = 2;
const TENSOR_NAME = 8;
const TENSOR_RAW = 9;
const TENSOR_LOCATION = 14; // data_location
const EXTERNAL = 1; // TensorProto.EXTERNAL
const MAX_DIMS = 8; // a tensor with more dims than this is not one the SDK reads

/**
 * The `metadata_props` of a serialized ONNX `ModelProto`, as a plain object (a repeated key keeps its last
 * value, as protobuf's own map semantics do).
 *
 * @param {Uint8Array} bytes the model file
 * @param {string} name the file's name or URL, for messages
 * @returns {Record<string, string>}
 */
export function readMetadataProps(bytes, name) {
  /** @type {Record<string, string>} */
  const props = {};
  for (const [field, start, end] of fields(bytes, 0, bytes.length, name)) {
    if (field !== METADATA_PROPS) continue;
    const [key, value] = entry(bytes, start, end, name);
    props[key] = value;
  }
  return props;
}

/**
 * The files the graph's initializers keep their data in (the `location` of their `external_data`), each
 * once, in the order of the initializers: what ONNX Runtime must be given when it loads the model's bytes.
 *
 * @param {Uint8Array} bytes the model file
 * @param {string} name the file's name or URL, for messages
 * @returns {string[]}
 */
export function readExternalDataLocations(bytes, name) {
  const locations = new Set();
  for (const [field, start, end] of fields(bytes, 0, bytes.length, name)) {
    if (field !== GRAPH) continue;
    for (const [graphField, from, to] of fields(bytes, start, end, name)) {
      if (graphField !== INITIALIZER) continue;
      for (const [tensorField, a, b] of fields(bytes, from, to, name)) {
        if (tensorField !== EXTERNAL_DATA) continue;
        const [key, value] = entry(bytes, a, b, name);
        if (key === "location") locations.add(value);
      }
    }
  }
  return [...locations];
}

/**
 * One initializer of a model's graph, as {@link readInitializer} finds it.
 *
 * @typedef {object} Initializer
 * @property {number} dataType TensorProto.DataType (1: float32)
 * @property {number[]} dims
 * @property {Uint8Array | null} raw its `raw_data` bytes (a view into the model's bytes), null when it has none
 * @property {boolean} external `data_location` EXTERNAL: its values are in another file
 */

/**
 * The initializer `wanted` of the model's graph (the first of that name), or null when the graph has none:
 * what the Python SDK's `s4rec.protobuf.initializer` reads (the item table `encoder.item_table` of a format 2
 * model). Two levels deep (model -> graph -> initializer); only the names and a few scalar fields of each
 * tensor are decoded, and its raw bytes are a view, not a copy.
 *
 * @param {Uint8Array} bytes the model file
 * @param {string} name the file's name or URL, for messages
 * @param {string} wanted the initializer's name
 * @returns {Initializer | null}
 */
export function readInitializer(bytes, name, wanted) {
  for (const [field, start, end] of fields(bytes, 0, bytes.length, name)) {
    if (field !== GRAPH) continue;
    for (const [graphField, from, to] of fields(bytes, start, end, name)) {
      if (graphField !== INITIALIZER) continue;
      const found = tensor(bytes, from, to, name, wanted);
      if (found !== null) return found;
    }
  }
  return null;
}

/**
 * The TensorProto in `bytes[start, end)` when its name is `wanted`, else null.
 *
 * @param {Uint8Array} bytes
 * @param {number} start
 * @param {number} end
 * @param {string} name
 * @param {string} wanted
 * @returns {Initializer | null}
 */
function tensor(bytes, start, end, name, wanted) {
  /** @type {number[]} */
  const dims = [];
  let dataType = 0;
  let location = 0;
  /** @type {Uint8Array | null} */
  let raw = null;
  let found = null;
  for (const [field, from, to, value] of allFields(bytes, start, end, name)) {
    if (field === TENSOR_NAME && value === null) {
      found = utf8Decode(bytes.subarray(from, to));
      if (found !== wanted) return null;
    } else if (field === TENSOR_DIMS) {
      if (value !== null) dims.push(value);
      else dims.push(...packedVarints(bytes, from, to, name));
      if (dims.length > MAX_DIMS) throw broken(name, from);
    } else if (field === TENSOR_TYPE && value !== null) dataType = value;
    else if (field === TENSOR_RAW && value === null) raw = bytes.subarray(from, to);
    else if (field === TENSOR_LOCATION && value !== null) location = value;
  }
  if (found !== wanted) return null;
  if (dims.some((d) => d >= 2 ** 40)) throw broken(name, start); // negative dims are 10-byte varints: huge
  return { dataType, dims, raw, external: location === EXTERNAL };
}

/**
 * Packed varints (`dims` written as one length-delimited field), at most {@link MAX_DIMS} + 1 of them.
 *
 * @param {Uint8Array} bytes
 * @param {number} from
 * @param {number} to
 * @param {string} name
 * @returns {number[]}
 */
function packedVarints(bytes, from, to, name) {
  const values = [];
  let pos = from;
  while (pos < to && values.length <= MAX_DIMS) {
    let value = 0;
    let scale = 1;
    for (;;) {
      if (pos >= to || scale > 2 ** 63) throw broken(name, pos);
      const byte = bytes[pos++];
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) break;
      scale *= 128;
    }
    values.push(value);
  }
  return values;
}

/**
 * @param {string} name
 * @param {number} offset
 */
function broken(name, offset) {
  return new ArtifactError(
    `${name}: not an ONNX model (its bytes are not a valid protobuf message at offset ${offset}). ` +
      "Pass the model.onnx written by `s4rec-export`, complete and unchanged.",
  );
}

/**
 * A `StringStringEntryProto` as `[key, value]`.
 *
 * @param {Uint8Array} bytes
 * @param {number} start
 * @param {number} end
 * @param {string} name
 * @returns {[string, string]}
 */
function entry(bytes, start, end, name) {
  let key = "";
  let value = "";
  for (const [entryField, from, to] of fields(bytes, start, end, name)) {
    if (entryField === ENTRY_KEY) key = utf8Decode(bytes.subarray(from, to));
    else if (entryField === ENTRY_VALUE) value = utf8Decode(bytes.subarray(from, to));
  }
  return [key, value];
}

/**
 * The length-delimited fields of one message in `bytes[start, end)` as `[field number, from, to]`;
 * fields of the other wire types are skipped.
 *
 * @param {Uint8Array} bytes
 * @param {number} start
 * @param {number} end
 * @param {string} name
 * @returns {Generator<[number, number, number]>}
 */
function* fields(bytes, start, end, name) {
  for (const [field, from, to, value] of allFields(bytes, start, end, name)) {
    if (value === null) yield [field, from, to];
  }
}

/**
 * The fields of one message in `bytes[start, end)` as `[field number, from, to, value]`: `value` is the
 * number of a varint field, null for a length-delimited one (its bytes are `bytes[from, to)`); fixed-width
 * fields are skipped.
 *
 * @param {Uint8Array} bytes
 * @param {number} start
 * @param {number} end
 * @param {string} name
 * @returns {Generator<[number, number, number, number | null]>}
 */
function* allFields(bytes, start, end, name) {
  let pos = start;
  const broken = () =>
    new ArtifactError(
      `${name}: not an ONNX model (its bytes are not a valid protobuf message at offset ${pos}). ` +
        "Pass the model.onnx written by `s4rec-export`, complete and unchanged.",
    );
  const varint = () => {
    // Numbers, not 32-bit integer operators: a field may be longer than 2^31 bytes in principle.
    let value = 0;
    let scale = 1;
    for (;;) {
      if (pos >= end || scale > 2 ** 63) throw broken();
      const byte = bytes[pos++];
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 128;
    }
  };
  while (pos < end) {
    const tag = varint();
    const wireType = tag % 8;
    if (wireType === 0) {
      const value = varint();
      yield [Math.floor(tag / 8), pos, pos, value];
    } else if (wireType === 1) pos += 8;
    else if (wireType === 5) pos += 4;
    else if (wireType === 2) {
      const length = varint();
      const from = pos;
      pos += length;
      if (pos > end) throw broken();
      yield [Math.floor(tag / 8), from, pos, null];
    } else throw broken(); // 3 and 4 (groups) are not used by ONNX; 6 and 7 do not exist
    if (pos > end) throw broken();
  }
}
