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
    if (wireType === 0) varint();
    else if (wireType === 1) pos += 8;
    else if (wireType === 5) pos += 4;
    else if (wireType === 2) {
      const length = varint();
      const from = pos;
      pos += length;
      if (pos > end) throw broken();
      yield [Math.floor(tag / 8), from, pos];
    } else throw broken(); // 3 and 4 (groups) are not used by ONNX; 6 and 7 do not exist
    if (pos > end) throw broken();
  }
}
