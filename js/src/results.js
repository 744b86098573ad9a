/**
 * What the recommender returns, as the Python SDK's `s4rec.results`: {@link Recommendations}, ranked
 * `{item, score}` entries with a report of how the input was handled, built from a row of the graph's
 * ranking outputs or, for a history without a known item, from the artifact's popularity ranking.
 */

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

  /** @returns {ItemId[]} the item ids, best first */
  itemIds() {
    return this.map((r) => r.item);
  }
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
