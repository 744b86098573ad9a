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

import { ArtifactError, ArtifactVersionError, S4RecError, UnknownItemError } from "./errors.js";
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
  artifactVersion,
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
import { checkEncoderAgrees, checkGraphAgrees, checkTopK } from "./graphcheck.js";
import { readExternalDataLocations, readMetadataProps } from "./protobuf.js";
import { checkFormat3Table, checkTableAgrees, format2Vectors, format3Vectors, ItemTable, itemIntents } from "./itemtable.js";
import { popularRecommendations, popularSelected, rankedList, rankedRow, scoreList } from "./results.js";
import {
  complement,
  difference,
  diversePositions,
  diverseTop,
  firstK,
  pick,
  rankedPrefixes,
  sortedUnique,
  top,
  useRows,
} from "./selection.js";
import { sha256Hex } from "./sha256.js";
import { checkRuntime, createSession, SESSION_DEFAULTS, withExternalData, withoutPrepacking } from "./session.js";
import { Sidecars } from "./sidecars.js";
import { locateUrl, readModel, verifyChecksum, MANIFEST_NAME } from "./sources.js";
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
 * @property {string} [variant] "fp32" (default), "int8", "fp16" or "mobile" (ORT format): which model file of an
 *   artifact directory
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

/**
 * @typedef {object} SelectOptions
 * @property {ReadonlyArray<HistoryItem> | Set<HistoryItem> | ArrayLike<number | bigint>} [candidates] rank only
 *   these ids (an allow-list; unknown ones are ignored and reported in `unknownCandidates`)
 * @property {number} [perIntent] at most this many items of one intent in the list
 */

/** @typedef {RecommendOptions & SelectOptions} RecommendSelectOptions */

/**
 * @typedef {object} BatchSelectOptions
 * @property {ReadonlyArray<ReadonlyArray<HistoryItem> | Set<HistoryItem> | ArrayLike<number | bigint> | null>}
 *   [candidatesPerHistory] one allow-list (or null: none of its own) per history; with `candidates` too, a
 *   history ranks the ids in both
 */

/** @typedef {RecommendOptions & SelectOptions & BatchSelectOptions & { batchSize?: number }} RecommendBatchOptions */

/**
 * @typedef {object} SimilarOptions
 * @property {number} [k] items to return, 1..top_k (default 10)
 * @property {Iterable<HistoryItem>} [exclude] ids to leave out besides the query items
 * @property {ReadonlyArray<HistoryItem> | Set<HistoryItem> | ArrayLike<number | bigint>} [candidates] rank only these
 * @property {UnknownPolicy} [unknown] this call's policy for unknown ids (default: the recommender's)
 */

/**
 * @typedef {object} Intent
 * @property {number} intent the intent's number, 0..num_intents - 1
 * @property {number} probability
 */

const LOAD_OPTIONS = ["ort", "variant", "unknown", "sessionOptions", "fetch", "sidecar", "verify", "retrieval"];
const RECOMMEND_OPTIONS = ["k", "excludeSeen", "exclude", "unknown"];
const BATCH_OPTIONS = [...RECOMMEND_OPTIONS, "batchSize", "candidates", "candidatesPerHistory", "perIntent"];
const SELECT_OPTIONS = [...RECOMMEND_OPTIONS, "candidates", "perIntent"];
const SIMILAR_OPTIONS = ["k", "exclude", "candidates", "unknown"];
// perIntent: the graph ranks PER_INTENT_FETCH * k + PER_INTENT_EXTRA items (at most top_k) to choose from, and
// the item table ranks deeper when they hold fewer than k that keep to perIntent: the Python SDK's numbers
// (30 items sufficed for 97.4% of Beauty's test users at per_intent=2, k = 10; docs/sdk.md).
const PER_INTENT_FETCH = 2;
const PER_INTENT_EXTRA = 10;
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
  /**
   * @type {InferenceSession | null} the encoder-only graph (history -> user_embedding [, intents]): format 3's,
   * and format 2's `encoder.onnx` for the fp32 and mobile variants of a directory that has one (its tensors are
   * `model.onnx`'s); null otherwise (the full graph then gives the user vectors, ranking one item)
   */
  encoder;
  /** @type {string} the model file's path or URL ("<bytes>" when loaded from bytes) */
  source;
  /** @type {UnknownPolicy} the default policy for unknown ids */
  unknown;
  /** @type {string} the artifact's short version id (12 hex digits; docs/ARTIFACT.md "Version") */
  version;
  /** @type {Runtime} */
  #ort;
  /** @type {ItemVocabulary} item ids <-> item indices */
  #vocabulary;
  /** @type {Tensor[]} the scalar input k, by value */
  #kTensors = [];
  /** @type {() => Promise<ItemTable>} the item vectors and intents, read once when first needed */
  #items;

  /**
   * Use {@link Recommender.load}; this constructor takes what load has checked.
   *
   * @param {{ session: InferenceSession, metadata: ArtifactMetadata, source: string, unknown: UnknownPolicy, ort: Runtime, encoder?: InferenceSession | null, items?: () => Promise<ItemTable>, version?: string }} parts
   */
  constructor({ session, metadata, source, unknown, ort, encoder = null, items, version = "" }) {
    this.session = session;
    this.encoder = encoder;
    this.metadata = metadata;
    this.source = source;
    this.unknown = checkPolicy(unknown);
    this.version = version || metadata.version;
    this.#ort = ort;
    this.#vocabulary = new ItemVocabulary(metadata.itemIds);
    const none = `${source}: this recommender has no item vectors. Load it with Recommender.load.`;
    this.#items = items ?? (() => Promise.reject(new ArtifactError(none)));
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
    // ORT format (the mobile variant) is a flatbuffer: its metadata are the fp32 model.onnx's (sources.js)
    const props = readMetadataProps(model.fp32?.bytes ?? model.bytes, model.fp32?.name ?? model.name);
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
        // present, of its size, dtype and shape (and hash where due), and a table of this model's shape
        const table = files.entries[ITEM_TABLE_SIDECAR];
        if (files.onDisk) await files.checkOnDisk(ITEM_TABLE_SIDECAR);
        else await files.array(ITEM_TABLE_SIDECAR);
        checkFormat3Table(table?.dtype, table?.shape, files.where(ITEM_TABLE_SIDECAR), metadata);
        const bytes = await files.bytes(ENCODER_SIDECAR);
        const where = files.where(ENCODER_SIDECAR);
        const encoderOptions = await withExternalData(ort, bytes, where, files, sessionOptions);
        const session = await createSession(ort, bytes, encoderOptions, where);
        checkEncoderSignature(session, metadata, where);
        // The probe on the encoder: the full graph would read the whole item table.
        await checkGraphAgrees(ort, session, metadata, where, true);
        return session;
      })();
      encoder.catch(() => {}); // reported below, after the model's own errors
    }
    // An ORT-format file (mobile) is a flatbuffer holding all of its tensors: no external data to look for.
    const graphOptions = model.fp32 === null ? await withExternalData(ort, model.bytes, name, files, modelOptions) : modelOptions;
    const session = await createSession(ort, model.bytes, graphOptions, name);
    checkSignature(session, metadata, name);
    if (files === null) {
      await checkGraphAgrees(ort, session, metadata, name);
      encoder = format2Encoder(ort, model, metadata, session, sessionOptions);
      encoder.catch(() => {}); // reported below
    } else await checkTopK(ort, session, metadata, name);
    /** @type {() => Promise<ItemTable>} */
    let items;
    if (files !== null) {
      // Read on the first call that needs it (candidates, score, similarItems, per-intent lists): recommend and
      // embed do not, and in Node ONNX Runtime reads the graphs' copy of the table from the file itself.
      /** @type {Promise<ItemTable> | null} */
      let table = null;
      const read = async () => {
        const vectors = format3Vectors(await files.array(ITEM_TABLE_SIDECAR), files.where(ITEM_TABLE_SIDECAR), metadata);
        return new ItemTable(vectors, metadata.embeddingDim, itemIntents(metadata));
      };
      items = () => (table ??= read().catch((e) => ((table = null), Promise.reject(e))));
    } else {
      items = await format2Items(model, metadata, ort, session);
    }
    const version = metadata.version || (await legacyVersion(model, metadata));
    return new this({ session, metadata, source: name, unknown, ort, encoder: await encoder, items, version });
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
      return {
        bytes: source,
        name: "<bytes>",
        expectedSha256: null,
        sidecar: null,
        folder: null,
        prepacking: true,
        fp32: null,
        entry: null,
        manifest: null,
      };
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
   * `candidates`: rank only these ids (an allow-list: an array, a Set or an integer typed array; duplicates
   * count once, unknown ids are ignored and listed in `unknownCandidates`, `unknown: "error"` raises, an empty
   * collection gives an empty list), exactly, with the exclusions still applied; the list is shorter than `k`
   * when fewer remain. `perIntent`: at most this many items of one intent in the list (each item's intent is
   * stored in the artifact), the best items that keep to it, in the model's order.
   *
   * @param {ReadonlyArray<HistoryItem> | ArrayLike<number | bigint>} history
   * @param {RecommendSelectOptions} [options]
   * @returns {Promise<Recommendations>}
   */
  async recommend(history, options) {
    const o = checkOptions(options, SELECT_OPTIONS, "recommend()");
    const k = checkK(orDefault(o.k, DEFAULT_K), this.topK);
    const excludeSeen = checkBoolean(orDefault(o.excludeSeen, true), "excludeSeen");
    const policy = this.#policy(o.unknown);
    const skip = o.exclude === undefined ? [] : this.#vocabulary.exclusionIndices(o.exclude);
    const { indices, unknownItems } = this.#vocabulary.mapHistory(history, policy);
    if (o.candidates !== undefined || o.perIntent !== undefined) {
      return this.#recommendSelected(indices, unknownItems, k, excludeSeen, skip, o.candidates, o.perIntent, policy);
    }
    if (!indices.length) return this.#popular(k, skip, unknownItems);
    const window = indices.slice(-this.maxLen);
    const banned = this.#bannedRow(indices, window, skip, excludeSeen);
    const output = await this.#rankWindow(window, banned, k, [TOP_SCORES, TOP_ITEMS]);
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
    if (o.candidates !== undefined || o.candidatesPerHistory !== undefined || o.perIntent !== undefined) {
      const list = /** @type {Array<ReadonlyArray<HistoryItem>>} */ (checkHistories(histories));
      return this.#recommendBatchSelected(list, o, k, excludeSeen);
    }
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

  /**
   * recommendBatch with allow-lists or perIntent: each history as {@link Recommender.recommend} ranks it (the
   * Python SDK's `recommend_batch(candidates=, candidates_per_history=, per_intent=)` gives the same lists).
   * Candidate ranking scores the rows of each history's own allow-list, so there is no batch to share.
   *
   * @param {Array<ReadonlyArray<HistoryItem>>} histories
   * @param {RecommendBatchOptions} o
   * @param {number} k
   * @param {boolean} excludeSeen
   * @returns {Promise<Recommendations[]>}
   */
  async #recommendBatchSelected(histories, o, k, excludeSeen) {
    const own = o.candidatesPerHistory;
    if (own !== undefined && (!Array.isArray(own) || typeof own === "string")) {
      throw new TypeError(
        `candidatesPerHistory must be an array with one collection of item ids (or null) per history, got ${typeof own}.`,
      );
    }
    if (own !== undefined && own.length !== histories.length) {
      throw new RangeError(
        `candidatesPerHistory has ${own.length} entries for ${histories.length} histories: give one per history (or null).`,
      );
    }
    const shared = o.candidates === undefined ? undefined : new Set(Array.from(o.candidates, (id) => String(id)));
    /** @type {Recommendations[]} */
    const results = [];
    for (const [u, history] of histories.entries()) {
      let candidates = o.candidates;
      const mine = own === undefined ? null : own[u];
      if (mine !== null && mine !== undefined) {
        const list = Array.from(/** @type {Iterable<any>} */ (mine));
        candidates = shared === undefined ? list : list.filter((id) => shared.has(String(id)));
      }
      results.push(
        await this.recommend(history, {
          k, excludeSeen, exclude: o.exclude, unknown: o.unknown, candidates, perIntent: o.perIntent,
        }),
      );
    }
    return results;
  }

  // ------------------------------------------------------------------- candidates, scores, similar items

  /**
   * The model's scores of `items` for `history`, in the order of `items` (the re-ranking call: sort by them,
   * or blend them with your own): a {@link Scores} array of numbers, the scores `recommend` gives those items.
   * Unknown ids score NaN and are listed in `unknownItems` (`unknown: "error"`: {@link UnknownItemError});
   * duplicates score alike. A history with no known item gives NaN everywhere (`fallback`). The history's own
   * items are not left out: every item given is scored.
   *
   * @param {ReadonlyArray<HistoryItem> | ArrayLike<number | bigint>} history
   * @param {ReadonlyArray<HistoryItem> | Set<HistoryItem> | ArrayLike<number | bigint>} items
   * @param {{ unknown?: UnknownPolicy }} [options]
   * @returns {Promise<import("./results.js").Scores>}
   */
  async score(history, items, options) {
    const o = checkOptions(options, ["unknown"], "score()");
    const policy = this.#policy(o.unknown);
    const { indices, unknownItems: unknownHistory } = this.#vocabulary.mapHistory(history, policy);
    const wanted = this.#vocabulary.itemIndices(items, policy, "items");
    if (!indices.length) return scoreList(wanted.indices.map(() => NaN), wanted.unknownItems, unknownHistory, true);
    const table = await this.#items();
    const user = /** @type {Float32Array} */ ((await this.#runIndices(indices, USER_EMBEDDING)).data);
    return scoreList(table.scores(user, wanted.indices), wanted.unknownItems, unknownHistory, false);
  }

  /**
   * The `k` items most similar to an item (or to several: the mean of their unit vectors), from the model's
   * item vectors: `{item, score}` best first, `score` the cosine of the item vectors (-1..1). The query items
   * and `exclude` are left out; `candidates` limits it as for `recommend`. A query with no known item is an
   * {@link UnknownItemError}; with others known, unknown ones are ignored and listed in `unknownItems` (or
   * raise under `unknown: "error"`).
   *
   * @param {HistoryItem | ReadonlyArray<HistoryItem> | Set<HistoryItem> | ArrayLike<number | bigint>} items
   * @param {SimilarOptions} [options]
   * @returns {Promise<Recommendations>}
   */
  async similarItems(items, options) {
    const o = checkOptions(options, SIMILAR_OPTIONS, "similarItems()");
    const k = checkK(orDefault(o.k, DEFAULT_K), this.topK);
    const policy = this.#policy(o.unknown);
    const single = typeof items === "number" || typeof items === "string" || typeof items === "bigint";
    const query = this.#vocabulary.itemSet(single ? [items] : items, policy, "items");
    if (!query.indices.length) {
      const shown = query.unknownItems.slice(0, 5).map((i) => (typeof i === "bigint" ? `${i}n` : JSON.stringify(i)));
      throw new UnknownItemError(
        `similarItems: no item of the query is known to the model (${shown.join(", ") || "none given"}). Pass ` +
          "item ids of the artifact's catalogue.",
        query.unknownItems,
      );
    }
    const skip = o.exclude === undefined ? [] : this.#vocabulary.exclusionIndices(o.exclude);
    const banned = sortedUnique([...skip, ...query.indices]);
    let allowed = null;
    let unknownCandidates = /** @type {HistoryItem[]} */ ([]);
    if (o.candidates !== undefined) {
      const found = this.#vocabulary.itemSet(o.candidates, policy, "candidates");
      allowed = difference(found.indices, banned);
      unknownCandidates = found.unknownItems;
    }
    const table = await this.#items();
    const norms = table.norms();
    // The direction the query items share: the mean of their unit vectors, made a unit vector again.
    const direction = new Float64Array(table.dim);
    for (const i of query.indices) {
      for (let j = 0; j < table.dim; j++) direction[j] += table.vectors[i * table.dim + j] / norms[i];
    }
    const length = Math.max(Math.hypot(...direction) / query.indices.length, 1e-12);
    const unit = Float32Array.from(direction, (v) => v / query.indices.length / length);
    // The cosine: the dot product with the unit vector over the item's norm (float32, as Python's).
    let scores;
    const pool = allowed ?? table.allItems();
    if (allowed === null) {
      scores = table.allScores(unit);
      for (let i = 0; i < scores.length; i++) scores[i] /= norms[i + 1];
      for (const i of banned) scores[i - 1] = -Infinity;
    } else {
      scores = table.scores(unit, allowed);
      for (let p = 0; p < scores.length; p++) scores[p] /= norms[allowed[p]];
    }
    return rankedList(top(scores, pool, k), this.#vocabulary, query.unknownItems, unknownCandidates);
  }

  /**
   * {@link Recommender.recommend} with `candidates` and/or `perIntent`, as the Python SDK ranks them: a few
   * candidates from their rows of the item table (the user vector times each row), many through the graph
   * with every other item excluded ({@link useRows}); `perIntent` alone through the graph ranking a few more
   * items than asked, deeper from the item table when those run short.
   *
   * @param {number[]} indices the history's item indices
   * @param {HistoryItem[]} unknownItems
   * @param {number} k
   * @param {boolean} excludeSeen
   * @param {number[]} skip the exclude ids' indices
   * @param {unknown} candidates
   * @param {unknown} perIntentOption
   * @param {UnknownPolicy} policy
   * @returns {Promise<Recommendations>}
   */
  async #recommendSelected(indices, unknownItems, k, excludeSeen, skip, candidates, perIntentOption, policy) {
    const perIntent = await this.#checkPerIntent(perIntentOption);
    if (candidates === undefined && indices.length) {
      return this.#recommendDiverse(indices, unknownItems, k, excludeSeen, skip, /** @type {number} */ (perIntent));
    }
    let allowed = null;
    /** @type {HistoryItem[]} */
    let unknownCandidates = [];
    if (candidates !== undefined) {
      const found = this.#vocabulary.itemSet(candidates, policy, "candidates");
      allowed = found.indices;
      unknownCandidates = found.unknownItems;
    }
    const banned = sortedUnique(excludeSeen ? [...indices, ...skip] : skip);
    if (allowed !== null) allowed = difference(allowed, banned);
    if (!indices.length) {
      const intents = /** @type {Int32Array} */ ((await this.#items()).intents);
      const diverse = perIntent === null ? null : { perIntent, intents };
      const popular = this.metadata.popularItems;
      return popularSelected(popular, this.#vocabulary, k, allowed, banned, diverse, unknownItems, unknownCandidates);
    }
    if (allowed !== null && !allowed.length) {
      return rankedList(top([], [], k), this.#vocabulary, unknownItems, unknownCandidates);
    }
    const ranked = await this.#select(indices, k, allowed, banned, perIntent);
    return rankedList(ranked, this.#vocabulary, unknownItems, unknownCandidates);
  }

  /**
   * `perIntent` alone: the graph ranks {@link Recommender.#fetch} items as `recommend` ranks k (seen and
   * excluded items removed inside it), the list keeps at most `perIntent` of one intent; when those run short
   * of k, the item table ranks the rest.
   *
   * @param {number[]} indices
   * @param {HistoryItem[]} unknownItems
   * @param {number} k
   * @param {boolean} excludeSeen
   * @param {number[]} skip
   * @param {number} perIntent
   * @returns {Promise<Recommendations>}
   */
  async #recommendDiverse(indices, unknownItems, k, excludeSeen, skip, perIntent) {
    const table = await this.#items();
    const intents = /** @type {Int32Array} */ (table.intents);
    const fetch = this.#fetch(k);
    const window = indices.slice(-this.maxLen);
    const banned = this.#bannedRow(indices, window, skip, excludeSeen);
    const output = await this.#rankWindow(window, banned, fetch, [USER_EMBEDDING, TOP_SCORES, TOP_ITEMS]);
    const scores = /** @type {Float32Array} */ (output[TOP_SCORES].data);
    const items = Int32Array.from(/** @type {BigInt64Array} */ (output[TOP_ITEMS].data), Number);
    const kept = diversePositions(Array.from(items, (i) => intents[i]), perIntent, k);
    if (kept.length < k && scores[fetch - 1] !== -Infinity) {
      // short of k, and the graph had more to rank: rank deeper from the item table
      const user = /** @type {Float32Array} */ (output[USER_EMBEDDING].data);
      const excluded = sortedUnique(excludeSeen ? [...indices, ...skip] : skip);
      const ranked = this.#rankVector(table, user, k, null, excluded, perIntent, 4 * fetch);
      return rankedList(ranked, this.#vocabulary, unknownItems, []);
    }
    const ranked = pick({ scores, items }, kept.filter((p) => scores[p] !== -Infinity));
    return rankedList(ranked, this.#vocabulary, unknownItems, []);
  }

  /**
   * The best `k` items for a history among `allowed` (null: all) less `banned`: from the item table's rows
   * (few candidates), or the graph with everything else excluded (many), as the Python SDK's `_select`.
   *
   * @param {number[]} indices the history's item indices (at least one)
   * @param {number} k
   * @param {Int32Array | null} allowed sorted, without the banned items
   * @param {Int32Array} banned sorted
   * @param {number | null} perIntent
   * @returns {Promise<import("./selection.js").Ranked>}
   */
  async #select(indices, k, allowed, banned, perIntent) {
    const n = this.metadata.numItems;
    const table = await this.#items();
    if (allowed !== null && useRows(allowed.length, n)) {
      const user = /** @type {Float32Array} */ ((await this.#runIndices(indices, USER_EMBEDDING)).data);
      return this.#rankVector(table, user, k, allowed, banned, perIntent);
    }
    const excluded = allowed === null ? banned : complement(allowed, n);
    const fetch = perIntent === null ? k : this.#fetch(k);
    const exclude = excluded.length ? Array.from(excluded) : [0];
    const window = indices.slice(-this.maxLen);
    const output = await this.#rankWindow(window, exclude, fetch, [USER_EMBEDDING, TOP_SCORES, TOP_ITEMS]);
    const all = /** @type {Float32Array} */ (output[TOP_SCORES].data);
    const kept = all.findIndex((score) => score === -Infinity);
    const count = kept < 0 ? all.length : kept;
    const ranked = {
      scores: all.slice(0, count),
      items: Int32Array.from(/** @type {BigInt64Array} */ (output[TOP_ITEMS].data).subarray(0, count), Number),
    };
    if (perIntent === null) return ranked;
    const intents = /** @type {Int32Array} */ (table.intents);
    const best = diverseTop([ranked], intents, perIntent, k);
    if (best.complete || count < fetch) return { scores: best.scores, items: best.items };
    const user = /** @type {Float32Array} */ (output[USER_EMBEDDING].data);
    const pool = allowed ?? difference(table.allItems(), banned);
    return this.#rankVector(table, user, k, pool, new Int32Array(0), perIntent, 4 * fetch);
  }

  /**
   * The best `k` items for a user vector from the item table: the rows of `allowed`, or every row but
   * `banned` (null `allowed`), at most `perIntent` of one intent when given.
   *
   * @param {ItemTable} table
   * @param {ArrayLike<number>} vector
   * @param {number} k
   * @param {Int32Array | null} allowed sorted, without the banned items
   * @param {Int32Array} banned sorted
   * @param {number | null} perIntent
   * @param {number} [first] the first prefix ranked for perIntent (default: {@link Recommender.#fetch})
   * @returns {import("./selection.js").Ranked}
   */
  #rankVector(table, vector, k, allowed, banned, perIntent, first) {
    let items = allowed;
    let scores;
    if (items === null) {
      scores = table.allScores(vector);
      for (const i of banned) scores[i - 1] = -Infinity;
      items = table.allItems();
    } else {
      scores = table.scores(vector, items);
    }
    if (perIntent === null) return top(scores, items, k);
    const prefixes = rankedPrefixes(scores, items, first ?? this.#fetch(k));
    return firstK(prefixes, k, table.intents, perIntent);
  }

  /**
   * @param {unknown} perIntent
   * @returns {Promise<number | null>}
   */
  async #checkPerIntent(perIntent) {
    if (perIntent === undefined) return null;
    const value = checkPositiveInteger(perIntent, "perIntent");
    if (!this.metadata.numIntents) {
      throw new S4RecError(
        `${this.source}: this model has no intents (it was exported from a checkpoint without intent ` +
          "centroids), so perIntent cannot apply. Export an S4Rec checkpoint trained with intents, or drop perIntent.",
      );
    }
    if ((await this.#items()).intents === null) {
      throw new ArtifactVersionError(
        `${this.source}: this artifact was exported before each item's intent was stored in it, which ` +
          "perIntent needs. Re-export it from its checkpoint with a current s4rec-export (the checkpoint needs " +
          "no change).",
      );
    }
    return value;
  }

  /**
   * Items ranked first for an intent-diverse list of `k`.
   *
   * @param {number} k
   */
  #fetch(k) {
    return Math.min(this.topK, PER_INTENT_FETCH * k + PER_INTENT_EXTRA);
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
   * One run of the full graph ranking `k` items for one window, without the items of `banned`.
   *
   * @param {number[]} window the history's most recent item indices
   * @param {ArrayLike<number>} banned item indices for the graph's `exclude` input (0 excludes nothing)
   * @param {number} k
   * @param {string[]} outputs
   */
  #rankWindow(window, banned, k, outputs) {
    const feeds = {
      [INPUT]: this.#int64([window], window.length),
      [EXCLUDE]: this.#int64([Array.from(banned)], banned.length),
      [K_INPUT]: this.#k(k),
    };
    return this.session.run(feeds, outputs);
  }

  /**
   * The graph's `exclude` row for one history: the window itself when it is the whole history and nothing
   * else is excluded (the common case), else the whole history (all of it counts as seen) and the `exclude`
   * ids; without `excludeSeen` those ids alone (0, the padding index, when there are none).
   *
   * @param {number[]} indices the whole history's item indices
   * @param {number[]} window its most recent max_len
   * @param {number[]} skip
   * @param {boolean} excludeSeen
   * @returns {number[]}
   */
  #bannedRow(indices, window, skip, excludeSeen) {
    if (!excludeSeen) return [0, ...skip]; // 0: the padding index excludes nothing (it is never returned anyway)
    return indices.length <= this.maxLen && !skip.length ? window : [...indices, ...skip];
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
    return this.#runIndices(this.#vocabulary.mapHistory(history, policy).indices, name);
  }

  /**
   * {@link Recommender.#runWindow} of a mapped history.
   *
   * @param {number[]} indices the history's item indices
   * @param {string} name the output
   * @returns {Promise<Tensor>}
   */
  async #runIndices(indices, name) {
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
 * The version of an artifact exported before versions were written: {@link artifactVersion} of its checkpoint's
 * SHA-256 and its fp32 model file's (the manifest's entry when the loaded file is listed in its directory's
 * manifest, so that every variant gets the same version; else the loaded file's own), as the Python SDK's.
 *
 * @param {import("./sources.js").ModelFile} model
 * @param {ArtifactMetadata} metadata
 * @returns {Promise<string>}
 */
async function legacyVersion(model, metadata) {
  const listed = model.manifest?.variants?.fp32?.sha256;
  const exported = typeof listed === "string" ? listed : await sha256Hex(model.bytes);
  return artifactVersion(metadata.sourceCheckpointSha256, exported);
}

/**
 * The item table of a format 2 int8 or fp16 variant: from the fp32 `model.onnx` of its artifact directory,
 * checked against the manifest (the variant's own table is quantized or converted).
 *
 * @param {import("./sources.js").ModelFile} model
 * @param {ArtifactMetadata} metadata
 * @param {Int32Array | null} intents
 * @returns {Promise<ItemTable>}
 */
async function readFp32Table(model, metadata, intents) {
  const entry = model.manifest?.variants?.fp32;
  if (model.folder === null || typeof entry?.file !== "string") {
    throw new ArtifactError(
      `${model.name}: item vectors need the float32 table of the artifact's model.onnx, and this ` +
        `${metadata.variant} model is not listed in an artifact directory's ${MANIFEST_NAME} with one. Load the ` +
        "artifact directory, or the fp32 model.onnx file.",
    );
  }
  const place = model.folder.name.endsWith("/") ? model.folder.name : `${model.folder.name}/`;
  const name = place + entry.file;
  const bytes = await model.folder.read(entry.file);
  if (bytes === null) {
    throw new ArtifactError(`${name}: missing; the item vectors are read from it. Copy the whole artifact directory.`);
  }
  await verifyChecksum({ bytes, name, expectedSha256: typeof entry.sha256 === "string" ? entry.sha256 : null });
  return new ItemTable(format2Vectors(bytes, name, metadata), metadata.embeddingDim, intents);
}

/**
 * Format 2's item vectors (`js/src/itemtable.js`): from the loaded fp32 file itself, read and checked
 * against its graph now; else (the int8 and fp16 variants) from the directory's fp32 `model.onnx`, read and
 * checked against the manifest when first needed. A table that cannot be read is an error of the calls that
 * need it (candidates, `score`, `similarItems`, `perIntent`), not of the load, as in the Python SDK.
 *
 * @param {import("./sources.js").ModelFile} model
 * @param {ArtifactMetadata} metadata
 * @param {Runtime} ort
 * @param {InferenceSession} session
 * @returns {Promise<() => Promise<ItemTable>>}
 */
async function format2Items(model, metadata, ort, session) {
  const intents = itemIntents(metadata);
  /** @type {Promise<ItemTable> | null} */
  let table = null;
  const own = model.fp32 ?? (metadata.variant === "fp32" && !model.name.endsWith(".ort") ? model : null);
  if (own !== null) {
    try {
      const vectors = format2Vectors(own.bytes, own.name, metadata);
      table = Promise.resolve(new ItemTable(vectors, metadata.embeddingDim, intents));
      if (own === model) await checkTableAgrees(await table, ort, session, model.name);
    } catch (e) {
      if (!(e instanceof S4RecError)) throw e;
      table = Promise.reject(e);
      table.catch(() => {}); // raised by the calls that need the table
    }
    const found = table;
    return () => found;
  }
  return () => (table ??= readFp32Table(model, metadata, intents));
}

/**
 * Format 2's encoder-only graph (`encoder.onnx` in the manifest's `files`), whose tensors are ONNX external data
 * in the fp32 `model.onnx` itself: given to ONNX Runtime as that file's bytes. For the fp32 weights only (the
 * fp32 and mobile variants: int8 and fp16 compute other user vectors), checked against the full graph as the
 * Python SDK checks it; null for artifacts exported before it, lone files and the other variants. It gives the
 * user vector of candidates, `score`, `embed` and `intents` without scoring every item (Beauty: a quarter of
 * the full graph's time in the Python SDK).
 *
 * @param {Runtime} ort
 * @param {import("./sources.js").ModelFile} model
 * @param {ArtifactMetadata} metadata
 * @param {InferenceSession} session the full graph
 * @param {SessionOptions} options
 * @returns {Promise<InferenceSession | null>}
 */
async function format2Encoder(ort, model, metadata, session, options) {
  const entry = model.manifest?.files?.[ENCODER_SIDECAR];
  const fp32File = model.manifest?.variants?.fp32?.file;
  if (!isObject(entry) || typeof fp32File !== "string" || metadata.variant !== "fp32" || model.folder === null) {
    return null;
  }
  const files = new Sidecars(model.folder, { [ENCODER_SIDECAR]: entry }, model.name, "fast");
  const bytes = await files.bytes(ENCODER_SIDECAR); // of the manifest's size and SHA-256
  const where = files.where(ENCODER_SIDECAR);
  const tensors = model.fp32?.bytes ?? model.bytes; // the fp32 model.onnx, checked against the manifest
  const locations = readExternalDataLocations(bytes, where);
  if (!locations.length || locations.some((location) => location !== fp32File)) {
    throw new ArtifactError(
      `${where}: the encoder graph reads its tensors from ${JSON.stringify(locations)}, not from ` +
        `${JSON.stringify(fp32File)}. Re-export the artifact.`,
    );
  }
  const encoderOptions = { ...options, externalData: [{ path: fp32File, data: tensors }] };
  const encoder = await createSession(ort, bytes, encoderOptions, where);
  checkEncoderSignature(encoder, metadata, where);
  await checkEncoderAgrees(ort, session, encoder, metadata, where);
  return encoder;
}
