/**
 * The one JSON reader of artifact files (the manifest, the metadata, its sidecar, `items.json`): bounded in size
 * and nesting depth, as the Python SDK's `s4rec.untrusted`. An artifact may come from a server the app does not
 * fully control; `JSON.parse` itself reads a document nested 10^6 deep, but what walks it afterwards (freezing
 * the metadata, comparing it with its sidecar) would end in a `RangeError` (call stack) instead of an
 * {@link ArtifactError}.
 */

import { ArtifactError } from "./errors.js";

export const MAX_JSON_DEPTH = 32; // nesting of arrays and objects; s4rec's own files nest at most 4 deep
export const MAX_MANIFEST_BYTES = 1 << 20; // s4rec.json: ~0.5-3 KB as s4rec-export writes it
export const MAX_SIDECAR_BYTES = 64 << 20; // <model file>.json: keys of s4rec.metadata (the ids: ~1.5 MB at 10^5)

/**
 * How deep the arrays and objects of the JSON `text` nest (0: a scalar), brackets inside strings left out; for
 * malformed JSON a number that `JSON.parse` then refuses anyway. One pass over the text's UTF-16 code units.
 *
 * @param {string} text
 * @returns {number}
 */
export function jsonDepth(text) {
  let depth = 0;
  let deepest = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // a string: to its closing quote, over escaped characters
      for (i++; i < text.length; i++) {
        const s = text.charCodeAt(i);
        if (s === 0x5c) i++;
        else if (s === 0x22) break;
      }
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > deepest) deepest = depth;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return deepest;
}

/**
 * `JSON.parse(text)`, with an {@link ArtifactError} naming `where` (and `what` it is: "manifest", ...) for
 * invalid JSON and for arrays or objects nested deeper than `maxDepth`.
 *
 * @param {string} text
 * @param {string} where the file or URL, for messages
 * @param {string} what
 * @param {number} [maxDepth]
 * @returns {unknown}
 */
export function parseJson(text, where, what, maxDepth = MAX_JSON_DEPTH) {
  const depth = jsonDepth(text);
  if (depth > maxDepth) {
    throw new ArtifactError(
      `${where}: unreadable ${what}: JSON nested ${depth.toLocaleString("en-US")} deep, where s4rec's files nest ` +
        `at most ${maxDepth}. The file is damaged or not an s4rec file; re-export the artifact.`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ArtifactError(`${where}: unreadable ${what} (${e instanceof Error ? e.message : e}). Re-export the artifact.`);
  }
}

/**
 * Refuse a file of more than `maxBytes` before it is decoded and parsed.
 *
 * @param {Uint8Array} bytes
 * @param {string} where
 * @param {string} what
 * @param {number} maxBytes
 */
export function checkJsonSize(bytes, where, what, maxBytes) {
  if (bytes.length > maxBytes) {
    throw new ArtifactError(
      `${where}: unreadable ${what}: larger than ${maxBytes.toLocaleString("en-US")} bytes, far more than s4rec ` +
        "writes there. The file is damaged or not an s4rec file; re-export the artifact.",
    );
  }
}
