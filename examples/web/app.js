/**
 * The example page: load an s4rec artifact with onnxruntime-web and play with it. Type a history (or click
 * recommended items to append them to it), and the page shows, each with the time its call took:
 *
 * - the recommendations (`recommend`), and beside them an intent-diverse list (`recommend` with `perIntent`),
 *   each item tagged with its intent;
 * - the history's most probable intents (`intents`), each with a few of its items (`itemsForIntent`);
 * - "because you viewed X": items similar to the last clicked item, or to the history's last one
 *   (`similarItems`, without the history);
 * - a candidates box: when it holds ids, both lists rank only those (`candidates`: in stock, a category).
 *
 * Query parameters: `artifact` (URL of the artifact directory, default "artifact/"), `variant` (fp32, int8 or
 * mobile), `threads` (onnxruntime-web's WASM threads, default 1; more than 1 needs a cross-origin isolated
 * page, i.e. the COOP/COEP headers serve.py sends), `history` and `candidates` (to fill the fields in).
 *
 * `window.s4recDemo` exposes the loaded recommender, the last rendering and its timings for tests and
 * benchmarks.
 */

import * as ort from "onnxruntime-web";
import { Recommender } from "s4rec";

const params = new URLSearchParams(location.search);
const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const historyInput = /** @type {HTMLInputElement} */ ($("history"));
const kInput = /** @type {HTMLInputElement} */ ($("k"));
const perIntentInput = /** @type {HTMLInputElement} */ ($("per-intent"));
const candidatesInput = /** @type {HTMLInputElement} */ ($("candidates"));

// Global to onnxruntime-web and read when the first session is made: set it before loading.
ort.env.wasm.numThreads = Number(params.get("threads") ?? 1);

const demo = {
  /** @type {Promise<Recommender>} */
  ready: Recommender.load(params.get("artifact") ?? "artifact/", { ort, variant: params.get("variant") ?? "fp32" }),
  /** @type {Promise<void> | null} the rendering in progress or last done */
  pending: null,
  /** @type {number | null} ms from navigation start to the recommender loaded (runtime, model, session) */
  loadedMs: null,
  /** @type {number | null} ms from navigation start to the first recommendations on screen */
  firstRecommendationMs: null,
  /** @type {Record<string, number>} ms each call of the last rendering took */
  timings: {},
  /** @type {unknown} the item last clicked (its similar items are shown), or null */
  viewed: null,
};
Object.assign(window, { s4recDemo: demo });

/**
 * "12, 7 301" -> [12, 7, 301] (integers become numbers); a JSON array is taken as it is (string ids).
 *
 * @param {string} text
 * @returns {unknown[]}
 */
function parseIds(text) {
  const trimmed = text.trim();
  if (trimmed.startsWith("[")) return JSON.parse(trimmed);
  return trimmed.split(/[\s,]+/).filter(Boolean).map((token) => (/^-?\d+$/.test(token) ? Number(token) : token));
}

/**
 * The inverse of parseIds: integers as "1, 2, 3", anything else as a JSON array.
 *
 * @param {ReadonlyArray<unknown>} ids
 */
function formatIds(ids) {
  return ids.every(Number.isInteger) ? ids.join(", ") : JSON.stringify(ids);
}

/**
 * Run one SDK call and record how long it took (ms, `performance.now()`: 5 us resolution in a cross-origin
 * isolated page).
 *
 * @template T
 * @param {string} name
 * @param {() => Promise<T> | T} call
 * @returns {Promise<T>}
 */
async function timed(name, call) {
  const start = performance.now();
  try {
    return await call();
  } finally {
    demo.timings[name] = performance.now() - start;
  }
}

/** @type {Map<unknown, number> | null} item id -> its intent (built once, on first use) */
let intents = null;

/**
 * @param {Recommender} rec
 * @returns {Map<unknown, number>}
 */
function intentOf(rec) {
  const { itemIds, itemIntents } = rec.metadata;
  intents ??= new Map(itemIntents.length ? itemIds.map((id, i) => [id, itemIntents[i]]) : []);
  return intents;
}

/**
 * An item as a list entry: its id, its intent as a tag, its score; clicking it appends it to the history.
 *
 * @param {Recommender} rec
 * @param {{ item: unknown, score: number }} entry
 * @param {string} scoreText
 */
function itemEntry(rec, { item, score }, scoreText) {
  const li = document.createElement("li");
  li.dataset.item = JSON.stringify(item); // keeps 5 and "5" apart
  li.dataset.score = String(score);
  li.tabIndex = 0;
  li.title = "Add to the history";
  const name = document.createElement("span");
  name.className = "item";
  name.textContent = String(item);
  li.append(name);
  const intent = intentOf(rec).get(item);
  if (intent !== undefined) {
    li.dataset.intent = String(intent);
    const tag = document.createElement("span");
    tag.className = "intent";
    tag.style.background = `hsl(${(intent * 137.5) % 360} 70% 88%)`; // a stable colour per intent
    tag.textContent = `intent ${intent}`;
    li.append(tag);
  }
  const span = document.createElement("span");
  span.className = "score";
  span.textContent = scoreText;
  li.append(span);
  return li;
}

/**
 * @param {Recommender} rec
 * @param {string} id the list's element
 * @param {ReadonlyArray<{ item: unknown, score: number }>} list
 * @param {(score: number) => string} format
 */
function showList(rec, id, list, format) {
  $(id).replaceChildren(...list.map((entry) => itemEntry(rec, entry, format(entry.score))));
}

const scoreText = (/** @type {number} */ score) => (Number.isNaN(score) ? "(popular)" : score.toFixed(4));

/** @param {Recommender} rec */
async function render(rec) {
  const report = $("report");
  const notes = [];
  demo.timings = {};
  try {
    const history = parseIds(historyInput.value);
    const candidates = candidatesInput.value.trim() ? parseIds(candidatesInput.value) : undefined;
    const k = Number(kInput.value);
    const options = /** @type {any} */ (candidates === undefined ? { k } : { k, candidates });
    const list = await timed("recommend", () => rec.recommend(/** @type {any} */ (history), options));
    showList(rec, "results", list, scoreText);
    if (list.fallback) notes.push("No known item in this history: the most popular items.");
    if (list.unknownItems.length) notes.push(`Ignored unknown ids: ${list.unknownItems.map((i) => JSON.stringify(i)).join(", ")}.`);
    if (list.unknownCandidates.length) {
      notes.push(`Ignored unknown candidates: ${list.unknownCandidates.map((i) => JSON.stringify(i)).join(", ")}.`);
    }
    if (rec.metadata.numIntents) {
      const perIntent = Number(perIntentInput.value);
      const diverse = await timed("diverse", () => rec.recommend(/** @type {any} */ (history), { ...options, perIntent }));
      showList(rec, "diverse", diverse, scoreText);
      const intents = await timed("intents", () => rec.intents(/** @type {any} */ (history), { top: Math.min(3, rec.metadata.numIntents) }));
      $("intents").replaceChildren(
        ...intents.map(({ intent, probability }) => {
          const li = document.createElement("li");
          li.dataset.intent = String(intent);
          li.dataset.probability = String(probability);
          const examples = rec.itemsForIntent(intent, Math.min(3, rec.topK)).join(", ");
          li.textContent = `intent ${intent}: ${(probability * 100).toFixed(1)}% (its items: ${examples})`;
          return li;
        }),
      );
    } else {
      $("diverse").replaceChildren();
      $("intents").replaceChildren();
      $("diverse-title").textContent = "Intent-diverse (this model has no intents)";
    }
    await renderSimilar(rec, history);
  } catch (error) {
    for (const id of ["results", "diverse", "intents", "similar"]) $(id).replaceChildren();
    notes.push(`${/** @type {Error} */ (error).name}: ${/** @type {Error} */ (error).message}`);
  }
  report.textContent = notes.join(" ");
  $("timings").textContent = Object.entries(demo.timings)
    .map(([name, ms]) => `${name} ${ms.toFixed(2)} ms`)
    .join(" · ");
  demo.firstRecommendationMs ??= performance.now();
}

/**
 * "Because you viewed X": the items most similar to the last clicked item (else the history's last item),
 * without the history.
 *
 * @param {Recommender} rec
 * @param {unknown[]} history
 */
async function renderSimilar(rec, history) {
  const viewed = demo.viewed ?? history[history.length - 1];
  const title = $("similar-title");
  if (viewed === undefined) {
    title.textContent = "Because you viewed …";
    $("similar").replaceChildren();
    return;
  }
  title.textContent = `Because you viewed ${JSON.stringify(viewed)}`;
  try {
    const k = Math.min(5, rec.topK);
    const similar = await timed("similar", () => rec.similarItems(/** @type {any} */ (viewed), { k, exclude: /** @type {any} */ (history) }));
    showList(rec, "similar", similar, (score) => `cos ${score.toFixed(3)}`);
  } catch (error) {
    $("similar").replaceChildren();
    title.textContent += ` (${/** @type {Error} */ (error).message})`;
  }
}

demo.ready.then(
  async (rec) => {
    demo.loadedMs = performance.now();
    const m = rec.metadata;
    $("status").textContent =
      `${m.numItems.toLocaleString()} items, ${m.variant}, embedding ${m.embeddingDim}, ` +
      `${m.numIntents} intents; up to ${m.maxLen} items of history and ${m.topK} per list. Model version ${rec.version}.`;
    kInput.max = String(m.topK);
    kInput.value = String(Math.min(10, m.topK));
    historyInput.value = params.get("history") ?? formatIds(m.itemIds.slice(0, 3));
    candidatesInput.value = params.get("candidates") ?? "";
    for (const input of [historyInput, candidatesInput]) input.disabled = false;
    /** @type {HTMLButtonElement} */ ($("recommend")).disabled = false;
    $("form").addEventListener("submit", (event) => {
      event.preventDefault();
      demo.viewed = null;
      demo.pending = render(rec);
    });
    // Clicking an item (in any list) appends it to the history, re-ranks and shows what is similar to it.
    const choose = (/** @type {Event} */ event) => {
      const li = /** @type {HTMLElement | null} */ (/** @type {HTMLElement} */ (event.target).closest("li[data-item]"));
      if (li === null || (event instanceof KeyboardEvent && event.key !== "Enter")) return;
      const item = JSON.parse(/** @type {string} */ (li.dataset.item));
      let history;
      try {
        history = parseIds(historyInput.value);
      } catch {
        history = [];
      }
      historyInput.value = formatIds([...history, item]);
      demo.viewed = item;
      demo.pending = render(rec);
    };
    for (const id of ["results", "diverse", "similar"]) {
      $(id).addEventListener("click", choose);
      $(id).addEventListener("keydown", choose);
    }
    demo.pending = render(rec);
  },
  (error) => {
    $("status").textContent = `${error.name}: ${error.message}`;
    $("status").className = "error";
  },
);
