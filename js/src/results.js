/**
 * What the recommender returns, as the Python SDK's `s4rec.results`: {@link Recommendations}, ranked
 * `{item, score}` entries with a report of how the input was handled, built from a row of the graph's
 * ranking outputs, from a ranking of item-table scores or, for a history without a known item, from the
 * artifact's popularity ranking; and {@link Scores}, what `score` returns.
 */

import { diversePositions } from "./selection.js";

/** @typedef {import("./input.js").ItemId} ItemId */
/** @typedef {import("./input.js").HistoryItem} HistoryItem */
/** @typedef {import("./vocabulary.js").ItemVocabulary} ItemVocabulary */

/**
 * @typedef {object} Recommendation
 * @property {ItemId} item the item's id, as in the training data
 * @property {number} score the model's score (dot product of user and item vectors); NaN in a fallback list
 */

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

  /** @type {ReadonlyArray<HistoryItem>} the `candidates` ids the model does not know, which were ignored */
  unknownCandidates = [];

  /** @returns {ItemId[]} the item ids, best first */
  itemIds() {
    return this.map((r) => r.item);
  }
}

/**
 * The model's scores of the items given to `score`, in their order: an `Array` of numbers (NaN for an unknown
 * id, and everywhere when the history had no known item) with a report, as the Python SDK's `Scores`.
 *
 * @extends {Array<number>}
 */
export class Scores extends Array {
  static get [Symbol.species]() {
    return Array;
  }

  /** @type {ReadonlyArray<HistoryItem>} the given ids the model does not know (scored NaN) */
  unknownItems = [];

  /** @type {ReadonlyArray<HistoryItem>} the history's ids the model does not know, which were ignored */
  unknownHistory = [];

  /** @type {boolean} true when the history had no known item: every score is NaN (keep your own order) */
  fallback = false;
}

/**
 * @param {ArrayLike<number>} scores
 * @param {ReadonlyArray<HistoryItem>} unknownItems
 * @param {ReadonlyArray<HistoryItem>} unknownHistory
 * @param {boolean} fallback
 * @returns {Scores}
 */
export function scoreList(scores, unknownItems, unknownHistory, fallback) {
  const result = new Scores();
  for (let i = 0; i < scores.length; i++) result.push(scores[i]);
  result.unknownItems = unknownItems;
  result.unknownHistory = unknownHistory;
  result.fallback = fallback;
  return result;
}

/**
 * @param {Recommendation[]} entries
 * @param {ReadonlyArray<HistoryItem>} unknownItems
 * @param {boolean} fallback
 * @param {ReadonlyArray<HistoryItem>} [unknownCandidates]
 * @returns {Recommendations}
 */
function recommendations(entries, unknownItems, fallback = false, unknownCandidates = []) {
  const result = new Recommendations();
  for (const entry of entries) result.push(entry); // not push(...entries): a spread of 10^5 overflows the stack
  result.unknownItems = unknownItems;
  result.fallback = fallback;
  result.unknownCandidates = unknownCandidates;
  return result;
}

/**
 * A ranking of item indices (`js/src/selection.js`) as {@link Recommendations}.
 *
 * @param {import("./selection.js").Ranked} ranked
 * @param {ItemVocabulary} vocabulary
 * @param {ReadonlyArray<HistoryItem>} unknownItems
 * @param {ReadonlyArray<HistoryItem>} unknownCandidates
 * @returns {Recommendations}
 */
export function rankedList(ranked, vocabulary, unknownItems, unknownCandidates) {
  const entries = Array.from(ranked.items, (i, p) => ({ item: vocabulary.id(i), score: ranked.scores[p] }));
  return recommendations(entries, unknownItems, false, unknownCandidates);
}

/**
 * The popular-items fallback within `allowed` (null: every item) less `banned`: the most popular allowed items
 * first, then the other allowed items in catalogue (item index) order; at most `perIntent` of one intent.
 * Scores NaN, `fallback` true (the Python SDK's `_popular_selected`).
 *
 * @param {ReadonlyArray<number>} popularItems item indices by descending popularity
 * @param {ItemVocabulary} vocabulary
 * @param {number} k
 * @param {Int32Array | null} allowed sorted; holds no banned item
 * @param {Int32Array} banned sorted
 * @param {{ perIntent: number, intents: ArrayLike<number> } | null} diverse
 * @param {ReadonlyArray<HistoryItem>} unknownItems
 * @param {ReadonlyArray<HistoryItem>} unknownCandidates
 * @returns {Recommendations}
 */
export function popularSelected(
  popularItems, vocabulary, k, allowed, banned, diverse, unknownItems, unknownCandidates,
) {
  /** @type {number[]} */
  let chosen;
  if (allowed === null) {
    const skip = new Set(banned);
    chosen = popularItems.filter((i) => !skip.has(i));
  } else {
    const inside = new Set(allowed);
    chosen = popularItems.filter((i) => inside.has(i));
    if (chosen.length < k + (diverse === null ? 0 : allowed.length)) {
      const taken = new Set(chosen);
      for (const i of allowed) if (!taken.has(i)) chosen.push(i);
    }
  }
  if (diverse !== null) {
    const { perIntent, intents } = diverse;
    chosen = diversePositions(chosen.map((i) => intents[i]), perIntent, k).map((p) => chosen[p]);
  }
  const entries = chosen.slice(0, k).map((i) => ({ item: vocabulary.id(i), score: NaN }));
  return recommendations(entries, unknownItems, true, unknownCandidates);
}

/**
 * Row `row` of the graph's ranking outputs (`top_scores`, `top_items`: (rows, k)) as {@link Recommendations},
 * without the -inf tail of a row that has fewer than k items left after the exclusions.
 *
 * @param {Float32Array} scores
 * @param {BigInt64Array} items item indices
 * @param {number} row
 * @param {number} k
 * @param {ItemVocabulary} vocabulary
 * @param {ReadonlyArray<HistoryItem>} unknownItems
 * @returns {Recommendations}
 */
export function rankedRow(scores, items, row, k, vocabulary, unknownItems) {
  const entries = [];
  for (let j = row * k; j < (row + 1) * k && scores[j] !== -Infinity; j++) {
    entries.push({ item: vocabulary.id(Number(items[j])), score: scores[j] });
  }
  return recommendations(entries, unknownItems);
}

/**
 * The fallback for a history without a known item: the `k` most popular items but those in `skip`, scores NaN.
 *
 * @param {ReadonlyArray<number>} popularItems item indices by descending popularity (`metadata.popularItems`)
 * @param {ItemVocabulary} vocabulary
 * @param {number} k
 * @param {number[]} skip item indices left out
 * @param {ReadonlyArray<HistoryItem>} unknownItems
 * @returns {Recommendations}
 */
export function popularRecommendations(popularItems, vocabulary, k, skip, unknownItems) {
  const banned = new Set(skip);
  const chosen = popularItems.filter((i) => !banned.has(i)).slice(0, k);
  return recommendations(chosen.map((i) => ({ item: vocabulary.id(i), score: NaN })), unknownItems, true);
}
