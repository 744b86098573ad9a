/**
 * Shared by the tests: the committed known-value fixture (format 2 and format 3 exports of one model), float
 * comparisons, a protobuf writer that changes a model's metadata by appending entries (protobuf merges a
 * repeated field: the last entry wins), and a `.npy` writer for format 3's sidecar files.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const KNOWN = fileURLToPath(new URL("../../tests/fixtures/known/", import.meta.url));
export const KNOWN_ARTIFACT = `${KNOWN}artifact`;
export const KNOWN_MODEL = `${KNOWN_ARTIFACT}/model.onnx`;
/** The same checkpoint exported as format 3 (sidecar files, the item table as external data), fp32 and int8. */
export const KNOWN_LARGE = `${KNOWN}artifact-large`;
/** @type {{ histories: number[][], recommend: [number, number][][], embed: number[][], intents: [number, number][][], popular: number[], version: string, item_intents: number[], candidates: [number, number | null][][], score: number[][], similar: [number, number][][], per_intent: [number, number | null][][] }} */
export const KNOWN_VALUES = JSON.parse(readFileSync(`${KNOWN}values.json`, "utf8"));

/**
 * @param {ArrayLike<number>} actual
 * @param {ArrayLike<number>} expected
 * @param {number} atol
 * @param {string} [what]
 */
export function assertClose(actual, expected, atol, what = "") {
  assert.equal(actual.length, expected.length, `${what}: lengths ${actual.length} != ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    const same = (Number.isNaN(a) && Number.isNaN(e)) || Math.abs(a - e) <= atol;
    assert.ok(same, `${what}: [${i}] ${a} != ${e} (atol ${atol})`);
  }
}

/** @param {number} value */
function varint(value) {
  const out = [];
  for (; value >= 0x80; value = Math.floor(value / 128)) out.push((value % 128) | 0x80);
  out.push(value);
  return out;
}

/**
 * A length-delimited protobuf field (a string, bytes or a nested message).
 *
 * @param {number} field
 * @param {Uint8Array | string} payload
 */
export function pbBytes(field, payload) {
  const bytes = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
  return Uint8Array.from([...varint(field * 8 + 2), ...varint(bytes.length), ...bytes]);
}

/**
 * A varint protobuf field.
 *
 * @param {number} field
 * @param {number} value
 */
export function pbVarint(field, value) {
  return Uint8Array.from([...varint(field * 8), ...varint(value)]);
}

/** @param {Uint8Array[]} parts */
export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * A minimal ONNX model that is not an s4rec graph: `top_items = Identity(history)` (int64 [b, l]), with
 * the given metadata_props.
 *
 * @param {Record<string, string>} props
 * @param {number} [irVersion]
 */
export function identityModel(props, irVersion = 9) {
  const dim = (/** @type {string} */ name) => pbBytes(1, pbBytes(2, name)); // TensorShapeProto.dim, dim_param
  const int64Matrix = pbBytes(1, concat(pbVarint(1, 7), pbBytes(2, concat(dim("b"), dim("l"))))); // elem_type 7
  const valueInfo = (/** @type {string} */ name) => concat(pbBytes(1, name), pbBytes(2, int64Matrix));
  const node = concat(pbBytes(1, "history"), pbBytes(2, "top_items"), pbBytes(4, "Identity"));
  const graph = concat(pbBytes(1, node), pbBytes(2, "g"), pbBytes(11, valueInfo("history")), pbBytes(12, valueInfo("top_items")));
  const opset = concat(pbBytes(1, ""), pbVarint(2, 20));
  const metadata = Object.entries(props).map(([k, v]) => pbBytes(14, concat(pbBytes(1, k), pbBytes(2, v))));
  return concat(pbVarint(1, irVersion), pbBytes(7, graph), pbBytes(8, opset), ...metadata);
}

/**
 * The model bytes with `metadata_props[key] = value` (appended as ModelProto field 14).
 *
 * @param {Uint8Array} model
 * @param {string} key
 * @param {string} value
 */
export function withProp(model, key, value) {
  return concat(model, pbBytes(14, concat(pbBytes(1, key), pbBytes(2, value))));
}

/**
 * The model bytes with its s4rec.metadata object changed by `edit`.
 *
 * @param {Uint8Array} model
 * @param {(values: Record<string, any>) => void} edit
 * @param {Record<string, string>} props the model's metadata_props
 */
export function withMetadata(model, edit, props) {
  const values = JSON.parse(props["s4rec.metadata"]);
  edit(values);
  return withProp(model, "s4rec.metadata", JSON.stringify(values));
}

/**
 * A `.npy` file (format 1.0) as numpy writes one: the magic, the header length, the header dict padded with
 * spaces to a multiple of 64 bytes and ending in a newline, then the data.
 *
 * @param {"<i8" | "<f4" | "|u1"} descr
 * @param {number[]} shape
 * @param {Uint8Array} data C order, little-endian
 */
export function npyBytes(descr, shape, data) {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(", ");
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${dims}), }`;
  header += " ".repeat(63 - ((10 + header.length) % 64)) + "\n";
  const head = Uint8Array.from([0x93, ...new TextEncoder().encode("NUMPY"), 1, 0, header.length % 256, header.length >> 8]);
  return concat(head, new TextEncoder().encode(header), data);
}

/**
 * An int64 `.npy` file of `values`.
 *
 * @param {Array<number | bigint>} values
 * @param {number[]} [shape]
 */
export function int64Npy(values, shape = [values.length]) {
  const data = BigInt64Array.from(values, (v) => BigInt(v));
  return npyBytes("<i8", shape, new Uint8Array(data.buffer));
}
