/**
 * Does a loaded graph match its metadata? A few probe runs at load time (a few milliseconds), so that an edited
 * or damaged metadata JSON fails with a clear {@link ArtifactError} instead of giving wrong items later. The
 * same checks, in the same words, as the Python SDK's `s4rec.graph_check`; called by `Recommender.load`.
 *
 * The metadata's sizes are untrusted: the probes are built so that a `max_len` far beyond the graph's allocates
 * no more than the graph's own (the Python SDK first bounds it by the model file's bytes, which this module is
 * not given): the user vector's size is checked on the shortest histories, then the graph must tell apart
 * histories of 64, 128, 256, ... items before the histories of `max_len` items are made.
 *
 * @typedef {import("./metadata.js").ArtifactMetadata} ArtifactMetadata
 * @typedef {import("onnxruntime-common").InferenceSession} InferenceSession
 * @typedef {import("onnxruntime-common").Tensor} Tensor
 * @typedef {{ Tensor: typeof import("onnxruntime-common").Tensor }} TensorRuntime
 */

import { ArtifactError } from "./errors.js";
import { EXCLUDE, INPUT, INTENT_PROBABILITIES, K_INPUT, TOP_ITEMS, USER_EMBEDDING } from "./metadata.js";

const REEXPORT = "The metadata was edited, or the file is damaged; re-export the artifact.";
/** @type {import("onnxruntime-common").InferenceSession.RunOptions} a run expected to fail logs nothing below fatal */
const SILENT = { logSeverityLevel: 4 };
const FIRST_WIDTH = 64; // the first of the doubling widths: s4rec's max_len is usually 50, which then needs none

/**
 * The graph must be the one the metadata describes. Two runs on a few probe histories check the user vector's
 * size, the intents, that item `numItems` is an item and `numItems + 1` is not, that the graph reads `maxLen`
 * items, and (not for a format 3 `encoder`) that `k` stops at `topK`.
 *
 * @param {TensorRuntime} ort
 * @param {InferenceSession} session
 * @param {ArtifactMetadata} metadata
 * @param {string} name the model file, for messages
 * @param {boolean} [encoder] a format 3 encoder-only graph (no `exclude`, `k`, `top_items`)
 */
export async function checkGraphAgrees(ort, session, metadata, name, encoder = false) {
  const { numItems: n, maxLen: length, topK, numIntents, embeddingDim } = metadata;
  await checkEmbeddingDim(ort, session, metadata, name, encoder);
  await checkWidths(ort, session, metadata, name, encoder);
  const probe = new BigInt64Array(4 * length);
  probe[2 * length - 1] = BigInt(n); // row 1: the last item
  probe.fill(1n, 2 * length, 3 * length);
  probe.fill(1n, 3 * length + 1, 4 * length); // row 2 without its oldest item: the same vector only if the graph reads fewer items
  const outputs = [USER_EMBEDDING, ...(numIntents ? [INTENT_PROBABILITIES] : []), ...(encoder ? [] : [TOP_ITEMS])];
  let results;
  try {
    results = await run(ort, session, outputs, probe, [4, length], encoder ? null : topK);
  } catch (e) {
    throw new ArtifactError(
      `${name}: the graph fails on probe histories of item indices 1..num_items ${n}, max_len ${length} long ` +
        `(${firstLine(e)}). ${REEXPORT}`,
    );
  }
  const vectors = results[USER_EMBEDDING];
  const vectorsFit = hasShape(vectors, [4, embeddingDim]);
  const problems = [];
  if (!vectorsFit) {
    problems.push(`user vectors of shape ${shape(vectors)}, not (4, embedding_dim ${embeddingDim})`);
  } else {
    if (sameRows(vectors, 0, 1)) {
      problems.push(`item index ${n} reads as padding, so the graph has fewer than num_items ${n} items`);
    }
    if (length > 1 && sameRows(vectors, 2, 3)) {
      problems.push(`the graph reads fewer than max_len ${length} items of a history`);
    }
  }
  if (numIntents && !hasShape(results[INTENT_PROBABILITIES], [4, numIntents])) {
    const got = shape(results[INTENT_PROBABILITIES]);
    problems.push(`intent probabilities of shape ${got}, not (4, num_intents ${numIntents})`);
  }
  if (!encoder) {
    const items = results[TOP_ITEMS];
    if (!hasShape(items, [4, topK])) {
      problems.push(`k = ${topK} returns ${items.dims[items.dims.length - 1]} items, so top_k is not ${topK}`);
    } else {
      const indices = Array.from(/** @type {BigInt64Array} */ (items.data), Number);
      const highest = Math.max(...indices);
      if (Math.min(...indices) < 1 || highest > n) {
        problems.push(`item index ${highest} returned, beyond num_items ${n}`);
      }
    }
  }
  // One past the last item: graphs with input guards read the index as padding; older graphs fail instead,
  // which says the same. That failure is expected, so the run logs nothing (ONNX Runtime would print its
  // "[E:onnxruntime ...] ... out of data bounds" line on stderr). k = topK + 1 is not checked: graphs exported
  // before the input guards take any k, and a metadata topK below the graph's is harmless (the SDK caps k at it).
  let beyond = null;
  const histories = BigInt64Array.of(0n, BigInt(n + 1));
  try {
    beyond = await run(ort, session, [USER_EMBEDDING], histories, [2, 1], encoder ? null : topK, SILENT);
  } catch {
    beyond = null;
  }
  if (beyond !== null && vectorsFit && !sameRows(beyond[USER_EMBEDDING], 0, 1)) {
    problems.push(`item index ${n + 1} is an item, so the graph has more than num_items ${n} items`);
  }
  if (problems.length) {
    throw new ArtifactError(`${name}: the metadata does not match the graph: ${problems.join("; ")}. ${REEXPORT}`);
  }
}

/**
 * The user vector's size, on histories of one padding item (the cheapest run).
 *
 * @param {TensorRuntime} ort
 * @param {InferenceSession} session
 * @param {ArtifactMetadata} metadata
 * @param {string} name
 * @param {boolean} encoder
 */
async function checkEmbeddingDim(ort, session, metadata, name, encoder) {
  let vectors;
  try {
    vectors = (await run(ort, session, [USER_EMBEDDING], new BigInt64Array(4), [4, 1], encoder ? null : 1))[USER_EMBEDDING];
  } catch (e) {
    throw new ArtifactError(`${name}: the graph fails on an empty history (${firstLine(e)}). The file is damaged; re-export the artifact.`);
  }
  if (!hasShape(vectors, [4, metadata.embeddingDim])) {
    throw new ArtifactError(
      `${name}: the metadata does not match the graph: user vectors of shape ${shape(vectors)}, not ` +
        `(4, embedding_dim ${metadata.embeddingDim}). ${REEXPORT}`,
    );
  }
}

/**
 * The graph reads histories of 64, 128, 256, ... items (each below `maxLen`): two histories of that width that
 * differ in their oldest item give different user vectors. A `maxLen` beyond the graph's is refused at the first
 * width past the graph's (which cuts longer histories, or fails on them), so no probe is ever more than twice as
 * wide as the graph's own histories.
 *
 * @param {TensorRuntime} ort
 * @param {InferenceSession} session
 * @param {ArtifactMetadata} metadata
 * @param {string} name
 * @param {boolean} encoder
 */
async function checkWidths(ort, session, metadata, name, encoder) {
  const { maxLen: length, numItems: n } = metadata;
  for (let width = FIRST_WIDTH; width < length; width *= 2) {
    const probe = new BigInt64Array(2 * width).fill(1n);
    probe[width] = 0n; // row 1 without its oldest item
    let vectors;
    try {
      vectors = (await run(ort, session, [USER_EMBEDDING], probe, [2, width], encoder ? null : 1))[USER_EMBEDDING];
    } catch (e) {
      throw new ArtifactError(
        `${name}: the graph fails on probe histories of item indices 1..num_items ${n}, max_len ${length} long ` +
          `(${firstLine(e)}). ${REEXPORT}`,
      );
    }
    if (sameRows(vectors, 0, 1)) {
      throw new ArtifactError(
        `${name}: the metadata does not match the graph: the graph reads fewer than max_len ${length} items of a ` +
          `history. ${REEXPORT}`,
      );
    }
  }
}

/**
 * A format 3 full graph's `k` stops at `topK` (one empty history: one pass over the item table).
 *
 * @param {TensorRuntime} ort
 * @param {InferenceSession} session
 * @param {ArtifactMetadata} metadata
 * @param {string} name
 */
export async function checkTopK(ort, session, metadata, name) {
  let items;
  try {
    items = (await run(ort, session, [TOP_ITEMS], BigInt64Array.of(0n), [1, 1], metadata.topK + 1))[TOP_ITEMS];
  } catch (e) {
    throw new ArtifactError(`${name}: the graph fails on an empty history (${firstLine(e)}). Re-export it.`);
  }
  if (!hasShape(items, [1, metadata.topK])) {
    throw new ArtifactError(
      `${name}: the metadata does not match the graph: k = ${metadata.topK + 1} returns ` +
        `${items.dims[items.dims.length - 1]} items, so top_k is not ${metadata.topK}. ${REEXPORT}`,
    );
  }
}

/**
 * A format 2 encoder-only graph (its tensors read from the model file) must give the full graph's user vectors
 * (and intents) on probe histories, within 1e-5: the Python SDK's `check_encoder_agrees`.
 *
 * @param {TensorRuntime} ort
 * @param {InferenceSession} session the full graph
 * @param {InferenceSession} encoder
 * @param {ArtifactMetadata} metadata
 * @param {string} name the encoder file, for messages
 */
export async function checkEncoderAgrees(ort, session, encoder, metadata, name) {
  const { numItems: n, maxLen: length } = metadata;
  const probe = new BigInt64Array(3 * length); // the last item alone; items 1, 2, ... (max_len of them); empty
  probe[length - 1] = BigInt(n);
  for (let j = 0; j < length; j++) probe[length + j] = BigInt((j % n) + 1);
  const outputs = [USER_EMBEDDING, ...(metadata.numIntents ? [INTENT_PROBABILITIES] : [])];
  let want;
  let got;
  try {
    want = await run(ort, session, outputs, probe, [3, length], 1);
    got = await run(ort, encoder, outputs, probe, [3, length], null);
  } catch (e) {
    throw new ArtifactError(`${name}: the encoder graph fails on probe histories (${firstLine(e)}). Re-export the artifact.`);
  }
  for (const output of outputs) {
    const a = /** @type {Float32Array} */ (got[output].data);
    const b = /** @type {Float32Array} */ (want[output].data);
    const same = hasShape(got[output], want[output].dims.slice()) && a.every((x, i) => Math.abs(x - b[i]) <= 1e-5);
    if (!same) {
      throw new ArtifactError(
        `${name}: the encoder graph's ${output} differs from the model's. It belongs to another export, or the ` +
          "model file was changed; re-export the artifact.",
      );
    }
  }
}

/**
 * @param {TensorRuntime} ort
 * @param {InferenceSession} session
 * @param {string[]} outputs
 * @param {BigInt64Array} histories
 * @param {[number, number]} dims
 * @param {number | null} k null: the encoder graph (history alone)
 * @param {import("onnxruntime-common").InferenceSession.RunOptions} [options]
 * @returns {Promise<Record<string, Tensor>>}
 */
async function run(ort, session, outputs, histories, dims, k, options = {}) {
  /** @type {Record<string, Tensor>} */
  const feeds = { [INPUT]: new ort.Tensor("int64", histories, dims) };
  if (k !== null) {
    feeds[EXCLUDE] = new ort.Tensor("int64", new BigInt64Array(dims[0]), [dims[0], 1]);
    feeds[K_INPUT] = new ort.Tensor("int64", BigInt64Array.of(BigInt(k)), []);
  }
  return /** @type {Record<string, Tensor>} */ (await session.run(feeds, outputs, options));
}

/**
 * @param {Tensor} tensor
 * @param {number[]} dims
 */
function hasShape(tensor, dims) {
  return tensor.dims.length === dims.length && tensor.dims.every((d, i) => d === dims[i]);
}

/** @param {Tensor} tensor the shape as Python writes a tuple, as in the Python SDK's messages */
function shape(tensor) {
  return `(${tensor.dims.join(", ")}${tensor.dims.length === 1 ? "," : ""})`;
}

/**
 * Rows a and b of a (rows, width) float tensor agree within 1e-6 (the Python SDK's tolerance).
 *
 * @param {Tensor} tensor
 * @param {number} a
 * @param {number} b
 */
function sameRows(tensor, a, b) {
  const width = tensor.dims[1];
  const data = /** @type {Float32Array} */ (tensor.data);
  for (let j = 0; j < width; j++) if (!(Math.abs(data[a * width + j] - data[b * width + j]) <= 1e-6)) return false;
  return true;
}

/** @param {unknown} error */
function firstLine(error) {
  const text = (error instanceof Error ? error.message : String(error)).trim();
  return text ? text.split("\n")[0] : error instanceof Error ? error.name : "error";
}
