/**
 * The {@link Recommender}: next-item recommendations, user embeddings and intents from an s4rec artifact,
 * on whichever ONNX Runtime the app brings (onnxruntime-web, -node or -react-native).
 *
 * It behaves as the Python SDK's `s4rec.Recommender` (docs/sdk.md): histories are the user's own item ids,
 * oldest first; they are mapped to item indices (`js/src/vocabulary.js`), cut to the most recent `max_len`
 * and left-padded. The graph ranks without the items it is told to exclude (input `exclude`: the whole history
 * when seen items are left out, not only the window) and returns exactly the `k` asked for.
 *
 * The parts, as in the Python SDK: artifacts are located and read by `js/src/sources.js`, their metadata read
 * and the graph's signature checked by `js/src/metadata.js`, the graph probed against the metadata by
 * `js/src/graphcheck.js`, sessions built by `js/src/session.js`; results are `js/src/results.js` types.
 *
 * A format 3 artifact (large catalogue) keeps its lists and item tables in sidecar files: they are read and
 * checked on load (`js/src/sidecars.js`), the tables given to ONNX Runtime as the graphs' external data, and
 * `embed` / `intents` run its encoder-only graph (no score product over every item). Its approximate-retrieval
 * index (faiss's format) is read by the Python SDK only: here every item is scored exactly.
 */

import { ArtifactError, S4RecError } from "./errors.js";
import {
  checkBoolean,
  checkHistories,
  checkInteger,
  checkK,
  checkOptions,
  checkPolicy,
  checkPositiveInteger,
  checkRetrieval,
  checkVerify,
  describe,
  orDefault,
} from "./input.js";
import {
  checkEncoderSignature,
  checkSignature,
  ENCODER_SIDECAR,
  EXCLUDE,
  INPUT,
  INTENT_PROBABILITIES,
  isObject,
  ITEM_TABLE_SIDECAR,
  K_INPUT,
  parseMetadata,
  TOP_ITEMS,
  TOP_SCORES,
  USER_EMBEDDING,
} from "./metadata.js";
import { checkGraphAgrees, checkTopK } from "./graphcheck.js";
import { readMetadataProps } from "./protobuf.js";
import { popularRecommendations, rankedRow } from "./results.js";
import { checkRuntime, createSession, externalData, SESSION_DEFAULTS, withoutPrepacking } from "./session.js";
import { Sidecars } from "./sidecars.js";
import { locateUrl, readModel, verifyChecksum } from "./sources.js";
import { ItemVocabulary } from "./vocabulary.js";

/** @typedef {import("./input.js").ItemId} ItemId */
/** @typedef {import("./input.js").HistoryItem} HistoryItem */
/** @typedef {import("./input.js").UnknownPolicy} UnknownPolicy */
/** @typedef {import("./metadata.js").ArtifactMetadata} ArtifactMetadata */
/** @typedef {import("onnxruntime-common").InferenceSession} InferenceSession */
/** @typedef {import("onnxruntime-common").InferenceSession.SessionOptions} SessionOptions */
/** @typedef {import("onnxruntime-common").Tensor} Tensor */
/** @typedef {import("./session.js").Runtime} Runtime */
/** @typedef {import("./results.js").Recommendation} Recommendation */
/** @typedef {import("./results.js").Recommendations} Recommendations */

/**
 * @typedef {object} LoadOptions
 * @property {Runtime} [ort] the ONNX Runtime module; by default the entry point's own (s4rec/node:
 *   onnxruntime-node, s4rec/web: onnxruntime-web, s4rec/react-native: onnxruntime-react-native)
 * @property {string} [variant] "fp32" (default), "int8" or "fp16": which model file of an artifact directory
 * @property {UnknownPolicy} [unknown] the default policy for unknown item ids: "ignore" (default) or "error"
 * @property {SessionOptions} [sessionOptions] merged over the defaults (1 thread, sequential, all graph
 *   optimisations but SkipLayerNormFusion, the runtime's CPU or WASM execution provider)
 * @property {typeof fetch} [fetch] the fetch used for URLs (default: the global one)
 * @property {boolean | Record<string, unknown>} [sidecar] true (default): use `<model file>.json` next to the
 *   model when there is one; false: do not look for it; an object: that sidecar's content (for bytes)
 * @property {import("./sidecars.js").VerifyMode} [verify] "fast" (default): check every file's size and the
 *   SHA-256 of all but a format 3 artifact's tables above 64 MB; "full": hash those too
 * @property {"exact"} [retrieval] "exact" (default, the only one here: every item is scored); "ann" is the
 *   Python SDK's (faiss) and a RangeError here
 */

/**
 * @typedef {object} RecommendOptions
 * @property {number} [k] items to return, 1..top_k (default 10)
 * @property {boolean} [excludeSeen] leave out the items of the history, all of it (default true)
 * @property {Iterable<HistoryItem>} [exclude] other ids to leave out (unknown ones are ignored)
 * @property {UnknownPolicy} [unknown] this call's policy for unknown ids (default: the recommender's)
 */

/** @typedef {RecommendOptions & { batchSize?: number }} RecommendBatchOptions */

/**
 * @typedef {object} Intent
 * @property {number} intent the intent's number, 0..num_intents - 1
 * @property {number} probability
 */

const LOAD_OPTIONS = ["ort", "variant", "unknown", "sessionOptions", "fetch", "sidecar", "verify", "retrieval"];
const RECOMMEND_OPTIONS = ["k", "excludeSeen", "exclude", "unknown"];
const BATCH_OPTIONS = [...RECOMMEND_OPTIONS, "batchSize"];
const DEFAULT_K = 10;
// Score-matrix cells (users x items) per ONNX Runtime call of recommendBatch, as the Python SDK's SCORE_CELLS:
// a call's (users, items) score matrix stays within 2^26 floats (256 MB), e.g. 64 users a call at 10^6 items;
// no effect up to 262,143 items at the default batchSize.
const SCORE_CELLS = 2 ** 26;

/**
 * Scores histories with an s4rec artifact. Build it with {@link Recommender.load}.
 *
 * One recommender serves any number of concurrent calls: it holds no mutable state besides its ONNX Runtime
 * session.
 */
export class Recommender {
  /** Session options of this entry point's runtime, merged over the SDK's defaults (see LoadOptions). */
  static sessionDefaults = /** @type {SessionOptions} */ ({});

  /** @type {ArtifactMetadata} */
  metadata;
  /** @type {InferenceSession} */
  session;
  /** @type {InferenceSession | null} format 3: the encoder-only graph (history -> user_embedding [, intents]) */
  encoder;
  /** @type {string} the model file's path or URL ("<bytes>" when loaded from bytes) */
  source;
  /** @type {UnknownPolicy} the default policy for unknown ids */
  unknown;
  /** @type {Runtime} */
  #ort;
  /** @type {ItemVocabulary} item ids <-> item indices */
  #vocabulary;
  /** @type {Tensor[]} the scalar input k, by value */
  #kTensors = [];

  /**
   * Use {@link Recommender.load}; this constructor takes what load has checked.
   *
   * @param {{ session: InferenceSession, metadata: ArtifactMetadata, source: string, unknown: UnknownPolicy, ort: Runtime, encoder?: InferenceSession | null }} parts
   */
  constructor({ session, metadata, source, unknown, ort, encoder = null }) {
    this.session = session;
    this.encoder = encoder;
    this.metadata = metadata;
    this.source = source;
    this.unknown = checkPolicy(unknown);
    this.#ort = ort;
    this.#vocabulary = new ItemVocabulary(metadata.itemIds);
  }

  /** The longest history the model reads; longer ones keep their most recent `maxLen` items. */
  get maxLen() {
    return this.metadata.maxLen;
  }

  /** The most items one list may hold. */
  get topK() {
    return this.metadata.topK;
  }

  /** Users per ONNX Runtime call of recommendBatch at most, so that its score matrix stays bounded. */
  get maxUsersPerCall() {
    return Math.max(1, Math.floor(SCORE_CELLS / (this.metadata.numItems + 1)));
  }

  // ------------------------------------------------------------------------------------------- loading

  /**
   * Load and validate an artifact.
   *
   * `source`: an artifact directory (its `s4rec.json` names the model file of each variant and its SHA-256,
   * which is checked), a single `.onnx` file (checked against the `s4rec.json` next to it when that lists
   * it), either as a URL (absolute, or relative to the page) or, in Node, a path; or the model file's bytes.
   * A format 3 artifact (large catalogue) needs its directory (its sidecar files are read from there), not bytes.
   *
   * Raises {@link ArtifactError} (or a subclass: {@link ArtifactVersionError}, `ChecksumError`) for anything
   * it cannot use, with what to do.
   *
   * @param {string | URL | Uint8Array | ArrayBuffer} source
   * @param {LoadOptions} [options]
   * @returns {Promise<Recommender>}
   */
  static async load(source, options) {
    const o = checkOptions(options, LOAD_OPTIONS, "Recommender.load()");
    const unknown = checkPolicy(orDefault(o.unknown, "ignore"));
    const variant = orDefault(o.variant, "fp32");
    if (typeof variant !== "string") throw new TypeError(`variant must be a string, got ${describe(variant)}.`);
    const sidecar = orDefault(o.sidecar, true);
    if (typeof sidecar !== "boolean" && !isObject(sidecar)) {
      throw new TypeError(`sidecar must be true, false or an object, got ${describe(sidecar)}.`);
    }
    const verify = checkVerify(orDefault(o.verify, "fast"));
    checkRetrieval(orDefault(o.retrieval, "exact"));
    const fetchImpl = orDefault(o.fetch, typeof fetch === "function" ? fetch.bind(globalThis) : undefined);
    if (fetchImpl !== undefined && typeof fetchImpl !== "function") {
      throw new TypeError(`fetch must be a function, got ${describe(fetchImpl)}.`);
    }
    // The runtime is imported while the model downloads; a failure is reported after the download's own (the
    // empty catch only keeps an early rejection from being reported as unhandled meanwhile).
    const runtime = o.ort === undefined ? this.runtime() : Promise.resolve(checkRuntime(o.ort));
    runtime.catch(() => {});
    const model = await this.readSource(source, variant, sidecar === true, fetchImpl);
    if (typeof sidecar === "object") model.sidecar = sidecar;
    await verifyChecksum(model);
    const props = readMetadataProps(model.bytes, model.name);
    const { folder, name } = model;
    /** @type {{ files: Sidecars | null }} format 3: the sidecar files, read by parseMetadata and below */
    const found = { files: null };
    const sidecarFiles =
      folder === null ? null : (/** @type {unknown} */ entries) => (found.files = new Sidecars(folder, entries, name, verify));
    const metadata = await parseMetadata({ props, sidecar: model.sidecar, name, sidecarFiles });
    const files = found.files;
    const ort = await runtime;
    const sessionOptions = { ...SESSION_DEFAULTS, ...this.sessionDefaults, ...o.sessionOptions };
    const modelOptions = model.prepacking ? sessionOptions : withoutPrepacking(sessionOptions);
    /** @type {Promise<InferenceSession | null>} */
    let encoder = Promise.resolve(null);
    if (files !== null) {
      encoder = (async () => {
        await files.array(ITEM_TABLE_SIDECAR); // present, of its size, dtype and shape (and hash where due)
        const bytes = await files.bytes(ENCODER_SIDECAR);
        const where = files.where(ENCODER_SIDECAR);
        const encoderOptions = { ...sessionOptions, externalData: await externalData(bytes, where, files) };
        const session = await createSession(ort, bytes, encoderOptions, where);
        checkEncoderSignature(session, metadata, where);
        // The probe on the encoder: the full graph would read the whole item table.
        await checkGraphAgrees(ort, session, metadata, where, true);
        return session;
      })();
      encoder.catch(() => {}); // reported below, after the model's own errors
    }
    const graphOptions = { ...modelOptions, externalData: await externalData(model.bytes, name, files) };
    const session = await createSession(ort, model.bytes, graphOptions, name);
    checkSignature(session, metadata, name);
    if (files === null) await checkGraphAgrees(ort, session, metadata, name);
    else await checkTopK(ort, session, metadata, name);
    return new this({ session, metadata, source: name, unknown, ort, encoder: await encoder });
  }

  /**
   * The ONNX Runtime module of this entry point, when `options.ort` is not given. The runtime-neutral
   * entry (`s4rec/core`) has none; `s4rec/node`, `s4rec/web` and `s4rec/react-native` import theirs.
   *
   * @returns {Promise<Runtime>}
   */
  static async runtime() {
    throw new S4RecError(
      "no ONNX Runtime given: pass it as Recommender.load(source, { ort }) (e.g. import * as ort from " +
        '"onnxruntime-web"), or import Recommender from "s4rec/web", "s4rec/node" or "s4rec/react-native".',
    );
  }

  /**
   * Where a string or URL points: the folder to read from and the model file in it (null: an artifact
   * directory). Here every string is a URL (relative ones are resolved against the page); the Node entry
   * also reads file paths.
   *
   * @param {string | URL} location
   * @param {typeof fetch | undefined} fetchImpl
   * @returns {Promise<{ folder: import("./sources.js").Folder, file: string | null }>}
   */
  static async locate(location, fetchImpl) {
    if (!fetchImpl) {
      throw new S4RecError("no fetch() in this JavaScript environment: pass options.fetch, or the model's bytes.");
    }
    let url;
    try {
      url = new URL(location, /** @type {any} */ (globalThis).location?.href);
    } catch {
      throw new ArtifactError(
        `${location}: not a URL this environment can resolve. Pass an absolute URL (or, in Node, import ` +
          'from "s4rec/node" to read paths), or the model\'s bytes.',
      );
    }
    return locateUrl(url, fetchImpl);
  }

  /**
   * @param {unknown} source
   * @param {string} variant
   * @param {boolean} sidecar
   * @param {typeof fetch | undefined} fetchImpl
   * @returns {Promise<import("./sources.js").ModelFile>}
   */
  static async readSource(source, variant, sidecar, fetchImpl) {
    if (source instanceof ArrayBuffer) source = new Uint8Array(source);
    else if (ArrayBuffer.isView(source) && !(source instanceof Uint8Array)) {
      source = new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
    }
    if (source instanceof Uint8Array) {
      return { bytes: source, name: "<bytes>", expectedSha256: null, sidecar: null, folder: null, prepacking: true };
    }
    if (typeof source === "string" || source instanceof URL) {
      const { folder, file } = await this.locate(source, fetchImpl);
      return readModel(folder, file, variant, sidecar);
    }
    throw new TypeError(
      `source must be an artifact directory or .onnx file (a URL or, in Node, a path) or the model's bytes ` +
        `(a Uint8Array or ArrayBuffer), got ${describe(source)}.`,
    );
  }

  // ----------------------------------------------------------------------------------- recommendations

  /**
   * The `k` best next items for one history (the user's own item ids, oldest first), best first.
   *
   * Items of the history (all of it, also beyond max_len) are left out unless `excludeSeen` is false, and so
   * are the ids in `exclude`. The list is shorter than `k` only when the exclusions leave fewer items. An
   * empty history, or one without a known item, gets the most popular items (`fallback`, scores NaN).
   *
   * @param {ReadonlyArray<HistoryItem> | ArrayLike<number | bigint>} history
   * @param {RecommendOptions} [options]
   * @returns {Promise<Recommendations>}
   */
  async recommend(history, options) {
    const o = checkOptions(options, RECOMMEND_OPTIONS, "recommend()");
    const k = checkK(orDefault(o.k, DEFAULT_K), this.topK);
    const excludeSeen = checkBoolean(orDefault(o.excludeSeen, true), "excludeSeen");
    const policy = this.#policy(o.unknown);
    const skip = o.exclude === undefined ? [] : this.#vocabulary.exclusionIndices(o.exclude);
    const { indices, unknownItems } = this.#vocabulary.mapHistory(history, policy);
    if (!indices.length) return this.#popular(k, skip, unknownItems);
    const window = indices.slice(-this.maxLen);
    let banned = [0, ...skip]; // 0: the padding index excludes nothing (it is never returned anyway)
    if (excludeSeen) banned = indices.length <= this.maxLen && !skip.length ? window : [...indices, ...skip];
    const output = await this.session.run(
      {
        [INPUT]: this.#int64([window], window.length),
        [EXCLUDE]: this.#int64([banned], banned.length),
        [K_INPUT]: this.#k(k),
      },
      [TOP_SCORES, TOP_ITEMS],
    );
    return this.#ranked(output, 0, k, unknownItems);
  }

  /**
   * {@link Recommender.recommend} for many histories, in input order (`exclude` applies to all of them).
   *
   * Histories are sorted by length and run in batches of `batchSize` (default 256), each trimmed to its
   * longest history, so that short histories do not pay for padding to max_len.
   *
   * @param {Iterable<ReadonlyArray<HistoryItem> | ArrayLike<number | bigint>>} histories
   * @param {RecommendBatchOptions} [options]
   * @returns {Promise<Recommendations[]>}
   */
  async recommendBatch(histories, options) {
    const o = checkOptions(options, BATCH_OPTIONS, "recommendBatch()");
    const k = checkK(orDefault(o.k, DEFAULT_K), this.topK);
    const excludeSeen = checkBoolean(orDefault(o.excludeSeen, true), "excludeSeen");
    const batchSize = Math.min(checkPositiveInteger(orDefault(o.batchSize, 256), "batchSize"), this.maxUsersPerCall);
    const policy = this.#policy(o.unknown);
    const skip = o.exclude === undefined ? [] : this.#vocabulary.exclusionIndices(o.exclude);
    const rows = checkHistories(histories).map((history) => this.#vocabulary.mapHistory(history, policy));
    /** @type {Recommendations[]} */
    const results = new Array(rows.length);
    /** @type {number[]} */
    const order = []; // the histories with a known item, shortest window first (stable)
    rows.forEach((row, u) => {
      if (row.indices.length) order.push(u);
      else results[u] = this.#popular(k, skip, row.unknownItems);
    });
    const windowLength = (/** @type {number} */ u) => Math.min(rows[u].indices.length, this.maxLen);
    order.sort((a, b) => windowLength(a) - windowLength(b) || a - b);
    for (let start = 0; start < order.length; start += batchSize) {
      const chunk = order.slice(start, start + batchSize);
      const width = windowLength(chunk[chunk.length - 1]);
      const windows = chunk.map((u) => rows[u].indices.slice(-width));
      const longest = Math.max(...chunk.map((u) => rows[u].indices.length));
      let banned = windows; // the window's padding (0) excludes nothing
      let bannedWidth = width;
      if (!excludeSeen || longest > width || skip.length) {
        // Each whole history (all of it counts as seen), then the exclude ids: the graph takes a set per row.
        banned = chunk.map((u) => [...(excludeSeen ? rows[u].indices : []), ...skip]);
        bannedWidth = Math.max(1, (excludeSeen ? longest : 0) + skip.length);
      }
      const output = await this.session.run(
        {
          [INPUT]: this.#int64(windows, width),
          [EXCLUDE]: this.#int64(banned, bannedWidth),
          [K_INPUT]: this.#k(k),
        },
        [TOP_SCORES, TOP_ITEMS],
      );
      chunk.forEach((u, row) => (results[u] = this.#ranked(output, row, k, rows[u].unknownItems)));
    }
    return results;
  }

  // ------------------------------------------------------------------------------ embeddings and intents

  /**
   * The user vector z_u (the encoder output at the most recent item). An empty history gives the model's
   * no-history vector (the encoder run on one padding position).
   *
   * @param {ReadonlyArray<HistoryItem> | ArrayLike<number | bigint>} history
   * @param {{ unknown?: UnknownPolicy }} [options]
   * @returns {Promise<Float32Array>} embeddingDim values
   */
  async embed(history, options) {
    const o = checkOptions(options, ["unknown"], "embed()");
    const output = await this.#runWindow(history, this.#policy(o.unknown), USER_EMBEDDING);
    return Float32Array.from(/** @type {Float32Array} */ (output.data));
  }

  /**
   * The `top` most probable intents (S4Rec's clusters) of a history, most probable first.
   *
   * @param {ReadonlyArray<HistoryItem> | ArrayLike<number | bigint>} history
   * @param {{ top?: number, unknown?: UnknownPolicy }} [options] top: 1..num_intents (default 3)
   * @returns {Promise<Intent[]>}
   */
  async intents(history, options) {
    const o = checkOptions(options, ["top", "unknown"], "intents()");
    this.#requireIntents();
    const top = checkPositiveInteger(orDefault(o.top, 3), "top");
    const numIntents = this.metadata.numIntents;
    if (top > numIntents) {
      throw new RangeError(`top must be in 1..${numIntents} (the number of intents), got ${top}.`);
    }
    const output = await this.#runWindow(history, this.#policy(o.unknown), INTENT_PROBABILITIES);
    const probabilities = /** @type {Float32Array} */ (output.data);
    // Most probable first; ties keep the lower intent first (Python's stable argsort).
    const best = Array.from(probabilities.keys()).sort((a, b) => probabilities[b] - probabilities[a] || a - b);
    return best.slice(0, top).map((intent) => ({ intent, probability: probabilities[intent] }));
  }

  /**
   * The `k` items whose vectors are closest (dot product) to an intent's centroid, closest first.
   *
   * @param {number} intent 0..num_intents - 1
   * @param {number} [k] 1..top_k (default 10)
   * @returns {ItemId[]}
   */
  itemsForIntent(intent, k = DEFAULT_K) {
    this.#requireIntents();
    const numIntents = this.metadata.numIntents;
    const number = checkInteger(intent, "intent");
    if (number < 0 || number >= numIntents) {
      throw new RangeError(`intent must be in 0..${numIntents - 1}, got ${number}.`);
    }
    const count = checkK(k, this.topK);
    return this.metadata.intentTopItems[number].slice(0, count).map((i) => this.#vocabulary.id(i));
  }

  // ------------------------------------------------------------------------------------------- helpers

  /**
   * @param {UnknownPolicy | undefined} unknown
   * @returns {UnknownPolicy}
   */
  #policy(unknown) {
    return unknown === undefined ? this.unknown : checkPolicy(unknown);
  }

  /**
   * The popular-items fallback for a history without a known item (`exclude` still applies).
   *
   * @param {number} k
   * @param {number[]} skip
   * @param {ReadonlyArray<HistoryItem>} unknownItems
   * @returns {Recommendations}
   */
  #popular(k, skip, unknownItems) {
    return popularRecommendations(this.metadata.popularItems, this.#vocabulary, k, skip, unknownItems);
  }

  /**
   * Row `row` of a ranking output as {@link Recommendations}.
   *
   * @param {import("onnxruntime-common").InferenceSession.OnnxValueMapType} output
   * @param {number} row
   * @param {number} k
   * @param {ReadonlyArray<HistoryItem>} unknownItems
   * @returns {Recommendations}
   */
  #ranked(output, row, k, unknownItems) {
    const scores = /** @type {Float32Array} */ (output[TOP_SCORES].data);
    const items = /** @type {BigInt64Array} */ (output[TOP_ITEMS].data);
    return rankedRow(scores, items, row, k, this.#vocabulary, unknownItems);
  }

  /**
   * One output for a single history: from the encoder-only graph of a format 3 artifact, else from the full
   * graph ranking as little as it allows (k = 1, nothing excluded).
   *
   * @param {unknown} history
   * @param {UnknownPolicy} policy
   * @param {string} name the output
   * @returns {Promise<Tensor>}
   */
  async #runWindow(history, policy, name) {
    const { indices } = this.#vocabulary.mapHistory(history, policy);
    const window = indices.slice(-this.maxLen);
    const input = this.#int64([window], Math.max(1, window.length)); // an empty history: one padding position
    if (this.encoder !== null) return (await this.encoder.run({ [INPUT]: input }, [name]))[name];
    const feeds = { [INPUT]: input, [EXCLUDE]: this.#int64([[0]], 1), [K_INPUT]: this.#k(1) };
    return (await this.session.run(feeds, [name]))[name];
  }

  /**
   * An int64 tensor (rows, width) of item indices, each row right-aligned (left-padded with 0).
   *
   * @param {ReadonlyArray<ReadonlyArray<number>>} rows
   * @param {number} width at least the longest row
   * @returns {Tensor}
   */
  #int64(rows, width) {
    const data = new BigInt64Array(rows.length * width);
    rows.forEach((values, r) => {
      const start = (r + 1) * width - values.length;
      for (let j = 0; j < values.length; j++) data[start + j] = BigInt(values[j]);
    });
    return new this.#ort.Tensor("int64", data, [rows.length, width]);
  }

  /**
   * @param {number} k
   * @returns {Tensor} the scalar input k
   */
  #k(k) {
    return (this.#kTensors[k] ??= new this.#ort.Tensor("int64", BigInt64Array.of(BigInt(k)), []));
  }

  #requireIntents() {
    if (!this.metadata.numIntents) {
      throw new S4RecError(
        `${this.source}: this model has no intents (it was exported from a checkpoint without intent ` +
          "centroids). Export an S4Rec checkpoint trained with intents to use intents().",
      );
    }
  }
}
