/**
 * The item-vocabulary checksum, byte for byte as the Python exporter computes it.
 *
 * `item_ids_sha256` is the SHA-256 of Python's `json.dumps(item_ids, separators=(",", ":"))`. Python's
 * default `ensure_ascii=True` writes every character outside printable ASCII as `\uXXXX` (lowercase hex;
 * characters beyond U+FFFF as their UTF-16 surrogate pair), so the text differs from `JSON.stringify`'s,
 * which keeps non-ASCII characters as they are and escapes control characters differently.
 */

import { sha256Hex } from "./sha256.js";

// Python's json encoder (c_encode_basestring_ascii): these six have short escapes, every other character
// below U+0020 or from U+007F up is written \uXXXX. "/" is not escaped.
/** @type {Record<string, string>} */
const SHORT_ESCAPES = { '"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t" };
// Without the u flag a regular expression matches UTF-16 code units, so an astral character is matched as its
// two surrogates, each escaped on its own: exactly Python's output (which also escapes lone surrogates).
const ESCAPED = /["\\\u0000-\u001f\u007f-\uffff]/g;

/**
 * A string as Python's `json.dumps` writes it with `ensure_ascii=True`.
 *
 * @param {string} text
 * @returns {string}
 */
export function pythonJsonString(text) {
  const escaped = text.replace(
    ESCAPED,
    (c) => SHORT_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return `"${escaped}"`;
}

/**
 * A list of item ids (integers or strings) as `json.dumps(item_ids, separators=(",", ":"))`.
 *
 * @param {ReadonlyArray<number | string>} itemIds safe integers (their decimal form is Python's) or strings
 * @returns {string}
 */
export function pythonJsonList(itemIds) {
  return `[${itemIds.map((id) => (typeof id === "string" ? pythonJsonString(id) : String(id))).join(",")}]`;
}

/**
 * The `item_ids_sha256` of an item vocabulary.
 *
 * @param {ReadonlyArray<number | string>} itemIds
 * @returns {Promise<string>}
 */
export async function itemIdsChecksum(itemIds) {
  const text = pythonJsonList(itemIds); // ASCII only: one byte per character
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return sha256Hex(bytes);
}
