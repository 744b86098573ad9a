/**
 * The {@link Recommender}: next-item recommendations, user embeddings and intents from an s4rec artifact,
 * on whichever ONNX Runtime the app brings (onnxruntime-web, -node or -react-native).
 *
 * It behaves as the Python SDK's `s4rec.Recommender` (docs/sdk.md): histories are the user's own item ids,
 * oldest first; they are mapped to item indices, cut to the most recent `max_len` and left-padded. The graph
 * ranks without the items it is told to exclude (input `exclude`: the whole history when seen items are left
 * out, not only the window) and returns exactly the `k` asked for.
 *
 * A format 3 artifact (large catalogue) keeps its lists and item tables in sidecar files: they are read and
 * checked on load (`js/src/sidecars.js`), the tables given to ONNX Runtime as the graphs' external data, and
 * `embed` / `intents` run its encoder-only graph (no score product over every item). Its approximate-retrieval
 * index (hnswlib's format) is read by the Python SDK only: here every item is scored exactly.
 */

import { ArtifactError, ArtifactVersionError, S4RecError, UnknownItemError } from "./errors.js";
import {
  checkBoolean,
  checkExclude,
  checkHistory,
  checkInteger,
  checkK,
  checkOptions,
  checkPolicy,
  checkPositiveInteger,
  describe,
} from "./input.js";
import {
  ENCODER_SIDECAR,
  EXCLUDE,
  INPUT,
  INTENT_PROBABILITIES,
  isObject,
  ITEM_TABLE_SIDECAR,
  K_INPUT,
  parseMetadata,
  REQUIRED_OUTPUTS,
  TOP_ITEMS,
  TOP_SCORES,
  USER_EMBEDDING,
} from "./metadata.js";
import { checkGraphAgrees, checkTopK } from "./graphcheck.js";
import { readExternalDataLocations, readMetadataProps } from "./protobuf.js";
import { Sidecars, VERIFY_MODES } from "./sidecars.js";
import { locateUrl, readModel, verifyChecksum } from "./sources.js";

/** @typedef {import("./input.js").ItemId} ItemId */
/** @typedef {import("./input.js").HistoryItem} HistoryItem */
/** @typedef {import("./input.js").UnknownPolicy} UnknownPolicy */
/** @typedef {import("./metadata.js").ArtifactMetadata} ArtifactMetadata */
/** @typedef {import("onnxruntime-common").InferenceSession} InferenceSession */
/** @typedef {import("onnxruntime-common").InferenceSession.SessionOptions} SessionOptions */
/** @typedef {import("onnxruntime-common").Tensor} Tensor */

/**
 * The parts of ONNX Runtime this SDK uses: what `import * as ort from "onnxruntime-web"` (or -node, or
 * -react-native) gives.
 *
 * @typedef {object} Runtime
 * @property {typeof import("onnxruntime-common").Tensor} Tensor
 * @property {typeof import("onnxruntime-common").InferenceSession} InferenceSession
 * @property {import("onnxruntime-common").Env} [env]
 */

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
 *   Python SDK's (hnswlib) and a RangeError here
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
 * @typedef {object} Recommendation
 * @property {ItemId} item the item's id, as in the training data
 * @property {number} score the model's score (dot product of user and item vectors); NaN in a fallback list
 */

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

/** @type {SessionOptions} */
const SESSION_DEFAULTS = {
  executionMode: "sequential",
  intraOpNumThreads: 1, // fastest for a single request on small machines (docs/sdk.md); batches run in turn
  interOpNumThreads: 1,
  graphOptimizationLevel: "all",
  logSeverityLevel: 3, // errors only
  // ONNX Runtime's SkipLayerNormalization fusion was ~7x slower than the LayerNormalization it replaces on
  // 64-wide rows (measured for the Python SDK, which leaves it out too): same graph, same results.
  extra: { optimization: { disable_specified_optimizers: "SkipLayerNormFusion" } },
};

/**
 * Ranked items, best first: an array of `{item, score}` with a report of how the input was handled.
 * (Array methods such as `map` and `slice` return plain arrays; `JSON.stringify` writes the items only.)
 *
 * @extends {Array<Recommendation>}
 */
export class Recommendations extends Array {
  static get [Symbol.species]() {
    return Array;
  }

  /** @type {ReadonlyArray<HistoryItem>} the history's ids the model does not know, which were ignored */
  unknownItems = [];

  /** @type {boolean} true when the history had no known item: the most popular items, scores NaN */
  fallback = false;

  /** @returns {ItemId[]} the item ids, best first */
  itemIds() {
    return this.map((r) => r.item);
  }
}

/**
 * An option's value, or its default when it is not given (null is a value: a TypeError where not allowed).
 *
 * @template T, D
 * @param {T | undefined} value
 * @param {D} fallback
 * @returns {T | D}
 */
function orDefault(value, fallback) {
  return value === undefined ? fallback : value;
}

/**
 * @param {Recommendation[]} entries
 * @param {ReadonlyArray<HistoryItem>} unknownItems
 * @param {boolean} fallback
 * @returns {Recommendations}
 */
function recommendations(entries, unknownItems, fallback = false) {
  const result = new Recommendations();
  result.push(...entries);
  result.unknownItems = unknownItems;
  result.fallback = fallback;
  return result;
}

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
  /** @type {Map<HistoryItem, number>} item id -> item index (1..N) */
  #indexOf;
  /** @type {ReadonlyArray<ItemId | null>} item index -> item id; index 0 is the padding */
  #ids;
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
    this.#indexOf = new Map(metadata.itemIds.map((id, i) => [id, i + 1]));
    this.#ids = [null, ...metadata.itemIds];
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
    const skip = o.exclude === undefined ? [] : this.#excludeIndices(o.exclude);
    const { indices, unknownItems } = this.#indices(history, policy);
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
    const skip = o.exclude === undefined ? [] : this.#excludeIndices(o.exclude);
    const rows = checkHistories(histories).map((history) => this.#indices(history, policy));
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
    return this.metadata.intentTopItems[number].slice(0, count).map((i) => /** @type {ItemId} */ (this.#ids[i]));
  }

  // ------------------------------------------------------------------------------------------- helpers

  /**
   * Map a history to item indices; unknown ids are dropped (and returned) or raise, per `policy`.
   *
   * @param {unknown} history
   * @param {UnknownPolicy} policy
   * @returns {{ indices: number[], unknownItems: HistoryItem[] }}
   */
  #indices(history, policy) {
    const indices = [];
    const unknownItems = [];
    for (const item of checkHistory(history)) {
      const index = this.#indexOf.get(item);
      if (index === undefined) unknownItems.push(item);
      else indices.push(index);
    }
    if (unknownItems.length && policy === "error") throw unknownError(unknownItems);
    return { indices, unknownItems };
  }

  /**
   * @param {unknown} exclude
   * @returns {number[]} the item indices of the known ids
   */
  #excludeIndices(exclude) {
    const found = checkExclude(exclude).map((item) => this.#indexOf.get(item));
    return [...new Set(/** @type {number[]} */ (found.filter((i) => i !== undefined)))];
  }

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
    const banned = new Set(skip);
    const chosen = this.metadata.popularItems.filter((i) => !banned.has(i)).slice(0, k);
    const entries = chosen.map((i) => ({ item: /** @type {ItemId} */ (this.#ids[i]), score: NaN }));
    return recommendations(entries, unknownItems, true);
  }

  /**
   * Row `row` of a ranking output, without the -inf tail of a row that has fewer than k items left.
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
    const entries = [];
    for (let j = row * k; j < (row + 1) * k && scores[j] !== -Infinity; j++) {
      entries.push({ item: /** @type {ItemId} */ (this.#ids[Number(items[j])]), score: scores[j] });
    }
    return recommendations(entries, unknownItems);
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
    const { indices } = this.#indices(history, policy);
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

/**
 * @param {unknown} ort
 * @returns {Runtime}
 */
function checkRuntime(ort) {
  const module = /** @type {any} */ (ort);
  if (typeof module?.InferenceSession?.create !== "function" || typeof module?.Tensor !== "function") {
    throw new TypeError(
      `ort must be an ONNX Runtime module (import * as ort from "onnxruntime-web", or -node, or ` +
        `-react-native), got ${describe(ort)}.`,
    );
  }
  return module;
}

/**
 * @param {unknown} verify
 * @returns {import("./sidecars.js").VerifyMode}
 */
function checkVerify(verify) {
  if (!VERIFY_MODES.includes(/** @type {any} */ (verify))) {
    throw new RangeError(`verify must be one of ${JSON.stringify(VERIFY_MODES)}, got ${describe(verify)}.`);
  }
  return /** @type {import("./sidecars.js").VerifyMode} */ (verify);
}

/**
 * Exact scoring only: the approximate index of a format 3 artifact is in hnswlib's own file format, which
 * only the Python SDK reads.
 *
 * @param {unknown} retrieval
 */
function checkRetrieval(retrieval) {
  if (retrieval === "ann") {
    throw new RangeError(
      'retrieval "ann" (approximate retrieval from an artifact\'s hnswlib index, items.hnsw) is available in ' +
        "the Python SDK only (Recommender.load(path, retrieval=\"ann\")): the JavaScript SDK scores every " +
        'item exactly. Leave retrieval out, or pass "exact".',
    );
  }
  if (retrieval !== "exact") {
    throw new RangeError(`retrieval must be "exact" (the JavaScript SDK scores every item), got ${describe(retrieval)}.`);
  }
}

/**
 * The session options with ONNX Runtime's pre-packing of constant weights off (`session.disable_prepacking`),
 * as the manifest asks for large float32 tables: pre-packing would copy the table, for no speed at that size.
 *
 * @param {SessionOptions} options
 * @returns {SessionOptions}
 */
function withoutPrepacking(options) {
  const extra = /** @type {Record<string, any>} */ (options.extra ?? {});
  return { ...options, extra: { ...extra, session: { ...extra.session, disable_prepacking: "1" } } };
}

/**
 * The files a graph keeps its initializers in (format 3's item tables), as ONNX Runtime's `externalData`
 * session option: each one a sidecar of the metadata, read and checked (`js/src/sidecars.js`). ONNX Runtime
 * copies the data into its session, so the bytes are not kept here.
 *
 * @param {Uint8Array} bytes the graph
 * @param {string} name the graph's path or URL, for messages
 * @param {Sidecars | null} files the model's sidecar files (null: format 2, or bytes)
 * @returns {Promise<Array<{ path: string, data: Uint8Array }>>}
 */
async function externalData(bytes, name, files) {
  const locations = readExternalDataLocations(bytes, name);
  if (!locations.length) return [];
  if (files === null) {
    throw new ArtifactError(
      `${name}: the graph keeps data in the files ${JSON.stringify(locations)}, which are not sidecars of a ` +
        "format 3 artifact. Re-export the artifact with s4rec-export.",
    );
  }
  return Promise.all(
    locations.map(async (location) => {
      const sidecar = files.nameOf(location);
      if (sidecar === undefined) {
        throw new ArtifactError(
          `${name}: the graph reads external data from ${JSON.stringify(location)}, which the metadata's ` +
            "sidecars table does not list. Re-export the artifact.",
        );
      }
      if (files.entries[sidecar].dtype !== undefined) await files.array(sidecar); // its .npy header, as recorded
      return { path: location, data: await files.bytes(sidecar) };
    }),
  );
}

/**
 * @param {unknown} histories
 * @returns {unknown[]}
 */
function checkHistories(histories) {
  const iterable = histories != null && typeof (/** @type {any} */ (histories)[Symbol.iterator]) === "function";
  if (typeof histories === "string" || !iterable) {
    throw new TypeError(`histories must be an array of histories, got ${describe(histories)}.`);
  }
  return Array.from(/** @type {Iterable<unknown>} */ (histories));
}

/**
 * @param {HistoryItem[]} unknownItems
 * @returns {UnknownItemError}
 */
function unknownError(unknownItems) {
  const shown = unknownItems.slice(0, 5).map((i) => (typeof i === "bigint" ? `${i}n` : JSON.stringify(i)));
  return new UnknownItemError(
    `${unknownItems.length} item id(s) unknown to the model: ${shown.join(", ")}` +
      `${unknownItems.length > 5 ? ", ..." : ""}. Remove them, or use unknown: "ignore" to drop them.`,
    unknownItems,
  );
}

/**
 * The one place where the ONNX Runtime session is built.
 *
 * @param {Runtime} ort
 * @param {Uint8Array} bytes
 * @param {SessionOptions} options
 * @param {string} name
 * @returns {Promise<InferenceSession>}
 */
async function createSession(ort, bytes, options, name) {
  try {
    return await ort.InferenceSession.create(bytes, options);
  } catch (e) {
    const first = (e instanceof Error ? e.message : String(e)).trim().split("\n")[0];
    // ONNX Runtime prefixes its reason with the C++ source position and function: keep the reason.
    const text = /(Unsupported .*|Opset .*|[^:]*not supported.*)/.exec(first)?.[1] ?? first;
    const versions = JSON.stringify(ort.env?.versions ?? {});
    // A runtime whose binding ignores the externalData option looks for the tables on its own disk.
    if (options.externalData?.length && /external data/i.test(first)) {
      throw new ArtifactVersionError(
        `${name}: this ONNX Runtime (${versions}) did not take the model's external data (the item tables, ` +
          `given as the externalData session option): ${text}. Upgrade it (npm install onnxruntime-node@latest, ` +
          "or -web, or -react-native).",
      );
    }
    if (/ir version|opset|domain_version|not supported|unsupported/i.test(text)) {
      throw new ArtifactVersionError(
        `${name}: this ONNX Runtime (${versions}) cannot run the model (${text}). Upgrade it (npm install ` +
          "onnxruntime-web@latest, or -node, or -react-native), or re-export with an older opset.",
      );
    }
    throw new ArtifactError(`${name}: ONNX Runtime cannot load the model (${text}). Re-export it.`);
  }
}

/**
 * A format 3 encoder-only graph must take `history` alone and give `user_embedding` (and the intents).
 *
 * @param {InferenceSession} session
 * @param {ArtifactMetadata} metadata
 * @param {string} name
 */
function checkEncoderSignature(session, metadata, name) {
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
 * The graph must have the public inputs and outputs the metadata promises (docs/ARTIFACT.md).
 *
 * @param {InferenceSession} session
 * @param {ArtifactMetadata} metadata
 * @param {string} name
 */
function checkSignature(session, metadata, name) {
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
