/**
 * The item vectors of a loaded artifact and each item's intent, as the Python SDK's `s4rec.item_table`: what
 * candidate scoring, `score`, `similarItems` and intent-diverse lists read besides the graph.
 *
 * Where the float32 table (N + 1, d) comes from (row 0: padding, zero; row i: item index i), never a second
 * copy in the artifact (docs/ARTIFACT.md):
 *
 * - format 3: the `item_table` sidecar `item_table.npy`, read on the first call that needs it (a view of its
 *   bytes: its data starts at byte 4096; in browsers the bytes already read for the graphs' external data);
 * - format 2: the fp32 model file's initializer `encoder.item_table` (`readInitializer` in
 *   `js/src/protobuf.js`), rows 0..N of its raw bytes copied into an aligned array (they lie at any offset).
 *   The int8 and fp16 variants read it from the directory's `model.onnx` (checked against the manifest), on
 *   first use: their own tables are quantized or converted, and the float32 vectors are the model's.
 *
 * {@link checkTableAgrees} ties a format 2 fp32 table to its graph at load, as the Python SDK does.
 */

import { ArtifactError } from "./errors.js";
import { EXCLUDE, INPUT, K_INPUT, TOP_ITEMS, TOP_SCORES, USER_EMBEDDING } from "./metadata.js";
import { readInitializer } from "./protobuf.js";

/** @typedef {import("./metadata.js").ArtifactMetadata} ArtifactMetadata */
/** @typedef {import("./session.js").Runtime} Runtime */
/** @typedef {import("onnxruntime-common").InferenceSession} InferenceSession */

export const ITEM_TABLE_INITIALIZER = "encoder.item_table"; // format 2: the float32 item table in the model file
const FLOAT = 1; // TensorProto.DataType FLOAT
const TOLERANCE = 1e-4; // the table's score vs the graph's (relative): float32 sums in another order

/** Item vectors and intents by item index. */
export class ItemTable {
  /** @type {Float32Array | null} row norms, computed on first use */
  #norms = null;
  /** @type {Int32Array | null} 1..N */
  #allItems = null;

  /**
   * @param {Float32Array} vectors (N + 1) x dim, row-major, row 0 zero
   * @param {number} dim
   * @param {Int32Array | null} intents (N + 1,), intents[0] = -1; null without item intents
   */
  constructor(vectors, dim, intents) {
    this.vectors = vectors;
    this.dim = dim;
    this.numItems = vectors.length / dim - 1;
    this.intents = intents;
  }

  /**
   * The dot product of `vector` with row `item`, rounded to float32 as the graph's and numpy's scores are.
   *
   * @param {ArrayLike<number>} vector
   * @param {number} item
   */
  dot(vector, item) {
    const { vectors, dim } = this;
    let sum = 0;
    for (let j = 0, r = item * dim; j < dim; j++, r++) sum += vectors[r] * vector[j];
    return Math.fround(sum);
  }

  /**
   * Scores of `items` (item indices; 0: an unknown id, scored NaN), in their order.
   *
   * @param {ArrayLike<number>} vector
   * @param {ArrayLike<number>} items
   * @returns {Float32Array}
   */
  scores(vector, items) {
    return Float32Array.from(items, (i) => (i === 0 ? NaN : this.dot(vector, i)));
  }

  /**
   * Scores of every item 1..N (position i - 1: item i), each rounded to float32 as it is stored. One loop over
   * the table, four sums at a time (JavaScript has no BLAS): `similarItems` over Beauty's 12,101 x 64 takes
   * 0.9 ms p50 in Node (benchmarks/js_app_features.mjs), where a function call per item (commit 80157ad) took
   * 19.8 ms.
   *
   * @param {ArrayLike<number>} vector
   * @returns {Float32Array}
   */
  allScores(vector) {
    const { vectors, dim, numItems } = this;
    const out = new Float32Array(numItems);
    const whole = dim - (dim % 4);
    for (let i = 0, r = dim; i < numItems; i++, r += dim) {
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      let j = 0;
      for (; j < whole; j += 4) {
        s0 += vectors[r + j] * vector[j];
        s1 += vectors[r + j + 1] * vector[j + 1];
        s2 += vectors[r + j + 2] * vector[j + 2];
        s3 += vectors[r + j + 3] * vector[j + 3];
      }
      for (; j < dim; j++) s0 += vectors[r + j] * vector[j];
      out[i] = s0 + s1 + s2 + s3;
    }
    return out;
  }

  /** The item indices 1..N in order (made once): the `items` of a ranking of {@link ItemTable.allScores}. */
  allItems() {
    this.#allItems ??= Int32Array.from({ length: this.numItems }, (_, i) => i + 1);
    return this.#allItems;
  }

  /** (N + 1,) row norms (a zero row: 1, so that nothing divides by zero), computed once. */
  norms() {
    if (this.#norms === null) {
      const { vectors, dim } = this;
      const norms = new Float32Array(this.numItems + 1);
      for (let i = 0; i <= this.numItems; i++) {
        let sum = 0;
        for (let j = 0, r = i * dim; j < dim; j++, r++) sum += vectors[r] * vectors[r];
        norms[i] = Math.sqrt(sum) || 1;
      }
      this.#norms = norms;
    }
    return this.#norms;
  }
}

/**
 * Each item's intent by item index ((N + 1,), [0] = -1), or null when the artifact stores none.
 *
 * @param {ArtifactMetadata} metadata
 * @returns {Int32Array | null}
 */
export function itemIntents(metadata) {
  if (!metadata.itemIntents.length) return null;
  const intents = new Int32Array(metadata.numItems + 1);
  intents[0] = -1;
  intents.set(metadata.itemIntents, 1);
  return intents;
}

/**
 * The float32 rows 0..N of a format 2 model file's item table.
 *
 * @param {Uint8Array} bytes the fp32 model file
 * @param {string} name its path or URL, for messages
 * @param {ArtifactMetadata} metadata
 * @returns {Float32Array}
 */
export function format2Vectors(bytes, name, metadata) {
  const table = readInitializer(bytes, name, ITEM_TABLE_INITIALIZER);
  const width = metadata.numItems + 1;
  const dim = metadata.embeddingDim;
  if (table === null || table.external || table.dataType !== FLOAT || table.raw === null) {
    throw new ArtifactError(
      `${name}: no float32 initializer "${ITEM_TABLE_INITIALIZER}" holding the item table. Re-export the ` +
        "artifact with s4rec-export.",
    );
  }
  if (table.dims.length !== 2 || table.dims[0] < width || table.dims[1] !== dim) {
    throw new ArtifactError(
      `${name}: "${ITEM_TABLE_INITIALIZER}" has shape ${JSON.stringify(table.dims)}, expected at least ` +
        `[${width}, ${dim}] (num_items + 1, embedding_dim). Re-export the artifact.`,
    );
  }
  if (table.raw.length !== table.dims[0] * dim * 4) {
    throw new ArtifactError(
      `${name}: "${ITEM_TABLE_INITIALIZER}" holds ${table.raw.length} bytes of raw data for dims ` +
        `${JSON.stringify(table.dims)}. Re-export the artifact.`,
    );
  }
  // A copy: the raw bytes lie at any offset of the file (a Float32Array needs 4-byte alignment), and the
  // rows beyond N are not items. Little-endian, as ONNX stores raw_data and as every JS engine runs.
  return new Float32Array(copy(table.raw.subarray(0, width * dim * 4)).buffer);
}

/**
 * Format 3's float32 rows 0..N, a view of `item_table.npy`'s data (copied only when it is not 4-byte aligned).
 *
 * @param {import("./sidecars.js").NpyArray} array the parsed `item_table` sidecar
 * @param {string} name its path or URL, for messages
 * @param {ArtifactMetadata} metadata
 * @returns {Float32Array}
 */
export function format3Vectors(array, name, metadata) {
  const width = metadata.numItems + 1;
  const dim = metadata.embeddingDim;
  checkFormat3Table(array.dtype, array.shape, name, metadata);
  let data = array.data.subarray(0, width * dim * 4);
  if (data.byteOffset % 4) data = copy(data);
  return new Float32Array(data.buffer, data.byteOffset, width * dim);
}

/**
 * Format 3's item table is float32 of at least (N + 1, d) (checked at load from its `.npy` header, before the
 * table itself is read).
 *
 * @param {unknown} dtype
 * @param {unknown} shape
 * @param {string} name its path or URL, for messages
 * @param {ArtifactMetadata} metadata
 */
export function checkFormat3Table(dtype, shape, name, metadata) {
  const width = metadata.numItems + 1;
  const dim = metadata.embeddingDim;
  if (dtype !== "float32" || !Array.isArray(shape) || shape.length !== 2 || shape[0] < width || shape[1] !== dim) {
    throw new ArtifactError(
      `${name}: item table ${dtype}[${Array.isArray(shape) ? shape.join(", ") : shape}], expected float32 of at ` +
        `least [${width}, ${dim}]. Re-export the artifact.`,
    );
  }
}

/**
 * The table is the graph's (a format 2 fp32 file, which scores with this very table): for a probe history,
 * the table's dot product of the graph's top item with the graph's user vector must be the graph's score.
 *
 * @param {ItemTable} table
 * @param {Runtime} ort
 * @param {InferenceSession} session
 * @param {string} name
 */
export async function checkTableAgrees(table, ort, session, name) {
  const int64 = (/** @type {bigint[]} */ values, /** @type {number[]} */ shape) =>
    new ort.Tensor("int64", BigInt64Array.from(values), shape);
  const feeds = {
    [INPUT]: int64([1n, BigInt(table.numItems)], [1, 2]),
    [EXCLUDE]: int64([0n], [1, 1]),
    [K_INPUT]: int64([1n], []),
  };
  const out = await session.run(feeds, [USER_EMBEDDING, TOP_SCORES, TOP_ITEMS]);
  const user = /** @type {Float32Array} */ (out[USER_EMBEDDING].data);
  const graph = /** @type {Float32Array} */ (out[TOP_SCORES].data)[0];
  const mine = table.dot(user, Number(/** @type {BigInt64Array} */ (out[TOP_ITEMS].data)[0]));
  if (Math.abs(mine - graph) > TOLERANCE * Math.max(1, Math.abs(mine))) {
    throw new ArtifactError(
      `${name}: the item table read from the file scores ${mine.toPrecision(6)} where the graph scores ` +
        `${graph.toPrecision(6)}. The file is damaged; re-export the artifact.`,
    );
  }
}

/**
 * A copy of `bytes` in a buffer of its own (`slice` of a Node Buffer is a view, not a copy).
 *
 * @param {Uint8Array} bytes
 * @returns {Uint8Array}
 */
function copy(bytes) {
  return new Uint8Array(bytes);
}
