/**
 * What a model file says about itself: the `s4rec.*` metadata of the artifact contract (docs/ARTIFACT.md),
 * validated into a frozen {@link ArtifactMetadata}, with the same checks and messages as the Python SDK.
 * Format 2 keeps everything in the model's metadata; format 3 (large catalogues) keeps the item ids, popular
 * items and intent top items in sidecar files next to the model (`js/src/sidecars.js`).
 *
 * Beside the reader, the checks that a loaded graph has the public inputs and outputs the metadata promises
 * ({@link checkSignature}, {@link checkEncoderSignature}: the Python SDK's `s4rec.artifact` holds both too);
 * whether the graph agrees with the metadata's numbers is probed by `js/src/graphcheck.js`.
 */

import { ArtifactError, ArtifactVersionError, ChecksumError } from "./errors.js";
import { parseJson } from "./json.js";
import { itemIdsChecksum } from "./pyjson.js";
import { sha256Hex } from "./sha256.js";

/** @typedef {import("onnxruntime-common").InferenceSession} InferenceSession */

export const FORMAT = "s4rec-onnx"; // metadata_props["s4rec.format"] of every model file
export const FORMAT_VERSION = 3; // the newest model-file format this SDK reads (3: lists in sidecar files)
export const READ_FORMAT_VERSIONS = [2, 3]; // 2: one self-describing file (graph inputs exclude and k)
export const ENCODER_FORMAT = "s4rec-onnx-encoder"; // metadata_props["s4rec.format"] of format 3's encoder.onnx
export const ENCODER_SIDECAR = "encoder"; // format 3: the encoder-only graph (history -> user_embedding [, intents])
export const ITEM_TABLE_SIDECAR = "item_table"; // format 3: the float32 item table, ONNX external data
export const ITEM_INTENTS_SIDECAR = "item_intents"; // format 3, with intents: int32 (N,), each item's intent
const VERSION_DIGITS = 12; // hex digits of an artifact's version id
export const METADATA_KEY = "s4rec.metadata";

export const INPUT = "history"; // int64 (batch, length), left-padded item indices
export const EXCLUDE = "exclude"; // int64 (batch, e), item indices never returned (0: none)
export const K_INPUT = "k"; // int64 scalar, items returned per user, 1..top_k
export const INPUTS = [INPUT, EXCLUDE, K_INPUT];
export const USER_EMBEDDING = "user_embedding"; // float32 (batch, dim)
export const TOP_SCORES = "top_scores"; // float32 (batch, k), descending; -inf only for excluded items at the end
export const TOP_ITEMS = "top_items"; // int64 (batch, k), item indices 1..N
export const INTENT_PROBABILITIES = "intent_probabilities"; // float32 (batch, num_intents), only with intents
export const REQUIRED_OUTPUTS = [USER_EMBEDDING, TOP_SCORES, TOP_ITEMS];

const REQUIRED_KEYS = [
  "format_version", "package_version", "variant", "opset", "ir_version", "max_len", "padding_index",
  "embedding_dim", "num_items", "num_intents", "top_k", "item_ids", "item_ids_sha256", "popular_items",
]; // prettier-ignore
const LARGE_LISTS = ["item_ids", "popular_items", "intent_top_items"]; // in sidecar files in format 3
// Format 3: the lists and their checksum are sidecar files, described by the `sidecars` table.
const REQUIRED_KEYS_LARGE = [...REQUIRED_KEYS.filter((k) => !LARGE_LISTS.includes(k) && k !== "item_ids_sha256"), "sidecars"];

/**
 * The validated metadata of a model file (`rec.metadata`). Names are the JSON keys of `s4rec.metadata` in
 * camelCase; `values` is the JSON object itself (with the sidecar's keys merged in), keys unknown to this
 * SDK included.
 *
 * @typedef {object} ArtifactMetadata
 * @property {number} formatVersion 2, or 3 (large catalogues: the lists and item tables in sidecar files)
 * @property {string} packageVersion the s4rec release that exported it
 * @property {"fp32" | "int8" | "fp16"} variant
 * @property {number} opset
 * @property {number} irVersion
 * @property {number} maxLen the longest history the graph takes; longer ones keep their most recent maxLen items
 * @property {number} paddingIndex 0
 * @property {number} embeddingDim
 * @property {number} numItems N; item indices are 1..N
 * @property {number} numIntents 0 when the model has no intent centroids
 * @property {number} topK the most items `recommend` may ask for
 * @property {ReadonlyArray<import("./input.js").ItemId>} itemIds itemIds[i - 1] is the id of item index i
 * @property {string} itemIdsSha256 format 2; "" in format 3 (the sidecar's SHA-256 is in `sidecars`)
 * @property {ReadonlyArray<number>} popularItems item indices by descending popularity (empty-history fallback)
 * @property {ReadonlyArray<ReadonlyArray<number>>} intentTopItems per intent, the top_k item indices closest to it
 * @property {number | null} intentTemperature
 * @property {boolean} intentNormalized
 * @property {number} rankingBlockSize informational (0: one TopK over all items)
 * @property {string} sourceCheckpointSha256
 * @property {Readonly<Record<string, unknown>>} checkpointMetrics
 * @property {string} createdAt
 * @property {ReadonlyArray<string>} inputs
 * @property {ReadonlyArray<string>} outputs
 * @property {"float32" | "int8"} tablePrecision how the scored item table is stored (int8: per-row scales)
 * @property {Readonly<Record<string, Readonly<Record<string, any>>>>} sidecars format 3: sidecar name ->
 *   `{file, sha256, bytes, ...}`; empty in format 2
 * @property {ReadonlyArray<number>} itemIntents each item's intent (itemIntents[i - 1]: item index i's, 0..K-1;
 *   format 3: from the sidecar `item_intents.npy`); empty without intents and in artifacts exported before
 *   item intents were stored
 * @property {string} version the artifact's short version id (12 hex digits); "" in artifacts exported before
 *   versions were written (the recommender's `version` computes theirs on load)
 * @property {Readonly<Record<string, unknown>>} values
 */

/**
 * Where a model's metadata came from: its `metadata_props`, an optional sidecar JSON object and, for
 * messages, the file's name.
 *
 * @typedef {object} MetadataSources
 * @property {Record<string, string>} props the model's metadata_props
 * @property {Record<string, unknown> | null} sidecar keys of `s4rec.metadata` kept next to the model, or null
 * @property {string} name the model file's path or URL
 * @property {((entries: unknown) => import("./sidecars.js").Sidecars) | null} [sidecarFiles] format 3: the
 *   sidecar files of the model's folder, for its `sidecars` table (null: the model came as bytes)
 */

/**
 * Validate a model file's metadata.
 *
 * @param {MetadataSources} sources
 * @returns {Promise<ArtifactMetadata>}
 */
export async function parseMetadata({ props, sidecar, name, sidecarFiles = null }) {
  const format = props["s4rec.format"];
  if (format === ENCODER_FORMAT) {
    throw new ArtifactError(
      `${name}: this is the encoder-only graph of a format 3 artifact, not a model to load on its own. Load ` +
        "the artifact directory (or its model.onnx).",
    );
  }
  if (format !== FORMAT) {
    throw new ArtifactError(
      `${name}: not an s4rec model (metadata s4rec.format is ${JSON.stringify(format ?? null)}, expected ` +
        `"${FORMAT}"). Export the model with s4rec-export.`,
    );
  }
  const version = props["s4rec.format_version"];
  const readable = READ_FORMAT_VERSIONS.join(" and ");
  if (version === "1") {
    throw new ArtifactVersionError(
      `${name}: model format version 1, written by an older s4rec-export; this SDK reads versions ` +
        `${readable} (whose graphs take the inputs ${JSON.stringify(INPUTS)}). Re-export the artifact ` +
        "from its checkpoint with a current s4rec-export (the checkpoint needs no change).",
    );
  }
  if (!READ_FORMAT_VERSIONS.map(String).includes(version)) {
    throw new ArtifactVersionError(
      `${name}: model format version ${JSON.stringify(version ?? null)}, this SDK reads versions ${readable}. ` +
        "Install the s4rec JavaScript package that matches the exporter, or re-export.",
    );
  }
  const invalid = (/** @type {string} */ why) =>
    new ArtifactError(`${name}: invalid s4rec metadata: ${why}. Re-export the artifact.`);
  // bounded in depth: freeze() and withSidecar() walk it
  let values = /** @type {any} */ (parseJson(props[METADATA_KEY] ?? "null", name, METADATA_KEY));
  if (!isObject(values)) throw invalid(`no ${METADATA_KEY} object`);
  values = withSidecar(values, sidecar, name);
  if (String(values.format_version) !== version) {
    throw invalid(
      `s4rec.format_version "${version}" but the metadata's format_version is ${JSON.stringify(values.format_version ?? null)}`,
    );
  }
  const large = values.format_version === 3;
  const missing = (large ? REQUIRED_KEYS_LARGE : REQUIRED_KEYS).filter((key) => !(key in values));
  if (missing.length) throw invalid(`missing metadata keys ${JSON.stringify(missing)}`);
  /** @type {import("./sidecars.js").Sidecars | null} */
  let files = null;
  if (large) {
    if (sidecarFiles === null) {
      throw new ArtifactError(
        `${name}: a format 3 model (large catalogue), whose item ids and item table are files next to it, ` +
          "loaded from bytes. Load the artifact directory (a path or URL) instead, or re-export with " +
          "--small-format if the catalogue allows it.",
      );
    }
    const scalars = checkScalars(values);
    if (scalars.length) throw invalid(scalars.join("; "));
    files = sidecarFiles(values.sidecars);
  }
  const lists = await readLists(values, name, files);
  const problems = checkValues(values, lists);
  if (problems.length) throw invalid(problems.join("; "));
  const ids = /** @type {ReadonlyArray<import("./input.js").ItemId>} */ (lists.itemIds); // checked above
  if (!large) {
    const computed = await itemIdsChecksum(ids);
    if (computed !== values.item_ids_sha256) {
      throw new ChecksumError(
        `${name}: item vocabulary checksum mismatch: recorded ${String(values.item_ids_sha256).slice(0, 12)}..., ` +
          `computed ${computed.slice(0, 12)}.... The item ids were altered; re-export the artifact.`,
      );
    }
  }
  return freeze({
    formatVersion: values.format_version,
    packageVersion: values.package_version,
    variant: values.variant,
    opset: values.opset,
    irVersion: values.ir_version,
    maxLen: values.max_len,
    paddingIndex: values.padding_index,
    embeddingDim: values.embedding_dim,
    numItems: values.num_items,
    numIntents: values.num_intents,
    topK: values.top_k,
    itemIds: ids,
    itemIdsSha256: large ? "" : values.item_ids_sha256,
    popularItems: /** @type {number[]} */ (lists.popularItems),
    intentTopItems: /** @type {number[][]} */ (lists.intentTopItems),
    intentTemperature: values.intent_temperature ?? null,
    intentNormalized: values.intent_normalized ?? true,
    rankingBlockSize: values.ranking_block_size ?? 0,
    sourceCheckpointSha256: values.source_checkpoint_sha256 ?? "",
    checkpointMetrics: values.checkpoint_metrics ?? {},
    createdAt: values.created_at ?? "",
    inputs: values.inputs ?? INPUTS,
    outputs: values.outputs ?? REQUIRED_OUTPUTS,
    tablePrecision: values.table_precision ?? "float32",
    sidecars: large ? values.sidecars : {},
    itemIntents: /** @type {number[]} */ (lists.itemIntents),
    version: values.version ?? "",
    values,
  });
}

/**
 * The three lists of a model: item ids, popular items, intent top items.
 *
 * @typedef {object} Lists
 * @property {ReadonlyArray<unknown>} itemIds
 * @property {unknown} popularItems
 * @property {unknown} intentTopItems
 * @property {unknown} itemIntents
 */

/**
 * The lists, from the metadata (format 2) or the sidecar files (format 3).
 *
 * @param {Record<string, any>} values the metadata object
 * @param {string} name the model file, for messages
 * @param {import("./sidecars.js").Sidecars | null} files format 3: the sidecar files
 * @returns {Promise<Lists>}
 */
async function readLists(values, name, files) {
  if (files === null) {
    return {
      itemIds: await readItemIds(values, name, null),
      popularItems: values.popular_items,
      intentTopItems: values.intent_top_items ?? [],
      itemIntents: values.item_intents ?? [],
    };
  }
  const intents = values.num_intents ? files.integers("intent_top_items", 2) : null;
  const [itemIds, popular, top, itemIntents] = await Promise.all([
    readItemIds(values, name, files),
    files.integers("popular_items", 1),
    intents,
    files.has(ITEM_INTENTS_SIDECAR) ? files.int32s(ITEM_INTENTS_SIDECAR) : new Int32Array(0),
  ]);
  /** @type {number[][]} */
  const intentTopItems = [];
  if (top !== null) {
    const [rows, width] = top.shape;
    for (let r = 0; r < rows; r++) intentTopItems.push(top.values.slice(r * width, (r + 1) * width));
  }
  return { itemIds, popularItems: popular.values, intentTopItems, itemIntents: Array.from(itemIntents) };
}

/**
 * The item vocabulary: the one function that knows where it is kept. Format 2: the `item_ids` key of the
 * model's metadata (or of its metadata sidecar, already merged in); format 3: the `item_ids` sidecar file
 * (`items.npy`, `items.utf8` with `items.offsets.npy`, or `items.json`).
 *
 * @param {Record<string, any>} values the metadata object
 * @param {string} name the model file, for messages
 * @param {import("./sidecars.js").Sidecars | null} [files] format 3: the sidecar files
 * @returns {Promise<ReadonlyArray<unknown>>}
 */
export async function readItemIds(values, name, files = null) {
  if (files !== null) return files.itemIds(values.num_items);
  if (!Array.isArray(values.item_ids)) {
    throw new ArtifactError(`${name}: invalid s4rec metadata: item_ids is not a list. Re-export the artifact.`);
  }
  return values.item_ids;
}

/**
 * The metadata object with the sidecar's keys added. A key present in both must have the same value:
 * otherwise the two files do not belong together.
 *
 * @param {Record<string, any>} values
 * @param {Record<string, unknown> | null} sidecar
 * @param {string} name
 * @returns {Record<string, any>}
 */
function withSidecar(values, sidecar, name) {
  if (sidecar === null) return values;
  const merged = { ...values };
  for (const [key, value] of Object.entries(sidecar)) {
    if (key in values && JSON.stringify(values[key]) !== JSON.stringify(value)) {
      throw new ArtifactError(
        `${name}: inconsistent metadata: the sidecar's ${key} differs from the model's. The sidecar belongs ` +
          "to another export; copy the model and its sidecar from the same export.",
      );
    }
    merged[key] = value;
  }
  return merged;
}

/**
 * What is wrong with the metadata's scalars, as Python's `ArtifactMetadata._check_scalars` checks them.
 *
 * @param {Record<string, any>} v
 * @returns {string[]}
 */
function checkScalars(v) {
  const problems = [];
  const show = (/** @type {unknown} */ value) => JSON.stringify(value) ?? String(value);
  if (!READ_FORMAT_VERSIONS.includes(v.format_version)) {
    problems.push(`format_version ${show(v.format_version)} (this SDK reads ${JSON.stringify(READ_FORMAT_VERSIONS)})`);
  }
  if (!["fp32", "int8", "fp16"].includes(v.variant)) problems.push(`variant ${show(v.variant)} (expected fp32, int8 or fp16)`);
  if (v.padding_index !== 0) problems.push(`padding_index ${show(v.padding_index)} (expected 0)`);
  for (const key of ["max_len", "embedding_dim", "num_items", "top_k"]) {
    if (!Number.isInteger(v[key]) || v[key] < 1) problems.push(`${key} ${show(v[key])} (expected an int >= 1)`);
  }
  if (!Number.isInteger(v.num_intents) || v.num_intents < 0) {
    problems.push(`num_intents ${show(v.num_intents)} (expected an int >= 0)`);
  }
  if (v.top_k > v.num_items) problems.push(`top_k ${v.top_k} > num_items ${v.num_items}`);
  if (v.num_intents && !(typeof v.intent_temperature === "number" && v.intent_temperature > 0)) {
    problems.push(`intent_temperature ${show(v.intent_temperature)} (expected > 0 with intents)`);
  }
  const inputs = Array.isArray(v.inputs) ? v.inputs : v.inputs === undefined ? INPUTS : [];
  const outputs = Array.isArray(v.outputs) ? v.outputs : v.outputs === undefined ? REQUIRED_OUTPUTS : [];
  if (!INPUTS.every((i) => inputs.includes(i)) || !REQUIRED_OUTPUTS.every((o) => outputs.includes(o))) {
    problems.push(`inputs ${show(inputs)} / outputs ${show(outputs)} lack the required names`);
  }
  if (v.num_intents && !outputs.includes(INTENT_PROBABILITIES)) {
    problems.push(`${v.num_intents} intents but no ${INTENT_PROBABILITIES} output`);
  }
  if (!["float32", "int8"].includes(v.table_precision ?? "float32")) {
    problems.push(`table_precision ${show(v.table_precision)} (expected float32 or int8)`);
  }
  if (v.format_version === 3) {
    for (const sidecar of [ITEM_TABLE_SIDECAR, ENCODER_SIDECAR]) {
      if (!isObject(v.sidecars) || !(sidecar in v.sidecars)) problems.push(`no "${sidecar}" in sidecars`);
    }
  }
  return problems;
}

/**
 * What is wrong with the metadata values and lists, as Python's `ArtifactMetadata.__post_init__` checks them.
 *
 * @param {Record<string, any>} v
 * @param {Lists} lists
 * @returns {string[]}
 */
function checkValues(v, { itemIds, popularItems, intentTopItems, itemIntents }) {
  const problems = checkScalars(v);
  const show = (/** @type {unknown} */ value) => JSON.stringify(value) ?? String(value);
  if (itemIds.length !== v.num_items) problems.push(`${itemIds.length} item_ids for num_items ${v.num_items}`);
  if (new Set(itemIds).size !== itemIds.length) problems.push("item_ids has duplicates");
  const badId = itemIds.find((id) => typeof id !== "string" && !Number.isInteger(id));
  if (badId !== undefined) problems.push(`item_ids must be ints or strings (found ${show(badId)})`);
  const bigId = itemIds.find((id) => Number.isInteger(id) && !Number.isSafeInteger(id));
  if (bigId !== undefined) {
    problems.push(
      `an item id near ${show(bigId)} is beyond 2^53, the largest integer a JavaScript number holds exactly ` +
        "(give such ids to s4rec-train as strings)",
    );
  }
  const inRange = (/** @type {unknown} */ i) => Number.isInteger(i) && /** @type {number} */ (i) >= 1 && /** @type {number} */ (i) <= v.num_items;
  if (!Array.isArray(popularItems) || !popularItems.every(inRange)) {
    problems.push(`popular_items outside 1..${v.num_items}`);
  }
  if (!Array.isArray(intentTopItems) || !intentTopItems.every((row) => Array.isArray(row))) {
    problems.push("intent_top_items is not a list of lists");
  } else {
    if (v.num_intents && intentTopItems.length !== v.num_intents) {
      problems.push(`${intentTopItems.length} intent_top_items lists for ${v.num_intents} intents`);
    }
    if (!intentTopItems.every((row) => row.every(inRange))) problems.push(`intent_top_items outside 1..${v.num_items}`);
  }
  // item_intents: none, or one intent 0..K-1 per item (Python's ArtifactMetadata._check_item_intents)
  if (!Array.isArray(itemIntents)) problems.push("item_intents is not a list");
  else if (itemIntents.length && !v.num_intents) problems.push("item_intents without intents (num_intents 0)");
  else if (itemIntents.length && itemIntents.length !== v.num_items) {
    problems.push(`${itemIntents.length} item_intents for num_items ${v.num_items}`);
  } else if (!itemIntents.every((i) => Number.isInteger(i) && i >= 0 && i < v.num_intents)) {
    problems.push(`item_intents must be intents in 0..${v.num_intents - 1}`);
  }
  if (v.version !== undefined && !(typeof v.version === "string" && new RegExp(`^([0-9a-f]{${VERSION_DIGITS}})?$`).test(v.version))) {
    problems.push(`version ${show(v.version)} (expected ${VERSION_DIGITS} lowercase hex digits)`);
  }
  return problems;
}

/**
 * The artifact's short version id (docs/ARTIFACT.md, "Version"): the first 12 hex digits of the SHA-256 of
 * `"{source checkpoint SHA-256}:{export SHA-256}"`, as the Python SDK's `artifact_version`. For artifacts
 * exported before versions were written the export SHA-256 is the fp32 model file's (the manifest's entry
 * when the loaded file is listed in its directory's manifest, else the loaded file's own).
 *
 * @param {string} checkpointSha256
 * @param {string} exportSha256
 * @returns {Promise<string>}
 */
export async function artifactVersion(checkpointSha256, exportSha256) {
  const text = `${checkpointSha256}:${exportSha256}`; // hex digits and a colon: ASCII, one byte a character
  return (await sha256Hex(Uint8Array.from(text, (c) => c.charCodeAt(0)))).slice(0, VERSION_DIGITS);
}

/**
 * @param {unknown} value
 * @returns {value is Record<string, any>}
 */
export function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/**
 * Freeze an object and everything in it (the metadata is shared by every call and must not change).
 *
 * @template T
 * @param {T} value
 * @returns {T}
 */
function freeze(value) {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) freeze(child);
  }
  return value;
}

/**
 * A format 3 encoder-only graph must take `history` alone and give `user_embedding` (and the intents).
 *
 * @param {InferenceSession} session
 * @param {ArtifactMetadata} metadata
 * @param {string} name
 */
export function checkEncoderSignature(session, metadata, name) {
  const problems = [];
  const inputs = session.inputNames;
  const outputs = session.outputNames;
  const described = /** @type {any} */ (session).inputMetadata;
  const meta = Array.isArray(described) ? described.find((m) => m.name === INPUT) : undefined;
  const wrongType = meta?.isTensor && (meta.type !== "int64" || meta.shape.length !== 2);
  if (inputs.length !== 1 || inputs[0] !== INPUT || wrongType) {
    problems.push(`inputs ${JSON.stringify(inputs)} (expected "${INPUT}" int64 [batch, length] alone)`);
  }
  const wanted = [USER_EMBEDDING, ...(metadata.numIntents ? [INTENT_PROBABILITIES] : [])];
  if (!wanted.every((o) => outputs.includes(o))) {
    problems.push(`outputs ${JSON.stringify(outputs)} (expected ${JSON.stringify(wanted)})`);
  }
  if (problems.length) {
    throw new ArtifactError(`${name}: the encoder graph does not match the s4rec contract: ${problems.join("; ")}. Re-export.`);
  }
}

/**
 * The graph must have the public inputs and outputs the metadata promises (docs/ARTIFACT.md), as
 * `s4rec.artifact.check_signature` checks.
 *
 * @param {InferenceSession} session
 * @param {ArtifactMetadata} metadata
 * @param {string} name
 */
export function checkSignature(session, metadata, name) {
  const problems = [];
  const inputs = session.inputNames;
  const outputs = session.outputNames;
  // Types and ranks where the runtime reports them (onnxruntime >= 1.22; older ones give names only).
  const described = /** @type {any} */ (session).inputMetadata;
  for (const [input, rank, what] of /** @type {const} */ ([
    [INPUT, 2, "[batch, length]"],
    [EXCLUDE, 2, "[batch, excluded]"],
    [K_INPUT, 0, "[]"],
  ])) {
    const meta = Array.isArray(described) ? described.find((m) => m.name === input) : undefined;
    if (!inputs.includes(input)) problems.push(`no input "${input}" (inputs: ${JSON.stringify(inputs)})`);
    else if (meta?.isTensor && (meta.type !== "int64" || meta.shape.length !== rank)) {
      problems.push(`input "${input}" is ${meta.type} ${JSON.stringify(meta.shape)}, expected int64 ${what}`);
    }
  }
  const missing = REQUIRED_OUTPUTS.filter((o) => !outputs.includes(o));
  if (metadata.numIntents && !outputs.includes(INTENT_PROBABILITIES)) missing.push(INTENT_PROBABILITIES);
  if (missing.length) problems.push(`missing outputs ${JSON.stringify(missing)} (outputs: ${JSON.stringify(outputs)})`);
  if (problems.length) {
    throw new ArtifactError(`${name}: the graph does not match the s4rec contract: ${problems.join("; ")}. Re-export it.`);
  }
}
