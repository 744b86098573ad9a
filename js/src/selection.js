/**
 * Which items a call may return and how they are ranked when that is not the whole catalogue, as the Python
 * SDK's `s4rec.selection`: candidate sets (allow-lists), intent-diverse lists (`perIntent`) and rankings of
 * item-table scores. Plain arrays only; `js/src/recommender.js` runs the graph.
 *
 * Item sets are sorted, duplicate-free `Int32Array`s of item indices (1..N), so that differences are merges.
 * Rankings order by score, best first, and on equal scores put the lower item index first (the graph's TopK
 * and the Python SDK's `top` do the same), so that both SDKs list tied items alike.
 *
 * Two ways to rank a candidate set C for one user ({@link useRows}): **rows**, the user vector times the rows
 * of C from the item table, then the best k of those |C| scores; **mask**, the full graph with every item
 * outside C excluded (its `exclude` input). The switch is the Python SDK's (measured there,
 * `benchmarks/app_features.py`, docs/sdk.md "Business rules"), so both SDKs score a given call the same way.
 */

// Rows when |C| <= ROWS_SHARE * N (or at most ROWS_MIN items), else the mask: the Python SDK's switch point.
export const ROWS_SHARE = 0.25;
export const ROWS_MIN = 2048;

/** @typedef {{ scores: Float32Array, items: Int32Array }} Ranked a ranking, best first */

/**
 * Score `candidates` items row by row (true), or through the graph with the rest excluded (false).
 *
 * @param {number} candidates
 * @param {number} numItems
 */
export function useRows(candidates, numItems) {
  return candidates <= Math.max(ROWS_MIN, ROWS_SHARE * numItems);
}

/**
 * Item indices sorted ascending, each once, without 0 (the index of an unknown id).
 *
 * @param {ArrayLike<number>} indices
 * @returns {Int32Array}
 */
export function sortedUnique(indices) {
  const sorted = Int32Array.from(indices).sort();
  let n = 0;
  for (let i = 0; i < sorted.length; i++) {
    if (sorted[i] !== 0 && (n === 0 || sorted[i] !== sorted[n - 1])) sorted[n++] = sorted[i];
  }
  return sorted.slice(0, n);
}

/**
 * `a` without the items of `b` (both sorted, duplicate-free): one merge.
 *
 * @param {Int32Array} a
 * @param {Int32Array} b
 * @returns {Int32Array}
 */
export function difference(a, b) {
  if (!a.length || !b.length) return a;
  const out = new Int32Array(a.length);
  let n = 0;
  let j = 0;
  for (let i = 0; i < a.length; i++) {
    while (j < b.length && b[j] < a[i]) j++;
    if (j >= b.length || b[j] !== a[i]) out[n++] = a[i];
  }
  return out.slice(0, n);
}

/**
 * Item indices 1..`numItems` not in `items` (sorted).
 *
 * @param {Int32Array} items
 * @param {number} numItems
 * @returns {Int32Array}
 */
export function complement(items, numItems) {
  const keep = new Uint8Array(numItems + 1).fill(1);
  keep[0] = 0;
  for (const i of items) keep[i] = 0;
  const out = new Int32Array(numItems + 1 - items.length);
  let n = 0;
  for (let i = 1; i <= numItems; i++) if (keep[i]) out[n++] = i;
  return out.slice(0, n);
}

/**
 * The `k` best `(scores, items)` of parallel arrays, best first (ties: the lower item index first), -inf
 * scores (excluded items) left out. A heap of the k best so far: O(n log k), so a 10^6-item ranking never
 * sorts the whole catalogue.
 *
 * @param {ArrayLike<number>} scores
 * @param {ArrayLike<number>} items
 * @param {number} k
 * @returns {Ranked}
 */
export function top(scores, items, k) {
  const n = scores.length;
  // position a ranks above position b
  const above = (/** @type {number} */ a, /** @type {number} */ b) =>
    scores[a] > scores[b] || (scores[a] === scores[b] && items[a] < items[b]);
  /** @type {number[]} */
  let chosen;
  if (k >= n) {
    chosen = Array.from({ length: n }, (_, i) => i);
  } else {
    // A min-heap (its root the worst kept position) of the k best positions so far.
    const heap = new Int32Array(k);
    let size = 0;
    const down = (/** @type {number} */ i) => {
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let worst = i;
        if (l < size && above(heap[worst], heap[l])) worst = l;
        if (r < size && above(heap[worst], heap[r])) worst = r;
        if (worst === i) return;
        [heap[i], heap[worst]] = [heap[worst], heap[i]];
        i = worst;
      }
    };
    for (let p = 0; p < n; p++) {
      if (scores[p] === -Infinity) continue;
      if (size < k) {
        let i = size++;
        heap[i] = p;
        while (i > 0) {
          const parent = (i - 1) >> 1;
          if (!above(heap[parent], heap[i])) break;
          [heap[i], heap[parent]] = [heap[parent], heap[i]];
          i = parent;
        }
      } else if (above(p, heap[0])) {
        heap[0] = p;
        down(0);
      }
    }
    chosen = Array.from(heap.subarray(0, size));
  }
  chosen = chosen.filter((p) => scores[p] !== -Infinity).sort((a, b) => (above(a, b) ? -1 : above(b, a) ? 1 : 0));
  return {
    scores: Float32Array.from(chosen, (p) => scores[p]),
    items: Int32Array.from(chosen, (p) => items[p]),
  };
}

/**
 * The ranking of `(scores, items)` in growing prefixes (`first` items, then 4x as many, ...), each sorted best
 * first: only as much is ranked as the consumer reads.
 *
 * @param {ArrayLike<number>} scores
 * @param {ArrayLike<number>} items
 * @param {number} first
 * @returns {Generator<Ranked>}
 */
export function* rankedPrefixes(scores, items, first) {
  let m = Math.max(1, first);
  for (;;) {
    yield top(scores, items, Math.min(m, scores.length));
    if (m >= scores.length) return;
    m *= 4;
  }
}

/**
 * Positions of a ranked list (`intents`: each entry's intent, in rank order) that keep at most `perIntent`
 * entries of one intent, greedily from the top, at most `k` of them.
 *
 * @param {ArrayLike<number>} intents
 * @param {number} perIntent
 * @param {number} k
 * @returns {number[]}
 */
export function diversePositions(intents, perIntent, k) {
  /** @type {Map<number, number>} */
  const taken = new Map();
  const kept = [];
  for (let position = 0; position < intents.length && kept.length < k; position++) {
    const count = taken.get(intents[position]) ?? 0;
    if (count < perIntent) {
      taken.set(intents[position], count + 1);
      kept.push(position);
    }
  }
  return kept;
}

/**
 * The entries of a ranking at `positions`.
 *
 * @param {Ranked} ranked
 * @param {number[]} positions
 * @returns {Ranked}
 */
export function pick(ranked, positions) {
  return {
    scores: Float32Array.from(positions, (p) => ranked.scores[p]),
    items: Int32Array.from(positions, (p) => ranked.items[p]),
  };
}

/**
 * The first `k` entries of a ranking given as growing prefixes ({@link rankedPrefixes}) keeping at most
 * `perIntent` items of one intent (`intents`: by item index). `complete` is false when the prefixes ran out
 * before `k` were found: the caller may rank more.
 *
 * @param {Iterable<Ranked>} prefixes
 * @param {ArrayLike<number>} intents
 * @param {number} perIntent
 * @param {number} k
 * @returns {Ranked & { complete: boolean }}
 */
export function diverseTop(prefixes, intents, perIntent, k) {
  /** @type {Ranked} */
  let prefix = { scores: new Float32Array(0), items: new Int32Array(0) };
  for (prefix of prefixes) {
    const keep = diversePositions(Array.from(prefix.items, (i) => intents[i]), perIntent, k);
    if (keep.length === k) return { ...pick(prefix, keep), complete: true };
  }
  const keep = diversePositions(Array.from(prefix.items, (i) => intents[i]), perIntent, k);
  return { ...pick(prefix, keep), complete: false };
}

/**
 * The best `k` entries of growing ranked prefixes, at most `perIntent` of one intent when given.
 *
 * @param {Iterable<Ranked>} prefixes
 * @param {number} k
 * @param {ArrayLike<number> | null} intents
 * @param {number | null} perIntent
 * @returns {Ranked}
 */
export function firstK(prefixes, k, intents, perIntent) {
  if (perIntent !== null) {
    const { scores, items } = diverseTop(prefixes, /** @type {ArrayLike<number>} */ (intents), perIntent, k);
    return { scores, items };
  }
  /** @type {Ranked} */
  let prefix = { scores: new Float32Array(0), items: new Int32Array(0) };
  for (prefix of prefixes) if (prefix.items.length >= k) break;
  return { scores: prefix.scores.slice(0, k), items: prefix.items.slice(0, k) };
}
