/**
 * The item vocabulary: the user's own item ids <-> the model's item indices, and what to do with unknown ids,
 * as the Python SDK's `s4rec.vocabulary`.
 *
 * An artifact stores its item ids in index order (index 0 is padding): {@link ItemVocabulary} maps histories
 * of ids to indices, exclusion ids to indices, and indices back to ids. Ids are compared as they are (`5` and
 * `"5"` are different items); bigints within 2^53 count as numbers (`checkItemId`). Unknown ids follow a
 * policy, "ignore" (dropped and reported) or "error" ({@link UnknownItemError}).
 */

import { UnknownItemError } from "./errors.js";
import { sortedUnique } from "./selection.js";
import { checkExclude, checkHistory, checkIds } from "./input.js";

/** @typedef {import("./input.js").ItemId} ItemId */
/** @typedef {import("./input.js").HistoryItem} HistoryItem */
/** @typedef {import("./input.js").UnknownPolicy} UnknownPolicy */

/** The item ids of an artifact, by item index (index `i + 1` is `itemIds[i]`; 0 is padding). */
export class ItemVocabulary {
  /** @type {Map<HistoryItem, number>} item id -> item index (1..N) */
  #indexOf;
  /** @type {ReadonlyArray<ItemId | null>} item index -> item id; index 0 is the padding */
  #ids;

  /** @param {ReadonlyArray<ItemId>} itemIds the artifact's item ids in index order (`metadata.itemIds`) */
  constructor(itemIds) {
    this.#indexOf = new Map(itemIds.map((id, i) => [id, i + 1]));
    this.#ids = [null, ...itemIds];
  }

  /**
   * The id of an item index (1..N).
   *
   * @param {number} index
   * @returns {ItemId}
   */
  id(index) {
    return /** @type {ItemId} */ (this.#ids[index]);
  }

  /**
   * One history's item indices (in order) and its unknown ids, which are dropped under "ignore" and raise
   * {@link UnknownItemError} under "error". A history that is not an array of ids is a TypeError.
   *
   * @param {unknown} history
   * @param {UnknownPolicy} policy
   * @returns {{ indices: number[], unknownItems: HistoryItem[] }}
   */
  mapHistory(history, policy) {
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
   * The item index of each id of a collection (`candidates`, the `items` of `score`), in its order (0 for an
   * id the model does not know), and those unknown ids in the order given: reported under "ignore",
   * {@link UnknownItemError} under "error". Anything but an array, a Set or an integer typed array of ids is a
   * TypeError naming `name`.
   *
   * @param {unknown} items
   * @param {UnknownPolicy} policy
   * @param {string} name the argument's name, for messages
   * @returns {{ indices: number[], unknownItems: HistoryItem[] }}
   */
  itemIndices(items, policy, name) {
    const ids = checkIds(items, name);
    /** @type {HistoryItem[]} */
    const unknownItems = [];
    const indices = ids.map((item) => {
      const index = this.#indexOf.get(item);
      if (index === undefined) unknownItems.push(item);
      return index ?? 0;
    });
    if (unknownItems.length && policy === "error") throw unknownError(unknownItems, name);
    return { indices, unknownItems };
  }

  /**
   * {@link ItemVocabulary.itemIndices} as a set: the known indices sorted ascending, each once (an
   * `Int32Array`), and the unknown ids.
   *
   * @param {unknown} items
   * @param {UnknownPolicy} policy
   * @param {string} name
   * @returns {{ indices: Int32Array, unknownItems: HistoryItem[] }}
   */
  itemSet(items, policy, name) {
    const { indices, unknownItems } = this.itemIndices(items, policy, name);
    return { indices: sortedUnique(indices), unknownItems };
  }

  /**
   * The item indices of the ids in `exclude` (any iterable of ids but a string; unknown ids are ignored),
   * each once.
   *
   * @param {unknown} exclude
   * @returns {number[]}
   */
  exclusionIndices(exclude) {
    const found = checkExclude(exclude).map((item) => this.#indexOf.get(item));
    return [...new Set(/** @type {number[]} */ (found.filter((i) => i !== undefined)))];
  }
}

/**
 * @param {HistoryItem[]} unknownItems
 * @param {string} [name] the argument they were in ("" for a history)
 * @returns {UnknownItemError}
 */
function unknownError(unknownItems, name = "") {
  const shown = unknownItems.slice(0, 5).map((i) => (typeof i === "bigint" ? `${i}n` : JSON.stringify(i)));
  return new UnknownItemError(
    `${unknownItems.length} item id(s)${name ? ` in ${name}` : ""} unknown to the model: ${shown.join(", ")}` +
      `${unknownItems.length > 5 ? ", ..." : ""}. Remove them, or use unknown: "ignore" to drop them.`,
    unknownItems,
  );
}
