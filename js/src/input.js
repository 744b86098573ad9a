/**
 * Checks of what callers pass in: histories, item ids, k, policies, load options and option objects.
 *
 * The rules are the Python SDK's (docs/sdk.md, "Bad input"), in JavaScript's terms: a wrong type is a
 * `TypeError`, a value outside the allowed range a `RangeError` (Python's `ValueError`). Messages name the
 * value and say what is allowed.
 */

import { VERIFY_MODES } from "./sidecars.js";

/** @typedef {number | string} ItemId an item id as in the training data: an integer (a JS number) or a string */
/** @typedef {number | string | bigint} HistoryItem what a history may hold: bigints are accepted as integer ids */

export const UNKNOWN_POLICIES = /** @type {const} */ (["ignore", "error"]);
/** @typedef {typeof UNKNOWN_POLICIES[number]} UnknownPolicy */

const INTEGER_ARRAYS = [
  Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, BigInt64Array,
  BigUint64Array,
];

/**
 * A short description of a value for messages: its type and (the start of) its JSON form, e.g. `string "1 2"`.
 *
 * @param {unknown} value
 * @returns {string}
 */
export function describe(value) {
  if (value === null || value === undefined) return String(value);
  if (typeof value === "number" || typeof value === "boolean") return `${typeof value} ${value}`;
  if (typeof value === "bigint") return `bigint ${value}n`;
  if (typeof value === "function") return `function ${value.name || "(anonymous)"}`;
  const type = Array.isArray(value) ? "array" : typeof value === "object" ? value.constructor?.name || "object" : typeof value;
  let text;
  try {
    text = JSON.stringify(value instanceof Set || value instanceof Map ? [...value] : value);
  } catch {
    text = undefined; // a cycle, or a bigint inside
  }
  text ??= String(value);
  if (text.length > 80) text = `${text.slice(0, 77)}...`;
  return `${type === "Object" ? "object" : type} ${text}`;
}

/**
 * An item id as it is looked up: integers (numbers, or bigints within 2^53) and strings; anything else is a
 * TypeError. `5` and `"5"` stay different ids, as in Python.
 *
 * @param {unknown} item
 * @param {string} [where] the argument the id is in, for messages
 * @returns {HistoryItem}
 */
export function checkItemId(item, where = "") {
  if (typeof item === "string") return item;
  if (typeof item === "number" && Number.isInteger(item)) return item;
  if (typeof item === "bigint") {
    const number = Number(item);
    return Number.isSafeInteger(number) ? number : item; // beyond 2^53 no artifact id can match: reported unknown
  }
  throw new TypeError(`item ids must be integers or strings${where ? ` (in ${where})` : ""}, got ${describe(item)}.`);
}

/**
 * A collection of item ids given as an argument (`candidates`, the `items` of `score` and `similarItems`):
 * an array, a Set or an integer typed array. Anything else (a string, a Map, a plain object, null), or an id
 * that is not an integer or a string, is a TypeError naming the argument, as the Python SDK's.
 *
 * @param {unknown} items
 * @param {string} name the argument's name, for messages
 * @returns {HistoryItem[]}
 */
export function checkIds(items, name) {
  const typed = INTEGER_ARRAYS.some((type) => items instanceof type);
  if (!Array.isArray(items) && !(items instanceof Set) && !typed) {
    throw new TypeError(`${name} must be an array or a Set of item ids, got ${describe(items)}.`);
  }
  return Array.from(/** @type {Iterable<unknown>} */ (items), (item) => checkItemId(item, name));
}

/**
 * A history as an array of checked item ids. Accepted: arrays and integer typed arrays (oldest item first).
 *
 * @param {unknown} history
 * @param {string} [what] the argument's name, for messages
 * @returns {HistoryItem[]}
 */
export function checkHistory(history, what = "history") {
  if (Array.isArray(history)) return history.map((item) => checkItemId(item));
  if (INTEGER_ARRAYS.some((type) => history instanceof type)) {
    return Array.from(/** @type {Iterable<number | bigint>} */ (history), (item) => checkItemId(item));
  }
  throw new TypeError(
    `${what} must be an array (or an integer typed array) of item ids, oldest first, got ${describe(history)}.`,
  );
}

/**
 * Many histories: any iterable of histories but a string (each history is checked when it is mapped).
 *
 * @param {unknown} histories
 * @returns {unknown[]}
 */
export function checkHistories(histories) {
  const iterable = histories != null && typeof (/** @type {any} */ (histories)[Symbol.iterator]) === "function";
  if (typeof histories === "string" || !iterable) {
    throw new TypeError(`histories must be an array of histories, got ${describe(histories)}.`);
  }
  return Array.from(/** @type {Iterable<unknown>} */ (histories));
}

/**
 * Ids to leave out: any iterable of item ids except a string (an array, a Set, a typed array).
 *
 * @param {unknown} exclude
 * @returns {HistoryItem[]}
 */
export function checkExclude(exclude) {
  const iterable = exclude != null && typeof (/** @type {any} */ (exclude)[Symbol.iterator]) === "function";
  if (typeof exclude === "string" || !iterable) {
    throw new TypeError(`exclude must be an array or a Set of item ids, got ${describe(exclude)}.`);
  }
  return Array.from(/** @type {Iterable<unknown>} */ (exclude), (item) => checkItemId(item));
}

/**
 * @param {unknown} value
 * @param {string} name
 * @returns {number} the value as a number
 */
export function checkInteger(value, name) {
  if (typeof value === "bigint") return Number(value);
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw new TypeError(`${name} must be an integer, got ${describe(value)}.`);
  }
  return value;
}

/**
 * `k` (items per list): an integer in 1..topK.
 *
 * @param {unknown} k
 * @param {number} topK the artifact's top_k
 * @returns {number}
 */
export function checkK(k, topK) {
  const value = checkInteger(k, "k");
  if (value < 1 || value > topK) {
    throw new RangeError(
      `k must be in 1..${topK} (the artifact's top_k), got ${value}. ` +
        "Ask for fewer items, or re-export with a larger --top-k.",
    );
  }
  return value;
}

/**
 * @param {unknown} value
 * @param {string} name
 * @returns {number}
 */
export function checkPositiveInteger(value, name) {
  const number = checkInteger(value, name);
  if (number < 1) throw new RangeError(`${name} must be >= 1, got ${number}.`);
  return number;
}

/**
 * @param {unknown} policy
 * @returns {UnknownPolicy}
 */
export function checkPolicy(policy) {
  if (!UNKNOWN_POLICIES.includes(/** @type {any} */ (policy))) {
    throw new RangeError(`unknown must be one of ${JSON.stringify(UNKNOWN_POLICIES)}, got ${describe(policy)}.`);
  }
  return /** @type {UnknownPolicy} */ (policy);
}

/**
 * @param {unknown} value
 * @param {string} name
 * @returns {boolean}
 */
export function checkBoolean(value, name) {
  if (typeof value !== "boolean") throw new TypeError(`${name} must be true or false, got ${describe(value)}.`);
  return value;
}

/**
 * An options object (or undefined) whose keys are all known: a misspelt or snake_case option
 * (`exclude_seen`) is a TypeError rather than silently ignored.
 *
 * @template {object} T
 * @param {T | undefined} options
 * @param {ReadonlyArray<string>} allowed
 * @param {string} method for messages, e.g. "recommend()"
 * @returns {Partial<T>}
 */
export function checkOptions(options, allowed, method) {
  if (options === undefined) return {};
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new TypeError(
      `${method}: options must be an object such as {${allowed[0]}: ...}, got ${describe(options)}.`,
    );
  }
  const unknown = Object.keys(options).filter((key) => !allowed.includes(key));
  if (unknown.length) {
    throw new TypeError(
      `${method}: unknown option(s) ${JSON.stringify(unknown)}; the options are ${JSON.stringify(allowed)}.`,
    );
  }
  return options;
}

/**
 * An option's value, or its default when it is not given (null is a value: a TypeError where not allowed).
 *
 * @template T, D
 * @param {T | undefined} value
 * @param {D} fallback
 * @returns {T | D}
 */
export function orDefault(value, fallback) {
  return value === undefined ? fallback : value;
}

/**
 * @param {unknown} verify
 * @returns {import("./sidecars.js").VerifyMode}
 */
export function checkVerify(verify) {
  if (!VERIFY_MODES.includes(/** @type {any} */ (verify))) {
    throw new RangeError(`verify must be one of ${JSON.stringify(VERIFY_MODES)}, got ${describe(verify)}.`);
  }
  return /** @type {import("./sidecars.js").VerifyMode} */ (verify);
}

/**
 * Exact scoring only: the approximate index of a format 3 artifact is in faiss's own file format, which
 * only the Python SDK reads.
 *
 * @param {unknown} retrieval
 */
export function checkRetrieval(retrieval) {
  if (retrieval === "ann") {
    throw new RangeError(
      'retrieval "ann" (approximate retrieval from an artifact\'s faiss index, items.faiss) is available in ' +
        "the Python SDK only (Recommender.load(path, retrieval=\"ann\")): the JavaScript SDK scores every " +
        'item exactly. Leave retrieval out, or pass "exact".',
    );
  }
  if (retrieval !== "exact") {
    throw new RangeError(`retrieval must be "exact" (the JavaScript SDK scores every item), got ${describe(retrieval)}.`);
  }
}
